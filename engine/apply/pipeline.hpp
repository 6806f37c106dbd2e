#pragma once
// The apply pipeline: the one path by which berth changes hosts. `berth apply`, `berth destroy`
// (and later `berth watch`) call it; the CLI only parses, confirms on a terminal and renders.
//
//   lock -> read -> settle open journal intents (recovery actions on the plan value)
//        -> plan the rest as the hosts will be after them (or check a saved plan)
//        -> consent on the plan value -> confirm (a callback)
//        -> lock the hosts the plan changes (all or none) -> read again: refused if what the plan
//           depends on changed meanwhile -> walk (recovery first; the host locks renewed) -> record
//
// Nothing changes on a host before `confirm` returned true: settling only reads (and may wait
// for operations still running on a host). Consent is decided once, on the plan value: the walk
// refuses exactly the actions still unconsented, and the executor never decides it again.
// Providers are injected, so the whole pipeline runs against an in-memory provider in tests.

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/apply/host_locks.hpp"
#include "engine/apply/read_live.hpp"
#include "engine/apply/runner.hpp"
#include "engine/apply/walk.hpp"
#include "engine/model/desired.hpp"
#include "engine/plan/plan.hpp"
#include "engine/state/store.hpp"
#include "providers/provider.hpp"

namespace berth::apply {

struct Providers {
  providers::StateReader* reader = nullptr;
  providers::Recoverer* recoverer = nullptr;
  providers::ActionExecutor* executor = nullptr;  // not needed to plan
  providers::HostLocker* locker = nullptr;        // null: no locks on the hosts (tests, one runner)
};

enum class Goal { apply, destroy };

// What the command line singles out: `--replace` containers are recreated from their image,
// `--target` limits the plan to some containers and what they depend on.
struct Selection {
  std::vector<plan::Target> replace;
  std::vector<plan::Target> targets;
  std::set<std::string> drain;  // --drain: remotes drained in this plan, as with drain: true
};

struct PipelineOptions {
  Goal goal = Goal::apply;
  // Apply exactly this saved plan: refused when the hosts or the open journal intents changed
  // since it was made. Its consent is what it recorded; `consent` must then be empty.
  const plan::Plan* saved = nullptr;
  plan::ConsentFlags consent;
  bool prune = false;
  Selection selection;  // ignored with a saved plan (it was made with its own)
  Limits limits;
  int read_parallelism = default_read_parallelism;  // remotes read at once
  std::chrono::milliseconds lock_timeout{0};        // the state file's lock, and then the hosts' locks
  std::string command;                              // "apply", "destroy": the run record and the lock holder
  // Who holds the hosts' locks, for people ("berth apply, root@runner-7, pid 42"); and how long a
  // lock lives unless renewed (its holder renews it every ttl/4).
  std::string holder;
  std::chrono::seconds host_lock_ttl{120};
  const std::atomic<bool>* cancel = nullptr;  // no new action starts once set (see RunOptions)
  // RunOptions::abort: null, running actions stop waiting once `cancel` is set (`berth apply` on
  // Ctrl-C); `berth watch` passes a flag it never sets, so running actions finish on SIGTERM.
  const std::atomic<bool>* abort = nullptr;
  const util::Redactor* redactor = nullptr;  // scrubs what the state file records
  // Record a run in the state file even when nothing is walked (no changes, plan errors): `berth
  // watch` keeps every run in its history.
  bool record_every_run = false;
};

struct PipelineHooks {
  // The plan, before confirmation: what will happen, recovery actions included.
  std::function<void(const plan::Plan&)> planned;
  // Called after `planned`: may remove actions that are not to run now (`berth watch` holds back
  // what its policy only reports). What it removes is neither walked nor recorded as run.
  std::function<void(plan::Plan&)> filter;
  // Asked only when the plan has changes; false changes nothing. Unset: approved.
  std::function<bool(const plan::Plan&)> confirm;
  EventSink events;
  // Things the user should know that are not plan actions: a lock taken over, intents closed.
  std::function<void(const std::string&)> notice;
  // See RunOptions::on_intent.
  std::function<void(const std::string& action_id, const std::string& step)> on_intent;
};

enum class RunOutcome {
  no_changes,   // nothing to do (the plan may still be incomplete: see plan.complete())
  applied,      // walked; summary says how each action ended
  locked,       // another run holds the state file's lock: `holder`
  plan_errors,  // the plan has error diagnostics: nothing was changed
  stale,        // the saved plan no longer matches the hosts: `stale`
  host_locked,  // another run holds a host's lock (`host_holder`), or one could not be asked (`error`)
  changed,      // the hosts changed between the plan and the host locks: `stale`; nothing was changed
  declined,     // confirm returned false
  state_error,  // the state file could not be used: `error`
};

struct PipelineResult {
  RunOutcome outcome = RunOutcome::plan_errors;
  plan::Plan plan;                             // as walked (after `filter`)
  model::LiveState live;                       // as read (not set for locked/state_error)
  std::map<std::string, double> read_seconds;  // remote -> how long its read took
  RunSummary summary;
  std::int64_t run_id = 0;
  bool took_over_lock = false;
  std::optional<state::LockHolder> holder;
  std::optional<providers::HostLockInfo> host_holder;
  std::vector<std::string> stale;
  std::string error;

  // Every action succeeded and every remote was read.
  [[nodiscard]] bool success() const;
};

[[nodiscard]] PipelineResult run_pipeline(const model::Fleet& fleet, state::Store& store, const Providers& providers,
                                          const PipelineOptions& options, const PipelineHooks& hooks);

// What interrupted runs left open, inspected on the hosts (read-only).
struct Settlement {
  std::vector<plan::Action> recovery;       // finish or undo, in journal order
  std::map<std::string, std::string> held;  // container name -> why it is not planned now
  std::vector<std::int64_t> settled;        // open intents that need nothing more
  std::vector<std::string> notes;           // one line per interrupted action, for the user
  diag::Diagnostics diagnostics;            // a warning per held action
};

// Settles the open intents of `store` (which may be null: no state file, nothing open).
[[nodiscard]] Settlement settle_open_intents(state::Store* store, const model::Fleet& fleet,
                                             providers::Recoverer& recoverer);

// read -> settle -> plan: what `berth plan` shows and `berth apply` would do, with no lock and no
// change anywhere. `store` may be null. When another run holds the lock its open intents are its
// own in-flight steps, not leftovers: they are not settled, and the plan says so.
[[nodiscard]] plan::Plan prepare_plan(const model::Fleet& fleet, state::Store* store, const Providers& providers,
                                      Goal goal, bool prune, plan::ConsentFlags consent,
                                      int read_parallelism = default_read_parallelism, const Selection& selection = {});

}  // namespace berth::apply
