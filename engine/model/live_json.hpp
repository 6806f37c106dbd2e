#pragma once
// Live state as JSON: the fixture format of the plan golden tests and of `berth plan --dump-live`.
// {"remotes": {"a": {"status": "ok", "instances": [{"name": "c1", "status_code": 103, "config": {..},
//   "devices": {..}, "profiles": [..], "snapshots": ["s1"]}]}, "b": {"status": "unknown", "error": ".."}},
//  "image_servers": [{"server": "https://..", "protocol": "simplestreams", "alias": "bb",
//   "fingerprints": {"x86_64": ".."}, "error": ".."}]}

#include <string>

#include <nlohmann/json.hpp>

#include "engine/model/live.hpp"

namespace berth::model {

[[nodiscard]] nlohmann::json to_json(const LiveState& live);
// Throws nlohmann::json::exception on malformed input (fixtures are trusted test data).
[[nodiscard]] LiveState live_state_from_json(const nlohmann::json& j);

}  // namespace berth::model
