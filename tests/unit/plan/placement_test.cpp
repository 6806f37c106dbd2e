// Placement (engine/plan/placement.hpp): spread and pack, ties by name, stickiness, anti_affinity,
// max_per_remote, the fit on limits against declared or reported capacity, nothing fitting, an
// Unknown candidate, and draining; and how compute_plan carries each decision out.

#include <gtest/gtest.h>

#include "engine/config/load.hpp"
#include "engine/plan/placement.hpp"
#include "engine/plan/plan.hpp"
#include "engine/plan/render.hpp"

namespace berth::plan {
namespace {

constexpr const char* remotes3 = R"(version: 1
remotes:
  a: {url: "unix:///a", capacity: {cpu: 4, memory: 1GiB}}
  b: {url: "unix:///b", capacity: {cpu: 4, memory: 1GiB}}
  c: {url: "unix:///c", capacity: {cpu: 4, memory: 1GiB}}
)";

model::Fleet load(const std::string& text) {
  auto loaded = config::load_fleet_text(text, "fleet.yaml", [](std::string_view) { return std::nullopt; });
  if (!loaded.fleet) throw std::runtime_error(diag::format(loaded.diagnostics));
  return std::move(*loaded.fleet);
}

// Every remote of the fleet readable and empty.
model::LiveState empty_live(const model::Fleet& fleet) {
  model::LiveState live;
  for (const auto& [name, spec] : fleet.remotes) {
    model::LiveRemote r;
    r.name = name;
    r.status = model::RemoteStatus::ok;
    live.remotes.emplace(name, std::move(r));
  }
  return live;
}

model::LiveInstance& put(model::LiveState& live, const std::string& remote, const std::string& name,
                         model::ConfigMap limits = {}, bool owned = true) {
  model::LiveInstance inst;
  inst.name = name;
  inst.status = "Running";
  inst.status_code = 103;
  inst.power = model::LivePower::running;
  inst.architecture = "x86_64";
  if (owned) {
    // berth's record says it set the limits: as a container it launched with them.
    std::string keys;
    for (const auto& [k, v] : limits) keys += (keys.empty() ? "\"" : ",\"") + k + "\"";
    inst.config["user.berth.fleet"] = "default";
    inst.config["user.berth.managed"] = R"({"config":[)" + keys + R"(],"devices":[],"profiles":[]})";
  }
  for (const auto& [k, v] : limits) inst.config[k] = v;
  inst.limits = std::move(limits);
  return live.remotes.at(remote).instances.emplace(name, std::move(inst)).first->second;
}

const Placement& placement(const Placed& placed, const std::string& container) {
  for (const auto& p : placed.placements) {
    if (p.container == container) return p;
  }
  throw std::runtime_error("no placement for " + container);
}

std::string where(const Placed& placed, const std::string& container) {
  return placement(placed, container).remote;
}

TEST(Placement, SpreadAndPackChooseDifferentlyTiesByName) {
  const std::string body = R"(placements:
  p: {candidates: [c, b, a], strategy: STRATEGY}
containers:
  x1: {placement: p, image: "a:bb"}
  x2: {placement: p, image: "a:bb"}
  x3: {placement: p, image: "a:bb"}
  pinned: {remote: a, image: "a:bb"}
)";
  auto with = [&](const std::string& strategy) {
    std::string text = body;
    text.replace(text.find("STRATEGY"), 8, strategy);
    const auto fleet = load(remotes3 + text);
    return place(fleet, empty_live(fleet), {});
  };
  const Placed spread = with("spread");
  // pinned counts on a: x1 goes to b (tie with c, by name), x2 to c, x3 to the first of the three with one.
  EXPECT_EQ(where(spread, "x1"), "b");
  EXPECT_EQ(where(spread, "x2"), "c");
  EXPECT_EQ(where(spread, "x3"), "a");
  EXPECT_EQ(placement(spread, "x2").explanation, "placed on c: spread, 3 of 3 candidates fit, fewest containers (0)");
  const Placed pack = with("pack");
  EXPECT_EQ(where(pack, "x1"), "a");
  EXPECT_EQ(where(pack, "x2"), "a");
  EXPECT_EQ(where(pack, "x3"), "a");
  EXPECT_EQ(placement(pack, "x3").explanation, "placed on a: pack, 3 of 3 candidates fit, most containers (3)");
}

TEST(Placement, StaysWhileItsHostSatisfiesThePolicy) {
  const auto fleet = load(std::string{remotes3} + R"(containers:
  x1: {placement: {candidates: [a, b, c]}, image: "a:bb"}
  pinned1: {remote: c, image: "a:bb"}
  pinned2: {remote: c, image: "a:bb"}
)");
  auto live = empty_live(fleet);
  put(live, "c", "x1");  // spread would put a new one on a: it stays on c
  const Placed placed = place(fleet, live, {});
  EXPECT_EQ(where(placed, "x1"), "c");
  EXPECT_EQ(placement(placed, "x1").explanation, "stays on c: it still satisfies placement");
  EXPECT_EQ(placed.fleet.containers.at("x1").remote, "c");
}

TEST(Placement, MovesWhenItsHostNoLongerSatisfiesThePolicyAndSaysWhy) {
  const auto fleet = load(std::string{remotes3} + R"(placements:
  p: {candidates: [a, b]}
containers:
  x1: {placement: p, image: "a:bb", move: allowed}
)");
  auto live = empty_live(fleet);
  put(live, "c", "x1");
  const Placed placed = place(fleet, live, {});
  const auto& p = placement(placed, "x1");
  EXPECT_EQ(p.remote, "a");
  EXPECT_EQ(p.from, "c");
  EXPECT_EQ(p.explanation,
            "moves off c (not a candidate); placed on a: spread, 2 of 2 candidates fit, fewest containers (0)");

  const Plan plan = compute_plan(fleet, live, {});
  std::vector<std::string> ids;
  for (const auto& a : plan.actions) ids.push_back(a.id);
  EXPECT_EQ(ids, (std::vector<std::string>{"stop c:x1", "move a:x1", "start a:x1"}));
  EXPECT_NE(plan.actions[1].reason.find("placement p: moves off c (not a candidate)"), std::string::npos)
      << plan.actions[1].reason;
  ASSERT_EQ(plan.placements.size(), 1U);
  EXPECT_TRUE(plan.complete());
}

TEST(Placement, AntiAffinityAndMaxPerRemote) {
  const auto fleet = load(std::string{remotes3} + R"(placements:
  web: {candidates: [a, b], anti_affinity: web}
  two: {candidates: [a, b, c], strategy: pack, max_per_remote: 2}
containers:
  w1: {placement: web, image: "a:bb"}
  w2: {placement: web, image: "a:bb"}
  w3: {placement: web, image: "a:bb"}
  y1: {placement: two, image: "a:bb"}
  y2: {placement: two, image: "a:bb"}
  y3: {placement: two, image: "a:bb"}
)");
  const Placed placed = place(fleet, empty_live(fleet), {});
  EXPECT_EQ(where(placed, "w1"), "a");
  EXPECT_EQ(where(placed, "w2"), "b");
  EXPECT_EQ(where(placed, "w3"), "");
  EXPECT_EQ(placement(placed, "w3").rejected,
            (std::vector<std::string>{"a: holds w1 (anti_affinity web)", "b: holds w2 (anti_affinity web)"}));
  EXPECT_EQ(placed.not_planned.count("w3"), 1U);
  // pack with at most two per remote: a holds w1 (3 with two y's), then b.
  EXPECT_EQ(where(placed, "y1"), "a");
  EXPECT_EQ(where(placed, "y2"), "a");
  EXPECT_EQ(where(placed, "y3"), "b");
  EXPECT_EQ(placement(placed, "y3").rejected,
            (std::vector<std::string>{"a: holds 2 of its containers already (max_per_remote 2)"}));
}

TEST(Placement, FitCountsEveryInstanceOnTheHostDeclaredOrNot) {
  const auto fleet = load(std::string{remotes3} + R"(containers:
  big: {placement: {candidates: [a, b, c]}, image: "a:bb", config: {limits.memory: 600MiB, limits.cpu: "0-1"}}
  pinned: {remote: b, image: "a:bb", config: {limits.cpu: "3"}}
)");
  auto live = empty_live(fleet);
  put(live, "a", "stranger", {{"limits.memory", "50%"}}, false);  // half of a's 1GiB
  const Placed placed = place(fleet, live, {});
  // a: 512MiB free; b: pinned (not launched yet) takes 3 of 4 CPUs; c fits.
  EXPECT_EQ(where(placed, "big"), "c");
  EXPECT_EQ(placement(placed, "big").rejected,
            (std::vector<std::string>{"a: limits.memory 600MiB does not fit: 512MiB of 1GiB free",
                                      "b: limits.cpu 0-1 does not fit: 1 of 4 CPUs free"}));
}

TEST(Placement, CapacityFromTheHostWhenNotDeclaredAndUnknownCapacity) {
  const auto fleet = load(R"(version: 1
remotes:
  a: {url: "unix:///a"}
  b: {url: "unix:///b", capacity: {cpu: 2}}
containers:
  m: {placement: {candidates: [a, b]}, image: "a:bb", config: {limits.memory: 1GiB}}
  stay: {placement: {candidates: [b]}, image: "a:bb", config: {limits.memory: 1GiB}}
)");
  auto live = empty_live(fleet);
  live.remotes.at("a").resources = model::HostResources{8, 512ULL << 20};
  live.remotes.at("b").resources_error = "GET /1.0/resources: 500";
  put(live, "b", "stay", {{"limits.memory", "1GiB"}});
  const Placed placed = place(fleet, live, {});
  EXPECT_EQ(where(placed, "m"), "");
  EXPECT_EQ(placement(placed, "m").rejected,
            (std::vector<std::string>{"a: limits.memory 1GiB does not fit: 512MiB of 512MiB free",
                                      "b: limits.memory 1GiB: memory capacity unknown, its resources could not be read "
                                      "(GET /1.0/resources: 500)"}));
  // A capacity that is not known never moves a container that is there.
  EXPECT_EQ(where(placed, "stay"), "b");
}

TEST(Placement, NothingFitsMeansNoActionAndAnIncompletePlan) {
  const auto fleet = load(std::string{remotes3} + R"(containers:
  huge: {placement: {candidates: [a, b]}, image: "a:bb", config: {limits.cpu: "8"}}
  ok: {remote: c, image: "a:bb"}
)");
  const Plan plan = compute_plan(fleet, empty_live(fleet), {});
  EXPECT_FALSE(plan.complete());
  ASSERT_EQ(plan.not_planned.count("huge"), 1U);
  EXPECT_EQ(plan.not_planned.at("huge"),
            "not placed: no candidate of its placement fits (a: limits.cpu 8 does not fit: 4 of 4 CPUs free; b: "
            "limits.cpu 8 does not fit: 4 of 4 CPUs free)");
  for (const auto& a : plan.actions) EXPECT_NE(a.address.container, "huge") << a.id;
  EXPECT_EQ(plan.actions.size(), 1U);  // ok's launch
  EXPECT_NE(render_text(plan, {}).find("huge not planned: not placed"), std::string::npos);
}

TEST(Placement, AnUnknownCandidateStopsANewPlacementNotAStay) {
  const auto fleet = load(std::string{remotes3} + R"(containers:
  fresh: {placement: {candidates: [a, b]}, image: "a:bb"}
  there: {placement: {candidates: [a, b]}, image: "a:bb"}
)");
  auto live = empty_live(fleet);
  live.remotes.at("b").status = model::RemoteStatus::unknown;
  live.remotes.at("b").error = "connection refused";
  put(live, "a", "there");
  const Plan plan = compute_plan(fleet, live, {});
  EXPECT_EQ(plan.not_planned.at("fresh"),
            "not placed: not found on any readable remote, and remote b is unknown: it may live there");
  for (const auto& a : plan.actions) EXPECT_NE(a.address.container, "fresh") << a.id;
  ASSERT_EQ(plan.placements.size(), 2U);
  EXPECT_EQ(plan.placements[1].remote, "a");  // there stays
}

TEST(Placement, DrainMovesWhatCanMoveAndWarnsAboutWhatCannot) {
  const auto fleet = load(R"(version: 1
remotes:
  a: {url: "unix:///a", drain: true}
  b: {url: "unix:///b", capacity: {memory: 1GiB}}
containers:
  mobile: {placement: {candidates: [a, b]}, image: "a:bb"}
  stuck: {placement: {candidates: [a, b]}, image: "a:bb", config: {limits.memory: 2GiB}}
  pinned: {remote: a, image: "a:bb"}
)");
  auto live = empty_live(fleet);
  put(live, "a", "mobile");
  put(live, "a", "stuck", {{"limits.memory", "2GiB"}});
  put(live, "a", "pinned");
  const Plan plan = compute_plan(fleet, live, {});
  ASSERT_EQ(plan.placements.size(), 2U);
  EXPECT_EQ(plan.placements[0].container, "mobile");
  EXPECT_EQ(plan.placements[0].remote, "b");
  EXPECT_EQ(plan.placements[1].remote, "a");
  EXPECT_EQ(plan.placements[1].explanation, "stays on a, which is draining: no other candidate fits");
  EXPECT_EQ(plan.drain, (std::vector<std::string>{"a"}));
  std::vector<std::string> warnings;
  for (const auto& d : plan.diagnostics.items()) warnings.push_back(d.path + ": " + d.summary);
  EXPECT_NE(
      std::find(warnings.begin(), warnings.end(), "a:pinned: pinned to 'a' by remote:, so it blocks the drain of 'a'"),
      warnings.end())
      << ::testing::PrintToString(warnings);
  EXPECT_FALSE(plan.diagnostics.has_errors());
  EXPECT_TRUE(plan.complete());
  std::vector<std::string> ids;
  for (const auto& a : plan.actions) ids.push_back(a.id);
  EXPECT_EQ(ids, (std::vector<std::string>{"stop a:mobile", "move b:mobile", "start b:mobile"}));
  EXPECT_FALSE(plan.actions[1].consented);  // a drain's move needs consent like any other

  // --drain does what drain: true does; without either nothing moves back (sticky).
  auto undrained = fleet;
  undrained.remotes.at("a").drain = false;
  auto moved = empty_live(fleet);
  put(moved, "b", "mobile");
  put(moved, "a", "stuck", {{"limits.memory", "2GiB"}});
  put(moved, "a", "pinned");
  EXPECT_TRUE(compute_plan(undrained, moved, {}).actions.empty());
  PlanOptions options;
  options.drain = {"b"};
  const Plan back = compute_plan(undrained, moved, options);
  ASSERT_EQ(back.actions.size(), 3U);
  EXPECT_EQ(back.actions[1].id, "move a:mobile");
  EXPECT_EQ(back.drain, (std::vector<std::string>{"b"}));
}

TEST(Placement, LaunchGoesWhereItIsPlacedWithTheImageThere) {
  const auto fleet = load(std::string{remotes3} + R"(images:
  bb: {alias: bb}
containers:
  x: {placement: {candidates: [b]}, image: bb}
)");
  const Plan plan = compute_plan(fleet, empty_live(fleet), {});
  ASSERT_EQ(plan.actions.size(), 1U);
  EXPECT_EQ(plan.actions[0].id, "launch b:x");
  ASSERT_TRUE(plan.actions[0].image);
  EXPECT_EQ(plan.actions[0].image->remote, "b");
  EXPECT_NE(plan.actions[0].reason.find("then running; placed on b: spread, 1 of 1 candidate fits"), std::string::npos)
      << plan.actions[0].reason;
}

TEST(Placement, PlacedFleetFollowsThePlan) {
  const auto fleet = load(std::string{remotes3} + R"(containers:
  x: {placement: {candidates: [c]}, image: "a:bb"}
)");
  const Plan plan = compute_plan(fleet, empty_live(fleet), {});
  EXPECT_EQ(placed_fleet(fleet, plan).containers.at("x").remote, "c");
  EXPECT_EQ(fleet.containers.at("x").remote, "");
}

}  // namespace
}  // namespace berth::plan

namespace berth::plan {
namespace {

// A container taken off a remote that is down (no longer a candidate) is not launched anew: with
// pruning, the original would be deleted once its remote answered again.
TEST(Placement, AnyUnknownRemoteStopsANewPlacement) {
  const auto fleet = load(std::string{remotes3} + R"(prune: true
containers:
  x: {placement: {candidates: [a, b]}, image: "a:bb"}
)");
  auto live = empty_live(fleet);
  live.remotes.at("c").status = model::RemoteStatus::unknown;
  const Plan plan = compute_plan(fleet, live, {});
  EXPECT_EQ(plan.not_planned.at("x"),
            "not placed: not found on any readable remote, and remote c is unknown: it may live there");
  EXPECT_TRUE(plan.actions.empty());
}

TEST(Placement, LivingOnTwoRemotesIsNeitherMovedNorPruned) {
  const auto fleet = load(std::string{remotes3} + R"(prune: true
containers:
  x: {placement: {candidates: [a, b]}, image: "a:bb"}
)");
  auto live = empty_live(fleet);
  put(live, "a", "x");
  put(live, "c", "x");
  const Plan plan = compute_plan(fleet, live, {});
  EXPECT_TRUE(plan.actions.empty()) << plan.actions.front().id;
  EXPECT_EQ(plan.not_planned.at("x"),
            "not placed: it lives on a, c: berth cannot tell which one is the container; delete the extra one by hand");
}

// A container that must move is counted where it lives until it is gone: its move may be
// refused (here it has no consent), and a newcomer must not fill its place meanwhile.
TEST(Placement, AContainerThatMustMoveStillCountsWhereItIs) {
  const auto fleet = load(std::string{remotes3} + R"(placements:
  web: {candidates: [a, b], anti_affinity: web}
containers:
  old: {placement: {candidates: [b, c]}, image: "a:bb", config: {limits.cpu: "4"}}
  new: {placement: {candidates: [a]}, image: "a:bb", config: {limits.cpu: "1"}}
  w1: {placement: {candidates: [b], anti_affinity: web}, image: "a:bb"}
  w2: {placement: web, image: "a:bb"}
)");
  auto live = empty_live(fleet);
  put(live, "a", "old", {{"limits.cpu", "4"}});  // a is no longer its candidate
  put(live, "a", "w1");                          // w1 must go to b
  const Placed placed = place(fleet, live, {});
  EXPECT_EQ(where(placed, "old"), "b");
  EXPECT_EQ(where(placed, "new"), "");
  EXPECT_EQ(placement(placed, "new").rejected,
            (std::vector<std::string>{"a: limits.cpu 1 does not fit: 0 of 4 CPUs free"}));
  EXPECT_EQ(where(placed, "w1"), "b");
  // w1 is still on a, and placed on b: w2 fits neither.
  EXPECT_EQ(where(placed, "w2"), "");
  EXPECT_EQ(placement(placed, "w2").rejected,
            (std::vector<std::string>{"a: holds w1 (anti_affinity web)", "b: holds w1 (anti_affinity web)"}));
}

TEST(Placement, HugeLimitsSaturateAndSensitiveOnesAreNotShown) {
  const auto fleet = load(std::string{remotes3} + R"(containers:
  x: {placement: {candidates: [a]}, image: "a:bb", config: {limits.memory: 1GiB}, sensitive: [limits.memory]}
)");
  auto live = empty_live(fleet);
  for (const char* name : {"s1", "s2", "s3"}) {
    put(live, "a", name, {{"limits.cpu", "9223372036854775807"}, {"limits.memory", "7EiB"}}, false);
  }
  const Placed placed = place(fleet, live, {});
  EXPECT_EQ(where(placed, "x"), "");
  EXPECT_EQ(placement(placed, "x").rejected,
            (std::vector<std::string>{"a: limits.memory (sensitive) does not fit: 0B of 1GiB free"}));
}

// ---- LXD clusters: one remote, one host per member.

constexpr const char* cluster_fleet = R"(version: 1
remotes:
  prod: {urls: ["https://127.0.0.1:1", "https://127.0.0.2:1"], fingerprint: "sha256:0000000000000000000000000000000000000000000000000000000000000000"}
)";

// `prod` read as a cluster of m1, m2, m3 (all online; m3 in group fast).
model::LiveState cluster_live(const model::Fleet& fleet) {
  auto live = empty_live(fleet);
  auto& members = live.remotes.at("prod").members.emplace();
  for (const char* m : {"m1", "m2", "m3"}) members.emplace(m, model::ClusterMember{m, "Online", "", {"default"}});
  members.at("m3").groups.push_back("fast");
  return live;
}

model::LiveInstance& put_on_member(model::LiveState& live, const std::string& name, const std::string& member,
                                   model::ConfigMap limits = {}) {
  auto& inst = put(live, "prod", name, std::move(limits));
  inst.location = member;
  return inst;
}

TEST(PlacementCluster, MembersAreHostsAndTheWholeClusterIsEveryMember) {
  const auto fleet = load(std::string{cluster_fleet} + R"(placements:
  web: {candidates: ["prod/*"], anti_affinity: web}
containers:
  c1: {remote: prod, image: "prod:bb", target: m2}
  w1: {placement: web, image: "prod:bb"}
  w2: {placement: web, image: "prod:bb"}
  w3: {placement: {candidates: [prod]}, image: "prod:bb"}
  w4: {placement: {candidates: ["prod/m3", "prod/m9"]}, image: "prod:bb"}
)");
  const Placed placed = place(fleet, cluster_live(fleet), {});
  // c1 (target: m2) counts on m2: w1 goes to m1, w2 (anti_affinity) to m3; w3 to m2 or m3 by name
  // after w1: m2 has c1, m3 has w2, m1 has w1: a tie of one each, m1 first.
  EXPECT_EQ(placement(placed, "w1").member, "m1");
  EXPECT_EQ(placement(placed, "w2").member, "m3");
  EXPECT_EQ(placement(placed, "w3").member, "m1");
  EXPECT_EQ(placement(placed, "w1").remote, "prod");
  EXPECT_EQ(placement(placed, "w1").explanation,
            "placed on prod/m1: spread, 3 of 3 candidates fit, fewest containers (0)");
  // A member the cluster does not have is refused by name; the other one takes it.
  EXPECT_EQ(placement(placed, "w4").member, "m3");
  EXPECT_EQ(placement(placed, "w4").rejected, (std::vector<std::string>{"prod/m9: cluster prod has no member m9"}));
  EXPECT_EQ(placed.fleet.containers.at("w1").target, "m1");

  // The plan launches each on its member.
  const Plan plan = compute_plan(fleet, cluster_live(fleet), {});
  std::map<std::string, std::string> members;
  for (const auto& a : plan.actions) {
    if (a.kind == ActionKind::launch) members[a.address.container] = a.member;
  }
  EXPECT_EQ(members,
            (std::map<std::string, std::string>{{"c1", "m2"}, {"w1", "m1"}, {"w2", "m3"}, {"w3", "m1"}, {"w4", "m3"}}));
}

TEST(PlacementCluster, StaysOnItsMemberMovesBetweenMembersAndDrainsOne) {
  const auto fleet = load(std::string{cluster_fleet} + R"(containers:
  w1: {placement: {candidates: ["prod/m1", "prod/m2"]}, image: "prod:bb", move: allowed}
  w2: {placement: {candidates: ["prod/*"]}, image: "prod:bb", move: allowed}
  p1: {remote: prod, image: "prod:bb", target: m3}
)");
  auto live = cluster_live(fleet);
  put_on_member(live, "w1", "m3");  // not a candidate member any more: moves
  put_on_member(live, "w2", "m2");  // stays
  put_on_member(live, "p1", "m3");
  const Placed placed = place(fleet, live, {});
  EXPECT_EQ(placement(placed, "w2").explanation, "stays on prod/m2: it still satisfies placement");
  EXPECT_EQ(placement(placed, "w1").from, "prod/m3");
  EXPECT_EQ(placement(placed, "w1").member, "m1");

  const Plan plan = compute_plan(fleet, live, {});
  std::vector<std::string> ids;
  for (const auto& a : plan.actions) ids.push_back(a.id);
  EXPECT_EQ(ids, (std::vector<std::string>{"stop prod:w1", "move prod:w1", "start prod:w1"}));
  const Action& move = plan.actions[1];
  ASSERT_TRUE(move.source);
  EXPECT_EQ(move.source->remote, "prod");
  EXPECT_EQ(move.member, "m1");
  EXPECT_EQ(move.before["member"], "m3");
  EXPECT_NE(render_text(plan, {}).find("prod:w1 on m3 -> prod:w1 on m1"), std::string::npos) << render_text(plan, {});

  // Draining m2 moves w2 off it; draining m3 names p1 (pinned by target:) as blocking.
  const Placed drained = place(fleet, live, {"prod/m2", "prod/m3"});
  EXPECT_EQ(drained.drain, (std::vector<std::string>{"prod/m2", "prod/m3"}));
  EXPECT_EQ(placement(drained, "w2").member, "m1");
  EXPECT_EQ(placement(drained, "w2").from, "prod/m2");
  ASSERT_FALSE(drained.diagnostics.items().empty());
  EXPECT_NE(drained.diagnostics.items().front().summary.find("blocks the drain of 'prod/m3'"), std::string::npos)
      << drained.diagnostics.items().front().summary;
}

TEST(PlacementCluster, AnOfflineMembersContainersAreUnknownNeverMovedOrPrunedOrLaunchedAgain) {
  const auto fleet = load(std::string{cluster_fleet} + R"(prune: true
containers:
  w1: {placement: {candidates: ["prod/*"]}, image: "prod:bb", move: allowed, config: {user.x: "1"}}
  c1: {remote: prod, image: "prod:bb", target: m3, config: {user.x: "1"}}
  new1: {placement: {candidates: ["prod/*"]}, image: "prod:bb"}
  new2: {remote: prod, image: "prod:bb", target: m3}
)");
  auto live = cluster_live(fleet);
  live.remotes.at("prod").members->at("m3").status = "Offline";
  // What LXD 5.0.2 lists for the instances of a member it cannot reach.
  for (const char* name : {"w1", "c1", "old"}) {
    model::LiveInstance inst;
    inst.name = name;
    inst.status = "Error";
    inst.status_code = 112;
    inst.location = "m3";
    inst.placeholder = true;
    live.remotes.at("prod").instances.emplace(name, std::move(inst));
  }
  const Plan plan = compute_plan(fleet, live, {});
  EXPECT_FALSE(plan.complete());
  for (const auto& a : plan.actions) {
    EXPECT_TRUE(a.address.container == "new1") << a.id;  // nothing for w1, c1, old; new2's member is offline
  }
  ASSERT_TRUE(plan.not_planned.count("prod:c1"));
  EXPECT_NE(plan.not_planned.at("prod:c1").find("cannot reach"), std::string::npos) << plan.not_planned.at("prod:c1");
  ASSERT_TRUE(plan.not_planned.count("w1"));
  EXPECT_NE(plan.not_planned.at("w1").find("lives on prod/m3, which the cluster cannot reach"), std::string::npos);
  ASSERT_TRUE(plan.not_planned.count("prod:new2"));
  EXPECT_EQ(plan.not_planned.at("prod:new2"), "its target member m3 is Offline: not created there");
  const auto p = std::find_if(plan.placements.begin(), plan.placements.end(),
                              [](const Placement& x) { return x.container == "new1"; });
  ASSERT_NE(p, plan.placements.end());
  EXPECT_EQ(p->member, "m1");
  EXPECT_NE(std::find(p->rejected.begin(), p->rejected.end(), "prod/m3: member m3 is Offline"), p->rejected.end());
}

TEST(PlacementCluster, TargetNeedsAClusterAndAMemberOrGroupItHas) {
  const auto fleet = load(std::string{cluster_fleet} + R"(containers:
  g1: {remote: prod, image: "prod:bb", target: "@fast"}
  g2: {remote: prod, image: "prod:bb", target: "@slow"}
  m9: {remote: prod, image: "prod:bb", target: m9}
)");
  auto live = cluster_live(fleet);
  put_on_member(live, "g1", "m3");  // in group fast: stays
  const Plan plan = compute_plan(fleet, live, {});
  EXPECT_TRUE(plan.actions.empty());
  std::string errors;
  for (const auto& d : plan.diagnostics.items()) errors += d.summary + "\n";
  EXPECT_NE(errors.find("target: @slow: no member of cluster 'prod' is in group 'slow'"), std::string::npos) << errors;
  EXPECT_NE(errors.find("target: cluster 'prod' has no member 'm9'"), std::string::npos) << errors;

  // The same on a standalone host.
  auto standalone = empty_live(fleet);
  const Plan plain = compute_plan(fleet, standalone, {});
  std::string text;
  for (const auto& d : plain.diagnostics.items()) text += d.summary + "\n";
  EXPECT_NE(text.find("needs an LXD cluster, but remote 'prod' is a standalone host"), std::string::npos) << text;
}

// What the review of the cluster change found, each as it was.
TEST(PlacementCluster, OneBrokenInstanceDoesNotTakeAHostOrMemberOut) {
  // A standalone host lists an instance it cannot render like an unreachable member's.
  const auto fleet = load(std::string{remotes3} + R"(containers:
  w1: {placement: {candidates: [a, b]}, image: "a:bb"}
  w2: {placement: {candidates: [a]}, image: "a:bb"}
)");
  auto live = empty_live(fleet);
  put(live, "a", "w1");
  auto& broken = put(live, "a", "broken", {}, false);
  broken.status_code = 112;
  broken.architecture.clear();
  broken.placeholder = true;
  const Placed placed = place(fleet, live, {});
  EXPECT_EQ(placement(placed, "w1").explanation, "stays on a: it still satisfies placement");
  EXPECT_EQ(where(placed, "w2"), "a");

  // A cluster member with one broken instance beside a good one is still a member to place on.
  const auto cfleet = load(std::string{cluster_fleet} + R"(containers:
  w1: {placement: {candidates: ["prod/m1"]}, image: "prod:bb"}
)");
  auto clive = cluster_live(cfleet);
  put_on_member(clive, "good", "m1");
  auto& bad = put_on_member(clive, "bad", "m1");
  bad.placeholder = true;
  EXPECT_EQ(placement(place(cfleet, clive, {}), "w1").member, "m1");
  // Only placeholders (LXD still calls the member Online until its offline threshold): not m1.
  clive.remotes.at("prod").instances.erase("good");
  const Placed unreachable = place(cfleet, clive, {});
  const auto& p = placement(unreachable, "w1");
  EXPECT_EQ(p.remote, "");
  EXPECT_EQ(
      p.rejected,
      (std::vector<std::string>{"prod/m1: member m1 cannot be reached (it lists its instances without their state)"}));
}

TEST(PlacementCluster, APinnedContainerMovingBetweenMembersCountsOnBoth) {
  const auto fleet = load(R"(version: 1
remotes:
  prod: {urls: ["https://127.0.0.1:1"], fingerprint: "sha256:0000000000000000000000000000000000000000000000000000000000000000", capacity: {cpu: 4}}
containers:
  p1: {remote: prod, image: "prod:bb", target: m2, config: {limits.cpu: "4"}}
  w1: {placement: {candidates: ["prod/m1"]}, image: "prod:bb", config: {limits.cpu: "4"}}
)");
  auto live = cluster_live(fleet);
  put_on_member(live, "p1", "m1", {{"limits.cpu", "4"}});  // its move to m2 needs consent it lacks
  const Placed placed = place(fleet, live, {});
  const auto& p = placement(placed, "w1");
  EXPECT_EQ(p.remote, "");
  EXPECT_EQ(p.rejected, (std::vector<std::string>{"prod/m1: limits.cpu 4 does not fit: 0 of 4 CPUs free"}));
}

TEST(PlacementCluster, RecreateAndCopyKeepTheirMemberAndWaitForAnOfflineOne) {
  const auto fleet = load(std::string{cluster_fleet} + R"(containers:
  r1: {remote: prod, image: "prod:bb", recreate: allowed}
  src: {remote: prod, image: "prod:bb", target: m3}
  cp1: {remote: prod, copy_of: r1, target: m3}
  cp2: {remote: prod, copy_of: src, target: m1}
  g1: {remote: prod, image: "prod:bb", target: "@fast"}
)");
  auto live = cluster_live(fleet);
  put_on_member(live, "r1", "m2");
  auto& src = put_on_member(live, "src", "m3");
  src.placeholder = true;
  live.remotes.at("prod").members->at("m3").status = "Offline";  // m3 is the only member of fast
  PlanOptions options;
  options.replace.push_back(Target{std::string{"prod"}, "r1", std::nullopt});
  const Plan plan = compute_plan(fleet, live, options);
  std::vector<std::string> ids;
  for (const auto& a : plan.actions) {
    ids.push_back(a.id);
    if (a.kind == ActionKind::recreate) EXPECT_EQ(a.member, "m2") << "launched again where it was";
  }
  EXPECT_EQ(ids, (std::vector<std::string>{"recreate prod:r1"}));
  EXPECT_EQ(plan.not_planned.at("prod:cp1"), "its target member m3 is Offline: not created there");
  EXPECT_NE(plan.not_planned.at("prod:cp2").find("its copy source prod:src is not planned"), std::string::npos)
      << plan.not_planned.at("prod:cp2");
  EXPECT_EQ(plan.not_planned.at("prod:g1"), "no member of its target group fast is online: not created there");
}

}  // namespace
}  // namespace berth::plan
