#pragma once
// The client's config dir, as `lxc` keeps ~/.config/lxc:
//   client.crt, client.key     our identity (generated on first use; key mode 0600, dir 0700)
//   servercerts/<remote>.crt   the pinned server certificate of each remote (PEM)
//   remotes.json               {"remotes":{"<name>":{"url":..,"fingerprint":..}}}
//
// The identity may instead be given from outside (select_client_identity): then the config dir
// needs to hold nothing, and berth neither reads nor makes client.crt/client.key.

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "providers/lxd/client.hpp"
#include "providers/lxd/result.hpp"

namespace berth::lxd {

struct ClientIdentity {
  std::shared_ptr<const ClientCertificate> certificate;  // with its key, in memory
  std::string fingerprint;                               // what the server's trust store will list
};

struct ClientConfig {
  ClientConfig() = default;
  // Implicit, as the plain struct of a path it used to be: `{dir}` is a config.
  ClientConfig(std::filesystem::path dir, std::shared_ptr<const ClientIdentity> given = nullptr)  // NOLINT
      : config_dir(std::move(dir)), identity(std::move(given)) {}

  std::filesystem::path config_dir;
  // The identity select_client_identity chose from the command line or the environment. When set,
  // it is the identity; client.crt and client.key are neither read nor made.
  std::shared_ptr<const ClientIdentity> identity;

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

// Where the client certificate comes from. This is the one place that decides it; the first
// source given is used, and it must be complete (a certificate without its key is an error, not
// a reason to look further):
//   1. --client-cert FILE and --client-key FILE;
//   2. $BERTH_CLIENT_CERT and $BERTH_CLIENT_KEY, holding the PEM text itself (unset or empty:
//      not given);
//   3. client.crt and client.key in the config dir (load_client_identity).
inline constexpr const char* client_certificate_env = "BERTH_CLIENT_CERT";
inline constexpr const char* client_key_env = "BERTH_CLIENT_KEY";

struct ClientIdentitySources {
  std::optional<std::filesystem::path> certificate_file;  // --client-cert
  std::optional<std::filesystem::path> key_file;          // --client-key
  std::function<const char*(const char*)> getenv;         // the environment (std::getenv); null: empty
};

// The identity of source 1 or 2, checked: PEM, a key without a passphrase, the certificate's own
// key. nullptr when neither is given (source 3 then applies). Errors name the source (the flag
// with its file, or the variable) and never quote what it holds. Files are read into memory
// without a permission check, as client.key in the config dir is.
[[nodiscard]] Result<std::shared_ptr<const ClientIdentity>> select_client_identity(
    const ClientIdentitySources& sources);

// The identity berth presents: ClientConfig::identity when set; else client.crt/client.key,
// generating both first if either is missing (CN "berth@<hostname>"). Generation is safe against a
// concurrent berth doing the same (a lock file serialises it).
[[nodiscard]] Result<ClientIdentity> ensure_client_identity(const ClientConfig& config);
// As ensure_client_identity, but never creates anything. ErrorKind::not_found if there is none yet.
[[nodiscard]] Result<ClientIdentity> load_client_identity(const ClientConfig& config);

}  // namespace berth::lxd
