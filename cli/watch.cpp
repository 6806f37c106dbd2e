// watch: scheduled drift correction, in one process. Every run re-reads the fleet file, reads every
// host and plans (level-triggered: nothing is remembered that the hosts can tell, only failures
// for backoff); the policy (engine/watch/policy.hpp) decides what is corrected and what is only
// reported; the apply pipeline does the rest. An HTTP server shows it and takes POSTs.
//
// Threads: the run loop (this thread), the HTTP server's, and one that waits for SIGTERM/SIGINT.
// What they share is in `Shared` (under its mutex) and the thread-safe Metrics.

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <condition_variable>
#include <cstring>
#include <deque>
#include <fstream>
#include <iostream>
#include <mutex>
#include <random>
#include <thread>

#include <spdlog/spdlog.h>

#include "cli/commands.hpp"
#include "cli/files.hpp"
#include "cli/output.hpp"
#include "cli/providers.hpp"
#include "engine/apply/pipeline.hpp"
#include "engine/util/printable.hpp"
#include "engine/util/read_file.hpp"
#include "engine/util/time.hpp"
#include "engine/watch/metrics.hpp"
#include "engine/watch/page.hpp"
#include "engine/watch/policy.hpp"
#include "engine/watch/report.hpp"
#include "engine/watch/schedule.hpp"
#include "http/server.hpp"

extern char** environ;

namespace berth::cli {
namespace {

using Clock = std::chrono::steady_clock;

double epoch_seconds(std::chrono::system_clock::time_point t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

// Runs a program (no shell) and returns what it wrote on stdout, nullopt when it could not run or
// exited non-zero. Output beyond 64 KiB is dropped.
std::optional<std::string> capture(const std::vector<std::string>& argv) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return std::nullopt;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  // The run loop blocks SIGTERM for the signal thread; the child must not inherit that.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  pid_t pid = 0;
  const int spawned = posix_spawnp(&pid, args[0], &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(fds[1]);
  if (spawned != 0) {
    ::close(fds[0]);
    return std::nullopt;
  }
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) != 0;) {
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (out.size() < 65536) out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return std::nullopt;
  return out;
}

// The fleet file's revision: the commit of the git repository holding it (12 hex digits, "-dirty"
// with uncommitted changes), else the digest of its bytes.
std::string fleet_revision(const std::string& file, const std::string& digest) {
  std::error_code ec;
  const auto dir = std::filesystem::absolute(file, ec).parent_path().string();
  if (!ec) {
    if (auto head = capture({"git", "-C", dir, "rev-parse", "--short=12", "HEAD"})) {
      while (!head->empty() && std::isspace(static_cast<unsigned char>(head->back()))) head->pop_back();
      if (!head->empty()) {
        const auto changes = capture({"git", "-C", dir, "status", "--porcelain", "--untracked-files=no"});
        return *head + (changes && !changes->empty() ? "-dirty" : "");
      }
    }
  }
  return digest.empty() ? "unknown" : digest.substr(0, std::min<std::size_t>(digest.size(), 19));  // sha256:+12
}

// --events: one JSON object per line, to a file (appended) or stdout.
class EventLog {
 public:
  bool open(const std::string& spec) {
    if (spec.empty()) return true;
    if (spec == "-") {
      to_stdout_ = true;
      return true;
    }
    const int fd = ::open(spec.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
      std::cerr << "berth: --events: cannot open " << util::printable(spec) << ": " << std::strerror(errno) << '\n';
      return false;
    }
    fd_ = fd;
    return true;
  }
  ~EventLog() {
    if (fd_ >= 0) ::close(fd_);
  }
  void write(nlohmann::json line) {
    if (fd_ < 0 && !to_stdout_) return;
    line["time"] = epoch_seconds(std::chrono::system_clock::now());
    const std::string text = output_redactor().apply(util::json_text(line)) + "\n";
    const std::lock_guard lock(mutex_);
    if (to_stdout_) {
      std::cout << text << std::flush;
      return;
    }
    // One write per line: a reader never sees half a line, and a full disk only loses events.
    if (::write(fd_, text.data(), text.size()) < 0) spdlog::warn("--events: cannot write: {}", std::strerror(errno));
  }

 private:
  std::mutex mutex_;
  int fd_ = -1;
  bool to_stdout_ = false;
};

void declare_metrics(watch::Metrics& m) {
  using watch::MetricType;
  m.declare("berth_runs_total", MetricType::counter, "Watch runs by result (succeeded, failed, invalid, locked).");
  m.declare("berth_run_duration_seconds", MetricType::gauge, "How long the last run took.");
  m.declare("berth_drift_items", MetricType::gauge,
            "Drift the last run found and did not correct, by remote and action kind (drift: ignore is not counted).");
  m.declare("berth_drift_detected_total", MetricType::counter,
            "Drift found, summed over runs, by remote and action kind (drift: ignore is not counted).");
  m.declare("berth_actions_total", MetricType::counter,
            "Actions the watch carried out, by kind and result (succeeded, failed, skipped, refused).");
  m.declare("berth_remote_up", MetricType::gauge, "1 when the remote was read in the last run that read remotes.");
  m.declare("berth_remote_read_seconds", MetricType::gauge, "How long reading the remote took in that run.");
  m.declare("berth_last_success_timestamp_seconds", MetricType::gauge,
            "When the last run that succeeded finished (Unix time); 0: none yet.");
  m.set("berth_last_success_timestamp_seconds", {}, 0);
  for (const char* result : {"succeeded", "failed", "invalid", "locked"}) {
    m.add("berth_runs_total", {{"result", result}}, 0);
  }
}

// What the HTTP thread and the run loop share.
struct Shared {
  std::mutex mutex;
  std::condition_variable wake;
  bool stopping = false;   // SIGTERM/SIGINT
  bool run_now = false;    // POST /reconcile
  bool suspended = false;  // POST /suspend
  nlohmann::json status = nlohmann::json::object();
};

// The token the POST endpoints want off loopback (first line of --listen-token-file).
std::optional<std::string> read_token(const std::string& path) {
  const auto read = util::read_file_bounded(path, 4096);
  if (read.problem != util::ReadProblem::none) {
    std::cerr << "berth: --listen-token-file: cannot read " << util::printable(path)
              << (read.os_error.empty() ? "" : ": " + read.os_error) << '\n';
    return std::nullopt;
  }
  std::string token = read.bytes.substr(0, read.bytes.find('\n'));
  if (!token.empty() && token.back() == '\r') token.pop_back();
  if (token.size() < 16) {
    std::cerr << "berth: --listen-token-file: " << util::printable(path)
              << " must hold a token of at least 16 characters on its first line (e.g. `openssl rand -hex 32`)\n";
    return std::nullopt;
  }
  output_redactor().add(token, "(token)");
  return token;
}

bool same_secret(std::string_view a, std::string_view b) {
  // Constant time in the length of the expected token: no early exit on the first difference.
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < b.size(); ++i) diff |= static_cast<unsigned char>(b[i] ^ (i < a.size() ? a[i] : 0));
  return diff == 0;
}

class Watch {
 public:
  Watch(const GlobalOptions& global, const WatchOptions& options, state::Store& store, EventLog& events)
      : global_(global),
        options_(options),
        store_(store),
        events_(events),
        // A failed action is tried again after 10 s, 20 s, 40 s ... (never later than the next run).
        retries_(options.max_retries, std::min<std::chrono::milliseconds>(options.interval, std::chrono::seconds(10)),
                 options.interval),
        providers_(global, options.limits) {
    declare_metrics(metrics_);
  }

  Shared& shared() { return shared_; }
  watch::Metrics& metrics() { return metrics_; }
  std::atomic<bool>& cancel() { return cancel_; }

  // The loop: a run, then wait for the next (interval with jitter, or sooner for a retry or a
  // POST /reconcile), until SIGTERM.
  void loop() {
    std::mt19937_64 random{std::random_device{}()};
    std::uniform_real_distribution<double> draw(0.0, 1.0);
    while (!stopping()) {
      run_once();
      auto next = Clock::now() + watch::jittered(options_.interval, options_.jitter, draw(random));
      if (const auto retry = retries_.next_retry(); retry && *retry < next) {
        next = std::max(*retry, Clock::now() + std::chrono::seconds(1));
      }
      {
        const std::lock_guard lock(shared_.mutex);
        shared_.status["next_run_at"] =
            util::rfc3339_utc(std::chrono::system_clock::now() +
                              std::chrono::duration_cast<std::chrono::system_clock::duration>(next - Clock::now()));
      }
      std::unique_lock lock(shared_.mutex);
      shared_.wake.wait_until(lock, next, [&] { return shared_.stopping || shared_.run_now; });
      shared_.run_now = false;
    }
  }

 private:
  bool stopping() {
    const std::lock_guard lock(shared_.mutex);
    return shared_.stopping;
  }

  watch::PolicyInput policy_input() {
    watch::PolicyInput input;
    input.mode = options_.report_mode ? watch::Mode::report : watch::Mode::correct;
    {
      const std::lock_guard lock(shared_.mutex);
      input.suspended = shared_.suspended;
    }
    input.allow_empty = options_.allow_empty;
    input.retries = &retries_;
    input.now = Clock::now();
    return input;
  }

  // Records a run that read no host (invalid file, lock held) in the state file.
  std::int64_t record_unread(const std::string& outcome, const nlohmann::json& report) {
    try {
      const auto id = store_.begin_run("watch", options_.file, "{}");
      store_.finish_run(id, outcome);
      store_.set_run_report(id, output_redactor().apply(util::json_text(report)));
      return id;
    } catch (const state::StoreError& e) {
      spdlog::error("the state file could not record the run: {}", e.what());
      return 0;
    }
  }

  void finish(const std::string& result, std::int64_t run_id, Clock::time_point started,
              std::chrono::system_clock::time_point started_wall, nlohmann::json summary) {
    const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
    metrics_.add("berth_runs_total", {{"result", result}});
    metrics_.set("berth_run_duration_seconds", {}, seconds);
    const auto now = std::chrono::system_clock::now();
    if (result == "succeeded") metrics_.set("berth_last_success_timestamp_seconds", {}, epoch_seconds(now));
    summary["id"] = run_id;
    summary["started_at"] = util::rfc3339_utc(started_wall);
    summary["finished_at"] = util::rfc3339_utc(now);
    summary["result"] = result;
    summary["duration_seconds"] = seconds;
    if (!summary.contains("error")) summary["error"] = "";
    events_.write({{"event", "run"}, {"run", run_id}, {"result", result}, {"seconds", seconds}});
    if (options_.keep_runs > 0) {
      try {
        store_.prune_runs(options_.keep_runs);
      } catch (const state::StoreError& e) {
        spdlog::warn("could not trim the run history: {}", e.what());
      }
    }
    const std::lock_guard lock(shared_.mutex);
    auto& status = shared_.status;
    status["last_run"] = summary;
    status["run_count"] = ++run_count_;
    status["last_error"] = summary["error"].get<std::string>().empty() ? nlohmann::json() : summary["error"];
    runs_.push_front(std::move(summary));
    if (runs_.size() > 20) runs_.pop_back();
    status["runs"] = nlohmann::json(std::vector<nlohmann::json>(runs_.begin(), runs_.end()));
  }

  void run_once() {
    const auto started = Clock::now();
    const auto started_wall = std::chrono::system_clock::now();
    auto loaded = read_fleet(options_.file, options_.limits);
    const std::string revision = fleet_revision(options_.file, loaded.fleet ? loaded.fleet->digest : "");
    {
      const std::lock_guard lock(shared_.mutex);
      shared_.status["mode"] = options_.report_mode ? "report" : "correct";
      shared_.status["suspended"] = shared_.suspended;
      shared_.status["fleet"]["path"] = options_.file;
      shared_.status["fleet"]["revision"] = revision;
    }

    if (!loaded.fleet) {
      // Nothing is corrected from a file that does not load: the last status stays, with the error.
      const std::string error = options_.file + " is not valid: " + diag::format(loaded.diagnostics);
      if (error != last_invalid_) spdlog::error("{}", error);
      last_invalid_ = error;
      const auto id = record_unread("invalid", {{"revision", revision}, {"error", error}});
      events_.write({{"event", "invalid_fleet"}, {"run", id}, {"error", error}});
      {
        const std::lock_guard lock(shared_.mutex);
        shared_.status["fleet"]["error"] = error;
      }
      finish("invalid", id, started, started_wall, {{"error", error}, {"drift", 0}, {"corrected", 0}, {"failed", 0}});
      return;
    }
    last_invalid_.clear();
    model::Fleet& fleet = *loaded.fleet;
    redact_fleet_secrets(fleet);
    attach_digest_key(fleet, global_.config_dir);
    retries_.revision(revision + " " + fleet.digest);
    {
      const std::lock_guard lock(shared_.mutex);
      shared_.status["fleet"]["error"] = nullptr;
      shared_.status["fleet"]["name"] = fleet.name;
      shared_.status["suspended_by"] = shared_.suspended ? nlohmann::json("api")
                                       : fleet.suspend   ? nlohmann::json("file")
                                                         : nlohmann::json();
      shared_.status["suspended"] = shared_.suspended || fleet.suspend;
    }

    apply::PipelineOptions pipeline;
    pipeline.goal = apply::Goal::apply;
    pipeline.consent = plan::ConsentFlags{options_.allow_restart, options_.allow_move, options_.allow_recreate};
    pipeline.prune = false;  // the file's prune: is read by the plan
    pipeline.limits.global = options_.parallelism;
    pipeline.read_parallelism = options_.read_parallelism;
    for (const auto& [name, remote] : fleet.remotes) pipeline.limits.per_remote[name] = remote.parallelism;
    pipeline.command = "watch";
    pipeline.holder = host_lock_holder("watch");
    pipeline.cancel = &cancel_;
    pipeline.abort = &never_;  // SIGTERM: running actions finish (main() exits at --shutdown-timeout)
    pipeline.redactor = &output_redactor();
    pipeline.record_every_run = true;

    const watch::PolicyInput input = policy_input();
    plan::Plan full;
    std::vector<watch::Decision> decisions;
    std::map<std::string, std::string> kinds;  // action id -> kind, for berth_actions_total
    apply::PipelineHooks hooks;
    hooks.planned = [&](const plan::Plan& plan) {
      redact_plan_secrets(plan);
      full = plan;
      decisions = watch::decide(plan, fleet, input);
      for (const auto& a : plan.actions) kinds[a.id] = std::string{plan::to_string(a.kind)};
      for (auto& d : watch::drift_json(plan, decisions)) {
        d["event"] = "drift";
        events_.write(std::move(d));
      }
    };
    hooks.filter = [&](plan::Plan& plan) { watch::keep_runnable(plan, decisions); };
    hooks.events = [&](const nlohmann::json& e) {
      const std::string event = e.value("event", "");
      if (event == "progress") return;
      if (event == "finished" || event == "failed" || event == "skipped" || event == "refused") {
        const std::string id = e.value("action", "");
        const std::string result = event == "finished" ? "succeeded" : event;
        metrics_.add("berth_actions_total",
                     {{"kind", kinds.count(id) != 0 ? kinds[id] : "unknown"}, {"result", result}});
      }
      events_.write(e);
    };
    hooks.notice = [](const std::string& text) { spdlog::info("{}", text); };

    const auto result = apply::run_pipeline(fleet, store_, providers_.view(), pipeline, hooks);
    if (result.outcome == apply::RunOutcome::locked || result.outcome == apply::RunOutcome::state_error) {
      const std::string error = result.outcome == apply::RunOutcome::locked
                                    ? "the state file is locked by another run (" + result.holder->command + ", pid " +
                                          std::to_string(result.holder->pid) + " on " + result.holder->host +
                                          "); trying again next run"
                                    : "the state file cannot be used: " + result.error;
      spdlog::warn("{}", error);
      const std::string outcome = result.outcome == apply::RunOutcome::locked ? "locked" : "failed";
      const auto id = record_unread(outcome, {{"revision", revision}, {"error", error}});
      finish(outcome, id, started, started_wall, {{"error", error}, {"drift", 0}, {"corrected", 0}, {"failed", 0}});
      return;
    }

    // Backoff: what failed waits; what succeeded or is no longer planned is forgotten.
    std::set<std::string> planned;
    for (const auto& a : full.actions) planned.insert(a.id);
    retries_.keep_only(planned);
    int corrected = 0;
    int failed = 0;
    std::set<std::string> succeeded;
    for (const auto& [id, o] : result.summary.outcomes) {
      if (o.status == apply::Status::succeeded) {
        retries_.succeeded(id);
        succeeded.insert(id);
        ++corrected;
      } else if (o.status == apply::Status::failed) {
        retries_.failed(id, o.error, Clock::now());
        ++failed;
      }
    }

    // What it found, for the metrics, the history and /status.
    const auto drift = watch::drift_json(full, decisions);
    metrics_.clear("berth_drift_items");
    for (const auto& [key, n] : watch::reported_drift(full, decisions, succeeded)) {
      metrics_.set("berth_drift_items", {{"remote", key.first}, {"kind", key.second}}, n);
    }
    for (const auto& [key, n] : watch::reported_drift(full, decisions)) {
      metrics_.add("berth_drift_detected_total", {{"remote", key.first}, {"kind", key.second}}, n);
    }
    for (const auto& [name, r] : result.live.remotes) {
      metrics_.set("berth_remote_up", {{"remote", name}}, r.status == model::RemoteStatus::ok ? 1 : 0);
      const auto secs = result.read_seconds.find(name);
      metrics_.set("berth_remote_read_seconds", {{"remote", name}},
                   secs == result.read_seconds.end() ? 0.0 : secs->second);
    }
    std::string error;
    auto add_error = [&](const std::string& text) { error += (error.empty() ? "" : "; ") + text; };
    for (const auto& [name, r] : full.remotes) {
      if (r.status != model::RemoteStatus::ok) add_error(r.error);
    }
    for (const auto& [address, why] : full.not_planned) add_error(address + ": " + why);
    for (const auto& d : full.diagnostics.items()) {
      if (d.severity == diag::Severity::error) add_error(diag::format(d));
    }
    if (failed > 0) add_error(std::to_string(failed) + " actions failed");
    if (result.outcome == apply::RunOutcome::host_locked) {
      add_error((result.host_holder ? describe_host_lock(*result.host_holder)
                                    : "the hosts could not be locked: " + result.error) +
                "; nothing was corrected, trying again next run");
    }
    if (result.outcome == apply::RunOutcome::changed) {
      std::string what;
      for (const auto& s : result.stale) what += (what.empty() ? "" : ", ") + s;
      add_error("the hosts changed while the run planned (" + what + "); nothing was corrected, trying again next run");
    }
    if (!result.summary.state_error.empty()) add_error(result.summary.state_error);

    const nlohmann::json report = {{"mode", options_.report_mode ? "report" : "correct"},
                                   {"revision", revision},
                                   {"drift", drift},
                                   {"error", error}};
    if (result.run_id != 0) {
      try {
        store_.set_run_report(result.run_id, output_redactor().apply(util::json_text(report)));
      } catch (const state::StoreError& e) {
        spdlog::error("the state file could not record the run: {}", e.what());
      }
    }
    {
      const std::lock_guard lock(shared_.mutex);
      shared_.status["containers"] = watch::containers_json(fleet, result.live, full, input, succeeded);
      shared_.status["remotes"] = watch::remotes_json(fleet, result.live, result.read_seconds);
    }
    const bool ok = result.success() && result.outcome != apply::RunOutcome::plan_errors;
    const char* outcome = ok ? "succeeded" : result.outcome == apply::RunOutcome::host_locked ? "locked" : "failed";
    finish(outcome, result.run_id, started, started_wall,
           {{"drift", drift.size()}, {"corrected", corrected}, {"failed", failed}, {"error", error}});
  }

  const GlobalOptions& global_;
  const WatchOptions& options_;
  state::Store& store_;
  EventLog& events_;
  watch::RetryBook retries_;
  LxdProviders providers_;
  watch::Metrics metrics_;
  Shared shared_;
  std::atomic<bool> cancel_{false};
  const std::atomic<bool> never_{false};
  std::deque<nlohmann::json> runs_;
  std::int64_t run_count_ = 0;  // runs since start
  std::string last_invalid_;
};

http::Response json_response(int status, const nlohmann::json& body) {
  http::Response r;
  r.status = status;
  r.content_type = "application/json";
  r.body = output_redactor().apply(util::json_text(body, 2)) + "\n";
  return r;
}

// The routes: GET for everyone who can reach the address; POST, off loopback, with the token.
http::Handler routes(Watch& w, const std::optional<std::string>& token) {
  return [&w, token](const http::Request& request) -> http::Response {
    const std::string path = request.target.substr(0, request.target.find('?'));
    const bool get = request.method == "GET" || request.method == "HEAD";
    if (get && path == "/metrics") {
      http::Response r;
      r.content_type = "text/plain; version=0.0.4; charset=utf-8";
      r.body = w.metrics().render();
      return r;
    }
    if (get && path == "/healthz") {
      http::Response ok;
      ok.body = "ok\n";
      return ok;
    }
    if (get && (path == "/status" || path == "/")) {
      nlohmann::json status;
      {
        const std::lock_guard lock(w.shared().mutex);
        status = w.shared().status;
      }
      if (path == "/status") return json_response(200, status);
      http::Response r;
      r.content_type = "text/html; charset=utf-8";
      r.body = output_redactor().apply(watch::render_status_page(status));
      return r;
    }
    if (path == "/suspend" || path == "/resume" || path == "/reconcile") {
      if (request.method != "POST") {
        auto r = json_response(405, {{"error", "use POST"}});
        r.headers.emplace_back("Allow", "POST");
        return r;
      }
      if (token && !same_secret(request.authorization, "Bearer " + *token)) {
        auto r =
            json_response(401, {{"error", "this address needs Authorization: Bearer TOKEN (--listen-token-file)"}});
        r.headers.emplace_back("WWW-Authenticate", "Bearer");
        return r;
      }
      auto& shared = w.shared();
      const std::lock_guard lock(shared.mutex);
      if (path == "/reconcile") {
        shared.run_now = true;
        shared.wake.notify_all();
        spdlog::info("run requested by {}", request.peer);
        return json_response(202, {{"reconcile", "started"}});
      }
      shared.suspended = path == "/suspend";
      shared.status["suspended"] = shared.suspended;
      spdlog::info("{} by {}", shared.suspended ? "suspended" : "resumed", request.peer);
      return json_response(200, {{"suspended", shared.suspended}});
    }
    if (path == "/metrics" || path == "/healthz" || path == "/status" || path == "/") {
      auto r = json_response(405, {{"error", "use GET"}});
      r.headers.emplace_back("Allow", "GET, HEAD");
      return r;
    }
    return json_response(404, {{"error", "no such page: " + util::printable(path)}});
  };
}

}  // namespace

int run_watch(const GlobalOptions& global, const WatchOptions& options) {
  if (options.file == config::stdin_path) {
    std::cerr << "berth: watch re-reads the fleet file every run: give a file with -f, not standard input\n";
    return exit_error;
  }
  if (options.interval < std::chrono::seconds(1)) {
    std::cerr << "berth: --interval must be at least 1s\n";
    return exit_error;
  }
  const auto listen = http::parse_listen_address(options.listen);
  if (const auto* problem = std::get_if<std::string>(&listen)) {
    std::cerr << "berth: --listen: " << util::printable(*problem) << '\n';
    return exit_error;
  }
  const auto& [host, port] = std::get<std::pair<std::string, std::uint16_t>>(listen);
  std::optional<std::string> token;
  if (!options.listen_token_file.empty()) {
    token = read_token(options.listen_token_file);
    if (!token) return exit_error;
  } else if (!http::is_loopback(host)) {
    std::cerr << "berth: --listen " << util::printable(options.listen)
              << " is not a loopback address: anyone who reaches it could suspend or trigger runs; give "
                 "--listen-token-file FILE (POST then needs Authorization: Bearer TOKEN), or listen on 127.0.0.1\n";
    return exit_error;
  }
  EventLog events;
  if (!events.open(options.events)) return exit_error;
  auto opened = open_state(options.state_path, /*only_existing=*/false);
  if (opened.failed) return exit_error;

  // SIGTERM and SIGINT are taken by one thread (sigwait), blocked everywhere else: every thread
  // started from here inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  Watch w(global, options, *opened.store, events);
  auto server = http::Server::listen(host, port, routes(w, token));
  if (const auto* problem = std::get_if<std::string>(&server)) {
    std::cerr << "berth: --listen " << util::printable(options.listen) << ": " << util::printable(*problem) << '\n';
    return exit_error;
  }
  auto& http_server = *std::get<std::unique_ptr<http::Server>>(server);
  http_server.start();
  spdlog::info("watching {} every {}s; serving http://{}:{}/", options.file,
               std::chrono::duration<double>(options.interval).count(), host, http_server.port());
  std::cerr << "berth: watching " << util::printable(options.file) << "; status on http://"
            << (host.find(':') != std::string::npos ? "[" + host + "]" : host) << ':' << http_server.port() << "/\n";

  std::mutex done_mutex;
  std::condition_variable done_cv;
  bool done = false;
  std::thread signal_thread([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    {
      const std::lock_guard lock(done_mutex);
      if (done) return;
    }
    std::cerr << "berth: " << (sig == SIGTERM ? "SIGTERM" : "SIGINT") << ": no new actions; waiting up to "
              << std::chrono::duration<double>(options.shutdown_timeout).count() << "s for running ones\n";
    w.cancel().store(true);
    {
      const std::lock_guard lock(w.shared().mutex);
      w.shared().stopping = true;
      w.shared().wake.notify_all();
    }
    std::unique_lock lock(done_mutex);
    if (!done_cv.wait_for(lock, options.shutdown_timeout, [&] { return done; })) {
      // The journal holds what the cut-off actions did: the next run settles them.
      std::cerr << "berth: actions still running after --shutdown-timeout; exiting (the next run settles them)\n";
      std::_Exit(exit_ok);
    }
  });

  w.loop();
  {
    const std::lock_guard lock(done_mutex);
    done = true;
  }
  done_cv.notify_all();
  http_server.stop();
  if (signal_thread.joinable()) {
    // The signal thread waits in sigwait only if no signal came (the loop cannot end otherwise).
    signal_thread.join();
  }
  std::cerr << "berth: watch stopped\n";
  return exit_ok;
}

}  // namespace berth::cli
