#include "daemon/migration/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

extern char** environ;

namespace berth::daemon::migration {
namespace {

constexpr std::size_t stderr_kept = 4096;

}  // namespace

std::string errno_text(const char* what) {
  return std::string(what) + ": " + std::strerror(errno);
}

Spawned::~Spawned() {
  if (pid_ > 0 && !exited_) {
    kill_all();
    wait(true);
  }
}

Result<void> Spawned::start(const std::string& program, const std::vector<std::string>& args, const Stdio& stdio) {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attr);
  if (stdio.in < 0) {
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  } else {
    posix_spawn_file_actions_adddup2(&actions, stdio.in, 0);
  }
  if (stdio.out >= 0) posix_spawn_file_actions_adddup2(&actions, stdio.out, 1);
  if (stdio.err >= 0) posix_spawn_file_actions_adddup2(&actions, stdio.err, 2);
  if (stdio.fd3 >= 0) posix_spawn_file_actions_adddup2(&actions, stdio.fd3, 3);
  sigset_t none;
  sigemptyset(&none);
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
  std::vector<std::string> copies = args;
  copies.insert(copies.begin(), program);
  std::vector<char*> argv;
  for (auto& a : copies) argv.push_back(a.data());
  argv.push_back(nullptr);
  const int rc = posix_spawnp(&pid_, program.c_str(), &actions, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    pid_ = -1;
    return lxd::make_error(lxd::ErrorKind::io, "cannot run " + program + ": " + std::strerror(rc));
  }
  // (The syscall: glibc 2.36 declares pidfd_open without C linkage.)
  exit_fd_.reset(static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0)));
  return {};
}

bool Spawned::wait(bool block) {
  if (exited_) return true;
  int status = 0;
  pid_t r = 0;
  do {
    r = ::waitpid(pid_, &status, block ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r != pid_) return false;
  exited_ = true;
  status_ = status;
  return true;
}

void Spawned::kill_all() const {
  if (pid_ > 0) ::kill(-pid_, SIGKILL);
}

std::string Spawned::outcome() const {
  if (WIFEXITED(status_)) return "exit status " + std::to_string(WEXITSTATUS(status_));
  if (WIFSIGNALED(status_)) return std::string("killed by ") + ::strsignal(WTERMSIG(status_));
  return "ended";
}

bool Spawned::succeeded() const {
  return exited_ && WIFEXITED(status_) && WEXITSTATUS(status_) == 0;
}

void keep_tail(std::string& text, const char* data, std::size_t n) {
  text.append(data, n);
  if (text.size() > stderr_kept) text.erase(0, text.size() - stderr_kept);
}

std::string with_stderr(std::string why, std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  if (!text.empty()) why += " (" + text + ")";
  return why;
}

std::string drain(int fd) {
  std::string text;
  std::array<char, 4096> buf{};
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 1000) <= 0) break;
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    keep_tail(text, buf.data(), static_cast<std::size_t>(n));
  }
  return text;
}

}  // namespace berth::daemon::migration
