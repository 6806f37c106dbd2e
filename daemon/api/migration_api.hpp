#pragma once
// Both ends of LXD 5.0.2's instance migration (lxd-protocol.md §4, docs/migration.md), which
// `lxc copy`, `lxc move` and berth drive between hosts. Two channels join the source and the
// target, control and fs; who connects them is the mode:
//
// - pull (the default): the source's POST /1.0/instances/NAME {migration: true} makes a websocket
//   operation whose metadata holds one secret per channel; the target's POST /1.0/instances
//   {source: {type: migration, mode: pull, operation, secrets, certificate}} makes a task that
//   dials them, pinned to the source's certificate.
// - push: the target's POST {source: {type: migration, mode: push}} makes the websocket
//   operation; the source's POST {migration: true, target: {operation, secrets, certificate}}
//   dials it before it answers, and its task sends.
// - relay: both make websocket operations (pull's source, push's target), and the client
//   connects to both and copies the frames between them.
// Whoever waits for the channels waits 10 s, as LXD does. Then the source offers the instance
// (MigrationHeader), reads the answer, sends each snapshot and then the volume with rsync over fs
// (twice when it runs: the second pass frozen), and waits for the target's MigrationControl. The
// target receives into a journalled volume (pre-filled from source.base-image when this host
// holds it) and reports success on control; a failure or a crash leaves nothing behind
// (Instances::receive). Nothing on the source changes: the client deletes it after a move. A
// DELETE of a websocket operation cancels its transfer.
//
// Live migration (CRIU) is refused on both ends, clearly and at once.
//
// Thread contract: the routes run on the API's threads (a push source dials from there); a
// transfer behind a websocket operation runs on a thread of its own, one behind a task on an
// operations worker. stop() ends them all (rsync killed, channels closed).

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
#include "daemon/migration/protocol.hpp"
#include "daemon/migration/transfer.hpp"
#include "daemon/operations/operations.hpp"
#include "daemon/storage/pool.hpp"
#include "http/server.hpp"

namespace berth::daemon::api {

class Migrations {
 public:
  // `netcat`: the executable that answers "netcat FD" (berthd-helper or berthd).
  Migrations(Instances& instances, StoragePool& pool, Operations& operations, OperationSockets& sockets,
             std::filesystem::path netcat);
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
  // A websocket operation whose two channels (control, fs), connected by secret, fill `transfer`.
  nlohmann::json accept_channels(const std::string& description, const std::string& name,
                                 const std::shared_ptr<Transfer>& transfer);
  // Waits (as LXD: 10 s) until both channels of such an operation are connected.
  Result<void> await_channels(const std::shared_ptr<Transfer>& transfer);
  // Connects to the other host's operation's channels, pinned to its certificate.
  Result<void> dial_channels(const MigrationTarget& peer, const std::shared_ptr<Transfer>& transfer);
  // Runs `work` on a thread of its own; the operation `op_id` ends with its outcome.
  void spawn(const std::string& op_id, std::function<Result<void>()> work);
  // The two roles, once the channels are there.
  Result<void> send_instance(const std::string& name, const std::string& snapshot,
                             const MigrationSourceRequest& request, const std::shared_ptr<Transfer>& transfer);
  Result<void> receive_instance(const CreateRequest& request, const std::string& architecture,
                                const std::shared_ptr<Transfer>& transfer);
  // A refreshed instance's snapshots, with their creation times.
  Result<std::vector<migration::SinkInput::Local>> local_snapshots(const std::string& name) const;
  // The btrfs streams of each end (after the answer agreed to them).
  Result<void> send_btrfs(const std::string& name, const Outgoing& out, const migration::Agreement& agreed,
                          http::MessageChannel& fs,
                          const std::function<migration::Session(const std::string&)>& session);
  Result<std::vector<StoragePool::Received>> receive_btrfs(
      Arrival& arrival, const migration::Header& offer, const migration::Agreement& agreed,
      const StoragePool::Staging& staging, http::MessageChannel& fs,
      const std::function<migration::Session(const std::string&)>& session);
  std::shared_ptr<Transfer> track();

  Instances& instances_;
  StoragePool& pool_;
  Operations& operations_;
  OperationSockets& sockets_;
  std::filesystem::path netcat_;

  std::mutex mu_;
  bool stopping_ = false;
  std::vector<std::weak_ptr<Transfer>> transfers_;
  struct Worker {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;  // set as its last step: joining it then is quick
  };
  std::vector<Worker> workers_;
};

}  // namespace berth::daemon::api
