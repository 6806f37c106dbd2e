// state intents, state drop-intent: what interrupted runs left open in the journal.

#include <algorithm>
#include <iostream>

#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "cli/providers.hpp"
#include "cli/terminal.hpp"
#include "engine/state/store.hpp"
#include "engine/util/json_parse.hpp"
#include "engine/util/printable.hpp"

namespace berth::cli {
namespace {

nlohmann::json detail_of(const state::JournalEntry& e) {
  return util::parse_bounded_json(e.detail).value;  // null when damaged or nested too deep
}

// The detail as one line of JSON, safe for a terminal.
std::string shown_detail(const state::JournalEntry& e) {
  return util::printable(util::json_text(detail_of(e)));
}

}  // namespace

int run_state_intents(const GlobalOptions& /*global*/, const StateCommandOptions& options) {
  std::vector<state::JournalEntry> open;
  const auto opened = open_state(options.state_path, /*only_existing=*/true);
  if (opened.failed) return exit_error;
  if (opened.store) open = opened.store->open_intents();
  if (options.format == OutputFormat::json) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& e : open) {
      out.push_back({{"id", e.seq},
                     {"run", e.run_id},
                     {"action", e.action_id},
                     {"step", e.step},
                     {"since", e.at},
                     {"detail", detail_of(e)}});
    }
    std::cout << util::json_text(out, 2) << '\n';
    return exit_ok;
  }
  if (open.empty()) {
    std::cout << "No open intents in " << util::printable(options.state_path.string()) << ".\n";
    return exit_ok;
  }
  std::cout << open.size() << " open intent" << (open.size() == 1 ? "" : "s") << " in "
            << util::printable(options.state_path.string())
            << " (steps an interrupted run started and never finished):\n";
  for (const auto& e : open) {
    std::cout << "  " << e.seq << "  run " << e.run_id << "  " << util::printable(e.action_id) << "  step "
              << util::printable(e.step) << "  since " << util::printable(e.at) << "\n      " << shown_detail(e)
              << '\n';
  }
  std::cout << "`berth apply` settles them (see `berth plan`); one it cannot settle can be dropped with "
               "`berth state drop-intent ID` once the hosts are put right by hand.\n";
  return exit_ok;
}

int run_state_drop_intent(const GlobalOptions& /*global*/, const StateCommandOptions& options, std::int64_t seq) {
  const auto opened = open_state(options.state_path, /*only_existing=*/true);
  if (opened.failed) return exit_error;
  if (!opened.store) {
    std::cerr << "berth: there is no state file at " << util::printable(options.state_path.string()) << '\n';
    return exit_error;
  }
  auto& store = opened.store;
  const auto open = store->open_intents();
  const auto it = std::find_if(open.begin(), open.end(), [&](const state::JournalEntry& e) { return e.seq == seq; });
  if (it == open.end()) {
    std::cerr << "berth: no open intent with id " << seq << " in " << util::printable(options.state_path.string())
              << "; `berth state intents` lists them\n";
    return exit_error;
  }
  if (const auto holder = store->live_lock_holder()) {
    std::cerr << "berth: another run holds the state file's lock (" << util::printable(holder->command) << ", pid "
              << holder->pid << "); its steps are in flight, not interrupted. Wait for it to finish.\n";
    return exit_error;
  }
  std::cout << "Intent " << it->seq << ": run " << it->run_id << ", " << util::printable(it->action_id) << ", step "
            << util::printable(it->step) << "\n  " << shown_detail(*it) << '\n'
            << "Dropping it makes berth forget that this step may be half-done; berth will plan the containers "
               "it names as it finds them.\n";
  if (!options.auto_approve) {
    if (!stdin_is_tty()) {
      std::cerr << "berth: refusing to drop an intent without confirmation: stdin is not a terminal; pass "
                   "--auto-approve\n";
      return exit_error;
    }
    const auto answer = prompt("Drop it? Only 'yes' is accepted: ");
    if (!answer || *answer != "yes") {
      std::cerr << "berth: nothing dropped\n";
      return exit_error;
    }
  }
  if (!store->drop_intent(seq, "dropped by hand (berth state drop-intent)")) {
    std::cerr << "berth: intent " << seq << " was closed meanwhile\n";
    return exit_error;
  }
  std::cout << "Dropped intent " << seq << ".\n";
  return exit_ok;
}

}  // namespace berth::cli
