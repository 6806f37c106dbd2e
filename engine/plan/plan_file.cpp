#include "engine/plan/plan_file.hpp"

#include "engine/plan/render.hpp"

namespace berth::plan {

std::string serialize(const PlanFile& file) {
  const nlohmann::json j = {{"format", plan_file_format},
                            {"format_version", plan_file_format_version},
                            {"created_at", file.created_at},
                            {"berth_version", file.berth_version},
                            {"plan", to_json(file.plan)}};
  return j.dump(2) + "\n";
}

ParsedPlanFile parse_plan_file(std::string_view text, const std::string& origin) {
  ParsedPlanFile result;
  const auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || j.value("format", "") != plan_file_format) {
    result.diagnostics.error("not a saved berth plan", origin, std::nullopt,
                             "write one with `berth plan --out FILE`");
    return result;
  }
  if (j.value("format_version", 0) != plan_file_format_version) {
    result.diagnostics.error("saved plan has format_version " + j.value("format_version", nlohmann::json()).dump() +
                                 ", this berth reads " + std::to_string(plan_file_format_version),
                             origin, std::nullopt, "make the plan again with this version of berth");
    return result;
  }
  auto parsed = plan_from_json(j.contains("plan") ? j["plan"] : nlohmann::json(), origin);
  result.diagnostics.append(parsed.diagnostics);
  if (!parsed.plan) return result;
  result.file = PlanFile{std::move(*parsed.plan), j.value("created_at", ""), j.value("berth_version", "")};
  return result;
}

}  // namespace berth::plan
