#include "providers/lxd/fs_util.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

namespace berth::lxd::detail {

namespace {

std::string errno_text(int err) {
  return std::strerror(err);
}

Error io_error(const std::filesystem::path& path, std::string_view what, int err) {
  return make_error(ErrorKind::io, std::string{what} + " " + path.string() + ": " + errno_text(err));
}

std::string random_suffix() {
  std::random_device rd;
  std::uniform_int_distribution<unsigned> dist(0, 0xffffff);
  char buf[16];
  std::snprintf(buf, sizeof buf, "%06x", dist(rd));
  return buf;
}

}  // namespace

Result<std::string> read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return io_error(path, "cannot read", errno);
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return io_error(path, "cannot read", errno);
  return ss.str();
}

Result<void> write_file_atomic(const std::filesystem::path& path, std::string_view content, mode_t mode) {
  std::string tmp_name = ".";  // appended step by step: GCC 12 misreports "." + std::string (-Wrestrict)
  tmp_name += path.filename().string();
  tmp_name += ".tmp-";
  tmp_name += random_suffix();
  const auto tmp = path.parent_path() / tmp_name;
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return io_error(tmp, "cannot create", errno);
  // The umask may have removed bits the caller asked for; it can never add any.
  ::fchmod(fd, mode);
  const char* p = content.data();
  std::size_t left = content.size();
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return io_error(tmp, "cannot write", err);
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return io_error(tmp, "cannot write", err);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return io_error(path, "cannot replace", err);
  }
  return {};
}

Result<void> ensure_private_dir(const std::filesystem::path& dir) {
  std::error_code ec;
  if (std::filesystem::is_directory(dir, ec)) return {};
  if (!dir.parent_path().empty() && dir.parent_path() != dir) {
    std::filesystem::create_directories(dir.parent_path(), ec);
    if (ec) return make_error(ErrorKind::io, "cannot create " + dir.parent_path().string() + ": " + ec.message());
  }
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return io_error(dir, "cannot create", errno);
  if (!std::filesystem::is_directory(dir, ec)) return make_error(ErrorKind::io, dir.string() + " is not a directory");
  return {};
}

}  // namespace berth::lxd::detail
