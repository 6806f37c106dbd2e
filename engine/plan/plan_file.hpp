#pragma once
// A saved plan (`berth plan --out FILE`): the plan plus what it was computed from, so that
// `berth apply FILE` can refuse it when the hosts or the fleet file changed since.
// A separate type from Plan: the file format can evolve without touching the planner.

#include <filesystem>
#include <optional>
#include <string>

#include "engine/plan/plan.hpp"

namespace berth::plan {

inline constexpr std::string_view plan_file_format = "berth-plan";
inline constexpr int plan_file_format_version = 2;

struct PlanFile {
  Plan plan;
  std::string created_at;  // RFC 3339, UTC
  std::string berth_version;
};

[[nodiscard]] std::string serialize(const PlanFile& file);

struct ParsedPlanFile {
  std::optional<PlanFile> file;
  diag::Diagnostics diagnostics;
};
[[nodiscard]] ParsedPlanFile parse_plan_file(std::string_view text, const std::string& origin);

}  // namespace berth::plan
