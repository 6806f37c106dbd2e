#include <gtest/gtest.h>

#include <string>

#include "engine/util/json_parse.hpp"

namespace berth::util {
namespace {

std::string nested_arrays(std::size_t depth) {
  return std::string(depth, '[') + std::string(depth, ']');
}

TEST(ParseBoundedJson, ParsesWhatIsWithinTheLimit) {
  const auto parsed = parse_bounded_json(R"({"a": [1, {"b": null}], "c": "d"})");
  EXPECT_EQ(parsed.problem, JsonProblem::none);
  EXPECT_EQ(parsed.value, nlohmann::json::parse(R"({"a": [1, {"b": null}], "c": "d"})"));

  const auto at_limit = parse_bounded_json(nested_arrays(max_json_depth));
  EXPECT_EQ(at_limit.problem, JsonProblem::none);
  EXPECT_TRUE(at_limit.value.is_array());
  EXPECT_EQ(parse_bounded_json("[1, 2]", 1).problem, JsonProblem::none);
  EXPECT_EQ(parse_bounded_json("7", 0).problem, JsonProblem::none);
}

TEST(ParseBoundedJson, RefusesDeeperNestingWithoutBuildingIt) {
  EXPECT_EQ(parse_bounded_json(nested_arrays(max_json_depth + 1)).problem, JsonProblem::too_deep);
  EXPECT_EQ(parse_bounded_json(R"({"a": {"b": 1}})", 1).problem, JsonProblem::too_deep);
  // Deep enough that copying or printing the value would overflow the stack.
  const auto deep = parse_bounded_json(R"({"x": )" + nested_arrays(200000) + "}");
  EXPECT_EQ(deep.problem, JsonProblem::too_deep);
  EXPECT_TRUE(deep.value.is_null());
  // Too deep even when the text breaks off later.
  EXPECT_EQ(parse_bounded_json(std::string(100, '[')).problem, JsonProblem::too_deep);
}

TEST(ParseBoundedJson, MalformedTextIsAProblemNotAThrow) {
  for (const char* text : {"", "{", "[1,]", "{\"a\" 1}", "nul", "\"\\ud800\"", "1 2"}) {
    const auto parsed = parse_bounded_json(text);
    EXPECT_EQ(parsed.problem, JsonProblem::malformed) << text;
    EXPECT_TRUE(parsed.value.is_null()) << text;
  }
}

}  // namespace
}  // namespace berth::util
