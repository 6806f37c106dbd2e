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

// Records the image server reads; every remote answers with no instances.
class ImageCounting final : public providers::StateReader {
 public:
  providers::ReadStateResponse read_state(const providers::ReadStateRequest& request) override {
    providers::ReadStateResponse r;
    r.live.status = model::RemoteStatus::ok;
    if (request.read_image_aliases) r.live.image_aliases.emplace();
    return r;
  }
  providers::ReadImageResponse read_image(const providers::ReadImageRequest& request) override {
    ++reads_;
    if (request.query.alias == "boom") throw std::runtime_error("bug");
    providers::ReadImageResponse r;
    r.image.fingerprints["x86_64"] = std::string(64, 'a');
    return r;
  }
  int reads() const { return reads_.load(); }

 private:
  std::atomic<int> reads_{0};
};

TEST(ReadLive, EachServerAliasIsReadOnceAndPinnedImagesNotAtAll) {
  auto fleet = fleet_of(2);
  const model::ImageServer server{"https://images.example.net", model::ImageProtocol::simplestreams, ""};
  auto add = [&](const std::string& name, const std::string& alias, std::optional<std::string> pin) {
    model::ContainerSpec c;
    c.name = name;
    c.remote = "r0";
    c.image = model::ImageRef{{}, alias, server, std::move(pin)};
    fleet.containers.emplace(name, c);
  };
  add("a", "debian/12", std::nullopt);
  add("b", "debian/12", std::nullopt);
  add("c", "pinned", std::string(64, 'c'));
  add("d", "boom", std::nullopt);
  ImageCounting reader;
  const auto read = read_live_state(fleet, reader, 4);
  EXPECT_EQ(reader.reads(), 2) << "debian/12 once, boom once, the pinned image never";
  ASSERT_EQ(read.live.server_images.size(), 2U);
  const auto& debian = read.live.server_images.at({server, "debian/12"});
  EXPECT_EQ(debian.fingerprints.at("x86_64"), std::string(64, 'a'));
  const auto& boom = read.live.server_images.at({server, "boom"});
  EXPECT_EQ(boom.error, "image server https://images.example.net: internal error: bug");
  // A server image is no reason to read a remote's aliases.
  EXPECT_FALSE(read.live.remotes.at("r0").image_aliases);
}

}  // namespace
}  // namespace berth::apply
