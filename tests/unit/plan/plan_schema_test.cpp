// Every golden plan's JSON conforms to schemas/plan.schema.json: the documented format is the real one.

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <valijson/adapters/nlohmann_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validator.hpp>

namespace {

namespace fs = std::filesystem;

nlohmann::json read_json(const fs::path& p) {
  std::ifstream in(p);
  return nlohmann::json::parse(in);
}

std::string errors_of(valijson::ValidationResults& results) {
  std::string out;
  valijson::ValidationResults::Error error;
  while (results.popError(error)) {
    std::string context;
    for (const auto& c : error.context) context += c;
    out += context + ": " + error.description + "\n";
  }
  return out;
}

// The parsed schema keeps references into its JSON, so both live together.
struct PlanSchema {
  nlohmann::json json = read_json(fs::path(BERTH_SOURCE_DIR) / "schemas" / "plan.schema.json");
  valijson::Schema schema;
  PlanSchema() {
    valijson::SchemaParser parser;
    valijson::adapters::NlohmannJsonAdapter adapter(json);
    parser.populateSchema(adapter, schema);
  }
};

TEST(PlanSchema, GoldenPlansConform) {
  const PlanSchema plan_schema;
  const auto& schema = plan_schema.schema;

  int checked = 0;
  for (const auto& entry : fs::directory_iterator(fs::path(BERTH_TEST_DATA_DIR) / "plan")) {
    const auto expected = entry.path() / "expected.json";
    if (!fs::exists(expected)) continue;
    const auto plan = read_json(expected);
    valijson::Validator validator;
    valijson::ValidationResults results;
    valijson::adapters::NlohmannJsonAdapter target(plan);
    EXPECT_TRUE(validator.validate(schema, target, &results)) << expected << "\n" << errors_of(results);
    ++checked;
  }
  EXPECT_GT(checked, 5);
}

TEST(PlanSchema, RejectsAnUnknownAction) {
  const PlanSchema plan_schema;
  const auto& schema = plan_schema.schema;
  auto plan = read_json(fs::path(BERTH_TEST_DATA_DIR) / "plan" / "launch_new" / "expected.json");
  ASSERT_FALSE(plan["actions"].empty());
  plan["actions"][0]["action"] = "explode";
  valijson::Validator validator;
  valijson::adapters::NlohmannJsonAdapter target(plan);
  EXPECT_FALSE(validator.validate(schema, target, nullptr));
}

}  // namespace
