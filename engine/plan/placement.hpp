#pragma once
// Placement: the remote of each container declared with placement: instead of remote:, chosen
// within its policy from the fleet file and the live state. Pure, like the rest of the plan:
// the same file (in any key order) and the same live state place every container the same way.
//
// The rules (docs/placement.md explains them to users):
// - Sticky: a container that lives on a readable remote stays there while that remote satisfies
//   the policy (a candidate, not draining, within max_per_remote and anti_affinity, and its
//   limits fit). Only when it no longer does is it placed again, which the plan carries out as a
//   move.
// - A container placed anew (or again) goes to a candidate that satisfies the policy: spread takes
//   the one with the fewest containers of this fleet, pack the one with the most; ties go to the
//   first by name. Containers are placed one after another, by name, each counting the ones
//   before it.
// - The fit: limits.cpu and limits.memory against the host's capacity (capacity:, else what it
//   reports), less the limits of everything that will be on it: undeclared instances as they are,
//   containers pinned there (remote:) as declared, containers placed there before.
// - No candidate fits: the container is not placed, gets no action, and the plan is incomplete,
//   saying what failed on each candidate. A container on a draining remote that fits nowhere else
//   stays, with a warning that it blocks the drain.
// - A container not found on any readable remote while a candidate is Unknown is not placed: it
//   may live there, so it is never launched elsewhere, moved or duplicated.

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "engine/diag/diagnostics.hpp"
#include "engine/model/desired.hpp"
#include "engine/model/live.hpp"
#include "engine/plan/plan.hpp"

namespace berth::plan {

struct Placed {
  // The fleet with every placed container's remote set (and the remote of an image that follows
  // it); a container that could not be placed keeps an empty remote.
  model::Fleet fleet;
  std::vector<Placement> placements;               // by container name
  std::map<std::string, std::string> not_planned;  // not placed: instance key -> why
  diag::Diagnostics diagnostics;
  std::vector<std::string> drain;  // remotes drained (drain: true, or `drain`), sorted
};

// `drain`: remotes to drain besides those whose spec says drain: true (--drain).
[[nodiscard]] Placed place(const model::Fleet& fleet, const model::LiveState& live, const std::set<std::string>& drain);

// Whether any container of the fleet is placed by a policy (then `place` has work to do).
[[nodiscard]] bool has_placements(const model::Fleet& fleet);

// The fleet as the plan placed it: each placed container's remote as `plan.placements` says
// (empty when it was not placed). For whoever reads a plan beside its fleet (berth watch).
[[nodiscard]] model::Fleet placed_fleet(const model::Fleet& fleet, const Plan& plan);

// `fleet` itself when the plan placed nothing, else its placed copy, made in `storage`: a fleet
// without placement is not copied on every read of a plan.
[[nodiscard]] const model::Fleet& placed_fleet(const model::Fleet& fleet, const Plan& plan,
                                               std::optional<model::Fleet>& storage);

}  // namespace berth::plan
