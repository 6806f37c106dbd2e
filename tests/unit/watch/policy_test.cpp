// What one watch run corrects and what it only reports: modes, drift:/suspend:, consent, the
// empty-file guard, backoff and dependencies.

#include <gtest/gtest.h>

#include "engine/config/load.hpp"
#include "engine/model/live_json.hpp"
#include "engine/plan/plan.hpp"
#include "engine/watch/policy.hpp"
#include "engine/watch/report.hpp"
#include "tests/unit/watch/watch_test_support.hpp"

namespace berth::watch {
namespace {

using namespace std::chrono_literals;

using testing::load;

plan::Action action(const std::string& kind, const std::string& container, std::vector<std::string> deps = {}) {
  plan::Action a;
  a.kind = *plan::action_kind_from_string(kind);
  a.address = {"a", container, std::nullopt, "default"};
  a.id = kind + " a:" + container;
  a.depends_on = std::move(deps);
  return a;
}

const Decision& of(const std::vector<Decision>& ds, const std::string& id) {
  for (const auto& d : ds) {
    if (d.action_id == id) return d;
  }
  throw std::runtime_error("no decision for " + id);
}

const std::string fleet_text =
    "version: 1\nremotes: {a: {url: \"unix:///a\"}}\ncontainers:\n"
    "  plain: {remote: a, image: \"a:bb\"}\n"
    "  reported: {remote: a, image: \"a:bb\", drift: report}\n"
    "  ignored: {remote: a, image: \"a:bb\", drift: ignore}\n"
    "  always: {remote: a, image: \"a:bb\", drift: correct}\n"
    "  paused: {remote: a, image: \"a:bb\", suspend: true}\n";

TEST(WatchPolicy, CorrectModeRunsWhatTheContainerAllows) {
  const auto fleet = load(fleet_text);
  plan::Plan p;
  for (const char* c : {"plain", "reported", "ignored", "always", "paused"}) p.actions.push_back(action("start", c));
  const auto ds = decide(p, fleet, PolicyInput{});
  EXPECT_TRUE(of(ds, "start a:plain").run);
  EXPECT_TRUE(of(ds, "start a:always").run);
  EXPECT_FALSE(of(ds, "start a:reported").run);
  EXPECT_EQ(of(ds, "start a:reported").why, "drift: report");
  EXPECT_FALSE(of(ds, "start a:ignored").run);
  EXPECT_FALSE(of(ds, "start a:ignored").reported);
  EXPECT_FALSE(of(ds, "start a:paused").run);
  EXPECT_EQ(of(ds, "start a:paused").why, "suspend: true");
}

TEST(WatchPolicy, ReportModeRunsOnlyDriftCorrect) {
  const auto fleet = load(fleet_text);
  plan::Plan p;
  p.actions = {action("start", "plain"), action("start", "always"), action("delete", "gone")};
  PolicyInput input;
  input.mode = Mode::report;
  const auto ds = decide(p, fleet, input);
  EXPECT_FALSE(of(ds, "start a:plain").run);
  EXPECT_EQ(of(ds, "start a:plain").why, "report mode");
  EXPECT_TRUE(of(ds, "start a:always").run);  // drift: correct overrides the mode
  EXPECT_FALSE(of(ds, "delete a:gone").run);  // undeclared: the mode decides
}

TEST(WatchPolicy, SuspendedFromTheApiOrTheFileRunsNothing) {
  auto fleet = load(fleet_text);
  plan::Plan p;
  p.actions = {action("start", "plain"), action("start", "always")};
  PolicyInput input;
  input.suspended = true;
  for (const auto& d : decide(p, fleet, input)) EXPECT_FALSE(d.run) << d.action_id;
  fleet.suspend = true;
  for (const auto& d : decide(p, fleet, PolicyInput{})) {
    EXPECT_FALSE(d.run);
    EXPECT_EQ(d.why, "the fleet is suspended (suspend: true)");
  }
  EXPECT_EQ(container_policy(fleet.containers.at("plain"), fleet, PolicyInput{}), Policy::suspended);
  EXPECT_EQ(container_policy(fleet.containers.at("ignored"), fleet, PolicyInput{}), Policy::ignore);
}

TEST(WatchPolicy, UnconsentedActionsAreOnlyReported) {
  const auto fleet = load(fleet_text);
  plan::Plan p;
  auto restart = action("restart", "plain");
  restart.disruption = plan::Disruption::restart;
  restart.consented = false;
  p.actions = {restart};
  const auto ds = decide(p, fleet, PolicyInput{});
  EXPECT_FALSE(ds[0].run);
  EXPECT_NE(ds[0].why.find("--allow-restart"), std::string::npos) << ds[0].why;
  p.actions[0].consented = true;
  EXPECT_TRUE(decide(p, fleet, PolicyInput{})[0].run);
}

TEST(WatchPolicy, AnEmptyContainerListDeletesNothingWithoutAllowEmpty) {
  const auto fleet = load("version: 1\nprune: true\nremotes: {a: {url: \"unix:///a\"}}\ncontainers: {}\n");
  plan::Plan p;
  p.actions = {action("delete", "web")};
  EXPECT_FALSE(decide(p, fleet, PolicyInput{})[0].run);
  EXPECT_NE(decide(p, fleet, PolicyInput{})[0].why.find("--allow-empty"), std::string::npos);
  PolicyInput input;
  input.allow_empty = true;
  EXPECT_TRUE(decide(p, fleet, input)[0].run);
  // With containers declared, pruning the rest goes ahead.
  const auto declared = load(fleet_text);
  EXPECT_TRUE(decide(p, declared, PolicyInput{})[0].run);
}

TEST(WatchPolicy, HeldActionsHoldTheirDependents) {
  const auto fleet = load(fleet_text);
  plan::Plan p;
  p.actions = {action("launch", "reported"), action("snapshot", "plain", {"launch a:reported"})};
  const auto ds = decide(p, fleet, PolicyInput{});
  EXPECT_FALSE(ds[1].run);
  EXPECT_NE(ds[1].why.find("depends on launch a:reported"), std::string::npos);
  keep_runnable(p, ds);
  EXPECT_TRUE(p.actions.empty());
}

TEST(WatchPolicy, FailuresBackOffAndStopAtMaxRetriesUntilTheRevisionChanges) {
  const auto fleet = load(fleet_text);
  plan::Plan p;
  p.actions = {action("start", "plain")};
  RetryBook book(3, 10s, 60s);
  book.revision("r1");
  const auto t0 = Clock::now();
  book.failed("start a:plain", "boom", t0);
  PolicyInput input;
  input.retries = &book;
  input.now = t0 + 5s;
  EXPECT_FALSE(decide(p, fleet, input)[0].run);
  EXPECT_NE(decide(p, fleet, input)[0].why.find("next attempt in 5s"), std::string::npos);
  input.now = t0 + 10s;
  EXPECT_TRUE(decide(p, fleet, input)[0].run);
  EXPECT_EQ(book.next_retry(), t0 + 10s);
  book.failed("start a:plain", "boom", t0 + 10s);  // waits 20 s now
  input.now = t0 + 25s;
  EXPECT_FALSE(decide(p, fleet, input)[0].run);
  book.failed("start a:plain", "boom again", t0 + 30s);
  input.now = t0 + 1h;
  const auto gave_up = decide(p, fleet, input)[0];
  EXPECT_FALSE(gave_up.run);
  EXPECT_NE(gave_up.why.find("failed 3 times"), std::string::npos) << gave_up.why;
  EXPECT_NE(gave_up.why.find("boom again"), std::string::npos);
  EXPECT_FALSE(book.next_retry().has_value());  // nothing left to retry early
  book.revision("r1");                          // the same revision: still given up
  EXPECT_FALSE(decide(p, fleet, input)[0].run);
  book.revision("r2");
  EXPECT_TRUE(decide(p, fleet, input)[0].run);
  book.failed("start a:plain", "x", t0);
  book.succeeded("start a:plain");
  EXPECT_EQ(book.find("start a:plain"), nullptr);
  book.failed("start a:plain", "x", t0);
  book.keep_only({});
  EXPECT_EQ(book.find("start a:plain"), nullptr);
}

TEST(WatchReport, DriftListsPathsNeverValuesAndSkipsIgnored) {
  const auto fleet = load(fleet_text);
  plan::Plan p;
  auto update = action("update", "plain");
  update.changes.push_back({"config.limits.cpu", "1", "2"});
  p.actions = {update, action("start", "ignored"), action("start", "reported")};
  const auto ds = decide(p, fleet, PolicyInput{});
  const auto drift = drift_json(p, ds);
  ASSERT_EQ(drift.size(), 2U);
  EXPECT_EQ(drift[0]["action"], "update a:plain");
  EXPECT_EQ(drift[0]["changes"], nlohmann::json::array({"config.limits.cpu"}));
  EXPECT_EQ(drift[0]["corrected"], true);
  EXPECT_EQ(drift[1]["corrected"], false);
  EXPECT_EQ(drift[1]["why"], "drift: report");
  EXPECT_EQ(drift.dump().find("\"2\""), std::string::npos);  // no value
  const auto counts = reported_drift(p, ds);
  EXPECT_EQ(counts.at({"a", "update"}), 1);
  EXPECT_EQ(counts.at({"a", "start"}), 1);
}

}  // namespace
}  // namespace berth::watch
