#include "daemon/images/files.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace berth::daemon::images {

Fd::~Fd() {
  if (fd_ >= 0) ::close(fd_);
}

Fd& Fd::operator=(Fd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.release();
  }
  return *this;
}

lxd::Error io_error(const std::string& what, const std::filesystem::path& path, int err) {
  return lxd::make_error(lxd::ErrorKind::io, what + " " + path.string() + ": " + std::strerror(err));
}

std::filesystem::path unique_name(const std::filesystem::path& dir, const std::string& prefix) {
  std::array<unsigned char, 8> bytes{};
  if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) throw std::runtime_error("no random bytes");
  static constexpr char kHex[] = "0123456789abcdef";
  std::string name = prefix;
  for (const unsigned char b : bytes) {
    name += kHex[b >> 4];
    name += kHex[b & 0xf];
  }
  return dir / name;
}

Result<CreatedFile> create_unique_file(const std::filesystem::path& dir, const std::string& prefix) {
  for (int attempt = 0; attempt < 8; ++attempt) {
    auto path = unique_name(dir, prefix);
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) return CreatedFile{std::move(path), Fd{fd}};
    if (errno != EEXIST) return io_error("cannot create", path, errno);
  }
  return lxd::make_error(lxd::ErrorKind::io, "cannot find a free file name in " + dir.string());
}

Result<void> write_all(int fd, std::span<const char> data, const std::filesystem::path& path) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return io_error("cannot write", path, errno);
    data = data.subspan(static_cast<std::size_t>(n));
  }
  return {};
}

void Sha256::Free::operator()(evp_md_ctx_st* ctx) const {
  EVP_MD_CTX_free(ctx);
}

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  if (!ctx_ || EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) != 1) throw std::runtime_error("EVP sha256 init");
}

void Sha256::update(std::span<const char> data) {
  if (EVP_DigestUpdate(ctx_.get(), data.data(), data.size()) != 1) throw std::runtime_error("EVP sha256 update");
}

std::string Sha256::hex() {
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int length = 0;
  if (EVP_DigestFinal_ex(ctx_.get(), digest.data(), &length) != 1) throw std::runtime_error("EVP sha256 final");
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < length; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 0xf];
  }
  return out;
}

Result<std::string> read_prefix(const std::filesystem::path& path, std::size_t n) {
  Fd fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (!fd.valid()) return io_error("cannot open", path, errno);
  std::string out(n, '\0');
  std::size_t got = 0;
  while (got < n) {
    const ssize_t r = ::read(fd.get(), out.data() + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return io_error("cannot read", path, errno);
    if (r == 0) break;
    got += static_cast<std::size_t>(r);
  }
  out.resize(got);
  return out;
}

}  // namespace berth::daemon::images
