#pragma once
// POST /1.0/instances/{name}/exec and /1.0/instances/{name}/logs (lxd-protocol.md §3.8).
//
// With wait-for-websocket, exec is a websocket operation: the client connects the channels its
// metadata names (0, 1, 2 and control; an interactive command has 0, a pty, and control), the
// command starts once the required ones are there (5 s at most), and the operation ends with
// `return`, the exit code. Without it, exec is a task: stdin is empty and, with record-output,
// stdout and stderr go to log files named in the metadata's `output`.
//
// Every command runs on a thread of ExecSessions (task-mode ones on an operations worker, tracked
// there too), which kills them all when berthd stops.

#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "daemon/api/operation_sockets.hpp"
#include "daemon/api/router.hpp"
#include "daemon/instances/exec.hpp"
#include "daemon/instances/instances.hpp"
#include "daemon/operations/operations.hpp"

namespace berth::daemon::api {

class ExecSessions {
 public:
  ExecSessions() = default;
  ~ExecSessions() { stop(); }
  ExecSessions(const ExecSessions&) = delete;
  ExecSessions& operator=(const ExecSessions&) = delete;

  // Runs `session` on a thread of its own; false (nothing runs) once stop() began.
  bool launch(std::function<void()> session);
  // A running command that stop() kills, until the returned guard goes; nullptr once stopping
  // (then the caller kills it itself).
  [[nodiscard]] std::shared_ptr<void> track(ExecProcess& process);
  // Kills every running command and joins every session thread. Idempotent.
  void stop();

 private:
  struct Thread {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::mutex mu_;
  bool stopping_ = false;
  std::set<ExecProcess*> running_;
  std::vector<Thread> threads_;
};

// The routes hold references to all of these: they must outlive the router.
void add_exec_routes(Router& router, Instances& instances, Operations& operations, OperationSockets& sockets,
                     ExecSessions& sessions);

// The API extensions these routes implement.
[[nodiscard]] const std::vector<std::string>& exec_extensions();

}  // namespace berth::daemon::api
