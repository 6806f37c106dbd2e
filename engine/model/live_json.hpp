#pragma once
// Live state as JSON: the fixture format of the plan golden tests and of `berth plan --dump-live`.
// {"remotes": {"a": {"status": "ok", "instances": [{"name": "c1", "status_code": 103, "config": {..},
//   "devices": {..}, "profiles": [..], "snapshots": ["s1"], "limits": {"limits.cpu": "2"}}],
//   "resources": {"cpu": 8, "memory": 17179869184}}, "b": {"status": "unknown", "error": ".."},
//   "c": {"status": "ok", "instances": [], "resources_error": "remote c: GET /1.0/resources: .."}},
//  "image_servers": [{"server": "https://..", "protocol": "simplestreams", "alias": "bb",
//   "fingerprints": {"x86_64": ".."}, "error": ".."}]}
// Optional: an instance's "limits" (the limits.cpu and limits.memory placement counts, as the
// expanded config has them; absent: none, whatever "config" says), a remote's "resources" (what
// the host has: CPU threads, memory in bytes) and "resources_error" (why they could not be read).
// On an LXD cluster: an instance's "location" (its member) and "placeholder": true (on a member
// that cannot be reached), and the remote's "members": {"m1": {"status": "Online", "message": ..,
// "groups": [..], "resources": {..}}}.
// to_json writes each only when it is set.

#include <string>

#include <nlohmann/json.hpp>

#include "engine/model/live.hpp"

namespace berth::model {

[[nodiscard]] nlohmann::json to_json(const LiveState& live);
// Throws nlohmann::json::exception on malformed input (fixtures are trusted test data).
[[nodiscard]] LiveState live_state_from_json(const nlohmann::json& j);

}  // namespace berth::model
