#pragma once
// The fleet's lock on an LXD host (providers::HostLocker), held as a profile in the default
// project, `berth-lock-<fleet>`, whose user.berth.lock.* keys say who holds it and until when.
//
// Why a profile: creating one is atomic on LXD 5.0 (a name that exists is refused: the database
// keeps profile names unique per project), and so is renaming one. An If-Match PATCH of /1.0 is
// not (LXD 5.0.2 checks the ETag before its write transaction).
//
//   acquire   create the profile. If it exists and has expired, take it over: rename it to
//             `berth-lock-<fleet>-was-<its id>`, a name only the first run to try can take (the
//             others are refused, since it exists), check the moved copy is the expired lock
//             (else move it back), then create a fresh one. A fresh lock is never removed.
//   renew     read it: still ours? then PUT a later expiry with If-Match.
//   release   rename ours to its `-was-<our id>` name (refused if a run took it over meanwhile),
//             then delete that copy. Copies left by takeovers are deleted ten minutes after they
//             expired, by the next run that takes the lock.
//
// Every expiry is in the holder's wall-clock time (unix seconds): runners' clocks must agree
// to well within the lock's lifetime. A lock whose holder ran on this machine and is gone (killed,
// crashed) is taken over at once, the same way.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "providers/lxd/client.hpp"
#include "providers/lxd/client_config.hpp"
#include "providers/provider.hpp"

namespace berth::lxd {

struct HostLockerOptions {
  Timeouts timeouts;
  // Where this process runs and which process it is, as a lock records them: a lock whose
  // holder ran on this machine (same host name and boot) and is gone is taken over at once, as
  // the state file's lock is, instead of after it expires. Empty: found out (host name and
  // /proc/sys/kernel/random/boot_id; pid and its start time from /proc).
  std::string machine;
  std::string process;
  // Whether the process a lock names (as `process` is written) no longer runs on this machine.
  std::function<bool(const std::string& process)> gone;
  // Now, in unix seconds. Replaced in tests.
  std::function<std::int64_t()> now = [] {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
};

[[nodiscard]] std::unique_ptr<providers::HostLocker> make_host_locker(ClientConfig config,
                                                                      HostLockerOptions options = {});

// The profile that is the fleet's lock, and the name an expired (or released) lock with id `id`
// is moved to.
[[nodiscard]] std::string lock_profile(const std::string& fleet);
[[nodiscard]] std::string moved_lock_profile(const std::string& fleet, const std::string& id);

}  // namespace berth::lxd
