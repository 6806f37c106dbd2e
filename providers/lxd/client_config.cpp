#include "providers/lxd/client_config.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>
#include <cerrno>
#include <cstdlib>
#include <cstring>

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

Result<ClientIdentity> load_client_identity(const ClientConfig& config) {
  std::error_code ec;
  if (!std::filesystem::exists(config.client_certificate(), ec) || !std::filesystem::exists(config.client_key(), ec)) {
    return make_error(ErrorKind::not_found, "no client certificate in " + config.config_dir.string());
  }
  auto fp = fingerprint_of_pem_file(config.client_certificate());
  if (!fp) return fp.error();
  return ClientIdentity{config.client_certificate(), config.client_key(), *fp};
}

Result<ClientIdentity> ensure_client_identity(const ClientConfig& config) {
  if (auto existing = load_client_identity(config); existing || existing.error().kind != ErrorKind::not_found) {
    return existing;
  }
  if (auto made = detail::ensure_private_dir(config.config_dir); !made) return made.error();
  DirLock lock(config.config_dir);
  // Another process may have generated it while we waited for the lock.
  if (auto existing = load_client_identity(config); existing || existing.error().kind != ErrorKind::not_found) {
    return existing;
  }
  auto pair = generate_client_certificate({"berth@" + host_name(), 3650});
  if (!pair) return pair.error();
  // Key first: a certificate on disk always has its key next to it.
  if (auto w = detail::write_file_atomic(config.client_key(), pair->private_key, 0600); !w) return w.error();
  if (auto w = detail::write_file_atomic(config.client_certificate(), pair->certificate, 0644); !w) return w.error();
  return load_client_identity(config);
}

}  // namespace berth::lxd
