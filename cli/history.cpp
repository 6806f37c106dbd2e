// history: the runs the state file recorded (apply, destroy, watch), newest first.

#include <iomanip>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "cli/providers.hpp"
#include "engine/state/store.hpp"
#include "engine/util/json_parse.hpp"
#include "engine/util/printable.hpp"

namespace berth::cli {
namespace {

// A run as `history --json` prints it. The report is what watch recorded; a damaged one reads as
// an empty object (never a crash).
nlohmann::json run_json(const state::RunRecord& r, const std::vector<state::ActionRecord>& actions) {
  nlohmann::json report = util::parse_bounded_json(r.report).value;
  if (!report.is_object()) report = nlohmann::json::object();
  nlohmann::json acts = nlohmann::json::array();
  for (const auto& a : actions) {
    acts.push_back({{"action", a.action_id}, {"status", a.status}, {"error", a.error}, {"seconds", a.seconds}});
  }
  auto text = [&](const char* key) {
    const auto it = report.find(key);
    return it != report.end() && it->is_string() ? it->get<std::string>() : std::string{};
  };
  nlohmann::json drift =
      report.contains("drift") && report["drift"].is_array() ? report["drift"] : nlohmann::json::array();
  return {{"id", r.id},
          {"started_at", r.started_at},
          {"finished_at", r.finished_at},
          {"command", r.command},
          {"fleet_path", r.fleet_path},
          {"result", r.outcome},
          {"mode", text("mode")},
          {"revision", text("revision")},
          {"error", text("error")},
          {"drift", std::move(drift)},
          {"actions", std::move(acts)}};
}

std::string field(const nlohmann::json& j, const char* key) {
  const auto it = j.find(key);
  return it != j.end() && it->is_string() ? util::printable(it->get<std::string>()) : std::string{};
}

}  // namespace

int run_history(const GlobalOptions& /*global*/, const HistoryOptions& options) {
  const auto opened = open_state(options.state_path, /*only_existing=*/true);
  if (opened.failed) return exit_error;
  nlohmann::json runs = nlohmann::json::array();
  if (opened.store) {
    for (const auto& r : opened.store->runs(options.limit))
      runs.push_back(run_json(r, opened.store->run_actions(r.id)));
  }
  if (options.format == OutputFormat::json) {
    std::cout << util::json_text(runs, 2) << '\n';
    return exit_ok;
  }
  if (runs.empty()) {
    std::cout << "No runs recorded in " << util::printable(options.state_path.string()) << ".\n";
    return exit_ok;
  }
  std::cout << std::left << std::setw(7) << "RUN" << std::setw(22) << "STARTED" << std::setw(9) << "COMMAND"
            << std::setw(11) << "RESULT" << std::setw(7) << "DRIFT"
            << "ACTIONS\n";
  for (const auto& r : runs) {
    std::map<std::string, int> by_status;
    for (const auto& a : r["actions"]) ++by_status[a["status"].get<std::string>()];
    std::string actions;
    for (const auto& [status, n] : by_status) {
      actions += (actions.empty() ? "" : ", ") + std::to_string(n) + " " + util::printable(status);
    }
    std::cout << std::left << std::setw(7) << r["id"].get<std::int64_t>() << std::setw(22) << field(r, "started_at")
              << std::setw(9) << field(r, "command") << std::setw(11) << field(r, "result") << std::setw(7)
              << r["drift"].size() << (actions.empty() ? "-" : actions) << '\n';
    if (!field(r, "revision").empty()) std::cout << "       revision " << field(r, "revision") << '\n';
    for (const auto& d : r["drift"]) {
      if (!d.is_object()) continue;
      std::string changes;
      if (d.contains("changes") && d["changes"].is_array()) {
        for (const auto& c : d["changes"]) {
          if (c.is_string()) changes += (changes.empty() ? "" : ", ") + util::printable(c.get<std::string>());
        }
      }
      const bool corrected = d.value("corrected", false);
      std::cout << "       drift: " << field(d, "action") << (changes.empty() ? "" : " (" + changes + ")") << " — "
                << (corrected ? std::string{"corrected"} : "reported: " + field(d, "why")) << '\n';
    }
    for (const auto& a : r["actions"]) {
      if (a["status"] == "succeeded") continue;
      std::cout << "       " << field(a, "status") << ": " << field(a, "action")
                << (field(a, "error").empty() ? "" : " — " + field(a, "error")) << '\n';
    }
    if (!field(r, "error").empty()) std::cout << "       error: " << field(r, "error") << '\n';
  }
  return exit_ok;
}

}  // namespace berth::cli
