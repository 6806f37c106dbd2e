// berthd-helper: the small executable berthd runs for the jobs that must not happen inside the
// daemon, "forkstart LXCPATH NAME" (start a container: LxcDriver::start), "forkexec ..." (run a
// command in one: ExecProcess) and "netcat FD" (a migration's rsync reaches its websocket through
// it: daemon/migration/netcat.hpp). berthd itself answers them too; this one exists for memory.
//
// A container's "[lxc monitor]" is a fork of the process that called liblxc's start, and keeps
// every page that process had touched. Forked from a fresh berthd (its ~28 shared libraries loaded
// and relocated: OpenSSL, SQLite, libarchive with libxml2 and ICU...) a monitor held ~4.5 MB;
// forked from this one, which links liblxc and libc only (libstdc++ statically, the few parts it
// uses), ~3 MB. berthd uses it when it sits next to its own executable (daemon/main.cpp).

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/instances/exec.hpp"
#include "daemon/instances/lxc_driver.hpp"
#include "daemon/migration/netcat.hpp"

int main(int argc, char** argv) {
  const std::string_view job = argc >= 2 ? argv[1] : "";
  if (job == "forkexec") return berth::daemon::forkexec_main(std::vector<std::string>(argv + 2, argv + argc));
  // rsync appends the host and its own command line: ignored.
  if (job == "netcat" && argc >= 3) return berth::daemon::migration::netcat_main(std::atoi(argv[2]));
  if (job == "forkstart" && argc == 4) return berth::daemon::forkstart_main(argv[2], argv[3]);
  std::fputs("usage: berthd-helper forkstart LXCPATH NAME | forkexec ... | netcat FD (run by berthd itself)\n", stderr);
  return berth::daemon::forkstart_exit::usage;
}
