// Planning copies and snapshots at scale: the order of copies of copies (computed without a pass
// per link of a chain), snapshot lists of thousands compared with hash sets, and snapshots that
// could not be read (an answer over --max-response-size) planned not at all rather than wrongly.

#include <gtest/gtest.h>

#include "engine/config/load.hpp"
#include "engine/model/live_json.hpp"
#include "engine/plan/plan.hpp"

namespace berth::plan {
namespace {

model::Fleet load(const std::string& text) {
  auto loaded = config::load_fleet_text(text, "fleet.yaml", [](std::string_view) { return std::nullopt; });
  if (!loaded.fleet) throw std::runtime_error(diag::format(loaded.diagnostics));
  return std::move(*loaded.fleet);
}

std::vector<std::string> ids(const Plan& plan) {
  std::vector<std::string> out;
  for (const auto& a : plan.actions) out.push_back(a.id);
  return out;
}

// Passes in file order, each planning the copies whose source is planned by then. Pass 1: c-b and
// c-z (their source exists); pass 2: c-a (after c-z), then c-y (after c-a, in the same pass). A
// depth-first order would put c-z and c-a before c-b.
TEST(PlanCopies, CopiesOfCopiesInPassOrder) {
  const auto fleet = load(R"(version: 1
remotes: {h: {url: "unix:///s"}}
containers:
  c-a: {remote: h, copy_of: c-z}
  c-b: {remote: h, copy_of: c-c}
  c-c: {remote: h, image: "h:bb", state: stopped}
  c-y: {remote: h, copy_of: c-a}
  c-z: {remote: h, copy_of: c-c}
)");
  const auto live = model::live_state_from_json(nlohmann::json::parse(
      R"({"remotes": {"h": {"status": "ok", "instances": [{"name": "c-c", "status_code": 102, "config": {
          "user.berth.fleet": "default",
          "user.berth.managed": "{\"config\":[],\"devices\":[],\"profiles\":[]}"}}]}}})"));
  const Plan plan = compute_plan(fleet, live, {});
  EXPECT_EQ(ids(plan), (std::vector<std::string>{"copy h:c-b", "copy h:c-z", "copy h:c-a", "copy h:c-y"}))
      << ::testing::PrintToString(ids(plan));
  EXPECT_FALSE(plan.diagnostics.has_errors()) << diag::format(plan.diagnostics);
}

// 20000 declared snapshots against 20000 live ones, half overlapping: the right ones taken and
// pruned (each comparison is a hash lookup; this was quadratic).
TEST(PlanSnapshots, ThousandsOfSnapshotsBothWays) {
  std::string names;
  nlohmann::json live_snaps = nlohmann::json::array();
  for (int i = 0; i < 20'000; ++i) {
    names += "d" + std::to_string(i) + ", ";
    live_snaps.push_back(i % 2 == 0 ? "d" + std::to_string(i) : "old" + std::to_string(i));
  }
  const auto fleet = load(
      "version: 1\nremotes: {h: {url: \"unix:///s\"}}\ncontainers:\n"
      "  c: {remote: h, image: \"h:bb\", state: stopped, snapshots: {names: [" +
      names + "], prune: true}}\n");
  nlohmann::json live_json = {
      {"remotes",
       {{"h", {{"status", "ok"}, {"instances", {{{"name", "c"}, {"status_code", 102}, {"snapshots", live_snaps}}}}}}}}};
  const Plan plan = compute_plan(fleet, model::live_state_from_json(live_json), {});
  std::size_t taken = 0;
  std::size_t deleted = 0;
  for (const auto& a : plan.actions) {
    taken += a.kind == ActionKind::snapshot ? 1 : 0;
    deleted += a.kind == ActionKind::delete_snapshot ? 1 : 0;
  }
  EXPECT_EQ(taken, 10'000U);
  EXPECT_EQ(deleted, 10'000U);
}

TEST(PlanSnapshots, UnknownSnapshotsAreNeitherTakenNorDeleted) {
  const auto fleet = load(
      "version: 1\nremotes: {h: {url: \"unix:///s\"}}\ncontainers:\n"
      "  c: {remote: h, image: \"h:bb\", state: stopped, snapshots: {names: [s1], prune: true}}\n");
  auto live = model::live_state_from_json(nlohmann::json::parse(
      R"({"remotes": {"h": {"status": "ok", "instances": [{"name": "c", "status_code": 102, "config": {
          "user.berth.fleet": "default",
          "user.berth.managed": "{\"config\":[],\"devices\":[],\"profiles\":[]}"}}]}}})"));
  live.remotes.at("h").instances.at("c").snapshots_known = false;
  const Plan plan = compute_plan(fleet, live, {});
  EXPECT_TRUE(plan.actions.empty()) << ::testing::PrintToString(ids(plan));
  ASSERT_EQ(plan.diagnostics.items().size(), 1U);
  EXPECT_EQ(plan.diagnostics.items()[0].summary, "its snapshots could not be read; none are taken or deleted");
  EXPECT_EQ(plan.diagnostics.items()[0].severity, diag::Severity::warning);
}

}  // namespace
}  // namespace berth::plan
