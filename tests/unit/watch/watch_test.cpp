// The pure parts of `berth watch`: per-container sync and health, drift counts, the Prometheus
// text, and the schedule.

#include <gtest/gtest.h>

#include "engine/config/load.hpp"
#include "engine/model/live_json.hpp"
#include "engine/plan/plan.hpp"
#include "engine/watch/metrics.hpp"
#include "engine/watch/schedule.hpp"
#include "engine/watch/status.hpp"
#include "tests/unit/watch/watch_test_support.hpp"

namespace berth::watch {
namespace {

using namespace std::chrono_literals;

using testing::load;

const std::string fleet_text =
    "version: 1\nremotes: {a: {url: \"unix:///a\"}, b: {url: \"unix:///b\"}}\ncontainers:\n"
    "  same: {remote: a, image: \"a:bb\"}\n"
    "  drifted: {remote: a, image: \"a:bb\", config: {limits.cpu: \"2\"}}\n"
    "  stopped: {remote: a, image: \"a:bb\"}\n"
    "  missing: {remote: a, image: \"a:bb\"}\n"
    "  far: {remote: b, image: \"a:bb\"}\n";

nlohmann::json owned(nlohmann::json config = nlohmann::json::object()) {
  config["user.berth.fleet"] = "default";
  config["user.berth.managed"] = R"({"config":[],"devices":[],"profiles":[]})";
  return config;
}

model::LiveState live() {
  return model::live_state_from_json(
      {{"remotes",
        {{"a",
          {{"status", "ok"},
           {"instances",
            {{{"name", "same"}, {"status_code", 103}, {"config", owned()}, {"profiles", {"default"}}},
             {{"name", "drifted"},
              {"status_code", 103},
              {"config", owned({{"limits.cpu", "1"}})},
              {"profiles", {"default"}}},
             {{"name", "stopped"}, {"status_code", 102}, {"config", owned()}, {"profiles", {"default"}}}}}}},
         {"b",
          {{"status", "unknown"},
           {"error", "remote b: connection refused"},
           {"instances", nlohmann::json::array()}}}}}});
}

const ContainerStatus& find(const std::vector<ContainerStatus>& all, const std::string& address) {
  for (const auto& s : all) {
    if (s.address == address) return s;
  }
  throw std::runtime_error("no status for " + address);
}

TEST(WatchStatus, SyncAndHealthPerContainer) {
  const auto fleet = load(fleet_text);
  const auto state = live();
  const auto plan = plan::compute_plan(fleet, state, {});
  const auto all = container_status(fleet, state, plan);
  ASSERT_EQ(all.size(), 5u);

  EXPECT_EQ(find(all, "a:same").sync, Sync::synced);
  EXPECT_EQ(find(all, "a:same").health, Health::healthy);

  const auto& drifted = find(all, "a:drifted");
  EXPECT_EQ(drifted.sync, Sync::out_of_sync);
  EXPECT_EQ(drifted.health, Health::healthy);
  ASSERT_FALSE(drifted.drift.empty());
  EXPECT_EQ(drifted.drift[0], "update config.limits.cpu");

  EXPECT_EQ(find(all, "a:stopped").sync, Sync::out_of_sync);  // a start is planned
  EXPECT_EQ(find(all, "a:stopped").health, Health::degraded);

  // Not found on a, and b (where it might live) is unknown: its health cannot be told.
  EXPECT_EQ(find(all, "a:missing").sync, Sync::out_of_sync);
  EXPECT_EQ(find(all, "a:missing").health, Health::unknown);

  EXPECT_EQ(find(all, "b:far").sync, Sync::unknown);
  EXPECT_EQ(find(all, "b:far").health, Health::unknown);
  EXPECT_NE(find(all, "b:far").why.find("connection refused"), std::string::npos);
}

TEST(WatchStatus, ContainersWhoseActionsSucceededAreSyncedAndHealthy) {
  const auto fleet = load(fleet_text);
  const auto state = live();
  const auto plan = plan::compute_plan(fleet, state, {});
  std::set<std::string> corrected;
  for (const auto& a : plan.actions) {
    if (a.address.container == "stopped") corrected.insert(a.id);
  }
  ASSERT_FALSE(corrected.empty());
  const auto all = container_status(fleet, state, plan, corrected);
  EXPECT_EQ(find(all, "a:stopped").sync, Sync::synced);
  EXPECT_EQ(find(all, "a:stopped").health, Health::healthy);
  EXPECT_TRUE(find(all, "a:stopped").drift.empty());
  EXPECT_EQ(find(all, "a:drifted").sync, Sync::out_of_sync);  // not corrected
}

TEST(WatchStatus, MissingWhenEveryRemoteWasRead) {
  auto fleet = load(fleet_text);
  fleet.containers.erase("far");
  fleet.remotes.erase("b");
  auto state = live();
  state.remotes.erase("b");
  const auto all = container_status(fleet, state, plan::compute_plan(fleet, state, {}));
  EXPECT_EQ(find(all, "a:missing").health, Health::missing);
  EXPECT_EQ(to_string(Health::missing), "Missing");
  EXPECT_EQ(to_string(Sync::out_of_sync), "OutOfSync");
}

TEST(WatchStatus, DriftItemsByRemoteAndKind) {
  const auto fleet = load(fleet_text);
  const auto state = live();
  const auto items = drift_items(plan::compute_plan(fleet, state, {}));
  EXPECT_EQ(items.at({"a", "update"}), 1);
  EXPECT_EQ(items.at({"a", "start"}), 1);
  EXPECT_EQ(items.at({"a", "launch"}), 1);
  EXPECT_EQ(items.count({"b", "launch"}), 0u) << "an unknown remote has no actions";
}

TEST(WatchMetrics, RendersThePrometheusTextFormat) {
  Metrics m;
  m.declare("berth_runs_total", MetricType::counter, "Runs by result.");
  m.declare("berth_remote_up", MetricType::gauge, "1 when the remote was read.");
  m.add("berth_runs_total", {{"result", "success"}});
  m.add("berth_runs_total", {{"result", "success"}});
  m.add("berth_runs_total", {{"result", "failed"}}, 1);
  m.set("berth_remote_up", {{"remote", "a\"b\\c\nd"}}, 1);
  EXPECT_EQ(m.value("berth_runs_total", {{"result", "success"}}), 2);
  EXPECT_EQ(m.render(),
            "# HELP berth_remote_up 1 when the remote was read.\n"
            "# TYPE berth_remote_up gauge\n"
            "berth_remote_up{remote=\"a\\\"b\\\\c\\nd\"} 1\n"
            "# HELP berth_runs_total Runs by result.\n"
            "# TYPE berth_runs_total counter\n"
            "berth_runs_total{result=\"failed\"} 1\n"
            "berth_runs_total{result=\"success\"} 2\n");
  m.clear("berth_remote_up");
  EXPECT_EQ(m.render().find("berth_remote_up{"), std::string::npos);
  EXPECT_THROW(m.add("berth_remote_up", {}), std::logic_error) << "a gauge is not a counter";
  EXPECT_THROW(m.add("berth_runs_total", {}, -1), std::logic_error) << "a counter never goes down";
}

TEST(WatchMetrics, SampleValues) {
  EXPECT_EQ(format_sample(3), "3");
  EXPECT_EQ(format_sample(1733170000), "1733170000");
  EXPECT_EQ(format_sample(0.25), "0.25");
  EXPECT_EQ(format_sample(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(format_sample(std::nan("")), "NaN");
}

TEST(WatchSchedule, JitterStaysWithinItsFraction) {
  EXPECT_EQ(jittered(300s, 0.1, 0.5), 300s);
  EXPECT_EQ(jittered(300s, 0.1, 0.0), 270s);
  EXPECT_EQ(jittered(300s, 0.1, 1.0), 330s);
  EXPECT_EQ(jittered(300s, 0.0, 0.9), 300s);
  EXPECT_EQ(jittered(300s, 5.0, 0.0), 0s) << "a jitter above 100 % is capped";
}

TEST(WatchSchedule, BackoffDoublesUpToItsCap) {
  EXPECT_EQ(retry_delay(0, 10s, 5min), 0s);
  EXPECT_EQ(retry_delay(1, 10s, 5min), 10s);
  EXPECT_EQ(retry_delay(2, 10s, 5min), 20s);
  EXPECT_EQ(retry_delay(5, 10s, 5min), 160s);
  EXPECT_EQ(retry_delay(6, 10s, 5min), 5min);
  EXPECT_EQ(retry_delay(1000, 10s, 5min), 5min) << "no overflow";
}

}  // namespace
}  // namespace berth::watch
