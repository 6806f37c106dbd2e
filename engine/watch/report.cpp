#include "engine/watch/report.hpp"

#include "engine/plan/placement.hpp"
#include "engine/watch/status.hpp"

namespace berth::watch {
namespace {

const Decision* decision_of(const std::vector<Decision>& decisions, const std::string& id) {
  for (const auto& d : decisions) {
    if (d.action_id == id) return &d;
  }
  return nullptr;
}

}  // namespace

nlohmann::json drift_json(const plan::Plan& plan, const std::vector<Decision>& decisions) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& a : plan.actions) {
    const auto* d = decision_of(decisions, a.id);
    if (d != nullptr && !d->reported) continue;
    nlohmann::json changes = nlohmann::json::array();
    for (const auto& c : a.changes) changes.push_back(c.path);
    out.push_back({{"action", a.id},
                   {"kind", plan::to_string(a.kind)},
                   {"address", plan::to_string(a.address)},
                   {"remote", a.address.remote},
                   {"changes", std::move(changes)},
                   {"corrected", d != nullptr && d->run},
                   {"why", d != nullptr ? d->why : std::string{}}});
  }
  return out;
}

nlohmann::json containers_json(const model::Fleet& declared, const model::LiveState& live, const plan::Plan& plan,
                               const PolicyInput& input, const std::set<std::string>& corrected) {
  std::optional<model::Fleet> placed;  // placed containers where the plan put them
  const model::Fleet& fleet = plan::placed_fleet(declared, plan, placed);
  nlohmann::json out = nlohmann::json::array();
  for (const auto& s : container_status(fleet, live, plan, corrected)) {
    // container_status keeps the fleet's order: the spec with the same address.
    const model::ContainerSpec* spec = nullptr;
    for (const auto& [name, c] : fleet.containers) {
      // A container placement gave no remote is addressed by its key alone (container_status).
      const std::string key = model::instance_key(c.project, c.name);
      if ((c.remote.empty() ? key : c.remote + ":" + key) == s.address) spec = &c;
    }
    const Policy policy = spec != nullptr ? container_policy(*spec, fleet, input) : Policy::correct;
    nlohmann::json drift = nlohmann::json::array();
    for (const auto& item : s.drift) drift.push_back(item);
    out.push_back({{"address", s.address},
                   {"remote", spec != nullptr ? spec->remote : std::string{}},
                   {"name", spec != nullptr ? model::instance_key(spec->project, spec->name) : s.address},
                   {"sync", to_string(s.sync)},
                   {"health", to_string(s.health)},
                   {"policy", to_string(policy)},
                   {"drift", std::move(drift)},
                   {"why", s.why}});
  }
  return out;
}

nlohmann::json remotes_json(const model::Fleet& fleet, const model::LiveState& live,
                            const std::map<std::string, double>& read_seconds) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& [name, spec] : fleet.remotes) {
    const auto r = live.remotes.find(name);
    const bool up = r != live.remotes.end() && r->second.status == model::RemoteStatus::ok;
    const auto secs = read_seconds.find(name);
    out.push_back({{"name", name},
                   {"url", spec.url},
                   {"up", up},
                   {"error", r == live.remotes.end() ? std::string{"not read"} : r->second.error},
                   {"read_seconds", secs == read_seconds.end() ? 0.0 : secs->second}});
  }
  return out;
}

std::map<std::pair<std::string, std::string>, int> reported_drift(const plan::Plan& plan,
                                                                  const std::vector<Decision>& decisions,
                                                                  const std::set<std::string>& corrected) {
  std::map<std::pair<std::string, std::string>, int> out;
  for (const auto& a : plan.actions) {
    if (plan::is_recovery(a.kind) || corrected.count(a.id) != 0) continue;
    const auto* d = decision_of(decisions, a.id);
    if (d != nullptr && !d->reported) continue;
    ++out[{a.address.remote, std::string{plan::to_string(a.kind)}}];
  }
  return out;
}

}  // namespace berth::watch
