#include "engine/plan/plan.hpp"

#include <algorithm>

namespace berth::plan {

std::string_view to_string(ActionKind k) {
  switch (k) {
    case ActionKind::launch: return "launch";
    case ActionKind::update: return "update";
    case ActionKind::start: return "start";
    case ActionKind::stop: return "stop";
    case ActionKind::freeze: return "freeze";
    case ActionKind::unfreeze: return "unfreeze";
    case ActionKind::snapshot: return "snapshot";
    case ActionKind::delete_snapshot: return "delete_snapshot";
    case ActionKind::copy: return "copy";
    case ActionKind::move: return "move";
    case ActionKind::delete_: return "delete";
  }
  return "?";
}

std::optional<ActionKind> action_kind_from_string(std::string_view s) {
  for (const auto k : {ActionKind::launch, ActionKind::update, ActionKind::start, ActionKind::stop, ActionKind::freeze,
                       ActionKind::unfreeze, ActionKind::snapshot, ActionKind::delete_snapshot, ActionKind::copy,
                       ActionKind::move, ActionKind::delete_}) {
    if (to_string(k) == s) return k;
  }
  return std::nullopt;
}

std::string_view to_string(Disruption d) {
  switch (d) {
    case Disruption::none: return "none";
    case Disruption::restart: return "restart";
    case Disruption::move: return "move";
    case Disruption::destroy: return "destroy";
  }
  return "?";
}

std::optional<Disruption> disruption_from_string(std::string_view s) {
  for (const auto d : {Disruption::none, Disruption::restart, Disruption::move, Disruption::destroy}) {
    if (to_string(d) == s) return d;
  }
  return std::nullopt;
}

std::string to_string(const Address& a) {
  std::string out = a.remote + ":" + a.container;
  if (a.snapshot) out += "/" + *a.snapshot;
  return out;
}

bool Plan::complete() const {
  return std::all_of(remotes.begin(), remotes.end(),
                     [](const auto& r) { return r.second.status == model::RemoteStatus::ok; });
}

}  // namespace berth::plan
