#pragma once
// berthd's operations (lxd-protocol.md §1.3): what a 202 answer points at. Token operations
// (certificate add tokens) never run and stay Running until used, cancelled or expired; task
// operations run their work on a pool of worker threads and end in Success or Failure.
//
// Thread-safe: one mutex over the table. A finished operation stays readable for `keep_finished`
// (LXD keeps them 5 s; clients read the final state after waiting). `changed` and the callbacks
// given to when_finished are called under that mutex: they must be quick and must not call back.

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "providers/lxd/result.hpp"

namespace berth::daemon {

enum class OperationClass { task, websocket, token };

// What a token operation grants; a secret only ever answers for its own kind.
enum class TokenKind {
  certificate_add,  // joins the trust store once (lxc config trust add)
  image_download,   // reads one private image (POST /1.0/images/FP/secret)
};

// A task's work, run on a worker thread: the metadata to merge into the operation's when it
// succeeds, or the error that fails it (its message becomes the operation's `err`).
using TaskWork = std::function<lxd::Result<nlohmann::json>()>;

// Where task operations are written down while they run, so that one berthd did not see to its
// end (it was killed, or stopped past its shutdown deadline) is reported failed after a restart
// (Operations::add_interrupted). Both are called outside the table's lock, on the caller's or the
// worker's thread; a failure to record is theirs to log.
struct OperationJournal {
  std::function<void(const nlohmann::json& operation)> begun;  // before its work is queued
  std::function<void(const std::string& id)> ended;            // once it finished, however
};

class Operations {
 public:
  using Clock = std::chrono::system_clock;

  // `changed` is told the operation object at its creation and at every transition (under the
  // table's lock: it must not call back).
  explicit Operations(
      std::string location = "none", std::chrono::seconds keep_finished = std::chrono::seconds{10},
      std::function<Clock::time_point()> now = [] { return Clock::now(); },
      std::function<void(const nlohmann::json& operation)> changed = {});

  ~Operations();
  Operations(const Operations&) = delete;
  Operations& operator=(const Operations&) = delete;

  // Set once, before the first task is added.
  void set_journal(OperationJournal journal) { journal_ = std::move(journal); }

  // A task an earlier run of berthd began and did not finish (`operation` as its journal kept
  // it): Failure with `err`, readable for `keep` (longer than a finished one's few seconds, so
  // that a client cut off by the crash can still learn how it ended).
  void add_interrupted(nlohmann::json operation, const std::string& err, std::chrono::seconds keep);

  // A token operation of `kind`, Running, with `metadata` (which holds its secret). Returns the
  // operation object.
  nlohmann::json add_token(TokenKind kind, const std::string& description, nlohmann::json metadata,
                           nlohmann::json resources);

  // A task operation, Running at once; `work` runs on a worker thread (queued when all are busy).
  // Returns the operation object. After shutdown() began, the task is Cancelled without running.
  nlohmann::json add_task(const std::string& description, nlohmann::json resources, TaskWork work,
                          nlohmann::json metadata = nullptr);

  // A websocket operation, Running, with `metadata` (what the client reads: its channels'
  // secrets, for exec and migration). Clients connect its channels through
  // /1.0/operations/{id}/websocket (api::OperationSockets); it ends with finish() or a cancel.
  // `may_cancel`: a DELETE cancels it (a migration source's; the caller sees that through
  // when_finished).
  nlohmann::json add_websocket(const std::string& description, nlohmann::json resources, nlohmann::json metadata,
                               bool may_cancel = false);
  // Sets `key` in a Running operation's metadata (progress, as fs_progress), telling `changed`
  // when the value is new. False when there is no such Running operation.
  bool set_metadata(const std::string& id, const std::string& key, nlohmann::json value);
  // Ends a Running websocket operation: Success with `outcome`'s metadata merged, or Failure with
  // its error. False when there is no such Running websocket operation.
  bool finish(const std::string& id, lxd::Result<nlohmann::json> outcome);

  // Calls `done` with the final operation object once it finished (at once when it already has).
  // False when there is no such operation. A client's waiters (a /wait) are bounded per operation,
  // the oldest dropped past the bound; berthd's own (`internal`: clean-up) never are.
  bool when_finished(const std::string& id, std::function<void(const nlohmann::json&)> done, bool internal = false);

  // For SIGTERM: queued tasks are Cancelled, running ones get until `deadline` to finish; true
  // when they all did. New tasks are refused from now on.
  bool shutdown(std::chrono::steady_clock::time_point deadline);

  // The operation object, nullopt when there is none (or it finished long enough ago).
  [[nodiscard]] std::optional<nlohmann::json> get(const std::string& id);
  // Every operation object, by class as `GET /1.0/operations?recursion=1` groups them ("running",
  // "success", "failure", "cancelled").
  [[nodiscard]] std::vector<nlohmann::json> list();

  // Cancels a Running operation that may be cancelled: "" when done, else why not (with `status`,
  // 404 or 400, set to what the API answers).
  std::string cancel(const std::string& id, int& status);

  // Uses up the Running token operation of `kind` whose metadata.secret is `secret` and, when
  // `resource` is given, whose resources list it ("/1.0/images/FP"): it is cancelled (single use)
  // and its metadata returned. nullopt when there is none. The secret is compared in constant time.
  // An image_download token used so still answers while its finished operation is kept: a download
  // reads the image and then exports it with the one secret, as LXD's does (its used token stays
  // matchable for the 5 s it keeps the operation). A DELETE of the token, before or after its
  // use, ends that: a revoked secret never answers again.
  [[nodiscard]] std::optional<nlohmann::json> consume_token(TokenKind kind, const std::string& secret,
                                                            const std::string& resource = "");

 private:
  struct Entry {
    nlohmann::json object;
    std::optional<Clock::time_point> finished;
    std::vector<std::function<void(const nlohmann::json&)>> waiters;
    std::vector<std::function<void(const nlohmann::json&)>> internal_waiters;  // never dropped
    std::optional<TokenKind> token;                                            // set for token operations
    bool used = false;                         // a token consumed (not cancelled by a client)
    std::optional<std::chrono::seconds> keep;  // how long it stays once finished, when not keep_finished
  };
  struct Queued {
    std::string id;
    TaskWork work;
  };
  void set_status(Entry& entry, int code);
  void forget_old();
  nlohmann::json new_object(const std::string& id, OperationClass c, const std::string& description,
                            nlohmann::json metadata, nlohmann::json resources, bool may_cancel) const;
  void work_loop();
  void finish_task(const std::string& id, lxd::Result<nlohmann::json> outcome);
  // Success with the outcome's metadata merged, or Failure with its error; under the lock.
  void conclude(Entry& entry, lxd::Result<nlohmann::json> outcome);

  static constexpr std::size_t worker_count = 8;
  static constexpr std::size_t max_waiters = 256;  // per operation: a client polling /wait forever

  std::mutex mu_;
  std::condition_variable work_ready_;
  std::condition_variable work_done_;
  std::deque<Queued> queue_;
  std::vector<std::thread> workers_;
  std::size_t busy_ = 0;
  bool shutting_down_ = false;
  std::string location_;
  std::chrono::seconds keep_finished_;
  std::function<Clock::time_point()> now_;
  std::function<void(const nlohmann::json&)> changed_;
  OperationJournal journal_;
  std::map<std::string, Entry> table_;
};

// "Running", "Cancelled", ... for a status code (lxd-protocol.md §1.4).
[[nodiscard]] std::string status_name(int code);

// A random version 4 UUID, for operation ids.
[[nodiscard]] std::string random_uuid();
// 64 hex digits from 32 random bytes (OpenSSL), for secrets.
[[nodiscard]] std::string random_secret();

}  // namespace berth::daemon
