#pragma once
// The channels of websocket operations (lxd-protocol.md §1.3, §4.2): what a client connects with
// `GET /1.0/operations/{id}/websocket?secret=S`. An operation that hands out secrets (exec's
// stdin/stdout/stderr/control, migration's control and fs) registers, per secret, what to do with
// the socket; each secret connects once, and all of them die with the operation.
//
// Thread-safe: one mutex over the table.

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "daemon/operations/operations.hpp"
#include "http/server.hpp"

namespace berth::daemon::api {

class OperationSockets {
 public:
  using Accept = std::function<void(std::shared_ptr<http::WebSocket>)>;

  explicit OperationSockets(Operations& operations) : operations_(operations), state_(std::make_shared<State>()) {}

  // The channels of the Running websocket operation `id`, by secret. They are forgotten when the
  // operation ends. False when there is no such operation (nothing is registered then).
  bool add(const std::string& id, std::map<std::string, Accept> channels);

  // The channel `secret` opens, used up; nullopt when the operation has none such (any more). The
  // secret is compared in constant time.
  [[nodiscard]] std::optional<Accept> take(const std::string& id, const std::string& secret);

 private:
  struct State {
    std::mutex mu;
    std::map<std::string, std::map<std::string, Accept>> table;
  };
  Operations& operations_;
  // Shared with the clean-up each operation's end runs, which may come after this is gone.
  std::shared_ptr<State> state_;
};

}  // namespace berth::daemon::api
