// berthd-helper: the small executable berthd runs for the two jobs that must not happen inside the
// daemon, "forkstart LXCPATH NAME" (start a container: LxcDriver::start) and "forkexec ..." (run a
// command in one: ExecProcess). berthd itself answers both too; this one exists for memory.
//
// A container's "[lxc monitor]" is a fork of the process that called liblxc's start, and keeps
// every page that process had touched. Forked from a fresh berthd (its ~28 shared libraries loaded
// and relocated: OpenSSL, SQLite, libarchive with libxml2 and ICU...) a monitor held ~4.5 MB;
// forked from this one, which links liblxc and libc only (libstdc++ statically, the few parts it
// uses), ~3 MB. berthd uses it when it sits next to its own executable (daemon/main.cpp).

#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/instances/exec.hpp"
#include "daemon/instances/lxc_driver.hpp"

int main(int argc, char** argv) {
  const std::string_view job = argc >= 2 ? argv[1] : "";
  if (job == "forkexec") return berth::daemon::forkexec_main(std::vector<std::string>(argv + 2, argv + argc));
  if (job == "forkstart" && argc == 4) return berth::daemon::forkstart_main(argv[2], argv[3]);
  std::fputs("usage: berthd-helper forkstart LXCPATH NAME | forkexec ... (run by berthd itself)\n", stderr);
  return berth::daemon::forkstart_exit::usage;
}
