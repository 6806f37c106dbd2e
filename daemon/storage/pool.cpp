#include "daemon/storage/pool.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/btrfs.h>
#include <linux/btrfs_tree.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <condition_variable>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <system_error>
#include <thread>
#include <utility>

namespace berth::daemon {
namespace {

namespace fs = std::filesystem;
using lxd::Error;
using lxd::ErrorKind;
using lxd::make_error;

constexpr unsigned long btrfs_super_magic = 0x9123683EUL;
// The inode number of every btrfs subvolume's root directory (BTRFS_FIRST_FREE_OBJECTID).
constexpr ino_t btrfs_subvolume_ino = 256;
constexpr mode_t volume_mode = 0711;

extern "C" char** environ;  // NOLINT: POSIX

std::string errno_text(int err) {
  return std::error_code(err, std::generic_category()).message();
}

Error io_error(const std::string& what, int err) {
  return make_error(ErrorKind::io, what + ": " + errno_text(err));
}

// An owned file descriptor.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  [[nodiscard]] int get() const { return fd_; }
  [[nodiscard]] bool valid() const { return fd_ >= 0; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

// Runs `btrfs ARGS...` and waits; on failure the error carries the command and its stderr.
Result<void> run_btrfs(std::vector<std::string> args) {
  args.insert(args.begin(), "btrfs");
  std::array<int, 2> pipe_fds{-1, -1};
  if (::pipe2(pipe_fds.data(), O_CLOEXEC) != 0) return io_error("pipe", errno);
  Fd read_end(pipe_fds[0]);
  Fd write_end(pipe_fds[1]);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, write_end.get(), 2);
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int rc = ::posix_spawnp(&pid, "btrfs", &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  std::string command;
  for (const std::string& a : args) command += (command.empty() ? "" : " ") + a;
  if (rc != 0) return io_error(command + " (is btrfs-progs installed?)", rc);
  write_end.reset();  // the child holds its copy; EOF comes when it exits
  std::string err_text;
  std::array<char, 4096> buf{};
  for (;;) {
    const ssize_t n = ::read(read_end.get(), buf.data(), buf.size());
    if (n > 0) {
      if (err_text.size() < 16384) err_text.append(buf.data(), static_cast<std::size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return {};
  while (!err_text.empty() && (err_text.back() == '\n' || err_text.back() == ' ')) err_text.pop_back();
  return make_error(ErrorKind::io, command + " failed: " + (err_text.empty() ? "no message" : err_text));
}

// Instance and snapshot names become path components: no separators, no hidden or relative names
// (the pool uses dot-names for its own temporary entries).
Result<void> check_name(const char* what, const std::string& name) {
  if (name.empty() || name.size() > 255 || name.front() == '.' || name.find('/') != std::string::npos ||
      name.find('\0') != std::string::npos) {
    return make_error(ErrorKind::invalid_argument, std::string{what} + " name \"" + name +
                                                       "\" is not usable as a volume name (empty, "
                                                       "starts with '.', or contains '/')");
  }
  return {};
}

bool path_exists(const fs::path& p) {
  struct stat st {};
  return ::lstat(p.c_str(), &st) == 0;
}

// ---- the dir driver's copy ----

Result<void> copy_xattrs(const fs::path& src, const fs::path& dst) {
  ssize_t size = ::llistxattr(src.c_str(), nullptr, 0);
  if (size < 0) return errno == ENOTSUP ? Result<void>{} : io_error("list xattrs of " + src.string(), errno);
  if (size == 0) return {};
  std::string names(static_cast<std::size_t>(size), '\0');
  size = ::llistxattr(src.c_str(), names.data(), names.size());
  if (size < 0) return io_error("list xattrs of " + src.string(), errno);
  names.resize(static_cast<std::size_t>(size));
  std::string value;
  for (std::size_t pos = 0; pos < names.size();) {
    const std::string name = names.c_str() + pos;
    pos += name.size() + 1;
    const ssize_t vsize = ::lgetxattr(src.c_str(), name.c_str(), nullptr, 0);
    if (vsize < 0) return io_error("read xattr " + name + " of " + src.string(), errno);
    value.resize(static_cast<std::size_t>(vsize));
    const ssize_t got = ::lgetxattr(src.c_str(), name.c_str(), value.data(), value.size());
    if (got < 0) return io_error("read xattr " + name + " of " + src.string(), errno);
    if (::lsetxattr(dst.c_str(), name.c_str(), value.data(), static_cast<std::size_t>(got), 0) != 0 &&
        errno != ENOTSUP) {
      return io_error("set xattr " + name + " on " + dst.string(), errno);
    }
  }
  return {};
}

// Owner, then mode (chown clears setuid), then xattrs (chown clears security.capability), then
// times (every other change moves them).
Result<void> copy_metadata(const fs::path& src, const fs::path& dst, const struct stat& st) {
  if (::lchown(dst.c_str(), st.st_uid, st.st_gid) != 0) return io_error("chown " + dst.string(), errno);
  if (!S_ISLNK(st.st_mode) && ::chmod(dst.c_str(), st.st_mode & 07777) != 0) {
    return io_error("chmod " + dst.string(), errno);
  }
  if (auto r = copy_xattrs(src, dst); !r) return r;
  const std::array<struct timespec, 2> times{st.st_atim, st.st_mtim};
  if (::utimensat(AT_FDCWD, dst.c_str(), times.data(), AT_SYMLINK_NOFOLLOW) != 0) {
    return io_error("set times of " + dst.string(), errno);
  }
  return {};
}

Result<void> copy_file_data(const fs::path& src, const fs::path& dst) {
  Fd in(::open(src.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!in.valid()) return io_error("open " + src.string(), errno);
  Fd out(::open(dst.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!out.valid()) return io_error("create " + dst.string(), errno);
  bool use_copy_file_range = true;
  std::array<char, 1 << 16> buf{};
  for (;;) {
    ssize_t n = 0;
    if (use_copy_file_range) {
      n = ::copy_file_range(in.get(), nullptr, out.get(), nullptr, std::size_t{1} << 30, 0);
      if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP)) {
        use_copy_file_range = false;
        continue;
      }
    } else {
      n = ::read(in.get(), buf.data(), buf.size());
      for (ssize_t done = 0; n > 0 && done < n;) {
        const ssize_t w = ::write(out.get(), buf.data() + done, static_cast<std::size_t>(n - done));
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return io_error("write " + dst.string(), errno);
        done += w;
      }
    }
    if (n == 0) return {};
    if (n < 0 && errno != EINTR) return io_error("copy " + src.string() + " to " + dst.string(), errno);
  }
}

using InodeKey = std::pair<dev_t, ino_t>;

Result<void> copy_entry(const fs::path& src, const fs::path& dst, std::map<InodeKey, fs::path>& links) {
  struct stat st {};
  if (::lstat(src.c_str(), &st) != 0) return io_error("stat " + src.string(), errno);
  if (S_ISDIR(st.st_mode)) {
    if (::mkdir(dst.c_str(), 0700) != 0) return io_error("mkdir " + dst.string(), errno);
    std::error_code ec;
    for (fs::directory_iterator it(src, ec), end; !ec && it != end; it.increment(ec)) {
      if (auto r = copy_entry(it->path(), dst / it->path().filename(), links); !r) return r;
    }
    if (ec) return make_error(ErrorKind::io, "read directory " + src.string() + ": " + ec.message());
    return copy_metadata(src, dst, st);
  }
  if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
    const auto [it, fresh] = links.emplace(InodeKey{st.st_dev, st.st_ino}, dst);
    if (!fresh) {
      if (::link(it->second.c_str(), dst.c_str()) != 0) return io_error("link " + dst.string(), errno);
      return {};
    }
  }
  if (S_ISREG(st.st_mode)) {
    if (auto r = copy_file_data(src, dst); !r) return r;
  } else if (S_ISLNK(st.st_mode)) {
    std::string target(static_cast<std::size_t>(st.st_size) + 1, '\0');
    const ssize_t n = ::readlink(src.c_str(), target.data(), target.size());
    if (n < 0) return io_error("readlink " + src.string(), errno);
    target.resize(static_cast<std::size_t>(n));
    if (::symlink(target.c_str(), dst.c_str()) != 0) return io_error("symlink " + dst.string(), errno);
  } else if (::mknod(dst.c_str(), st.st_mode, st.st_rdev) != 0) {  // devices, fifos, sockets
    return io_error("mknod " + dst.string(), errno);
  }
  return copy_metadata(src, dst, st);
}

}  // namespace

Result<void> copy_tree(const fs::path& src, const fs::path& dst) {
  if (path_exists(dst)) return make_error(ErrorKind::conflict, "copy to " + dst.string() + ": it exists");
  std::map<InodeKey, fs::path> links;
  auto r = copy_entry(src, dst, links);
  if (!r) {
    std::error_code ec;
    fs::remove_all(dst, ec);
  }
  return r;
}

// Removes the entries under POOL/deleted, in name order, whenever woken and once at start.
// An entry it cannot remove (a file made immutable, an I/O error) is logged and tried again at the
// next wake.
class StoragePool::Reaper {
 public:
  explicit Reaper(const StoragePool& pool) : pool_(pool), thread_([this] { run(); }) {}
  ~Reaper() {
    {
      const std::lock_guard lock(mu_);
      stop_ = true;
    }
    changed_.notify_all();
    thread_.join();
  }
  Reaper(const Reaper&) = delete;
  Reaper& operator=(const Reaper&) = delete;

  void wake() {
    {
      const std::lock_guard lock(mu_);
      ++requested_;
    }
    changed_.notify_all();
  }

  // Held while an entry is being filled (discard), so that a sweep lists only complete entries.
  [[nodiscard]] std::unique_lock<std::mutex> hold_entries() { return std::unique_lock(entries_mu_); }

  void wait_idle() {
    std::unique_lock lock(mu_);
    const std::uint64_t target = requested_;
    changed_.wait(lock, [&] { return stop_ || done_ >= target; });
  }

 private:
  void run() {
    for (;;) {
      std::uint64_t sweep = 0;
      {
        std::unique_lock lock(mu_);
        changed_.wait(lock, [&] { return stop_ || requested_ > done_; });
        if (stop_) return;
        sweep = requested_;
      }
      const fs::path dir = pool_.path_ / "deleted";
      std::vector<fs::path> entries;
      {
        const std::lock_guard held(entries_mu_);
        std::error_code ec;
        for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) entries.push_back(it->path());
      }
      std::sort(entries.begin(), entries.end());
      for (const fs::path& entry : entries) {
        if (auto r = pool_.remove(entry, &stop_); !r) {
          if (stop_) return;
          spdlog::warn("{} (tried again after the next delete, or the next start)", r.error().message);
        }
      }
      {
        const std::lock_guard lock(mu_);
        done_ = sweep;
      }
      changed_.notify_all();
    }
  }

  const StoragePool& pool_;
  std::mutex entries_mu_;
  std::mutex mu_;
  std::condition_variable changed_;
  std::uint64_t requested_ = 1;  // the sweep at start
  std::uint64_t done_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;  // last: it starts once the rest is ready
};

StoragePool::StoragePool(std::string name, fs::path path, std::string driver)
    : name_(std::move(name)), path_(std::move(path)), driver_(std::move(driver)) {}

StoragePool::~StoragePool() = default;

Result<std::unique_ptr<StoragePool>> StoragePool::open(std::string name, fs::path path) {
  const std::string where = "storage pool " + name + " (" + path.string() + ")";
  if (!path.is_absolute()) return make_error(ErrorKind::invalid_argument, where + ": the path must be absolute");
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec) return make_error(ErrorKind::io, where + ": create: " + ec.message());
  for (const char* sub : {"containers", "containers-snapshots", "deleted", "migration"}) {
    if (::mkdir((path / sub).c_str(), volume_mode) != 0 && errno != EEXIST) {
      return io_error(where + ": create " + sub, errno);
    }
  }
  struct statfs sfs {};
  if (::statfs(path.c_str(), &sfs) != 0) return io_error(where + ": statfs", errno);
  const bool on_btrfs = static_cast<unsigned long>(sfs.f_type) == btrfs_super_magic;
  std::unique_ptr<StoragePool> pool(new StoragePool(std::move(name), std::move(path), on_btrfs ? "btrfs" : "dir"));
  pool->reaper_ = std::make_unique<Reaper>(*pool);
  // What a migration that a stop or a crash cut short left: the reaper removes it.
  std::vector<fs::path> left;
  for (const auto& entry : fs::directory_iterator(pool->path_ / "migration", ec)) left.push_back(entry.path());
  if (!left.empty()) {
    if (auto moved = pool->discard(left); !moved) spdlog::warn("{}", moved.error().message);
  }
  return pool;
}

void StoragePool::wait_for_reaper() const {
  reaper_->wait_idle();
}

std::string StoragePool::where(const std::string& what) const {
  return "storage pool " + name_ + ": " + what;
}

fs::path StoragePool::volume_path(const std::string& instance) const {
  return path_ / "containers" / instance;
}

fs::path StoragePool::snapshots_dir(const std::string& instance) const {
  return path_ / "containers-snapshots" / instance;
}

fs::path StoragePool::snapshot_path(const std::string& instance, const std::string& snap) const {
  return snapshots_dir(instance) / snap;
}

Result<void> StoragePool::clone(const fs::path& src, const fs::path& dst) const {
  if (path_exists(dst)) return make_error(ErrorKind::conflict, where(dst.string() + " exists"));
  if (!btrfs()) {
    auto r = copy_tree(src, dst);
    return r ? r : make_error(r.error().kind, where(r.error().message));
  }
  auto r = run_btrfs({"subvolume", "snapshot", src.string(), dst.string()});
  return r ? r : make_error(r.error().kind, where(r.error().message));
}

Result<void> StoragePool::remove(const fs::path& p, const std::atomic<bool>* stop) const {
  return remove_at(AT_FDCWD, p.string(), p, stop);
}

Result<void> StoragePool::remove_at(int dir, const std::string& name, const fs::path& shown,
                                    const std::atomic<bool>* stop) const {
  if (stop != nullptr && *stop) return make_error(ErrorKind::io, where("stopped before removing " + shown.string()));
  struct stat st {};
  if (::fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return errno == ENOENT ? Result<void>{} : io_error(where("stat " + shown.string()), errno);
  }
  if (!S_ISDIR(st.st_mode)) {
    if (::unlinkat(dir, name.c_str(), 0) != 0 && errno != ENOENT)
      return io_error(where("remove " + shown.string()), errno);
    return {};
  }
  if (btrfs() && st.st_ino == btrfs_subvolume_ino) {
    // Subvolumes sit at the top of a volume or snapshot: their paths are short.
    auto r = run_btrfs({"subvolume", "delete", shown.string()});
    return r ? r : make_error(r.error().kind, where(r.error().message));
  }
  // Depth first, by descriptors (no limit on how deep the paths below go), entry by entry (a tree
  // may hold subvolumes, and a stop is seen between files).
  const int fd = ::openat(dir, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return io_error(where("open " + shown.string()), errno);
  DIR* entries = ::fdopendir(fd);
  if (entries == nullptr) {
    const int err = errno;
    ::close(fd);
    return io_error(where("read directory " + shown.string()), err);
  }
  for (;;) {
    errno = 0;
    const dirent* e = ::readdir(entries);
    if (e == nullptr) {
      const int err = errno;
      if (err == 0) break;
      ::closedir(entries);
      return io_error(where("read directory " + shown.string()), err);
    }
    const std::string child = e->d_name;
    if (child == "." || child == "..") continue;
    if (auto r = remove_at(::dirfd(entries), child, shown / child, stop); !r) {
      ::closedir(entries);
      return r;
    }
  }
  ::closedir(entries);
  if (::unlinkat(dir, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
    return io_error(where("remove " + shown.string()), errno);
  }
  return {};
}

Result<void> StoragePool::discard(const std::vector<fs::path>& paths) {
  auto held = reaper_->hold_entries();
  std::string entry_template = (path_ / "deleted" / "entry.XXXXXX").string();
  if (::mkdtemp(entry_template.data()) == nullptr) return io_error(where("create an entry under deleted/"), errno);
  const fs::path entry = entry_template;
  std::size_t index = 0;
  Result<void> result;
  for (const fs::path& p : paths) {
    if (::rename(p.c_str(), (entry / std::to_string(index++)).c_str()) != 0) {
      result = io_error(where("move " + p.string() + " to " + entry.string()), errno);
      break;
    }
  }
  held.unlock();
  reaper_->wake();
  return result;
}

Result<void> StoragePool::create_volume(const std::string& instance) {
  if (auto r = check_name("instance", instance); !r) return r;
  const fs::path p = volume_path(instance);
  if (path_exists(p)) return make_error(ErrorKind::conflict, where("volume " + instance + " exists"));
  if (btrfs()) {
    if (auto r = run_btrfs({"subvolume", "create", p.string()}); !r)
      return make_error(r.error().kind, where(r.error().message));
  } else if (::mkdir(p.c_str(), volume_mode) != 0) {
    return io_error(where("create volume " + p.string()), errno);
  }
  if (::chmod(p.c_str(), volume_mode) != 0) {  // mkdir's mode passes through the umask
    const int err = errno;
    (void)remove(p);
    return io_error(where("chmod " + p.string()), err);
  }
  return {};
}

Result<void> StoragePool::delete_volume(const std::string& instance) {
  if (auto r = check_name("instance", instance); !r) return r;
  const fs::path p = volume_path(instance);
  if (!path_exists(p)) return make_error(ErrorKind::not_found, where("no volume " + instance));
  // The snapshots first: a crash in between leaves the volume, which a second delete finds.
  std::vector<fs::path> gone;
  if (path_exists(snapshots_dir(instance))) gone.push_back(snapshots_dir(instance));
  gone.push_back(p);
  return discard(gone);
}

Result<void> StoragePool::rename_volume(const std::string& from, const std::string& to) {
  if (auto r = check_name("instance", from); !r) return r;
  if (auto r = check_name("instance", to); !r) return r;
  if (!path_exists(volume_path(from))) return make_error(ErrorKind::not_found, where("no volume " + from));
  if (path_exists(volume_path(to)) || path_exists(snapshots_dir(to))) {
    return make_error(ErrorKind::conflict, where("volume " + to + " exists"));
  }
  if (::rename(volume_path(from).c_str(), volume_path(to).c_str()) != 0) {
    return io_error(where("rename volume " + from + " to " + to), errno);
  }
  if (path_exists(snapshots_dir(from)) && ::rename(snapshots_dir(from).c_str(), snapshots_dir(to).c_str()) != 0) {
    const int err = errno;
    (void)::rename(volume_path(to).c_str(), volume_path(from).c_str());
    return io_error(where("rename snapshots of " + from + " to " + to), err);
  }
  return {};
}

Result<void> StoragePool::create_snapshot(const std::string& instance, const std::string& snap) {
  if (auto r = check_name("instance", instance); !r) return r;
  if (auto r = check_name("snapshot", snap); !r) return r;
  const fs::path src = volume_path(instance);
  if (!path_exists(src)) return make_error(ErrorKind::not_found, where("no volume " + instance));
  return snapshot_into(src, instance, snap);
}

Result<void> StoragePool::snapshot_into(const fs::path& src, const std::string& instance, const std::string& snap) {
  const fs::path dst = snapshot_path(instance, snap);
  if (path_exists(dst)) return make_error(ErrorKind::conflict, where("snapshot " + instance + "/" + snap + " exists"));
  if (::mkdir(snapshots_dir(instance).c_str(), 0700) != 0 && errno != EEXIST) {
    return io_error(where("create " + snapshots_dir(instance).string()), errno);
  }
  if (!btrfs()) return clone(src, dst);
  auto r = run_btrfs({"subvolume", "snapshot", "-r", src.string(), dst.string()});
  return r ? r : make_error(r.error().kind, where(r.error().message));
}

namespace {

std::string uuid_text(const __u8 (&u)[BTRFS_UUID_SIZE]) {
  if (std::all_of(std::begin(u), std::end(u), [](__u8 b) { return b == 0; })) return {};
  std::string out;
  static constexpr char digits[] = "0123456789abcdef";
  for (std::size_t i = 0; i < BTRFS_UUID_SIZE; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out += '-';
    out += digits[u[i] >> 4];
    out += digits[u[i] & 0xf];
  }
  return out;
}

// A subvolume's root, opened for its ioctls.
Result<int> open_subvolume(const fs::path& p) {
  const int fd = ::open(p.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return io_error("open " + p.string(), errno);
  return fd;
}

// GET_SUBVOL_INFO of the subvolume open at `fd` (`shown` names it in an error). It answers 1, not
// 0, on success: only a negative answer is a failure.
Result<btrfs_ioctl_get_subvol_info_args> subvolume_info_of(int fd, const fs::path& shown) {
  btrfs_ioctl_get_subvol_info_args info{};
  if (::ioctl(fd, BTRFS_IOC_GET_SUBVOL_INFO, &info) < 0) {
    return io_error("read the subvolume information of " + shown.string(), errno);
  }
  return info;
}

Result<void> set_readonly(const fs::path& p, bool readonly) {
  auto fd = open_subvolume(p);
  if (!fd) return fd.error();
  const Fd held(*fd);
  __u64 flags = 0;
  if (::ioctl(held.get(), BTRFS_IOC_SUBVOL_GETFLAGS, &flags) < 0)
    return io_error("read the flags of " + p.string(), errno);
  flags = readonly ? (flags | BTRFS_SUBVOL_RDONLY) : (flags & ~static_cast<__u64>(BTRFS_SUBVOL_RDONLY));
  if (::ioctl(held.get(), BTRFS_IOC_SUBVOL_SETFLAGS, &flags) < 0) {
    return io_error(std::string("make ") + p.string() + (readonly ? " read-only" : " writable"), errno);
  }
  return {};
}

// Sets (or, with an empty `uuid`, clears) the received UUID of a writable subvolume.
Result<void> set_received(const fs::path& p, const std::string& uuid, std::uint64_t stransid) {
  btrfs_ioctl_received_subvol_args args{};
  if (!uuid.empty()) {
    std::string hex;
    for (const char c : uuid) {
      if (c != '-') hex += c;
    }
    if (hex.size() != 2 * BTRFS_UUID_SIZE) return make_error(ErrorKind::invalid_argument, "not a UUID: " + uuid);
    for (std::size_t i = 0; i < BTRFS_UUID_SIZE; ++i) {
      args.uuid[i] = static_cast<char>(std::stoi(hex.substr(2 * i, 2), nullptr, 16));
    }
    args.stransid = stransid;
  }
  auto fd = open_subvolume(p);
  if (!fd) return fd.error();
  const Fd held(*fd);
  if (::ioctl(held.get(), BTRFS_IOC_SET_RECEIVED_SUBVOL, &args) < 0) {
    return io_error("set the received UUID of " + p.string(), errno);
  }
  return {};
}

}  // namespace

StoragePool::Staging::~Staging() {
  if (pool_ == nullptr) return;
  if (auto gone = pool_->discard({path_}); !gone) spdlog::warn("{}", gone.error().message);
}

Result<StoragePool::Staging> StoragePool::staging() {
  std::string dir = (path_ / "migration" / "entry.XXXXXX").string();
  if (::mkdtemp(dir.data()) == nullptr) return io_error(where("create a directory under migration/"), errno);
  return Staging(*this, dir);
}

Result<StoragePool::SubvolumeInfo> StoragePool::subvolume_info(const fs::path& subvolume) const {
  auto fd = open_subvolume(subvolume);
  if (!fd) return make_error(fd.error().kind, where(fd.error().message));
  const Fd held(*fd);
  auto read = subvolume_info_of(held.get(), subvolume);
  if (!read) return make_error(read.error().kind, where(read.error().message));
  const auto& info = *read;
  SubvolumeInfo out;
  out.uuid = uuid_text(info.uuid);
  out.received_uuid = uuid_text(info.received_uuid);
  out.stransid = info.stransid;
  out.readonly = (info.flags & BTRFS_ROOT_SUBVOL_RDONLY) != 0;  // the root item's flags
  return out;
}

Result<bool> StoragePool::has_nested_subvolumes(const std::string& instance) const {
  if (auto r = check_name("instance", instance); !r) return r.error();
  const fs::path root = volume_path(instance);
  auto fd = open_subvolume(root);
  if (!fd) return make_error(fd.error().kind, where(fd.error().message));
  const Fd held(*fd);
  auto info = subvolume_info_of(held.get(), root);
  if (!info) return make_error(info.error().kind, where(info.error().message));
  // A subvolume inside another is a ROOT_REF item (parent's tree id, ROOT_REF, child's) in the
  // root tree: one search, however many files the volume has.
  btrfs_ioctl_search_args search{};
  search.key.tree_id = BTRFS_ROOT_TREE_OBJECTID;
  search.key.min_objectid = info->treeid;
  search.key.max_objectid = info->treeid;
  search.key.min_type = BTRFS_ROOT_REF_KEY;
  search.key.max_type = BTRFS_ROOT_REF_KEY;
  search.key.max_offset = std::numeric_limits<__u64>::max();
  search.key.max_transid = std::numeric_limits<__u64>::max();
  search.key.nr_items = 1;
  if (::ioctl(held.get(), BTRFS_IOC_TREE_SEARCH, &search) < 0) {
    return io_error(where("look for subvolumes inside " + root.string()), errno);
  }
  return search.key.nr_items > 0;
}

Result<void> StoragePool::readonly_copy(const std::string& instance, const fs::path& to) const {
  if (auto r = check_name("instance", instance); !r) return r;
  auto r = run_btrfs({"subvolume", "snapshot", "-r", volume_path(instance).string(), to.string()});
  return r ? r : make_error(r.error().kind, where(r.error().message));
}

Result<void> StoragePool::flatten(const fs::path& root, const Received& received) const {
  for (const auto& [at, subvolume] : received.nested) {
    // `at` was checked when the header was read ("/a/b": no "..", no empty part).
    const fs::path place = root / fs::path(at).relative_path();
    if (::rmdir(place.c_str()) != 0 && errno != ENOENT) {
      return io_error(where("make room for the nested subvolume " + at + " at " + place.string()), errno);
    }
    if (auto copied = copy_tree(subvolume, place); !copied) {
      return make_error(copied.error().kind, where(copied.error().message));
    }
  }
  return {};
}

Result<void> StoragePool::adopt_snapshot(const std::string& instance, const std::string& snap,
                                         const Received& received) {
  if (auto r = check_name("instance", instance); !r) return r;
  if (auto r = check_name("snapshot", snap); !r) return r;
  const fs::path dst = snapshot_path(instance, snap);
  if (path_exists(dst)) return make_error(ErrorKind::conflict, where("snapshot " + instance + "/" + snap + " exists"));
  if (::mkdir(snapshots_dir(instance).c_str(), 0700) != 0 && errno != EEXIST) {
    return io_error(where("create " + snapshots_dir(instance).string()), errno);
  }
  auto info = subvolume_info(received.subvolume);
  if (!info) return info.error();
  // A read-only subvolume cannot move (EROFS), and only a writable one takes a received UUID:
  // writable, moved, its received UUID set again, read-only (as LXD's sink does).
  const auto step = [&](Result<void> r) { return r ? r : make_error(r.error().kind, where(r.error().message)); };
  if (auto r = step(set_readonly(received.subvolume, false)); !r) return r;
  if (::rename(received.subvolume.c_str(), dst.c_str()) != 0) {
    return io_error(where("move " + received.subvolume.string()), errno);
  }
  if (auto r = flatten(dst, received); !r) return r;
  if (auto r = step(set_received(dst, info->received_uuid, info->stransid)); !r) return r;
  return step(set_readonly(dst, true));
}

Result<void> StoragePool::adopt_volume(const std::string& instance, const Received& received) {
  if (auto r = check_name("instance", instance); !r) return r;
  const fs::path dst = volume_path(instance);
  if (path_exists(dst)) return make_error(ErrorKind::conflict, where("volume " + instance + " exists"));
  const auto& from = received.subvolume;
  const auto step = [&](Result<void> r) { return r ? r : make_error(r.error().kind, where(r.error().message)); };
  if (auto r = step(set_readonly(from, false)); !r) return r;
  // Writable from now on, it is no longer the stream it came from: a read-only snapshot of it
  // would otherwise inherit the received UUID, and two different snapshots share it.
  if (auto r = step(set_received(from, "", 0)); !r) return r;
  if (::chmod(from.c_str(), volume_mode) != 0 || ::chown(from.c_str(), 0, 0) != 0) {
    return io_error(where("set the owner and mode of " + from.string()), errno);
  }
  if (::rename(from.c_str(), dst.c_str()) != 0) return io_error(where("move " + from.string()), errno);
  return flatten(dst, received);
}

Result<void> StoragePool::delete_snapshot(const std::string& instance, const std::string& snap) {
  if (auto r = check_name("instance", instance); !r) return r;
  if (auto r = check_name("snapshot", snap); !r) return r;
  const fs::path p = snapshot_path(instance, snap);
  if (!path_exists(p)) return make_error(ErrorKind::not_found, where("no snapshot " + instance + "/" + snap));
  if (auto r = remove(p); !r) return r;
  ::rmdir(snapshots_dir(instance).c_str());  // gone with its last snapshot; fails harmlessly otherwise
  return {};
}

Result<void> StoragePool::rename_snapshot(const std::string& instance, const std::string& from, const std::string& to) {
  if (auto r = check_name("instance", instance); !r) return r;
  if (auto r = check_name("snapshot", from); !r) return r;
  if (auto r = check_name("snapshot", to); !r) return r;
  const fs::path src = snapshot_path(instance, from);
  const fs::path dst = snapshot_path(instance, to);
  if (!path_exists(src)) return make_error(ErrorKind::not_found, where("no snapshot " + instance + "/" + from));
  if (path_exists(dst)) return make_error(ErrorKind::conflict, where("snapshot " + instance + "/" + to + " exists"));
  if (::rename(src.c_str(), dst.c_str()) != 0) {
    return io_error(where("rename snapshot " + instance + "/" + from + " to " + to), errno);
  }
  return {};
}

Result<void> StoragePool::restore_snapshot(const std::string& instance, const std::string& snap) {
  if (auto r = check_name("instance", instance); !r) return r;
  if (auto r = check_name("snapshot", snap); !r) return r;
  const fs::path vol = volume_path(instance);
  const fs::path src = snapshot_path(instance, snap);
  if (!path_exists(vol)) return make_error(ErrorKind::not_found, where("no volume " + instance));
  if (!path_exists(src)) return make_error(ErrorKind::not_found, where("no snapshot " + instance + "/" + snap));
  // Build the new content beside the volume, then swap: the volume is never half restored.
  const fs::path fresh = path_ / "containers" / ("." + instance + ".restoring");
  const fs::path old = path_ / "containers" / ("." + instance + ".old");
  for (const fs::path& leftover : {fresh, old}) {
    if (path_exists(leftover)) {
      if (auto r = remove(leftover); !r) return r;
    }
  }
  if (auto r = clone(src, fresh); !r) return r;
  if (::chmod(fresh.c_str(), volume_mode) != 0) {
    const int err = errno;
    (void)remove(fresh);
    return io_error(where("chmod " + fresh.string()), err);
  }
  if (::rename(vol.c_str(), old.c_str()) != 0) {
    const int err = errno;
    (void)remove(fresh);
    return io_error(where("move " + vol.string() + " aside"), err);
  }
  if (::rename(fresh.c_str(), vol.c_str()) != 0) {
    const int err = errno;
    (void)::rename(old.c_str(), vol.c_str());
    (void)remove(fresh);
    return io_error(where("move the restored content to " + vol.string()), err);
  }
  return discard({old});
}

std::vector<std::string> StoragePool::recover_restores() {
  std::vector<std::string> done;
  const fs::path containers = path_ / "containers";
  std::vector<std::string> entries;
  std::error_code ec;
  for (fs::directory_iterator it(containers, ec), end; !ec && it != end; it.increment(ec)) {
    entries.push_back(it->path().filename().string());
  }
  const auto has_suffix = [](const std::string& n, std::string_view suffix) {
    return n.size() > suffix.size() + 1 && n.front() == '.' &&
           n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  // The new content (".NAME.restoring") was never moved in: it goes. The old one (".NAME.old")
  // goes when the restored content is in place, and goes back when the volume is missing.
  for (const auto& n : entries) {
    if (!has_suffix(n, ".restoring")) continue;
    const auto r = remove(containers / n);
    done.push_back(r ? "removed the unfinished restore " + where(n) : r.error().message);
  }
  for (const auto& n : entries) {
    if (!has_suffix(n, ".old")) continue;
    const std::string instance = n.substr(1, n.size() - 1 - 4);
    if (path_exists(volume_path(instance))) {
      const auto r = remove(containers / n);
      done.push_back(r ? "removed the content a restore of " + instance + " replaced" : r.error().message);
    } else if (::rename((containers / n).c_str(), volume_path(instance).c_str()) == 0) {
      done.push_back("put back the content of " + instance + " that an unfinished restore had moved aside");
    } else {
      done.push_back(io_error(where("put back " + n), errno).message);
    }
  }
  return done;
}

Result<void> StoragePool::copy_volume(const std::string& from, const std::string& to) {
  if (auto r = check_name("instance", from); !r) return r;
  if (auto r = check_name("instance", to); !r) return r;
  if (!path_exists(volume_path(from))) return make_error(ErrorKind::not_found, where("no volume " + from));
  if (auto r = clone(volume_path(from), volume_path(to)); !r) return r;
  return {};
}

Result<void> StoragePool::copy_snapshot_to_volume(const std::string& instance, const std::string& snap,
                                                  const std::string& to) {
  if (auto r = check_name("instance", instance); !r) return r;
  if (auto r = check_name("snapshot", snap); !r) return r;
  if (auto r = check_name("instance", to); !r) return r;
  const fs::path src = snapshot_path(instance, snap);
  if (!path_exists(src)) return make_error(ErrorKind::not_found, where("no snapshot " + instance + "/" + snap));
  if (auto r = clone(src, volume_path(to)); !r) return r;
  if (::chmod(volume_path(to).c_str(), volume_mode) != 0) return io_error(where("chmod " + to), errno);
  return {};
}

Result<void> StoragePool::copy_snapshot(const std::string& instance, const std::string& snap, const std::string& to) {
  if (auto r = check_name("instance", instance); !r) return r;
  if (auto r = check_name("snapshot", snap); !r) return r;
  if (auto r = check_name("instance", to); !r) return r;
  const fs::path src = snapshot_path(instance, snap);
  if (!path_exists(src)) return make_error(ErrorKind::not_found, where("no snapshot " + instance + "/" + snap));
  if (!path_exists(volume_path(to))) return make_error(ErrorKind::not_found, where("no volume " + to));
  return snapshot_into(src, to, snap);
}

namespace {
std::vector<std::string> list_dir(const fs::path& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::string n = it->path().filename().string();
    if (!n.empty() && n.front() != '.') out.push_back(std::move(n));
  }
  std::sort(out.begin(), out.end());
  return out;
}
}  // namespace

std::vector<std::string> StoragePool::volumes() const {
  return list_dir(path_ / "containers");
}

std::vector<std::string> StoragePool::snapshots(const std::string& instance) const {
  if (!check_name("instance", instance)) return {};
  return list_dir(snapshots_dir(instance));
}

Result<std::uint64_t> StoragePool::usage(const std::string& instance) const {
  if (auto r = check_name("instance", instance); !r) return r.error();
  const fs::path root = volume_path(instance);
  struct stat st {};
  if (::lstat(root.c_str(), &st) != 0) return make_error(ErrorKind::not_found, where("no volume " + instance));
  std::uint64_t total = static_cast<std::uint64_t>(st.st_blocks) * 512;
  std::set<InodeKey> seen;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    if (::lstat(it->path().c_str(), &st) != 0) continue;  // gone meanwhile: best effort
    if (st.st_nlink > 1 && !S_ISDIR(st.st_mode) && !seen.insert({st.st_dev, st.st_ino}).second) continue;
    total += static_cast<std::uint64_t>(st.st_blocks) * 512;
  }
  if (ec) return make_error(ErrorKind::io, where("usage of " + instance + ": " + ec.message()));
  return total;
}

}  // namespace berth::daemon
