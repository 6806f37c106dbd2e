// LXD projects in the plan (addresses, keys, moves, pruning, targets, saved plans) and the
// ephemeral and description fields of containers.

#include <vector>

#include <gtest/gtest.h>

#include "engine/config/load.hpp"
#include "engine/model/live_json.hpp"
#include "engine/plan/plan.hpp"
#include "engine/plan/plan_file.hpp"
#include "engine/plan/render.hpp"

namespace berth::plan {
namespace {

config::LoadResult load_result(const std::string& text) {
  return config::load_fleet_text(text, "fleet.yaml", [](std::string_view) { return std::nullopt; });
}

model::Fleet load(const std::string& text) {
  auto loaded = load_result(text);
  if (!loaded.fleet) throw std::runtime_error(diag::format(loaded.diagnostics));
  return std::move(*loaded.fleet);
}

const std::string header = "version: 1\nremotes:\n  a: {url: \"unix:///a\"}\n  b: {url: \"unix:///b\", project: p}\n";

nlohmann::json instance(const std::string& name, const std::string& project, int status_code = 103,
                        nlohmann::json extra = nlohmann::json::object()) {
  nlohmann::json j = {
      {"name", name},
      {"status_code", status_code},
      {"config",
       {{"user.berth.fleet", "default"}, {"user.berth.managed", R"({"config":[],"devices":[],"profiles":[]})"}}},
      {"profiles", {"default"}}};
  if (project != "default") j["project"] = project;
  j.update(extra);
  return j;
}

// The instances of remote a and of b. Vectors, not json: a braced list of one json is that json
// itself to clang (CWG 2137), an array of it to gcc.
model::LiveState live_of(const std::vector<nlohmann::json>& a, const std::vector<nlohmann::json>& b = {}) {
  return model::live_state_from_json({{"remotes",
                                       {{"a", {{"status", "ok"}, {"instances", nlohmann::json(a)}}},
                                        {"b", {{"status", "ok"}, {"instances", nlohmann::json(b)}}}}}});
}

std::vector<std::string> ids(const Plan& plan) {
  std::vector<std::string> out;
  for (const auto& a : plan.actions) out.push_back(a.id);
  return out;
}

bool has_error(const Plan& plan, const std::string& text) {
  for (const auto& d : plan.diagnostics.items()) {
    if (d.severity == diag::Severity::error && d.summary.find(text) != std::string::npos) return true;
  }
  return false;
}

TEST(Projects, ResolvedFromTheContainerElseItsRemote) {
  const auto fleet = load(header +
                          "containers:\n"
                          "  web: {remote: a, project: p, image: \"a:bb\"}\n"
                          "  api: {remote: b, image: \"a:bb\"}\n"
                          "  db: {remote: a, image: \"a:bb\"}\n"
                          "  own: {remote: b, project: default, image: \"a:bb\"}\n");
  EXPECT_EQ(fleet.remotes.at("a").project, "default");
  EXPECT_EQ(fleet.remotes.at("b").project, "p");
  EXPECT_EQ(fleet.containers.at("web").project, "p");
  EXPECT_EQ(fleet.containers.at("api").project, "p");
  EXPECT_EQ(fleet.containers.at("db").project, "default");
  EXPECT_EQ(fleet.containers.at("own").project, "default");
}

TEST(Projects, NamesAreValidated) {
  for (const char* bad : {"\"a/b\"", "\"\"", "\"a b\"", "a_b", "\"..\""}) {
    const auto r = load_result(header + "containers:\n  web: {remote: a, project: " + bad + ", image: \"a:bb\"}\n");
    EXPECT_FALSE(r.fleet && !r.diagnostics.has_errors()) << bad;
  }
  const auto r = load_result("version: 1\nremotes:\n  a: {url: \"unix:///a\", project: \"x/y\"}\n");
  ASSERT_TRUE(r.diagnostics.has_errors());
  EXPECT_NE(diag::format(r.diagnostics).find("project name"), std::string::npos) << diag::format(r.diagnostics);
}

TEST(Projects, KeysAndAddresses) {
  EXPECT_EQ(model::instance_key("default", "web"), "web");
  EXPECT_EQ(model::instance_key("p", "web"), "p/web");
  EXPECT_EQ(to_string(Address{"a", "web", std::nullopt, "p"}), "a:p/web");
  EXPECT_EQ(to_string(Address{"a", "web", "s0", "p"}), "a:p/web/s0");
  EXPECT_EQ(to_string(Address{"a", "web", "s0"}), "a:web/s0");
  EXPECT_EQ(parse_instance_address("a:p/web"), (Address{"a", "web", std::nullopt, "p"}));
  EXPECT_EQ(parse_instance_address("a:web"), (Address{"a", "web", std::nullopt}));
  EXPECT_FALSE(parse_instance_address("a:p/web/s0"));
  EXPECT_FALSE(parse_instance_address("a:/web"));
}

TEST(Projects, TheSameNameInTwoProjectsDoesNotCollide) {
  const auto fleet = load(header + "containers:\n  web: {remote: a, project: p, image: \"a:bb\"}\n");
  // A web of nobody's in the default project: not adopted, not touched; the one in p is launched.
  auto hand_made = instance("web", "default", 102);
  hand_made["config"] = nlohmann::json::object();
  const Plan plan = compute_plan(fleet, live_of({hand_made}), {});
  EXPECT_EQ(ids(plan), std::vector<std::string>{"launch a:p/web"});
  EXPECT_EQ(plan.actions[0].address.project, "p");
  // Once there, it is converged in place: nothing to do.
  const Plan again = compute_plan(fleet, live_of({hand_made, instance("web", "p")}), {});
  EXPECT_TRUE(again.actions.empty()) << ::testing::PrintToString(ids(again));
  EXPECT_EQ(again.basis.count("a:p/web"), 1U);
  EXPECT_EQ(again.basis.count("a:web"), 1U);
}

TEST(Projects, PruningAndDestroyKeepToTheProject) {
  const auto fleet = load(header + "prune: true\ncontainers:\n  web: {remote: a, project: p, image: \"a:bb\"}\n");
  const Plan plan = compute_plan(fleet, live_of({instance("web", "p"), instance("old", "p")}), {});
  EXPECT_EQ(ids(plan), std::vector<std::string>{"delete a:p/old"});
  const Plan destroy = compute_destroy_plan(fleet, live_of({instance("web", "p")}));
  EXPECT_EQ(ids(destroy), std::vector<std::string>{"delete a:p/web"});
}

TEST(Projects, AMoveKeepsTheProject) {
  const auto fleet = load(header + "containers:\n  web: {remote: b, image: \"a:bb\", move: allowed}\n");
  const Plan plan = compute_plan(fleet, live_of({instance("web", "p")}), {});
  EXPECT_EQ(ids(plan), (std::vector<std::string>{"stop a:p/web", "move b:p/web", "start b:p/web"}));
  const auto& move = plan.actions[1];
  ASSERT_TRUE(move.source);
  EXPECT_EQ(move.source->project, "p");
  EXPECT_EQ(move.address.project, "p");
}

TEST(Projects, AChangeOfProjectIsRefused) {
  const auto fleet = load(header + "containers:\n  web: {remote: a, project: q, image: \"a:bb\"}\n");
  const Plan plan = compute_plan(fleet, live_of({instance("web", "p")}), {});
  EXPECT_TRUE(plan.actions.empty()) << ::testing::PrintToString(ids(plan));
  EXPECT_TRUE(has_error(plan, "berth does not move containers between projects"));
}

TEST(Projects, TargetsTakeTheProjectForm) {
  const auto fleet = load(header +
                          "containers:\n"
                          "  web: {remote: a, project: p, image: \"a:bb\"}\n"
                          "  db: {remote: a, image: \"a:bb\"}\n");
  std::vector<Target> out;
  EXPECT_TRUE(parse_targets({"a:p/web", "p/web", "web", "a:db"}, fleet, false, out).empty());
  ASSERT_EQ(out.size(), 4U);
  EXPECT_EQ(out[0], (Target{"a", "web", "p"}));
  EXPECT_EQ(out[1], (Target{std::nullopt, "web", "p"}));
  EXPECT_EQ(out[2], (Target{std::nullopt, "web", std::nullopt}));
  EXPECT_EQ(out[3], (Target{"a", "db", "default"}));
  EXPECT_EQ(to_string(out[0]), "a:p/web");
  EXPECT_EQ(to_string(out[3]), "a:db");
  EXPECT_TRUE(matches(out[0], Address{"a", "web", std::nullopt, "p"}));
  EXPECT_FALSE(matches(out[0], Address{"a", "web", std::nullopt}));
  out.clear();
  const auto problems = parse_targets({"a:web", "a:q/web", "a:p/"}, fleet, false, out);
  EXPECT_EQ(problems.size(), 3U) << ::testing::PrintToString(problems);
  EXPECT_NE(problems[0].find("in project 'p'"), std::string::npos) << problems[0];

  Plan plan = compute_plan(fleet, live_of(nlohmann::json::array()), {});
  limit_to_targets(plan, {Target{"a", "web", "p"}});
  EXPECT_EQ(ids(plan), std::vector<std::string>{"launch a:p/web"});
}

TEST(Projects, SavedPlansKeepProjectAddresses) {
  const auto fleet = load(header +
                          "containers:\n"
                          "  web: {remote: a, project: p, image: \"a:bb\", snapshots: [s1]}\n"
                          "  copy: {remote: b, copy_of: web}\n");
  Plan plan = compute_plan(fleet, live_of(nlohmann::json::array()), {});
  const auto text = serialize(PlanFile{plan, "now", "test"});
  const auto parsed = parse_plan_file(text, "saved");
  ASSERT_TRUE(parsed.file) << diag::format(parsed.diagnostics);
  ASSERT_EQ(parsed.file->plan.actions.size(), plan.actions.size());
  for (std::size_t i = 0; i < plan.actions.size(); ++i) {
    EXPECT_EQ(parsed.file->plan.actions[i].address, plan.actions[i].address) << plan.actions[i].id;
    EXPECT_EQ(parsed.file->plan.actions[i].source, plan.actions[i].source) << plan.actions[i].id;
  }
}

TEST(Projects, StaleAddressesKnowTheProject) {
  const auto fleet = load(header + "containers:\n  web: {remote: a, project: p, image: \"a:bb\", state: stopped}\n");
  const auto live = live_of({instance("web", "p")});
  const Plan plan = compute_plan(fleet, live, {});
  ASSERT_EQ(ids(plan), std::vector<std::string>{"stop a:p/web"});
  EXPECT_TRUE(stale_addresses(plan, live).empty());
  const auto moved = live_of({instance("web", "p", 103, {{"description", "changed"}})});
  EXPECT_EQ(stale_addresses(plan, moved), std::vector<std::string>{"a:p/web (changed)"});
}

TEST(Projects, ImagesOnTheContainersRemoteAreCheckedInItsProject) {
  const auto fleet = load(header + "containers:\n  web: {remote: a, project: p, image: \"a:bb\"}\n");
  const auto with_aliases = [](nlohmann::json in_p) {
    return model::live_state_from_json({{"remotes",
                                         {{"a",
                                           {{"status", "ok"},
                                            {"instances", nlohmann::json::array()},
                                            {"image_aliases", {{"bb", "f1"}}},
                                            {"project_image_aliases", {{"p", std::move(in_p)}}}}},
                                          {"b", {{"status", "ok"}, {"instances", nlohmann::json::array()}}}}}});
  };
  const Plan missing = compute_plan(fleet, with_aliases(nlohmann::json::object()), {});
  EXPECT_TRUE(missing.actions.empty());
  ASSERT_EQ(missing.not_planned.count("a:p/web"), 1U);
  EXPECT_NE(missing.not_planned.at("a:p/web").find("in project 'p'"), std::string::npos);
  const Plan found = compute_plan(fleet, with_aliases({{"bb", "f2"}}), {});
  EXPECT_EQ(ids(found), std::vector<std::string>{"launch a:p/web"});
}

TEST(EphemeralAndDescription, ComparedAndUpdatedInPlace) {
  const auto fleet = load(header +
                          "containers:\n"
                          "  web: {remote: a, image: \"a:bb\", ephemeral: true, description: \"front end\"}\n"
                          "  db: {remote: a, image: \"a:bb\"}\n");
  const Plan plan =
      compute_plan(fleet,
                   live_of({instance("web", "default", 103, {{"description", "old"}}),
                            instance("db", "default", 103, {{"description", "by hand"}, {"ephemeral", true}})}),
                   {});
  ASSERT_EQ(ids(plan), std::vector<std::string>{"update a:web"}) << "db declares neither, so neither is compared";
  const auto& changes = plan.actions[0].changes;
  ASSERT_EQ(changes.size(), 2U);
  EXPECT_EQ(changes[0].path, "ephemeral");
  EXPECT_EQ(changes[0].before, false);
  EXPECT_EQ(changes[0].after, true);
  EXPECT_EQ(changes[1].path, "description");
  EXPECT_EQ(changes[1].before, "old");
  EXPECT_EQ(changes[1].after, "front end");
  EXPECT_NE(render_text(plan, {}).find("description: \"old\" -> \"front end\""), std::string::npos)
      << render_text(plan, {});
}

TEST(EphemeralAndDescription, SentOnLaunch) {
  const auto fleet =
      load(header + "containers:\n  web: {remote: a, image: \"a:bb\", ephemeral: true, description: d}\n");
  const Plan plan = compute_plan(fleet, live_of(nlohmann::json::array()), {});
  ASSERT_EQ(ids(plan), std::vector<std::string>{"launch a:web"});
  EXPECT_EQ(plan.actions[0].ephemeral, true);
  EXPECT_EQ(plan.actions[0].description, "d");
  // And they survive a saved plan.
  const auto parsed = parse_plan_file(serialize(PlanFile{plan, "now", "test"}), "saved");
  ASSERT_TRUE(parsed.file);
  EXPECT_EQ(parsed.file->plan.actions[0].ephemeral, true);
  EXPECT_EQ(parsed.file->plan.actions[0].description, "d");
}

TEST(EphemeralAndDescription, EphemeralAndStoppedIsAnError) {
  const auto r =
      load_result(header + "containers:\n  web: {remote: a, image: \"a:bb\", ephemeral: true, state: stopped}\n");
  ASSERT_TRUE(r.diagnostics.has_errors());
  EXPECT_NE(diag::format(r.diagnostics).find("an ephemeral container cannot be declared stopped"), std::string::npos);
  // A live ephemeral container declared stopped (ephemeral not declared) is not stopped either.
  const auto fleet = load(header + "containers:\n  web: {remote: a, image: \"a:bb\", state: stopped}\n");
  const Plan plan = compute_plan(fleet, live_of({instance("web", "default", 103, {{"ephemeral", true}})}), {});
  EXPECT_TRUE(plan.actions.empty()) << ::testing::PrintToString(ids(plan));
  EXPECT_TRUE(has_error(plan, "is ephemeral and declared stopped"));
}

TEST(EphemeralAndDescription, AnEphemeralContainerIsNotMoved) {
  const auto fleet =
      load(header + "containers:\n  web: {remote: b, project: default, image: \"a:bb\", move: allowed}\n");
  const Plan plan = compute_plan(fleet, live_of({instance("web", "default", 103, {{"ephemeral", true}})}), {});
  EXPECT_TRUE(plan.actions.empty()) << ::testing::PrintToString(ids(plan));
  EXPECT_TRUE(has_error(plan, "is ephemeral"));
}

TEST(EphemeralAndDescription, TheDigestCoversThem) {
  model::LiveInstance inst;
  inst.name = "web";
  const auto plain = model::digest_of(inst);
  inst.ephemeral = true;
  const auto ephemeral = model::digest_of(inst);
  inst.ephemeral = false;
  inst.description = "x";
  const auto described = model::digest_of(inst);
  EXPECT_NE(plain, ephemeral);
  EXPECT_NE(plain, described);
  EXPECT_NE(ephemeral, described);
}

}  // namespace
}  // namespace berth::plan
