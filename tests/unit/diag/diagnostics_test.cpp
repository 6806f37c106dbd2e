// The JSON form of diagnostics (`berth validate --json`): every field present, unknowns null.

#include "engine/diag/diagnostics.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "engine/config/load.hpp"
#include "engine/util/printable.hpp"

namespace berth::diag {
namespace {

TEST(DiagnosticsJson, EveryFieldWithNullForWhatIsUnknown) {
  Diagnostics ds;
  ds.error("unknown image 'foo'", "containers.c1.image", SourceLocation{"berth.yaml", 12, 7}, "declare it");
  ds.warning("something", {}, SourceLocation{"berth.yaml", 0, 0});
  ds.error("no location");
  const auto j = to_json(ds);
  ASSERT_TRUE(j.is_array());
  ASSERT_EQ(j.size(), 3U);
  EXPECT_EQ(j[0], nlohmann::json::parse(R"({"severity": "error", "file": "berth.yaml", "line": 12, "column": 7,
      "path": "containers.c1.image", "message": "unknown image 'foo'", "hint": "declare it"})"));
  EXPECT_EQ(j[1], nlohmann::json::parse(R"({"severity": "warning", "file": "berth.yaml", "line": null,
      "column": null, "path": null, "message": "something", "hint": null})"));
  EXPECT_EQ(j[2], nlohmann::json::parse(R"({"severity": "error", "file": null, "line": null, "column": null,
      "path": null, "message": "no location", "hint": null})"));
}

// What the loader reports reaches the JSON with its position, and text that is not UTF-8 still makes
// valid JSON text.
TEST(DiagnosticsJson, FromAFleetFile) {
  const auto loaded = config::load_fleet_text(
      "version: 1\ncontainers:\n  c1: {remote: nowhere, image: x}\n  "
      "c\xff: {remote: a}\n",
      "fleet.yaml", [](std::string_view) -> std::optional<std::string> { return {}; });
  ASSERT_FALSE(loaded.fleet);
  const auto j = to_json(loaded.diagnostics);
  ASSERT_FALSE(j.empty());
  bool found = false;
  for (const auto& d : j) {
    if (d["path"] == "containers.c1.remote") {
      found = true;
      EXPECT_EQ(d["file"], "fleet.yaml");
      EXPECT_EQ(d["line"], 3);
      EXPECT_EQ(d["severity"], "error");
      EXPECT_TRUE(d["hint"].is_string());
    }
  }
  EXPECT_TRUE(found) << j.dump(2);
  const auto text = util::json_text(nlohmann::json{{"diagnostics", j}}, 2);
  EXPECT_FALSE(nlohmann::json::parse(text, nullptr, false).is_discarded()) << text;
}

}  // namespace
}  // namespace berth::diag
