#include "providers/lxd/lxc_import.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <optional>

#include "engine/config/names.hpp"
#include "engine/config/url.hpp"
#include "engine/util/read_file.hpp"
#include "providers/lxd/certificate.hpp"
#include "providers/lxd/fs_util.hpp"
#include "providers/lxd/remote_store.hpp"

namespace berth::lxd {
namespace {

// lxc's config.yml is a few hundred bytes, a PEM certificate or key a few kilobytes.
constexpr std::uint64_t max_config_bytes = 1024 * 1024;
constexpr std::uint64_t max_pem_bytes = 1024 * 1024;

std::string located(const std::string& file, const YAML::Mark& mark) {
  if (mark.is_null()) return file;
  return file + ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
}

Error bad_config(const std::string& file, const YAML::Mark& mark, const std::string& why) {
  return make_error(ErrorKind::invalid_argument, located(file, mark) + ": " + why);
}

// A field of a remote's entry as text: absent and null are empty (as lxc reads them); anything
// but a scalar is a problem.
bool text_field(const YAML::Node& entry, const char* key, std::string& into, std::string& problem) {
  const YAML::Node value = entry[key];
  if (!value || value.IsNull()) return true;
  if (!value.IsScalar()) {
    problem = std::string{"its "} + key + " is not text";
    return false;
  }
  into = value.Scalar();
  return true;
}

LxcRemote read_remote(const YAML::Node& key, const YAML::Node& entry) {
  LxcRemote r;
  r.name = key.IsScalar() ? key.Scalar() : std::string{};
  if (!key.IsScalar()) {
    r.problem = "its name is not text";
    return r;
  }
  if (!entry.IsMap()) {
    r.problem = "its entry is not a map of settings";
    return r;
  }
  if (!text_field(entry, "addr", r.addr, r.problem) || !text_field(entry, "protocol", r.protocol, r.problem) ||
      !text_field(entry, "auth_type", r.auth_type, r.problem) || !text_field(entry, "project", r.project, r.problem)) {
    return r;
  }
  if (r.addr.empty()) {
    r.problem = "it has no addr";
    return r;
  }
  if (const YAML::Node pub = entry["public"]; pub && !pub.IsNull()) {
    bool value = false;
    if (!pub.IsScalar() || !YAML::convert<bool>::decode(pub, value)) {
      r.problem = "its public is not true or false";
      return r;
    }
    r.is_public = value;
  }
  return r;
}

Error read_error(const std::filesystem::path& path, const util::FileRead& read, std::string_view what) {
  switch (read.problem) {
    case util::ReadProblem::none: break;
    case util::ReadProblem::not_found: return make_error(ErrorKind::not_found, path.string() + ": no such file");
    case util::ReadProblem::is_directory:
      return make_error(ErrorKind::io, path.string() + " is a directory, not " + std::string{what});
    case util::ReadProblem::cannot_open:
    case util::ReadProblem::cannot_read:
      return make_error(ErrorKind::io, "cannot read " + path.string() + ": " + read.os_error);
    case util::ReadProblem::too_large:
      return make_error(ErrorKind::io, path.string() + " is larger than 1 MiB: it is not " + std::string{what});
  }
  return make_error(ErrorKind::io, "cannot read " + path.string());
}

// lxc's client certificate and key, checked as a pair.
struct LxcIdentity {
  std::string certificate;
  std::string key;
  std::string fingerprint;
};

Result<LxcIdentity> read_lxc_identity(const std::filesystem::path& from) {
  LxcIdentity id;
  const auto cert_path = from / "client.crt";
  const auto key_path = from / "client.key";
  auto cert = util::read_file_bounded(cert_path, max_pem_bytes);
  if (cert.problem != util::ReadProblem::none) return read_error(cert_path, cert, "a certificate");
  auto key = util::read_file_bounded(key_path, max_pem_bytes);
  if (key.problem != util::ReadProblem::none) return read_error(key_path, key, "a private key");
  if (auto pair = check_key_pair(cert.bytes, key.bytes); !pair) {
    return make_error(ErrorKind::invalid_argument,
                      "lxc's client certificate in " + from.string() + " cannot be used: " + pair.error().message);
  }
  auto fp = fingerprint_of_pem(cert.bytes);
  if (!fp) return make_error(fp.error().kind, cert_path.string() + ": " + fp.error().message);
  id.certificate = std::move(cert.bytes);
  id.key = std::move(key.bytes);
  id.fingerprint = *fp;
  return id;
}

// Keeps berth's own pair as client.crt.old / client.key.old, then writes lxc's: the key first, so
// that a certificate on disk always has its key next to it.
Result<void> install_identity(const ClientConfig& config, const LxcIdentity& id, bool keep_previous) {
  if (auto made = detail::ensure_private_dir(config.config_dir); !made) return made;
  if (keep_previous) {
    for (const auto& path : {config.client_key(), config.client_certificate()}) {
      auto old = detail::read_file(path);
      if (!old) return old.error();
      if (auto w = detail::write_file_atomic(path.string() + ".old", *old, 0600); !w) return w;
    }
  }
  if (auto w = detail::write_file_atomic(config.client_key(), id.key, 0600); !w) return w;
  return detail::write_file_atomic(config.client_certificate(), id.certificate, 0644);
}

}  // namespace

Result<LxcConfig> parse_lxc_config(std::string_view text, const std::string& file) {
  YAML::Node loaded;
  try {
    loaded = YAML::Load(std::string{text});
  } catch (const YAML::Exception& e) {
    return bad_config(file, e.mark, "malformed YAML: " + e.msg);
  }
  const YAML::Node& root = loaded;  // read only: a non-const operator[] may change the node
  LxcConfig out;
  try {
    if (!root || root.IsNull()) return out;  // an empty file: no remotes
    if (!root.IsMap()) return bad_config(file, root.Mark(), "not a map of settings (default-remote, remotes, ...)");
    if (const YAML::Node d = root["default-remote"]; d && d.IsScalar()) out.default_remote = d.Scalar();
    const YAML::Node remotes = root["remotes"];
    if (!remotes || remotes.IsNull()) return out;
    if (!remotes.IsMap()) return bad_config(file, remotes.Mark(), "remotes is not a map of remotes by name");
    std::map<std::string, LxcRemote> by_name;
    for (const auto& kv : remotes) {
      LxcRemote r = read_remote(kv.first, kv.second);
      if (const auto it = by_name.find(r.name); it != by_name.end()) {
        it->second.problem = "it is defined twice";
        continue;
      }
      by_name.emplace(r.name, std::move(r));
    }
    for (auto& [name, r] : by_name) out.remotes.push_back(std::move(r));
  } catch (const YAML::Exception& e) {
    // Reading a node of an unexpected kind; the checks above should leave none.
    return bad_config(file, e.mark, "cannot read: " + e.msg);
  }
  return out;
}

std::filesystem::path default_lxc_config_dir() {
  if (const char* env = std::getenv("LXD_CONF"); env != nullptr && *env != '\0') return env;
  const char* home_env = std::getenv("HOME");
  const std::filesystem::path home = home_env != nullptr && *home_env != '\0' ? home_env : "/root";
  const auto plain = home / ".config" / "lxc";
  const auto snap = home / "snap" / "lxd" / "common" / "config";
  std::error_code ec;
  if (!std::filesystem::exists(plain / "config.yml", ec) && std::filesystem::exists(snap / "config.yml", ec)) {
    return snap;
  }
  return plain;
}

std::vector<std::filesystem::path> default_lxd_sockets() {
  if (const char* env = std::getenv("LXD_DIR"); env != nullptr && *env != '\0') {
    return {std::filesystem::path{env} / "unix.socket"};
  }
  return {"/var/lib/lxd/unix.socket", "/var/snap/lxd/common/lxd/unix.socket"};
}

bool LxcImportReport::failed() const {
  return std::any_of(remotes.begin(), remotes.end(),
                     [](const LxcImportedRemote& r) { return r.outcome == LxcImportOutcome::failed; });
}

std::string_view to_string(LxcImportOutcome outcome) {
  switch (outcome) {
    case LxcImportOutcome::imported: return "imported";
    case LxcImportOutcome::replaced: return "replaced";
    case LxcImportOutcome::unchanged: return "unchanged";
    case LxcImportOutcome::skipped: return "skipped";
    case LxcImportOutcome::failed: return "failed";
  }
  return "?";
}

Result<LxcImportReport> import_lxc(const ClientConfig& config, const LxcImportOptions& options) {
  LxcImportReport report;
  report.from = options.from;
  const auto config_file = options.from / "config.yml";
  const auto read = util::read_file_bounded(config_file, max_config_bytes);
  if (read.problem == util::ReadProblem::not_found) {
    return make_error(ErrorKind::not_found, "no lxc configuration in " + options.from.string() +
                                                " (no config.yml): name lxc's config dir with --from DIR or LXD_CONF");
  }
  if (read.problem != util::ReadProblem::none) return read_error(config_file, read, "lxc's config.yml");
  auto lxc = parse_lxc_config(read.bytes, config_file.string());
  if (!lxc) return lxc.error();

  auto store = RemoteStore::load(config);
  if (!store) return store.error();

  std::error_code ec;
  const bool lxc_has_identity = std::filesystem::exists(options.from / "client.crt", ec) &&
                                std::filesystem::exists(options.from / "client.key", ec);

  // Decide every remote first; nothing is written before the certificate question is settled.
  struct Pending {
    std::size_t index;  // into report.remotes
    StoredRemote remote;
    std::string pem;  // the server certificate to pin; empty for a unix socket
  };
  std::vector<Pending> pending;
  for (const auto& r : lxc->remotes) {
    LxcImportedRemote out;
    out.name = r.name;
    const auto skip = [&](std::string why) {
      out.outcome = LxcImportOutcome::skipped;
      out.reason = std::move(why);
      report.remotes.push_back(out);
    };
    if (!r.problem.empty()) {
      skip("config.yml: " + r.problem);
      continue;
    }
    if (auto p = config::remote_name_problem(r.name)) {
      skip("berth cannot use this name: it " + *p);
      continue;
    }
    if (r.protocol == "simplestreams") {
      skip("an image server (protocol simplestreams), not an LXD host");
      continue;
    }
    if (!r.protocol.empty() && r.protocol != "lxd") {
      skip("protocol '" + r.protocol + "' is not LXD's");
      continue;
    }
    if (r.is_public) {
      skip("a public image server (public: true), not an LXD host berth manages");
      continue;
    }
    if (!r.auth_type.empty() && r.auth_type != "tls") {
      skip("it authenticates with " + r.auth_type + "; berth uses TLS client certificates only");
      continue;
    }
    if (!r.project.empty() && r.project != "default") {
      skip("it works in project '" + r.project + "'; berth manages the default project only");
      continue;
    }

    std::string url_text = r.addr;
    if (r.addr.starts_with("unix:")) {
      // lxc's forms: unix:///path, unix:/path, and unix:// for the local daemon's default socket.
      std::string path = r.addr.substr(5);
      if (path.starts_with("//")) path.erase(0, 2);
      if (path.empty()) {
        std::string tried;
        for (const auto& candidate : options.default_sockets) {
          if (std::filesystem::exists(candidate, ec)) {
            path = candidate.string();
            break;
          }
          tried += (tried.empty() ? "" : ", ") + candidate.string();
        }
        if (path.empty()) {
          skip("unix:// is the local LXD's socket, and there is none (" + (tried.empty() ? "no path" : tried) +
               "); set LXD_DIR to the daemon's directory to import it");
          continue;
        }
      }
      url_text = "unix://" + path;
    }
    const auto url = config::parse_remote_url(url_text);
    if (!url.url) {
      skip("its address cannot be used: " + url.problem);
      continue;
    }
    out.url = url.url->to_string();
    StoredRemote remote{r.name, out.url, ""};
    std::string pem;
    if (url.url->scheme == config::UrlScheme::https) {
      if (!lxc_has_identity) {
        skip("lxc has no client certificate (client.crt and client.key) to present to it");
        continue;
      }
      const auto cert_path = options.from / "servercerts" / (r.name + ".crt");
      auto cert = util::read_file_bounded(cert_path, max_pem_bytes);
      if (cert.problem == util::ReadProblem::not_found) {
        skip("lxc pinned no certificate for it (no servercerts/" + r.name +
             ".crt: lxc trusts it through a certificate authority, berth only by a pinned certificate); add it "
             "with `berth remote add " +
             r.name + " " + out.url + "`");
        continue;
      }
      if (cert.problem != util::ReadProblem::none) {
        skip(read_error(cert_path, cert, "a certificate").message);
        continue;
      }
      auto fp = fingerprint_of_pem(cert.bytes);
      if (!fp) {
        skip("servercerts/" + r.name + ".crt: " + fp.error().message);
        continue;
      }
      remote.fingerprint = *fp;
      out.fingerprint = *fp;
      pem = std::move(cert.bytes);
    }

    if (const auto existing = store->find(r.name)) {
      if (*existing == remote) {
        out.outcome = LxcImportOutcome::unchanged;
        report.remotes.push_back(out);
        continue;
      }
      if (!options.force) {
        out.outcome = LxcImportOutcome::failed;
        out.reason = "berth already has a remote " + r.name + " (" + existing->url +
                     (existing->fingerprint.empty() ? "" : ", certificate sha256:" + existing->fingerprint) +
                     "); pass --force to replace it with lxc's";
        report.remotes.push_back(out);
        continue;
      }
      out.outcome = LxcImportOutcome::replaced;
    } else {
      out.outcome = LxcImportOutcome::imported;
    }
    pending.push_back({report.remotes.size(), remote, std::move(pem)});
    report.remotes.push_back(out);
  }

  // The client certificate: only an https remote needs it.
  const bool needs_identity =
      std::any_of(pending.begin(), pending.end(), [](const Pending& p) { return !p.remote.fingerprint.empty(); });
  std::optional<LxcIdentity> identity;
  if (needs_identity) {
    auto id = read_lxc_identity(options.from);
    if (!id) return id.error();
    report.certificate_fingerprint = id->fingerprint;
    auto mine = load_client_identity(config);
    if (mine) {
      if (mine->fingerprint == id->fingerprint) {
        report.certificate = LxcCertificateOutcome::same;
      } else if (!options.replace_certificate) {
        return make_error(
            ErrorKind::conflict,
            "berth already has a client certificate in " + config.config_dir.string() +
                " (sha256:" + mine->fingerprint + "), and it is not lxc's (sha256:" + id->fingerprint +
                "): the hosts lxc is trusted by do not know berth's. Nothing was imported. Pass "
                "--replace-certificate to use lxc's instead (berth's is kept as client.crt.old and client.key.old; "
                "hosts that trust only berth's then need `berth remote add` again), or import into another "
                "--config-dir");
      } else {
        report.certificate = LxcCertificateOutcome::replaced;
        report.previous_fingerprint = mine->fingerprint;
      }
    } else if (mine.error().kind != ErrorKind::not_found) {
      return mine.error();
    } else {
      report.certificate = LxcCertificateOutcome::copied;
    }
    identity = std::move(*id);
  } else if (std::any_of(report.remotes.begin(), report.remotes.end(), [](const LxcImportedRemote& r) {
               return r.outcome == LxcImportOutcome::unchanged && !r.fingerprint.empty();
             })) {
    // Nothing to write, but say whether berth presents lxc's certificate to the hosts it shares.
    auto lxc_fp = fingerprint_of_pem_file(options.from / "client.crt");
    auto mine = load_client_identity(config);
    if (lxc_fp && mine && *lxc_fp == mine->fingerprint) {
      report.certificate = LxcCertificateOutcome::same;
      report.certificate_fingerprint = *lxc_fp;
    }
  }
  if (options.dry_run) return report;

  if (report.certificate == LxcCertificateOutcome::copied || report.certificate == LxcCertificateOutcome::replaced) {
    if (auto installed = install_identity(config, *identity, report.certificate == LxcCertificateOutcome::replaced);
        !installed) {
      return installed.error();
    }
  }
  for (const auto& p : pending) {
    if (auto stored = store->put(p.remote, p.pem); !stored) {
      auto& out = report.remotes[p.index];
      out.outcome = LxcImportOutcome::failed;
      out.reason = stored.error().message;
    }
  }
  return report;
}

}  // namespace berth::lxd
