#pragma once
// How the engine reaches a host daemon. Read-only capability (state) is separate from
// full capability (actions): `berth plan` only ever holds a StateReader.
// Requests and responses are plain structs; a response carries its own diagnostics.

#include <string>
#include <vector>

#include "engine/diag/diagnostics.hpp"
#include "engine/model/desired.hpp"
#include "engine/model/live.hpp"

namespace berth::providers {

struct ReadStateRequest {
  model::RemoteSpec remote;
  bool read_image_aliases = false;  // a declared image lives on this remote
};

struct ReadStateResponse {
  // status is unknown when the remote could not be read; `error` says why and names the remote.
  model::LiveRemote live;
  diag::Diagnostics diagnostics;
};

class StateReader {
 public:
  virtual ~StateReader() = default;
  // Reads one remote in bulk. Thread-safe: the caller reads all remotes in parallel.
  virtual ReadStateResponse read_state(const ReadStateRequest& request) = 0;
};

}  // namespace berth::providers
