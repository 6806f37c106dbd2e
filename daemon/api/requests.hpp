#pragma once
// What berthd's API reads from a client, parsed once and in one place: each request body (as
// Call::json_object gives it) into a value, before any handler looks at the database, the
// instances or an operation. Pure functions of their input, any thread; a body of the wrong shape
// or types is an invalid_argument (400) naming the field, never an exception. What a request asks
// of things that exist (an instance of that name, a profile it lists, an image it names) is the
// handler's and Instances' to check afterwards.

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "daemon/images/image_pull.hpp"
#include "daemon/instances/instances.hpp"
#include "daemon/instances/rootfs_files.hpp"
#include "providers/lxd/result.hpp"

namespace berth::daemon::api {

using lxd::Result;

// ---- /1.0 ----

// PUT and PATCH /1.0: the config keys in the request's order.
struct ServerPut {
  struct Entry {
    std::string key;
    // The value to store, "" to remove the key; nullopt keeps the stored one (core.trust_password:
    // true, as GET /1.0 shows a password that is set).
    std::optional<std::string> value;
  };
  std::vector<Entry> config;
  // Why the config cannot be stored (an unknown key, a value of the wrong type or form). Kept
  // apart from the parse error: LXD checks the ETag first and then the keys.
  std::optional<lxd::Error> invalid;
};

// Errors: config neither an object nor null.
[[nodiscard]] Result<ServerPut> parse_server_put(const nlohmann::json& body);

// POST /1.0/certificates, as LXD's CertificatesPost reads it: fields of another type count as
// absent (an untrusted client is answered 403 either way).
struct CertificateAdd {
  std::string name;
  std::string type;
  std::string certificate;  // base64 of DER
  std::string password;     // the trust password or a certificate add token
  bool token = false;
  bool restricted = false;
  std::vector<std::string> projects;
};

[[nodiscard]] CertificateAdd parse_certificate_add(const nlohmann::json& body);

// ---- instances ----

// POST /1.0/instances: the request, before it is checked against what exists. `image` holds the
// fingerprint or, when there is none, the alias the source names (a migration's base-image);
// `profiles` is {"default"} when the request gives none (null). A migration (source type
// "migration") in pull mode names the source's operation, its control and fs secrets and its
// certificate; in push mode none of them; `migration` holds them.
[[nodiscard]] Result<CreateRequest> parse_instance_create(const nlohmann::json& body);

// PUT and PATCH /1.0/instances/NAME.
struct InstancePut {
  std::map<std::string, std::string> config;
  std::map<std::string, std::map<std::string, std::string>> devices;
  std::optional<std::vector<std::string>> profiles;  // nullopt: absent or null, left as they are
  std::string restore;                               // PUT: a snapshot, "NAME/SNAP" or "SNAP"
};

[[nodiscard]] Result<InstancePut> parse_instance_put(const nlohmann::json& body);

// PUT /1.0/instances/NAME/state.
[[nodiscard]] Result<StateChange> parse_state_change(const nlohmann::json& body);

// POST /1.0/instances/NAME and POST /1.0/instances/NAME/snapshots/SNAP (a rename; migration is
// refused): the new name, not empty.
[[nodiscard]] Result<std::string> parse_rename(const nlohmann::json& body);

// POST /1.0/instances/NAME with migration true: a migration source (lxd-protocol.md §4.1 A). An
// absent `live` means true, as LXD reads it. With `target` (push mode) this host dials the
// target's operation, pinned to its certificate; without, the target (or a relaying client)
// connects to this host's. A move to another pool or project on this host is refused.
struct MigrationTarget {
  std::string operation;  // https://HOST:PORT/1.0/operations/ID
  std::map<std::string, std::string> secrets;
  std::string certificate;  // PEM
};
struct MigrationSourceRequest {
  bool live = true;
  bool instance_only = false;
  std::optional<MigrationTarget> target;
};
// Whether the body asks for a migration (migration: true); errors: migration not a boolean.
[[nodiscard]] Result<bool> is_migration(const nlohmann::json& body);
[[nodiscard]] Result<MigrationSourceRequest> parse_migration_source(const nlohmann::json& body);

// POST /1.0/instances/NAME/snapshots.
struct SnapshotCreate {
  std::string name;                                              // "": the next free snapN
  std::optional<std::chrono::system_clock::time_point> expires;  // none (null or Go's zero time): never
};

[[nodiscard]] Result<SnapshotCreate> parse_snapshot_create(const nlohmann::json& body);

// ---- profiles ----

// A profile's stored document from a request's config, devices and description, checked as an
// instance's are.
[[nodiscard]] Result<nlohmann::json> parse_profile(const nlohmann::json& body);

// The `name` of POST /1.0/profiles (a new profile, `creating`) or of a rename: not empty, no '/'
// (and for a new one not "." or "..").
[[nodiscard]] Result<std::string> parse_profile_name(const nlohmann::json& body, bool creating);

// ---- images ----

// POST /1.0/images with a JSON body: a copy from another server, or a publish.
struct ImageCreate {
  std::optional<PullSource> pull;  // source type "image", mode "pull"
  // Publish (source type "instance", "container" or "snapshot"): the instance, and the snapshot
  // ("" for the instance itself).
  std::string instance;
  std::string snapshot;
  bool is_public = false;
  std::string filename;
  // null or absent: the image's own properties; an object (even empty) replaces them, as LXD does.
  std::optional<std::map<std::string, std::string>> properties;
  std::vector<std::pair<std::string, std::string>> aliases;  // name, description
};

[[nodiscard]] Result<ImageCreate> parse_image_create(const nlohmann::json& body);

// PUT or PATCH /1.0/images/FP: the image's stored document `current` with the request applied.
[[nodiscard]] Result<nlohmann::json> apply_image_put(const nlohmann::json& current, const nlohmann::json& body,
                                                     bool patch);

// POST /1.0/images/aliases, and what PUT, PATCH and POST (rename) of an alias carry.
struct AliasRequest {
  std::string name;
  std::optional<std::string> target;       // a fingerprint or prefix; nullopt: absent
  std::optional<std::string> description;  // nullopt: absent
};

// `name_required`: POST (create or rename) needs a name, without '/'.
[[nodiscard]] Result<AliasRequest> parse_alias(const nlohmann::json& body, bool name_required);

// X-LXD-public of an upload.
[[nodiscard]] bool header_truthy(const std::string& value);

// ---- exec and files ----

// A message on an exec's control channel ({"command":"window-resize","args":{"width":"80",
// "height":"24"}} or {"command":"signal","signal":15}); nullopt for anything else, which is
// ignored, as LXD ignores it.
struct ExecControl {
  enum class Kind { resize, signal };
  Kind kind = Kind::resize;
  int width = -1;  // resize: -1 where the number is missing or unreadable
  int height = -1;
  int signal = 0;  // signal: 1 .. NSIG-1
};

[[nodiscard]] std::optional<ExecControl> parse_exec_control(const std::string& message);

// The X-LXD-uid, X-LXD-gid, X-LXD-mode, X-LXD-type and X-LXD-write headers of a file push ("" for
// a missing one), as LXD's ParseLXDFileHeaders reads them; the content is the caller's.
struct FileHeaders {
  std::string uid;
  std::string gid;
  std::string mode;
  std::string type;
  std::string write;
};

[[nodiscard]] RootfsWrite parse_file_headers(const FileHeaders& headers);

}  // namespace berth::daemon::api
