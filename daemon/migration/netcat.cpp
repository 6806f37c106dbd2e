#include "daemon/migration/netcat.hpp"

#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstddef>
#include <cstring>

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

int netcat_main(int fd) {
  // Stdin and stdout as SCM_RIGHTS: berthd waits for exactly this.
  PipesMessage m;
  cmsghdr* header = CMSG_FIRSTHDR(&m.message);
  header->cmsg_level = SOL_SOCKET;
  header->cmsg_type = SCM_RIGHTS;
  header->cmsg_len = CMSG_LEN(2 * sizeof(int));
  const std::array<int, 2> fds{0, 1};
  std::memcpy(CMSG_DATA(header), fds.data(), sizeof(int) * fds.size());
  while (::sendmsg(fd, &m.message, MSG_NOSIGNAL) < 0) {
    if (errno != EINTR) return 1;
  }
  return 0;
}

}  // namespace berth::daemon::migration
