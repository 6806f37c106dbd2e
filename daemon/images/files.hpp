#pragma once
// Small file helpers for the image store (internal to daemon/images): an owned file descriptor,
// fresh unique file names, and a sha256 (OpenSSL EVP) fed in pieces, so an image of several GiB is
// hashed as it is read, never held in memory.
//
// Thread contract: none shared; each object belongs to the thread that made it.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>

#include "providers/lxd/result.hpp"

struct evp_md_ctx_st;

namespace berth::daemon::images {

using lxd::Result;

// An owned file descriptor, closed on destruction.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd();
  Fd(Fd&& other) noexcept : fd_(other.release()) {}
  Fd& operator=(Fd&& other) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;

  [[nodiscard]] int get() const { return fd_; }
  [[nodiscard]] bool valid() const { return fd_ >= 0; }
  int release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_ = -1;
};

// The prefix of uploads in progress (temp_path(), split_multipart()): ImageStore::open() removes
// files named so, which a crash left behind. No fingerprint starts with it.
inline constexpr const char* kUploadPrefix = ".upload-";

// `dir`/`prefix`<16 random hex digits>: a name no one else is using now.
[[nodiscard]] std::filesystem::path unique_name(const std::filesystem::path& dir, const std::string& prefix);

// Creates `dir`/`prefix`<random> exclusively (mode 0600) and returns it open for writing.
struct CreatedFile {
  std::filesystem::path path;
  Fd fd;
};
[[nodiscard]] Result<CreatedFile> create_unique_file(const std::filesystem::path& dir, const std::string& prefix);

// Writes all of `data` to `fd`; `path` only names the file in the error.
[[nodiscard]] Result<void> write_all(int fd, std::span<const char> data, const std::filesystem::path& path);

// sha256 fed in pieces; hex() is lowercase, as LXD prints fingerprints.
class Sha256 {
 public:
  Sha256();
  void update(std::span<const char> data);
  [[nodiscard]] std::string hex();

 private:
  struct Free {
    void operator()(evp_md_ctx_st* ctx) const;
  };
  std::unique_ptr<evp_md_ctx_st, Free> ctx_;
};

// The first `n` bytes of a file (fewer when it is shorter).
[[nodiscard]] Result<std::string> read_prefix(const std::filesystem::path& path, std::size_t n);

// An io error naming `what` and `path`, with errno's text.
[[nodiscard]] lxd::Error io_error(const std::string& what, const std::filesystem::path& path, int err);

}  // namespace berth::daemon::images
