#pragma once
// "netcat FD", the remote shell a migration's sending rsync runs (daemon/migration/transfer.hpp):
// it hands its stdin and stdout, the pipes rsync talks to its remote shell through, to berthd over
// FD (a unix socket berthd hands down as an inherited descriptor), and exits; berthd then reads
// and writes rsync's pipes itself, with no process copying between them. LXD's "lxd netcat" copies
// between those pipes and an abstract socket instead; the wire is the same. In berthd-helper and
// in berthd itself, with libc only (each container's monitor is a fork of the helper: nothing
// more may be linked in).

#include <sys/socket.h>
#include <sys/uio.h>

#include <array>
#include <cstddef>

namespace berth::daemon::migration {

// The exit code.
int netcat_main(int fd);

// The message netcat sends and berthd receives: one byte, with room for two descriptors
// (SCM_RIGHTS). Points into itself: neither copied nor moved.
struct PipesMessage {
  char byte = 'p';
  iovec data{&byte, 1};
  alignas(cmsghdr) std::array<char, CMSG_SPACE(2 * sizeof(int))> control{};
  msghdr message{};

  PipesMessage() {
    message.msg_iov = &data;
    message.msg_iovlen = 1;
    message.msg_control = control.data();
    message.msg_controllen = control.size();
  }
  PipesMessage(const PipesMessage&) = delete;
  PipesMessage& operator=(const PipesMessage&) = delete;
};

// Writes all of `data` to `fd` (EINTR retried); false on an error or a closed peer.
bool write_all(int fd, const char* data, std::size_t size);

}  // namespace berth::daemon::migration
