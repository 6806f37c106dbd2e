#include "daemon/migration/netcat.hpp"

#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstddef>
#include <thread>

namespace berth::daemon::migration {
bool write_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

namespace {

// From `from` to `to` until the end or an error.
void copy(int from, int to) {
  std::array<char, 64 * 1024> buf{};
  for (;;) {
    const ssize_t n = ::read(from, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || !write_all(to, buf.data(), static_cast<std::size_t>(n))) return;
  }
}

}  // namespace

int netcat_main(int fd) {
  ::signal(SIGPIPE, SIG_IGN);
  // Each direction blocks on its own, as rsync reads and writes at once. The end of what comes
  // from the socket ends netcat, as LXD's does: rsync waits for its remote shell to exit before it
  // closes that shell's stdin, so waiting for stdin's end too would wait forever.
  std::thread([fd] {
    copy(0, fd);
    ::shutdown(fd, SHUT_WR);
  }).detach();
  copy(fd, 1);
  ::close(1);
  ::close(fd);
  return 0;
}

}  // namespace berth::daemon::migration
