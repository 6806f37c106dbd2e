// Reading remotes: a bounded pool, however many remotes the fleet has.

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <set>
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

// Records each remote's request; every remote answers with no instances.
class Recording final : public providers::StateReader {
 public:
  providers::ReadStateResponse read_state(const providers::ReadStateRequest& request) override {
    {
      const std::lock_guard lock(mu_);
      requests_[request.remote.name] = request;
    }
    providers::ReadStateResponse r;
    r.live.status = model::RemoteStatus::ok;
    return r;
  }
  providers::ReadStateRequest at(const std::string& remote) {
    const std::lock_guard lock(mu_);
    return requests_.at(remote);
  }

 private:
  std::mutex mu_;
  std::map<std::string, providers::ReadStateRequest> requests_;
};

model::ContainerSpec placed(const std::string& name, std::vector<std::string> candidates, std::string project,
                            std::optional<model::ImageRef> image) {
  model::ContainerSpec c;
  c.name = name;
  c.placement = model::PlacementPolicy{};
  c.placement->candidates = std::move(candidates);
  c.project = std::move(project);
  c.image = std::move(image);
  return c;
}

// A placed container has no remote yet: every candidate is read as its remote could be. Its
// project is read there without having to exist, its image (on the remote it is placed on) is
// looked up in that project, and a candidate whose capacity the fleet file leaves open is asked
// what it has.
TEST(ReadLive, PlacedContainersAreReadOnEveryCandidate) {
  auto fleet = fleet_of(4);
  fleet.remotes.at("r1").capacity = {8, 16ULL << 30};  // declared whole: nothing to read
  fleet.remotes.at("r2").capacity.cpu = 8;             // memory left open
  fleet.remotes.at("r2").project = "p";
  fleet.containers.emplace("web", placed("web", {"r0", "r1", "r2"}, "p", model::ImageRef{"", "debian", {}, {}}));
  model::ContainerSpec db;
  db.name = "db";
  db.remote = "r3";
  db.image = model::ImageRef{"r3", "pg", {}, {}};
  fleet.containers.emplace("db", db);
  Recording reader;
  const auto read = read_live_state(fleet, reader, 2);
  ASSERT_EQ(read.live.remotes.size(), 4U);

  const auto r0 = reader.at("r0");
  EXPECT_TRUE(r0.read_resources);
  EXPECT_TRUE(r0.read_image_aliases);
  EXPECT_EQ(r0.alias_projects, std::set<std::string>{"p"});
  EXPECT_EQ(r0.projects, std::set<std::string>{"default"}) << "a placed container's project need not exist";
  EXPECT_EQ(r0.other_projects, std::set<std::string>{"p"});

  const auto r1 = reader.at("r1");
  EXPECT_FALSE(r1.read_resources);
  EXPECT_TRUE(r1.read_image_aliases);
  EXPECT_EQ(r1.alias_projects, std::set<std::string>{"p"});

  const auto r2 = reader.at("r2");
  EXPECT_TRUE(r2.read_resources);
  EXPECT_TRUE(r2.read_image_aliases);
  EXPECT_TRUE(r2.alias_projects.empty()) << "p is r2's own project: its aliases are the ones read";
  EXPECT_EQ(r2.projects, std::set<std::string>{"p"});
  EXPECT_EQ(r2.other_projects, std::set<std::string>{"default"});

  const auto r3 = reader.at("r3");  // no candidate: read as before
  EXPECT_FALSE(r3.read_resources);
  EXPECT_TRUE(r3.read_image_aliases);
  EXPECT_TRUE(r3.alias_projects.empty());
  EXPECT_EQ(r3.projects, std::set<std::string>{"default"});
  EXPECT_EQ(r3.other_projects, std::set<std::string>{"p"});
}

TEST(ReadLive, APlacedContainersImageElsewhereIsReadWhereItLives) {
  auto fleet = fleet_of(3);
  const model::ImageServer server{"https://images.example.net", model::ImageProtocol::simplestreams, ""};
  // On r2, which is no candidate: read there, in r2's project, as for any container.
  fleet.containers.emplace("a", placed("a", {"r0", "r1"}, "p", model::ImageRef{"r2", "debian", {}, {}}));
  // On an image server: no remote's aliases.
  fleet.containers.emplace("b", placed("b", {"r0", "r1"}, "q", model::ImageRef{{}, "debian", server, {}}));
  // On r1, a candidate: looked up in the container's project should it be placed there.
  fleet.containers.emplace("c", placed("c", {"r0", "r1"}, "s", model::ImageRef{"r1", "alpine", {}, {}}));
  Recording reader;
  static_cast<void>(read_live_state(fleet, reader, 2));
  const auto r0 = reader.at("r0");
  EXPECT_FALSE(r0.read_image_aliases);
  EXPECT_TRUE(r0.alias_projects.empty());
  EXPECT_TRUE(r0.read_resources);
  EXPECT_EQ(r0.other_projects, (std::set<std::string>{"p", "q", "s"}));
  const auto r1 = reader.at("r1");
  EXPECT_TRUE(r1.read_image_aliases);
  EXPECT_EQ(r1.alias_projects, std::set<std::string>{"s"});
  const auto r2 = reader.at("r2");
  EXPECT_TRUE(r2.read_image_aliases);
  EXPECT_TRUE(r2.alias_projects.empty());
  EXPECT_FALSE(r2.read_resources) << "not a candidate";
}

}  // namespace
}  // namespace berth::apply
