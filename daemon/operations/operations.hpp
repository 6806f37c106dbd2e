#pragma once
// berthd's operations (lxd-protocol.md §1.3): what a 202 answer points at. This first part holds
// token operations (certificate add tokens), which never run and stay Running until used,
// cancelled or expired; task and websocket operations, and the events that report every
// transition, come with the instance work.
//
// Thread-safe: one mutex over the table. A finished operation stays readable for `keep_finished`
// (LXD keeps them 5 s; clients read the final state after waiting).

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace berth::daemon {

enum class OperationClass { task, websocket, token };

class Operations {
 public:
  using Clock = std::chrono::system_clock;

  // `changed` is told the operation object at its creation and at every transition (under the
  // table's lock: it must not call back).
  explicit Operations(
      std::string location = "none", std::chrono::seconds keep_finished = std::chrono::seconds{10},
      std::function<Clock::time_point()> now = [] { return Clock::now(); },
      std::function<void(const nlohmann::json& operation)> changed = {});

  // A token operation, Running, with `metadata` (which holds its secret). Returns the operation object.
  nlohmann::json add_token(const std::string& description, nlohmann::json metadata, nlohmann::json resources);

  // The operation object, nullopt when there is none (or it finished long enough ago).
  [[nodiscard]] std::optional<nlohmann::json> get(const std::string& id);
  // Every operation object, by class as `GET /1.0/operations?recursion=1` groups them ("running",
  // "success", "failure", "cancelled").
  [[nodiscard]] std::vector<nlohmann::json> list();

  // Cancels a Running operation that may be cancelled: "" when done, else why not (with `status`,
  // 404 or 400, set to what the API answers).
  std::string cancel(const std::string& id, int& status);

  // Uses up the Running token operation whose metadata.secret is `secret`: it is cancelled (single
  // use) and its metadata returned. nullopt when there is none. The secret is compared in constant time.
  [[nodiscard]] std::optional<nlohmann::json> consume_token(const std::string& secret);

 private:
  struct Entry {
    nlohmann::json object;
    std::optional<Clock::time_point> finished;
  };
  void set_status(Entry& entry, int code);
  void forget_old();

  std::mutex mu_;
  std::string location_;
  std::chrono::seconds keep_finished_;
  std::function<Clock::time_point()> now_;
  std::function<void(const nlohmann::json&)> changed_;
  std::map<std::string, Entry> table_;
};

// "Running", "Cancelled", ... for a status code (lxd-protocol.md §1.4).
[[nodiscard]] std::string status_name(int code);

// A random version 4 UUID, for operation ids.
[[nodiscard]] std::string random_uuid();
// 64 hex digits from 32 random bytes (OpenSSL), for secrets.
[[nodiscard]] std::string random_secret();

}  // namespace berth::daemon
