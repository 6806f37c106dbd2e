#pragma once
// Both ends of LXD 5.0.2's pull-mode instance migration (lxd-protocol.md §4, docs/migration.md),
// which `lxc copy`, `lxc move` and berth drive between hosts:
//
// - source: POST /1.0/instances/NAME {migration: true} makes a websocket operation whose metadata
//   holds one secret per channel (control, fs). The target connects both, authenticated by the
//   secret alone, within 10 s; berthd then offers the instance (MigrationHeader), reads the answer,
//   sends each snapshot and then the volume with rsync over fs (twice when it runs: the second
//   pass frozen), and waits for the target's MigrationControl. The operation ends with it; a
//   DELETE cancels it. Nothing on this host changes: the client deletes the source after a move.
// - target: POST /1.0/instances {source: {type: migration, mode: pull, ...}} makes a task that
//   dials the source's channels pinned to source.certificate, answers its offer, receives into a
//   journalled volume (pre-filled from source.base-image when this host holds it) and reports
//   success on control. A failure or a crash leaves nothing behind (Instances::receive).
//
// Live migration (CRIU) is refused on both ends, clearly and at once.
//
// Thread contract: the routes run on the API's threads; a source's transfer on a thread of its
// own, a target's on an operations worker. stop() ends them all (rsync killed, channels closed).

#include <atomic>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "daemon/api/operation_sockets.hpp"
#include "daemon/api/requests.hpp"
#include "daemon/instances/instances.hpp"
#include "daemon/operations/operations.hpp"
#include "http/server.hpp"

namespace berth::daemon::api {

class Migrations {
 public:
  // `netcat`: the executable that answers "netcat FD" (berthd-helper or berthd).
  Migrations(Instances& instances, Operations& operations, OperationSockets& sockets, std::filesystem::path netcat);
  ~Migrations() { stop(); }
  Migrations(const Migrations&) = delete;
  Migrations& operator=(const Migrations&) = delete;

  // POST /1.0/instances/NAME (or /snapshots/SNAPSHOT: that snapshot goes, as an instance of its
  // own) with migration: true.
  [[nodiscard]] http::Response source(const std::string& name, const std::string& snapshot,
                                      const MigrationSourceRequest& request);
  // POST /1.0/instances with a migration source (`request.migration` set), as parsed and checked.
  [[nodiscard]] http::Response target(CreateRequest request, const nlohmann::json& body);

  // Cancels every transfer and joins the sources' threads. Idempotent; no new one starts after.
  void stop();

 private:
  struct Transfer;
  void run_source(const std::string& op_id, const std::string& name, const std::string& snapshot,
                  const MigrationSourceRequest& request, const std::shared_ptr<Transfer>& transfer);
  Result<void> run_target(const CreateRequest& request, const std::string& architecture,
                          const std::shared_ptr<Transfer>& transfer);
  std::shared_ptr<Transfer> track();

  Instances& instances_;
  Operations& operations_;
  OperationSockets& sockets_;
  std::filesystem::path netcat_;

  std::mutex mu_;
  bool stopping_ = false;
  std::vector<std::weak_ptr<Transfer>> transfers_;
  std::vector<std::thread> threads_;
};

}  // namespace berth::daemon::api
