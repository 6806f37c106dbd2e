#include "engine/state/store.hpp"

#include "engine/state/sqlite_statement.hpp"
#include "engine/util/random.hpp"
#include "engine/util/time.hpp"

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <ctime>
#include <random>
#include <thread>

namespace berth::state {
namespace {

// Append-only: a released version's migration never changes; new ones go at the end.
constexpr std::array<std::string_view, 3> migrations = {
    R"sql(
CREATE TABLE runs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  started_at TEXT NOT NULL,
  finished_at TEXT,
  command TEXT NOT NULL,
  fleet_path TEXT NOT NULL,
  plan_json TEXT NOT NULL,
  outcome TEXT NOT NULL DEFAULT 'running'
);
CREATE TABLE run_actions (
  run_id INTEGER NOT NULL REFERENCES runs(id),
  action_id TEXT NOT NULL,
  status TEXT NOT NULL,
  error TEXT NOT NULL DEFAULT '',
  seconds REAL NOT NULL DEFAULT 0,
  PRIMARY KEY (run_id, action_id)
);
CREATE TABLE journal (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  run_id INTEGER NOT NULL REFERENCES runs(id),
  action_id TEXT NOT NULL,
  step TEXT NOT NULL,
  phase TEXT NOT NULL,
  detail TEXT NOT NULL DEFAULT '{}',
  result TEXT NOT NULL DEFAULT '',
  at TEXT NOT NULL
);
CREATE INDEX journal_open ON journal(phase);
CREATE TABLE lock (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  lock_id TEXT NOT NULL,
  host TEXT NOT NULL,
  pid INTEGER NOT NULL,
  since TEXT NOT NULL,
  command TEXT NOT NULL
);
)sql",
    // 2: berth before 0.2 stored plans with their secrets in clear (sensitive values were not
    // masked): those plans are dropped from the history, and the file is vacuumed (after the
    // migration commits) so that no free page keeps them.
    R"sql(
UPDATE runs SET plan_json = '{"scrubbed": "stored by an older berth, whose plans could hold secrets"}';
)sql",
    // 3: `berth watch` records every run, with what it found and why it held actions back.
    R"sql(
ALTER TABLE runs ADD COLUMN report_json TEXT NOT NULL DEFAULT '{}';
)sql",
};

// The first migration after which the file is vacuumed, when it is applied to an existing file.
constexpr std::size_t vacuum_after = 2;

std::string now_utc() {
  return util::rfc3339_utc_now();
}

std::string hostname() {
  std::array<char, 256> buf{};
  if (::gethostname(buf.data(), buf.size() - 1) != 0) return "unknown";
  return buf.data();
}

bool process_alive(std::int64_t pid) {
  if (pid <= 0) return false;
  return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
}

// "state file /path/state.db: <what SQLite says>", for any error of a statement.
std::string failure(sqlite3* db, std::string_view what) {
  const char* file = sqlite3_db_filename(db, "main");
  return "state file " + std::string{file != nullptr ? file : "?"} + ": " + std::string{what} + sqlite3_errmsg(db);
}

struct StoreFail {
  [[noreturn]] void operator()(sqlite3* db, int, std::string_view what) const { throw StoreError(failure(db, what)); }
};
using Statement = sqlite::Statement<StoreFail>;

}  // namespace

std::filesystem::path default_state_path() {
  if (const char* p = std::getenv("BERTH_STATE"); p != nullptr && *p != '\0') return p;
  if (const char* xdg = std::getenv("XDG_STATE_HOME"); xdg != nullptr && *xdg != '\0') {
    return std::filesystem::path(xdg) / "berth" / "state.db";
  }
  const char* home = std::getenv("HOME");
  return std::filesystem::path(home != nullptr ? home : "/root") / ".local" / "state" / "berth" / "state.db";
}

std::unique_ptr<Store> Store::open(const std::filesystem::path& path) {
  // The state file holds plans and the journal: only its owner may read it. A directory berth
  // creates is 0700 and a new file 0600 (SQLite gives its -wal and -shm files the file's mode).
  std::error_code ec;
  if (path.has_parent_path() && !std::filesystem::exists(path.parent_path(), ec)) {
    std::filesystem::create_directories(path.parent_path(), ec);
    std::filesystem::permissions(path.parent_path(), std::filesystem::perms::owner_all,
                                 std::filesystem::perm_options::replace, ec);
  }
  if (const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600); fd >= 0) {
    ::close(fd);
  }
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr) !=
      SQLITE_OK) {
    const std::string why = db != nullptr ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    throw StoreError("cannot open state file " + path.string() + ": " + why);
  }
  std::unique_ptr<Store> store(new Store(db, path));
  sqlite3_busy_timeout(db, 5000);
  // secure_delete: pages freed by a delete or an update are zeroed, not left readable in the file.
  store->exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA secure_delete=ON;");
  store->migrate();
  return store;
}

std::unique_ptr<Store> Store::open_existing(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return nullptr;
  return open(path);
}

Store::~Store() {
  sqlite3_close(db_);
}

void Store::exec(const std::string& sql) {
  char* error = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
    const std::string why = error != nullptr ? error : "unknown error";
    sqlite3_free(error);
    throw StoreError("state file " + path_.string() + ": " + why);
  }
}

void Store::migrate() {
  exec("BEGIN IMMEDIATE");
  try {
    const auto current = [&] {
      Statement version(db_, "PRAGMA user_version");  // finalised before VACUUM, which needs none open
      version.step();
      return static_cast<std::size_t>(version.integer(0));
    }();
    if (current > migrations.size()) {
      throw StoreError("state file " + path_.string() + " was written by a newer berth (schema " +
                       std::to_string(current) + "); upgrade berth");
    }
    for (std::size_t i = current; i < migrations.size(); ++i) exec(std::string{migrations[i]});
    exec("PRAGMA user_version = " + std::to_string(migrations.size()));
    exec("COMMIT");
    if (current != 0 && current < vacuum_after) {
      exec("VACUUM");
      exec("PRAGMA wal_checkpoint(TRUNCATE)");  // the rewritten file replaces the old pages now
    }
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

Store::LockResult Store::acquire_lock(const std::string& command, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  const std::string host = hostname();
  while (true) {
    LockResult result;
    exec("BEGIN IMMEDIATE");
    try {
      auto holder = lock_holder();
      if (holder && holder->host == host && !process_alive(holder->pid)) {
        exec("DELETE FROM lock");
        holder.reset();
        result.took_over_stale = true;
      }
      if (!holder) {
        const std::string id = util::random_hex(16);
        Statement insert(db_, "INSERT INTO lock (id, lock_id, host, pid, since, command) VALUES (1, ?, ?, ?, ?, ?)");
        insert.bind(1, id)
            .bind(2, host)
            .bind(3, static_cast<std::int64_t>(::getpid()))
            .bind(4, now_utc())
            .bind(5, command);
        insert.step();
        exec("COMMIT");
        result.lock_id = id;
        return result;
      }
      exec("COMMIT");
      result.holder = holder;
      if (std::chrono::steady_clock::now() >= deadline) return result;
    } catch (...) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

std::optional<LockHolder> Store::lock_holder() {
  Statement q(db_, "SELECT lock_id, host, pid, since, command FROM lock WHERE id = 1");
  if (!q.step()) return std::nullopt;
  return LockHolder{q.text(0), q.text(1), q.integer(2), q.text(3), q.text(4)};
}

std::optional<LockHolder> Store::live_lock_holder() {
  auto holder = lock_holder();
  if (holder && holder->host == hostname() && !process_alive(holder->pid)) return std::nullopt;
  return holder;
}

void Store::release_lock(const std::string& lock_id) {
  Statement d(db_, "DELETE FROM lock WHERE lock_id = ?");
  d.bind(1, lock_id).step();
}

bool Store::force_unlock(const std::string& lock_id) {
  Statement d(db_, "DELETE FROM lock WHERE lock_id = ?");
  d.bind(1, lock_id).step();
  return sqlite3_changes(db_) > 0;
}

std::int64_t Store::begin_run(const std::string& command, const std::string& fleet_path, const std::string& plan_json) {
  Statement insert(db_, "INSERT INTO runs (started_at, command, fleet_path, plan_json) VALUES (?, ?, ?, ?)");
  insert.bind(1, now_utc()).bind(2, command).bind(3, fleet_path).bind(4, plan_json).step();
  return sqlite3_last_insert_rowid(db_);
}

void Store::finish_run(std::int64_t run_id, const std::string& outcome) {
  Statement update(db_, "UPDATE runs SET finished_at = ?, outcome = ? WHERE id = ?");
  update.bind(1, now_utc()).bind(2, outcome).bind(3, run_id).step();
}

void Store::record_action(std::int64_t run_id, const std::string& action_id, const std::string& status,
                          const std::string& error, double seconds) {
  Statement upsert(db_,
                   "INSERT INTO run_actions (run_id, action_id, status, error, seconds) VALUES (?, ?, ?, ?, ?) "
                   "ON CONFLICT(run_id, action_id) DO UPDATE SET status = excluded.status, error = excluded.error, "
                   "seconds = excluded.seconds");
  upsert.bind(1, run_id).bind(2, action_id).bind(3, status).bind(4, error).bind(5, seconds).step();
}

std::int64_t Store::journal_intent(std::int64_t run_id, const std::string& action_id, const std::string& step,
                                   const std::string& detail_json) {
  Statement insert(db_,
                   "INSERT INTO journal (run_id, action_id, step, phase, detail, at) VALUES (?, ?, ?, 'intent', ?, ?)");
  insert.bind(1, run_id).bind(2, action_id).bind(3, step).bind(4, detail_json).bind(5, now_utc()).step();
  return sqlite3_last_insert_rowid(db_);
}

void Store::journal_result(std::int64_t seq, bool ok, const std::string& detail_json) {
  Statement update(db_, "UPDATE journal SET phase = ?, result = ?, at = ? WHERE seq = ?");
  update.bind(1, std::string{ok ? "done" : "failed"}).bind(2, detail_json).bind(3, now_utc()).bind(4, seq).step();
}

std::vector<JournalEntry> Store::open_intents() {
  Statement q(db_,
              "SELECT seq, run_id, action_id, step, phase, detail, at, result FROM journal WHERE phase = 'intent' "
              "ORDER BY seq");
  std::vector<JournalEntry> out;
  while (q.step()) {
    out.push_back({q.integer(0), q.integer(1), q.text(2), q.text(3), q.text(4), q.text(5), q.text(6), q.text(7)});
  }
  return out;
}

std::vector<JournalEntry> Store::journal_of(std::int64_t run_id, const std::string& action_id) {
  Statement q(db_,
              "SELECT seq, run_id, action_id, step, phase, detail, at, result FROM journal "
              "WHERE run_id = ? AND action_id = ? ORDER BY seq");
  q.bind(1, run_id).bind(2, action_id);
  std::vector<JournalEntry> out;
  while (q.step()) {
    out.push_back({q.integer(0), q.integer(1), q.text(2), q.text(3), q.text(4), q.text(5), q.text(6), q.text(7)});
  }
  return out;
}

bool Store::drop_intent(std::int64_t seq, const std::string& note) {
  Statement update(db_, "UPDATE journal SET phase = 'dropped', result = ?, at = ? WHERE seq = ? AND phase = 'intent'");
  update.bind(1, note).bind(2, now_utc()).bind(3, seq).step();
  return sqlite3_changes(db_) > 0;
}

void Store::resolve_intents(const std::vector<std::int64_t>& seqs, const std::string& note) {
  for (const auto seq : seqs) {
    Statement update(db_, "UPDATE journal SET phase = 'recovered', result = ?, at = ? WHERE seq = ?");
    update.bind(1, note).bind(2, now_utc()).bind(3, seq).step();
  }
}

std::vector<RunRecord> Store::runs(int limit) {
  Statement q(db_,
              "SELECT id, started_at, COALESCE(finished_at, ''), command, fleet_path, outcome, report_json FROM runs "
              "ORDER BY id DESC LIMIT ?");
  q.bind(1, static_cast<std::int64_t>(limit));
  std::vector<RunRecord> out;
  while (q.step()) out.push_back({q.integer(0), q.text(1), q.text(2), q.text(3), q.text(4), q.text(5), q.text(6)});
  return out;
}

std::vector<ActionRecord> Store::run_actions(std::int64_t run_id) {
  Statement q(db_, "SELECT action_id, status, error, seconds FROM run_actions WHERE run_id = ? ORDER BY rowid");
  q.bind(1, run_id);
  std::vector<ActionRecord> out;
  while (q.step()) out.push_back({q.text(0), q.text(1), q.text(2), q.real(3)});
  return out;
}

void Store::set_run_report(std::int64_t run_id, const std::string& report_json) {
  Statement update(db_, "UPDATE runs SET report_json = ? WHERE id = ?");
  update.bind(1, report_json).bind(2, run_id).step();
}

int Store::prune_runs(int keep) {
  // A run whose journal still has an open intent is kept: the next apply settles it from there.
  exec("BEGIN IMMEDIATE");
  try {
    Statement old(db_,
                  "SELECT id FROM runs WHERE id NOT IN (SELECT id FROM runs ORDER BY id DESC LIMIT ?) AND id NOT IN "
                  "(SELECT run_id FROM journal WHERE phase = 'intent')");
    old.bind(1, static_cast<std::int64_t>(std::max(keep, 0)));
    std::vector<std::int64_t> ids;
    while (old.step()) ids.push_back(old.integer(0));
    for (const auto id : ids) {
      for (const char* sql : {"DELETE FROM journal WHERE run_id = ?", "DELETE FROM run_actions WHERE run_id = ?",
                              "DELETE FROM runs WHERE id = ?"}) {
        Statement d(db_, sql);
        d.bind(1, id).step();
      }
    }
    exec("COMMIT");
    return static_cast<int>(ids.size());
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

}  // namespace berth::state
