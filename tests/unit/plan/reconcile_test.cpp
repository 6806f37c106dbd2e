// What berth manages on an instance it did not just create: keys it set and the file dropped are
// removed (and only those), instances no fleet owns are adopted, instances of other fleets are
// left alone, and --target/--replace addresses are checked against the fleet. The golden cases
// (tests/plan/{removed_keys,adopt,image_drift,replace_flag,target}) show whole plans; these pin
// the rules one by one.

#include <gtest/gtest.h>

#include "engine/config/load.hpp"
#include "engine/model/live_json.hpp"
#include "engine/model/managed.hpp"
#include "engine/plan/plan.hpp"
#include "engine/plan/render.hpp"

namespace berth::plan {
namespace {

model::Fleet load(const std::string& text) {
  auto loaded = config::load_fleet_text(text, "fleet.yaml", [](std::string_view name) -> std::optional<std::string> {
    if (name == "TOKEN") return "declared-secret-value";
    return std::nullopt;
  });
  if (!loaded.fleet) throw std::runtime_error(diag::format(loaded.diagnostics));
  return std::move(*loaded.fleet);
}

model::LiveState one_instance(nlohmann::json config, nlohmann::json devices = nlohmann::json::object()) {
  return model::live_state_from_json({{"remotes",
                                       {{"h",
                                         {{"status", "ok"},
                                          {"instances",
                                           {{{"name", "c"},
                                             {"status_code", 102},
                                             {"config", std::move(config)},
                                             {"devices", std::move(devices)},
                                             {"profiles", {"default"}}}}}}}}}});
}

const Change* change_of(const Plan& plan, const std::string& path) {
  for (const auto& a : plan.actions) {
    for (const auto& c : a.changes) {
      if (c.path == path) return &c;
    }
  }
  return nullptr;
}

const std::string fleet_text =
    "version: 1\nremotes: {h: {url: \"unix:///s\"}}\ncontainers:\n"
    "  c: {remote: h, image: \"h:bb\", state: stopped, config: {limits.memory: 1GiB}}\n";

TEST(ManagedRecord, RoundTripsAndRefusesDamage) {
  model::Managed m{{"limits.cpu"}, {"eth1"}, {"web"}, {"config.x"}};
  EXPECT_EQ(model::parse_record(model::record_text(m)), m);
  EXPECT_EQ(model::record_text(m),
            R"({"config":["limits.cpu"],"devices":["eth1"],"profiles":["web"],"sensitive":["config.x"]})");
  EXPECT_FALSE(model::parse_record("not json"));
  EXPECT_FALSE(model::parse_record(R"({"config": "limits.cpu"})"));
  EXPECT_FALSE(model::parse_record(R"({"config": [1]})"));
  EXPECT_FALSE(model::parse_record(std::string(100, '[')));
  EXPECT_EQ(model::parse_record("{}"), model::Managed{});
}

TEST(RemovedKeys, RemovedOnlyWhenTheRecordNamesThem) {
  const auto fleet = load(fleet_text);
  const auto live = one_instance(
      {{"user.berth.fleet", "default"},
       {"limits.memory", "1GiB"},
       {"limits.cpu", "2"},
       {"user.mine", "hands off"},
       {"user.berth.managed", R"({"config":["limits.cpu","limits.memory"],"devices":["gone"],"profiles":[]})"}},
      {{"gone", {{"type", "none"}}}, {"kept", {{"type", "none"}}}});
  const Plan plan = compute_plan(fleet, live, {});
  ASSERT_EQ(plan.actions.size(), 1U);
  EXPECT_EQ(plan.actions[0].kind, ActionKind::update);
  const auto* cpu = change_of(plan, "config.limits.cpu");
  ASSERT_NE(cpu, nullptr);
  EXPECT_EQ(cpu->before, "2");
  EXPECT_TRUE(cpu->after.is_null());
  ASSERT_NE(change_of(plan, "devices.gone"), nullptr);
  EXPECT_EQ(change_of(plan, "devices.kept"), nullptr);
  EXPECT_EQ(change_of(plan, "config.user.mine"), nullptr);
  const auto* record = change_of(plan, "config.user.berth.managed");
  ASSERT_NE(record, nullptr);
  EXPECT_EQ(record->after, R"({"config":["limits.memory"],"devices":[],"profiles":[]})");
}

TEST(RemovedKeys, NoRecordRemovesNothingAndWritesOne) {
  const auto fleet = load(fleet_text);
  const auto live = one_instance({{"user.berth.fleet", "default"}, {"limits.memory", "1GiB"}, {"limits.cpu", "2"}});
  const Plan plan = compute_plan(fleet, live, {});
  ASSERT_EQ(plan.actions.size(), 1U);
  ASSERT_EQ(plan.actions[0].changes.size(), 1U);
  EXPECT_EQ(plan.actions[0].changes[0].path, "config.user.berth.managed");
  EXPECT_TRUE(plan.actions[0].changes[0].before.is_null());
  EXPECT_NE(plan.actions[0].reason.find("record what berth manages"), std::string::npos) << plan.actions[0].reason;
}

TEST(RemovedKeys, DamagedRecordRemovesNothingAndWarns) {
  const auto fleet = load(fleet_text);
  const auto live = one_instance({{"user.berth.fleet", "default"},
                                  {"limits.memory", "1GiB"},
                                  {"limits.cpu", "2"},
                                  {"user.berth.managed", "{broken"}});
  const Plan plan = compute_plan(fleet, live, {});
  EXPECT_EQ(change_of(plan, "config.limits.cpu"), nullptr);
  ASSERT_NE(change_of(plan, "config.user.berth.managed"), nullptr);
  ASSERT_EQ(plan.diagnostics.items().size(), 1U);
  EXPECT_NE(plan.diagnostics.items()[0].summary.find("damaged"), std::string::npos);
  EXPECT_NE(render_text(plan, TextStyle{}).find("berth's record: (damaged) -> [config.limits.memory]"),
            std::string::npos)
      << render_text(plan, TextStyle{});
}

// A key that was a secret when berth set it stays one when it is removed: the host's value is
// masked everywhere, but known to the redactor.
TEST(RemovedKeys, SecretRemovalIsMasked) {
  const auto fleet = load(fleet_text);
  const auto live = one_instance(
      {{"user.berth.fleet", "default"},
       {"limits.memory", "1GiB"},
       {"environment.TOKEN", "old-secret-value"},
       {"user.berth.managed",
        R"({"config":["environment.TOKEN","limits.memory"],"devices":[],"profiles":[],"sensitive":["config.environment.TOKEN"]})"}});
  const Plan plan = compute_plan(fleet, live, {});
  const auto* token = change_of(plan, "config.environment.TOKEN");
  ASSERT_NE(token, nullptr);
  EXPECT_TRUE(token->sensitive);
  EXPECT_EQ(to_json(plan).dump().find("old-secret-value"), std::string::npos);
  EXPECT_EQ(render_text(plan, TextStyle{}).find("old-secret-value"), std::string::npos);
  const auto secrets = secret_values(plan);
  EXPECT_NE(std::find(secrets.begin(), secrets.end(), "old-secret-value"), secrets.end());
}

TEST(RemovedKeys, DeclaredSecretsAreRecordedAsSensitive) {
  const auto fleet = load(
      "version: 1\nremotes: {h: {url: \"unix:///s\"}}\ncontainers:\n"
      "  c: {remote: h, image: \"h:bb\", config: {environment.TOKEN: \"${env:TOKEN}\"}}\n");
  const model::Managed m = model::managed_of(fleet.containers.at("c"));
  EXPECT_EQ(m.sensitive, std::set<std::string>{"config.environment.TOKEN"});
  EXPECT_EQ(model::record_text(m).find("declared-secret-value"), std::string::npos);
}

// A removal (or an addition) that needs a restart is recorded by the restart, not by the update
// before it: if the restart is refused, the record still names the key and the next plan shows the
// restart again.
TEST(RemovedKeys, RestartKeysAreRecordedByTheRestart) {
  const auto fleet = load(
      "version: 1\nremotes: {h: {url: \"unix:///s\"}}\ncontainers:\n"
      "  c: {remote: h, image: \"h:bb\", config: {limits.cpu: \"2\", security.nesting: \"true\"}}\n");
  auto live = model::live_state_from_json(
      {{"remotes",
        {{"h",
          {{"status", "ok"},
           {"instances",
            {{{"name", "c"},
              {"status_code", 103},
              {"config",
               {{"user.berth.fleet", "default"},
                {"limits.cpu", "1"},
                {"security.privileged", "true"},
                {"user.berth.managed",
                 R"({"config":["limits.cpu","security.privileged"],"devices":[],"profiles":[]})"}}},
              {"profiles", {"default"}}}}}}}}}});
  const Plan plan = compute_plan(fleet, live, {});
  ASSERT_EQ(plan.actions.size(), 2U);
  const Action& update = plan.actions[0];
  const Action& restart = plan.actions[1];
  ASSERT_EQ(update.kind, ActionKind::update);
  ASSERT_EQ(restart.kind, ActionKind::restart);
  const auto record_in = [](const Action& a) -> std::string {
    for (const auto& c : a.changes) {
      if (c.path == "config.user.berth.managed") return c.after.get<std::string>();
    }
    return "(none)";
  };
  // Before the restart the host still has security.privileged and not security.nesting: the record
  // already says so, so the update leaves it.
  EXPECT_EQ(record_in(update), "(none)") << "the update keeps the old record's word on the restart's keys";
  EXPECT_EQ(record_in(restart), R"({"config":["limits.cpu","security.nesting"],"devices":[],"profiles":[]})");
  EXPECT_EQ(restart.reason, "differs: config.security.nesting, config.security.privileged; takes effect on restart");
}

TEST(Adoption, ARecordLeftByAnotherFleetRemovesNothing) {
  const auto fleet = load(fleet_text);
  const auto live = one_instance(
      {{"limits.memory", "1GiB"},
       {"limits.cpu", "4"},
       {"user.berth.managed", R"({"config":["limits.cpu","limits.memory"],"devices":["data"],"profiles":[]})"}},
      {{"data", {{"type", "none"}}}});
  const Plan plan = compute_plan(fleet, live, {});
  ASSERT_EQ(plan.actions.size(), 1U);
  EXPECT_EQ(plan.actions[0].kind, ActionKind::adopt);
  EXPECT_EQ(change_of(plan, "config.limits.cpu"), nullptr);
  EXPECT_EQ(change_of(plan, "devices.data"), nullptr);
}

TEST(Adoption, SnapshotsArePrunedOnlyAfterTheAdopt) {
  const auto fleet = load(
      "version: 1\nremotes: {h: {url: \"unix:///s\"}}\ncontainers:\n"
      "  c: {remote: h, image: \"h:bb\", state: stopped, snapshots: {names: [keep], prune: true}}\n");
  auto live = one_instance(nlohmann::json::object());
  live.remotes.at("h").instances.at("c").snapshots = {{"keep", ""}, {"old", ""}};
  const Plan plan = compute_plan(fleet, live, {});
  ASSERT_EQ(plan.actions.size(), 2U);
  EXPECT_EQ(plan.actions[0].id, "adopt h:c");
  EXPECT_EQ(plan.actions[1].id, "delete_snapshot h:c/old");
  EXPECT_EQ(plan.actions[1].depends_on, std::vector<std::string>{"adopt h:c"});
}

TEST(Targets, RecoveryActionsAreAlwaysKept) {
  Plan plan;
  Action recovery;
  recovery.kind = ActionKind::finish_transfer;
  recovery.id = "finish_transfer h:other";
  recovery.address = {"h", "other", std::nullopt};
  recovery.recovery.emplace();
  Action start;
  start.kind = ActionKind::start;
  start.id = "start h:c";
  start.address = {"h", "c", std::nullopt};
  plan.actions = {recovery, start};
  limit_to_targets(plan, {Target{std::nullopt, "c"}});
  ASSERT_EQ(plan.actions.size(), 2U) << "a saved targeted plan must still hold the recovery that is due";
}

TEST(ImageDrift, AReplaceThatRecreatesNothingSaysSo) {
  const auto fleet = load(fleet_text);
  PlanOptions options;
  ASSERT_TRUE(parse_targets({"c"}, fleet, false, options.replace).empty());
  const Plan plan = compute_plan(fleet, one_instance({{"user.berth.fleet", "other"}}), options);
  EXPECT_TRUE(plan.actions.empty());
  const auto& items = plan.diagnostics.items();
  EXPECT_TRUE(std::any_of(items.begin(), items.end(), [](const diag::Diagnostic& d) {
    return d.summary == "--replace c: it is not recreated by this plan";
  })) << diag::format(plan.diagnostics);
}

TEST(Adoption, UnownedIsAdoptedWithItsChangesOtherFleetsAreLeftAlone) {
  const auto fleet = load(fleet_text);
  {
    const Plan plan = compute_plan(fleet, one_instance({{"limits.memory", "512MiB"}}), {});
    ASSERT_EQ(plan.actions.size(), 1U);
    EXPECT_EQ(plan.actions[0].kind, ActionKind::adopt);
    ASSERT_NE(change_of(plan, "config.limits.memory"), nullptr);
    const auto* mark = change_of(plan, "config.user.berth.fleet");
    ASSERT_NE(mark, nullptr);
    EXPECT_EQ(mark->after, "default");
  }
  {
    const Plan plan = compute_plan(fleet, one_instance({{"user.berth.fleet", "other"}}), {});
    EXPECT_TRUE(plan.actions.empty());
    ASSERT_EQ(plan.diagnostics.items().size(), 1U);
    EXPECT_NE(plan.diagnostics.items()[0].summary.find("owned by fleet 'other'"), std::string::npos);
    EXPECT_TRUE(plan.complete());
  }
}

TEST(Targets, AddressesAreCheckedAgainstTheFleet) {
  const auto fleet = load(fleet_text);
  std::vector<Target> out;
  EXPECT_TRUE(parse_targets({"h:c", "c"}, fleet, false, out).empty());
  ASSERT_EQ(out.size(), 2U);
  EXPECT_EQ(out[0], (Target{"h", "c", "default"}));
  EXPECT_EQ(out[1], (Target{std::nullopt, "c"}));
  out.clear();
  const auto problems = parse_targets({"x:c", "nope", ":c", "h:", "h:c/snap"}, fleet, false, out);
  EXPECT_EQ(problems.size(), 5U) << ::testing::PrintToString(problems);
  EXPECT_TRUE(out.empty());
  EXPECT_TRUE(parse_targets({"h:old"}, fleet, true, out).empty()) << "undeclared allowed for destroy and pruning";
}

TEST(Targets, DependenciesComeAlongAndTheRestIsDropped) {
  const auto fleet = load(
      "version: 1\nremotes: {h: {url: \"unix:///s\"}}\ncontainers:\n"
      "  a: {remote: h, image: \"h:bb\", snapshots: [s]}\n"
      "  b: {remote: h, copy_of: a/s}\n"
      "  other: {remote: h, image: \"h:bb\"}\n");
  Plan plan = compute_plan(fleet, model::live_state_from_json({{"remotes", {{"h", {{"status", "ok"}}}}}}), {});
  ASSERT_EQ(plan.actions.size(), 4U);  // launch a, snapshot a/s, launch other, copy b
  std::vector<Target> targets;
  ASSERT_TRUE(parse_targets({"b"}, fleet, false, targets).empty());
  limit_to_targets(plan, targets);
  std::vector<std::string> ids;
  for (const auto& a : plan.actions) ids.push_back(a.id);
  EXPECT_EQ(ids, (std::vector<std::string>{"launch h:a", "snapshot h:a/s", "copy h:b"}));
  EXPECT_EQ(plan.targets, std::vector<std::string>{"b"});
}

TEST(ImageDrift, AnAliasThatDoesNotResolveLeavesThePlanIncomplete) {
  const auto fleet = load(fleet_text);
  auto live = one_instance({{"user.berth.fleet", "default"}, {"limits.memory", "2GiB"}});
  live.remotes.at("h").image_aliases = model::ImageAliases{{"other", "f00"}};
  const Plan plan = compute_plan(fleet, live, {});
  EXPECT_TRUE(plan.actions.empty()) << "not even the config update";
  EXPECT_FALSE(plan.complete());
  EXPECT_EQ(plan.not_planned.count("h:c"), 1U);
  EXPECT_FALSE(plan.diagnostics.has_errors()) << "an error would stop the rest of the plan from being applied";
  EXPECT_EQ(summary_line(plan), "No changes to what could be planned.");
}

}  // namespace
}  // namespace berth::plan
