#include "providers/lxd/live_parse.hpp"

#include <gtest/gtest.h>

#include "lxd_fixtures.hpp"

namespace berth::lxd {
namespace {

std::vector<std::string> names(const model::LiveInstance& i) {
  std::vector<std::string> out;
  for (const auto& s : i.snapshots) out.push_back(s.name);
  return out;
}

TEST(ParseInstances, FillsTheLiveModel) {
  auto parsed = parse_instances(testing::instances_fixture());
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  ASSERT_EQ(parsed->size(), 3u);
  const auto& c1 = parsed->at("c1");
  EXPECT_EQ(c1.name, "c1");
  EXPECT_EQ(c1.type, "container");
  EXPECT_EQ(c1.architecture, "x86_64");
  EXPECT_EQ(c1.status, "Running");
  EXPECT_EQ(c1.status_code, 103);
  EXPECT_EQ(c1.power, model::LivePower::running);
  EXPECT_EQ(c1.config.at("limits.memory"), "256MiB");
  EXPECT_EQ(c1.profiles, std::vector<std::string>{"default"});
  EXPECT_EQ(c1.created_at, "2026-11-26T17:41:30.379772145Z");
  EXPECT_TRUE(c1.owned_by("default"));
  const auto& c2 = parsed->at("c2");
  EXPECT_EQ(c2.power, model::LivePower::stopped);
  EXPECT_EQ(c2.devices.at("data").at("path"), "/mnt");
  EXPECT_EQ(c2.devices.at("data").at("readonly"), "true");  // non-strings become their JSON text
  EXPECT_EQ(parsed->at("c3").power, model::LivePower::frozen);
}

TEST(ParseInstances, RejectsWhatIsNotAList) {
  EXPECT_FALSE(parse_instances(nlohmann::json::object()).ok());
  EXPECT_FALSE(parse_instances(nlohmann::json::array({{{"type", "container"}}})).ok());
}

TEST(SnapshotVolumes, AttachedToTheirInstancesOnly) {
  auto parsed = parse_instances(testing::instances_fixture());
  ASSERT_TRUE(parsed.ok());
  ASSERT_TRUE(add_snapshot_volumes(testing::volumes_fixture(), *parsed).ok());
  finish_instances(*parsed);
  // No creation times in LXD 5.0's volume listing: ordered by name.
  EXPECT_EQ(names(parsed->at("c1")), (std::vector<std::string>{"snap0", "snap1"}));
  EXPECT_EQ(names(parsed->at("c2")), (std::vector<std::string>{"aa", "zz"}));
  EXPECT_TRUE(parsed->at("c3").snapshots.empty());
  EXPECT_TRUE(parsed->at("c1").snapshots[0].created_at.empty());  // 0001-01-01 means unknown
  EXPECT_FALSE(add_snapshot_volumes(nlohmann::json::object(), *parsed).ok());
}

TEST(SnapshotVolumes, OldestFirstWhenTimesAreKnown) {
  model::LiveInstance inst;
  inst.name = "c1";
  const auto snaps = nlohmann::json::array({
      {{"name", "zz"}, {"created_at", "2026-11-26T17:42:16.5Z"}},
      {{"name", "aa"}, {"created_at", "2026-11-26T17:42:17Z"}},
      {{"name", "mm"}, {"created_at", "2026-11-26T17:42:16Z"}},  // whole second: sorts before .5
  });
  ASSERT_TRUE(set_instance_snapshots(snaps, inst).ok());
  LiveInstances all{{"c1", inst}};
  finish_instances(all);
  EXPECT_EQ(names(all.at("c1")), (std::vector<std::string>{"mm", "zz", "aa"}));
}

TEST(FinishInstances, SetsDigests) {
  auto parsed = parse_instances(testing::instances_fixture());
  ASSERT_TRUE(parsed.ok());
  finish_instances(*parsed);
  for (const auto& [name, inst] : *parsed) {
    EXPECT_EQ(inst.digest, model::digest_of(inst)) << name;
    EXPECT_EQ(inst.digest.rfind("sha256:", 0), 0u);
  }
}

TEST(ImageAliases, BothRecursionForms) {
  EXPECT_EQ(*parse_image_aliases(nlohmann::json::array({{{"name", "bb"}, {"target", "abc"}}, {{"name", "alpine"}}})),
            (model::ImageAliases{{"alpine", ""}, {"bb", "abc"}}));
  EXPECT_EQ(*parse_image_aliases(nlohmann::json::array({"/1.0/images/aliases/b%3Fb"})),
            (model::ImageAliases{{"b?b", ""}}));
  const auto none = parse_image_aliases(nullptr);  // Go's nil slice
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  EXPECT_FALSE(parse_image_aliases(nlohmann::json::array({{{"target", "abc"}}})).ok()) << "an alias without a name";
}

// What LXD 5.0.2 answers on a cluster (captured from a 3-member cluster with m3 offline).
TEST(ParseInstances, ClusterLocationsAndPlaceholders) {
  const auto listing = nlohmann::json::parse(R"([
    {"name": "c1", "type": "container", "architecture": "x86_64", "status": "Running", "status_code": 103,
     "location": "m2", "config": {}, "devices": {}, "profiles": ["default"], "ephemeral": false},
    {"name": "c3", "type": "", "architecture": "", "status": "Error", "status_code": 112, "location": "m3",
     "config": null, "devices": null, "profiles": null, "ephemeral": false, "project": "default"},
    {"name": "broken", "type": "container", "architecture": "x86_64", "status": "Error", "status_code": 112,
     "location": "m1", "config": {}, "devices": {}, "profiles": [], "ephemeral": false},
    {"name": "alone", "type": "container", "architecture": "x86_64", "status": "Stopped", "status_code": 102,
     "location": "none", "config": {}, "devices": {}, "profiles": [], "ephemeral": false}
  ])");
  auto parsed = parse_instances(listing);
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  EXPECT_EQ(parsed->at("c1").location, "m2");
  EXPECT_FALSE(parsed->at("c1").placeholder);
  EXPECT_EQ(parsed->at("c3").location, "m3");
  EXPECT_TRUE(parsed->at("c3").placeholder);
  EXPECT_FALSE(parsed->at("broken").placeholder);  // a real instance in error: it has its architecture
  EXPECT_EQ(parsed->at("alone").location, "");     // "none": a standalone host
}

TEST(ParseMembers, ByNameWithStatusAndGroups) {
  auto members = parse_members(nlohmann::json::parse(R"([
    {"server_name": "m1", "status": "Online", "message": "Fully operational", "groups": ["default"]},
    {"server_name": "m3", "status": "Offline", "message": "No heartbeat", "groups": ["default", "fast"]}
  ])"));
  ASSERT_TRUE(members.ok()) << members.error().message;
  ASSERT_EQ(members->size(), 2U);
  EXPECT_TRUE(members->at("m1").online());
  EXPECT_FALSE(members->at("m3").online());
  EXPECT_EQ(members->at("m3").groups, (std::vector<std::string>{"default", "fast"}));
  // Hostile answers: an error, never a crash.
  EXPECT_FALSE(parse_members(nlohmann::json::object()).ok());
  EXPECT_FALSE(parse_members(nlohmann::json::parse(R"([{"status": "Online"}])")).ok());
  EXPECT_FALSE(parse_members(nlohmann::json::parse(R"([{"server_name": ""}])")).ok());
  EXPECT_FALSE(parse_members(nlohmann::json::parse(R"([{"server_name": "a/b"}])")).ok());
  EXPECT_FALSE(parse_members(nlohmann::json::parse(R"([{"server_name": "m1"}, {"server_name": "m1"}])")).ok());
  EXPECT_FALSE(parse_members(nlohmann::json::parse(R"([{"server_name": "m1", "groups": "x"}])")).ok());
}

}  // namespace
}  // namespace berth::lxd
