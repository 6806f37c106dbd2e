#pragma once
// One function per CLI verb. Each returns the process exit status.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/util/limits.hpp"

namespace berth::lxd {
struct ClientIdentity;
}

namespace berth::cli {

// What a command prints: --format text|json|markdown; --json is --format json.
enum class OutputFormat { text, json, markdown };

struct GlobalOptions {
  std::filesystem::path config_dir;  // client certificate, pinned server certificates, remotes
  // From --client-cert/--client-key or BERTH_CLIENT_CERT/BERTH_CLIENT_KEY (lxd::select_client_identity),
  // for the commands that talk to hosts; null: the config dir's client.crt/client.key.
  std::shared_ptr<const lxd::ClientIdentity> client_identity;
  bool no_color = false;
};

struct ValidateOptions {
  std::string file = "berth.yaml";           // "-": standard input
  OutputFormat format = OutputFormat::text;  // json: diagnostics as one JSON object on stdout
  util::InputLimits limits;                  // --max-file-size
};

struct PlanCommandOptions {
  std::string file = "berth.yaml";  // "-": standard input
  OutputFormat format = OutputFormat::text;
  std::string out;  // save the plan here
  bool detailed_exitcode = false;
  bool prune = false;
  bool allow_restart = false;  // recorded in the plan (and in a saved plan)
  bool allow_move = false;
  bool allow_recreate = false;
  bool destroy = false;              // the plan of `berth destroy`
  std::vector<std::string> targets;  // --target
  std::vector<std::string> replace;  // --replace
  std::vector<std::string> drain;    // --drain
  std::filesystem::path state_path;  // open journal intents to settle (read, never created)
  int read_parallelism = 32;         // remotes read at once
  util::InputLimits limits;          // --max-file-size, --max-response-size
};

struct ShowOptions {
  std::string plan_file;
  OutputFormat format = OutputFormat::text;
  util::InputLimits limits;  // --max-file-size
};

struct RemoteAddOptions {
  std::string name;
  std::string url;  // may be empty with --token: the token carries addresses
  std::optional<std::string> password;
  std::optional<std::string> token;
  bool accept_certificate = false;
};

struct RemoteImportOptions {
  std::string from;  // lxc's config dir; empty: $LXD_CONF, else ~/.config/lxc
  bool force = false;
  bool replace_certificate = false;
  bool dry_run = false;
};

struct ApplyOptions {
  std::string file = "berth.yaml";  // "-": standard input
  bool file_given = false;          // -f was on the command line (an error with plan_file)
  std::string plan_file;            // apply exactly this saved plan
  bool auto_approve = false;
  int parallelism = 10;
  int read_parallelism = 32;                 // remotes read at once
  OutputFormat format = OutputFormat::text;  // text or json (an event stream); never markdown
  bool allow_restart = false;
  bool allow_move = false;
  bool allow_recreate = false;
  bool prune = false;
  std::vector<std::string> targets;  // --target
  std::vector<std::string> replace;  // --replace
  std::vector<std::string> drain;    // --drain
  std::filesystem::path state_path;
  std::chrono::milliseconds lock_timeout{0};
  util::InputLimits limits;  // --max-file-size, --max-response-size
};

struct WatchOptions {
  std::string file = "berth.yaml";  // re-read every run
  std::chrono::milliseconds interval{std::chrono::minutes(5)};
  double jitter = 0.1;       // share of the interval, either way
  bool report_mode = false;  // --mode report
  std::string listen = "127.0.0.1:9478";
  std::string listen_token_file;
  bool allow_restart = false;
  bool allow_move = false;
  bool allow_recreate = false;
  bool allow_empty = false;
  int max_retries = 5;
  std::chrono::milliseconds shutdown_timeout{std::chrono::seconds(30)};
  std::string events;  // FILE, "-" for stdout, empty: none
  int keep_runs = 1000;
  int parallelism = 10;
  int read_parallelism = 32;
  std::filesystem::path state_path;
  util::InputLimits limits;
};

struct HistoryOptions {
  std::filesystem::path state_path;
  OutputFormat format = OutputFormat::text;  // text or json
  int limit = 20;
};

int run_validate(const GlobalOptions& global, const ValidateOptions& options);
int run_plan(const GlobalOptions& global, const PlanCommandOptions& options);
int run_show(const GlobalOptions& global, const ShowOptions& options);
int run_apply(const GlobalOptions& global, const ApplyOptions& options);
int run_destroy(const GlobalOptions& global, const ApplyOptions& options);
struct ForceUnlockOptions {
  std::string id;  // the state file's lock (without --hosts)
  std::filesystem::path state_path;
  bool hosts = false;  // the fleet's locks on its hosts instead
  std::string file = "berth.yaml";
  bool auto_approve = false;
  util::InputLimits limits;
};
int run_force_unlock(const GlobalOptions& global, const ForceUnlockOptions& options);
struct StateCommandOptions {
  std::filesystem::path state_path;
  OutputFormat format = OutputFormat::text;  // text or json
  bool auto_approve = false;
};
int run_state_intents(const GlobalOptions& global, const StateCommandOptions& options);
int run_state_drop_intent(const GlobalOptions& global, const StateCommandOptions& options, std::int64_t seq);

int run_watch(const GlobalOptions& global, const WatchOptions& options);
int run_history(const GlobalOptions& global, const HistoryOptions& options);

int run_remote_add(const GlobalOptions& global, const RemoteAddOptions& options);
int run_remote_list(const GlobalOptions& global, OutputFormat format);
int run_remote_remove(const GlobalOptions& global, const std::string& name);
int run_remote_import_lxc(const GlobalOptions& global, const RemoteImportOptions& options);

// Exit statuses shared by the verbs (Terraform's convention for --detailed-exitcode).
inline constexpr int exit_ok = 0;
inline constexpr int exit_error = 1;
inline constexpr int exit_changes = 2;

}  // namespace berth::cli
