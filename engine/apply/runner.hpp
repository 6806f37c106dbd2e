#pragma once
// Carries out a plan: walks its DAG (engine/apply/walk) on worker threads, one per running
// action, journals every step in the state file, and reports events as they happen.
// Part of berth_apply (with the pipeline), not berth_engine: it owns threads and the state file.

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
#include "engine/util/redact.hpp"
#include "providers/provider.hpp"

namespace berth::apply {

// One line of `berth apply --json`: {"event": "started"|"progress"|"finished"|"failed"|"skipped"|"refused", ...}
using EventSink = std::function<void(const nlohmann::json& event)>;

struct RunOptions {
  Limits limits;
  const std::atomic<bool>* cancel = nullptr;  // set: no new action starts
  // Set: running actions stop at their next step (a wait on an operation returns); the operation
  // itself goes on, and the journal lets the next run settle it. Null: `cancel` does this too.
  const std::atomic<bool>* abort = nullptr;
  // Called after each journal intent is written, before the call it announces (tests use it to
  // kill the process at a named step).
  std::function<void(const std::string& action_id, const std::string& step)> on_intent;
  // Scrubs secrets from what is written to the state file (errors, journal details).
  const util::Redactor* redactor = nullptr;
};

struct RunSummary {
  std::map<Status, int> counts;
  std::map<std::string, Outcome> outcomes;  // by action id
  bool all_succeeded = false;
  std::string state_error;  // the first write to the state file that failed (the walk went on)
};

// Refuses exactly plan::refusals(plan) (consent is decided on the plan value, never here); a
// recovery action that succeeded closes the journal intents it settles.
[[nodiscard]] RunSummary run_plan(const plan::Plan& plan, const model::Fleet& fleet,
                                  providers::ActionExecutor& executor, state::Store& store, std::int64_t run_id,
                                  const RunOptions& options, const EventSink& events);

}  // namespace berth::apply
