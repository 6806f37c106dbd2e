#pragma once
// The LXD provider's full capability: carrying out plan actions (ActionExecutor) and inspecting
// what an interrupted apply left (Recoverer: read-only, it plans recovery actions).
//
// Every call that changes a host is journaled first (intent) and its result after. Journal steps:
//   create          launch, same-remote copy       {remote, instance, source...}
//   image-secret    launch from another remote     {remote, fingerprint}
//   update          PUT config/devices/profiles     {remote, instance, changes}
//   clear-restart-pending  restart action: the mark removed after the restart  {remote, instance}
//   start | stop | stop-force | freeze | unfreeze | restart   {remote, instance}
//   transfer        umbrella over a cross-remote copy/move (and over finish/undo_transfer):
//                   {kind, source, target, token, mark, source_state {etag, status, snapshots}}
//   snapshot | delete-snapshot                      {remote, instance, snapshot}
//   migrate-source  cross-remote copy/move: POST on the source  {kind, source}
//   image-secret-revoke  the unused image secret operation cancelled  {remote, fingerprint}
//   image-fetch     recreate from an image server: the host fetches the image first  {remote, instance, image}
//   image-fetch-remove   that image removed from the host's store again  {remote, instance, image}
//   migrate         the target pulls                {kind, source, target, source_operation}; result
//                   {target_operation, target_etag}: the marked target as the transfer left it
//   verify          move: target checked against the source; result {target_etag, source_etag}
//   unmark          user.berth.incomplete removed from the target; result {target_etag} after it
//   delete-target   a failed transfer's partial target removed
//   delete-source   move: the verified move's source removed
//   delete          delete_ action
//   push            push action: one file written with the file API   {remote, instance, path}
//   record-files    push action: the pushed files' digests recorded (user.berth.files)  {remote, instance}
//   exec            exec action: the command run with recorded output  {remote, instance, command (its name)}
//   record-exec     exec action: the command recorded as run (user.berth.exec)  {remote, instance}
// Details never carry secrets: operation URLs only, never the migration or image secrets.

#include <chrono>
#include <memory>

#include "providers/lxd/client.hpp"
#include "providers/lxd/client_config.hpp"
#include "providers/provider.hpp"

namespace berth::lxd {

struct ExecutorOptions {
  Timeouts timeouts;
  // A graceful stop (and restart) gets this long before it is forced.
  std::chrono::seconds stop_timeout{30};
  // Server-side timeout of each /wait call: how often progress and the cancel flag are looked at.
  std::chrono::seconds poll{1};
};

class ServerImageCache;

class LxdExecutor final : public providers::ActionExecutor {
 public:
  explicit LxdExecutor(ClientConfig config, ExecutorOptions options = {});
  ~LxdExecutor() override;
  // Thread-safe: each call opens its own connections and shares nothing but what image servers
  // answered (read once per executor, that is per apply).
  providers::ExecuteResponse execute(const providers::ExecuteRequest& request) override;

 private:
  ClientConfig config_;
  ExecutorOptions options_;
  std::unique_ptr<ServerImageCache> images_;
};

class LxdRecoverer final : public providers::Recoverer {
 public:
  explicit LxdRecoverer(ClientConfig config, ExecutorOptions options = {});
  providers::SettleResponse settle(const providers::SettleRequest& request) override;

 private:
  ClientConfig config_;
  ExecutorOptions options_;
};

[[nodiscard]] std::unique_ptr<providers::ActionExecutor> make_executor(ClientConfig config,
                                                                       ExecutorOptions options = {});
[[nodiscard]] std::unique_ptr<providers::Recoverer> make_recoverer(ClientConfig config, ExecutorOptions options = {});

}  // namespace berth::lxd
