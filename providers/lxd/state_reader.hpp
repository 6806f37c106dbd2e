#pragma once
// The LXD provider's read-only capability: one bulk read of a remote's live state.

#include <memory>

#include "providers/lxd/client.hpp"
#include "providers/lxd/client_config.hpp"
#include "providers/provider.hpp"

namespace berth::lxd {

enum class SnapshotRead {
  // One volume listing per storage pool: names only, ordered by name (LXD 5.0 reports no creation
  // time there). Constant number of requests however many instances: what `berth plan` needs.
  bulk_names,
  // Additionally one request per instance that has snapshots, for creation times and true
  // oldest-first order. For callers that need ages; not for planning.
  with_creation_times,
};

struct StateReaderOptions {
  Timeouts timeouts;
  SnapshotRead snapshots = SnapshotRead::bulk_names;
  // Read instances on one connection while a second one reads server info, pools, volumes and
  // aliases. Off: everything in sequence on one kept-alive connection.
  bool two_connections = true;
};

class LxdStateReader final : public providers::StateReader {
 public:
  explicit LxdStateReader(ClientConfig config, StateReaderOptions options = {});
  // Never throws for I/O problems: an unreachable, mis-pinned or untrusting remote comes back with
  // status unknown and an error naming the remote. Thread-safe (no state shared between calls).
  providers::ReadStateResponse read_state(const providers::ReadStateRequest& request) override;

 private:
  ClientConfig config_;
  StateReaderOptions options_;
};

[[nodiscard]] std::unique_ptr<providers::StateReader> make_state_reader(ClientConfig config,
                                                                        StateReaderOptions options = {});

}  // namespace berth::lxd
