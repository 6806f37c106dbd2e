// The live-state fixture format: what placement reads of the hosts is optional, and written only
// when set, so fixtures without it read and write as before.

#include "engine/model/live_json.hpp"

#include <gtest/gtest.h>

namespace berth::model {
namespace {

using Json = nlohmann::json;

TEST(LiveJson, LimitsAndResourcesRoundTrip) {
  const Json fixture = Json::parse(R"json({"remotes": {
    "a": {"status": "ok", "instances": [
      {"name": "c1", "status_code": 103, "config": {"user.x": "1"}, "limits": {"limits.cpu": "2", "limits.memory": "1GiB"}},
      {"name": "c2", "config": {"limits.cpu": "4"}}],
      "resources": {"cpu": 8, "memory": 17179869184}},
    "b": {"status": "ok", "instances": [], "resources_error": "remote b: GET /1.0/resources failed: not found (HTTP 404)"},
    "c": {"status": "ok", "instances": []}}})json");
  const LiveState live = live_state_from_json(fixture);
  const auto& a = live.remotes.at("a");
  EXPECT_EQ(a.instances.at("c1").limits, (ConfigMap{{"limits.cpu", "2"}, {"limits.memory", "1GiB"}}));
  EXPECT_TRUE(a.instances.at("c2").limits.empty()) << "limits are what the fixture says, not the config";
  ASSERT_TRUE(a.resources.has_value());
  EXPECT_EQ(*a.resources, (HostResources{8, 16ULL << 30}));
  EXPECT_TRUE(a.resources_error.empty());
  const auto& b = live.remotes.at("b");
  EXPECT_FALSE(b.resources.has_value());
  EXPECT_EQ(b.resources_error, "remote b: GET /1.0/resources failed: not found (HTTP 404)");
  EXPECT_FALSE(live.remotes.at("c").resources.has_value());

  const Json out = to_json(live);
  EXPECT_EQ(out["remotes"]["a"]["resources"], (Json{{"cpu", 8}, {"memory", 17179869184ULL}}));
  EXPECT_EQ(out["remotes"]["a"]["instances"][0]["limits"], fixture["remotes"]["a"]["instances"][0]["limits"]);
  EXPECT_FALSE(out["remotes"]["a"]["instances"][1].contains("limits"));
  EXPECT_FALSE(out["remotes"]["a"].contains("resources_error"));
  EXPECT_EQ(out["remotes"]["b"]["resources_error"], b.resources_error);
  EXPECT_FALSE(out["remotes"]["b"].contains("resources"));
  EXPECT_FALSE(out["remotes"]["c"].contains("resources"));
  EXPECT_FALSE(out["remotes"]["c"].contains("resources_error"));
  EXPECT_EQ(to_json(live_state_from_json(out)), out);
}

}  // namespace
}  // namespace berth::model
