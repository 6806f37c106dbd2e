// apply, destroy, force-unlock.

#include <csignal>
#include <cstdlib>
#include <iostream>
#include <sstream>

#include "cli/commands.hpp"
#include "cli/files.hpp"
#include "cli/output.hpp"
#include "cli/providers.hpp"
#include "cli/terminal.hpp"
#include "engine/apply/pipeline.hpp"
#include "engine/plan/plan_file.hpp"
#include "engine/plan/render.hpp"
#include "engine/state/store.hpp"
#include "engine/util/printable.hpp"

namespace berth::cli {
namespace {

std::atomic<bool> interrupted{false};

extern "C" void on_interrupt(int /*signal*/) {
  interrupted.store(true);
}

std::string human_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) {
    bytes /= 1024;
    ++u;
  }
  std::ostringstream out;
  out.precision(bytes < 10 ? 2 : 1);
  out << std::fixed << bytes << ' ' << units[u];
  return out.str();
}

// An exec action's exit code and output, indented under its line.
void command_output(const nlohmann::json& e) {
  if (!e.contains("exit_code")) return;
  std::cout << "    exit code " << e.value("exit_code", -1) << (e.value("output_cut", false) ? " (output cut)" : "")
            << '\n';
  for (const char* stream : {"stdout", "stderr"}) {
    std::istringstream lines(e.value(stream, ""));
    for (std::string line; std::getline(lines, line);) {
      std::cout << "    " << stream << ": " << util::printable(line) << '\n';
    }
  }
}

// Text mode: a line per event; transfer progress at most once a second per action.
apply::EventSink text_events(bool color) {
  auto last_progress = std::make_shared<std::map<std::string, std::chrono::steady_clock::time_point>>();
  const std::string green = color ? "\x1b[32m" : "";
  const std::string red = color ? "\x1b[31m" : "";
  const std::string yellow = color ? "\x1b[33m" : "";
  const std::string reset = color ? "\x1b[0m" : "";
  return [=](const nlohmann::json& e) {
    // Action ids name containers and snapshots; messages and errors may quote a daemon.
    const std::string event = e.value("event", "");
    const std::string id = util::printable(e.value("action", ""));
    if (event == "started") {
      std::cout << "  " << id << ": started\n";
    } else if (event == "progress") {
      const auto now = std::chrono::steady_clock::now();
      auto& last = (*last_progress)[id];
      if (now - last < std::chrono::seconds(1)) return;
      last = now;
      std::cout << "  " << id << ": " << util::printable(e.value("message", ""));
      if (e.contains("bytes")) std::cout << ", " << human_bytes(e["bytes"].get<double>());
      if (e.contains("bytes") && e.contains("total_bytes")) {
        std::cout << " of " << human_bytes(e["total_bytes"].get<double>());
      }
      if (e.contains("bytes_per_second")) {
        const double rate = e["bytes_per_second"].get<double>();
        std::cout << " at " << human_bytes(rate) << "/s";
        if (rate > 0 && e.contains("bytes") && e.contains("total_bytes")) {
          const double left = e["total_bytes"].get<double>() - e["bytes"].get<double>();
          if (left > 0) std::cout << ", about " << static_cast<long long>(left / rate + 0.5) << " s left";
        }
      }
      std::cout << '\n';
    } else if (event == "finished") {
      std::cout << green << "  " << id << ": done" << reset << " (" << std::fixed;
      std::cout.precision(1);
      std::cout << e.value("seconds", 0.0) << "s)\n";
      command_output(e);
    } else if (event == "failed") {
      std::cout << red << "  " << id << ": failed" << reset << ": " << util::printable(e.value("error", "")) << '\n';
      command_output(e);
    } else if (event == "skipped" || event == "refused") {
      std::cout << yellow << "  " << id << ": " << event << reset << ": " << util::printable(e.value("error", ""))
                << '\n';
    } else if (event == "cancelled") {
      std::cout << yellow << util::printable(e.value("message", "")) << reset << '\n';
    }
    std::cout << std::flush;
  };
}

apply::EventSink json_events() {
  return [](const nlohmann::json& e) {
    nlohmann::json line = e;
    line["time"] = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    std::cout << util::json_text(line) << '\n' << std::flush;
  };
}

// The remotes that could not be read: their actions were not planned, so a pipeline must see them.
nlohmann::json unknown_remotes(const plan::Plan& plan) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& [name, r] : plan.remotes) {
    if (r.status != model::RemoteStatus::ok) out.push_back({{"remote", name}, {"error", r.error}});
  }
  return out;
}

bool confirm_on_terminal(const ApplyOptions& options, std::string_view verb) {
  if (options.auto_approve) return true;
  const bool fleet_on_stdin = options.file == config::stdin_path;
  if (fleet_on_stdin || !stdin_is_tty()) {
    // Only apply takes a saved plan; destroy always plans afresh.
    std::cerr << "berth: refusing to " << verb << " without confirmation: "
              << (fleet_on_stdin ? "standard input carries the fleet file (-f -)" : "stdin is not a terminal")
              << "; pass --auto-approve" << (verb == "apply" ? " (or apply a saved plan)" : "") << '\n';
    return false;
  }
  const auto answer = prompt("\nDo you want to " + std::string{verb} + " these changes? Only 'yes' is accepted: ");
  if (answer && *answer == "yes") return true;
  std::cerr << "berth: " << verb << " cancelled\n";
  return false;
}

// Test-only: BERTH_TEST_KILL_AT_STEP=STEP (or STEP@TEXT, TEXT a part of the action id) makes
// berth SIGKILL itself right after the journal intent of that step is written, before the call it
// announces: the integration tests use it to crash at every inner step of a move or a copy.
std::function<void(const std::string&, const std::string&)> kill_hook_from_env() {
  const char* env = std::getenv("BERTH_TEST_KILL_AT_STEP");
  if (env == nullptr || *env == '\0') return {};
  std::string spec = env;
  std::string step = spec;
  std::string within;
  if (const auto at = spec.find('@'); at != std::string::npos) {
    step = spec.substr(0, at);
    within = spec.substr(at + 1);
  }
  return [step, within](const std::string& action_id, const std::string& s) {
    if (s != step || action_id.find(within) == std::string::npos) return;
    std::cout << std::flush;
    std::raise(SIGKILL);
  };
}

void print_summary(const apply::PipelineResult& result, bool json) {
  const auto& plan = result.plan;
  const auto& summary = result.summary;
  auto count = [&](apply::Status s) { return summary.counts.count(s) != 0 ? summary.counts.at(s) : 0; };
  if (json) {
    nlohmann::json line = {
        {"event", "summary"}, {"complete", plan.complete()}, {"unknown_remotes", unknown_remotes(plan)}};
    if (result.outcome == apply::RunOutcome::no_changes) {
      line["changes"] = 0;
    } else {
      line["succeeded"] = count(apply::Status::succeeded);
      line["failed"] = count(apply::Status::failed);
      line["skipped"] = count(apply::Status::skipped);
      line["refused"] = count(apply::Status::refused);
      line["not_started"] = count(apply::Status::pending);
    }
    if (!summary.state_error.empty()) line["state_error"] = summary.state_error;
    std::cout << util::json_text(line) << '\n';
    return;
  }
  if (result.outcome == apply::RunOutcome::applied) {
    std::cout << "\nApply " << (result.success() ? "complete" : "finished with problems") << ": "
              << count(apply::Status::succeeded) << " succeeded, " << count(apply::Status::failed) << " failed, "
              << count(apply::Status::skipped) << " skipped, " << count(apply::Status::refused) << " refused";
    if (count(apply::Status::pending) != 0) std::cout << ", " << count(apply::Status::pending) << " not started";
    std::cout << ".\n";
    for (const auto& [id, o] : summary.outcomes) {
      if (o.status == apply::Status::succeeded) continue;
      std::cout << "  " << apply::to_string(o.status) << ": " << util::printable(id);
      if (!o.error.empty()) std::cout << " — " << util::printable(o.error);
      std::cout << '\n';
    }
    for (const auto& u : unknown_remotes(plan)) {
      std::cout << "  unknown remote: " << util::printable(u["remote"].get<std::string>()) << " — "
                << util::printable(u["error"].get<std::string>()) << '\n';
    }
  }
  if (!plan.complete()) {
    std::cout << "Remotes that could not be read, and containers that could not be planned, were not changed; apply "
                 "again once they can be.\n";
  }
  if (!summary.state_error.empty()) {
    std::cerr << "berth: the state file could not record everything (" << util::printable(summary.state_error)
              << "); check the disk and the file, then plan again\n";
  }
}

int execute(const GlobalOptions& global, const ApplyOptions& options, const model::Fleet& fleet,
            const plan::Plan* saved, apply::Goal goal, std::string_view verb) {
  apply::Selection selection;
  if (saved == nullptr) {
    auto selected = select(fleet, options.targets, options.replace, options.drain,
                           goal == apply::Goal::destroy || options.prune || fleet.prune);
    if (!selected) return exit_error;
    selection = std::move(*selected);
  }
  auto opened = open_state(options.state_path, /*only_existing=*/false);
  if (opened.failed) return exit_error;
  auto& store = opened.store;
  const LxdProviders lxd_providers(global, options.limits);
  const apply::Providers providers = lxd_providers.view();

  apply::PipelineOptions pipeline;
  pipeline.goal = goal;
  pipeline.saved = saved;
  pipeline.consent = plan::ConsentFlags{options.allow_restart, options.allow_move, options.allow_recreate};
  pipeline.prune = options.prune;
  pipeline.selection = std::move(selection);
  pipeline.limits.global = options.parallelism;
  pipeline.read_parallelism = options.read_parallelism;
  for (const auto& [name, remote] : fleet.remotes) pipeline.limits.per_remote[name] = remote.parallelism;
  pipeline.lock_timeout = options.lock_timeout;
  pipeline.command = std::string{verb};
  pipeline.holder = host_lock_holder(verb);
  pipeline.cancel = &interrupted;
  pipeline.redactor = &output_redactor();

  const bool color = use_color(stdout, global.no_color);
  apply::PipelineHooks hooks;
  hooks.planned = [&](const plan::Plan& plan) {
    redact_plan_secrets(plan);
    if (options.format == OutputFormat::text) std::cout << plan::render_text(plan, plan::TextStyle{color});
  };
  hooks.confirm = [&](const plan::Plan& /*plan*/) {
    // A saved plan was reviewed when it was saved.
    if (saved == nullptr && !confirm_on_terminal(options, verb)) return false;
    std::signal(SIGINT, on_interrupt);
    std::signal(SIGTERM, on_interrupt);
    if (options.format == OutputFormat::text) std::cout << '\n';
    return true;
  };
  const bool json = options.format == OutputFormat::json;
  hooks.events = json ? json_events() : text_events(color);
  hooks.notice = [](const std::string& text) { std::cerr << "berth: " << util::printable(text) << '\n'; };
  hooks.on_intent = kill_hook_from_env();

  const auto result = apply::run_pipeline(fleet, *store, providers, pipeline, hooks);
  switch (result.outcome) {
    case apply::RunOutcome::state_error:
      std::cerr << "berth: " << util::printable(result.error) << '\n';
      return exit_error;
    case apply::RunOutcome::locked: {
      const auto& h = *result.holder;
      std::cerr << "berth: the state " << util::printable(store->path().string())
                << " is locked by another run: " << util::printable(h.command) << " (host " << util::printable(h.host)
                << ", pid " << h.pid << ", since " << util::printable(h.since) << ", lock id "
                << util::printable(h.lock_id) << ")\n  wait for it, pass --lock-timeout, or if it is gone: berth "
                << "force-unlock " << util::printable(h.lock_id) << '\n';
      return exit_error;
    }
    case apply::RunOutcome::host_locked:
      if (result.host_holder) {
        std::cerr << "berth: " << util::printable(describe_host_lock(*result.host_holder))
                  << "; nothing was changed\n  wait for it, pass --lock-timeout, or if it is gone: berth "
                  << "force-unlock --hosts -f " << util::printable(fleet.path) << '\n';
      } else {
        std::cerr << "berth: the hosts could not be locked: " << util::printable(result.error)
                  << "; nothing was changed\n";
      }
      return exit_error;
    case apply::RunOutcome::changed:
      std::cerr << "berth: these changed on the hosts while the plan was made (another run, or by hand); nothing "
                   "was changed:\n";
      for (const auto& s : result.stale) std::cerr << "  " << util::printable(s) << '\n';
      std::cerr << "plan again\n";
      return exit_error;
    case apply::RunOutcome::stale:
      std::cerr << "berth: the saved plan " << util::printable(options.plan_file)
                << " is stale: these changed on the hosts since it was made:\n";
      for (const auto& s : result.stale) std::cerr << "  " << util::printable(s) << '\n';
      std::cerr << "make a new plan\n";
      return exit_error;
    case apply::RunOutcome::plan_errors:
      std::cerr << "berth: the plan has errors; nothing was changed\n";
      return exit_error;
    case apply::RunOutcome::declined: return exit_error;
    case apply::RunOutcome::no_changes:
    case apply::RunOutcome::applied: break;
  }
  print_summary(result, json);
  return result.success() ? exit_ok : exit_error;
}

}  // namespace

int run_apply(const GlobalOptions& global, const ApplyOptions& options) {
  if (!options.plan_file.empty() && options.file_given) {
    std::cerr << "berth: -f cannot be given with a saved plan: " << util::printable(options.plan_file)
              << " records the fleet file it was made from, and apply reads that one; leave out -f, or make a "
              << "new plan from this file with `berth plan -f " << util::printable(options.file) << " --out "
              << util::printable(options.plan_file) << "`\n";
    return exit_error;
  }
  if (!options.plan_file.empty()) {
    if (options.allow_restart || options.allow_move || options.allow_recreate || options.prune ||
        !options.targets.empty() || !options.replace.empty() || !options.drain.empty()) {
      std::cerr << "berth: --allow-restart, --allow-move, --allow-recreate, --prune, --target, --replace and --drain "
                   "cannot be "
                   "given with a saved plan: the plan "
                << util::printable(options.plan_file)
                << " already records what it does and consents to; make it again with those flags on `berth plan "
                   "... --out "
                << util::printable(options.plan_file) << "`\n";
      return exit_error;
    }
    auto file = read_plan_file(options.plan_file, options.limits);
    if (!file) return exit_error;
    const auto saved = std::make_shared<plan::Plan>(std::move(file->plan));
    if (saved->fleet_path == config::stdin_path && stdin_is_tty()) {
      std::cerr << "berth: the saved plan " << util::printable(options.plan_file)
                << " was made from a fleet file read on standard input; give the same file on standard input: "
                << "`berth apply " << util::printable(options.plan_file) << " < FILE`\n";
      return exit_error;
    }
    const auto fleet = load_fleet(saved->fleet_path, options.limits, global.config_dir);
    if (!fleet) return exit_error;
    if (fleet->digest != saved->fleet_digest) {
      std::cerr << "berth: the saved plan " << util::printable(options.plan_file)
                << " was made from another version of " << fleet_shown(saved->fleet_path)
                << " (the file changed since); make a new plan\n";
      return exit_error;
    }
    if (const auto problems = plan::restore_secrets(*saved, *fleet); !problems.empty()) {
      std::cerr << "berth: the saved plan " << util::printable(options.plan_file)
                << " does not match the sensitive values the fleet file gives now:\n";
      for (const auto& p : problems) std::cerr << "  " << util::printable(p) << '\n';
      std::cerr << "make a new plan\n";
      return exit_error;
    }
    if (const auto problems = plan::restore_contents(*saved, *fleet); !problems.empty()) {
      std::cerr << "berth: the saved plan " << util::printable(options.plan_file)
                << " does not match the files and commands the fleet file gives now:\n";
      for (const auto& p : problems) std::cerr << "  " << util::printable(p) << '\n';
      std::cerr << "make a new plan\n";
      return exit_error;
    }
    if (!saved->complete()) {
      std::cerr << "berth: the saved plan " << util::printable(options.plan_file)
                << " is incomplete (a remote was unknown, or a container could not be planned, when it was made); "
                   "make a new plan\n";
      return exit_error;
    }
    return execute(global, options, *fleet, saved.get(), apply::Goal::apply, "apply");
  }
  const auto fleet = load_fleet(options.file, options.limits, global.config_dir);
  if (!fleet) return exit_error;
  return execute(global, options, *fleet, nullptr, apply::Goal::apply, "apply");
}

int run_destroy(const GlobalOptions& global, const ApplyOptions& options) {
  const auto fleet = load_fleet(options.file, options.limits);
  if (!fleet) return exit_error;
  return execute(global, options, *fleet, nullptr, apply::Goal::destroy, "destroy");
}

namespace {

// `berth force-unlock --hosts`: the fleet's locks on every remote it names, shown, confirmed, removed.
int force_unlock_hosts(const GlobalOptions& global, const ForceUnlockOptions& options) {
  const auto fleet = load_fleet(options.file, options.limits);
  if (!fleet) return exit_error;
  const LxdProviders lxd_providers(global, options.limits);
  auto& locker = lxd_providers.locker();
  std::vector<providers::HostLockInfo> found;
  bool unreadable = false;
  for (const auto& [name, remote] : fleet->remotes) {
    std::string error;
    auto locks = locker.list(remote, fleet->name, error);
    if (!error.empty()) {
      std::cerr << "berth: " << util::printable(error) << '\n';
      unreadable = true;
    }
    found.insert(found.end(), locks.begin(), locks.end());
  }
  if (found.empty()) {
    std::cout << "No host holds a lock of fleet " << util::printable(fleet->name) << ".\n";
    return unreadable ? exit_error : exit_ok;
  }
  std::cout << "Locks of fleet " << util::printable(fleet->name) << ":\n";
  for (const auto& lock : found) {
    std::cout << "  " << util::printable(describe_host_lock(lock)) << " [profile " << util::printable(lock.object)
              << (lock.taken_over ? ", left by a takeover" : "") << "]\n";
  }
  if (!options.auto_approve) {
    if (!stdin_is_tty()) {
      std::cerr << "berth: refusing to remove host locks without confirmation: stdin is not a terminal; pass "
                   "--auto-approve\n";
      return exit_error;
    }
    const auto answer = prompt(
        "\nRemove them? A run that still holds one would then run beside the next. Only "
        "'yes' is accepted: ");
    if (!answer || *answer != "yes") {
      std::cerr << "berth: force-unlock cancelled\n";
      return exit_error;
    }
  }
  int failures = 0;
  for (const auto& lock : found) {
    const auto remote = fleet->remotes.find(lock.remote);
    if (remote == fleet->remotes.end()) continue;
    if (const auto error = locker.remove(remote->second, lock); !error.empty()) {
      std::cerr << "berth: " << util::printable(error) << '\n';
      ++failures;
      continue;
    }
    std::cout << "Removed " << util::printable(lock.object) << " on " << util::printable(lock.remote) << ".\n";
  }
  return failures == 0 && !unreadable ? exit_ok : exit_error;
}

}  // namespace

int run_force_unlock(const GlobalOptions& global, const ForceUnlockOptions& options) {
  if (options.hosts) {
    if (!options.id.empty()) {
      std::cerr << "berth: force-unlock --hosts takes no lock id: it clears the fleet's locks on its hosts; for the "
                   "state file's lock leave out --hosts\n";
      return exit_error;
    }
    return force_unlock_hosts(global, options);
  }
  if (options.id.empty()) {
    std::cerr << "berth: force-unlock needs the state file's lock id (as the locked error printed it), or --hosts "
                 "for the fleet's locks on its hosts\n";
    return exit_error;
  }
  const auto& id = options.id;
  const auto& state_path = options.state_path;
  try {
    auto store = state::Store::open(state_path);
    if (!store->force_unlock(id)) {
      const auto holder = store->lock_holder();
      std::cerr << "berth: no lock with id " << util::printable(id) << " in " << util::printable(state_path.string());
      if (holder) {
        std::cerr << " (the lock is held as " << util::printable(holder->lock_id) << ")\n";
      } else {
        std::cerr << " (it is not locked)\n";
      }
      return exit_error;
    }
  } catch (const state::StoreError& e) {
    std::cerr << "berth: " << util::printable(e.what()) << '\n';
    return exit_error;
  }
  std::cout << "Lock " << util::printable(id) << " released.\n";
  return exit_ok;
}

}  // namespace berth::cli
