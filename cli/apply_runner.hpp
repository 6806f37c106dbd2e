#pragma once
// Carries out a plan: walks its DAG (engine/apply/walk) on worker threads, one per running
// action, journals every step in the state file, and reports events as they happen.

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/apply/walk.hpp"
#include "engine/model/desired.hpp"
#include "engine/plan/plan.hpp"
#include "engine/state/store.hpp"
#include "providers/provider.hpp"

namespace berth::cli {

// One line of `berth apply --json`: {"event": "started"|"progress"|"finished"|"failed"|"skipped"|"refused", ...}
using EventSink = std::function<void(const nlohmann::json& event)>;

struct RunOptions {
  apply::Limits limits;
  std::map<std::string, std::string> refused;  // action id -> why (missing consent)
  const std::atomic<bool>* cancel = nullptr;
};

struct RunSummary {
  std::map<apply::Status, int> counts;
  std::map<std::string, apply::Outcome> outcomes;  // by action id
  bool all_succeeded = false;
};

[[nodiscard]] RunSummary run_plan(const plan::Plan& plan, const model::Fleet& fleet,
                                  providers::ActionExecutor& executor, state::Store& store, std::int64_t run_id,
                                  const RunOptions& options, const EventSink& events);

}  // namespace berth::cli
