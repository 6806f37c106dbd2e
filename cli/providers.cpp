#include "cli/providers.hpp"

#include <pwd.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <iostream>

#include "engine/util/printable.hpp"
#include "engine/util/time.hpp"
#include "providers/lxd/executor.hpp"
#include "providers/lxd/host_lock.hpp"
#include "providers/lxd/state_reader.hpp"

namespace berth::cli {

lxd::ClientConfig client_config(const GlobalOptions& global) {
  return lxd::ClientConfig{global.config_dir, global.client_identity};
}

LxdProviders::LxdProviders(const GlobalOptions& global, const util::InputLimits& limits) {
  const lxd::ClientConfig client = client_config(global);
  lxd::Timeouts bounds;
  bounds.max_response_bytes = limits.response_bytes;
  lxd::StateReaderOptions reading;
  reading.timeouts = bounds;
  lxd::ExecutorOptions executing;
  executing.timeouts = bounds;
  reader_ = lxd::make_state_reader(client, reading);
  recoverer_ = lxd::make_recoverer(client, executing);
  executor_ = lxd::make_executor(client, executing);
  lxd::HostLockerOptions locking;
  locking.timeouts = bounds;
  locker_ = lxd::make_host_locker(client, locking);
}

std::string host_lock_holder(std::string_view command) {
  std::array<char, 256> host{};
  if (::gethostname(host.data(), host.size() - 1) != 0) host[0] = '\0';
  const passwd* user = ::getpwuid(::geteuid());
  return "berth " + std::string{command} + ", " + (user != nullptr ? user->pw_name : std::to_string(::geteuid())) +
         "@" + (host[0] != '\0' ? host.data() : "unknown-host") + ", pid " + std::to_string(::getpid());
}

std::string describe_host_lock(const providers::HostLockInfo& lock) {
  std::string text = lock.remote + " is locked by " + lock.holder;
  std::string when;
  if (!lock.since.empty()) when = "since " + lock.since;
  if (lock.expires) {
    when += (when.empty() ? "" : ", ") + std::string{"until "} +
            util::rfc3339_utc(std::chrono::system_clock::time_point{std::chrono::seconds{*lock.expires}}) +
            " unless renewed";
  }
  if (!when.empty()) text += " (" + when + ")";
  return text;
}

OpenedStore open_state(const std::filesystem::path& path, bool only_existing) {
  OpenedStore out;
  try {
    out.store = only_existing ? state::Store::open_existing(path) : state::Store::open(path);
  } catch (const state::StoreError& e) {
    std::cerr << "berth: " << util::printable(e.what()) << '\n';
    out.failed = true;
  }
  return out;
}

}  // namespace berth::cli
