#pragma once
// The state file (SQLite): run history, the step journal and the apply lock.
//
// - runs / run_actions: each apply, its plan, and the outcome of every action with timings.
// - journal: every step is written *before* the call to the host (phase "intent") and its
//   result after ("done" / "failed"). An intent without a result is what a crash left behind;
//   the next apply reads them to know what to inspect on the hosts.
// - lock: one apply at a time per state file, with its holder (host, pid, since).
//
// Every write is its own transaction; the file uses WAL so a reader never blocks the writer.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

struct sqlite3;

namespace berth::state {

struct LockHolder {
  std::string lock_id;
  std::string host;
  std::int64_t pid = 0;
  std::string since;  // RFC 3339 UTC
  std::string command;
};

struct JournalEntry {
  std::int64_t seq = 0;
  std::int64_t run_id = 0;
  std::string action_id;
  std::string step;    // e.g. "create", "migrate", "verify", "delete-source"
  std::string phase;   // intent | done | failed | recovered | dropped
  std::string detail;  // JSON, step-specific (never secrets)
  std::string at;
  std::string result;  // JSON the result added (empty while open)
};

struct RunRecord {
  std::int64_t id = 0;
  std::string started_at;
  std::string finished_at;
  std::string command;
  std::string fleet_path;
  std::string outcome;  // running | succeeded | failed | interrupted (watch also: invalid | locked)
  std::string report;   // JSON: what `berth watch` found and held back ({} for other commands)
};

struct ActionRecord {
  std::string action_id;
  std::string status;  // succeeded | failed | skipped | refused | pending
  std::string error;
  double seconds = 0;
};

// Thrown only when the state file cannot be opened or is corrupt (a fatal start-up error);
// every other failure is reported through return values.
class StoreError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Store {
 public:
  // Opens (creating the file and its directory if needed) and migrates the schema.
  static std::unique_ptr<Store> open(const std::filesystem::path& path);
  // For readers (`berth plan`, `berth state intents`): nullptr when there is no state file yet,
  // so that reading never creates one.
  static std::unique_ptr<Store> open_existing(const std::filesystem::path& path);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Takes the lock, waiting up to `timeout` (0: try once). A lock held by a process that no
  // longer exists on this host is taken over (the journal tells what it left undone).
  // Returns the lock id, or the holder that kept it.
  struct LockResult {
    std::optional<std::string> lock_id;
    std::optional<LockHolder> holder;  // set when the lock was not acquired
    bool took_over_stale = false;
  };
  LockResult acquire_lock(const std::string& command, std::chrono::milliseconds timeout);
  void release_lock(const std::string& lock_id);
  // `berth force-unlock ID`: true when a lock with that id was held and is now gone.
  bool force_unlock(const std::string& lock_id);
  std::optional<LockHolder> lock_holder();
  // The holder, unless it is a process on this host that no longer exists.
  std::optional<LockHolder> live_lock_holder();

  std::int64_t begin_run(const std::string& command, const std::string& fleet_path, const std::string& plan_json);
  void finish_run(std::int64_t run_id, const std::string& outcome);
  void record_action(std::int64_t run_id, const std::string& action_id, const std::string& status,
                     const std::string& error, double seconds);

  std::int64_t journal_intent(std::int64_t run_id, const std::string& action_id, const std::string& step,
                              const std::string& detail_json);
  void journal_result(std::int64_t seq, bool ok, const std::string& detail_json);
  // Intents that never got a result: steps a crashed run may have left half-done.
  std::vector<JournalEntry> open_intents();
  // Marks open intents as resolved once the caller converged them (phase "recovered").
  void resolve_intents(const std::vector<std::int64_t>& seqs, const std::string& note);
  // Every journal entry of one action in one run, oldest first: the evidence recovery weighs.
  std::vector<JournalEntry> journal_of(std::int64_t run_id, const std::string& action_id);
  // `berth state drop-intent SEQ`: closes one open intent (phase "dropped") without touching a
  // host. False when there is no open intent with that seq.
  bool drop_intent(std::int64_t seq, const std::string& note);

  // Newest first.
  std::vector<RunRecord> runs(int limit);
  std::vector<ActionRecord> run_actions(std::int64_t run_id);
  void set_run_report(std::int64_t run_id, const std::string& report_json);
  // Deletes all but the newest `keep` runs with their actions and journal (`--keep-runs`); a run
  // with an open intent is kept whatever its age. Returns how many were deleted.
  int prune_runs(int keep);
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }

 private:
  Store(sqlite3* db, std::filesystem::path path) : db_(db), path_(std::move(path)) {}
  void exec(const std::string& sql);
  void migrate();

  sqlite3* db_;
  std::filesystem::path path_;
};

// Default path: $BERTH_STATE, else $XDG_STATE_HOME/berth/state.db, else ~/.local/state/berth/state.db.
[[nodiscard]] std::filesystem::path default_state_path();

}  // namespace berth::state
