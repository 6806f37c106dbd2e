#include <gtest/gtest.h>

#include "engine/apply/walk.hpp"

namespace berth::apply {
namespace {

// Each action touches its own container (named after the action) unless `container` says otherwise.
plan::Action action(std::string id, std::string remote, std::vector<std::string> deps = {},
                    std::optional<std::string> source_remote = std::nullopt, std::string container = {}) {
  plan::Action a;
  if (container.empty()) container = id;
  a.id = std::move(id);
  a.address = plan::Address{std::move(remote), container, std::nullopt};
  if (source_remote) a.source = plan::Address{*source_remote, container, std::nullopt};
  a.depends_on = std::move(deps);
  return a;
}

std::vector<std::string> ids(const std::vector<const plan::Action*>& actions) {
  std::vector<std::string> out;
  for (const auto* a : actions) out.push_back(a->id);
  return out;
}

TEST(Walk, RunsDependenciesFirst) {
  plan::Plan p;
  p.actions = {action("launch", "a"), action("snap", "a", {"launch"}), action("copy", "b", {"snap"}, "a")};
  Walk w(p, Limits{});
  EXPECT_EQ(ids(w.take_ready()), std::vector<std::string>{"launch"});
  EXPECT_TRUE(w.take_ready().empty());
  w.succeed("launch");
  EXPECT_EQ(ids(w.take_ready()), std::vector<std::string>{"snap"});
  w.succeed("snap");
  EXPECT_EQ(ids(w.take_ready()), std::vector<std::string>{"copy"});
  EXPECT_FALSE(w.done());
  w.succeed("copy");
  EXPECT_TRUE(w.done());
  EXPECT_TRUE(w.all_succeeded());
}

TEST(Walk, FailureSkipsDependentsTransitivelyAndTheRestContinues) {
  plan::Plan p;
  p.actions = {action("launch", "a"), action("snap", "a", {"launch"}), action("copy", "b", {"snap"}, "a"),
               action("other", "b")};
  Walk w(p, Limits{});
  EXPECT_EQ(ids(w.take_ready()), (std::vector<std::string>{"launch", "other"}));
  w.fail("launch", "image missing");
  w.succeed("other");
  EXPECT_TRUE(w.take_ready().empty());
  EXPECT_TRUE(w.done());
  EXPECT_EQ(w.outcome("launch").status, Status::failed);
  EXPECT_EQ(w.outcome("snap").status, Status::skipped);
  EXPECT_EQ(w.outcome("copy").status, Status::skipped);
  EXPECT_NE(w.outcome("copy").error.find("launch"), std::string::npos);
  EXPECT_EQ(w.outcome("other").status, Status::succeeded);
  EXPECT_FALSE(w.all_succeeded());
}

TEST(Walk, BoundsGlobalAndPerRemoteConcurrency) {
  plan::Plan p;
  for (int i = 0; i < 6; ++i) p.actions.push_back(action("a" + std::to_string(i), "a"));
  for (int i = 0; i < 6; ++i) p.actions.push_back(action("b" + std::to_string(i), "b"));
  Limits limits;
  limits.global = 5;
  limits.default_per_remote = 4;
  limits.per_remote["b"] = 1;
  Walk w(p, limits);
  const auto first = ids(w.take_ready());
  EXPECT_EQ(first, (std::vector<std::string>{"a0", "a1", "a2", "a3", "b0"}));
  EXPECT_EQ(w.running(), 5);
  w.succeed("b0");
  EXPECT_EQ(ids(w.take_ready()), std::vector<std::string>{"b1"});
  w.succeed("a0");
  EXPECT_EQ(ids(w.take_ready()), std::vector<std::string>{"a4"});
}

TEST(Walk, CrossRemoteActionCountsOnBothRemotes) {
  plan::Plan p;
  p.actions = {action("move", "b", {}, "a", "m"), action("on-a", "a"), action("on-b", "b")};
  Limits limits;
  limits.default_per_remote = 1;
  Walk w(p, limits);
  EXPECT_EQ(ids(w.take_ready()), std::vector<std::string>{"move"});
  w.succeed("move");
  EXPECT_EQ(ids(w.take_ready()), (std::vector<std::string>{"on-a", "on-b"}));
}

TEST(Walk, NeverTwoActionsOnOneContainerAtOnce) {
  plan::Plan p;
  // Two snapshots of web and a copy from it: independent in the DAG, but all touch a:web.
  p.actions = {action("snap1", "a", {}, std::nullopt, "web"), action("snap2", "a", {}, std::nullopt, "web"),
               action("other", "a")};
  plan::Action copy = action("copy", "a", {}, std::nullopt, "clone");
  copy.source = plan::Address{"a", "web", std::nullopt};
  p.actions.push_back(copy);
  Walk w(p, Limits{});
  EXPECT_EQ(ids(w.take_ready()), (std::vector<std::string>{"snap1", "other"}));
  w.succeed("snap1");
  EXPECT_EQ(ids(w.take_ready()), std::vector<std::string>{"snap2"});
  w.fail("snap2", "boom");
  EXPECT_EQ(ids(w.take_ready()), std::vector<std::string>{"copy"});
}

TEST(Walk, RefusedActionsNeverRunAndBlockTheirDependents) {
  plan::Plan p;
  p.actions = {action("stop", "a"), action("move", "b", {"stop"}, "a"), action("free", "a"),
               action("dangling", "a", {"nowhere"})};
  Walk w(p, Limits{}, {{"stop", "needs consent: --allow-move"}});
  EXPECT_EQ(ids(w.take_ready()), std::vector<std::string>{"free"});
  w.succeed("free");
  EXPECT_TRUE(w.done());
  EXPECT_EQ(w.outcome("stop").status, Status::refused);
  EXPECT_EQ(w.outcome("move").status, Status::skipped);
  EXPECT_EQ(w.outcome("dangling").status, Status::refused);
  EXPECT_THROW(w.succeed("stop"), std::logic_error);
}

}  // namespace
}  // namespace berth::apply
