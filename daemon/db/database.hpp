#pragma once
// berthd's database: one SQLite file (DIR/berthd.db) holding what berthd must remember across
// restarts and cannot ask liblxc: server config, the trust store, and (in later migrations) images,
// instances and snapshots. The schema is an append-only list of migrations (database.cpp); a
// database written by a newer berthd is refused rather than guessed at.
//
// Concurrency contract: one connection, serialised by a mutex of its own, so any thread may call.
// Every call is one transaction. Expected failures (disk full, a locked or damaged file) are
// values, never exceptions.

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "providers/lxd/result.hpp"

struct sqlite3;

namespace berth::daemon {

using lxd::Result;

// A trusted certificate (lxd-protocol.md §2.3): its fingerprint is the lowercase hex sha256 of its DER.
struct TrustedCertificate {
  std::string fingerprint;
  std::string type = "client";  // client, server or metrics
  std::string name;
  std::string certificate;  // PEM
  bool restricted = false;
  std::vector<std::string> projects;
};

// What berthd keeps of images, their aliases, instances, snapshots and profiles: each one a JSON
// document (the stored part of its LXD object) under its key: the fingerprint, the alias name,
// the instance name, "INSTANCE/SNAPSHOT" (as LXD names snapshots in its database), the profile
// name. The API layer decides what a document holds; the database only keeps it.
// Two more kinds are berthd's journal, for what a crash must not leave unaccounted for: a
// `pending` document (key: the instance or "INSTANCE/SNAPSHOT") is written before a create puts
// anything on disk and removed with the transaction that records what it made, so one left over
// at start names a half-made volume to remove (Instances::recover); an `operation` document (key:
// its id) is a task operation running, so one left over was interrupted and is reported failed.
enum class DocumentKind { image, image_alias, instance, snapshot, profile, pending, operation };

struct Document {
  std::string key;
  nlohmann::json body;
};

// One step of a change made in one transaction (Database::change).
struct DocumentChange {
  enum class Op {
    insert,         // ErrorKind::conflict when the key is taken
    replace,        // ErrorKind::not_found when there is none
    remove,         // ErrorKind::not_found when there is none
    remove_prefix,  // every key starting with `key` (none is fine)
    rename_prefix,  // every key starting with `key` starts with `new_key` instead; conflict when taken
  };
  Op op = Op::insert;
  DocumentKind kind = DocumentKind::instance;
  std::string key;
  nlohmann::json body = nullptr;
  std::string new_key;
};

class Database {
 public:
  // Opens (creating it when missing, mode 0600) and brings the schema up to date.
  [[nodiscard]] static Result<std::unique_ptr<Database>> open(const std::filesystem::path& path);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // The number of migrations applied: the schema's version.
  [[nodiscard]] int schema_version();
  // How many migrations this berthd knows.
  [[nodiscard]] static int latest_schema_version();

  // Server config (`GET /1.0`'s config): key -> value as stored (the trust password as its hash).
  [[nodiscard]] Result<std::map<std::string, std::string>> config();
  // Replaces the whole server config in one transaction.
  [[nodiscard]] Result<void> set_config(const std::map<std::string, std::string>& config);
  // Reads the config, lets `change` edit it, and writes it back, in one transaction; nothing is
  // written when `change` returns false.
  [[nodiscard]] Result<void> update_config(const std::function<bool(std::map<std::string, std::string>&)>& change);

  [[nodiscard]] Result<std::vector<TrustedCertificate>> certificates();
  [[nodiscard]] Result<std::optional<TrustedCertificate>> certificate(const std::string& fingerprint);
  // Those whose fingerprint starts with `prefix` (lowercase hex; anything else matches none), as
  // LXD looks certificates up.
  [[nodiscard]] Result<std::vector<TrustedCertificate>> certificates_with_prefix(const std::string& prefix);
  // Adds one; ErrorKind::conflict when its fingerprint is already there.
  [[nodiscard]] Result<void> add_certificate(const TrustedCertificate& certificate);
  // Replaces name, type, restricted and projects of the certificate with this fingerprint;
  // ErrorKind::not_found when there is none.
  [[nodiscard]] Result<void> update_certificate(const TrustedCertificate& certificate);
  // ErrorKind::not_found when there is none.
  [[nodiscard]] Result<void> remove_certificate(const std::string& fingerprint);

  // The documents of a kind whose key starts with `prefix`, by key.
  [[nodiscard]] Result<std::vector<Document>> documents(DocumentKind kind, const std::string& prefix = {});
  [[nodiscard]] Result<std::optional<nlohmann::json>> document(DocumentKind kind, const std::string& key);
  // All of `changes` or none of them.
  [[nodiscard]] Result<void> change(const std::vector<DocumentChange>& changes);
  // A number that moves on after every change() (once it is committed, or rolled back): when two
  // reads of it are equal, no document changed in between. For caches of what documents render to.
  [[nodiscard]] std::uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

 private:
  Database(sqlite3* db, std::filesystem::path path);
  Result<void> migrate();

  std::mutex mu_;
  std::atomic<std::uint64_t> generation_{0};
  sqlite3* db_;
  std::filesystem::path path_;
};

}  // namespace berth::daemon
