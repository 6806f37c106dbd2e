#pragma once
// The LXD 5.0 API's answers as typed values, split as LXD's shared/api splits them, and parsed from
// JSON in this one place. A daemon's answer is input like a fleet file: every parser checks each
// field it reads and returns an Error that names the field (never throws, never trusts a type).
//
// Conventions (what LXD's Go encoder produces):
//  - null is absent: Go renders a nil map or slice as null (a null list reads as empty).
//  - Absent optional fields take their zero value; a field of the wrong type is an error, because a
//    guessed value could make berth change the wrong thing. One tolerance: a config or device value
//    that is a boolean or a number (LXD sends strings) is read as its JSON text ("true", "2").
//  - Unknown fields are ignored: newer daemons add fields.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/model/desired.hpp"
#include "providers/lxd/result.hpp"

namespace berth::lxd::wire {

// The writable part of an instance (api.InstancePut): what PUT /1.0/instances/<name> takes.
struct InstancePut {
  std::string architecture;
  model::ConfigMap config;   // local config, not expanded
  model::DeviceMap devices;  // local devices, not expanded
  bool ephemeral = false;
  std::optional<std::vector<std::string>> profiles;  // absent: null (creating: the default profile)
  std::string description;

  bool operator==(const InstancePut&) const = default;
};

// An instance (api.Instance) or an instance snapshot (api.InstanceSnapshot): the read model.
struct Instance : InstancePut {
  std::string name;
  std::string type = "container";
  std::string status;      // "Running", as reported; empty for a snapshot
  int status_code = 0;     // 103 running, 102 stopped, 110 frozen
  std::string created_at;  // RFC 3339; empty for Go's zero time
  std::string location;
  bool stateful = false;
  // The config with its profiles' config applied (LXD sends it in every listing); unset when not sent.
  std::optional<model::ConfigMap> expanded_config;
  // Writable fields the answer did not carry at all (null counts as carried). Sending such an
  // instance back in a PUT would reset them, so a PUT base must have none (LXD always sends them).
  std::vector<std::string> missing;

  bool operator==(const Instance&) const = default;
};

// An entry of GET /1.0/instances/<name>/snapshots?recursion=1, as far as ordering needs it.
struct Snapshot {
  std::string name;  // without "<instance>/"
  std::string created_at;
};

// An entry of GET /1.0/storage-pools/<pool>/volumes?recursion=1.
struct Volume {
  std::string name;  // "c1", "c1/snap0"
  std::string type;  // container | virtual-machine | custom | image
  std::string project;
  std::string created_at;
};

struct ImageAlias {
  std::string name;
  std::string target;  // the image fingerprint
  std::string type;
  std::string description;
};

// GET /1.0 (api.Server). `environment` is only sent to trusted clients.
struct Environment {
  std::string certificate;  // PEM
  std::vector<std::string> addresses;
  std::string server_version;
  bool server_clustered = false;
  std::string kernel_architecture;  // "x86_64": the host's own architecture, LXD's name
};
struct Server {
  std::string auth;  // trusted | untrusted
  std::vector<std::string> api_extensions;
  std::optional<Environment> environment;
};

// A member of an LXD cluster (api.ClusterMember, GET /1.0/cluster/members?recursion=1).
struct ClusterMember {
  std::string server_name;
  std::string status;  // Online, Offline, Evacuated, ...
  std::string message;
  std::vector<std::string> groups;
};

// GET /1.0/resources (api.Resources), as far as placement reads it. Absent fields read as 0.
struct Resources {
  std::uint64_t cpu_total = 0;     // cpu.total: CPU threads of all sockets
  std::uint64_t memory_total = 0;  // memory.total: bytes
};

// An operation (api.Operation).
struct Operation {
  std::string id;
  std::string operation_class;  // task | websocket | token
  std::string description;
  std::string status;                                         // "Running", "Success", "Failure", ...
  int status_code = 0;                                        // 103 running, 200 success, 400 failure, 401 cancelled
  std::string err;                                            // set when it failed
  std::map<std::string, std::vector<std::string>> resources;  // "instances" -> ["/1.0/instances/c1"]
  // Free-form by design (progress, websocket secrets, a token's secret): read with string_in().
  nlohmann::json metadata = nlohmann::json::object();

  [[nodiscard]] bool is_final() const { return status_code >= 200; }
  [[nodiscard]] bool succeeded() const { return status_code == 200; }
};

// Reading free-form JSON (operation metadata, and berth's own journal and proofs, which a damaged
// state file or saved plan can give any shape) without trusting its shape.
// The string under `key` of a JSON object, if it is one.
[[nodiscard]] std::optional<std::string> string_in(const nlohmann::json& object, std::string_view key);
// The string under `key`, or "".
[[nodiscard]] std::string text_in(const nlohmann::json& object, std::string_view key);
// The object under `key`, or an empty object.
[[nodiscard]] nlohmann::json object_in(const nlohmann::json& object, std::string_view key);
// The boolean under `key`, or false.
[[nodiscard]] bool flag_in(const nlohmann::json& object, std::string_view key);

// Each parser takes the envelope's metadata. Messages name the field ("instance c1: status_code is
// a string, not an integer"); callers prefix the request.
[[nodiscard]] Result<Instance> parse_instance(const nlohmann::json& metadata);
[[nodiscard]] Result<std::vector<Instance>> parse_instances(const nlohmann::json& metadata);
[[nodiscard]] Result<std::vector<Snapshot>> parse_snapshots(const nlohmann::json& metadata);
[[nodiscard]] Result<std::vector<Volume>> parse_volumes(const nlohmann::json& metadata);
[[nodiscard]] Result<ImageAlias> parse_image_alias(const nlohmann::json& metadata);
// Either form: objects (recursion=1) or "/1.0/images/aliases/<name>" URLs (recursion=0).
[[nodiscard]] Result<std::vector<ImageAlias>> parse_image_aliases(const nlohmann::json& metadata);
[[nodiscard]] Result<Server> parse_server(const nlohmann::json& metadata);
[[nodiscard]] Result<Resources> parse_resources(const nlohmann::json& metadata);
[[nodiscard]] Result<std::vector<ClusterMember>> parse_cluster_members(const nlohmann::json& metadata);
[[nodiscard]] Result<Operation> parse_operation(const nlohmann::json& metadata);
// GET /1.0/operations?recursion=1: {"running": [...], "success": [...], ...}, every group.
[[nodiscard]] Result<std::vector<Operation>> parse_operations(const nlohmann::json& metadata);
// A recursion=0 listing ("/1.0/storage-pools/default", ...) -> the last path segments, decoded.
[[nodiscard]] Result<std::vector<std::string>> parse_names(const nlohmann::json& metadata);

// The JSON of the writable part, as PUT and POST bodies carry it: what was read goes back as it was
// (absent profiles as null, Go's nil).
[[nodiscard]] nlohmann::json to_json(const InstancePut& put);

}  // namespace berth::lxd::wire
