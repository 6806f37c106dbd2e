#pragma once
// The remotes `berth remote add` has pinned: <config_dir>/remotes.json plus one
// <config_dir>/servercerts/<name>.crt per remote. Every change is written atomically. Names follow
// config::remote_name_problem (engine/config/names.hpp), the fleet file's rule, which also keeps
// them usable as file names.
//
// Not safe against two processes changing the store at the same moment (the last writer wins,
// as with `lxc`); reading while another process writes is safe.

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "providers/lxd/client_config.hpp"
#include "providers/lxd/result.hpp"

namespace berth::lxd {

struct StoredRemote {
  std::string name;
  std::string url;          // canonical: https://host:port or unix:///path
  std::string fingerprint;  // sha256 hex of the pinned server certificate; empty for unix://
  friend bool operator==(const StoredRemote&, const StoredRemote&) = default;
};

class RemoteStore {
 public:
  // A missing remotes.json is an empty store; a malformed one is an error naming the file.
  [[nodiscard]] static Result<RemoteStore> load(const ClientConfig& config);

  [[nodiscard]] std::vector<StoredRemote> list() const;  // sorted by name
  [[nodiscard]] std::optional<StoredRemote> find(std::string_view name) const;

  // Pins `server_certificate_pem` as servercerts/<name>.crt and records the remote.
  // Adding a remote identical to the stored one is a no-op; a different one under an existing name is
  // ErrorKind::conflict (remove it first).
  [[nodiscard]] Result<void> add(const StoredRemote& remote, std::string_view server_certificate_pem);
  // As add, but a remote of the same name is replaced, its pinned certificate with it.
  [[nodiscard]] Result<void> put(const StoredRemote& remote, std::string_view server_certificate_pem);
  // Deletes the entry and its pinned certificate. ErrorKind::not_found if there is no such remote.
  [[nodiscard]] Result<void> remove(std::string_view name);

  [[nodiscard]] const ClientConfig& config() const { return config_; }

 private:
  explicit RemoteStore(ClientConfig config) : config_(std::move(config)) {}
  [[nodiscard]] Result<void> save() const;

  ClientConfig config_;
  std::map<std::string, StoredRemote, std::less<>> remotes_;
};

// Convenience for the CLI: load, remove, save.
[[nodiscard]] Result<void> remove_remote(const ClientConfig& config, std::string_view name);
[[nodiscard]] Result<std::vector<StoredRemote>> list_remotes(const ClientConfig& config);

}  // namespace berth::lxd
