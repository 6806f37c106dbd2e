#include "daemon/instances/rootfs_files.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <system_error>

#include "daemon/instances/unique_fd.hpp"

namespace berth::daemon {
namespace {

using lxd::ErrorKind;
using lxd::make_error;

lxd::Error failure(const std::string& path, const std::string& what, int err) {
  const auto kind = err == ENOENT ? ErrorKind::not_found
                    : (err == EEXIST || err == ENOTEMPTY || err == EISDIR || err == ENOTDIR || err == ELOOP ||
                       err == EINVAL || err == ENAMETOOLONG)
                        ? ErrorKind::invalid_argument
                        : ErrorKind::io;
  const auto message = std::error_code(err, std::generic_category()).message();
  return make_error(kind, path + ": " + what + ": " + message);
}

// `path` under the root's descriptor; symlinks and ".." resolved as inside the container.
int open_in(int root, const std::string& path, std::uint64_t flags, std::uint64_t mode = 0) {
  open_how how{};
  how.flags = flags | O_CLOEXEC;
  how.mode = mode;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  const std::string relative = path.empty() || path == "/" ? "." : path;
  for (;;) {
    const long fd = ::syscall(SYS_openat2, root, relative.c_str(), &how, sizeof how);
    if (fd >= 0 || errno != EAGAIN) return static_cast<int>(fd);  // EAGAIN: a rename raced; again
  }
}

// From the container's /: lxc sends "root/f1" for /root/f1.
std::string from_root(const std::string& path) {
  return !path.empty() && path.front() == '/' ? path : "/" + path;
}

lxd::Result<void> check_path(const std::string& path) {
  if (path.empty()) return make_error(ErrorKind::invalid_argument, "the path is empty");
  if (path.find('\0') != std::string::npos) return make_error(ErrorKind::invalid_argument, "the path holds a NUL");
  return {};
}

// The parent directory's descriptor and the last name, for what makes or removes `path`.
struct Parent {
  int fd = -1;
  std::string name;
};
lxd::Result<Parent> open_parent(int root, const std::string& path) {
  std::string trimmed = path;
  while (trimmed.size() > 1 && trimmed.back() == '/') trimmed.pop_back();
  const auto slash = trimmed.rfind('/');
  Parent p;
  p.name = trimmed.substr(slash + 1);
  if (p.name.empty() || p.name == "." || p.name == "..") {
    return make_error(ErrorKind::invalid_argument, path + ": names no file");
  }
  const std::string dir = slash == 0 ? "/" : trimmed.substr(0, slash);
  p.fd = open_in(root, dir, O_PATH | O_DIRECTORY);
  if (p.fd < 0) return failure(dir, "open", errno);
  return p;
}

std::string readlink_of(int fd) {
  std::array<char, 4096> buf{};
  const ssize_t n = ::readlinkat(fd, "", buf.data(), buf.size());
  return n > 0 ? std::string(buf.data(), static_cast<std::size_t>(n)) : std::string{};
}

lxd::Result<void> write_all(int fd, const std::string& path, const std::string& bytes) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return failure(path, "write", errno);
    done += static_cast<std::size_t>(n);
  }
  return {};
}

// The host ids for what is made: the given ones, or the container's root.
lxd::Result<std::pair<uid_t, gid_t>> owner_for(const RootfsWrite& what, const IdMappings& shift,
                                               const std::string& path) {
  const auto uid = shift.uid(what.uid >= 0 ? what.uid : 0);
  const auto gid = shift.gid(what.gid >= 0 ? what.gid : 0);
  if (!uid || !gid) {
    return make_error(ErrorKind::invalid_argument, path + ": uid " + std::to_string(what.uid) + " or gid " +
                                                       std::to_string(what.gid) + " is outside the container's id map");
  }
  return std::pair{static_cast<uid_t>(*uid), static_cast<gid_t>(*gid)};
}

}  // namespace

lxd::Result<RootfsEntry> read_in_root(const std::filesystem::path& root_dir, const std::string& raw_path,
                                      const IdMappings& unshift, std::uintmax_t max_size) {
  if (auto ok = check_path(raw_path); !ok) return ok.error();
  const std::string path = from_root(raw_path);
  UniqueFd root(::open(root_dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (root.get() < 0) return failure(root_dir.string(), "open the root", errno);
  UniqueFd at(open_in(root.get(), path, O_PATH | O_NOFOLLOW));
  if (at.get() < 0) return failure(path, "open", errno);
  struct stat st {};
  if (::fstat(at.get(), &st) != 0) return failure(path, "stat", errno);
  RootfsEntry e;
  e.uid = unshift.uid(st.st_uid).value_or(-1);
  e.gid = unshift.gid(st.st_gid).value_or(-1);
  e.mode = st.st_mode & 0777;  // the permission bits, as LXD's Perm()
  e.modified = st.st_mtim.tv_sec;
  if (S_ISLNK(st.st_mode)) {
    e.type = "symlink";
    e.content = readlink_of(at.get());
    return e;
  }
  if (S_ISDIR(st.st_mode)) {
    e.type = "directory";
    UniqueFd dir(open_in(root.get(), path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
    if (dir.get() < 0) return failure(path, "open", errno);
    DIR* d = ::fdopendir(::dup(dir.get()));
    if (d == nullptr) return failure(path, "list", errno);
    while (const dirent* entry = ::readdir(d)) {
      const std::string name = entry->d_name;
      if (name != "." && name != "..") e.entries.push_back(name);
    }
    ::closedir(d);
    std::sort(e.entries.begin(), e.entries.end());
    return e;
  }
  if (!S_ISREG(st.st_mode)) {
    return make_error(ErrorKind::invalid_argument, path + ": not a regular file, a directory or a symlink");
  }
  e.type = "file";
  if (static_cast<std::uintmax_t>(st.st_size) > max_size) {
    return make_error(ErrorKind::invalid_argument,
                      path + ": larger than " + std::to_string(max_size >> 20) + " MiB, more than berthd serves");
  }
  UniqueFd file(open_in(root.get(), path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK));
  if (file.get() < 0) return failure(path, "open", errno);
  struct stat opened {};
  if (::fstat(file.get(), &opened) != 0) return failure(path, "stat", errno);
  if (opened.st_ino != st.st_ino || opened.st_dev != st.st_dev || !S_ISREG(opened.st_mode)) {
    return make_error(ErrorKind::conflict, path + ": changed while read; try again");
  }
  std::array<char, 65536> buf{};
  for (;;) {
    const ssize_t n = ::read(file.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return failure(path, "read", errno);
    if (n == 0) break;
    e.content.append(buf.data(), static_cast<std::size_t>(n));
    if (e.content.size() > max_size) return make_error(ErrorKind::invalid_argument, path + ": grew while read");
  }
  return e;
}

lxd::Result<void> write_in_root(const std::filesystem::path& root_dir, const std::string& raw_path,
                                const RootfsWrite& what, const IdMappings& shift) {
  if (auto ok = check_path(raw_path); !ok) return ok.error();
  const std::string path = from_root(raw_path);
  if (what.write != "overwrite" && what.write != "append") {
    return make_error(ErrorKind::invalid_argument, "Bad file write mode: " + what.write);
  }
  if (what.type != "file" && what.type != "directory" && what.type != "symlink") {
    return make_error(ErrorKind::invalid_argument, "Bad file type: " + what.type);
  }
  UniqueFd root(::open(root_dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (root.get() < 0) return failure(root_dir.string(), "open the root", errno);
  // As LXD's Stat: a file or directory behind a symlink counts as there; a symlink is itself.
  UniqueFd existing(open_in(root.get(), path, what.type == "symlink" ? O_PATH | O_NOFOLLOW : O_PATH));
  const bool exists = existing.get() >= 0;
  auto owner = owner_for(what, shift, path);
  if (!owner) return owner.error();

  if (what.type == "file") {
    std::uint64_t flags = O_WRONLY | O_NONBLOCK;  // O_NONBLOCK: a fifo must not hang the call
    if (what.write == "overwrite") flags |= O_CREAT | O_TRUNC;
    if (what.write == "append") flags |= O_APPEND;
    // openat2 takes a mode only with O_CREAT.
    UniqueFd file(open_in(root.get(), path, flags, (flags & O_CREAT) != 0 ? 0600 : 0));
    if (file.get() < 0) return failure(path, "open", errno);
    struct stat st {};
    if (::fstat(file.get(), &st) != 0) return failure(path, "stat", errno);
    if (!S_ISREG(st.st_mode)) return make_error(ErrorKind::invalid_argument, path + ": not a regular file");
    (void)::fcntl(file.get(), F_SETFL, ::fcntl(file.get(), F_GETFL) & ~O_NONBLOCK);
    if (!exists) {
      // Made now: the container's root, or the given owner, and 0644 unless told.
      if (::fchown(file.get(), owner->first, owner->second) != 0) return failure(path, "chown", errno);
      if (::fchmod(file.get(), static_cast<mode_t>(what.mode >= 0 ? what.mode & 07777 : 0644)) != 0) {
        return failure(path, "chmod", errno);
      }
    }
    return write_all(file.get(), path, what.content);
  }

  auto parent = open_parent(root.get(), path);
  if (!parent) return parent.error();
  UniqueFd parent_fd(parent->fd);
  if (what.type == "directory") {
    if (exists) return {};
    const auto mode = static_cast<mode_t>(what.mode >= 0 ? what.mode & 07777 : 0750);
    if (::mkdirat(parent_fd.get(), parent->name.c_str(), mode) != 0) return failure(path, "mkdir", errno);
    // Owner and mode through a descriptor of what was made: the container may swap the name for a
    // symlink meanwhile, and a path would follow it out of the root.
    UniqueFd made(::openat(parent_fd.get(), parent->name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (made.get() < 0) return failure(path, "open", errno);
    if (::fchown(made.get(), owner->first, owner->second) != 0) return failure(path, "chown", errno);
    if (::fchmod(made.get(), mode) != 0) return failure(path, "chmod", errno);
    return {};
  }
  // A symlink: nothing to do when it is there already.
  if (exists && readlink_of(existing.get()) == what.content) return {};
  if (what.content.empty() || what.content.find('\0') != std::string::npos) {
    return make_error(ErrorKind::invalid_argument, path + ": a symlink needs a target");
  }
  if (::symlinkat(what.content.c_str(), parent_fd.get(), parent->name.c_str()) != 0) {
    return failure(path, "symlink", errno);
  }
  if (::fchownat(parent_fd.get(), parent->name.c_str(), owner->first, owner->second, AT_SYMLINK_NOFOLLOW) != 0) {
    return failure(path, "chown", errno);
  }
  return {};
}

lxd::Result<void> remove_in_root(const std::filesystem::path& root_dir, const std::string& raw_path) {
  if (auto ok = check_path(raw_path); !ok) return ok.error();
  const std::string path = from_root(raw_path);
  UniqueFd root(::open(root_dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (root.get() < 0) return failure(root_dir.string(), "open the root", errno);
  auto parent = open_parent(root.get(), path);
  if (!parent) return parent.error();
  UniqueFd parent_fd(parent->fd);
  struct stat st {};
  if (::fstatat(parent_fd.get(), parent->name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return failure(path, "stat", errno);
  }
  const int flags = S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0;
  if (::unlinkat(parent_fd.get(), parent->name.c_str(), flags) != 0) return failure(path, "remove", errno);
  return {};
}

}  // namespace berth::daemon
