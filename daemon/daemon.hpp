#pragma once
// berthd's start-up and lifetime: the directory, the server certificate, the database, the
// listeners (the unix socket always, HTTPS when an address is set), and an orderly stop.

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <variant>

namespace berth::daemon {

struct DaemonOptions {
  std::filesystem::path dir;                          // berthd.db, server.crt/key, unix.socket, images/, containers
  std::optional<std::string> listen;                  // ADDR:PORT; overrides core.https_address for this run
  std::optional<std::string> trust_password;          // set as core.trust_password at start (a secret)
  std::optional<std::filesystem::path> storage_pool;  // the "default" pool; DIR/storage when not given
  // The executable containers and commands start through (LxcDriverOptions::start_helper), and
  // migrations' rsync reaches its websocket through ("netcat FD"): main picks berthd-helper next
  // to its own executable, or berthd itself, which answers the same jobs.
  std::filesystem::path start_helper;
};

class Daemon {
 public:
  // Prepares everything and starts serving; an error (what, where, what to do) when it cannot.
  [[nodiscard]] static std::variant<std::unique_ptr<Daemon>, std::string> start(DaemonOptions options);
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Stops accepting and closes every connection; the database closes with the object. Once: later
  // calls (the destructor's) do nothing.
  void stop();

 private:
  struct Impl;
  explicit Daemon(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace berth::daemon
