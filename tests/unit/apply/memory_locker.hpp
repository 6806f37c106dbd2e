#pragma once
// An in-memory providers::HostLocker for the engine's tests: one lock per remote, no expiry
// (tests replace a lock by hand to play a takeover), a log of every call in order.

#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "providers/provider.hpp"

namespace berth::apply::testing {

class MemoryLocker final : public providers::HostLocker {
 public:
  // Someone else's lock on `remote`.
  void hold(const std::string& remote, const std::string& holder) {
    const std::lock_guard lock(mutex_);
    locks_[remote] = info(remote, "other-" + holder, holder);
  }
  void free(const std::string& remote) {
    const std::lock_guard lock(mutex_);
    locks_.erase(remote);
  }
  void unreachable(const std::string& remote) {
    const std::lock_guard lock(mutex_);
    unreachable_.insert(remote);
  }
  [[nodiscard]] std::vector<std::string> log() const {
    const std::lock_guard lock(mutex_);
    return log_;
  }
  [[nodiscard]] std::set<std::string> held_by(const std::string& id) const {
    const std::lock_guard lock(mutex_);
    std::set<std::string> out;
    for (const auto& [remote, l] : locks_) {
      if (l.id == id) out.insert(remote);
    }
    return out;
  }
  [[nodiscard]] int renewals() const {
    const std::lock_guard lock(mutex_);
    return renewals_;
  }

  providers::HostLockResponse acquire(const model::RemoteSpec& remote, const providers::HostLockClaim& claim) override {
    const std::lock_guard lock(mutex_);
    log_.push_back("acquire " + remote.name);
    providers::HostLockResponse out;
    if (unreachable_.count(remote.name) != 0) {
      out.error = "remote " + remote.name + ": unreachable";
      return out;
    }
    const auto it = locks_.find(remote.name);
    if (it != locks_.end() && it->second.id != claim.id) {
      out.answer = providers::LockAnswer::held;
      out.holder = it->second;
      return out;
    }
    locks_[remote.name] = info(remote.name, claim.id, claim.holder);
    out.answer = providers::LockAnswer::acquired;
    return out;
  }
  providers::HostLockResponse renew(const model::RemoteSpec& remote, const providers::HostLockClaim& claim) override {
    const std::lock_guard lock(mutex_);
    ++renewals_;
    providers::HostLockResponse out;
    const auto it = locks_.find(remote.name);
    if (it == locks_.end() || it->second.id != claim.id) {
      out.answer = providers::LockAnswer::held;
      if (it != locks_.end()) out.holder = it->second;
      return out;
    }
    out.answer = providers::LockAnswer::acquired;
    return out;
  }
  std::string release(const model::RemoteSpec& remote, const providers::HostLockClaim& claim) override {
    const std::lock_guard lock(mutex_);
    log_.push_back("release " + remote.name);
    const auto it = locks_.find(remote.name);
    if (it != locks_.end() && it->second.id == claim.id) locks_.erase(it);
    return {};
  }
  std::vector<providers::HostLockInfo> list(const model::RemoteSpec& remote, const std::string& /*fleet*/,
                                            std::string& /*error*/) override {
    const std::lock_guard lock(mutex_);
    const auto it = locks_.find(remote.name);
    if (it == locks_.end()) return {};
    return {it->second};
  }
  std::string remove(const model::RemoteSpec& remote, const providers::HostLockInfo& /*lock*/) override {
    free(remote.name);
    return {};
  }

 private:
  static providers::HostLockInfo info(const std::string& remote, const std::string& id, const std::string& holder) {
    providers::HostLockInfo i;
    i.remote = remote;
    i.object = "lock";
    i.id = id;
    i.holder = holder;
    return i;
  }

  mutable std::mutex mutex_;
  std::map<std::string, providers::HostLockInfo> locks_;
  std::set<std::string> unreachable_;
  std::vector<std::string> log_;
  int renewals_ = 0;
};

}  // namespace berth::apply::testing
