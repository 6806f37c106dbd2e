// engine/apply/host_locks: all or none in sorted order, waiting up to a timeout, renewing while
// the run lasts and stopping it when a lock is lost; against the in-memory locker.

#include "engine/apply/host_locks.hpp"

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tests/unit/apply/memory_locker.hpp"

namespace berth::apply {
namespace {

using namespace std::chrono_literals;
using testing::MemoryLocker;

model::Fleet three_remotes() {
  model::Fleet fleet;
  fleet.name = "shop";
  for (const char* name : {"a", "b", "c"}) fleet.remotes[name].name = name;
  return fleet;
}

providers::HostLockClaim claim(std::chrono::seconds ttl = 120s) {
  providers::HostLockClaim c;
  c.fleet = "shop";
  c.id = "mine";
  c.holder = "berth apply, test";
  c.ttl = ttl;
  return c;
}

// Polls `done` for up to `limit`.
template <typename F>
bool eventually(F done, std::chrono::milliseconds limit = 5000ms) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (done()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return done();
}

TEST(HostLocks, TakesEveryRemoteInSortedOrder) {
  const auto fleet = three_remotes();
  MemoryLocker locker;
  HostLocks locks(locker, fleet, claim());
  const auto out = locks.acquire({"c", "a", "b"}, 0ms, nullptr);

  EXPECT_TRUE(out.acquired);
  EXPECT_EQ(locker.log(), (std::vector<std::string>{"acquire a", "acquire b", "acquire c"}));
  EXPECT_EQ(locker.held_by("mine"), (std::set<std::string>{"a", "b", "c"}));
  EXPECT_TRUE(locks.release().empty());
  EXPECT_TRUE(locker.held_by("mine").empty());
}

TEST(HostLocks, AllOrNoneWhenOneIsHeld) {
  const auto fleet = three_remotes();
  MemoryLocker locker;
  locker.hold("b", "berth apply, ci@runner-2, pid 7");
  HostLocks locks(locker, fleet, claim());
  const auto out = locks.acquire({"a", "b", "c"}, 0ms, nullptr);

  EXPECT_FALSE(out.acquired);
  ASSERT_TRUE(out.holder.has_value());
  EXPECT_EQ(out.holder->holder, "berth apply, ci@runner-2, pid 7");
  EXPECT_EQ(locker.log(), (std::vector<std::string>{"acquire a", "acquire b", "release a"}))
      << "a is given back, c never asked";
  EXPECT_TRUE(locker.held_by("mine").empty());
}

TEST(HostLocks, AnUnreachableRemoteIsAnErrorNotAWait) {
  const auto fleet = three_remotes();
  MemoryLocker locker;
  locker.unreachable("c");
  HostLocks locks(locker, fleet, claim());
  const auto started = std::chrono::steady_clock::now();
  const auto out = locks.acquire({"a", "c"}, 10s, nullptr);

  EXPECT_FALSE(out.acquired);
  EXPECT_FALSE(out.holder.has_value());
  EXPECT_NE(out.error.find("remote c"), std::string::npos) << out.error;
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s) << "only a held lock is waited for";
  EXPECT_TRUE(locker.held_by("mine").empty());
}

TEST(HostLocks, WaitsForAHeldLockUntilTheTimeout) {
  const auto fleet = three_remotes();
  MemoryLocker locker;
  locker.hold("a", "other");
  HostLocks locks(locker, fleet, claim());
  const auto started = std::chrono::steady_clock::now();
  const auto out = locks.acquire({"a"}, 1200ms, nullptr);
  const auto took = std::chrono::steady_clock::now() - started;

  EXPECT_FALSE(out.acquired);
  EXPECT_GE(took, 1200ms);
  EXPECT_LT(took, 4s);
  EXPECT_GE(locker.log().size(), 2U) << "asked again while waiting";
}

TEST(HostLocks, GetsTheLockOnceItIsFreedWithinTheTimeout) {
  const auto fleet = three_remotes();
  MemoryLocker locker;
  locker.hold("b", "other");
  std::thread other([&] {
    std::this_thread::sleep_for(300ms);
    locker.free("b");
  });
  HostLocks locks(locker, fleet, claim());
  const auto out = locks.acquire({"a", "b"}, 10s, nullptr);
  other.join();

  EXPECT_TRUE(out.acquired);
  EXPECT_EQ(locker.held_by("mine"), (std::set<std::string>{"a", "b"}));
}

TEST(HostLocks, CancelEndsTheWait) {
  const auto fleet = three_remotes();
  MemoryLocker locker;
  locker.hold("a", "other");
  std::atomic<bool> cancel{false};
  std::thread interrupt([&] {
    std::this_thread::sleep_for(200ms);
    cancel = true;
  });
  HostLocks locks(locker, fleet, claim());
  const auto started = std::chrono::steady_clock::now();
  const auto out = locks.acquire({"a"}, 60s, &cancel);
  interrupt.join();

  EXPECT_FALSE(out.acquired);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
}

TEST(HostLocks, RenewsWhileTheRunLasts) {
  const auto fleet = three_remotes();
  MemoryLocker locker;
  HostLocks locks(locker, fleet, claim(4s));  // renewed every second
  ASSERT_TRUE(locks.acquire({"a", "b"}, 0ms, nullptr).acquired);
  std::atomic<bool> stop{false};
  locks.keep(stop, nullptr, {});

  EXPECT_TRUE(eventually([&] { return locker.renewals() >= 4; })) << "two rounds over both remotes";
  EXPECT_FALSE(stop.load());
  EXPECT_TRUE(locks.release().empty());
  const int renewals = locker.renewals();
  std::this_thread::sleep_for(1500ms);
  EXPECT_EQ(locker.renewals(), renewals) << "no renewal after release";
}

TEST(HostLocks, ALostLockStopsTheRun) {
  const auto fleet = three_remotes();
  MemoryLocker locker;
  HostLocks locks(locker, fleet, claim(4s));
  ASSERT_TRUE(locks.acquire({"a"}, 0ms, nullptr).acquired);
  std::atomic<bool> stop{false};
  std::string lost;
  std::mutex mutex;
  locks.keep(stop, nullptr, [&](const std::string& why) {
    const std::lock_guard lock(mutex);
    lost = why;
  });
  locker.hold("a", "berth apply, root@elsewhere, pid 9");  // taken over

  EXPECT_TRUE(eventually([&] { return stop.load(); }));
  const std::lock_guard lock(mutex);
  EXPECT_NE(lost.find("the lock on a is no longer this run's (now held by berth apply, root@elsewhere, pid 9)"),
            std::string::npos)
      << lost;
}

TEST(HostLocks, CancelIsPassedOnToTheRun) {
  const auto fleet = three_remotes();
  MemoryLocker locker;
  HostLocks locks(locker, fleet, claim());
  ASSERT_TRUE(locks.acquire({"a"}, 0ms, nullptr).acquired);
  std::atomic<bool> cancel{false};
  std::atomic<bool> stop{false};
  locks.keep(stop, &cancel, {});
  std::this_thread::sleep_for(300ms);
  EXPECT_FALSE(stop.load());
  cancel = true;
  EXPECT_TRUE(eventually([&] { return stop.load(); }, 2000ms));
}

TEST(HostLocks, ChangedRemotesNameEveryActionsRemoteAndSource) {
  plan::Plan p;
  plan::Action update;
  update.address.remote = "b";
  p.actions.push_back(update);
  plan::Action move;
  move.address.remote = "c";
  move.source = plan::Address{};
  move.source->remote = "a";
  p.actions.push_back(move);
  EXPECT_EQ(changed_remotes(p), (std::set<std::string>{"a", "b", "c"}));
  EXPECT_TRUE(changed_remotes(plan::Plan{}).empty());
}

}  // namespace
}  // namespace berth::apply
