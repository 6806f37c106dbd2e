#include "engine/watch/policy.hpp"

#include <algorithm>

#include "engine/watch/schedule.hpp"

namespace berth::watch {
namespace {

const model::ContainerSpec* declared(const model::Fleet& fleet, const plan::Address& a) {
  for (const auto& [name, c] : fleet.containers) {
    if (c.name == a.container && c.project == a.project) return &c;
  }
  return nullptr;
}

std::string consent_hint(plan::Disruption d) {
  switch (d) {
    case plan::Disruption::restart: return "it needs a restart: --allow-restart or restart: allowed";
    case plan::Disruption::move: return "it moves the container: --allow-move or move: allowed";
    case plan::Disruption::recreate: return "it recreates the container: --allow-recreate or recreate: allowed";
    case plan::Disruption::destroy: return "it deletes: prune: true";
    case plan::Disruption::none: break;
  }
  return "it needs consent";
}

std::string seconds_text(Clock::duration d) {
  const auto s = std::chrono::duration_cast<std::chrono::seconds>(d).count();
  return std::to_string(std::max<std::int64_t>(s, 0)) + "s";
}

}  // namespace

std::string_view to_string(Mode m) {
  return m == Mode::correct ? "correct" : "report";
}

std::string_view to_string(Policy p) {
  switch (p) {
    case Policy::correct: return "correct";
    case Policy::report: return "report";
    case Policy::ignore: return "ignore";
    case Policy::suspended: return "suspended";
  }
  return "?";
}

void RetryBook::revision(const std::string& revision) {
  if (revision == revision_) return;
  revision_ = revision;
  entries_.clear();
}

void RetryBook::failed(const std::string& action_id, const std::string& error, Clock::time_point now) {
  auto& e = entries_[action_id];
  ++e.failures;
  e.last_error = error;
  e.next_attempt = now + retry_delay(e.failures, base_, cap_);
}

void RetryBook::succeeded(const std::string& action_id) {
  entries_.erase(action_id);
}

void RetryBook::keep_only(const std::set<std::string>& planned_ids) {
  std::erase_if(entries_, [&](const auto& kv) { return planned_ids.count(kv.first) == 0; });
}

const RetryBook::Entry* RetryBook::find(const std::string& action_id) const {
  const auto it = entries_.find(action_id);
  return it == entries_.end() ? nullptr : &it->second;
}

std::optional<Clock::time_point> RetryBook::next_retry() const {
  std::optional<Clock::time_point> out;
  for (const auto& [id, e] : entries_) {
    if (exhausted(e)) continue;
    if (!out || e.next_attempt < *out) out = e.next_attempt;
  }
  return out;
}

Policy container_policy(const model::ContainerSpec& c, const model::Fleet& fleet, const PolicyInput& input) {
  if (c.drift == model::DriftPolicy::ignore) return Policy::ignore;
  if (c.suspend || fleet.suspend || input.suspended) return Policy::suspended;
  if (c.drift) return *c.drift == model::DriftPolicy::report ? Policy::report : Policy::correct;
  return input.mode == Mode::correct ? Policy::correct : Policy::report;
}

std::vector<Decision> decide(const plan::Plan& plan, const model::Fleet& fleet, const PolicyInput& input) {
  std::vector<Decision> out;
  out.reserve(plan.actions.size());
  std::set<std::string> held;  // ids not run: their dependents wait too
  const bool correcting = input.mode == Mode::correct && !input.suspended && !fleet.suspend;
  for (const auto& a : plan.actions) {
    Decision d;
    d.action_id = a.id;
    auto hold = [&](std::string why) {
      if (d.why.empty()) d.why = std::move(why);
    };
    const auto* spec = declared(fleet, a.address);
    if (spec == nullptr && a.source) spec = declared(fleet, *a.source);
    if (spec != nullptr) {
      switch (container_policy(*spec, fleet, input)) {
        case Policy::ignore:
          d.reported = false;
          hold("drift: ignore");
          break;
        case Policy::suspended:
          hold(input.suspended ? "the watch is suspended (POST /resume)"
                               : (fleet.suspend ? "the fleet is suspended (suspend: true)" : "suspend: true"));
          break;
        case Policy::report: hold(spec->drift ? "drift: report" : "report mode"); break;
        case Policy::correct: break;
      }
    } else if (!correcting) {
      hold(input.suspended || fleet.suspend ? "the watch is suspended" : "report mode");
    }
    if (plan::is_recovery(a.kind) && correcting) d.why.clear();  // leftovers are finished whatever the container says
    if (!a.consented) hold("not consented: " + consent_hint(a.disruption));
    if (a.kind == plan::ActionKind::delete_ && fleet.containers.empty() && !input.allow_empty) {
      hold("the fleet file declares no container: nothing is deleted without --allow-empty");
    }
    if (input.retries != nullptr) {
      if (const auto* e = input.retries->find(a.id)) {
        if (input.retries->exhausted(*e)) {
          hold("failed " + std::to_string(e->failures) +
               " times for this revision of the fleet file; change the file or restart the watch to try again (last "
               "error: " +
               e->last_error + ")");
        } else if (e->next_attempt > input.now) {
          hold("failed " + std::to_string(e->failures) + " times; next attempt in " +
               seconds_text(e->next_attempt - input.now));
        }
      }
    }
    for (const auto& dep : a.depends_on) {
      if (held.count(dep) != 0) hold("it depends on " + dep + ", which is not run");
    }
    d.run = d.why.empty();
    if (!d.run) held.insert(a.id);
    out.push_back(std::move(d));
  }
  return out;
}

void keep_runnable(plan::Plan& plan, const std::vector<Decision>& decisions) {
  std::set<std::string> run;
  for (const auto& d : decisions) {
    if (d.run) run.insert(d.action_id);
  }
  std::erase_if(plan.actions, [&](const plan::Action& a) { return run.count(a.id) == 0; });
}

}  // namespace berth::watch
