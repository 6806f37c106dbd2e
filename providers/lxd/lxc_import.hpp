#pragma once
// `berth remote import-lxc`: the remotes and the client certificate of an existing `lxc`
// configuration, so that the hosts `lxc` is trusted by trust berth too, with nothing sent to them.
//
// An `lxc` config dir (LXD 5.0 lxc/config) holds
//   config.yml              default-remote, remotes: NAME -> {addr, protocol, public, auth_type, project}
//   client.crt, client.key  the client's identity, presented to every https remote
//   servercerts/NAME.crt    the server certificate `lxc remote add` accepted for NAME
//
// What is imported (docs/cli.md, berth remote import-lxc):
//   - remotes that are LXD hosts over https with a pinned certificate, or over a unix socket;
//     image servers, other protocols and authentication methods, other projects, and names or
//     addresses berth's rules (engine/config) refuse are skipped, each with the reason;
//   - lxc's client certificate and key, when berth has none; when berth has another, the import is
//     refused unless replace_certificate is set (berth's pair is then kept as client.crt.old and
//     client.key.old);
//   - a remote whose name berth already uses for something else fails, unless force is set.
// The hosts are not contacted. The key is copied byte for byte with mode 0600 and never shown.

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "providers/lxd/client_config.hpp"
#include "providers/lxd/result.hpp"

namespace berth::lxd {

struct LxcRemote {
  std::string name;
  std::string addr;
  std::string protocol;   // "lxd", "simplestreams"; empty when unset
  std::string auth_type;  // "tls", "candid", "oidc"; empty when unset
  std::string project;
  bool is_public = false;
  std::string problem;  // the entry cannot be read (not a map, addr missing or not text, ...)
};

struct LxcConfig {
  std::string default_remote;
  std::vector<LxcRemote> remotes;  // sorted by name
};

// Parses config.yml. Malformed YAML, or a document that is not a map or whose `remotes` is not a
// map, is an ErrorKind::invalid_argument error naming `file` (with line and column when known);
// a single remote that cannot be read is kept, with its problem.
[[nodiscard]] Result<LxcConfig> parse_lxc_config(std::string_view text, const std::string& file);

// Where `lxc` keeps its configuration: $LXD_CONF, else ~/.config/lxc, else (when that has no
// config.yml and the snap's has) ~/snap/lxd/common/config.
[[nodiscard]] std::filesystem::path default_lxc_config_dir();

// What `unix://` (lxc's `local`) means: $LXD_DIR/unix.socket when LXD_DIR is set, else
// /var/lib/lxd/unix.socket and the snap's /var/snap/lxd/common/lxd/unix.socket, in that order.
[[nodiscard]] std::vector<std::filesystem::path> default_lxd_sockets();

struct LxcImportOptions {
  std::filesystem::path from;  // lxc's config dir
  bool force = false;          // replace a berth remote of the same name
  bool replace_certificate = false;
  bool dry_run = false;  // decide and report, write nothing
  // For an addr of `unix://` (no path): the first of these that exists; none: the remote is skipped.
  std::vector<std::filesystem::path> default_sockets;
};

enum class LxcImportOutcome { imported, replaced, unchanged, skipped, failed };

struct LxcImportedRemote {
  std::string name;
  LxcImportOutcome outcome = LxcImportOutcome::skipped;
  std::string url;          // berth's canonical URL, when there is one
  std::string fingerprint;  // of the pinned certificate (https)
  std::string reason;       // skipped, failed: why
};

enum class LxcCertificateOutcome {
  not_needed,  // no https remote to import
  copied,      // berth had none
  same,        // berth already uses lxc's
  replaced,    // berth had another; kept as client.crt.old / client.key.old
};

struct LxcImportReport {
  std::filesystem::path from;
  LxcCertificateOutcome certificate = LxcCertificateOutcome::not_needed;
  std::string certificate_fingerprint;     // lxc's, when it was used
  std::string previous_fingerprint;        // berth's own, when it was replaced
  std::vector<LxcImportedRemote> remotes;  // in lxc's order (by name)

  [[nodiscard]] bool failed() const;
};

// Errors that stop the whole import (nothing written): no readable config.yml, malformed YAML, a
// client certificate or key that cannot be used, berth's own certificate in the way without
// replace_certificate, a config dir that cannot be written.
[[nodiscard]] Result<LxcImportReport> import_lxc(const ClientConfig& config, const LxcImportOptions& options);

[[nodiscard]] std::string_view to_string(LxcImportOutcome outcome);

}  // namespace berth::lxd
