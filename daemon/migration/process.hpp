#pragma once
// The programs a migration runs (rsync, btrfs send and receive): started in a process group of
// their own with the descriptors the caller gives, watched through a pidfd, killed with
// everything they started. Internal to daemon/migration.

#include <sys/types.h>

#include <cstddef>
#include <string>
#include <vector>

#include "providers/lxd/result.hpp"

namespace berth::daemon::migration {

using lxd::Result;

// An owned file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  [[nodiscard]] int get() const { return fd_; }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// "what: strerror(errno)".
[[nodiscard]] std::string errno_text(const char* what);

class Spawned {
 public:
  // The child's descriptors: -1 is /dev/null (stdin) or nothing (fd 3). Any of them may be the
  // same descriptor.
  struct Stdio {
    int in = -1;
    int out = -1;
    int err = -1;
    int fd3 = -1;  // must be above 3, so that the dup is a copy without CLOEXEC
  };

  Spawned() = default;
  Spawned(const Spawned&) = delete;
  Spawned& operator=(const Spawned&) = delete;
  // One still running is killed and reaped.
  ~Spawned();

  // `program` (looked up in PATH) with `args`, SIGPIPE at its default and no signal blocked.
  [[nodiscard]] Result<void> start(const std::string& program, const std::vector<std::string>& args,
                                   const Stdio& stdio);
  // Readable once it exited, so that its end is seen when it happens; -1 on a kernel without
  // pidfds (then wait(false) has to be polled).
  [[nodiscard]] int exit_fd() const { return exit_fd_.get(); }
  // Whether it exited (reaped); `block` waits for it.
  bool wait(bool block);
  // It and what it started.
  void kill_all() const;
  // "exit status 2", "killed by Killed".
  [[nodiscard]] std::string outcome() const;
  [[nodiscard]] bool succeeded() const;

 private:
  pid_t pid_ = -1;
  Fd exit_fd_;
  bool exited_ = false;
  int status_ = 0;
};

// Appends `n` bytes of a program's stderr to `text`, which keeps only its last 4 KiB.
void keep_tail(std::string& text, const char* data, std::size_t n);
// `why`, with a program's stderr (trailing blanks and newlines dropped) in parentheses when it
// said something.
[[nodiscard]] std::string with_stderr(std::string why, std::string text);
// What is left on a stderr pipe (its program is gone), waiting at most a second for more.
[[nodiscard]] std::string drain(int fd);

}  // namespace berth::daemon::migration
