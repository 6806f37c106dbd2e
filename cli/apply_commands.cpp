// apply, destroy, force-unlock.

#include <csignal>
#include <iostream>
#include <sstream>


#include "cli/apply_runner.hpp"
#include "cli/commands.hpp"
#include "cli/files.hpp"
#include "cli/read_live.hpp"
#include "cli/terminal.hpp"
#include "engine/plan/plan_file.hpp"
#include "engine/plan/render.hpp"
#include "engine/state/store.hpp"
#include "providers/lxd/executor.hpp"
#include "providers/lxd/state_reader.hpp"

namespace berth::cli {
namespace {

std::atomic<bool> interrupted{false};

extern "C" void on_interrupt(int /*signal*/) { interrupted.store(true); }

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

// Text mode: a line per event; transfer progress at most once a second per action.
EventSink text_events(bool color) {
  auto last_progress = std::make_shared<std::map<std::string, std::chrono::steady_clock::time_point>>();
  const std::string green = color ? "\x1b[32m" : "";
  const std::string red = color ? "\x1b[31m" : "";
  const std::string yellow = color ? "\x1b[33m" : "";
  const std::string reset = color ? "\x1b[0m" : "";
  return [=](const nlohmann::json& e) {
    const std::string event = e.value("event", "");
    const std::string id = e.value("action", "");
    if (event == "started") {
      std::cout << "  " << id << ": started\n";
    } else if (event == "progress") {
      const auto now = std::chrono::steady_clock::now();
      auto& last = (*last_progress)[id];
      if (now - last < std::chrono::seconds(1)) return;
      last = now;
      std::cout << "  " << id << ": " << e.value("message", "");
      if (e.contains("bytes")) std::cout << ", " << human_bytes(e["bytes"].get<double>());
      if (e.contains("bytes_per_second")) std::cout << " at " << human_bytes(e["bytes_per_second"].get<double>()) << "/s";
      std::cout << '\n';
    } else if (event == "finished") {
      std::cout << green << "  " << id << ": done" << reset << " (" << std::fixed;
      std::cout.precision(1);
      std::cout << e.value("seconds", 0.0) << "s)\n";
    } else if (event == "failed") {
      std::cout << red << "  " << id << ": failed" << reset << ": " << e.value("error", "") << '\n';
    } else if (event == "skipped" || event == "refused") {
      std::cout << yellow << "  " << id << ": " << event << reset << ": " << e.value("error", "") << '\n';
    } else if (event == "cancelled") {
      std::cout << yellow << e.value("message", "") << reset << '\n';
    }
    std::cout << std::flush;
  };
}

EventSink json_events() {
  return [](const nlohmann::json& e) {
    nlohmann::json line = e;
    line["time"] = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    std::cout << line.dump() << '\n' << std::flush;
  };
}

std::map<std::string, std::string> refusals(const plan::Plan& plan, const ApplyOptions& options) {
  std::map<std::string, std::string> refused;
  for (const auto& a : plan.actions) {
    if (a.consented) continue;
    if (a.disruption == plan::Disruption::restart && options.allow_restart) continue;
    if (a.disruption == plan::Disruption::move && options.allow_move) continue;
    refused[a.id] = a.disruption == plan::Disruption::restart
                        ? "needs a restart: pass --allow-restart or set restart: allowed on the container"
                        : "needs a move: pass --allow-move or set move: allowed on the container";
  }
  return refused;
}

// The remotes that could not be read: their actions were not planned, so a pipeline must see them.
nlohmann::json unknown_remotes(const plan::Plan& plan) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& [name, r] : plan.remotes) {
    if (r.status != model::RemoteStatus::ok) out.push_back({{"remote", name}, {"error", r.error}});
  }
  return out;
}

bool confirm_apply(const ApplyOptions& options, std::string_view verb) {
  if (options.auto_approve) return true;
  if (!stdin_is_tty()) {
    std::cerr << "berth: refusing to " << verb << " without confirmation: stdin is not a terminal; "
              << "pass --auto-approve (or apply a saved plan)\n";
    return false;
  }
  const auto answer = prompt("\nDo you want to " + std::string{verb} + " these changes? Only 'yes' is accepted: ");
  if (answer && *answer == "yes") return true;
  std::cerr << "berth: " << verb << " cancelled\n";
  return false;
}

// Settles what a crashed run left open before anything is read for a new plan.
bool recover(state::Store& store, const model::Fleet& fleet, const GlobalOptions& global) {
  const auto open = store.open_intents();
  if (open.empty()) return true;
  std::cerr << "berth: an earlier apply was interrupted with " << open.size()
            << " step(s) unfinished; inspecting the hosts\n";
  auto recoverer = lxd::make_recoverer(lxd::ClientConfig{global.config_dir});
  bool all = true;
  for (const auto& entry : open) {
    providers::RecoveryRequest request;
    request.fleet = &fleet;
    request.action_id = entry.action_id;
    request.step = entry.step;
    request.detail = nlohmann::json::parse(entry.detail, nullptr, false);
    const auto response = recoverer->recover(request);
    std::cerr << "  " << entry.action_id << " (" << entry.step << "): " << response.note << '\n';
    if (response.resolved) {
      store.resolve_intents({entry.seq}, response.note);
    } else {
      all = false;
    }
  }
  return all;
}

// Releases the lock on every way out of an apply (a SIGKILL leaves it: the next apply takes over
// a lock whose process is gone).
class Locked {
 public:
  Locked(state::Store& store, std::string id) : store_(store), id_(std::move(id)) {}
  ~Locked() { store_.release_lock(id_); }
  Locked(const Locked&) = delete;
  Locked& operator=(const Locked&) = delete;

 private:
  state::Store& store_;
  std::string id_;
};

int execute(const GlobalOptions& global, const ApplyOptions& options, const model::Fleet& fleet,
            const std::function<std::optional<plan::Plan>(const model::LiveState&)>& make_plan, bool saved,
            std::string_view verb) {
  std::unique_ptr<state::Store> store;
  try {
    store = state::Store::open(options.state_path);
  } catch (const state::StoreError& e) {
    std::cerr << "berth: " << e.what() << '\n';
    return exit_error;
  }
  const auto lock = store->acquire_lock(std::string{verb} + " " + fleet.path, options.lock_timeout);
  if (!lock.lock_id) {
    const auto& h = *lock.holder;
    std::cerr << "berth: the state " << store->path().string() << " is locked by another run: " << h.command
              << " (host " << h.host << ", pid " << h.pid << ", since " << h.since << ", lock id " << h.lock_id
              << ")\n  wait for it, pass --lock-timeout, or if it is gone: berth force-unlock " << h.lock_id << '\n';
    return exit_error;
  }
  const Locked held{*store, *lock.lock_id};
  if (lock.took_over_stale) std::cerr << "berth: took over the lock of a berth process that no longer runs\n";

  if (!recover(*store, fleet, global)) {
    std::cerr << "berth: could not settle what the interrupted run left; fix the hosts named above and retry\n";
    return exit_error;
  }

  auto reader = lxd::make_state_reader(lxd::ClientConfig{global.config_dir});
  auto read = read_live_state(fleet, *reader);
  auto planned = make_plan(read.live);
  if (!planned) return exit_error;
  plan::Plan& plan = *planned;
  plan.diagnostics.append(read.diagnostics);

  const bool color = use_color(stdout, global.no_color);
  if (!options.json) std::cout << plan::render_text(plan, plan::TextStyle{color});
  if (plan.diagnostics.has_errors()) {
    std::cerr << "berth: the plan has errors; nothing was changed\n";
    return exit_error;
  }
  if (!plan.has_changes()) {
    if (options.json) {
      std::cout << nlohmann::json{{"event", "summary"}, {"changes", 0}, {"complete", plan.complete()},
                                  {"unknown_remotes", unknown_remotes(plan)}}.dump()
                << '\n';
    } else if (!plan.complete()) {
      std::cout << "Remotes that could not be read were not changed; apply again once they answer.\n";
    }
    return plan.complete() ? exit_ok : exit_error;
  }
  if (!saved && !confirm_apply(options, verb)) return exit_error;

  std::signal(SIGINT, on_interrupt);
  std::signal(SIGTERM, on_interrupt);
  const auto run_id = store->begin_run(std::string{verb}, fleet.path, plan::to_json(plan).dump());
  auto executor = lxd::make_executor(lxd::ClientConfig{global.config_dir});

  RunOptions run_options;
  run_options.limits.global = options.parallelism;
  for (const auto& [name, remote] : fleet.remotes) run_options.limits.per_remote[name] = remote.parallelism;
  run_options.refused = refusals(plan, options);
  run_options.cancel = &interrupted;
  if (!options.json) std::cout << '\n';
  const auto summary = run_plan(plan, fleet, *executor, *store, run_id,
                                run_options, options.json ? json_events() : text_events(color));

  auto count = [&](apply::Status s) { return summary.counts.count(s) != 0 ? summary.counts.at(s) : 0; };
  const int ok = count(apply::Status::succeeded);
  const bool success = summary.all_succeeded && plan.complete();
  store->finish_run(run_id, interrupted.load() ? "interrupted" : (success ? "succeeded" : "failed"));

  if (options.json) {
    std::cout << nlohmann::json{{"event", "summary"},
                                {"succeeded", ok},
                                {"failed", count(apply::Status::failed)},
                                {"skipped", count(apply::Status::skipped)},
                                {"refused", count(apply::Status::refused)},
                                {"not_started", count(apply::Status::pending)},
                                {"complete", plan.complete()},
                                {"unknown_remotes", unknown_remotes(plan)}}
                     .dump()
              << '\n';
  } else {
    std::cout << "\nApply " << (success ? "complete" : "finished with problems") << ": " << ok << " succeeded, "
              << count(apply::Status::failed) << " failed, " << count(apply::Status::skipped) << " skipped, "
              << count(apply::Status::refused) << " refused";
    if (count(apply::Status::pending) != 0) std::cout << ", " << count(apply::Status::pending) << " not started";
    std::cout << ".\n";
    for (const auto& [id, o] : summary.outcomes) {
      if (o.status == apply::Status::succeeded) continue;
      std::cout << "  " << apply::to_string(o.status) << ": " << id;
      if (!o.error.empty()) std::cout << " — " << o.error;
      std::cout << '\n';
    }
    for (const auto& u : unknown_remotes(plan)) {
      std::cout << "  unknown remote: " << u["remote"].get<std::string>() << " — " << u["error"].get<std::string>()
                << '\n';
    }
    if (!plan.complete()) std::cout << "Remotes that could not be read were not changed; apply again once they answer.\n";
  }
  return success ? exit_ok : exit_error;
}

}  // namespace

int run_apply(const GlobalOptions& global, const ApplyOptions& options) {
  if (!options.plan_file.empty()) {
    auto file = read_plan_file(options.plan_file);
    if (!file) return exit_error;
    const auto saved = std::make_shared<plan::Plan>(std::move(file->plan));
    const auto fleet = load_fleet(saved->fleet_path);
    if (!fleet) return exit_error;
    if (fleet->digest != saved->fleet_digest) {
      std::cerr << "berth: the saved plan " << options.plan_file << " was made from another version of "
                << saved->fleet_path << " (the file changed since); make a new plan\n";
      return exit_error;
    }
    if (!saved->complete()) {
      std::cerr << "berth: the saved plan " << options.plan_file
                << " is incomplete (a remote was unknown when it was made); make a new plan\n";
      return exit_error;
    }
    return execute(global, options, *fleet,
                   [&](const model::LiveState& live) -> std::optional<plan::Plan> {
                     const auto stale = stale_addresses(*saved, live);
                     if (!stale.empty()) {
                       std::cerr << "berth: the saved plan " << options.plan_file
                                 << " is stale: these changed on the hosts since it was made:\n";
                       for (const auto& s : stale) std::cerr << "  " << s << '\n';
                       std::cerr << "make a new plan\n";
                       return std::nullopt;
                     }
                     return *saved;
                   },
                   /*saved=*/true, "apply");
  }
  const auto fleet = load_fleet(options.file);
  if (!fleet) return exit_error;
  return execute(global, options, *fleet,
                 [&](const model::LiveState& live) -> std::optional<plan::Plan> {
                   return plan::compute_plan(*fleet, live, plan::PlanOptions{options.prune});
                 },
                 /*saved=*/false, "apply");
}

int run_destroy(const GlobalOptions& global, const ApplyOptions& options) {
  const auto fleet = load_fleet(options.file);
  if (!fleet) return exit_error;
  return execute(global, options, *fleet,
                 [&](const model::LiveState& live) -> std::optional<plan::Plan> {
                   return plan::compute_destroy_plan(*fleet, live);
                 },
                 /*saved=*/false, "destroy");
}

int run_force_unlock(const GlobalOptions& /*global*/, const std::filesystem::path& state_path, const std::string& id) {
  try {
    auto store = state::Store::open(state_path);
    if (!store->force_unlock(id)) {
      const auto holder = store->lock_holder();
      std::cerr << "berth: no lock with id " << id << " in " << state_path.string()
                << (holder ? " (the lock is held as " + holder->lock_id + ")" : " (it is not locked)") << '\n';
      return exit_error;
    }
  } catch (const state::StoreError& e) {
    std::cerr << "berth: " << e.what() << '\n';
    return exit_error;
  }
  std::cout << "Lock " << id << " released.\n";
  return exit_ok;
}

}  // namespace berth::cli
