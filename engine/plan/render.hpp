#pragma once
// How a plan looks to people (text) and to pipelines (JSON, schemas/plan.schema.json).

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/plan/plan.hpp"

namespace berth::plan {

struct TextStyle {
  bool color = false;  // ANSI colours; the CLI decides (TTY, NO_COLOR, --no-color)
};

// Actions grouped per remote with symbols (+ launch, ~ update/restart/power, > move/finish_transfer,
// = copy, * snapshot, - delete/undo_transfer),
// diagnostics, and a summary line.
[[nodiscard]] std::string render_text(const Plan& plan, const TextStyle& style);

// "Plan: 2 to launch, 1 to update, ..." or "No changes."
[[nodiscard]] std::string summary_line(const Plan& plan);

inline constexpr int plan_json_format_version = 2;

// The documented, stable JSON form (docs/plan-format.md, schemas/plan.schema.json).
[[nodiscard]] nlohmann::json to_json(const Plan& plan);

struct ParsedPlan {
  std::optional<Plan> plan;
  diag::Diagnostics diagnostics;
};
// The inverse of to_json, for saved plans. Rejects unknown format versions and malformed actions.
[[nodiscard]] ParsedPlan plan_from_json(const nlohmann::json& json, const std::string& origin);

}  // namespace berth::plan
