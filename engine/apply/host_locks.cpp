#include "engine/apply/host_locks.hpp"

#include <algorithm>
#include <string>

#include "engine/util/random.hpp"

namespace berth::apply {

std::set<std::string> changed_remotes(const plan::Plan& plan) {
  std::set<std::string> remotes;
  for (const auto& a : plan.actions) {
    remotes.insert(a.address.remote);
    if (a.source) remotes.insert(a.source->remote);
  }
  return remotes;
}

HostLocks::HostLocks(providers::HostLocker& locker, const model::Fleet& fleet, providers::HostLockClaim claim)
    : locker_(locker), fleet_(fleet), claim_(std::move(claim)) {}

HostLocks::~HostLocks() {
  release();
}

HostLockOutcome HostLocks::acquire(const std::set<std::string>& remotes, std::chrono::milliseconds timeout,
                                   const std::atomic<bool>* cancel) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    HostLockOutcome out;
    out.acquired = true;
    for (const auto& name : remotes) {  // sorted: two runs never wait on each other in a cycle
      const auto remote = fleet_.remotes.find(name);
      if (remote == fleet_.remotes.end()) continue;  // not a fleet remote: nothing is changed there
      const auto asked = std::chrono::steady_clock::now();
      auto response = locker_.acquire(remote->second, claim_);
      if (response.answer == providers::LockAnswer::acquired) {
        held_.push_back({&remote->second, asked});
        if (response.took_over && response.holder) out.taken_over.push_back(*response.holder);
        continue;
      }
      out.acquired = false;
      out.holder = std::move(response.holder);
      out.error = std::move(response.error);
      break;
    }
    if (out.acquired) return out;
    give_back();  // all or none
    const bool retry =
        out.holder.has_value() && std::chrono::steady_clock::now() < deadline && (cancel == nullptr || !cancel->load());
    if (!retry) return out;
    // Spread the retries of runs waiting on the same lock: 0.5 to 1.5 s apart.
    const auto pause = std::chrono::milliseconds(500 + std::stoul(util::random_hex(3), nullptr, 16) % 1000);
    std::unique_lock lock(mutex_);
    wake_.wait_until(lock, std::min(deadline, std::chrono::steady_clock::now() + pause),
                     [&] { return cancel != nullptr && cancel->load(); });
  }
}

void HostLocks::keep(std::atomic<bool>& stop, const std::atomic<bool>* cancel,
                     std::function<void(const std::string&)> on_lost) {
  if (renewer_.joinable()) return;
  renewer_ = std::thread([this, &stop, cancel, on_lost = std::move(on_lost)] { renew_loop(stop, cancel, on_lost); });
}

void HostLocks::renew_loop(std::atomic<bool>& stop, const std::atomic<bool>* cancel,
                           const std::function<void(const std::string&)>& on_lost) {
  const auto every = std::max<std::chrono::steady_clock::duration>(claim_.ttl / 4, std::chrono::seconds(1));
  auto next = std::chrono::steady_clock::now() + every;
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    // The external cancel flag is polled: it is an atomic set from a signal handler.
    wake_.wait_for(lock, std::chrono::milliseconds(200), [&] { return stopping_; });
    if (stopping_) break;
    if (cancel != nullptr && cancel->load()) stop.store(true);
    if (std::chrono::steady_clock::now() < next) continue;
    next = std::chrono::steady_clock::now() + every;
    for (auto& h : held_) {
      const auto asked = std::chrono::steady_clock::now();
      lock.unlock();
      const auto response = locker_.renew(*h.remote, claim_);
      lock.lock();
      if (response.answer == providers::LockAnswer::acquired) {
        h.renewed = asked;
        continue;
      }
      std::string why;
      if (response.answer == providers::LockAnswer::held) {
        why = "the lock on " + h.remote->name + " is no longer this run's" +
              (response.holder ? " (now held by " + response.holder->holder + ")" : std::string{});
      } else if (asked - h.renewed >= claim_.ttl - every) {
        // Not renewed for so long that it expires before the next try: another run may take it.
        why = "the lock on " + h.remote->name + " could not be renewed before it expires (" + response.error + ")";
      }
      if (!why.empty() && !stop.exchange(true) && on_lost) on_lost(why + "; starting no new actions");
    }
  }
}

std::vector<std::string> HostLocks::give_back() {
  std::vector<std::string> errors;
  // In reverse order of taking.
  for (auto it = held_.rbegin(); it != held_.rend(); ++it) {
    auto error = locker_.release(*it->remote, claim_);
    if (!error.empty()) errors.push_back(std::move(error));
  }
  held_.clear();
  return errors;
}

std::vector<std::string> HostLocks::release() {
  {
    const std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (renewer_.joinable()) renewer_.join();
  return give_back();
}

}  // namespace berth::apply
