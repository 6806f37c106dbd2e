#pragma once
// Live state: what a remote's daemon reported, in one bulk read per remote.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "engine/model/desired.hpp"

namespace berth::model {

// Power state as observed. `other` covers transitional and error states (Starting, Error, ...).
enum class LivePower { running, stopped, frozen, other };

[[nodiscard]] std::string_view to_string(LivePower s);
// From LXD's status_code (103 running, 102 stopped, 110 frozen, ...).
[[nodiscard]] LivePower live_power_from_status_code(int status_code);

struct LiveSnapshot {
  std::string name;        // "snap0", without the instance prefix
  std::string created_at;  // as the daemon reported it (RFC 3339)
};

struct LiveInstance {
  std::string name;
  std::string project{default_project};
  bool ephemeral = false;
  std::string description;
  std::string type = "container";  // container | virtual-machine
  std::string architecture;
  std::string status;  // "Running", as reported
  int status_code = 0;
  LivePower power = LivePower::other;
  ConfigMap config;  // local config (not expanded)
  // limits.cpu and limits.memory of the expanded config (a profile's included), as placement counts
  // what the instance takes of its host; absent keys: no limit.
  ConfigMap limits;
  DeviceMap devices;  // local devices (not expanded)
  std::vector<std::string> profiles;
  std::vector<LiveSnapshot> snapshots;  // by name from the bulk read (LXD 5.0 lists no creation times there)
  bool snapshots_known = true;          // false if the read could not list them
  std::string created_at;
  std::string digest;  // "sha256:<hex>" over what the plan compares; set by digest_of()
  // On an LXD cluster: the member it lives on (LXD's `location`); empty on a standalone host.
  std::string location;
  // What LXD 5.0 lists for an instance on a member it cannot reach (status code 112, no type and
  // no config): it exists, but nothing else about it is known. Never changed, moved or deleted.
  bool placeholder = false;

  [[nodiscard]] bool owned_by(std::string_view fleet_name) const;
  [[nodiscard]] bool has_snapshot(std::string_view snap) const;
};

enum class RemoteStatus { ok, unknown };

// A member of an LXD cluster (GET /1.0/cluster/members).
struct ClusterMember {
  std::string name;
  std::string status;  // as reported: Online, Offline, Evacuated, ...
  std::string message;
  std::vector<std::string> groups;  // its cluster groups
  [[nodiscard]] bool online() const { return status == "Online"; }
  friend bool operator==(const ClusterMember&, const ClusterMember&) = default;
};

// What a host has, as it reports it (GET /1.0/resources): CPU threads and memory in bytes.
struct HostResources {
  std::int64_t cpu = 0;
  std::uint64_t memory = 0;
  friend bool operator==(const HostResources&, const HostResources&) = default;
};

// Image alias name -> the fingerprint it points at now.
using ImageAliases = std::map<std::string, std::string>;

struct LiveRemote {
  std::string name;
  RemoteStatus status = RemoteStatus::unknown;
  std::string error;                              // why it is unknown; never contains secrets
  std::map<std::string, LiveInstance> instances;  // by instance_key(project, name)
  std::optional<ImageAliases> image_aliases;      // read when a declared image lives here (remote's project)
  // The same, in each other project whose containers launch from an image that lives on this remote
  // (a project with features.images has its own aliases).
  std::map<std::string, ImageAliases> project_image_aliases;
  // Read when placement may need it (a candidate of a policy without a declared capacity):
  // unset with `resources_error` when the read failed, unset and empty when it was not read.
  std::optional<HostResources> resources;
  std::string resources_error;
  // Set when the remote is an LXD cluster (GET /1.0: environment.server_clustered): its members,
  // by name. Then `resources` is unset and each member's are in `member_resources` (by name; a
  // member whose read failed is missing, with the reason in `resources_error`).
  std::optional<std::map<std::string, ClusterMember>> members;
  std::map<std::string, HostResources> member_resources;
};

// An alias on an image server, as asked at plan time.
struct ServerImageQuery {
  ImageServer server;
  std::string alias;
  friend auto operator<=>(const ServerImageQuery&, const ServerImageQuery&) = default;
};

// What the image server answered: the fingerprint of the image the alias names, per LXD
// architecture name ("x86_64": a simplestreams alias names one image per architecture), or under ""
// for every architecture (an LXD server's alias). `error` set: it does not resolve (the server
// could not be read, or has no such alias), and says why, naming the server.
struct ServerImage {
  std::map<std::string, std::string> fingerprints;
  std::string error;
};

struct LiveState {
  std::map<std::string, LiveRemote> remotes;  // one entry per declared remote
  // Aliases on image servers that declared, unpinned images name (read by the provider).
  std::map<ServerImageQuery, ServerImage> server_images;
};

// The fingerprint of a server image for a host of architecture `architecture` (LXD's name): that
// architecture's, else one it runs as a personality (i686 on x86_64, armhf on aarch64, ...), else the
// one for every architecture; nullopt when there is none. An empty `architecture` (not known yet)
// takes the first there is.
[[nodiscard]] std::optional<std::string> fingerprint_for(const ServerImage& image, const std::string& architecture);

// How an instance is keyed in LiveRemote::instances, the plan's basis and addresses: its name in
// the default project, "PROJECT/NAME" in another (a name has no '/', so keys of two projects never
// collide).
[[nodiscard]] std::string instance_key(std::string_view project, std::string_view name);

// What a saved plan pins: a digest over config, devices, profiles, power state, snapshots,
// ephemeral and description (the project is part of the instance's key).
// Computed from the bulk read, so recomputing it costs no extra request.
[[nodiscard]] std::string digest_of(const LiveInstance& instance);

}  // namespace berth::model
