// Reading remotes: a bounded pool, however many remotes the fleet has.

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>

#include <gtest/gtest.h>

#include "engine/apply/read_live.hpp"

namespace berth::apply {
namespace {

// Every remote is "unreachable" after a short wait; records how many reads ran at once.
class SlowUnreachable final : public providers::StateReader {
 public:
  providers::ReadStateResponse read_state(const providers::ReadStateRequest& request) override {
    const int now = ++running_;
    int seen = peak_.load();
    while (now > seen && !peak_.compare_exchange_weak(seen, now)) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    --running_;
    providers::ReadStateResponse r;
    r.live.status = model::RemoteStatus::unknown;
    r.live.error = "remote " + request.remote.name + ": cannot connect";
    return r;
  }
  int peak() const { return peak_.load(); }

 private:
  std::atomic<int> running_{0};
  std::atomic<int> peak_{0};
};

model::Fleet fleet_of(int remotes) {
  model::Fleet fleet;
  for (int i = 0; i < remotes; ++i) {
    model::RemoteSpec spec;
    spec.name = "r" + std::to_string(i);
    spec.url = "https://127.0.0.1:1";
    fleet.remotes.emplace(spec.name, spec);
  }
  return fleet;
}

TEST(ReadLive, ThreeHundredUnreachableRemotesStayWithinTheBound) {
  const auto fleet = fleet_of(300);
  SlowUnreachable reader;
  const auto read = read_live_state(fleet, reader, 32);
  EXPECT_EQ(read.live.remotes.size(), 300U);
  for (const auto& [name, remote] : read.live.remotes) {
    EXPECT_EQ(remote.status, model::RemoteStatus::unknown);
    EXPECT_EQ(remote.name, name);
    EXPECT_NE(remote.error.find(name + ":"), std::string::npos) << "each result lands in its own remote";
  }
  EXPECT_LE(reader.peak(), 32);
  EXPECT_GT(reader.peak(), 1) << "remotes are still read in parallel";
}

TEST(ReadLive, ABoundOfOneReadsOneAtATime) {
  SlowUnreachable reader;
  const auto read = read_live_state(fleet_of(10), reader, 1);
  EXPECT_EQ(read.live.remotes.size(), 10U);
  EXPECT_EQ(reader.peak(), 1);
}

// A reader that throws (a bug, or memory exhausted by an answer) for one remote.
class ThrowsFor final : public providers::StateReader {
 public:
  providers::ReadStateResponse read_state(const providers::ReadStateRequest& request) override {
    if (request.remote.name == "r1") throw std::runtime_error("boom");
    providers::ReadStateResponse r;
    r.live.status = model::RemoteStatus::ok;
    return r;
  }
};

TEST(ReadLive, AReaderThatThrowsMakesItsRemoteUnknownNotTheProcessEnd) {
  ThrowsFor reader;
  const auto read = read_live_state(fleet_of(3), reader, 2);
  EXPECT_EQ(read.live.remotes.at("r1").status, model::RemoteStatus::unknown);
  EXPECT_EQ(read.live.remotes.at("r1").error, "remote r1: internal error: boom");
  EXPECT_EQ(read.live.remotes.at("r0").status, model::RemoteStatus::ok);
  EXPECT_EQ(read.live.remotes.at("r2").status, model::RemoteStatus::ok);
}

}  // namespace
}  // namespace berth::apply
