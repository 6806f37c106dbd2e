#pragma once
// What one `berth watch` run found, as JSON: the drift it reports (the state file's run record,
// the events, GET /status) and each container's sync, health and policy. Pure.

#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/model/desired.hpp"
#include "engine/model/live.hpp"
#include "engine/plan/plan.hpp"
#include "engine/watch/policy.hpp"

namespace berth::watch {

// One entry per reported drift (every action but those of drift: ignore containers), in plan
// order: {action, kind, address, remote, changes: [paths], corrected: bool, why}. Values are never
// included, only the paths that differ: they may be secrets.
[[nodiscard]] nlohmann::json drift_json(const plan::Plan& plan, const std::vector<Decision>& decisions);

// GET /status "containers": one per declared container, {address, remote, name, sync, health,
// policy, drift: [...], why}.
// `corrected`: the actions this run carried out successfully (container_status).
[[nodiscard]] nlohmann::json containers_json(const model::Fleet& fleet, const model::LiveState& live,
                                             const plan::Plan& plan, const PolicyInput& input,
                                             const std::set<std::string>& corrected);

// GET /status "remotes": {name, url, up, error, read_seconds}.
[[nodiscard]] nlohmann::json remotes_json(const model::Fleet& fleet, const model::LiveState& live,
                                          const std::map<std::string, double>& read_seconds);

// Reported drift counted by remote and action kind, all of it (berth_drift_detected_total) or
// what is left once `corrected` (ids of actions that succeeded) is taken out (berth_drift_items).
[[nodiscard]] std::map<std::pair<std::string, std::string>, int> reported_drift(
    const plan::Plan& plan, const std::vector<Decision>& decisions, const std::set<std::string>& corrected = {});

}  // namespace berth::watch
