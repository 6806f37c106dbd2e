#include "engine/watch/status.hpp"

#include <set>

#include "engine/plan/placement.hpp"

namespace berth::watch {
namespace {

using model::DesiredState;
using model::LivePower;

bool power_matches(DesiredState want, LivePower is) {
  switch (want) {
    case DesiredState::running: return is == LivePower::running;
    case DesiredState::stopped: return is == LivePower::stopped;
    case DesiredState::frozen: return is == LivePower::frozen;
    case DesiredState::absent: return false;
  }
  return false;
}

}  // namespace

std::string_view to_string(Sync s) {
  switch (s) {
    case Sync::synced: return "Synced";
    case Sync::out_of_sync: return "OutOfSync";
    case Sync::unknown: return "Unknown";
  }
  return "?";
}

std::string_view to_string(Health h) {
  switch (h) {
    case Health::healthy: return "Healthy";
    case Health::degraded: return "Degraded";
    case Health::missing: return "Missing";
    case Health::unknown: return "Unknown";
  }
  return "?";
}

std::vector<ContainerStatus> container_status(const model::Fleet& declared, const model::LiveState& live,
                                              const plan::Plan& plan, const std::set<std::string>& corrected) {
  // Placed containers are where the plan placed them.
  std::optional<model::Fleet> placed;
  const model::Fleet& fleet = plan::placed_fleet(declared, plan, placed);
  // What the plan does, by container (as target or source): its drift.
  std::map<std::string, std::vector<std::string>> drift;  // instance key on its declared remote -> items
  std::set<std::string> converged;                        // containers with a corrected action
  for (const auto& a : plan.actions) {
    if (plan::is_recovery(a.kind)) continue;
    const std::string key = a.address.remote + ":" + model::instance_key(a.address.project, a.address.container);
    if (corrected.count(a.id) != 0) {
      converged.insert(key);
      continue;
    }
    const std::string kind{plan::to_string(a.kind)};
    auto& items = drift[key];
    if (a.changes.empty()) {
      items.push_back(kind);
    } else {
      for (const auto& c : a.changes) items.push_back(kind + " " + c.path);
    }
  }

  std::vector<ContainerStatus> out;
  for (const auto& [name, c] : fleet.containers) {
    ContainerStatus s;
    const std::string key = model::instance_key(c.project, name);
    if (c.remote.empty()) {  // placement found no remote for it: the plan says why
      s.address = key;
      const auto np = plan.not_planned.find(key);
      s.why = np != plan.not_planned.end() ? np->second : "not placed";
      out.push_back(std::move(s));
      continue;
    }
    s.address = c.remote + ":" + key;
    const auto remote = live.remotes.find(c.remote);
    if (remote == live.remotes.end() || remote->second.status != model::RemoteStatus::ok) {
      s.why = remote == live.remotes.end() ? "remote " + c.remote + " was not read" : remote->second.error;
      out.push_back(std::move(s));
      continue;
    }
    if (const auto np = plan.not_planned.find(s.address); np != plan.not_planned.end()) {
      s.why = np->second;
      out.push_back(std::move(s));
      continue;
    }
    if (const auto d = drift.find(s.address); d != drift.end()) {
      s.sync = Sync::out_of_sync;
      s.drift = d->second;
    } else {
      s.sync = Sync::synced;
    }

    // Health: the container where it lives now (its declared remote, or another one it would be
    // moved from), in its declared power state.
    const model::LiveInstance* inst = nullptr;
    if (const auto it = remote->second.instances.find(key); it != remote->second.instances.end()) inst = &it->second;
    bool elsewhere_unknown = false;
    for (const auto& [rname, lr] : live.remotes) {
      if (inst != nullptr) break;
      if (lr.status != model::RemoteStatus::ok) {
        elsewhere_unknown = true;
        continue;
      }
      if (const auto it = lr.instances.find(key); it != lr.instances.end()) inst = &it->second;
    }
    if (s.sync == Sync::synced && converged.count(s.address) != 0) {
      s.health = Health::healthy;  // its actions reached the declared state
    } else if (c.state == DesiredState::absent) {
      s.health = inst == nullptr ? Health::healthy : Health::degraded;
    } else if (inst == nullptr) {
      s.health = elsewhere_unknown ? Health::unknown : Health::missing;
    } else {
      s.health = power_matches(c.state, inst->power) ? Health::healthy : Health::degraded;
    }
    out.push_back(std::move(s));
  }
  return out;
}

std::map<std::pair<std::string, std::string>, int> drift_items(const plan::Plan& plan) {
  std::map<std::pair<std::string, std::string>, int> out;
  for (const auto& a : plan.actions) {
    if (plan::is_recovery(a.kind)) continue;
    ++out[{a.address.remote, std::string{plan::to_string(a.kind)}}];
  }
  return out;
}

}  // namespace berth::watch
