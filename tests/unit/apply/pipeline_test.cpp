// The apply pipeline (engine/apply/pipeline) end to end, against in-memory hosts and a real state
// file in a temporary directory: lock -> read -> settle -> plan -> consent -> confirm -> walk -> record.
//
// The fakes, one per provider interface:
// - MemoryReader reports the live state held by MemoryHosts (a remote can be made Unknown);
// - MemoryExecutor records what it ran, journals through request.journal as a real executor does,
//   fails the actions it is told to, and applies each action's effect to MemoryHosts, so a second
//   pipeline run plans from what the first one did;
// - CannedRecoverer answers settle() per interrupted action id.
// Interrupted runs are simulated by journaling intents into the store directly.

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <functional>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "engine/apply/pipeline.hpp"
#include "engine/config/load.hpp"
#include "engine/model/live_json.hpp"
#include "engine/model/managed.hpp"
#include "engine/plan/render.hpp"
#include "tests/unit/apply/memory_locker.hpp"

namespace berth::apply {
namespace {

namespace fs = std::filesystem;
using plan::ActionKind;

// ---------------------------------------------------------------------------------------------
// In-memory hosts

// The hosts as the fakes see them: what the reader reports and what the executor changes.
class MemoryHosts {
 public:
  void set(model::LiveState live) {
    const std::lock_guard lock(mutex_);
    live_ = std::move(live);
  }
  void set_unknown(const std::string& remote, std::string error) {
    const std::lock_guard lock(mutex_);
    auto& r = live_.remotes[remote];
    r.status = model::RemoteStatus::unknown;
    r.error = std::move(error);
    r.instances.clear();
  }
  // A remote absent from the live state reads as reachable and empty.
  model::LiveRemote remote(const std::string& name) const {
    const std::lock_guard lock(mutex_);
    const auto it = live_.remotes.find(name);
    if (it != live_.remotes.end()) return it->second;
    model::LiveRemote empty;
    empty.name = name;
    empty.status = model::RemoteStatus::ok;
    return empty;
  }
  // Changes the hosts (an executor's effect, or someone working by hand); digests follow.
  template <typename F>
  void change(F&& f) {
    const std::lock_guard lock(mutex_);
    f(live_);
    for (auto& [rname, r] : live_.remotes) {
      for (auto& [iname, inst] : r.instances) inst.digest = model::digest_of(inst);
    }
  }
  std::optional<model::LiveInstance> instance(const std::string& remote, const std::string& name) const {
    const std::lock_guard lock(mutex_);
    const auto r = live_.remotes.find(remote);
    if (r == live_.remotes.end()) return std::nullopt;
    const auto i = r->second.instances.find(name);
    if (i == r->second.instances.end()) return std::nullopt;
    return i->second;
  }

 private:
  mutable std::mutex mutex_;
  model::LiveState live_;
};

class MemoryReader final : public providers::StateReader {
 public:
  explicit MemoryReader(MemoryHosts& hosts) : hosts_(hosts) {}
  providers::ReadStateResponse read_state(const providers::ReadStateRequest& request) override {
    ++reads_;
    providers::ReadStateResponse response;
    response.live = hosts_.remote(request.remote.name);
    return response;
  }
  [[nodiscard]] int reads() const { return reads_.load(); }

 private:
  MemoryHosts& hosts_;
  std::atomic<int> reads_{0};
};

void set_power(model::LiveInstance& inst, model::LivePower power) {
  inst.power = power;
  switch (power) {
    case model::LivePower::running: inst.status_code = 103; break;
    case model::LivePower::stopped: inst.status_code = 102; break;
    case model::LivePower::frozen: inst.status_code = 110; break;
    case model::LivePower::other: inst.status_code = 106; break;
  }
  inst.status = std::string{model::to_string(power)};
}

model::LivePower power_of(std::optional<model::DesiredState> s) {
  if (s == model::DesiredState::stopped) return model::LivePower::stopped;
  if (s == model::DesiredState::frozen) return model::LivePower::frozen;
  return model::LivePower::running;
}

// What each action does to the hosts, just enough for a second plan to converge.
void apply_effect(const plan::Action& a, const std::string& fleet_name, model::LiveState& live) {
  auto& here = live.remotes[a.address.remote].instances;
  const auto it = here.find(a.address.container);
  auto* inst = it == here.end() ? nullptr : &it->second;
  const auto create = [&](model::LiveInstance fresh) {
    fresh.name = a.address.container;
    fresh.config = a.config;
    fresh.config[std::string{model::fleet_key}] = fleet_name;
    fresh.devices = a.devices;
    fresh.profiles = a.profiles.value_or(std::vector<std::string>{"default"});
    set_power(fresh, power_of(a.target_state));
    here[fresh.name] = std::move(fresh);
  };
  switch (a.kind) {
    case ActionKind::launch:
    case ActionKind::copy: create({}); break;
    case ActionKind::recreate: create({}); break;
    case ActionKind::adopt:
    case ActionKind::update:
    case ActionKind::restart:
      if (inst == nullptr) break;
      for (const auto& ch : a.changes) {
        if (ch.path.rfind("config.", 0) == 0) {
          const auto key = ch.path.substr(7);
          if (ch.after.is_null())
            inst->config.erase(key);
          else
            inst->config[key] = ch.after.get<std::string>();
        } else if (ch.path.rfind("devices.", 0) == 0) {
          const auto dev = ch.path.substr(8);
          if (ch.after.is_null())
            inst->devices.erase(dev);
          else
            inst->devices[dev] = ch.after.get<model::ConfigMap>();
        } else if (ch.path == "profiles") {
          inst->profiles = ch.after.get<std::vector<std::string>>();
        }
      }
      if (a.kind == ActionKind::restart) {
        inst->config.erase(std::string{model::restart_pending_key});
        set_power(*inst, model::LivePower::running);
      }
      break;
    case ActionKind::start:
    case ActionKind::unfreeze:
      if (inst != nullptr) set_power(*inst, model::LivePower::running);
      break;
    case ActionKind::stop:
      if (inst != nullptr) set_power(*inst, model::LivePower::stopped);
      break;
    case ActionKind::freeze:
      if (inst != nullptr) set_power(*inst, model::LivePower::frozen);
      break;
    case ActionKind::snapshot:
      if (inst != nullptr) inst->snapshots.push_back({*a.address.snapshot, "2026-01-01T00:00:00Z"});
      break;
    case ActionKind::delete_snapshot:
      if (inst != nullptr) {
        std::erase_if(inst->snapshots, [&](const model::LiveSnapshot& s) { return s.name == *a.address.snapshot; });
      }
      break;
    case ActionKind::move: {
      auto& from = live.remotes[a.source->remote].instances;
      auto moved = from.extract(a.source->container);
      if (moved.empty()) break;
      set_power(moved.mapped(), model::LivePower::stopped);
      here.insert(std::move(moved));
      break;
    }
    case ActionKind::delete_:
    case ActionKind::undo_transfer: here.erase(a.address.container); break;
    case ActionKind::finish_transfer:
      if (inst != nullptr) inst->config.erase(std::string{model::incomplete_key});
      break;
    case ActionKind::push:
    case ActionKind::exec: break;  // what is inside a container is not modelled here
  }
}

class MemoryExecutor final : public providers::ActionExecutor {
 public:
  explicit MemoryExecutor(MemoryHosts& hosts) : hosts_(hosts) {}

  // The action with this id journals its intent, then fails and changes nothing.
  void fail(const std::string& id) {
    const std::lock_guard lock(mutex_);
    failing_.insert(id);
  }
  // Called on the executing thread before the action takes effect (e.g. to set the cancel flag).
  std::function<void(const plan::Action&)> on_execute;

  [[nodiscard]] std::vector<std::string> executed() const {
    const std::lock_guard lock(mutex_);
    return executed_;
  }

  providers::ExecuteResponse execute(const providers::ExecuteRequest& request) override {
    const plan::Action& a = *request.action;
    bool fails = false;
    {
      const std::lock_guard lock(mutex_);
      executed_.push_back(a.id);
      fails = failing_.count(a.id) != 0;
    }
    if (on_execute) on_execute(a);
    // Journaled before the change and resolved after it, as the LXD executor does.
    const auto seq =
        request.journal->intent(a.id, std::string{plan::to_string(a.kind)}, {{"address", plan::to_string(a.address)}});
    if (fails) {
      request.journal->result(seq, false, {{"error", "injected failure"}});
      return {false, "injected failure of " + a.id};
    }
    hosts_.change([&](model::LiveState& live) { apply_effect(a, request.fleet->name, live); });
    request.journal->result(seq, true, nlohmann::json::object());
    return {true, ""};
  }

 private:
  MemoryHosts& hosts_;
  mutable std::mutex mutex_;
  std::set<std::string> failing_;
  std::vector<std::string> executed_;
};

class CannedRecoverer final : public providers::Recoverer {
 public:
  void answer(const std::string& action_id, providers::SettleResponse response) {
    const std::lock_guard lock(mutex_);
    answers_[action_id] = std::move(response);
  }
  [[nodiscard]] std::vector<providers::SettleRequest> calls() const {
    const std::lock_guard lock(mutex_);
    return calls_;
  }
  // Runs inside settle(): what the hosts do while recovery waits for them (a transfer arrives).
  void while_settling(std::function<void()> f) { while_settling_ = std::move(f); }
  providers::SettleResponse settle(const providers::SettleRequest& request) override {
    const std::lock_guard lock(mutex_);
    calls_.push_back(request);
    if (while_settling_) while_settling_();
    const auto it = answers_.find(request.action_id);
    if (it == answers_.end()) {
      ADD_FAILURE() << "no canned settle response for " << request.action_id;
      return {providers::Verdict::held, std::nullopt, "no canned response", {}};
    }
    return it->second;
  }

 private:
  mutable std::mutex mutex_;
  std::map<std::string, providers::SettleResponse> answers_;
  std::vector<providers::SettleRequest> calls_;
  std::function<void()> while_settling_;
};

// ---------------------------------------------------------------------------------------------
// Helpers

// The fleet a test loaded last: live_of() makes the instances it declares look as berth left them.
model::Fleet& last_fleet() {
  static model::Fleet fleet;
  return fleet;
}

model::Fleet fleet_of(std::string_view yaml) {
  const auto no_env = [](std::string_view) -> std::optional<std::string> { return std::nullopt; };
  auto loaded = config::load_fleet_text(yaml, "fleet.yaml", no_env);
  if (!loaded.fleet) throw std::runtime_error("test fleet does not load:\n" + diag::format(loaded.diagnostics));
  last_fleet() = *loaded.fleet;
  return std::move(*loaded.fleet);
}

// Hosts as JSON. An instance the last fleet declares and that carries no fleet mark gets the mark
// and berth's record of its spec, as if berth had made it: these tests are about the pipeline, not
// adoption (tests/unit/plan/reconcile_test.cpp). Undeclared instances are left as written.
model::LiveState live_of(const char* json) {
  auto live = model::live_state_from_json(nlohmann::json::parse(json));
  for (auto& [rname, remote] : live.remotes) {
    for (auto& [iname, inst] : remote.instances) {
      const auto spec = last_fleet().containers.find(iname);
      if (spec == last_fleet().containers.end() || inst.config.count(std::string{model::fleet_key}) != 0) continue;
      inst.config[std::string{model::fleet_key}] = last_fleet().name;
      inst.config[std::string{model::managed_key}] = model::record_text(model::managed_of(spec->second));
      inst.digest = model::digest_of(inst);
    }
  }
  return live;
}

std::vector<std::string> ids_of(const plan::Plan& p) {
  std::vector<std::string> out;
  for (const auto& a : p.actions) out.push_back(a.id);
  return out;
}

const plan::Action* find(const plan::Plan& p, const std::string& id) {
  for (const auto& a : p.actions) {
    if (a.id == id) return &a;
  }
  return nullptr;
}

bool depends_on(const plan::Plan& p, const std::string& id, const std::string& dep) {
  const auto* a = find(p, id);
  return a != nullptr && std::find(a->depends_on.begin(), a->depends_on.end(), dep) != a->depends_on.end();
}

// Position in the executor's order; -1 when it never ran.
long position(const std::vector<std::string>& executed, const std::string& id) {
  const auto it = std::find(executed.begin(), executed.end(), id);
  return it == executed.end() ? -1 : static_cast<long>(it - executed.begin());
}

const diag::Diagnostic* warning_containing(const plan::Plan& p, const std::string& needle) {
  for (const auto& d : p.diagnostics.items()) {
    if (d.severity != diag::Severity::warning) continue;
    if (d.summary.find(needle) != std::string::npos || d.detail.find(needle) != std::string::npos) return &d;
  }
  return nullptr;
}

std::vector<std::int64_t> open_seqs(state::Store& store) {
  std::vector<std::int64_t> out;
  for (const auto& e : store.open_intents()) out.push_back(e.seq);
  return out;
}

// A finish_transfer as the LXD recoverer makes it: settles and run_id are the pipeline's to fill.
plan::Action finish_transfer(const std::string& remote, const std::string& container) {
  plan::Action a;
  a.kind = ActionKind::finish_transfer;
  a.address = plan::Address{remote, container, std::nullopt};
  a.source = plan::Address{remote, "src", std::nullopt};
  a.id = "finish_transfer " + plan::to_string(a.address);
  a.reason = "finish the interrupted copy: mark the target complete";
  a.recovery.emplace();
  a.recovery->transfer = "copy";
  a.recovery->found = "the copy arrived whole but was not marked complete";
  return a;
}

plan::Action undo_transfer(const std::string& remote, const std::string& container) {
  plan::Action a = finish_transfer(remote, container);
  a.kind = ActionKind::undo_transfer;
  a.id = "undo_transfer " + plan::to_string(a.address);
  a.reason = "undo the interrupted copy: delete the target berth made";
  a.disruption = plan::Disruption::destroy;
  a.recovery->found = "the copy may be incomplete";
  return a;
}

providers::SettleResponse recover(plan::Action a) {
  const std::string container = a.address.container;
  return {providers::Verdict::recover, std::move(a), "found a half-done copy", {container}};
}
providers::SettleResponse settled(std::string note) {
  return {providers::Verdict::settled, std::nullopt, std::move(note), {}};
}
providers::SettleResponse held(std::string note, std::vector<std::string> containers) {
  return {providers::Verdict::held, std::nullopt, std::move(note), std::move(containers)};
}

// ---------------------------------------------------------------------------------------------
// Fleets and live states shared by the tests

// c1: an update and a snapshot that depends on it; c2: an independent update.
constexpr const char* kTwoUpdates = R"(version: 1
remotes:
  a: {url: "https://127.0.0.1:8443"}
images:
  bb: {remote: a, alias: bb}
containers:
  c1: {remote: a, image: bb, config: {limits.memory: 2GiB}, snapshots: [s1]}
  c2: {remote: a, image: bb, config: {limits.memory: 2GiB}}
)";
constexpr const char* kTwoUpdatesLive = R"({"remotes": {"a": {"status": "ok", "instances": [
  {"name": "c1", "status_code": 103, "config": {"limits.memory": "1GiB"}},
  {"name": "c2", "status_code": 103, "config": {"limits.memory": "1GiB"}}]}}})";

// c1: a restart-key change (a restart needing consent) and a snapshot after it; c2: an update.
constexpr const char* kRestart = R"(version: 1
remotes:
  a: {url: "https://127.0.0.1:8443"}
images:
  bb: {remote: a, alias: bb}
containers:
  c1: {remote: a, image: bb, config: {security.nesting: "true"}, snapshots: [s1]}
  c2: {remote: a, image: bb, config: {limits.memory: 2GiB}}
)";
constexpr const char* kRestartLive = R"({"remotes": {"a": {"status": "ok", "instances": [
  {"name": "c1", "status_code": 103, "config": {}},
  {"name": "c2", "status_code": 103, "config": {"limits.memory": "1GiB"}}]}}})";

// ---------------------------------------------------------------------------------------------
// Fixture: a fresh state file per test, the three fakes, and a way to leave an interrupted run.

class PipelineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("berth-pipeline-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    store_ = state::Store::open(dir_ / "state.db");
  }
  void TearDown() override {
    store_.reset();
    fs::remove_all(dir_);
  }

  Providers providers() { return Providers{&reader_, &recoverer_, &executor_, locker_}; }

  PipelineResult run(const model::Fleet& fleet, PipelineOptions options = {}, const PipelineHooks& hooks = {}) {
    if (options.command.empty()) options.command = "apply";
    return run_pipeline(fleet, *store_, providers(), options, hooks);
  }

  plan::Plan prepare(const model::Fleet& fleet, plan::ConsentFlags consent = {}) {
    return prepare_plan(fleet, store_.get(), providers(), Goal::apply, false, consent);
  }

  // A run that journaled `step` of `action_id` and died before its result (a SIGKILL leaves the
  // run "running"). A "create" step before it finished, as evidence the recoverer is given.
  struct Interrupted {
    std::int64_t run_id = 0;
    std::int64_t open_seq = 0;
  };
  Interrupted interrupt(const std::string& action_id, const std::string& step = "migrate") {
    Interrupted out;
    out.run_id = store_->begin_run("apply", "fleet.yaml", "{}");
    const auto done = store_->journal_intent(out.run_id, action_id, "create", R"({"target":"a:c1"})");
    store_->journal_result(done, true, "{}");
    out.open_seq = store_->journal_intent(out.run_id, action_id, step, R"({"kind":"copy"})");
    return out;
  }

  fs::path dir_;
  std::unique_ptr<state::Store> store_;
  MemoryHosts hosts_;
  MemoryReader reader_{hosts_};
  MemoryExecutor executor_{hosts_};
  CannedRecoverer recoverer_;
  providers::HostLocker* locker_ = nullptr;  // set: the run locks the hosts it changes
};

// ---------------------------------------------------------------------------------------------
// Consent is decided once, on the plan value; the walk refuses exactly what lacks it.

using PipelineConsent = PipelineTest;

TEST_F(PipelineConsent, RestartWithoutConsentIsRefusedAndWhatFollowsItSkipped) {
  const auto fleet = fleet_of(kRestart);
  hosts_.set(live_of(kRestartLive));
  const auto result = run(fleet);

  ASSERT_EQ(result.outcome, RunOutcome::applied);
  EXPECT_EQ(ids_of(result.plan), (std::vector<std::string>{"restart a:c1", "snapshot a:c1/s1", "update a:c2"}));
  EXPECT_FALSE(find(result.plan, "restart a:c1")->consented);
  // The executor never sees the refused restart nor the snapshot planned after it.
  EXPECT_EQ(executor_.executed(), std::vector<std::string>{"update a:c2"});
  EXPECT_EQ(result.summary.outcomes.at("restart a:c1").status, Status::refused);
  EXPECT_NE(result.summary.outcomes.at("restart a:c1").error.find("--allow-restart"), std::string::npos);
  EXPECT_EQ(result.summary.outcomes.at("snapshot a:c1/s1").status, Status::skipped);
  EXPECT_EQ(result.summary.outcomes.at("update a:c2").status, Status::succeeded);
  EXPECT_FALSE(result.success());
  ASSERT_EQ(store_->runs(1).size(), 1U);
  EXPECT_EQ(store_->runs(1)[0].outcome, "failed");
  // Nothing of the restart reached the host: the next plan still shows it.
  EXPECT_EQ(hosts_.instance("a", "c1")->config.count("security.nesting"), 0U);
}

TEST_F(PipelineConsent, AllowRestartFlagRunsTheRestartThenWhatFollows) {
  const auto fleet = fleet_of(kRestart);
  hosts_.set(live_of(kRestartLive));
  PipelineOptions options;
  options.consent.restart = true;
  const auto result = run(fleet, options);

  ASSERT_EQ(result.outcome, RunOutcome::applied);
  EXPECT_TRUE(result.success());
  EXPECT_TRUE(result.plan.consent.restart);
  const auto executed = executor_.executed();
  EXPECT_EQ(executed.size(), 3U);
  ASSERT_GE(position(executed, "restart a:c1"), 0);
  EXPECT_LT(position(executed, "restart a:c1"), position(executed, "snapshot a:c1/s1"));
  // Converged: a second run finds nothing to do.
  EXPECT_EQ(run(fleet).outcome, RunOutcome::no_changes);
}

TEST_F(PipelineConsent, RestartAllowedInTheFileConsentsWithoutTheFlag) {
  auto fleet = fleet_of(R"(version: 1
remotes:
  a: {url: "https://127.0.0.1:8443"}
images:
  bb: {remote: a, alias: bb}
containers:
  c1: {remote: a, image: bb, config: {security.nesting: "true"}, restart: allowed}
)");
  hosts_.set(live_of(R"({"remotes": {"a": {"status": "ok", "instances": [{"name": "c1", "status_code": 103}]}}})"));
  const auto result = run(fleet);

  ASSERT_EQ(result.outcome, RunOutcome::applied);
  EXPECT_FALSE(result.plan.consent.restart) << "no flag was given";
  EXPECT_EQ(executor_.executed(), std::vector<std::string>{"restart a:c1"});
  EXPECT_TRUE(result.success());
}

// A container declared on b that lives (running) on a: stop, move, start.
constexpr const char* kMove = R"(version: 1
remotes:
  a: {url: "https://127.0.0.1:8443"}
  b: {url: "https://127.0.0.2:8443"}
images:
  bb: {remote: a, alias: bb}
containers:
  c1: {remote: b, image: bb}
)";
constexpr const char* kMoveLive = R"({"remotes": {
  "a": {"status": "ok", "instances": [{"name": "c1", "status_code": 103}]},
  "b": {"status": "ok", "instances": []}}})";

TEST_F(PipelineConsent, MoveNeedsMoveConsentNotRestartConsent) {
  const auto fleet = fleet_of(kMove);
  hosts_.set(live_of(kMoveLive));
  PipelineOptions restart_only;
  restart_only.consent.restart = true;
  const auto refused = run(fleet, restart_only);

  ASSERT_EQ(refused.outcome, RunOutcome::applied);
  EXPECT_EQ(ids_of(refused.plan), (std::vector<std::string>{"stop a:c1", "move b:c1", "start b:c1"}));
  EXPECT_TRUE(executor_.executed().empty());
  EXPECT_EQ(refused.summary.outcomes.at("stop a:c1").status, Status::refused);
  EXPECT_EQ(refused.summary.outcomes.at("move b:c1").status, Status::refused);
  EXPECT_NE(refused.summary.outcomes.at("move b:c1").error.find("--allow-move"), std::string::npos);
  EXPECT_EQ(refused.summary.outcomes.at("start b:c1").status, Status::skipped);
  EXPECT_FALSE(refused.success());
  EXPECT_TRUE(hosts_.instance("a", "c1").has_value()) << "a refused move leaves the container where it is";

  PipelineOptions move;
  move.consent.move = true;
  const auto moved = run(fleet, move);
  ASSERT_EQ(moved.outcome, RunOutcome::applied);
  EXPECT_TRUE(moved.success());
  EXPECT_EQ(executor_.executed(), (std::vector<std::string>{"stop a:c1", "move b:c1", "start b:c1"}));
  EXPECT_EQ(run(fleet).outcome, RunOutcome::no_changes);
}

// ---------------------------------------------------------------------------------------------
// Saved plans: apply executes exactly the reviewed plan, or refuses it when the world moved.

using PipelineSavedPlan = PipelineTest;

// As `berth plan --out` / `berth apply FILE` would: through the plan's JSON form.
plan::Plan saved_copy(const plan::Plan& p) {
  auto parsed = plan::plan_from_json(plan::to_json(p), "saved");
  if (!parsed.plan) throw std::runtime_error("saved plan does not parse:\n" + diag::format(parsed.diagnostics));
  return std::move(*parsed.plan);
}

TEST_F(PipelineSavedPlan, ExecutesExactlyItsActionsIncludingTheConsentedRestart) {
  const auto fleet = fleet_of(kRestart);
  hosts_.set(live_of(kRestartLive));
  const plan::Plan saved = saved_copy(prepare(fleet, {.restart = true, .move = false}));
  ASSERT_TRUE(find(saved, "restart a:c1")->consented);
  EXPECT_TRUE(executor_.executed().empty()) << "planning changes nothing";

  PipelineOptions options;
  options.saved = &saved;
  const auto result = run(fleet, options);

  ASSERT_EQ(result.outcome, RunOutcome::applied);
  EXPECT_TRUE(result.success());
  auto executed = executor_.executed();
  auto planned = ids_of(saved);
  std::sort(executed.begin(), executed.end());
  std::sort(planned.begin(), planned.end());
  EXPECT_EQ(executed, planned);
  EXPECT_EQ(ids_of(result.plan), ids_of(saved));
}

TEST_F(PipelineSavedPlan, KeepsTheConsentItWasMadeWith) {
  const auto fleet = fleet_of(kRestart);
  hosts_.set(live_of(kRestartLive));
  const plan::Plan saved = saved_copy(prepare(fleet));
  PipelineOptions options;
  options.saved = &saved;
  const auto result = run(fleet, options);

  ASSERT_EQ(result.outcome, RunOutcome::applied);
  EXPECT_EQ(result.summary.outcomes.at("restart a:c1").status, Status::refused);
  EXPECT_EQ(executor_.executed(), std::vector<std::string>{"update a:c2"});
}

TEST_F(PipelineSavedPlan, StaleWhenTheHostsChangedSinceAndNothingRuns) {
  const auto fleet = fleet_of(kTwoUpdates);
  hosts_.set(live_of(kTwoUpdatesLive));
  const plan::Plan saved = saved_copy(prepare(fleet));
  // Someone changes c1 by hand between plan and apply.
  hosts_.change([](model::LiveState& live) { live.remotes["a"].instances["c1"].config["limits.memory"] = "4GiB"; });

  PipelineOptions options;
  options.saved = &saved;
  const auto result = run(fleet, options);

  EXPECT_EQ(result.outcome, RunOutcome::stale);
  EXPECT_EQ(result.stale, std::vector<std::string>{"a:c1 (changed)"});
  EXPECT_TRUE(executor_.executed().empty());
  EXPECT_TRUE(store_->runs(10).empty());
  EXPECT_FALSE(store_->lock_holder().has_value()) << "the lock is released on the way out";
}

TEST_F(PipelineSavedPlan, StaleWhenRecoveryIsDueThatWasNotWhenItWasMade) {
  const auto fleet = fleet_of(kTwoUpdates);
  hosts_.set(live_of(kTwoUpdatesLive));
  const plan::Plan saved = saved_copy(prepare(fleet));
  ASSERT_TRUE(recoverer_.calls().empty()) << "no intents were open";

  const auto interrupted = interrupt("copy a:c1");
  recoverer_.answer("copy a:c1", recover(finish_transfer("a", "c1")));
  PipelineOptions options;
  options.saved = &saved;
  const auto result = run(fleet, options);

  EXPECT_EQ(result.outcome, RunOutcome::stale);
  ASSERT_EQ(result.stale.size(), 1U);
  EXPECT_NE(result.stale[0].find("interrupted runs to recover differ"), std::string::npos);
  EXPECT_TRUE(executor_.executed().empty());
  EXPECT_EQ(open_seqs(*store_), std::vector<std::int64_t>{interrupted.open_seq});
  EXPECT_EQ(store_->runs(10).size(), 1U) << "only the interrupted run";
}

TEST_F(PipelineSavedPlan, WithTheSameRecoveryDueItAppliesAndClosesTheIntents) {
  const auto fleet = fleet_of(kTwoUpdates);
  hosts_.set(live_of(kTwoUpdatesLive));
  const auto interrupted = interrupt("copy a:c1");
  recoverer_.answer("copy a:c1", recover(finish_transfer("a", "c1")));
  const plan::Plan saved = saved_copy(prepare(fleet));
  ASSERT_EQ(saved.actions.front().id, "finish_transfer a:c1");
  EXPECT_EQ(open_seqs(*store_), std::vector<std::int64_t>{interrupted.open_seq}) << "planning closes nothing";

  PipelineOptions options;
  options.saved = &saved;
  const auto result = run(fleet, options);

  ASSERT_EQ(result.outcome, RunOutcome::applied);
  EXPECT_TRUE(result.success());
  const auto executed = executor_.executed();
  ASSERT_GE(position(executed, "finish_transfer a:c1"), 0);
  EXPECT_LT(position(executed, "finish_transfer a:c1"), position(executed, "update a:c1"));
  EXPECT_TRUE(store_->open_intents().empty());
}

// A saved plan is refused when the open intents changed since it was made: a container an
// interrupted run has left unsettled since must not get the saved plan's actions.
TEST_F(PipelineSavedPlan, StaleWhenAContainerItTouchesIsHeldSince) {
  const auto fleet = fleet_of(kTwoUpdates);
  hosts_.set(live_of(kTwoUpdatesLive));
  const plan::Plan saved = saved_copy(prepare(fleet));

  const auto interrupted = interrupt("copy a:c1");
  recoverer_.answer("copy a:c1", held("remote b is unreachable", {"c1"}));
  PipelineOptions options;
  options.saved = &saved;
  const auto result = run(fleet, options);

  EXPECT_EQ(result.outcome, RunOutcome::stale);
  EXPECT_TRUE(std::any_of(result.stale.begin(), result.stale.end(), [](const std::string& s) {
    return s.find("a:c1") != std::string::npos;
  })) << ::testing::PrintToString(result.stale);
  EXPECT_TRUE(executor_.executed().empty());
  EXPECT_EQ(open_seqs(*store_), std::vector<std::int64_t>{interrupted.open_seq});
}

// ---------------------------------------------------------------------------------------------
// Nothing is changed before confirmation.

using PipelineConfirm = PipelineTest;

TEST_F(PipelineConfirm, DeclinedChangesNothingEvenWithRecoveryDue) {
  const auto fleet = fleet_of(kTwoUpdates);
  hosts_.set(live_of(kTwoUpdatesLive));
  const auto interrupted = interrupt("copy a:c1");
  recoverer_.answer("copy a:c1", recover(finish_transfer("a", "c1")));

  std::vector<std::string> asked;
  PipelineHooks hooks;
  hooks.confirm = [&](const plan::Plan& p) {
    asked = ids_of(p);
    return false;
  };
  const auto result = run(fleet, {}, hooks);

  EXPECT_EQ(result.outcome, RunOutcome::declined);
  ASSERT_FALSE(asked.empty());
  EXPECT_EQ(asked.front(), "finish_transfer a:c1") << "the recovery action is shown and confirmed with the rest";
  EXPECT_TRUE(executor_.executed().empty());
  EXPECT_EQ(store_->runs(10).size(), 1U) << "no run recorded beyond the interrupted one";
  EXPECT_EQ(open_seqs(*store_), std::vector<std::int64_t>{interrupted.open_seq});
  EXPECT_FALSE(store_->lock_holder().has_value());
  EXPECT_FALSE(result.success());
}

TEST_F(PipelineConfirm, NotAskedWhenThereIsNothingToDo) {
  const auto fleet = fleet_of(kTwoUpdates);
  hosts_.set(live_of(R"({"remotes": {"a": {"status": "ok", "instances": [
    {"name": "c1", "status_code": 103, "config": {"limits.memory": "2GiB"}, "snapshots": ["s1"]},
    {"name": "c2", "status_code": 103, "config": {"limits.memory": "2GiB"}}]}}})"));
  int asked = 0;
  PipelineHooks hooks;
  hooks.confirm = [&](const plan::Plan&) {
    ++asked;
    return false;
  };
  const auto result = run(fleet, {}, hooks);

  EXPECT_EQ(result.outcome, RunOutcome::no_changes);
  EXPECT_EQ(asked, 0);
  EXPECT_TRUE(result.success());
  EXPECT_TRUE(store_->runs(10).empty());
}

// ---------------------------------------------------------------------------------------------
// Recovery: planned from the journal, shown first, run first, and only then closing the intents.

using PipelineRecovery = PipelineTest;

// c1 is the target of an interrupted copy (still marked incomplete) that also differs in config.
constexpr const char* kRecoveryLive = R"({"remotes": {"a": {"status": "ok", "instances": [
  {"name": "c1", "status_code": 103, "config": {"limits.memory": "1GiB", "user.berth.incomplete": "a:src t0k"}},
  {"name": "c2", "status_code": 103, "config": {"limits.memory": "1GiB"}}]}}})";

TEST_F(PipelineRecovery, RecoveryRunsFirstAndClosesItsIntents) {
  const auto fleet = fleet_of(kTwoUpdates);
  hosts_.set(live_of(kRecoveryLive));
  const auto interrupted = interrupt("copy a:c1");
  recoverer_.answer("copy a:c1", recover(finish_transfer("a", "c1")));
  const auto result = run(fleet);

  // The recoverer saw the whole journal of that action, oldest first.
  const auto calls = recoverer_.calls();
  ASSERT_EQ(calls.size(), 1U);
  EXPECT_EQ(calls[0].run_id, interrupted.run_id);
  ASSERT_EQ(calls[0].steps.size(), 2U);
  EXPECT_EQ(calls[0].steps[0].phase, "done");
  EXPECT_EQ(calls[0].steps[1].phase, "intent");
  EXPECT_EQ(calls[0].steps[1].detail, nlohmann::json({{"kind", "copy"}}));

  ASSERT_EQ(result.outcome, RunOutcome::applied);
  const auto& p = result.plan;
  ASSERT_FALSE(p.actions.empty());
  EXPECT_EQ(p.actions[0].id, "finish_transfer a:c1");
  ASSERT_TRUE(p.actions[0].recovery.has_value());
  EXPECT_EQ(p.actions[0].recovery->settles, std::vector<std::int64_t>{interrupted.open_seq});
  EXPECT_EQ(p.actions[0].recovery->run_id, interrupted.run_id);
  EXPECT_TRUE(depends_on(p, "update a:c1", "finish_transfer a:c1"));
  EXPECT_TRUE(depends_on(p, "snapshot a:c1/s1", "finish_transfer a:c1"));
  EXPECT_FALSE(depends_on(p, "update a:c2", "finish_transfer a:c1")) << "other containers need not wait";

  const auto executed = executor_.executed();
  EXPECT_EQ(executed.size(), 4U);
  ASSERT_GE(position(executed, "finish_transfer a:c1"), 0);
  EXPECT_LT(position(executed, "finish_transfer a:c1"), position(executed, "update a:c1"));
  EXPECT_LT(position(executed, "update a:c1"), position(executed, "snapshot a:c1/s1"));
  EXPECT_TRUE(result.success());
  EXPECT_TRUE(store_->open_intents().empty());
  const auto journal = store_->journal_of(interrupted.run_id, "copy a:c1");
  ASSERT_EQ(journal.size(), 2U);
  EXPECT_EQ(journal[1].phase, "recovered");

  // Nothing left: the next apply neither recovers again nor changes anything.
  EXPECT_EQ(run(fleet).outcome, RunOutcome::no_changes);
  EXPECT_EQ(recoverer_.calls().size(), 1U);
}

TEST_F(PipelineRecovery, FailedRecoveryKeepsTheIntentsOpenAndSkipsItsContainer) {
  const auto fleet = fleet_of(kTwoUpdates);
  hosts_.set(live_of(kRecoveryLive));
  const auto interrupted = interrupt("copy a:c1");
  recoverer_.answer("copy a:c1", recover(finish_transfer("a", "c1")));
  executor_.fail("finish_transfer a:c1");
  const auto result = run(fleet);

  ASSERT_EQ(result.outcome, RunOutcome::applied);
  EXPECT_EQ(result.summary.outcomes.at("finish_transfer a:c1").status, Status::failed);
  EXPECT_EQ(result.summary.outcomes.at("update a:c1").status, Status::skipped);
  EXPECT_EQ(result.summary.outcomes.at("snapshot a:c1/s1").status, Status::skipped);
  EXPECT_EQ(result.summary.outcomes.at("update a:c2").status, Status::succeeded);
  EXPECT_EQ(position(executor_.executed(), "update a:c1"), -1);
  EXPECT_EQ(open_seqs(*store_), std::vector<std::int64_t>{interrupted.open_seq});
  EXPECT_FALSE(result.success());
}

TEST_F(PipelineRecovery, TheRestIsPlannedAsTheHostsWillBeAfterRecovery) {
  const auto fleet = fleet_of(kTwoUpdates);
  hosts_.set(live_of(kRecoveryLive));
  interrupt("copy a:c1");
  recoverer_.answer("copy a:c1", recover(undo_transfer("a", "c1")));
  const auto result = run(fleet);

  // Once the half-made c1 is deleted it does not exist: it is launched again, after the undo.
  ASSERT_EQ(result.outcome, RunOutcome::applied);
  EXPECT_EQ(result.plan.actions[0].id, "undo_transfer a:c1");
  ASSERT_NE(find(result.plan, "launch a:c1"), nullptr);
  EXPECT_EQ(find(result.plan, "update a:c1"), nullptr);
  EXPECT_TRUE(depends_on(result.plan, "launch a:c1", "undo_transfer a:c1"));
  const auto executed = executor_.executed();
  EXPECT_LT(position(executed, "undo_transfer a:c1"), position(executed, "launch a:c1"));
  EXPECT_TRUE(result.success());
  EXPECT_TRUE(store_->open_intents().empty());
}

// A daemon may list an arriving instance only once it arrived (berthd): recovery waits for the
// transfer to end, and the plan must be made from the hosts as they are after that wait.
TEST_F(PipelineRecovery, TheHostsAreReadAfterRecoveryWaitedForThem) {
  const auto fleet = fleet_of(kTwoUpdates);
  hosts_.set(live_of(R"({"remotes": {"a": {"status": "ok", "instances": [
    {"name": "c2", "status_code": 103, "config": {"limits.memory": "1GiB"}}]}}})"));
  interrupt("copy a:c1");
  recoverer_.while_settling([this] { hosts_.set(live_of(kRecoveryLive)); });
  recoverer_.answer("copy a:c1", recover(finish_transfer("a", "c1")));
  const auto result = run(fleet);

  ASSERT_EQ(result.outcome, RunOutcome::applied);
  EXPECT_EQ(result.plan.actions[0].id, "finish_transfer a:c1");
  EXPECT_EQ(find(result.plan, "launch a:c1"), nullptr) << "c1 arrived while recovery waited";
  EXPECT_NE(find(result.plan, "update a:c1"), nullptr);
  EXPECT_TRUE(result.success());

  // And the same for a plan alone.
  hosts_.set(live_of(R"({"remotes": {"a": {"status": "ok", "instances": [
    {"name": "c2", "status_code": 103, "config": {"limits.memory": "1GiB"}}]}}})"));
  interrupt("copy a:c1");
  const auto plan = prepare(fleet);
  EXPECT_EQ(find(plan, "launch a:c1"), nullptr);
}

TEST_F(PipelineRecovery, SettledIntentsAreClosedByAConfirmedApply) {
  const auto fleet = fleet_of(kTwoUpdates);
  hosts_.set(live_of(kTwoUpdatesLive));
  const auto interrupted = interrupt("update a:c1", "update");
  recoverer_.answer("update a:c1", settled("a:c1 exists; nothing is half-done"));
  std::vector<std::string> notices;
  PipelineHooks hooks;
  hooks.notice = [&](const std::string& n) { notices.push_back(n); };
  hooks.confirm = [&](const plan::Plan&) { return true; };
  const auto result = run(fleet, {}, hooks);

  ASSERT_EQ(result.outcome, RunOutcome::applied);
  EXPECT_TRUE(result.success());
  EXPECT_EQ(result.plan.actions.front().id, "update a:c1") << "a settled intent adds no action";
  EXPECT_TRUE(store_->open_intents().empty());
  const auto journal = store_->journal_of(interrupted.run_id, "update a:c1");
  EXPECT_EQ(journal.back().phase, "recovered");
  ASSERT_EQ(notices.size(), 1U);
  EXPECT_NE(notices[0].find("run " + std::to_string(interrupted.run_id) + ", update a:c1"), std::string::npos);
  EXPECT_NE(notices[0].find("nothing is half-done"), std::string::npos);
}

TEST_F(PipelineRecovery, SettledIntentsAreClosedWhenThereIsNothingToDo) {
  const auto fleet = fleet_of(kTwoUpdates);
  hosts_.set(live_of(R"({"remotes": {"a": {"status": "ok", "instances": [
    {"name": "c1", "status_code": 103, "config": {"limits.memory": "2GiB"}, "snapshots": ["s1"]},
    {"name": "c2", "status_code": 103, "config": {"limits.memory": "2GiB"}}]}}})"));
  interrupt("update a:c1", "update");
  recoverer_.answer("update a:c1", settled("a:c1 exists; nothing is half-done"));
  const auto result = run(fleet);

  EXPECT_EQ(result.outcome, RunOutcome::no_changes);
  EXPECT_TRUE(store_->open_intents().empty());
  EXPECT_TRUE(executor_.executed().empty());
}

TEST_F(PipelineRecovery, HeldContainerGetsNoActionWhileTheRestApplies) {
  const auto fleet = fleet_of(kTwoUpdates);
  hosts_.set(live_of(kTwoUpdatesLive));
  const auto interrupted = interrupt("copy a:c1");
  recoverer_.answer("copy a:c1", held("remote b is unreachable", {"c1"}));
  const auto result = run(fleet);

  ASSERT_EQ(result.outcome, RunOutcome::applied) << "held never blocks the whole apply";
  EXPECT_EQ(ids_of(result.plan), std::vector<std::string>{"update a:c2"});
  EXPECT_EQ(executor_.executed(), std::vector<std::string>{"update a:c2"});
  EXPECT_FALSE(result.plan.diagnostics.has_errors());
  const std::string seq = std::to_string(interrupted.open_seq);
  const auto* w = warning_containing(result.plan, "(journal " + seq + ")");
  ASSERT_NE(w, nullptr) << diag::format(result.plan.diagnostics);
  EXPECT_NE(w->detail.find("berth state drop-intent"), std::string::npos) << w->detail;
  EXPECT_NE(w->detail.find(seq), std::string::npos) << "the fix names the intent to drop: " << w->detail;
  EXPECT_NE(w->summary.find("remote b is unreachable"), std::string::npos);
  EXPECT_NE(warning_containing(result.plan, "not planned"), nullptr) << "the planner says why c1 has no action";
  EXPECT_EQ(open_seqs(*store_), std::vector<std::int64_t>{interrupted.open_seq});
}

// ---------------------------------------------------------------------------------------------
// settle_open_intents on its own.

using PipelineSettle = PipelineTest;

TEST_F(PipelineSettle, WithoutAStateFileNothingIsOpen) {
  const auto fleet = fleet_of(kTwoUpdates);
  const auto s = settle_open_intents(nullptr, fleet, recoverer_);
  EXPECT_TRUE(s.recovery.empty());
  EXPECT_TRUE(s.held.empty());
  EXPECT_TRUE(s.settled.empty());
  EXPECT_TRUE(recoverer_.calls().empty());
}

TEST_F(PipelineSettle, OneRequestPerInterruptedActionAndARecoverWithoutActionIsHeld) {
  const auto fleet = fleet_of(kTwoUpdates);
  const auto run_id = store_->begin_run("apply", "fleet.yaml", "{}");
  const auto first = store_->journal_intent(run_id, "copy a:c1", "create", "{}");
  const auto second = store_->journal_intent(run_id, "copy a:c1", "migrate", "{}");
  // A recover verdict with no action is a provider bug: held, not dropped.
  recoverer_.answer("copy a:c1", {providers::Verdict::recover, std::nullopt, "confused", {"c1"}});
  const auto s = settle_open_intents(store_.get(), fleet, recoverer_);

  EXPECT_EQ(recoverer_.calls().size(), 1U);
  EXPECT_TRUE(s.recovery.empty());
  EXPECT_EQ(s.held.count("c1"), 1U);
  ASSERT_EQ(s.diagnostics.items().size(), 1U);
  EXPECT_NE(s.diagnostics.items()[0].summary.find("journal " + std::to_string(first) + ", " + std::to_string(second)),
            std::string::npos);
  EXPECT_EQ(open_seqs(*store_), (std::vector<std::int64_t>{first, second})) << "settling only reads";
}

// Two interrupted actions that one recovery action settles (a copy, then the finish_transfer that
// was recovering it, both killed): one action closes both runs' intents, nothing is held.
TEST_F(PipelineSettle, TwoInterruptedActionsSettledByOneRecoveryShareIt) {
  const auto fleet = fleet_of(kTwoUpdates);
  const auto run1 = store_->begin_run("apply", "fleet.yaml", "{}");
  const auto seq1 = store_->journal_intent(run1, "copy a:c1", "migrate", "{}");
  const auto run2 = store_->begin_run("apply", "fleet.yaml", "{}");
  const auto seq2 = store_->journal_intent(run2, "finish_transfer a:c1", "unmark", "{}");
  recoverer_.answer("copy a:c1", recover(finish_transfer("a", "c1")));
  recoverer_.answer("finish_transfer a:c1", recover(finish_transfer("a", "c1")));
  const auto s = settle_open_intents(store_.get(), fleet, recoverer_);

  ASSERT_EQ(s.recovery.size(), 1U);
  auto settles = s.recovery[0].recovery->settles;
  std::sort(settles.begin(), settles.end());
  EXPECT_EQ(settles, (std::vector<std::int64_t>{seq1, seq2}));
  EXPECT_TRUE(s.held.empty());
  EXPECT_TRUE(s.diagnostics.empty()) << diag::format(s.diagnostics);
}

// An older run's evidence never acts on a container a newer interrupted run left unsettled.
TEST_F(PipelineSettle, OlderRecoveryIsHeldWhenANewerRunLeftTheContainerUnsettled) {
  const auto fleet = fleet_of(kTwoUpdates);
  const auto run1 = store_->begin_run("apply", "fleet.yaml", "{}");
  const auto seq1 = store_->journal_intent(run1, "copy a:c1", "migrate", "{}");
  const auto run2 = store_->begin_run("apply", "fleet.yaml", "{}");
  const auto seq2 = store_->journal_intent(run2, "update a:c1", "update", "{}");
  recoverer_.answer("copy a:c1", recover(finish_transfer("a", "c1")));
  recoverer_.answer("update a:c1", held("remote a does not answer", {"c1"}));
  const auto s = settle_open_intents(store_.get(), fleet, recoverer_);

  EXPECT_TRUE(s.recovery.empty());
  EXPECT_EQ(s.held.count("c1"), 1U);
  EXPECT_EQ(s.diagnostics.items().size(), 2U) << diag::format(s.diagnostics);
  EXPECT_EQ(open_seqs(*store_), (std::vector<std::int64_t>{seq1, seq2}));
}

// Action ids are the walk's keys: two recovery actions with one id must never reach a plan (the
// second would run again after the first and the walk throws on its outcome), even when a recover
// verdict names no containers.
TEST_F(PipelineSettle, OneRecoveryActionPerIdEvenWhenTheResponseNamesNoContainers) {
  const auto fleet = fleet_of(kTwoUpdates);
  const auto run1 = store_->begin_run("apply", "fleet.yaml", "{}");
  const auto seq1 = store_->journal_intent(run1, "copy a:c1", "migrate", "{}");
  const auto run2 = store_->begin_run("apply", "fleet.yaml", "{}");
  const auto seq2 = store_->journal_intent(run2, "finish_transfer a:c1", "unmark", "{}");
  auto no_containers = recover(finish_transfer("a", "c1"));
  no_containers.containers.clear();
  recoverer_.answer("copy a:c1", no_containers);
  recoverer_.answer("finish_transfer a:c1", no_containers);
  const auto s = settle_open_intents(store_.get(), fleet, recoverer_);

  ASSERT_EQ(s.recovery.size(), 1U) << "one id, one action";
  auto settles = s.recovery[0].recovery->settles;
  std::sort(settles.begin(), settles.end());
  EXPECT_EQ(settles, (std::vector<std::int64_t>{seq1, seq2}));
}

// ---------------------------------------------------------------------------------------------
// The walk inside the pipeline: failures, cancellation, unread remotes.

using PipelineWalk = PipelineTest;

TEST_F(PipelineWalk, AFailingStepSkipsItsDependentsOnly) {
  const auto fleet = fleet_of(kTwoUpdates);
  hosts_.set(live_of(kTwoUpdatesLive));
  executor_.fail("update a:c1");
  std::vector<nlohmann::json> events;
  PipelineHooks hooks;
  hooks.events = [&](const nlohmann::json& e) { events.push_back(e); };
  const auto result = run(fleet, {}, hooks);

  ASSERT_EQ(result.outcome, RunOutcome::applied);
  EXPECT_EQ(result.summary.outcomes.at("update a:c1").status, Status::failed);
  EXPECT_NE(result.summary.outcomes.at("update a:c1").error.find("injected failure"), std::string::npos);
  EXPECT_EQ(result.summary.outcomes.at("snapshot a:c1/s1").status, Status::skipped);
  EXPECT_EQ(result.summary.outcomes.at("update a:c2").status, Status::succeeded);
  EXPECT_EQ(position(executor_.executed(), "snapshot a:c1/s1"), -1);
  EXPECT_FALSE(result.summary.all_succeeded);
  EXPECT_FALSE(result.success());
  EXPECT_EQ(store_->runs(1)[0].outcome, "failed");
  // The executor's journal reached the state file, with the failure as its result.
  const auto journal = store_->journal_of(result.run_id, "update a:c1");
  ASSERT_EQ(journal.size(), 1U);
  EXPECT_EQ(journal[0].phase, "failed");
  EXPECT_TRUE(store_->open_intents().empty());
  const auto has_event = [&](const std::string& kind, const std::string& id) {
    return std::any_of(events.begin(), events.end(),
                       [&](const nlohmann::json& e) { return e["event"] == kind && e["action"] == id; });
  };
  EXPECT_TRUE(has_event("failed", "update a:c1"));
  EXPECT_TRUE(has_event("skipped", "snapshot a:c1/s1"));
  EXPECT_TRUE(has_event("finished", "update a:c2"));
}

TEST_F(PipelineWalk, CancelStartsNothingMoreAndRecordsTheRunInterrupted) {
  const auto fleet = fleet_of(R"(version: 1
remotes:
  a: {url: "https://127.0.0.1:8443"}
images:
  bb: {remote: a, alias: bb}
containers:
  c1: {remote: a, image: bb, config: {limits.memory: 2GiB}}
  c2: {remote: a, image: bb, config: {limits.memory: 2GiB}}
  c3: {remote: a, image: bb, config: {limits.memory: 2GiB}}
)");
  hosts_.set(live_of(R"({"remotes": {"a": {"status": "ok", "instances": [
    {"name": "c1", "status_code": 103}, {"name": "c2", "status_code": 103}, {"name": "c3", "status_code": 103}]}}})"));
  std::atomic<bool> cancel{false};
  executor_.on_execute = [&](const plan::Action&) { cancel = true; };  // SIGINT during the first action
  PipelineOptions options;
  options.cancel = &cancel;
  options.limits.global = 1;  // one at a time, so "the first action" is well defined
  const auto result = run(fleet, options);

  ASSERT_EQ(result.outcome, RunOutcome::applied);
  EXPECT_EQ(executor_.executed().size(), 1U);
  EXPECT_EQ(result.summary.counts.at(Status::succeeded), 1);
  EXPECT_FALSE(result.success());
  ASSERT_EQ(store_->runs(1).size(), 1U);
  EXPECT_EQ(store_->runs(1)[0].outcome, "interrupted");
  EXPECT_FALSE(store_->lock_holder().has_value());
}

TEST_F(PipelineWalk, AnUnknownRemoteGetsNoActionsAndTheRunIsNoSuccess) {
  const auto fleet = fleet_of(R"(version: 1
remotes:
  a: {url: "https://127.0.0.1:8443"}
  b: {url: "https://127.0.0.2:8443"}
images:
  bb: {remote: a, alias: bb}
containers:
  c1: {remote: a, image: bb, config: {limits.memory: 2GiB}}
  c2: {remote: b, image: bb, config: {limits.memory: 2GiB}}
)");
  hosts_.set(live_of(R"({"remotes": {"a": {"status": "ok", "instances": [{"name": "c1", "status_code": 103}]}}})"));
  hosts_.set_unknown("b", "connection refused");
  const auto result = run(fleet);

  ASSERT_EQ(result.outcome, RunOutcome::applied);
  EXPECT_EQ(executor_.executed(), std::vector<std::string>{"update a:c1"});
  EXPECT_TRUE(result.summary.all_succeeded);
  EXPECT_FALSE(result.plan.complete());
  EXPECT_FALSE(result.success()) << "every action succeeded, but b was not read";
  EXPECT_EQ(store_->runs(1)[0].outcome, "failed");
}

// ---------------------------------------------------------------------------------------------
// The lock: one run at a time per state file.

using PipelineLock = PipelineTest;

TEST_F(PipelineLock, ALiveHolderMakesTheRunLockedAndChangesNothing) {
  const auto fleet = fleet_of(kTwoUpdates);
  hosts_.set(live_of(kTwoUpdatesLive));
  const auto mine = store_->acquire_lock("apply -f other.yaml", std::chrono::milliseconds(0));
  ASSERT_TRUE(mine.lock_id.has_value());
  const auto result = run(fleet);

  EXPECT_EQ(result.outcome, RunOutcome::locked);
  ASSERT_TRUE(result.holder.has_value());
  EXPECT_EQ(result.holder->pid, ::getpid());
  EXPECT_EQ(result.holder->command, "apply -f other.yaml");
  EXPECT_EQ(reader_.reads(), 0) << "nothing is read without the lock";
  EXPECT_TRUE(executor_.executed().empty());
  EXPECT_TRUE(store_->runs(10).empty());
  EXPECT_EQ(store_->lock_holder()->lock_id, *mine.lock_id) << "the holder keeps its lock";

  store_->release_lock(*mine.lock_id);
  EXPECT_EQ(run(fleet).outcome, RunOutcome::applied);
  EXPECT_FALSE(store_->lock_holder().has_value()) << "released after the run";
}

// ---------------------------------------------------------------------------------------------
// The hosts' locks: after confirmation, on the remotes the plan changes; then the hosts are read
// again, and the run is refused if what the plan depends on changed meanwhile.

class PipelineHostLock : public PipelineTest {
 protected:
  void SetUp() override {
    PipelineTest::SetUp();
    locker_ = &memory_locker_;
  }
  testing::MemoryLocker memory_locker_;
};

constexpr const char* kTwoRemotes = R"(version: 1
remotes:
  a: {url: "https://127.0.0.1:8443"}
  b: {url: "https://127.0.0.2:8443"}
images:
  bb: {remote: a, alias: bb}
containers:
  c1: {remote: a, image: bb, config: {limits.memory: 2GiB}}
  c2: {remote: b, image: bb, config: {limits.memory: 2GiB}}
)";
constexpr const char* kTwoRemotesLive = R"({"remotes": {
  "a": {"status": "ok", "instances": [{"name": "c1", "status_code": 103, "config": {"limits.memory": "1GiB"}}]},
  "b": {"status": "ok", "instances": [{"name": "c2", "status_code": 103, "config": {"limits.memory": "2GiB"}}]}}})";

TEST_F(PipelineHostLock, LocksOnlyTheRemotesThePlanChangesAndReleasesThemAfter) {
  const auto fleet = fleet_of(kTwoRemotes);
  hosts_.set(live_of(kTwoRemotesLive));
  const int reads_before = reader_.reads();
  const auto result = run(fleet);

  EXPECT_EQ(result.outcome, RunOutcome::applied);
  EXPECT_EQ(executor_.executed(), std::vector<std::string>{"update a:c1"});
  EXPECT_EQ(memory_locker_.log(), (std::vector<std::string>{"acquire a", "release a"})) << "b is not changed";
  EXPECT_EQ(reader_.reads() - reads_before, 4) << "both remotes read to plan, and again under the lock";
}

TEST_F(PipelineHostLock, AHeldHostLockChangesNothingAndNamesTheHolder) {
  const auto fleet = fleet_of(kTwoUpdates);
  hosts_.set(live_of(kTwoUpdatesLive));
  memory_locker_.hold("a", "berth apply, ci@runner-2, pid 7");
  bool asked = false;
  PipelineHooks hooks;
  hooks.confirm = [&](const plan::Plan&) { return asked = true; };
  const auto result = run(fleet, {}, hooks);

  EXPECT_EQ(result.outcome, RunOutcome::host_locked);
  ASSERT_TRUE(result.host_holder.has_value());
  EXPECT_EQ(result.host_holder->holder, "berth apply, ci@runner-2, pid 7");
  EXPECT_TRUE(asked) << "the hosts are locked after confirmation, not while a person reads the plan";
  EXPECT_TRUE(executor_.executed().empty());
  EXPECT_TRUE(store_->runs(10).empty()) << "no run walked, none recorded";
  EXPECT_FALSE(store_->lock_holder().has_value()) << "the state file's lock is released too";
}

TEST_F(PipelineHostLock, WaitsForAHostLockUpToTheLockTimeout) {
  const auto fleet = fleet_of(kTwoUpdates);
  hosts_.set(live_of(kTwoUpdatesLive));
  memory_locker_.hold("a", "another run");
  std::thread other([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    memory_locker_.free("a");
  });
  PipelineOptions options;
  options.lock_timeout = std::chrono::seconds(10);
  const auto result = run(fleet, options);
  other.join();

  EXPECT_EQ(result.outcome, RunOutcome::applied);
  EXPECT_EQ(executor_.executed().size(), result.plan.actions.size());
  EXPECT_FALSE(executor_.executed().empty());
}

TEST_F(PipelineHostLock, HostsChangedBeforeTheLockRefuseTheRun) {
  const auto fleet = fleet_of(kTwoUpdates);
  hosts_.set(live_of(kTwoUpdatesLive));
  PipelineHooks hooks;
  // Another runner changed c1 between this run's read and its lock.
  hooks.confirm = [&](const plan::Plan&) {
    hosts_.change([](model::LiveState& live) { live.remotes["a"].instances["c1"].config["limits.memory"] = "2GiB"; });
    return true;
  };
  const auto result = run(fleet, {}, hooks);

  EXPECT_EQ(result.outcome, RunOutcome::changed);
  EXPECT_EQ(result.stale, std::vector<std::string>{"a:c1 (changed)"});
  EXPECT_TRUE(executor_.executed().empty());
  EXPECT_EQ(memory_locker_.log(), (std::vector<std::string>{"acquire a", "release a"}));
}

TEST_F(PipelineHostLock, AnUnreachableHostIsAnErrorAndNothingIsChanged) {
  const auto fleet = fleet_of(kTwoUpdates);
  hosts_.set(live_of(kTwoUpdatesLive));
  memory_locker_.unreachable("a");
  const auto result = run(fleet);

  EXPECT_EQ(result.outcome, RunOutcome::host_locked);
  EXPECT_FALSE(result.host_holder.has_value());
  EXPECT_NE(result.error.find("unreachable"), std::string::npos) << result.error;
  EXPECT_TRUE(executor_.executed().empty());
}

// ---------------------------------------------------------------------------------------------
// prepare_plan: what `berth plan` shows; no lock and no change anywhere.

using PipelinePrepare = PipelineTest;

TEST_F(PipelinePrepare, DoesNotSettleIntentsWhileAnotherRunHoldsTheLock) {
  const auto fleet = fleet_of(kTwoUpdates);
  hosts_.set(live_of(kRecoveryLive));
  const auto interrupted = interrupt("copy a:c1");
  recoverer_.answer("copy a:c1", recover(finish_transfer("a", "c1")));
  const auto other = store_->acquire_lock("apply", std::chrono::milliseconds(0));
  ASSERT_TRUE(other.lock_id.has_value());

  const auto busy = prepare(fleet);
  EXPECT_TRUE(recoverer_.calls().empty()) << "its open intents are its own steps in flight";
  EXPECT_EQ(find(busy, "finish_transfer a:c1"), nullptr);
  EXPECT_NE(warning_containing(busy, "another run holds the state file's lock"), nullptr)
      << diag::format(busy.diagnostics);

  store_->release_lock(*other.lock_id);
  const auto free = prepare(fleet);
  EXPECT_EQ(recoverer_.calls().size(), 1U);
  ASSERT_FALSE(free.actions.empty());
  EXPECT_EQ(free.actions[0].id, "finish_transfer a:c1");
  EXPECT_EQ(warning_containing(free, "another run holds"), nullptr);
  // Planning recorded nothing, closed nothing and took no lock.
  EXPECT_TRUE(executor_.executed().empty());
  EXPECT_EQ(store_->runs(10).size(), 1U);
  EXPECT_EQ(open_seqs(*store_), std::vector<std::int64_t>{interrupted.open_seq});
  EXPECT_FALSE(store_->lock_holder().has_value());
}

TEST_F(PipelinePrepare, WithoutAStateFileAndWithConsentFlags) {
  const auto fleet = fleet_of(kRestart);
  hosts_.set(live_of(kRestartLive));
  const auto p = prepare_plan(fleet, nullptr, Providers{&reader_, &recoverer_, nullptr}, Goal::apply, false,
                              {.restart = true, .move = false});
  EXPECT_TRUE(recoverer_.calls().empty());
  EXPECT_TRUE(p.consent.restart);
  ASSERT_NE(find(p, "restart a:c1"), nullptr);
  EXPECT_TRUE(find(p, "restart a:c1")->consented);
  EXPECT_TRUE(plan::refusals(p).empty());
  EXPECT_FALSE(p.basis.empty()) << "a saved plan needs its basis";
}

}  // namespace
}  // namespace berth::apply
