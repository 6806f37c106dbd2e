#include "engine/plan/plan.hpp"

#include <algorithm>
#include <set>

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
    case ActionKind::restart: return "restart";
    case ActionKind::finish_transfer: return "finish_transfer";
    case ActionKind::undo_transfer: return "undo_transfer";
  }
  return "?";
}

std::optional<ActionKind> action_kind_from_string(std::string_view s) {
  for (const auto k : {ActionKind::launch, ActionKind::update, ActionKind::start, ActionKind::stop, ActionKind::freeze,
                       ActionKind::unfreeze, ActionKind::snapshot, ActionKind::delete_snapshot, ActionKind::copy,
                       ActionKind::move, ActionKind::delete_, ActionKind::restart, ActionKind::finish_transfer,
                       ActionKind::undo_transfer}) {
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

void grant_consent(Plan& plan, ConsentFlags flags) {
  plan.consent.restart = plan.consent.restart || flags.restart;
  plan.consent.move = plan.consent.move || flags.move;
  for (auto& a : plan.actions) {
    if (a.disruption == Disruption::restart && flags.restart) a.consented = true;
    if (a.disruption == Disruption::move && flags.move) a.consented = true;
  }
}

std::map<std::string, std::string> refusals(const Plan& plan) {
  std::map<std::string, std::string> refused;
  for (const auto& a : plan.actions) {
    if (a.consented) continue;
    switch (a.disruption) {
      case Disruption::restart:
        refused[a.id] = "needs a restart: pass --allow-restart or set restart: allowed on the container";
        break;
      case Disruption::move:
        refused[a.id] = "needs a move: pass --allow-move or set move: allowed on the container";
        break;
      default: refused[a.id] = "needs consent"; break;
    }
  }
  return refused;
}

namespace {

model::LiveInstance* find_instance(model::LiveState& live, const Address& a) {
  const auto r = live.remotes.find(a.remote);
  if (r == live.remotes.end()) return nullptr;
  const auto i = r->second.instances.find(a.container);
  return i == r->second.instances.end() ? nullptr : &i->second;
}

void erase_instance(model::LiveState& live, const Address& a) {
  if (const auto r = live.remotes.find(a.remote); r != live.remotes.end()) r->second.instances.erase(a.container);
}

}  // namespace

model::LiveState after_recovery(model::LiveState live, const std::vector<Action>& recovery) {
  for (const auto& a : recovery) {
    if (a.kind == ActionKind::undo_transfer) {
      erase_instance(live, a.address);
    } else if (a.kind == ActionKind::finish_transfer) {
      if (auto* target = find_instance(live, a.address)) {
        target->config.erase(std::string{model::incomplete_key});
        target->digest = model::digest_of(*target);
      }
      if (a.recovery && a.recovery->transfer == "move" && a.source) erase_instance(live, *a.source);
    }
  }
  return live;
}

void prepend_recovery(Plan& plan, std::vector<Action> recovery) {
  if (recovery.empty()) return;
  std::map<std::string, std::vector<std::string>> by_container;  // container name -> recovery ids
  for (const auto& r : recovery) {
    by_container[r.address.container].push_back(r.id);
    if (r.source) by_container[r.source->container].push_back(r.id);
  }
  for (auto& a : plan.actions) {
    std::set<std::string> deps(a.depends_on.begin(), a.depends_on.end());
    for (const auto* name : {&a.address.container, a.source ? &a.source->container : nullptr}) {
      if (name == nullptr) continue;
      if (const auto it = by_container.find(*name); it != by_container.end()) {
        for (const auto& id : it->second) {
          if (deps.insert(id).second) a.depends_on.push_back(id);
        }
      }
    }
  }
  std::move(plan.actions.begin(), plan.actions.end(), std::back_inserter(recovery));
  plan.actions = std::move(recovery);
}

std::map<std::string, std::string> basis_of(const model::LiveState& live) {
  std::map<std::string, std::string> basis;
  for (const auto& [name, remote] : live.remotes) {
    if (remote.status != model::RemoteStatus::ok) continue;
    for (const auto& [iname, inst] : remote.instances) basis[name + ":" + iname] = inst.digest;
  }
  return basis;
}

}  // namespace berth::plan
