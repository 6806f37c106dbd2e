#pragma once
// The client's config dir, as `lxc` keeps ~/.config/lxc:
//   client.crt, client.key     our identity (generated on first use; key mode 0600, dir 0700)
//   servercerts/<remote>.crt   the pinned server certificate of each remote (PEM)
//   remotes.json               {"remotes":{"<name>":{"url":..,"fingerprint":..}}}

#include <filesystem>
#include <string>
#include <string_view>

#include "providers/lxd/result.hpp"

namespace berth::lxd {

struct ClientConfig {
  std::filesystem::path config_dir;

  [[nodiscard]] std::filesystem::path client_certificate() const { return config_dir / "client.crt"; }
  [[nodiscard]] std::filesystem::path client_key() const { return config_dir / "client.key"; }
  [[nodiscard]] std::filesystem::path server_certificates_dir() const { return config_dir / "servercerts"; }
  // Only meaningful for a valid remote name (config::remote_name_problem).
  [[nodiscard]] std::filesystem::path server_certificate(std::string_view remote) const {
    return server_certificates_dir() / (std::string{remote} + ".crt");
  }
  [[nodiscard]] std::filesystem::path remotes_file() const { return config_dir / "remotes.json"; }
};

// $BERTH_CONFIG_DIR if set and non-empty, else $XDG_CONFIG_HOME/berth, else $HOME/.config/berth.
[[nodiscard]] std::filesystem::path default_config_dir();

struct ClientIdentity {
  std::filesystem::path certificate;  // PEM
  std::filesystem::path key;          // PEM, mode 0600
  std::string fingerprint;            // what the server's trust store will list
};

// Loads client.crt/client.key, generating both first if either is missing (CN "berth@<hostname>").
// Safe against a concurrent berth doing the same (a lock file serialises generation).
[[nodiscard]] Result<ClientIdentity> ensure_client_identity(const ClientConfig& config);
// Loads the identity; never creates anything. ErrorKind::not_found if there is none yet.
[[nodiscard]] Result<ClientIdentity> load_client_identity(const ClientConfig& config);

}  // namespace berth::lxd
