// Plan golden cases: tests/plan/<case>/{fleet.yaml, live.json, options.json?, expected.txt, expected.json,
// expected.md}.
// options.json: {"prune": bool, "replace": [ADDRESS...], "targets": [ADDRESS...]}.
// Run with BERTH_UPDATE_GOLDEN=1 to rewrite the expected files after an intended change (then review the diff).

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "engine/config/load.hpp"
#include "engine/model/live_json.hpp"
#include "engine/plan/plan.hpp"
#include "engine/plan/render.hpp"

namespace berth::plan {
namespace {

namespace fs = std::filesystem;

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> case_names() {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(fs::path(BERTH_TEST_DATA_DIR) / "plan")) {
    if (entry.is_directory()) names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

class PlanGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(PlanGolden, MatchesExpected) {
  const fs::path dir = fs::path(BERTH_TEST_DATA_DIR) / "plan" / GetParam();
  const auto env = [](std::string_view name) -> std::optional<std::string> {
    if (name == "GOLDEN_URL") return "https://127.0.0.1:8443";
    return std::nullopt;
  };
  auto loaded = config::load_fleet_text(read_file(dir / "fleet.yaml"), "fleet.yaml", env);
  ASSERT_TRUE(loaded.fleet.has_value()) << diag::format(loaded.diagnostics);

  const auto live = model::live_state_from_json(nlohmann::json::parse(read_file(dir / "live.json")));
  PlanOptions options;
  std::vector<Target> targets;
  if (fs::exists(dir / "options.json")) {
    const auto o = nlohmann::json::parse(read_file(dir / "options.json"));
    options.prune = o.value("prune", false);
    const auto addresses = [&](const char* key, std::vector<Target>& out) {
      const auto problems = parse_targets(o.value(key, std::vector<std::string>{}), *loaded.fleet, false, out);
      EXPECT_TRUE(problems.empty()) << ::testing::PrintToString(problems);
    };
    addresses("replace", options.replace);
    addresses("targets", targets);
  }
  Plan plan = compute_plan(*loaded.fleet, live, options);
  limit_to_targets(plan, targets);
  const std::string text = render_text(plan, TextStyle{});
  const std::string json = to_json(plan).dump(2) + "\n";
  const std::string markdown = render_markdown(plan);

  if (std::getenv("BERTH_UPDATE_GOLDEN") != nullptr) {
    std::ofstream(dir / "expected.txt", std::ios::binary) << text;
    std::ofstream(dir / "expected.json", std::ios::binary) << json;
    std::ofstream(dir / "expected.md", std::ios::binary) << markdown;
    GTEST_SKIP() << "rewrote expected files";
  }
  EXPECT_EQ(text, read_file(dir / "expected.txt"));
  EXPECT_EQ(json, read_file(dir / "expected.json"));
  EXPECT_EQ(markdown, read_file(dir / "expected.md"));

  // The JSON form round-trips: what `berth show` reads back renders the same text and markdown.
  const auto parsed = plan_from_json(to_json(plan), "golden");
  ASSERT_TRUE(parsed.plan.has_value()) << diag::format(parsed.diagnostics);
  EXPECT_EQ(render_text(*parsed.plan, TextStyle{}), text);
  EXPECT_EQ(render_markdown(*parsed.plan), markdown);
  EXPECT_EQ(to_json(*parsed.plan), to_json(plan));
}

INSTANTIATE_TEST_SUITE_P(Cases, PlanGolden, ::testing::ValuesIn(case_names()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace berth::plan
