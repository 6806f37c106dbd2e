#include "engine/apply/pipeline.hpp"

#include <algorithm>
#include <set>

#include "engine/apply/read_live.hpp"
#include "engine/plan/render.hpp"
#include "engine/util/json_parse.hpp"
#include "engine/util/printable.hpp"
#include "engine/util/random.hpp"

namespace berth::apply {
namespace {

// Releases the lock on every way out (a SIGKILL leaves it: the next run takes over a lock whose
// process is gone).
class Locked {
 public:
  Locked(state::Store& store, std::string id) : store_(store), id_(std::move(id)) {}
  ~Locked() { store_.release_lock(id_); }
  Locked(const Locked&) = delete;
  Locked& operator=(const Locked&) = delete;

 private:
  state::Store& store_;
  std::string id_;
};

providers::JournalStep to_step(const state::JournalEntry& e) {
  providers::JournalStep s;
  s.seq = e.seq;
  s.step = e.step;
  s.phase = e.phase;
  // Bounded: a damaged entry nested too deep would overflow the stack when copied. Damaged reads as
  // null, which the recoverer holds on.
  s.detail = util::parse_bounded_json(e.detail).value;
  if (!e.result.empty()) s.result = util::parse_bounded_json(e.result).value;
  return s;
}

std::string label(std::int64_t run_id, const std::string& action_id) {
  return "run " + std::to_string(run_id) + ", " + action_id;
}

// The plan of the rest, from the hosts as they will be once recovery ran.
plan::Plan plan_rest(const model::Fleet& fleet, const LiveRead& read, const Settlement& settlement, Goal goal,
                     bool prune, const Selection& selection) {
  const model::LiveState projected = plan::after_recovery(read.live, settlement.recovery);
  plan::PlanOptions options;
  options.prune = prune;
  options.held = settlement.held;
  options.replace = selection.replace;
  options.drain = selection.drain;
  plan::Plan plan = goal == Goal::destroy ? plan::compute_destroy_plan(fleet, projected)
                                          : plan::compute_plan(fleet, projected, options);
  if (goal == Goal::destroy) {
    std::erase_if(plan.actions, [&](const plan::Action& a) { return settlement.held.count(a.address.container) != 0; });
  }
  // The basis is what was read, not the projection: a saved plan is checked against a fresh read.
  plan.basis = plan::basis_of(read.live);
  plan::prepend_recovery(plan, settlement.recovery);
  plan::limit_to_targets(plan, selection.targets);
  plan.destroy = goal == Goal::destroy;
  plan.diagnostics.append(read.diagnostics);
  plan.diagnostics.append(settlement.diagnostics);
  return plan;
}

std::set<std::string> recovery_ids(const plan::Plan& plan) {
  std::set<std::string> ids;
  for (const auto& a : plan.actions) {
    if (a.recovery) ids.insert(a.id);
  }
  return ids;
}

}  // namespace

bool PipelineResult::success() const {
  switch (outcome) {
    case RunOutcome::no_changes: return plan.complete();
    case RunOutcome::applied: return summary.all_succeeded && plan.complete();
    default: return false;
  }
}

Settlement settle_open_intents(state::Store* store, const model::Fleet& fleet, providers::Recoverer& recoverer) {
  Settlement out;
  if (store == nullptr) return out;
  // One request per interrupted action, with all it journaled in its run.
  std::vector<std::pair<std::int64_t, std::string>> actions;
  std::set<std::pair<std::int64_t, std::string>> seen;
  for (const auto& e : store->open_intents()) {
    if (seen.insert({e.run_id, e.action_id}).second) actions.emplace_back(e.run_id, e.action_id);
  }
  // Newest first: a recovery action that was itself interrupted carries the freshest evidence
  // about its transfer, and the older run's intents for the same container are settled with it.
  std::reverse(actions.begin(), actions.end());
  std::map<std::string, std::size_t> recovering;  // container -> index in out.recovery
  for (const auto& [run_id, action_id] : actions) {
    providers::SettleRequest request;
    request.fleet = &fleet;
    request.run_id = run_id;
    request.action_id = action_id;
    std::vector<std::int64_t> open;
    for (const auto& e : store->journal_of(run_id, action_id)) {
      request.steps.push_back(to_step(e));
      if (e.phase == "intent") open.push_back(e.seq);
    }
    providers::SettleResponse response;
    try {
      response = recoverer.settle(request);
    } catch (const std::exception& e) {
      // A damaged journal entry (or a bug): held, so it is reported and never acted upon.
      response.verdict = providers::Verdict::held;
      response.note = std::string{"its journal entries could not be read ("} + e.what() + ")";
    }
    const std::string who = label(run_id, action_id);

    // A newer run left the same container unsettled: this older evidence must not act on it.
    const auto held_already = std::find_if(response.containers.begin(), response.containers.end(),
                                           [&](const std::string& c) { return out.held.count(c) != 0; });
    if (response.verdict != providers::Verdict::settled && held_already != response.containers.end()) {
      response.verdict = providers::Verdict::held;
      response.note = "a newer interrupted run left " + *held_already + " unsettled too";
    }
    // Already being recovered by a newer run's evidence (the same container, or the same action):
    // these intents close with that action.
    std::vector<std::string> keys = response.containers;
    if (response.action) {
      keys.push_back("id:" + response.action->id);
      keys.push_back(response.action->address.container);
    }
    const auto covered =
        std::find_if(keys.begin(), keys.end(), [&](const std::string& k) { return recovering.count(k) != 0; });
    if (response.verdict != providers::Verdict::settled && covered != keys.end()) {
      auto& settles = out.recovery[recovering.at(*covered)].recovery->settles;
      settles.insert(settles.end(), open.begin(), open.end());
      continue;
    }
    if (response.verdict == providers::Verdict::recover && response.action) {
      auto action = std::move(*response.action);
      if (!action.recovery) action.recovery.emplace();
      action.recovery->settles = open;
      action.recovery->run_id = run_id;
      for (const auto& k : keys) recovering[k] = out.recovery.size();
      out.recovery.push_back(std::move(action));
      continue;
    }
    if (response.verdict == providers::Verdict::settled) {
      out.settled.insert(out.settled.end(), open.begin(), open.end());
      out.notes.push_back(who + ": " + response.note);
      continue;
    }
    // Held (or a recover verdict without an action, a provider bug): left as it is.
    std::string ids;
    for (const auto seq : open) ids += (ids.empty() ? "" : ", ") + std::to_string(seq);
    for (const auto& c : response.containers) out.held[c] = "an interrupted run left it unsettled (" + who + ")";
    out.diagnostics.warning("interrupted " + who + " (journal " + ids + ") is not settled: " + response.note, who,
                            std::nullopt,
                            "put it right by hand, then `berth state drop-intent ID` for each of " + ids +
                                "; or fix what stops recovery and apply again");
  }
  // Journal order among the recovery actions themselves.
  std::reverse(out.recovery.begin(), out.recovery.end());
  return out;
}

plan::Plan prepare_plan(const model::Fleet& fleet, state::Store* store, const Providers& providers, Goal goal,
                        bool prune, plan::ConsentFlags consent, int read_parallelism, const Selection& selection) {
  // Settled before the read: recovery waits for what an interrupted run left running on the hosts
  // (a migration still arriving), so that the read sees the hosts as that left them.
  Settlement settlement;
  std::optional<state::LockHolder> busy;
  if (store != nullptr) busy = store->live_lock_holder();
  if (!busy) settlement = settle_open_intents(store, fleet, *providers.recoverer);
  const auto read = read_live_state(fleet, *providers.reader, read_parallelism);
  plan::Plan plan = plan_rest(fleet, read, settlement, goal, prune, selection);
  if (busy) {
    plan.diagnostics.warning("another run holds the state file's lock (" + busy->command + ", pid " +
                                 std::to_string(busy->pid) + " on " + busy->host +
                                 "); steps it has in flight were not inspected",
                             "", std::nullopt, "plan again once it finished");
  }
  grant_consent(plan, consent);
  return plan;
}

PipelineResult run_pipeline(const model::Fleet& fleet, state::Store& store, const Providers& providers,
                            const PipelineOptions& options, const PipelineHooks& hooks) {
  PipelineResult result;
  auto notice = [&](const std::string& text) {
    if (hooks.notice) hooks.notice(text);
  };

  // lock
  state::Store::LockResult lock;
  try {
    lock = store.acquire_lock(options.command + " " + fleet.path, options.lock_timeout);
  } catch (const state::StoreError& e) {
    result.outcome = RunOutcome::state_error;
    result.error = e.what();
    return result;
  }
  if (!lock.lock_id) {
    result.outcome = RunOutcome::locked;
    result.holder = lock.holder;
    return result;
  }
  const Locked held{store, *lock.lock_id};
  result.took_over_lock = lock.took_over_stale;
  if (lock.took_over_stale) notice("took over the lock of a berth process that no longer runs");

  // settle, read, plan (in that order: see prepare_plan)
  const Settlement settlement = settle_open_intents(&store, fleet, *providers.recoverer);
  const auto read = read_live_state(fleet, *providers.reader, options.read_parallelism);
  for (const auto& n : settlement.notes) notice("recovery: " + n);
  if (options.saved != nullptr) {
    result.plan = *options.saved;
    result.stale = plan::stale_addresses(result.plan, read.live);
    // Recovery is part of what was reviewed: the same recovery actions must be due now.
    plan::Plan fresh;
    plan::prepend_recovery(fresh, settlement.recovery);
    if (recovery_ids(fresh) != recovery_ids(result.plan)) {
      result.stale.push_back("the interrupted runs to recover differ from when the plan was made");
    }
    for (const auto& a : result.plan.actions) {
      for (const auto* c : {&a.address.container, a.source ? &a.source->container : nullptr}) {
        if (c != nullptr && settlement.held.count(*c) != 0) {
          result.stale.push_back(plan::to_string(a.address) + " (an interrupted run left " + *c + " unsettled since)");
        }
      }
    }
    result.plan.diagnostics.append(settlement.diagnostics);
  } else {
    result.plan = plan_rest(fleet, read, settlement, options.goal, options.prune, options.selection);
    grant_consent(result.plan, options.consent);
  }
  plan::Plan& plan = result.plan;

  result.live = read.live;
  result.read_seconds = read.read_seconds;

  if (hooks.planned) hooks.planned(plan);
  if (hooks.filter) hooks.filter(plan);
  // The plan as the run record keeps it: secrets masked already; the redactor is a net.
  auto plan_json = [&] {
    std::string text = util::json_text(plan::to_json(plan));
    return options.redactor != nullptr ? options.redactor->apply(text) : text;
  };
  // A run that walks nothing, recorded when asked: `outcome` as the run record says it.
  auto record_unwalked = [&](const std::string& outcome) {
    if (!options.record_every_run) return;
    try {
      result.run_id = store.begin_run(options.command, fleet.path, plan_json());
      store.finish_run(result.run_id, outcome);
    } catch (const state::StoreError& e) {
      result.summary.state_error = e.what();
    }
  };
  if (!result.stale.empty()) {
    result.outcome = RunOutcome::stale;
    return result;
  }
  if (plan.diagnostics.has_errors()) {
    result.outcome = RunOutcome::plan_errors;
    record_unwalked("failed");
    return result;
  }
  // Intents that needed nothing: closed now, whatever follows (they are settled either way).
  if (!settlement.settled.empty()) {
    try {
      store.resolve_intents(settlement.settled, "nothing was half-done");
    } catch (const state::StoreError& e) {
      result.outcome = RunOutcome::state_error;
      result.error = std::string{e.what()} + "; nothing was changed";
      return result;
    }
  }
  if (!plan.has_changes()) {
    result.outcome = RunOutcome::no_changes;
    record_unwalked(plan.complete() ? "succeeded" : "failed");
    return result;
  }

  // confirm
  if (hooks.confirm && !hooks.confirm(plan)) {
    result.outcome = RunOutcome::declined;
    return result;
  }

  // lock the hosts, read again
  std::atomic<bool> stop{false};
  std::optional<HostLocks> host_locks;
  if (providers.locker != nullptr) {
    providers::HostLockClaim claim;
    claim.fleet = fleet.name;
    claim.id = util::random_hex(32);
    claim.holder = options.holder.empty() ? "berth " + options.command : options.holder;
    claim.ttl = options.host_lock_ttl;
    host_locks.emplace(*providers.locker, fleet, std::move(claim));
    auto taken = host_locks->acquire(changed_remotes(plan), options.lock_timeout, options.cancel);
    if (!taken.acquired) {
      result.outcome = RunOutcome::host_locked;
      result.host_holder = std::move(taken.holder);
      result.error = std::move(taken.error);
      record_unwalked("locked");
      return result;
    }
    for (const auto& t : taken.taken_over) {
      notice("took over the " + std::string{t.process_gone ? "lock" : "expired lock"} + " on " + t.remote + " of " +
             t.holder + " (since " + t.since + (t.process_gone ? "; its process is gone" : "") + ")");
    }
    const auto again = read_live_state(fleet, *providers.reader, options.read_parallelism);
    result.stale = plan::stale_addresses(plan, again.live);
    if (!result.stale.empty()) {
      result.outcome = RunOutcome::changed;
      record_unwalked("failed");
      return result;
    }
    host_locks->keep(stop, options.cancel, notice);
  }

  // walk, record
  try {
    result.run_id = store.begin_run(options.command, fleet.path, plan_json());
  } catch (const state::StoreError& e) {
    result.outcome = RunOutcome::state_error;
    result.error = std::string{e.what()} + "; nothing was changed";
    return result;
  }
  RunOptions run;
  run.limits = options.limits;
  // With host locks, `stop` is set by the renewing thread: on `cancel`, and when a lock is lost.
  run.cancel = host_locks ? &stop : options.cancel;
  run.abort = options.abort;
  run.on_intent = hooks.on_intent;
  run.redactor = options.redactor;
  const EventSink events = hooks.events ? hooks.events : EventSink{[](const nlohmann::json&) {}};
  result.summary = run_plan(plan, fleet, *providers.executor, store, result.run_id, run, events);
  const bool interrupted = run.cancel != nullptr && run.cancel->load();
  if (host_locks) {
    for (const auto& e : host_locks->release()) notice(e);
  }
  try {
    store.finish_run(result.run_id, interrupted
                                        ? "interrupted"
                                        : (result.summary.all_succeeded && plan.complete() ? "succeeded" : "failed"));
  } catch (const state::StoreError& e) {
    if (result.summary.state_error.empty()) result.summary.state_error = e.what();
  }
  result.outcome = RunOutcome::applied;
  return result;
}

}  // namespace berth::apply
