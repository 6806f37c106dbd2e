#include "daemon/db/database.hpp"

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <array>
#include <stdexcept>
#include <string_view>

#include <nlohmann/json.hpp>

#include "engine/state/sqlite_statement.hpp"

namespace berth::daemon {
namespace {

using lxd::ErrorKind;
using lxd::make_error;

// The schema, one migration per entry, applied in order and never edited once released: a change
// is a new entry at the end. PRAGMA user_version counts the entries applied.
constexpr std::array<std::string_view, 2> migrations = {
    // 1: server config and the trust store.
    R"sql(
CREATE TABLE config (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE certificates (
  fingerprint TEXT PRIMARY KEY,
  type        TEXT NOT NULL,
  name        TEXT NOT NULL,
  certificate TEXT NOT NULL,
  restricted  INTEGER NOT NULL DEFAULT 0,
  projects    TEXT NOT NULL DEFAULT '[]'
);
)sql",
    // 2: images, aliases, instances, snapshots and profiles, each a JSON document under its key.
    R"sql(
CREATE TABLE documents (
  kind TEXT NOT NULL,
  key  TEXT NOT NULL,
  body TEXT NOT NULL,
  PRIMARY KEY (kind, key)
);
INSERT INTO documents (kind, key, body) VALUES ('profile', 'default',
  '{"name":"default","description":"Default berthd profile","config":{},"devices":{"root":{"path":"/","pool":"default","type":"disk"}}}');
)sql",
};

// Thrown inside this file only, and turned into an error value at each public call.
struct DbError : std::runtime_error {
  ErrorKind kind;
  DbError(ErrorKind k, const std::string& what) : std::runtime_error(what), kind(k) {}
};

std::string describe(sqlite3* db, std::string_view what) {
  const char* file = sqlite3_db_filename(db, "main");
  return "database " + std::string{file != nullptr ? file : "?"} + ": " + std::string{what} + sqlite3_errmsg(db);
}

struct DbFail {
  [[noreturn]] void operator()(sqlite3* db, int rc, std::string_view what) const {
    throw DbError(rc == SQLITE_CONSTRAINT ? ErrorKind::conflict : ErrorKind::io, describe(db, what));
  }
};
using Statement = sqlite::Statement<DbFail>;

void exec(sqlite3* db, const std::string& sql) {
  char* error = nullptr;
  if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
    const std::string why = error != nullptr ? error : "unknown error";
    sqlite3_free(error);
    throw DbError(ErrorKind::io, describe(db, why + " ("));
  }
}

// Runs `work` in one transaction, turning a failure into an error value.
template <class F>
auto transaction(sqlite3* db, F&& work) -> Result<decltype(work())> {
  try {
    exec(db, "BEGIN IMMEDIATE");
    try {
      if constexpr (std::is_void_v<decltype(work())>) {
        work();
        exec(db, "COMMIT");
        return Result<void>{};
      } else {
        auto out = work();
        exec(db, "COMMIT");
        return out;
      }
    } catch (...) {
      sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
  } catch (const DbError& e) {
    return make_error(e.kind, e.what());
  }
}

std::string projects_text(const std::vector<std::string>& projects) {
  return nlohmann::json(projects).dump();
}

std::vector<std::string> projects_of(const std::string& text) {
  std::vector<std::string> out;
  const auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_array()) return out;
  for (const auto& p : j) {
    if (p.is_string()) out.push_back(p.get<std::string>());
  }
  return out;
}

TrustedCertificate certificate_row(Statement& s) {
  TrustedCertificate c;
  c.fingerprint = s.text(0);
  c.type = s.text(1);
  c.name = s.text(2);
  c.certificate = s.text(3);
  c.restricted = s.integer(4) != 0;
  c.projects = projects_of(s.text(5));
  return c;
}

std::string_view kind_name(DocumentKind kind) {
  switch (kind) {
    case DocumentKind::image: return "image";
    case DocumentKind::image_alias: return "image_alias";
    case DocumentKind::instance: return "instance";
    case DocumentKind::snapshot: return "snapshot";
    case DocumentKind::profile: return "profile";
    case DocumentKind::pending: return "pending";
    case DocumentKind::operation: return "operation";
  }
  return "unknown";
}

nlohmann::json parse_body(const std::string& text, std::string_view kind, const std::string& key) {
  auto body = nlohmann::json::parse(text, nullptr, false);
  if (body.is_discarded()) {
    throw DbError(ErrorKind::io, "database: the " + std::string{kind} + " " + key + " is damaged (not JSON)");
  }
  return body;
}

}  // namespace

Result<std::unique_ptr<Database>> Database::open(const std::filesystem::path& path) {
  // The trust store and the password hash: only root may read them.
  if (const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600); fd >= 0) {
    ::close(fd);
  }
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr) !=
      SQLITE_OK) {
    const std::string why = db != nullptr ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return make_error(ErrorKind::io, "cannot open the database " + path.string() + ": " + why);
  }
  std::unique_ptr<Database> out(new Database(db, path));
  sqlite3_busy_timeout(db, 5000);
  try {
    exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA secure_delete=ON;");
  } catch (const DbError& e) {
    return make_error(e.kind, e.what());
  }
  if (auto migrated = out->migrate(); !migrated) return migrated.error();
  return out;
}

Database::Database(sqlite3* db, std::filesystem::path path) : db_(db), path_(std::move(path)) {}

Database::~Database() {
  sqlite3_close(db_);
}

int Database::latest_schema_version() {
  return static_cast<int>(migrations.size());
}

Result<void> Database::migrate() {
  std::lock_guard lock(mu_);
  return transaction(db_, [&] {
    const auto current = [&] {
      Statement version(db_, "PRAGMA user_version");
      version.step();
      return static_cast<std::size_t>(version.integer(0));
    }();
    if (current > migrations.size()) {
      throw DbError(ErrorKind::invalid_argument,
                    "database " + path_.string() + " was written by a newer berthd (schema " + std::to_string(current) +
                        ", this one knows " + std::to_string(migrations.size()) + "); upgrade berthd");
    }
    for (std::size_t i = current; i < migrations.size(); ++i) exec(db_, std::string{migrations[i]});
    exec(db_, "PRAGMA user_version = " + std::to_string(migrations.size()));
  });
}

int Database::schema_version() {
  std::lock_guard lock(mu_);
  try {
    Statement version(db_, "PRAGMA user_version");
    version.step();
    return static_cast<int>(version.integer(0));
  } catch (const DbError&) {
    return -1;
  }
}

Result<std::map<std::string, std::string>> Database::config() {
  std::lock_guard lock(mu_);
  return transaction(db_, [&] {
    std::map<std::string, std::string> out;
    Statement s(db_, "SELECT key, value FROM config");
    while (s.step()) out[s.text(0)] = s.text(1);
    return out;
  });
}

Result<void> Database::set_config(const std::map<std::string, std::string>& config) {
  std::lock_guard lock(mu_);
  return transaction(db_, [&] {
    exec(db_, "DELETE FROM config");
    for (const auto& [key, value] : config) {
      Statement s(db_, "INSERT INTO config (key, value) VALUES (?, ?)");
      s.bind(1, key).bind(2, value).step();
    }
  });
}

Result<void> Database::update_config(const std::function<bool(std::map<std::string, std::string>&)>& change) {
  std::lock_guard lock(mu_);
  return transaction(db_, [&] {
    std::map<std::string, std::string> config;
    {
      Statement s(db_, "SELECT key, value FROM config");
      while (s.step()) config[s.text(0)] = s.text(1);
    }
    if (!change(config)) return;
    exec(db_, "DELETE FROM config");
    for (const auto& [key, value] : config) {
      Statement s(db_, "INSERT INTO config (key, value) VALUES (?, ?)");
      s.bind(1, key).bind(2, value).step();
    }
  });
}

Result<std::vector<TrustedCertificate>> Database::certificates_with_prefix(const std::string& prefix) {
  if (prefix.empty() || prefix.find_first_not_of("0123456789abcdef") != std::string::npos) {
    return std::vector<TrustedCertificate>{};
  }
  std::lock_guard lock(mu_);
  return transaction(db_, [&] {
    std::vector<TrustedCertificate> out;
    Statement s(db_,
                "SELECT fingerprint, type, name, certificate, restricted, projects FROM certificates "
                "WHERE substr(fingerprint, 1, ?) = ? ORDER BY fingerprint");
    s.bind(1, static_cast<std::int64_t>(prefix.size())).bind(2, prefix);
    while (s.step()) out.push_back(certificate_row(s));
    return out;
  });
}

Result<std::vector<TrustedCertificate>> Database::certificates() {
  std::lock_guard lock(mu_);
  return transaction(db_, [&] {
    std::vector<TrustedCertificate> out;
    Statement s(
        db_,
        "SELECT fingerprint, type, name, certificate, restricted, projects FROM certificates ORDER BY fingerprint");
    while (s.step()) out.push_back(certificate_row(s));
    return out;
  });
}

Result<std::optional<TrustedCertificate>> Database::certificate(const std::string& fingerprint) {
  std::lock_guard lock(mu_);
  return transaction(db_, [&] {
    Statement s(
        db_,
        "SELECT fingerprint, type, name, certificate, restricted, projects FROM certificates WHERE fingerprint = ?");
    s.bind(1, fingerprint);
    return s.step() ? std::optional<TrustedCertificate>{certificate_row(s)} : std::nullopt;
  });
}

Result<void> Database::add_certificate(const TrustedCertificate& c) {
  std::lock_guard lock(mu_);
  return transaction(db_, [&] {
    Statement s(db_,
                "INSERT INTO certificates (fingerprint, type, name, certificate, restricted, projects) "
                "VALUES (?, ?, ?, ?, ?, ?)");
    s.bind(1, c.fingerprint)
        .bind(2, c.type)
        .bind(3, c.name)
        .bind(4, c.certificate)
        .bind(5, std::int64_t{c.restricted ? 1 : 0})
        .bind(6, projects_text(c.projects));
    s.step();
  });
}

Result<void> Database::update_certificate(const TrustedCertificate& c) {
  std::lock_guard lock(mu_);
  return transaction(db_, [&] {
    Statement s(db_, "UPDATE certificates SET type = ?, name = ?, restricted = ?, projects = ? WHERE fingerprint = ?");
    s.bind(1, c.type)
        .bind(2, c.name)
        .bind(3, std::int64_t{c.restricted ? 1 : 0})
        .bind(4, projects_text(c.projects))
        .bind(5, c.fingerprint);
    s.step();
    if (sqlite3_changes(db_) == 0) throw DbError(ErrorKind::not_found, "certificate " + c.fingerprint + " not found");
  });
}

Result<void> Database::remove_certificate(const std::string& fingerprint) {
  std::lock_guard lock(mu_);
  return transaction(db_, [&] {
    Statement s(db_, "DELETE FROM certificates WHERE fingerprint = ?");
    s.bind(1, fingerprint).step();
    if (sqlite3_changes(db_) == 0) throw DbError(ErrorKind::not_found, "certificate " + fingerprint + " not found");
  });
}

Result<std::vector<Document>> Database::documents(DocumentKind kind, const std::string& prefix) {
  std::lock_guard lock(mu_);
  return transaction(db_, [&] {
    std::vector<Document> out;
    Statement s(db_, "SELECT key, body FROM documents WHERE kind = ? AND substr(key, 1, ?) = ? ORDER BY key");
    s.bind(1, std::string{kind_name(kind)}).bind(2, static_cast<std::int64_t>(prefix.size())).bind(3, prefix);
    while (s.step()) {
      auto key = s.text(0);
      auto body = parse_body(s.text(1), kind_name(kind), key);
      out.push_back(Document{std::move(key), std::move(body)});
    }
    return out;
  });
}

Result<std::optional<nlohmann::json>> Database::document(DocumentKind kind, const std::string& key) {
  std::lock_guard lock(mu_);
  return transaction(db_, [&]() -> std::optional<nlohmann::json> {
    Statement s(db_, "SELECT body FROM documents WHERE kind = ? AND key = ?");
    s.bind(1, std::string{kind_name(kind)}).bind(2, key);
    if (!s.step()) return std::nullopt;
    return parse_body(s.text(0), kind_name(kind), key);
  });
}

Result<void> Database::change(const std::vector<DocumentChange>& changes) {
  std::lock_guard lock(mu_);
  auto done = transaction(db_, [&] {
    for (const auto& c : changes) {
      const std::string kind{kind_name(c.kind)};
      const auto missing = [&] { return DbError(ErrorKind::not_found, kind + " " + c.key + " not found"); };
      switch (c.op) {
        case DocumentChange::Op::insert: {
          Statement s(db_, "INSERT INTO documents (kind, key, body) VALUES (?, ?, ?)");
          try {
            s.bind(1, kind)
                .bind(2, c.key)
                .bind(3, c.body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace))
                .step();
          } catch (const DbError& e) {
            if (e.kind == ErrorKind::conflict)
              throw DbError(ErrorKind::conflict, kind + " " + c.key + " already exists");
            throw;
          }
          break;
        }
        case DocumentChange::Op::replace: {
          Statement s(db_, "UPDATE documents SET body = ? WHERE kind = ? AND key = ?");
          s.bind(1, c.body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace))
              .bind(2, kind)
              .bind(3, c.key)
              .step();
          if (sqlite3_changes(db_) == 0) throw missing();
          break;
        }
        case DocumentChange::Op::remove: {
          Statement s(db_, "DELETE FROM documents WHERE kind = ? AND key = ?");
          s.bind(1, kind).bind(2, c.key).step();
          if (sqlite3_changes(db_) == 0) throw missing();
          break;
        }
        case DocumentChange::Op::remove_prefix: {
          Statement s(db_, "DELETE FROM documents WHERE kind = ? AND substr(key, 1, ?) = ?");
          s.bind(1, kind).bind(2, static_cast<std::int64_t>(c.key.size())).bind(3, c.key).step();
          break;
        }
        case DocumentChange::Op::rename_prefix: {
          // Every key starting with c.key gets c.new_key instead of that start.
          Statement s(db_, "UPDATE documents SET key = ? || substr(key, ?) WHERE kind = ? AND substr(key, 1, ?) = ?");
          try {
            s.bind(1, c.new_key)
                .bind(2, static_cast<std::int64_t>(c.key.size() + 1))
                .bind(3, kind)
                .bind(4, static_cast<std::int64_t>(c.key.size()))
                .bind(5, c.key)
                .step();
          } catch (const DbError& e) {
            if (e.kind == ErrorKind::conflict)
              throw DbError(ErrorKind::conflict, kind + " " + c.new_key + " already exists");
            throw;
          }
          break;
        }
      }
    }
  });
  // Committed or rolled back, never in between: a reader that saw the old number read before this.
  generation_.fetch_add(1, std::memory_order_release);
  return done;
}

}  // namespace berth::daemon
