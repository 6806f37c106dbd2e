// compute_destroy_plan and stale_addresses: what `berth destroy` and `berth apply PLANFILE` rely on.

#include <gtest/gtest.h>

#include "engine/model/live_json.hpp"
#include "engine/plan/plan.hpp"

namespace berth::plan {
namespace {

model::Fleet two_remote_fleet() {
  model::Fleet fleet;
  fleet.name = "prod";
  fleet.remotes["a"] = model::RemoteSpec{"a", "https://127.0.0.1:8443", std::nullopt, 4, {}};
  fleet.remotes["b"] = model::RemoteSpec{"b", "https://127.0.0.2:8443", std::nullopt, 4, {}};
  return fleet;
}

model::LiveState live_of(const char* json) {
  return model::live_state_from_json(nlohmann::json::parse(json));
}

TEST(DestroyPlan, DeletesOnlyWhatTheFleetOwnsOnReadRemotes) {
  const auto live = live_of(R"({"remotes": {
    "a": {"status": "ok", "instances": [
      {"name": "mine", "status_code": 103, "config": {"user.berth.fleet": "prod"}},
      {"name": "other-fleet", "status_code": 103, "config": {"user.berth.fleet": "staging"}},
      {"name": "handmade", "status_code": 102}]},
    "b": {"status": "unknown", "error": "connection refused"}}})");
  const Plan plan = compute_destroy_plan(two_remote_fleet(), live);
  ASSERT_EQ(plan.actions.size(), 1U);
  EXPECT_EQ(plan.actions[0].id, "delete a:mine");
  EXPECT_EQ(plan.actions[0].disruption, Disruption::destroy);
  EXPECT_FALSE(plan.complete());
  EXPECT_EQ(plan.basis.size(), 3U);
}

TEST(StaleAddresses, ChangedAppearedAndVanishedInstancesMakeASavedPlanStale) {
  const auto before = live_of(R"({"remotes": {
    "a": {"status": "ok", "instances": [
      {"name": "web", "status_code": 103, "config": {"limits.memory": "1GiB"}},
      {"name": "db", "status_code": 103}]},
    "b": {"status": "ok", "instances": []}}})");
  Plan plan = compute_destroy_plan(two_remote_fleet(), before);  // for its basis
  Action update;
  update.address = Address{"a", "web", std::nullopt};
  Action copy;
  copy.address = Address{"b", "clone", std::nullopt};
  copy.source = Address{"a", "db", std::nullopt};
  plan.actions = {update, copy};

  EXPECT_TRUE(stale_addresses(plan, before).empty());

  const auto after = live_of(R"({"remotes": {
    "a": {"status": "ok", "instances": [
      {"name": "web", "status_code": 103, "config": {"limits.memory": "2GiB"}},
      {"name": "untouched", "status_code": 103}]},
    "b": {"status": "ok", "instances": [{"name": "clone", "status_code": 102}]}}})");
  EXPECT_EQ(stale_addresses(plan, after),
            (std::vector<std::string>{"a:db (vanished)", "a:web (changed)", "b:clone (appeared)"}));

  const auto volatile_only = live_of(R"({"remotes": {
    "a": {"status": "ok", "instances": [
      {"name": "web", "status_code": 103, "config": {"limits.memory": "1GiB", "volatile.eth0.hwaddr": "x"}},
      {"name": "db", "status_code": 103}]},
    "b": {"status": "ok", "instances": []}}})");
  EXPECT_TRUE(stale_addresses(plan, volatile_only).empty()) << "volatile.* keys are not intent";
}

}  // namespace
}  // namespace berth::plan
