#pragma once
// The desired state: what the fleet file declares, after validation and resolution.
// Every name referenced here exists (config/ guarantees it); nothing here talks to a host.

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "engine/diag/diagnostics.hpp"

namespace berth::model {

using ConfigMap = std::map<std::string, std::string>;
using DeviceMap = std::map<std::string, ConfigMap>;  // device name -> its keys

// Power state, as declared. `absent` means: the container must not exist.
enum class DesiredState { running, stopped, frozen, absent };

[[nodiscard]] std::string_view to_string(DesiredState s);
[[nodiscard]] std::optional<DesiredState> desired_state_from_string(std::string_view s);

// A consent a disruptive action needs; from the file (`restart: allowed`) or a CLI flag.
enum class Consent { denied, allowed };

// What a plan does when an existing container runs another image than its `image:` resolves to.
enum class OnImageChange { report, replace };

// What `berth watch` does about a container's drift (drift:). Unset on the container: the watch's --mode.
enum class DriftPolicy { correct, report, ignore };

[[nodiscard]] std::string_view to_string(DriftPolicy p);

// LXD's project when none is named. Requests about instances in it carry no ?project=, and their
// addresses no project part ("a:web"; "a:p/web" in project p): decided in plan::to_string(Address)
// and model::instance_key.
inline constexpr std::string_view default_project = "default";

// What a host offers to placement (a remote's capacity:). A dimension left unset is what the host
// reports (GET /1.0/resources): its CPU threads, its memory.
struct Capacity {
  std::optional<std::int64_t> cpu;      // CPUs
  std::optional<std::uint64_t> memory;  // bytes
  friend bool operator==(const Capacity&, const Capacity&) = default;
};

struct RemoteSpec {
  std::string name;
  std::string url;                         // https://host:port or unix:///path (urls: the first)
  std::optional<std::string> fingerprint;  // sha256 hex (lowercase, no colons) of the server certificate DER
  int parallelism = 4;                     // per-remote bound on concurrent actions (apply)
  diag::SourceLocation where;
  std::string project{default_project};       // project: the default of its containers
  std::map<std::string, std::string> labels;  // labels: what placement selects candidates by
  Capacity capacity;                          // capacity:
  bool drain = false;                         // drain: true: placed containers move off it
  // urls: (an LXD cluster's members), tried in order until one answers; `url` is the first. Empty
  // or one entry: `url` alone.
  std::vector<std::string> urls;
};

// How a placement policy chooses among the candidates that fit: `spread` takes the one with the
// fewest containers of this fleet, `pack` the one with the most; ties go to the first by name.
enum class Strategy { spread, pack };

[[nodiscard]] std::string_view to_string(Strategy s);
[[nodiscard]] std::optional<Strategy> strategy_from_string(std::string_view s);

// A placement candidate or a drained site, "REMOTE" or "REMOTE/MEMBER" (MEMBER "*": every member
// of the cluster): its remote's name and the member part (empty without one).
struct SiteRef {
  std::string remote;
  std::string member;
};
[[nodiscard]] SiteRef parse_site(std::string_view text);

// A placement policy: a named entry under placements:, or a container's inline placement: {...}.
// The plan chooses the container's remote within it (engine/plan/placement.hpp).
struct PlacementPolicy {
  std::string name;  // its key under placements:; empty for an inline policy
  // Sorted: the list, or the remotes the selector picks. Each is a remote's name ("prod"), or on an
  // LXD cluster one member ("prod/m1") or every member ("prod/*", the same as "prod").
  std::vector<std::string> candidates;
  std::map<std::string, std::string> selector;  // candidates: {labels: {...}}: the labels (empty for a list)
  Strategy strategy = Strategy::spread;
  std::optional<int> max_per_remote;         // at most this many of the policy's containers per remote
  std::optional<std::string> anti_affinity;  // no two containers with the same anti_affinity on one remote
  diag::SourceLocation where;
};

// How an image server is read: a static simplestreams tree, or a public LXD server.
enum class ImageProtocol { simplestreams, lxd };

[[nodiscard]] std::string_view to_string(ImageProtocol p);
[[nodiscard]] std::optional<ImageProtocol> image_protocol_from_string(std::string_view s);

// An image server (`images: {NAME: {server: ...}}`): the container's host fetches the image from it
// itself (`source.server` in the create request); berth only reads its index.
struct ImageServer {
  std::string url;  // canonical: https://HOST[:PORT][/PATH], no trailing '/', port only when not 443
  ImageProtocol protocol = ImageProtocol::simplestreams;
  std::string certificate;  // PEM of the only certificate accepted; empty: verified against the system's CAs
  friend auto operator<=>(const ImageServer&, const ImageServer&) = default;
};

// An image as a container needs it: an alias on some remote, or on an image server.
struct ImageRef {
  // Where the alias lives (may differ from the container's remote: the target pulls); empty with
  // server. A placed container's image without a remote of its own is on the remote the plan
  // chooses: empty until then.
  std::string remote;
  std::string alias;
  std::optional<ImageServer> server;       // set: the alias is on this image server, not on a remote
  std::optional<std::string> fingerprint;  // server images only: pinned (64 lowercase hex digits)
  friend bool operator==(const ImageRef&, const ImageRef&) = default;
};

// How a plan shows an image: "REMOTE:ALIAS", or "SERVER ALIAS" for an image server (with
// " (pinned FINGERPRINT12)" when pinned).
[[nodiscard]] std::string to_string(const ImageRef& image);

struct ImageSpec {
  std::string name;                   // key under images:
  std::optional<std::string> remote;  // unset: the alias is looked up on the container's own remote (or the server)
  std::string alias;
  std::optional<ImageServer> server;       // server: (not with remote:)
  std::optional<std::string> fingerprint;  // fingerprint: with server:, 64 lowercase hex digits
  diag::SourceLocation where;
};

// `copy_of: c1` or `copy_of: c1/snap`: the source is another declared container.
struct CopySource {
  std::string container;
  std::optional<std::string> snapshot;
  friend bool operator==(const CopySource&, const CopySource&) = default;
};

// A file pushed into the container (files:). Its content is read when the fleet file is loaded;
// it is never read back from the container.
struct FileSpec {
  std::string path;                   // absolute path in the container
  std::string content;                // the bytes pushed
  std::optional<std::string> source;  // the local file it came from, as written (for messages)
  int mode = 0644;
  std::int64_t uid = 0;
  std::int64_t gid = 0;
  bool sensitive = false;  // content from ${env:...}: never shown, digested with a key
  diag::SourceLocation where;
};

// When a command (exec:) runs: once after the container is created, or whenever what it depends
// on changed (the command, its environment, or a watched file).
enum class ExecWhen { create, change };

[[nodiscard]] std::string_view to_string(ExecWhen w);

struct ExecSpec {
  std::string name;  // key under exec:
  std::vector<std::string> command;
  ExecWhen when = ExecWhen::create;
  std::vector<std::string> watch;  // paths under files: (when: change)
  ConfigMap environment;
  std::set<std::string> sensitive_environment;  // names whose values came from ${env:...}
  std::string cwd;                              // empty: LXD's default
  std::int64_t uid = 0;
  std::int64_t gid = 0;
  bool allow_failure = false;
  diag::SourceLocation where;
};

struct ContainerSpec {
  std::string name;
  // Where it runs: remote:, or for placement: the remote the plan chooses (empty until then, and
  // when none could be chosen).
  std::string remote;
  std::optional<PlacementPolicy> placement;  // placement: (then no remote:)
  // On an LXD cluster: the member it runs on (target: m2), or a cluster group ("@group": any of
  // its members). Placement sets the member it chooses. Unset: wherever it is, or where LXD
  // puts it when it is created.
  std::optional<std::string> target;
  std::string project{default_project};  // resolved: its own project:, else its remote's
  std::optional<ImageRef> image;         // resolved; set unless copy_of is
  std::optional<CopySource> copy_of;
  DesiredState state = DesiredState::running;
  ConfigMap config;                                  // only these keys are compared
  DeviceMap devices;                                 // only these devices are compared
  std::optional<std::vector<std::string>> profiles;  // unset: not managed
  std::vector<std::string> snapshots;                // declared snapshot names, in file order
  std::optional<bool> ephemeral;                     // unset: not managed (LXD's default on create: false)
  std::optional<std::string> description;            // unset: not managed (LXD's default on create: "")
  bool prune_snapshots = false;                      // snapshots: {prune: true}
  Consent restart = Consent::denied;                 // restart: allowed
  Consent move = Consent::denied;                    // move: allowed
  Consent recreate = Consent::denied;                // recreate: allowed
  OnImageChange on_image_change = OnImageChange::report;
  std::optional<DriftPolicy> drift;       // drift: (watch only); unset: the watch's mode
  bool suspend = false;                   // suspend: true (watch only)
  std::map<std::string, FileSpec> files;  // by path
  std::vector<ExecSpec> exec;             // in file order: they run one after another
  // Change paths whose values are secrets ("config.KEY", "devices.NAME"): declared with ${env:...}
  // or listed under sensitive:. Shown as (sensitive) on both sides of every diff.
  std::set<std::string> sensitive;
  diag::SourceLocation where;
};

// A value that must never be shown, and what is shown instead: "(sensitive)" for a config or
// device value, "${env:NAME}" for any other value from the environment (a remote's url).
struct Secret {
  std::string value;
  std::string shown;
};

struct Fleet {
  int version = 1;
  std::string name = "default";  // ownership scope: user.berth.fleet on every instance berth creates
  bool prune = false;            // delete undeclared instances this fleet owns
  bool suspend = false;          // suspend: true: `berth watch` changes nothing
  std::map<std::string, RemoteSpec> remotes;
  std::map<std::string, ImageSpec> images;
  std::map<std::string, PlacementPolicy> placements;  // named policies (placements:)
  std::map<std::string, ContainerSpec> containers;
  std::vector<Secret> secrets;  // every value from the environment or marked sensitive
  std::string path;             // the file it came from, as given
  std::string digest;           // "sha256:<hex>" of the file's bytes: ties a saved plan to its fleet file
  // berth's key for digests of secrets (files:, exec: environment), from its config directory; set
  // by whoever loads the fleet. Unset: such digests are unknown, so those files are pushed and
  // those commands run on every apply.
  std::optional<std::string> digest_key;
};

// Keys berth writes on instances it owns.
inline constexpr std::string_view owner_key_prefix = "user.berth.";
inline constexpr std::string_view fleet_key = "user.berth.fleet";
// On a transfer's target until it is verified whole: "<source address> <transfer token>".
inline constexpr std::string_view incomplete_key = "user.berth.incomplete";
// What berth set on the instance, so that a key the file no longer declares is removed and one it
// never set is never touched: JSON {"config": [...], "devices": [...], "profiles": [...]}.
inline constexpr std::string_view managed_key = "user.berth.managed";
// Digests of what berth pushed (files:) and ran (exec:) on the instance: JSON {path|name: digest}.
// A file or command whose digest differs from the record is pushed or run again.
inline constexpr std::string_view files_key = "user.berth.files";
inline constexpr std::string_view exec_key = "user.berth.exec";
// Set in the same PUT as config that needs a restart, removed after the restart: a plan that
// finds it on a running instance plans the restart an interrupted run did not do.
inline constexpr std::string_view restart_pending_key = "user.berth.restart-pending";

}  // namespace berth::model
