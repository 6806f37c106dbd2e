#pragma once

#include "engine/plan/plan.hpp"

namespace berth::plan {

// Reorders plan.actions so that every action comes after the ones it depends on, keeping the
// order in which they were planned wherever dependencies allow (so output is stable).
// A dependency cycle or a dangling dependency is a bug in the planner: it becomes an error diagnostic.
void order_actions(Plan& plan);

}  // namespace berth::plan
