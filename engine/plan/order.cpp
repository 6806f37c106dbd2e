#include "engine/plan/order.hpp"

#include <map>
#include <queue>

namespace berth::plan {

void order_actions(Plan& plan) {
  auto& actions = plan.actions;
  std::map<std::string, std::size_t> index;
  for (std::size_t i = 0; i < actions.size(); ++i) index.emplace(actions[i].id, i);

  std::vector<std::size_t> pending(actions.size(), 0);
  std::vector<std::vector<std::size_t>> dependents(actions.size());
  for (std::size_t i = 0; i < actions.size(); ++i) {
    for (const auto& dep : actions[i].depends_on) {
      const auto it = index.find(dep);
      if (it == index.end()) {
        plan.diagnostics.error("depends on '" + dep + "', which is not in the plan (planner bug)", actions[i].id);
        continue;
      }
      ++pending[i];
      dependents[it->second].push_back(i);
    }
  }

  // Kahn's algorithm with a min-heap on the planning index: the result is deterministic.
  std::priority_queue<std::size_t, std::vector<std::size_t>, std::greater<>> ready;
  for (std::size_t i = 0; i < actions.size(); ++i) {
    if (pending[i] == 0) ready.push(i);
  }
  std::vector<Action> ordered;
  ordered.reserve(actions.size());
  while (!ready.empty()) {
    const std::size_t i = ready.top();
    ready.pop();
    for (const std::size_t d : dependents[i]) {
      if (--pending[d] == 0) ready.push(d);
    }
    ordered.push_back(std::move(actions[i]));
  }
  if (ordered.size() != actions.size()) {
    for (std::size_t i = 0; i < actions.size(); ++i) {
      if (pending[i] != 0) {
        plan.diagnostics.error("is part of a dependency cycle (planner bug)", actions[i].id);
        ordered.push_back(std::move(actions[i]));
      }
    }
  }
  actions = std::move(ordered);
}

}  // namespace berth::plan
