#pragma once
// What the text and the markdown renderers share, so that both say the same things the same way:
// above all, each value is masked and escaped in one place, and the markdown form prints nothing
// the text form would not. Internal to engine/plan.

#include <string>
#include <string_view>
#include <vector>

#include "engine/plan/plan.hpp"

namespace berth::plan::render_parts {

// "+" launch, "~" update, "-/+" recreate... (render.hpp lists them).
[[nodiscard]] std::string_view symbol(ActionKind k);

// The verb a user reads: the kind's name, "delete" for delete_snapshot.
[[nodiscard]] std::string verb(ActionKind k);

// What the action is about, escaped: "h1:web", "h1:web/snap0", "h1:web name" for exec,
// "h1:web -> h2:web" for a copy or a move.
[[nodiscard]] std::string subject(const Action& a);

// "needs consent: --allow-restart or restart: allowed", or empty when the action has consent.
[[nodiscard]] std::string consent_note(const Action& a);

// One line under an action. `change`: a key that differs ("path: before -> after", sensitive values
// as (sensitive)); `note`: what the action is or runs (a recovery, a command); `file`: the mode,
// owner and source of the pushed file named by the change line before it.
enum class LineKind { change, note, file };
struct DetailLine {
  LineKind kind = LineKind::change;
  std::string text;  // escaped (util::printable) where it came from input
};
[[nodiscard]] std::vector<DetailLine> detail_lines(const Action& a);

// "2 to launch, 1 to update" in a fixed order; empty when the plan has no action.
[[nodiscard]] std::string action_counts(const Plan& plan);

// Why an incomplete plan is: "1 remote unknown (h2); 1 container not planned (h1:web)", escaped.
// Empty when the plan is complete.
[[nodiscard]] std::string incomplete_reason(const Plan& plan);

}  // namespace berth::plan::render_parts
