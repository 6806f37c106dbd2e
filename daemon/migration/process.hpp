#pragma once
// The programs a migration runs (rsync, btrfs send and receive): started in a process group of
// their own with the descriptors the caller gives, watched through a pidfd, killed with
// everything they started; and what the streams they feed share. Internal to daemon/migration.

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include "daemon/instances/unique_fd.hpp"
#include "providers/lxd/result.hpp"

namespace berth::daemon::migration {

using lxd::Result;

using Fd = UniqueFd;

// What both kinds of stream on the fs channel (rsync sessions, btrfs streams) go by: the largest
// message, how often one that waits looks whether it was cancelled, and how long the peer may be
// silent before the stream is given up.
inline constexpr std::size_t chunk_size = 256 * 1024;
inline constexpr auto tick = std::chrono::milliseconds{250};
inline constexpr auto idle_limit = std::chrono::minutes{10};

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
