#pragma once
// How a plan looks to people (text), to reviewers (markdown) and to pipelines (JSON,
// schemas/plan.schema.json).

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

struct MarkdownStyle {
  // A sentence under the heading, as plain text (escaped here): e.g. which saved plan this is.
  std::string context;
};

// GitHub-flavoured markdown for a pull-request comment: a heading and a summary line (with how many
// actions are disruptive and how many diagnostics there are), the disruptive actions first, a
// table per remote in the order apply runs the actions, the diagnostics, and the text plan (no
// colour) in a collapsed block. It shows nothing render_text does not (sensitive values are masked
// by the same code), and nothing that came from input can leave its table cell, code span or
// code block.
[[nodiscard]] std::string render_markdown(const Plan& plan, const MarkdownStyle& style = {});

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
