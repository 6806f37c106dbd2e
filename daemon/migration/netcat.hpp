#pragma once
// "netcat FD", the remote shell a migration's sending rsync runs (daemon/migration/transfer.hpp):
// copies stdin to FD and FD to stdout until FD ends, and shuts FD for writing when stdin ends so
// that the other side sees the end. LXD's "lxd netcat" does this over an abstract socket; berthd
// hands the socket down as an inherited descriptor. In berthd-helper and in berthd itself, with
// libc only (each container's monitor is a fork of the helper: nothing more may be linked in).

#include <cstddef>

namespace berth::daemon::migration {

// The exit code.
int netcat_main(int fd);

// Writes all of `data` to `fd` (EINTR retried); false on an error or a closed peer.
bool write_all(int fd, const char* data, std::size_t size);

}  // namespace berth::daemon::migration
