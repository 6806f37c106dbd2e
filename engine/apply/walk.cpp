#include "engine/apply/walk.hpp"

#include <algorithm>
#include <stdexcept>

namespace berth::apply {

std::string_view to_string(Status s) {
  switch (s) {
    case Status::pending: return "pending";
    case Status::running: return "running";
    case Status::succeeded: return "succeeded";
    case Status::failed: return "failed";
    case Status::skipped: return "skipped";
    case Status::refused: return "refused";
  }
  return "?";
}

int Limits::for_remote(const std::string& remote) const {
  const auto it = per_remote.find(remote);
  return std::max(1, it == per_remote.end() ? default_per_remote : it->second);
}

Walk::Walk(const plan::Plan& plan, Limits limits, const std::map<std::string, std::string>& refused)
    : plan_(plan), limits_(std::move(limits)), outcomes_(plan.actions.size()) {
  for (std::size_t i = 0; i < plan.actions.size(); ++i) index_.emplace(plan.actions[i].id, i);
  for (const auto& a : plan.actions) {
    for (const auto& dep : a.depends_on) dependents_[dep].push_back(a.id);
  }
  for (std::size_t i = 0; i < plan.actions.size(); ++i) {
    for (const auto& dep : plan.actions[i].depends_on) {
      if (index_.count(dep) == 0) outcomes_[i] = {Status::refused, "depends on " + dep + ", which is not in the plan"};
    }
  }
  for (const auto& [id, why] : refused) {
    const auto it = index_.find(id);
    if (it == index_.end()) continue;
    outcomes_[it->second] = {Status::refused, why};
    skip_dependents(id, "depends on " + id + ", which was refused");
  }
}

std::vector<std::string> Walk::remotes_of(const plan::Action& a) const {
  std::vector<std::string> remotes{a.address.remote};
  if (a.source && a.source->remote != a.address.remote) remotes.push_back(a.source->remote);
  return remotes;
}

std::vector<std::string> Walk::containers_of(const plan::Action& a) {
  std::vector<std::string> out{plan::instance_address(a.address)};
  if (a.source) out.push_back(plan::instance_address(*a.source));
  return out;
}

void Walk::release(const plan::Action& a) {
  for (const auto& r : remotes_of(a)) --busy_[r];
  for (const auto& c : containers_of(a)) busy_containers_.erase(c);
  --running_;
}

std::vector<const plan::Action*> Walk::take_ready() {
  std::vector<const plan::Action*> ready;
  for (std::size_t i = 0; i < plan_.actions.size() && running_ < std::max(1, limits_.global); ++i) {
    if (outcomes_[i].status != Status::pending) continue;
    const auto& a = plan_.actions[i];
    const bool deps_done = std::all_of(a.depends_on.begin(), a.depends_on.end(), [&](const std::string& dep) {
      const auto it = index_.find(dep);
      return it != index_.end() && outcomes_[it->second].status == Status::succeeded;
    });
    if (!deps_done) continue;
    const auto remotes = remotes_of(a);
    const bool room = std::all_of(remotes.begin(), remotes.end(),
                                  [&](const std::string& r) { return busy_[r] < limits_.for_remote(r); });
    if (!room) continue;
    const auto containers = containers_of(a);
    const bool free = std::none_of(containers.begin(), containers.end(),
                                   [&](const std::string& c) { return busy_containers_.count(c) != 0; });
    if (!free) continue;
    for (const auto& r : remotes) ++busy_[r];
    busy_containers_.insert(containers.begin(), containers.end());
    ++running_;
    outcomes_[i].status = Status::running;
    ready.push_back(&a);
  }
  return ready;
}

void Walk::succeed(const std::string& id) {
  const std::size_t i = index_.at(id);
  if (outcomes_[i].status != Status::running)
    throw std::logic_error("succeed() on an action that is not running: " + id);
  outcomes_[i].status = Status::succeeded;
  release(plan_.actions[i]);
}

void Walk::fail(const std::string& id, std::string error) {
  const std::size_t i = index_.at(id);
  if (outcomes_[i].status != Status::running) throw std::logic_error("fail() on an action that is not running: " + id);
  outcomes_[i] = {Status::failed, std::move(error)};
  release(plan_.actions[i]);
  skip_dependents(id, "depends on " + id + ", which failed");
}

void Walk::skip_dependents(const std::string& id, const std::string& because) {
  const auto it = dependents_.find(id);
  if (it == dependents_.end()) return;
  for (const auto& dep : it->second) {
    auto& o = outcomes_[index_.at(dep)];
    if (o.status != Status::pending) continue;
    o = {Status::skipped, because};
    skip_dependents(dep, because);
  }
}

bool Walk::done() const {
  return std::none_of(outcomes_.begin(), outcomes_.end(),
                      [](const Outcome& o) { return o.status == Status::pending || o.status == Status::running; });
}

const Outcome& Walk::outcome(const std::string& id) const {
  return outcomes_[index_.at(id)];
}

std::map<Status, int> Walk::counts() const {
  std::map<Status, int> out;
  for (const auto& o : outcomes_) ++out[o.status];
  return out;
}

bool Walk::all_succeeded() const {
  return std::all_of(outcomes_.begin(), outcomes_.end(),
                     [](const Outcome& o) { return o.status == Status::succeeded; });
}

}  // namespace berth::apply
