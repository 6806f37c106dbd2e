#pragma once
// JSON read from outside berth (saved plans, daemon answers): parsed without exceptions, and with
// a bound on nesting. nlohmann parses and destroys without recursion, but copies, compares and
// dumps recurse once per level: a few hundred kilobytes of '[' overflow the stack, and dump(2) of
// deep nesting writes indentation quadratic in the depth (20 KB of '[' print as 200 MB).

#include <cstddef>
#include <string_view>

#include <nlohmann/json.hpp>

namespace berth::util {

// Deeper than any document berth reads or writes (a saved plan nests about ten levels).
inline constexpr std::size_t max_json_depth = 64;

enum class JsonProblem { none, malformed, too_deep };

struct BoundedJson {
  nlohmann::json value;  // null unless problem is none
  JsonProblem problem = JsonProblem::none;
};

// Parses `text`; values nested more than `max_depth` arrays or objects deep are never built.
[[nodiscard]] BoundedJson parse_bounded_json(std::string_view text, std::size_t max_depth = max_json_depth);

}  // namespace berth::util
