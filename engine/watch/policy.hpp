#pragma once
// Which of a plan's actions one `berth watch` run carries out, and which it only reports. Pure:
// the run loop hands it the plan (consent already granted), the fleet, the watch's settings and
// the failures remembered from earlier runs, and removes what it is told to hold back.
//
// An action is held back (reported as drift, never run) when:
// - the watch is in report mode, or suspended (suspend: true in the file, or POST /suspend);
// - its container says drift: report, drift: ignore (also not reported) or suspend: true;
// - it needs consent that neither a flag nor the file gives (restart, move, recreate);
// - it deletes while the file declares no container and --allow-empty was not given;
// - it failed before and its backoff has not passed, or it failed --max-retries times for this
//   revision of the fleet file;
// - an action it depends on is held back.
// Recovery actions (an interrupted run's leftovers) run whenever the watch corrects at all.

#include <chrono>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "engine/model/desired.hpp"
#include "engine/plan/plan.hpp"

namespace berth::watch {

enum class Mode { correct, report };
[[nodiscard]] std::string_view to_string(Mode m);

// What the watch does about one container, as /status shows it.
enum class Policy { correct, report, ignore, suspended };
[[nodiscard]] std::string_view to_string(Policy p);

using Clock = std::chrono::steady_clock;

// Failed actions remembered across runs (in memory: nothing the hosts can tell). Keyed by action
// id, which is stable across runs; forgotten when the fleet file's revision changes or the action
// succeeds or is no longer planned.
class RetryBook {
 public:
  struct Entry {
    int failures = 0;
    Clock::time_point next_attempt;
    std::string last_error;
  };
  RetryBook(int max_retries, std::chrono::milliseconds base, std::chrono::milliseconds cap)
      : max_retries_(max_retries), base_(base), cap_(cap) {}

  // A new revision of the fleet file: every action gets its attempts again.
  void revision(const std::string& revision);
  void failed(const std::string& action_id, const std::string& error, Clock::time_point now);
  void succeeded(const std::string& action_id);
  // Forgets actions the latest plan no longer has (the drift went away by other means).
  void keep_only(const std::set<std::string>& planned_ids);

  [[nodiscard]] const Entry* find(const std::string& action_id) const;
  [[nodiscard]] bool exhausted(const Entry& e) const { return e.failures >= max_retries_; }
  // The earliest moment an action waiting for its backoff may run (nullopt: none waits).
  [[nodiscard]] std::optional<Clock::time_point> next_retry() const;
  [[nodiscard]] const std::map<std::string, Entry>& entries() const { return entries_; }

 private:
  int max_retries_;
  std::chrono::milliseconds base_;
  std::chrono::milliseconds cap_;
  std::string revision_;
  std::map<std::string, Entry> entries_;
};

struct PolicyInput {
  Mode mode = Mode::correct;
  bool suspended = false;    // POST /suspend (the file's suspend: is read from the fleet)
  bool allow_empty = false;  // --allow-empty
  const RetryBook* retries = nullptr;
  Clock::time_point now;
};

struct Decision {
  std::string action_id;
  bool run = false;
  bool reported = true;  // false: drift: ignore
  std::string why;       // when not run: why, in words a user reads
};

// One decision per action of `plan`, in plan order.
[[nodiscard]] std::vector<Decision> decide(const plan::Plan& plan, const model::Fleet& fleet, const PolicyInput& input);

// The policy that applies to a declared container (by its spec), for /status.
[[nodiscard]] Policy container_policy(const model::ContainerSpec& c, const model::Fleet& fleet,
                                      const PolicyInput& input);

// Removes from `plan` every action whose decision is not to run.
void keep_runnable(plan::Plan& plan, const std::vector<Decision>& decisions);

}  // namespace berth::watch
