// validate, plan, show.

#include <chrono>
#include <ctime>
#include <iostream>

#include "cli/commands.hpp"
#include "cli/files.hpp"
#include "cli/output.hpp"
#include "cli/providers.hpp"
#include "cli/terminal.hpp"
#include "cli/version.hpp"
#include "engine/apply/pipeline.hpp"
#include "engine/plan/plan.hpp"
#include "engine/plan/plan_file.hpp"
#include "engine/plan/render.hpp"
#include "engine/util/printable.hpp"
#include "engine/util/time.hpp"

namespace berth::cli {

int run_validate(const GlobalOptions& /*global*/, const ValidateOptions& options) {
  if (options.format == OutputFormat::json) {
    // Everything on stdout, one object, whatever the outcome; the exit status as without --json.
    const auto loaded = read_fleet(options.file, options.limits);
    if (loaded.fleet) redact_fleet_secrets(*loaded.fleet);
    const nlohmann::json out = {{"valid", loaded.fleet.has_value()},
                                {"file", options.file},
                                {"diagnostics", diag::to_json(loaded.diagnostics)}};
    std::cout << util::json_text(out, 2) << '\n';
    return loaded.fleet ? exit_ok : exit_error;
  }
  const auto fleet = load_fleet(options.file, options.limits);
  if (!fleet) return exit_error;
  const std::string shown =
      options.file == config::stdin_path ? std::string{config::stdin_name} : fleet_shown(options.file);
  std::cout << shown << ": valid (" << fleet->remotes.size() << " remotes, " << fleet->images.size() << " images, "
            << fleet->containers.size() << " containers)\n";
  return exit_ok;
}

int run_plan(const GlobalOptions& global, const PlanCommandOptions& options) {
  const auto fleet = load_fleet(options.file, options.limits, global.config_dir);
  if (!fleet) return exit_error;

  if (options.destroy && (options.prune || options.allow_restart || options.allow_move || options.allow_recreate ||
                          !options.replace.empty() || !options.drain.empty())) {
    std::cerr
        << "berth: --destroy plans the deletion of every container the fleet owns; --prune, --replace, --drain and the "
           "--allow-* flags do not apply to it\n";
    return exit_error;
  }
  const auto selection =
      select(*fleet, options.targets, options.replace, options.drain, options.destroy || options.prune || fleet->prune);
  if (!selection) return exit_error;

  auto opened = open_state(options.state_path, /*only_existing=*/true);
  if (opened.failed) return exit_error;
  const LxdProviders lxd_providers(global, options.limits);
  plan::Plan plan = apply::prepare_plan(
      *fleet, opened.store.get(), lxd_providers.view(), options.destroy ? apply::Goal::destroy : apply::Goal::apply,
      options.prune, plan::ConsentFlags{options.allow_restart, options.allow_move, options.allow_recreate},
      options.read_parallelism, *selection);
  redact_plan_secrets(plan);

  switch (options.format) {
    case OutputFormat::json: std::cout << util::json_text(plan::to_json(plan), 2) << '\n'; break;
    case OutputFormat::markdown: std::cout << plan::render_markdown(plan); break;
    case OutputFormat::text:
      std::cout << plan::render_text(plan, plan::TextStyle{use_color(stdout, global.no_color)});
      break;
  }

  if (!options.out.empty()) {
    const plan::PlanFile file{plan, util::rfc3339_utc_now(), std::string{berth_version}};
    if (auto written = write_file_atomically(options.out, plan::serialize(file), 0600); !written.empty()) {
      std::cerr << "berth: cannot save the plan: " << util::printable(written) << '\n';
      return exit_error;
    }
    // Only the text form says so: JSON and markdown are documents a program or a review takes whole.
    if (options.format == OutputFormat::text)
      std::cout << "Saved the plan to " << util::printable(options.out) << "; apply it with `berth apply "
                << util::printable(options.out) << "`.\n";
  }

  if (plan.diagnostics.has_errors() || !plan.complete()) return exit_error;
  if (options.detailed_exitcode && plan.has_changes()) return exit_changes;
  return exit_ok;
}

int run_show(const GlobalOptions& global, const ShowOptions& options) {
  const auto saved = read_plan_file(options.plan_file, options.limits);
  if (!saved) return exit_error;
  switch (options.format) {
    case OutputFormat::json: std::cout << util::json_text(plan::to_json(saved->plan), 2) << '\n'; break;
    case OutputFormat::markdown: {
      // The renderer escapes the sentence for markdown.
      std::string context = "Saved plan ";
      context += options.plan_file;
      context += ", made ";
      context += saved->created_at;
      context += '.';
      std::cout << plan::render_markdown(saved->plan, plan::MarkdownStyle{context});
      break;
    }
    case OutputFormat::text:
      std::cout << "Saved plan " << util::printable(options.plan_file) << " (made "
                << util::printable(saved->created_at) << " from " << fleet_shown(saved->plan.fleet_path) << ")\n\n"
                << plan::render_text(saved->plan, plan::TextStyle{use_color(stdout, global.no_color)});
      break;
  }
  return exit_ok;
}

}  // namespace berth::cli
