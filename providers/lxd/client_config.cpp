#include "providers/lxd/client_config.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "engine/util/read_file.hpp"
#include "providers/lxd/certificate.hpp"
#include "providers/lxd/fs_util.hpp"

namespace berth::lxd {

namespace {

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
  return buf;
}

// Holds an exclusive flock on <dir>/.lock for its lifetime.
class DirLock {
 public:
  explicit DirLock(const std::filesystem::path& dir) {
    const auto path = dir / ".lock";
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ >= 0) {
      while (::flock(fd_, LOCK_EX) != 0 && errno == EINTR) {
      }
    }
  }
  ~DirLock() {
    if (fd_ >= 0) ::close(fd_);  // closing releases the lock
  }
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace

std::filesystem::path default_config_dir() {
  if (const char* env = std::getenv("BERTH_CONFIG_DIR"); env != nullptr && *env != '\0') return env;
  if (const char* xdg = std::getenv("XDG_CONFIG_HOME"); xdg != nullptr && *xdg != '\0') {
    return std::filesystem::path{xdg} / "berth";
  }
  const char* home = std::getenv("HOME");
  return std::filesystem::path{home != nullptr && *home != '\0' ? home : "/root"} / ".config" / "berth";
}

namespace {

// A certificate chain with its key is a few KiB; this only stops a device or a huge file.
constexpr std::uint64_t max_pem_bytes = 1024 * 1024;

// A PEM file named by `flag`, whole. What was read of a file that is refused is wiped, as it may be
// part of a key.
Result<std::string> read_pem_file(const std::string& flag, const std::filesystem::path& path) {
  auto read = util::read_file_bounded(path, max_pem_bytes);
  if (read.problem == util::ReadProblem::none) return std::move(read.bytes);
  const SecretText discarded{std::move(read.bytes)};
  const std::string shown = flag + " " + path.string();
  switch (read.problem) {
    case util::ReadProblem::none: break;
    case util::ReadProblem::not_found: return make_error(ErrorKind::not_found, shown + ": no such file");
    case util::ReadProblem::is_directory:
      return make_error(ErrorKind::invalid_argument, shown + ": a directory, not a PEM file");
    case util::ReadProblem::cannot_open:
    case util::ReadProblem::cannot_read: return make_error(ErrorKind::io, shown + ": cannot read it: " + read.os_error);
    case util::ReadProblem::too_large:
      return make_error(ErrorKind::invalid_argument, shown + ": larger than 1 MiB, so not a PEM file");
  }
  return make_error(ErrorKind::io, shown + ": cannot read it");
}

bool looks_like_pem(std::string_view text) {
  return text.find("-----BEGIN ") != std::string_view::npos;
}

// A certificate and its key given together, checked as a pair. `source` names where they came
// from (flags and files, or variables); no message quotes either text.
Result<std::shared_ptr<const ClientIdentity>> checked_identity(std::string certificate_pem, SecretText key_pem,
                                                               std::string source, bool from_environment) {
  const std::string hint = from_environment ? " (the variables hold the PEM text itself, not file names; give files "
                                              "with --client-cert and --client-key)"
                                            : "";
  if (!looks_like_pem(certificate_pem)) {
    return make_error(ErrorKind::invalid_argument,
                      "client certificate from " + source + ": the certificate is not PEM" + hint);
  }
  if (!looks_like_pem(key_pem.view())) {
    return make_error(ErrorKind::invalid_argument,
                      "client certificate from " + source + ": the private key is not PEM" + hint);
  }
  if (auto pair = check_key_pair(certificate_pem, key_pem.view()); !pair) {
    return make_error(pair.error().kind, "client certificate from " + source + ": " + pair.error().message);
  }
  auto fingerprint = fingerprint_of_pem(certificate_pem);
  if (!fingerprint) {
    return make_error(fingerprint.error().kind,
                      "client certificate from " + source + ": " + fingerprint.error().message);
  }
  auto certificate = std::make_shared<ClientCertificate>();
  certificate->certificate_pem = std::move(certificate_pem);
  certificate->key_pem = std::move(key_pem);
  certificate->source = std::move(source);
  return std::make_shared<const ClientIdentity>(ClientIdentity{std::move(certificate), std::move(*fingerprint)});
}

}  // namespace

Result<std::shared_ptr<const ClientIdentity>> select_client_identity(const ClientIdentitySources& sources) {
  // 1. The flags.
  const bool certificate_flag = sources.certificate_file.has_value();
  if (certificate_flag != sources.key_file.has_value()) {
    return make_error(ErrorKind::invalid_argument,
                      std::string{certificate_flag ? "--client-cert is given without --client-key"
                                                   : "--client-key is given without --client-cert"} +
                          ": give both (the certificate and its private key) or neither");
  }
  if (certificate_flag) {
    auto certificate = read_pem_file("--client-cert", *sources.certificate_file);
    if (!certificate) return certificate.error();
    auto key = read_pem_file("--client-key", *sources.key_file);
    if (!key) return key.error();
    return checked_identity(
        std::move(*certificate), SecretText{std::move(*key)},
        "--client-cert " + sources.certificate_file->string() + " and --client-key " + sources.key_file->string(),
        /*from_environment=*/false);
  }
  // 2. The environment.
  const auto variable = [&](const char* name) -> std::optional<std::string_view> {
    const char* value = sources.getenv ? sources.getenv(name) : nullptr;
    if (value == nullptr || *value == '\0') return std::nullopt;
    return std::string_view{value};
  };
  const auto certificate = variable(client_certificate_env);
  const auto key = variable(client_key_env);
  if (certificate.has_value() != key.has_value()) {
    return make_error(ErrorKind::invalid_argument,
                      std::string{certificate ? client_certificate_env : client_key_env} + " is set but " +
                          (certificate ? client_key_env : client_certificate_env) +
                          " is not (or is empty): set both (the PEM text of the certificate and of its private "
                          "key) or neither");
  }
  if (certificate) {
    return checked_identity(std::string{*certificate}, SecretText{std::string{*key}},
                            std::string{client_certificate_env} + " and " + client_key_env,
                            /*from_environment=*/true);
  }
  // 3. The config dir, when a connection needs it.
  return std::shared_ptr<const ClientIdentity>{};
}

Result<ClientIdentity> load_client_identity(const ClientConfig& config) {
  if (config.identity) return *config.identity;
  std::error_code ec;
  if (!std::filesystem::exists(config.client_certificate(), ec) || !std::filesystem::exists(config.client_key(), ec)) {
    return make_error(ErrorKind::not_found, "no client certificate in " + config.config_dir.string());
  }
  auto certificate_pem = detail::read_file(config.client_certificate());
  if (!certificate_pem) return certificate_pem.error();
  auto fingerprint = fingerprint_of_pem(*certificate_pem);
  if (!fingerprint) {
    return make_error(fingerprint.error().kind,
                      config.client_certificate().string() + ": " + fingerprint.error().message);
  }
  auto key_pem = detail::read_file(config.client_key());
  if (!key_pem) return key_pem.error();
  auto certificate = std::make_shared<ClientCertificate>();
  certificate->certificate_pem = std::move(*certificate_pem);
  certificate->key_pem = SecretText{std::move(*key_pem)};
  certificate->source = "client.crt and client.key in " + config.config_dir.string();
  return ClientIdentity{std::move(certificate), std::move(*fingerprint)};
}

Result<ClientIdentity> ensure_client_identity(const ClientConfig& config) {
  if (config.identity) return *config.identity;
  if (auto existing = load_client_identity(config); existing || existing.error().kind != ErrorKind::not_found) {
    return existing;
  }
  if (auto made = detail::ensure_private_dir(config.config_dir); !made) return made.error();
  DirLock lock(config.config_dir);
  // Another process may have generated it while we waited for the lock.
  if (auto existing = load_client_identity(config); existing || existing.error().kind != ErrorKind::not_found) {
    return existing;
  }
  auto pair = generate_client_certificate({"berth@" + host_name(), 3650, {}, {}});
  if (!pair) return pair.error();
  // Key first: a certificate on disk always has its key next to it.
  if (auto w = detail::write_file_atomic(config.client_key(), pair->private_key, 0600); !w) return w.error();
  if (auto w = detail::write_file_atomic(config.client_certificate(), pair->certificate, 0644); !w) return w.error();
  return load_client_identity(config);
}

}  // namespace berth::lxd
