#pragma once
// The request bodies of a pull-mode migration between two LXD daemons (lxd-protocol.md §4.1) and the
// check that a moved container arrived whole. Pure: no I/O, so every rule here is unit-tested.
//
//   1. POST <src>/1.0/instances/<c>[/snapshots/<s>]  migration_source_request  -> websocket op + secrets
//   2. POST <dst>/1.0/instances                       migration_target_request  -> task op; dst dials src
//   3. wait on the dst op; on failure cancel the src op and delete a partial target.

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/model/desired.hpp"
#include "providers/lxd/wire.hpp"

namespace berth::lxd {

enum class TransferKind {
  copy,  // instance only, volatile.* dropped (but volatile.base_image), declared config overlaid
  move,  // with snapshots, volatile.* kept but volatile.last_state.power, as `lxc move` does
};

// `live` is always present and false: a missing `live` means true on an LXD source, which would ask
// for a CRIU migration of a running container. `target_name` is empty for an instance (as lxc sends it) but
// required for a snapshot source (LXD 5.0.2 snapshotPost refuses an empty name, as lxc's
// CopyInstanceSnapshot sends the new instance's name).
[[nodiscard]] nlohmann::json migration_source_request(const std::string& target_name, bool with_snapshots);

// The config a transfer's target is created with, from the source's local config.
[[nodiscard]] model::ConfigMap transfer_config(const model::ConfigMap& source, TransferKind kind);

struct TargetOverlay {
  std::string name;
  model::ConfigMap config;                           // declared keys, set over the source's
  model::DeviceMap devices;                          // declared devices, replacing the source's
  std::optional<std::vector<std::string>> profiles;  // declared, else the source's
  std::optional<bool> ephemeral;                     // declared, else the source's
  std::optional<std::string> description;            // declared, else the source's
  std::string fleet_name;                            // copy only: the ownership mark
  std::string incomplete_marker;                     // value of incomplete_key until verified
};

// The body of POST <dst>/1.0/instances. `source` is the source instance (or snapshot) as read.
// `secrets` go only into this body, which is never logged or journaled.
[[nodiscard]] nlohmann::json migration_target_request(const wire::Instance& source, TransferKind kind,
                                                      const TargetOverlay& overlay,
                                                      const std::string& source_operation_url,
                                                      const nlohmann::json& secrets,
                                                      const std::string& source_certificate, bool with_snapshots);

// The secrets of a pull-mode source operation's metadata: every string value ("control", "fs", ...).
[[nodiscard]] nlohmann::json secrets_of(const nlohmann::json& operation_metadata);

// Whether a move's target is a faithful copy of its source: same snapshot names (in order), same
// local config except volatile.* and our incomplete marker, same devices and profiles, and the
// declared keys set. Returns what differs, or nullopt.
[[nodiscard]] std::optional<std::string> verify_move(const wire::Instance& source,
                                                     const std::vector<std::string>& source_snapshots,
                                                     const wire::Instance& target,
                                                     const std::vector<std::string>& target_snapshots,
                                                     const model::ConfigMap& declared);

// Recovery's proofs (the journal's evidence against what a host shows now), one home for the
// recoverer that plans from them and the executor that checks them again before it acts.
// `proof` is a recovery action's proof: {mark, marked_etag?, target_etag?, source_state}.

// Why `target` (the Instance object and its ETag) is no longer exactly what the interrupted
// transfer left: marked with its token (and, once recorded, its ETag), or after the unmark with the
// recorded ETag. nullopt: it is the transfer's own, untouched.
[[nodiscard]] std::optional<std::string> target_changed(const wire::Instance& target, const std::string& etag,
                                                        const nlohmann::json& proof);

// Why a move's source is no longer as the transfer recorded it (`source_state`: etag, snapshots)
// or not stopped. nullopt: stopped and unchanged.
[[nodiscard]] std::optional<std::string> source_changed(const wire::Instance& source, const std::string& etag,
                                                        const std::vector<std::string>& snapshots,
                                                        const nlohmann::json& source_state);

}  // namespace berth::lxd
