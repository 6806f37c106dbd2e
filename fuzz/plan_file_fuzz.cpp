// Saved plans, read as `berth show PLANFILE` and `berth apply PLANFILE` read them (cli/files.cpp,
// cli/plan_commands.cpp): parse_plan_file, then the text, JSON and markdown renderings and what
// apply checks before it contacts a host. A plan file may be damaged or hostile; whatever the bytes,
// the result is a plan or diagnostics, never a crash, a hang or an exception. A plan that loads also
// survives the trip through its JSON form unchanged, as `to_json`/`plan_from_json` promise
// (render.hpp), and its markdown form keeps every value inside its collapsed block.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "engine/plan/plan_file.hpp"
#include "engine/plan/render.hpp"

namespace {

void fail(const char* what, const std::string& first, const std::string& second) {
  std::fprintf(stderr, "plan_file_fuzz: %s\n--- first:\n%s\n--- second:\n%s\n", what, first.c_str(), second.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace plan = berth::plan;
  const std::string_view text{reinterpret_cast<const char*>(data), size};
  const plan::ParsedPlanFile parsed = plan::parse_plan_file(text, "fuzz.plan");
  static_cast<void>(berth::diag::format(parsed.diagnostics));
  if (!parsed.file) return 0;

  const plan::Plan& loaded = parsed.file->plan;
  const std::string json = plan::to_json(loaded).dump(2);
  const std::string plain = plan::render_text(loaded, plan::TextStyle{false});
  static_cast<void>(plan::render_text(loaded, plan::TextStyle{true}));
  static_cast<void>(plan::summary_line(loaded));
  // Nothing in the plan closes the markdown's collapsed block before its end.
  if (const std::string md = plan::render_markdown(loaded); md.find("\n</details>\n") + 12 != md.size()) {
    fail("the markdown form has a </details> line before its end", plain, md);
  }
  static_cast<void>(loaded.complete());
  static_cast<void>(plan::refusals(loaded));
  static_cast<void>(plan::secret_values(loaded));

  const plan::ParsedPlan again = plan::plan_from_json(plan::to_json(loaded), "fuzz.plan (again)");
  if (!again.plan) fail("the JSON form of a loaded plan does not load", json, berth::diag::format(again.diagnostics));
  if (const std::string json2 = plan::to_json(*again.plan).dump(2); json2 != json) {
    fail("the JSON form changes on a second trip", json, json2);
  }
  if (const std::string plain2 = plan::render_text(*again.plan, plan::TextStyle{false}); plain2 != plain) {
    fail("the text form changes on a trip through JSON", plain, plain2);
  }
  return 0;
}
