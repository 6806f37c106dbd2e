#include <gtest/gtest.h>

#include <cstdint>
#include <limits>

#include "engine/plan/order.hpp"
#include "engine/plan/plan_file.hpp"
#include "engine/plan/render.hpp"

namespace berth::plan {
namespace {

Action make(std::string id, std::vector<std::string> deps = {}) {
  Action a;
  a.id = std::move(id);
  a.address = Address{"a", "c", std::nullopt};
  a.depends_on = std::move(deps);
  return a;
}

std::vector<std::string> ids(const Plan& p) {
  std::vector<std::string> out;
  for (const auto& a : p.actions) out.push_back(a.id);
  return out;
}

PlanFile file_with(std::vector<Action> actions) {
  PlanFile file;
  file.plan.fleet_path = "f.yaml";
  file.plan.fleet_digest = "sha256:" + std::string(64, 'a');
  file.plan.actions = std::move(actions);
  return file;
}

// Reads `text` as a saved plan that must be refused, naming the file; returns what is printed.
std::string refused_text(const std::string& text, const std::string& why) {
  const auto parsed = parse_plan_file(text, "damaged.plan");
  EXPECT_FALSE(parsed.file.has_value()) << why;
  const auto printed = diag::format(parsed.diagnostics);
  EXPECT_NE(printed.find("damaged.plan"), std::string::npos) << printed;
  return printed;
}

std::string refused(const nlohmann::json& j, const std::string& why) {
  return refused_text(j.dump(), why);
}

TEST(OrderActions, DependenciesComeFirstAndOtherwisePlanningOrderIsKept) {
  Plan p;
  p.actions = {make("copy", {"snap"}), make("other"), make("launch"), make("snap", {"launch"})};
  order_actions(p);
  EXPECT_EQ(ids(p), (std::vector<std::string>{"other", "launch", "snap", "copy"}));
  EXPECT_FALSE(p.diagnostics.has_errors());
}

TEST(OrderActions, CycleIsReportedNotLost) {
  Plan p;
  p.actions = {make("x", {"y"}), make("y", {"x"}), make("free")};
  order_actions(p);
  EXPECT_EQ(p.actions.size(), 3U);
  EXPECT_EQ(p.actions.front().id, "free");
  EXPECT_TRUE(p.diagnostics.has_errors());
}

TEST(OrderActions, DanglingDependencyIsAnError) {
  Plan p;
  p.actions = {make("x", {"nowhere"})};
  order_actions(p);
  EXPECT_TRUE(p.diagnostics.has_errors());
}

TEST(PlanFile, RoundTripsAnImageServer) {
  PlanFile file = file_with({make("launch a:c"), make("recreate a:d")});
  file.plan.remotes["a"] = RemoteSummary{"https://127.0.0.1:8443", model::RemoteStatus::ok, "", 1};
  file.plan.actions[0].kind = ActionKind::launch;
  file.plan.actions[0].image =
      model::ImageRef{{},
                      "debian/12",
                      model::ImageServer{"https://images.example.net/x", model::ImageProtocol::simplestreams, ""},
                      std::nullopt};
  file.plan.actions[1].kind = ActionKind::recreate;
  file.plan.actions[1].image =
      model::ImageRef{{},
                      "alpine",
                      model::ImageServer{"https://[::1]:8444", model::ImageProtocol::lxd,
                                         "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"},
                      std::string(64, 'a')};
  const auto parsed = parse_plan_file(serialize(file), "saved.plan");
  ASSERT_TRUE(parsed.file.has_value()) << diag::format(parsed.diagnostics);
  EXPECT_EQ(parsed.file->plan.actions[0].image, file.plan.actions[0].image);
  EXPECT_EQ(parsed.file->plan.actions[1].image, file.plan.actions[1].image);
  EXPECT_EQ(to_json(parsed.file->plan), to_json(file.plan));

  // A damaged server image is refused, never guessed at.
  for (const auto& [key, value] : std::vector<std::pair<std::string, nlohmann::json>>{
           {"server", "http://images.example.net"}, {"protocol", "ftp"}, {"fingerprint", "abc"}, {"alias", 5}}) {
    auto j = nlohmann::json::parse(serialize(file));
    j["plan"]["actions"][1]["spec"]["image"][key] = value;
    EXPECT_FALSE(parse_plan_file(j.dump(), "x").file.has_value()) << key;
  }
}

TEST(PlanFile, RoundTripsAndRejectsForeignFiles) {
  PlanFile file = file_with({make("launch a:c")});
  file.plan.remotes["a"] = RemoteSummary{"https://127.0.0.1:8443", model::RemoteStatus::ok, "", 1};
  file.plan.actions[0].kind = ActionKind::launch;
  file.plan.actions[0].image = model::ImageRef{"a", "bb"};
  file.plan.actions[0].target_state = model::DesiredState::frozen;
  file.plan.basis["a:other"] = "sha256:" + std::string(64, 'b');
  file.created_at = "2026-01-01T00:00:00Z";
  file.berth_version = "0.1.0";

  const auto parsed = parse_plan_file(serialize(file), "saved.plan");
  ASSERT_TRUE(parsed.file.has_value()) << diag::format(parsed.diagnostics);
  EXPECT_EQ(to_json(parsed.file->plan), to_json(file.plan));
  EXPECT_EQ(parsed.file->created_at, "2026-01-01T00:00:00Z");
  ASSERT_TRUE(parsed.file->plan.actions[0].image.has_value());
  EXPECT_EQ(parsed.file->plan.actions[0].image->alias, "bb");

  EXPECT_FALSE(parse_plan_file("{}", "x").file.has_value());
  EXPECT_FALSE(parse_plan_file("not json", "x").file.has_value());
  auto j = nlohmann::json::parse(serialize(file));
  j["format_version"] = 99;
  const auto future = parse_plan_file(j.dump(), "x");
  EXPECT_FALSE(future.file.has_value());
  EXPECT_NE(diag::format(future.diagnostics).find("format_version 99"), std::string::npos);
  j = nlohmann::json::parse(serialize(file));
  j["plan"]["actions"][0]["action"] = "explode";
  EXPECT_FALSE(parse_plan_file(j.dump(), "x").file.has_value());
}

// A damaged saved plan is refused when it is loaded, with what is wrong, and never throws: the
// walk cannot run duplicate ids, cycles or dangling dependencies (it would spin or abort).
TEST(PlanFile, DamagedPlansAreRefusedWithAReason) {
  const auto good =
      nlohmann::json::parse(serialize(file_with({make("launch a:c"), make("start a:c", {"launch a:c"})})));
  ASSERT_TRUE(parse_plan_file(good.dump(), "x").file.has_value());

  auto j = good;
  j["format_version"] = "1";
  refused(j, "format_version as a string");
  j = good;
  j["format"] = 7;
  refused(j, "format as a number");
  j = good;
  j["plan"]["format_version"] = "1";
  refused(j, "the plan's format_version as a string");
  j = good;
  j["plan"]["actions"][1]["id"] = "launch a:c";
  j["plan"]["actions"][1]["depends_on"] = nlohmann::json::array();
  EXPECT_NE(refused(j, "duplicate ids").find("appears twice"), std::string::npos);
  j = good;
  j["plan"]["actions"][0]["depends_on"] = {"start a:c"};
  EXPECT_NE(refused(j, "a cycle").find("not an earlier action"), std::string::npos);
  j = good;
  j["plan"]["actions"][1]["depends_on"] = {"nowhere"};
  refused(j, "a dangling dependency");
  j = good;
  j["plan"]["actions"][0]["depends_on"] = "launch a:c";
  refused(j, "depends_on of the wrong type");
  j = good;
  j["created_at"] = nullptr;
  EXPECT_TRUE(parse_plan_file(j.dump(), "x").file.has_value()) << "created_at is informative only";
}

// Counts are whole numbers in range: anything else is refused rather than cast (get<T>() on 1e300
// is undefined behaviour; on -1 or 2.5 it silently gives another number). Found by fuzz/plan_file.
TEST(PlanFile, CountsThatAreNotWholeNumbersInRangeAreRefused) {
  PlanFile file = file_with({make("finish_transfer a:c")});
  file.plan.remotes["a"] = RemoteSummary{"https://127.0.0.1:8443", model::RemoteStatus::ok, "", 2};
  file.plan.actions[0].kind = ActionKind::finish_transfer;
  file.plan.actions[0].recovery = Recovery{{41, 44}, 7, "move", "arrived", nlohmann::json::object()};
  const auto good = nlohmann::json::parse(serialize(file));
  const auto loaded = parse_plan_file(good.dump(), "x");
  ASSERT_TRUE(loaded.file.has_value()) << diag::format(loaded.diagnostics);
  EXPECT_EQ(loaded.file->plan.remotes.at("a").instances, 2U);
  EXPECT_EQ(loaded.file->plan.actions[0].recovery->settles, (std::vector<std::int64_t>{41, 44}));
  EXPECT_EQ(loaded.file->plan.actions[0].recovery->run_id, 7);

  auto malformed = [](const nlohmann::json& j, const std::string& why) {
    EXPECT_NE(refused(j, why).find("malformed"), std::string::npos) << why;
  };
  for (const nlohmann::json& bad : {nlohmann::json(1e300), nlohmann::json(-1), nlohmann::json(2.5)}) {
    auto j = good;
    j["plan"]["remotes"]["a"]["instances"] = bad;
    malformed(j, "instances " + bad.dump());
  }
  for (const nlohmann::json& bad : {nlohmann::json(1e300), nlohmann::json(2.5)}) {
    auto j = good;
    j["plan"]["actions"][0]["recovery"]["settles"] = {41, bad};
    malformed(j, "settles " + bad.dump());
  }
  auto j = good;
  j["plan"]["actions"][0]["recovery"]["run_id"] = -1e300;
  malformed(j, "run_id -1e300");
  j = good;
  j["plan"]["actions"][0]["recovery"]["run_id"] = std::numeric_limits<std::uint64_t>::max();
  malformed(j, "run_id beyond int64");
  j = good;
  j["plan"]["actions"][0]["recovery"]["settles"] = 41;
  malformed(j, "settles not a list");
}

// A value nested deeper than berth ever writes is refused when the file is read: copying and
// printing it would recurse once per level, and `berth show --json` would indent it quadratically.
// Found with a hand-made input while writing fuzz/plan_file.
TEST(PlanFile, DeeplyNestedValuesAreRefused) {
  auto j = nlohmann::json::parse(serialize(file_with({make("update a:c")})));
  j["plan"]["actions"][0]["before"] = nlohmann::json::parse(std::string(40, '[') + std::string(40, ']'));
  ASSERT_TRUE(parse_plan_file(j.dump(), "x").file.has_value()) << "40 levels under the action are fine";

  std::string text = j.dump();
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  text.replace(text.find("\"before\":") + 9, text.find(",\"changes\"") - text.find("\"before\":") - 9, deep);
  EXPECT_NE(refused_text(text, "100000 levels").find("nested more than 64 levels"), std::string::npos);
}

}  // namespace
}  // namespace berth::plan
