#include "engine/plan/plan_file.hpp"

#include "engine/plan/render.hpp"
#include "engine/util/json_parse.hpp"
#include "engine/util/printable.hpp"

namespace berth::plan {

std::string serialize(const PlanFile& file) {
  // Sensitive values are never written: the JSON form masks them, and the saved plan keeps a
  // salted digest of each so that applying it can check the environment still gives the same.
  Plan plan = file.plan;
  fill_secret_digests(plan);
  const nlohmann::json j = {{"format", plan_file_format},
                            {"format_version", plan_file_format_version},
                            {"created_at", file.created_at},
                            {"berth_version", file.berth_version},
                            {"plan", to_json(plan)}};
  return util::json_text(j, 2) + "\n";
}

ParsedPlanFile parse_plan_file(std::string_view text, const std::string& origin) {
  ParsedPlanFile result;
  const util::BoundedJson parsed_json = util::parse_bounded_json(text);
  if (parsed_json.problem == util::JsonProblem::too_deep) {
    result.diagnostics.error("saved plan is nested more than " + std::to_string(util::max_json_depth) + " levels deep",
                             origin, std::nullopt, "berth never writes such a file; make the plan again");
    return result;
  }
  const nlohmann::json& j = parsed_json.value;
  // Every member is checked for its type before it is read: a damaged file is an error, never a throw.
  auto text_of = [&](const char* key) {
    const auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string{};
  };
  if (!j.is_object() || text_of("format") != plan_file_format) {
    result.diagnostics.error("not a saved berth plan", origin, std::nullopt, "write one with `berth plan --out FILE`");
    return result;
  }
  const auto version = j.find("format_version");
  if (version == j.end() || !version->is_number_integer() || version->get<std::int64_t>() != plan_file_format_version) {
    result.diagnostics.error("saved plan has format_version " +
                                 (version == j.end() ? std::string{"(none)"} : version->dump()) +
                                 ", this berth reads " + std::to_string(plan_file_format_version),
                             origin, std::nullopt, "make the plan again with this version of berth");
    return result;
  }
  auto parsed = plan_from_json(j.contains("plan") ? j["plan"] : nlohmann::json(), origin);
  result.diagnostics.append(parsed.diagnostics);
  if (!parsed.plan) return result;
  result.file = PlanFile{std::move(*parsed.plan), text_of("created_at"), text_of("berth_version")};
  return result;
}

}  // namespace berth::plan
