// berth: a declarative reconciler for fleets of LXD-style container hosts.

#include <charconv>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "cli/commands.hpp"
#include "cli/output.hpp"
#include "cli/version.hpp"
#include "engine/state/store.hpp"
#include "engine/util/duration.hpp"
#include "engine/util/limits.hpp"
#include "engine/util/printable.hpp"
#include "providers/lxd/client_config.hpp"

namespace {

// "10%" or "10" -> 0.1; nullopt outside 0..100 %.
std::optional<double> parse_share(const std::string& text) {
  std::string number = text;
  if (!number.empty() && number.back() == '%') number.pop_back();
  if (number.empty() || number.find_first_not_of("0123456789.") != std::string::npos) return std::nullopt;
  double value = 0;
  const auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
  if (ec != std::errc{} || end != number.data() + number.size() || value > 100) return std::nullopt;
  return value / 100;
}

// A size flag's value; CLI11 prints the problem after the flag's name.
const CLI::Validator size_limit{[](std::string& text) { return berth::util::parse_size_limit(text).problem; }, ""};

// --max-file-size and, for commands that read hosts, --max-response-size: the limits of
// engine/util/limits.hpp, into `limits` once the command line is parsed.
class LimitFlags {
 public:
  void add_to(CLI::App* cmd, bool reads_hosts) {
    const berth::util::InputLimits defaults;
    cmd->add_option("--max-file-size", file_,
                    "Largest fleet file or saved plan read, in bytes or with KiB, MiB, GiB (default " +
                        berth::util::format_size(defaults.fleet_file_bytes) + " for a fleet file, " +
                        berth::util::format_size(defaults.plan_file_bytes) + " for a saved plan)")
        ->type_name("SIZE")
        ->check(size_limit);
    if (reads_hosts) {
      cmd->add_option("--max-response-size", response_,
                      "Largest answer read from a host, in bytes or with KiB, MiB, GiB (default " +
                          berth::util::format_size(defaults.response_bytes) + ")")
          ->type_name("SIZE")
          ->check(size_limit);
    }
  }
  // The parser has checked both values already.
  void apply_to(berth::util::InputLimits& limits) const {
    if (!file_.empty()) {
      limits.fleet_file_bytes = limits.plan_file_bytes = *berth::util::parse_size_limit(file_).bytes;
    }
    if (!response_.empty()) limits.response_bytes = *berth::util::parse_size_limit(response_).bytes;
  }

 private:
  std::string file_;
  std::string response_;
};

// --json and --format on one command. --json is --format json, so given together they must agree;
// markdown is printed only by the commands that show a plan for review, and asked of any other, it
// is refused with the list of those that print it.
class FormatFlags {
 public:
  FormatFlags(CLI::App* cmd, std::string command, const std::string& json_help, bool markdown)
      : command_(std::move(command)), markdown_(markdown) {
    if (markdown) markdown_commands().push_back(command_);
    const std::string help = json_help + " (the same as --format json)";
    json_ = cmd->add_flag("--json", help);
    format_ = cmd->add_option("--format", value_,
                              markdown ? "text (default), json, or markdown: the plan for a pull-request comment"
                                       : "text (default) or json (the same as --json)")
                  ->type_name("FORMAT")
                  ->check(format_name);
  }

  // The format asked for; nullopt, said on stderr, when the flags disagree or this command does
  // not print markdown.
  [[nodiscard]] std::optional<berth::cli::OutputFormat> resolve() const {
    using berth::cli::OutputFormat;
    OutputFormat format = json_->count() > 0 ? OutputFormat::json : OutputFormat::text;
    if (format_->count() > 0) {
      const OutputFormat given = value_ == "json"       ? OutputFormat::json
                                 : value_ == "markdown" ? OutputFormat::markdown
                                                        : OutputFormat::text;
      if (json_->count() > 0 && given != OutputFormat::json) {
        std::cerr << "berth " << command_ << ": --json and --format " << value_
                  << " disagree: --json is --format json; give one of them\n";
        return std::nullopt;
      }
      format = given;
    }
    if (format == OutputFormat::markdown && !markdown_) {
      std::cerr << "berth " << command_ << ": --format markdown is not available here; it prints a plan for review, "
                << "and only ";
      const auto& names = markdown_commands();
      for (std::size_t i = 0; i < names.size(); ++i) {
        std::cerr << (i == 0 ? "" : i + 1 == names.size() ? " and " : ", ") << "berth " << names[i];
      }
      std::cerr << " take it; berth " << command_ << " prints text or json\n";
      return std::nullopt;
    }
    return format;
  }

 private:
  static std::vector<std::string>& markdown_commands() {
    static std::vector<std::string> names;
    return names;
  }
  static inline const CLI::Validator format_name{[](std::string& text) {
                                                   if (text == "text" || text == "json" || text == "markdown")
                                                     return std::string{};
                                                   return "'" + berth::util::printable(text) +
                                                          "' is not a format: text, json or markdown";
                                                 },
                                                 ""};

  std::string command_;
  bool markdown_ = false;
  std::string value_;
  CLI::Option* json_ = nullptr;
  CLI::Option* format_ = nullptr;
};

// Log messages quote daemon answers, names and paths: their text is escaped as everything else
// echoed is (engine/util/printable.hpp). The level prefix is the formatter's, outside the message.
class PrintableSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit PrintableSink(std::ostream& out) : out_(out) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    const std::string text = berth::util::printable(std::string_view{msg.payload.data(), msg.payload.size()});
    spdlog::details::log_msg escaped = msg;
    escaped.payload = spdlog::string_view_t{text.data(), text.size()};
    spdlog::memory_buf_t formatted;
    formatter_->format(escaped, formatted);
    out_.write(formatted.data(), static_cast<std::streamsize>(formatted.size()));
    out_.flush();
  }
  void flush_() override { out_.flush(); }

 private:
  std::ostream& out_;
};

// The levels docs/cli.md lists; spdlog would read anything else as "off".
bool known_log_level(const std::string& level) {
  for (const char* known : {"trace", "debug", "info", "warn", "error", "off"}) {
    if (level == known) return true;
  }
  return false;
}

// Logs go to std::cerr, so that they pass through the same scrubbing as every other output.
void setup_logging(const std::string& level) {
  auto sink = std::make_shared<PrintableSink>(std::cerr);
  auto logger = std::make_shared<spdlog::logger>("berth", sink);
  logger->set_pattern("%^%l%$: %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(level));
}

// The base64 lines of a private key given from outside, scrubbed from all output as the fleet's
// secrets are: nothing prints them, and should a message ever quote one, it would not leave the
// process.
void scrub_key_lines(std::string_view key) {
  while (!key.empty()) {
    const auto end = key.find('\n');
    std::string_view line = key.substr(0, end);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.size() >= 16 && line.find("-----") == std::string_view::npos) {
      berth::cli::output_redactor().add(line, "(sensitive)");
    }
    key = end == std::string_view::npos ? std::string_view{} : key.substr(end + 1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  using namespace berth::cli;
  const RedactedOutput redacted;  // everything printed from here on is scrubbed of known secrets
  CLI::App app{"berth: declarative reconciler for fleets of LXD container hosts", "berth"};
  app.set_version_flag("--version", std::string{berth_version});
  app.require_subcommand(1);
  app.fallthrough();

  GlobalOptions global;
  global.config_dir = berth::lxd::default_config_dir();
  std::string config_dir = global.config_dir.string();
  std::string log_level = "warn";
  if (const char* env = std::getenv("BERTH_LOG_LEVEL"); env != nullptr && *env != '\0') log_level = env;
  app.add_option("--config-dir", config_dir,
                 "Client certificate, pinned server certificates and remotes (env BERTH_CONFIG_DIR)")
      ->capture_default_str();
  std::string client_cert_file;
  std::string client_key_file;
  app.add_option("--client-cert", client_cert_file,
                 "Client certificate (PEM file) presented to https remotes, with --client-key (default: env "
                 "BERTH_CLIENT_CERT holding the PEM itself, else client.crt in the config dir)")
      ->type_name("FILE");
  app.add_option("--client-key", client_key_file,
                 "Private key (PEM file) of --client-cert (default: env BERTH_CLIENT_KEY holding the PEM itself, "
                 "else client.key in the config dir)")
      ->type_name("FILE");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off (env BERTH_LOG_LEVEL)")
      ->capture_default_str();
  app.add_flag("--no-color", global.no_color, "Never colour the output (NO_COLOR in the environment does the same)");

  // Each command is parsed alone, so the commands can share one set of limit flags.
  LimitFlags limit_flags;
  ValidateOptions validate;
  auto* validate_cmd = app.add_subcommand("validate", "Check a fleet file without contacting any host");
  validate_cmd->add_option("-f,--file", validate.file, "Fleet file (- reads it from standard input)")
      ->capture_default_str();
  const FormatFlags validate_format(validate_cmd, "validate",
                                    "Print the result and every diagnostic as one JSON object",
                                    /*markdown=*/false);
  limit_flags.add_to(validate_cmd, /*reads_hosts=*/false);

  PlanCommandOptions plan;
  auto* plan_cmd = app.add_subcommand("plan", "Read every host and print what apply would change");
  plan_cmd->add_option("-f,--file", plan.file, "Fleet file (- reads it from standard input)")->capture_default_str();
  const FormatFlags plan_format(plan_cmd, "plan", "Print the plan as JSON (docs/plan-format.md)", /*markdown=*/true);
  plan_cmd->add_option("--out", plan.out, "Save the plan, with what it was computed from, for `berth apply FILE`");
  plan_cmd->add_flag("--detailed-exitcode", plan.detailed_exitcode,
                     "Exit 0 when nothing changes, 2 with changes, 1 on errors");
  plan_cmd->add_flag("--prune", plan.prune, "Delete containers this fleet owns that are no longer declared");
  plan_cmd->add_option("--read-parallelism", plan.read_parallelism, "Remotes read at once")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  plan_cmd->add_flag("--allow-restart", plan.allow_restart,
                     "Consent to restarts that config changes need (recorded in a plan saved with --out)");
  plan_cmd->add_flag("--allow-move", plan.allow_move, "Consent to offline moves (recorded in a plan saved with --out)");
  plan_cmd->add_flag("--allow-recreate", plan.allow_recreate,
                     "Consent to recreating containers from their image (recorded in a plan saved with --out)");
  plan_cmd->add_flag("--destroy", plan.destroy, "Plan the deletion of every container the fleet owns");
  plan_cmd->add_option("--target", plan.targets, "Limit the plan to this container and what it depends on (repeatable)")
      ->type_name("ADDRESS");
  plan_cmd->add_option("--replace", plan.replace, "Recreate this container from its image (repeatable)")
      ->type_name("ADDRESS");
  plan_cmd
      ->add_option("--drain", plan.drain,
                   "Move placed containers off this remote (or REMOTE/MEMBER of a cluster), as drain: true does "
                   "(repeatable)")
      ->type_name("REMOTE");
  std::string state_path = berth::state::default_state_path().string();
  plan_cmd->add_option("--state", state_path, "State file whose interrupted runs the plan settles (env BERTH_STATE)")
      ->capture_default_str();
  limit_flags.add_to(plan_cmd, /*reads_hosts=*/true);

  ShowOptions show;
  auto* show_cmd = app.add_subcommand("show", "Print a saved plan");
  show_cmd->add_option("planfile", show.plan_file, "A file written by `berth plan --out`")->required();
  const FormatFlags show_format(show_cmd, "show", "Print it as JSON", /*markdown=*/true);
  limit_flags.add_to(show_cmd, /*reads_hosts=*/false);

  ApplyOptions apply;
  std::string lock_timeout = "0s";
  std::vector<std::unique_ptr<FormatFlags>> apply_formats;  // apply's, destroy's
  auto add_apply_options = [&](CLI::App* cmd) {
    cmd->add_option("-f,--file", apply.file, "Fleet file (- reads it from standard input)")->capture_default_str();
    cmd->add_flag("--auto-approve", apply.auto_approve, "Do not ask for confirmation");
    cmd->add_option("--parallelism", apply.parallelism, "Actions running at once, over all remotes")
        ->capture_default_str()
        ->check(CLI::Range(1, 256));
    cmd->add_option("--read-parallelism", apply.read_parallelism, "Remotes read at once")
        ->capture_default_str()
        ->check(CLI::Range(1, 1024));
    apply_formats.push_back(
        std::make_unique<FormatFlags>(cmd, cmd->get_name(), "Stream one JSON object per event", /*markdown=*/false));
    cmd->add_option("--state", state_path, "State file: runs, journal, lock (env BERTH_STATE)")->capture_default_str();
    cmd->add_option("--lock-timeout", lock_timeout, "How long to wait for another apply's lock (e.g. 30s, 2m)")
        ->capture_default_str();
    cmd->add_option("--target", apply.targets, "Limit the run to this container and what it depends on (repeatable)")
        ->type_name("ADDRESS");
    limit_flags.add_to(cmd, /*reads_hosts=*/true);
  };
  auto* apply_cmd = app.add_subcommand("apply", "Carry out the plan (computed now, or a saved one)");
  add_apply_options(apply_cmd);
  apply_cmd->add_option("planfile", apply.plan_file, "A plan saved with `berth plan --out`");
  apply_cmd->add_flag("--allow-restart", apply.allow_restart, "Consent to restarts that config changes need");
  apply_cmd->add_flag("--allow-move", apply.allow_move, "Consent to offline moves between remotes");
  apply_cmd->add_flag("--allow-recreate", apply.allow_recreate,
                      "Consent to recreating containers from their image (their data and snapshots are not kept)");
  apply_cmd->add_option("--replace", apply.replace, "Recreate this container from its image (repeatable)")
      ->type_name("ADDRESS");
  apply_cmd
      ->add_option("--drain", apply.drain,
                   "Move placed containers off this remote (or REMOTE/MEMBER of a cluster), as drain: true does "
                   "(repeatable)")
      ->type_name("REMOTE");
  apply_cmd->add_flag("--prune", apply.prune, "Delete containers this fleet owns that are no longer declared");
  auto* destroy_cmd = app.add_subcommand("destroy", "Delete every container the fleet file owns");
  add_apply_options(destroy_cmd);
  ForceUnlockOptions unlock;
  auto* unlock_cmd = app.add_subcommand("force-unlock", "Release a lock left by a run that is gone");
  unlock_cmd->add_option("id", unlock.id, "The state file's lock id, as the locked error printed it");
  unlock_cmd->add_option("--state", state_path, "State file (env BERTH_STATE)")->capture_default_str();
  unlock_cmd->add_flag("--hosts", unlock.hosts, "Clear the fleet's locks on its hosts instead (after confirmation)");
  unlock_cmd->add_option("-f,--file", unlock.file, "Fleet file whose host locks --hosts clears")->capture_default_str();
  unlock_cmd->add_flag("--auto-approve", unlock.auto_approve, "With --hosts: do not ask for confirmation");

  StateCommandOptions state_opts;
  auto* state_cmd = app.add_subcommand("state", "Inspect and repair the state file");
  state_cmd->require_subcommand(1);
  auto* intents_cmd = state_cmd->add_subcommand("intents", "List the steps interrupted runs left open");
  intents_cmd->add_option("--state", state_path, "State file (env BERTH_STATE)")->capture_default_str();
  const FormatFlags intents_format(intents_cmd, "state intents", "Print as JSON", /*markdown=*/false);
  std::int64_t drop_seq = 0;
  auto* drop_cmd =
      state_cmd->add_subcommand("drop-intent", "Forget one open step (after putting the hosts right by hand)");
  drop_cmd->add_option("id", drop_seq, "The intent's id, as `berth state intents` lists it")->required();
  drop_cmd->add_option("--state", state_path, "State file (env BERTH_STATE)")->capture_default_str();
  drop_cmd->add_flag("--auto-approve", state_opts.auto_approve, "Do not ask for confirmation");

  WatchOptions watch;
  std::string watch_interval = "5m";
  std::string watch_jitter = "10%";
  std::string watch_mode = "correct";
  std::string watch_shutdown = "30s";
  auto* watch_cmd = app.add_subcommand("watch", "Correct drift on a schedule, with metrics and a status page");
  watch_cmd->add_option("-f,--file", watch.file, "Fleet file, re-read every run")->capture_default_str();
  watch_cmd->add_option("--interval", watch_interval, "Time between runs (e.g. 30s, 5m, 1h)")->capture_default_str();
  watch_cmd->add_option("--jitter", watch_jitter, "Each interval moved by up to this share either way")
      ->capture_default_str();
  watch_cmd->add_option("--mode", watch_mode, "correct: apply what consent allows; report: change nothing")
      ->capture_default_str()
      ->check(CLI::IsMember({"correct", "report"}));
  watch_cmd->add_option("--listen", watch.listen, "HTTP address for /metrics, /healthz, /status and the status page")
      ->capture_default_str();
  watch_cmd->add_option("--listen-token-file", watch.listen_token_file,
                        "File holding the bearer token POST /suspend, /resume and /reconcile need (required off "
                        "loopback)");
  watch_cmd->add_flag("--allow-restart", watch.allow_restart, "Consent to restarts that config changes need");
  watch_cmd->add_flag("--allow-move", watch.allow_move, "Consent to offline moves between remotes");
  watch_cmd->add_flag("--allow-recreate", watch.allow_recreate, "Consent to recreating containers from their image");
  watch_cmd->add_flag("--allow-empty", watch.allow_empty,
                      "Let a fleet file that declares no container delete what the fleet owns (with prune: true)");
  watch_cmd->add_option("--max-retries", watch.max_retries, "Attempts of a failing action per fleet file revision")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  watch_cmd->add_option("--shutdown-timeout", watch_shutdown, "On SIGTERM, how long running actions may finish")
      ->capture_default_str();
  watch_cmd->add_option("--events", watch.events, "Append one JSON line per drift and per action to FILE (- stdout)");
  watch_cmd->add_option("--keep-runs", watch.keep_runs, "Runs kept in the state file's history")
      ->capture_default_str()
      ->check(CLI::Range(1, 1'000'000));
  watch_cmd->add_option("--state", state_path, "State file: runs, journal, lock (env BERTH_STATE)")
      ->capture_default_str();
  watch_cmd->add_option("--parallelism", watch.parallelism, "Actions running at once, over all remotes")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  watch_cmd->add_option("--read-parallelism", watch.read_parallelism, "Remotes read at once")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  limit_flags.add_to(watch_cmd, /*reads_hosts=*/true);

  HistoryOptions history;
  auto* history_cmd = app.add_subcommand("history", "List recorded runs with their drift and actions");
  history_cmd->add_option("--state", state_path, "State file (env BERTH_STATE)")->capture_default_str();
  const FormatFlags history_format(history_cmd, "history", "Print as JSON", /*markdown=*/false);
  history_cmd->add_option("--limit", history.limit, "How many runs, newest first")
      ->capture_default_str()
      ->check(CLI::Range(1, 1'000'000));

  auto* remote_cmd = app.add_subcommand("remote", "Manage remotes: hosts and the trust berth has with them");
  remote_cmd->require_subcommand(1);
  RemoteAddOptions add;
  auto* add_cmd = remote_cmd->add_subcommand("add", "Pin a host's certificate and get this client trusted by it");
  add_cmd->add_option("name", add.name, "Name of the remote")->required();
  add_cmd->add_option("url", add.url, "https://host[:port] or unix:///path (optional with --token)");
  auto* password_opt = add_cmd->add_option("--password", add.password, "The host's trust password");
  add_cmd->add_option("--token", add.token, "A certificate add token (lxc config trust add)")->excludes(password_opt);
  add_cmd->add_flag("--accept-certificate", add.accept_certificate, "Accept the server certificate without asking");
  auto* list_cmd = remote_cmd->add_subcommand("list", "List remotes");
  const FormatFlags list_format(list_cmd, "remote list", "Print as JSON", /*markdown=*/false);
  std::string remove_name;
  auto* remove_cmd = remote_cmd->add_subcommand("remove", "Forget a remote and its pinned certificate");
  remove_cmd->add_option("name", remove_name, "Name of the remote")->required();
  RemoteImportOptions import_lxc;
  auto* import_cmd = remote_cmd->add_subcommand(
      "import-lxc", "Import the remotes and the client certificate of an lxc configuration (no new trust needed)");
  import_cmd->add_option("--from", import_lxc.from, "lxc's config dir (default $LXD_CONF, else ~/.config/lxc)");
  import_cmd->add_flag("--force", import_lxc.force, "Replace berth remotes of the same name");
  import_cmd->add_flag("--replace-certificate", import_lxc.replace_certificate,
                       "Use lxc's client certificate even though berth has another (kept as client.crt.old)");
  import_cmd->add_flag("--dry-run", import_lxc.dry_run, "Say what would be imported; write nothing");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int status = app.exit(e);
    return status == 0 ? exit_ok : exit_error;
  }
  global.config_dir = config_dir;
  if (!known_log_level(log_level)) {
    std::cerr << "berth: " << (app.count("--log-level") > 0 ? "--log-level" : "BERTH_LOG_LEVEL") << ": '"
              << berth::util::printable(log_level) << "' is not a log level (trace, debug, info, warn, error, off)\n";
    return exit_error;
  }
  setup_logging(log_level);
  apply.file_given = apply_cmd->count("--file") > 0;

  // The client certificate, for the commands that talk to hosts; its source is decided in
  // lxd::select_client_identity, before any other work.
  const auto identify = [&]() -> bool {
    berth::lxd::ClientIdentitySources sources;
    if (app.count("--client-cert") > 0) sources.certificate_file = client_cert_file;
    if (app.count("--client-key") > 0) sources.key_file = client_key_file;
    sources.getenv = [](const char* name) -> const char* { return std::getenv(name); };
    auto selected = berth::lxd::select_client_identity(sources);
    if (!selected) {
      std::cerr << "berth: " << berth::util::printable(selected.error().message) << '\n';
      return false;
    }
    global.client_identity = *selected;
    if (global.client_identity) scrub_key_lines(global.client_identity->certificate->key_pem.view());
    return true;
  };
  const bool talks_to_hosts =
      plan_cmd->parsed() || apply_cmd->parsed() || destroy_cmd->parsed() || watch_cmd->parsed() || add_cmd->parsed();
  if (talks_to_hosts && !identify()) return exit_error;

  auto dispatch = [&]() -> int {
    limit_flags.apply_to(validate.limits);
    limit_flags.apply_to(plan.limits);
    limit_flags.apply_to(show.limits);
    limit_flags.apply_to(apply.limits);
    // --format and --json of the command given, checked before it reads anything.
    const auto format = [](const FormatFlags& flags, OutputFormat& into) {
      const auto resolved = flags.resolve();
      if (resolved) into = *resolved;
      return resolved.has_value();
    };
    if (validate_cmd->parsed())
      return format(validate_format, validate.format) ? run_validate(global, validate) : exit_error;
    if (plan_cmd->parsed()) {
      if (!format(plan_format, plan.format)) return exit_error;
      plan.state_path = state_path;
      return run_plan(global, plan);
    }
    state_opts.state_path = state_path;
    if (intents_cmd->parsed()) {
      return format(intents_format, state_opts.format) ? run_state_intents(global, state_opts) : exit_error;
    }
    if (drop_cmd->parsed()) return run_state_drop_intent(global, state_opts, drop_seq);
    if (show_cmd->parsed()) return format(show_format, show.format) ? run_show(global, show) : exit_error;
    if (apply_cmd->parsed() && !format(*apply_formats.at(0), apply.format)) return exit_error;
    if (destroy_cmd->parsed() && !format(*apply_formats.at(1), apply.format)) return exit_error;
    if (apply_cmd->parsed() || destroy_cmd->parsed() || unlock_cmd->parsed()) {
      apply.state_path = state_path;
      const auto timeout = berth::util::parse_duration(lock_timeout);
      if (!timeout) {
        std::cerr << "berth: --lock-timeout: '" << berth::util::printable(lock_timeout)
                  << "' is not a duration (e.g. 30s, 2m)\n";
        return exit_error;
      }
      apply.lock_timeout = *timeout;
    }
    if (watch_cmd->parsed()) {
      limit_flags.apply_to(watch.limits);
      watch.state_path = state_path;
      watch.report_mode = watch_mode == "report";
      const auto interval = berth::util::parse_duration(watch_interval);
      const auto shutdown = berth::util::parse_duration(watch_shutdown);
      if (!interval || !shutdown) {
        std::cerr << "berth: "
                  << (!interval ? "--interval: '" + berth::util::printable(watch_interval)
                                : "--shutdown-timeout: '" + berth::util::printable(watch_shutdown))
                  << "' is not a duration (e.g. 30s, 5m)\n";
        return exit_error;
      }
      watch.interval = *interval;
      watch.shutdown_timeout = *shutdown;
      const auto jitter = parse_share(watch_jitter);
      if (!jitter) {
        std::cerr << "berth: --jitter: '" << berth::util::printable(watch_jitter)
                  << "' is not a share between 0% and 100% (e.g. 10%)\n";
        return exit_error;
      }
      watch.jitter = *jitter;
      return run_watch(global, watch);
    }
    if (history_cmd->parsed()) {
      if (!format(history_format, history.format)) return exit_error;
      history.state_path = state_path;
      return run_history(global, history);
    }
    if (apply_cmd->parsed()) return run_apply(global, apply);
    if (destroy_cmd->parsed()) return run_destroy(global, apply);
    if (unlock_cmd->parsed()) {
      unlock.state_path = state_path;
      return run_force_unlock(global, unlock);
    }
    if (add_cmd->parsed()) return run_remote_add(global, add);
    if (list_cmd->parsed()) {
      OutputFormat list_as = OutputFormat::text;
      return format(list_format, list_as) ? run_remote_list(global, list_as) : exit_error;
    }
    if (remove_cmd->parsed()) return run_remote_remove(global, remove_name);
    if (import_cmd->parsed()) return run_remote_import_lxc(global, import_lxc);
    return exit_error;
  };
  try {
    return dispatch();
  } catch (const berth::state::StoreError& e) {
    // A damaged or unusable state file (a corrupted page, a full disk): said, never an abort.
    std::cerr
        << "berth: " << berth::util::printable(e.what())
        << "\nThe state file cannot be used. If it is damaged, move it aside (berth starts a new one; the runs and "
           "open intents it held are then forgotten) or restore it from a backup.\n";
    return exit_error;
  } catch (const std::exception& e) {
    std::cerr << "berth: internal error: " << berth::util::printable(e.what()) << "\n";
    return exit_error;
  }
}
