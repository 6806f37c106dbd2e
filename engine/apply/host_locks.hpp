#pragma once
// The fleet's locks on the hosts a run changes (providers::HostLocker), so that two runners with
// their own state files never change the same hosts at once:
//
//   acquire: every remote the plan changes, in sorted order, all or none (what was taken is given
//            back when one is held or cannot be asked), retried while one is held until the
//            lock timeout;
//   keep:    a thread of its own renews each lock every ttl/4 while the run lasts; a lock lost
//            (taken over, or not renewed before it expired) stops the run starting new actions;
//   release: at the end, whatever happened (the destructor too).

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "engine/model/desired.hpp"
#include "engine/plan/plan.hpp"
#include "providers/provider.hpp"

namespace berth::apply {

// The remotes a plan changes: every action's remote and every copy's or move's source.
[[nodiscard]] std::set<std::string> changed_remotes(const plan::Plan& plan);

struct HostLockOutcome {
  bool acquired = false;
  std::optional<providers::HostLockInfo> holder;    // not acquired: who holds one of them
  std::string error;                                // not acquired: a remote that could not be asked
  std::vector<providers::HostLockInfo> taken_over;  // acquired: expired locks taken over
};

class HostLocks {
 public:
  HostLocks(providers::HostLocker& locker, const model::Fleet& fleet, providers::HostLockClaim claim);
  ~HostLocks();
  HostLocks(const HostLocks&) = delete;
  HostLocks& operator=(const HostLocks&) = delete;

  // All of `remotes` or none. While one is held, tries again every second or so until `timeout`
  // has passed (zero: once) or `cancel` is set.
  [[nodiscard]] HostLockOutcome acquire(const std::set<std::string>& remotes, std::chrono::milliseconds timeout,
                                        const std::atomic<bool>* cancel);
  // Renews the locks held until release(). Sets `stop` when `cancel` is set, and when a lock is
  // lost (then `on_lost` says which and why, from the renewing thread).
  void keep(std::atomic<bool>& stop, const std::atomic<bool>* cancel, std::function<void(const std::string&)> on_lost);
  // Stops renewing and gives every lock back. One line per lock that could not be released.
  std::vector<std::string> release();

  [[nodiscard]] const providers::HostLockClaim& claim() const { return claim_; }

 private:
  struct Held {
    const model::RemoteSpec* remote = nullptr;
    std::chrono::steady_clock::time_point renewed;  // when the latest renewal (or acquire) was asked
  };
  void renew_loop(std::atomic<bool>& stop, const std::atomic<bool>* cancel,
                  const std::function<void(const std::string&)>& on_lost);
  std::vector<std::string> give_back();

  providers::HostLocker& locker_;
  const model::Fleet& fleet_;
  providers::HostLockClaim claim_;
  std::vector<Held> held_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread renewer_;
};

}  // namespace berth::apply
