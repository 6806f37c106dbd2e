#pragma once
// LXD JSON -> live model, separate from the transport so that it is testable with canned JSON.

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/model/live.hpp"
#include "providers/lxd/result.hpp"

namespace berth::lxd {

using LiveInstances = std::map<std::string, model::LiveInstance>;

// `GET /1.0/instances?recursion=1` metadata: an array of Instance objects (wire.hpp checks every
// field). Snapshots are left empty and digests unset. Limits come from the expanded config (the
// local config when a daemon sends none).
[[nodiscard]] Result<LiveInstances> parse_instances(const nlohmann::json& metadata);

// `GET /1.0/storage-pools/<pool>/volumes?recursion=1` metadata: adds each instance snapshot volume
// ("c1/snap0", type container or virtual-machine, in `project`: the project `instances` were read
// in) to its instance. Volumes of instances not in `instances` are ignored (created after the
// instance list was read). An error if the metadata is not a list of volumes.
[[nodiscard]] Result<void> add_snapshot_volumes(const nlohmann::json& metadata, LiveInstances& instances,
                                                std::string_view project = model::default_project);

// `GET /1.0/instances/<name>/snapshots?recursion=1` metadata: replaces the instance's snapshots.
[[nodiscard]] Result<void> set_instance_snapshots(const nlohmann::json& metadata, model::LiveInstance& instance);

// Oldest first when every snapshot has a creation time, else by name (see state_reader.cpp: LXD 5.0's
// volume listing carries no creation time for instance snapshots). Then sets each digest.
void finish_instances(LiveInstances& instances);

// `GET /1.0/resources` metadata -> what the host has. An error, naming the field, when a total is of
// the wrong type, missing or 0 (no host has no CPU or no memory: the answer is broken), or out of
// range.
[[nodiscard]] Result<model::HostResources> parse_host_resources(const nlohmann::json& metadata);

// `GET /1.0/cluster/members?recursion=1` metadata -> the members by name. An error when a member
// is malformed, has a name that is not one, or is listed twice.
[[nodiscard]] Result<std::map<std::string, model::ClusterMember>> parse_members(const nlohmann::json& metadata);

// `GET /1.0/images/aliases?recursion=1` metadata -> alias name -> the fingerprint it points at
// (empty when the listing gave names only).
[[nodiscard]] Result<model::ImageAliases> parse_image_aliases(const nlohmann::json& metadata);

}  // namespace berth::lxd
