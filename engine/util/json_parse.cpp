#include "engine/util/json_parse.hpp"

namespace berth::util {

BoundedJson parse_bounded_json(std::string_view text, std::size_t max_depth) {
  bool too_deep = false;
  // Called with the depth of each value as it starts; refusing an array or object start skips it
  // whole, so nothing below the limit is allocated.
  const nlohmann::json::parser_callback_t within_limit = [&](int depth, nlohmann::json::parse_event_t event,
                                                             nlohmann::json& /*parsed*/) {
    const bool opens =
        event == nlohmann::json::parse_event_t::object_start || event == nlohmann::json::parse_event_t::array_start;
    if (opens && static_cast<std::size_t>(depth) >= max_depth) too_deep = true;
    return !too_deep;
  };
  BoundedJson result;
  nlohmann::json parsed = nlohmann::json::parse(text, within_limit, /*allow_exceptions=*/false);
  if (too_deep) {
    result.problem = JsonProblem::too_deep;
  } else if (parsed.is_discarded()) {
    result.problem = JsonProblem::malformed;
  } else {
    result.value = std::move(parsed);
  }
  return result;
}

}  // namespace berth::util
