#pragma once
// The plan is a value: a closed set of actions, each with its address, before/after,
// the reason and how disruptive it is, ordered as a DAG. Apply executes exactly this.

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/diag/diagnostics.hpp"
#include "engine/model/desired.hpp"
#include "engine/model/live.hpp"

namespace berth::plan {

enum class ActionKind {
  launch,   // create from an image, then reach the declared power state
  update,   // config/devices/profiles that take effect in place
  restart,  // config that takes effect only on restart: set it (marked restart-pending), restart
  start,
  stop,
  freeze,
  unfreeze,
  snapshot,         // create a declared snapshot
  delete_snapshot,  // remove an undeclared snapshot (snapshots: {prune: true})
  copy,             // new container from another (or one of its snapshots), same host or across
  move,             // offline move of an existing container to its declared remote
  delete_,          // remove an owned, undeclared container (pruning only)
  adopt,            // mark a declared container that exists but no fleet owns as this fleet's, with its changes
  recreate,         // delete an owned container and launch it anew from its image (image change, --replace)
  push,             // push declared files whose digest differs from berth's record on the instance (files:)
  exec,             // run a declared command in the container (exec:)
  // Recovery only: planned from the journal of an interrupted run, never from the fleet file.
  finish_transfer,  // a whole, verified transfer: unmark the target; a move also deletes its stopped source
  undo_transfer,    // delete a transfer's target that only berth made and nobody touched since
};

// How much an action disturbs what runs. Anything above `none` needs consent at apply time.
enum class Disruption { none, restart, move, recreate, destroy };

[[nodiscard]] std::string_view to_string(ActionKind k);
[[nodiscard]] std::string_view to_string(Disruption d);
[[nodiscard]] std::optional<ActionKind> action_kind_from_string(std::string_view s);
[[nodiscard]] std::optional<Disruption> disruption_from_string(std::string_view s);

struct Address {
  std::string remote;
  std::string container;
  std::optional<std::string> snapshot;
  std::string project{model::default_project};  // the LXD project of the container
  friend auto operator<=>(const Address&, const Address&) = default;
};
// "local:c1" or "local:c1/snap0"; in another project than default "local:p/c1", "local:p/c1/snap0".
[[nodiscard]] std::string to_string(const Address& a);
// The instance part of an address (no snapshot), as the basis and not_planned are keyed:
// "remote:" + model::instance_key(project, container).
[[nodiscard]] std::string instance_address(const Address& a);
// Back from instance_address's form ("a:web", "a:p/web"); nullopt if it is not one.
[[nodiscard]] std::optional<Address> parse_instance_address(std::string_view text);

// One declared key that differs. `path` is "config.limits.memory", "devices.eth0", or "profiles".
// Values are JSON so a device (an object) or a profile list fits; null means "not set".
struct Change {
  std::string path;
  nlohmann::json before;
  nlohmann::json after;
  bool sensitive = false;  // both values are secrets: rendered as (sensitive), never stored
};

inline constexpr std::string_view sensitive_text = "(sensitive)";

// What an interrupted run left and how a recovery action settles it. `proof` is what the
// executor checks again right before it acts (ETags, status, snapshot names, the mark's value);
// if the hosts no longer match it, the action fails and changes nothing.
struct Recovery {
  std::vector<std::int64_t> settles;  // journal seqs resolved once the action succeeded
  std::int64_t run_id = 0;            // the interrupted run
  std::string transfer;               // "copy" | "move"
  std::string found;                  // what inspection found, in words a user reads
  nlohmann::json proof = nlohmann::json::object();
};

struct Action {
  std::string id;  // unique in the plan, stable across runs: "<kind> <address>"
  ActionKind kind = ActionKind::update;
  Address address;                // where the action takes effect (the target)
  std::optional<Address> source;  // copy and move: where from
  nlohmann::json before;          // what is there now (null: nothing), as shown to the user
  nlohmann::json after;           // what there will be (null: nothing)
  std::vector<Change> changes;    // update: each differing key; others: empty
  std::string reason;             // why, in words a user reads
  Disruption disruption = Disruption::none;
  bool consented = true;                // false: apply refuses unless consent is given (flag or file)
  std::vector<std::string> depends_on;  // ids of actions that must succeed first
  // What the action creates or reaches (launch/copy/move): the full declared spec it applies.
  std::optional<model::ImageRef> image;
  model::ConfigMap config;
  model::DeviceMap devices;
  std::optional<std::vector<std::string>> profiles;
  std::optional<bool> ephemeral;           // unset: LXD's default (launch), the source's (copy)
  std::optional<std::string> description;  // likewise
  std::optional<model::DesiredState> target_state;
  // On an LXD cluster (launch, copy, move): the member it goes to (LXD's ?target=), a member's
  // name or "@group"; empty: where LXD puts it. A move whose source is on the same remote is a
  // move between the cluster's members.
  std::string member;
  // Paths of `config`/`devices` (and of `changes`) whose values are secrets ("config.KEY",
  // "devices.NAME"): rendered as (sensitive); a saved plan keeps a salted scrypt digest of each
  // (`secret_digests`, filled when it is written or read) and applying it takes the values from
  // the environment again.
  std::set<std::string> sensitive;
  std::map<std::string, std::string> secret_digests;
  std::optional<Recovery> recovery;  // set on finish_transfer / undo_transfer only
  // push: the files to push; `changes` holds one "files.PATH" change each (before: the digest
  // recorded on the instance, after: the one to record). A saved plan keeps no content:
  // restore_contents takes it from the fleet file again and checks it against the digest.
  std::vector<model::FileSpec> files;
  // exec: the command; its change "exec.NAME" holds the digests as for files.
  std::optional<model::ExecSpec> exec;
};

[[nodiscard]] inline bool is_recovery(ActionKind k) {
  return k == ActionKind::finish_transfer || k == ActionKind::undo_transfer;
}

// Consent given on the command line. The file's `restart:`/`move:` is applied by compute_plan;
// these are applied once, on the plan value, by grant_consent — nothing decides consent again.
struct ConsentFlags {
  bool restart = false;   // --allow-restart
  bool move = false;      // --allow-move
  bool recreate = false;  // --allow-recreate
  friend bool operator==(const ConsentFlags&, const ConsentFlags&) = default;
};

struct RemoteSummary {
  std::string url;
  model::RemoteStatus status = model::RemoteStatus::unknown;
  std::string error;
  std::size_t instances = 0;
  // An LXD cluster: each member's status ("Online", "Offline", ...) by name; empty otherwise.
  std::map<std::string, std::string> members;
};

// Where a placed container (placement:) goes, and why: every placed container has one, whether
// it stays, is created, moves, or could not be placed.
struct Placement {
  std::string container;
  std::string project{model::default_project};
  std::string policy;                 // its name under placements:, empty for an inline policy
  std::string remote;                 // where it is placed; empty: nowhere (the container gets no action)
  std::string member;                 // on an LXD cluster: the member it is placed on
  std::string from;                   // where it lives now when the plan moves it; else empty
  std::string explanation;            // one line: "placed on b: spread, 2 of 3 candidates fit, fewest containers (1)"
  std::vector<std::string> rejected;  // each candidate that did not fit, and why: "a: draining"
  friend bool operator==(const Placement&, const Placement&) = default;
};

struct Plan {
  std::string fleet_path;
  std::string fleet_digest;
  std::map<std::string, RemoteSummary> remotes;
  std::vector<Action> actions;  // topologically ordered: every dependency comes earlier
  diag::Diagnostics diagnostics;
  // What the plan was computed from: address "remote:container" -> live digest. A saved plan is
  // stale when any of these differ at apply time, or when an address now exists that did not.
  std::map<std::string, std::string> basis;
  ConsentFlags consent;  // flags granted on this plan (recorded in a saved plan)
  // Declared containers that got no action because something they need could not be resolved
  // (an image alias that does not exist): address -> why. Like an unknown remote, each makes the
  // plan incomplete; the rest of the plan is still applied.
  std::map<std::string, std::string> not_planned;
  bool destroy = false;               // made by `berth destroy` / `berth plan --destroy`
  std::vector<std::string> targets;   // --target addresses the plan was limited to, as given
  std::vector<Placement> placements;  // by container name
  std::vector<std::string> drain;     // remotes drained (drain: true, --drain), sorted

  [[nodiscard]] bool complete() const;  // every remote was read and every declared container planned
  [[nodiscard]] bool has_changes() const { return !actions.empty(); }
};

// A container named on the command line (`--target`, `--replace`): "remote:name" or
// "remote:project/name" as the plan prints it, "project/name", or the bare name. The remote, when
// given, must be where the container is declared or where it lives. With a remote and no project,
// the project is default (as the plan prints it); without a remote, an unnamed project matches any.
struct Target {
  std::optional<std::string> remote;
  std::string container;
  std::optional<std::string> project;
  friend auto operator<=>(const Target&, const Target&) = default;
};
[[nodiscard]] std::string to_string(const Target& t);

// Parses and checks addresses against the fleet: each must name a declared container (with the
// remote it is declared on), or for `allow_undeclared`, any container (pruning and destroy act on
// undeclared ones). Returns the problems (empty: all good).
[[nodiscard]] std::vector<std::string> parse_targets(const std::vector<std::string>& texts, const model::Fleet& fleet,
                                                     bool allow_undeclared, std::vector<Target>& out);

struct PlanOptions {
  bool prune = false;  // --prune, or prune: true in the file
  // --replace: containers to delete and launch anew from their image even without an image change.
  std::vector<Target> replace;
  // Containers an interrupted run left in a state recovery could not settle: no actions are
  // planned for them (by name, on every remote); the value says why, for the warning.
  std::map<std::string, std::string> held;
  // --drain: remotes to drain in this plan, as if they said drain: true.
  std::set<std::string> drain;
};

// Pure: desired + live -> plan. Never contacts anything.
[[nodiscard]] Plan compute_plan(const model::Fleet& fleet, const model::LiveState& live, const PlanOptions& options);

// The values a plan holds that are secrets (sensitive changes, both sides, and sensitive spec
// values), for whoever must scrub output: text and JSON rendering mask them already.
[[nodiscard]] std::vector<std::string> secret_values(const Plan& plan);

// Records a salted scrypt digest of every sensitive value in its action (for a saved plan).
void fill_secret_digests(Plan& plan);

// A saved plan's secrets come back from the fleet file as loaded now (its ${env:...} read again):
// each must match the digest the plan recorded. Returns what does not match (empty: restored).
[[nodiscard]] std::vector<std::string> restore_secrets(Plan& plan, const model::Fleet& fleet);

// A saved plan's file content and command secrets come back from the fleet file as loaded now:
// each file's and command's digest must be what the plan recorded. Returns what does not match.
[[nodiscard]] std::vector<std::string> restore_contents(Plan& plan, const model::Fleet& fleet);

// Marks every action whose disruption the flags cover as consented, and records the flags.
void grant_consent(Plan& plan, ConsentFlags flags);

// --target: keeps only the actions on the targeted containers (as target or source), every action
// they depend on, transitively, and every recovery action; records the targets and warns that the
// rest is not planned.
void limit_to_targets(Plan& plan, const std::vector<Target>& targets);

// Whether a target names this address (its container, and its remote when one is given).
[[nodiscard]] bool matches(const Target& target, const Address& address);

// The actions that still lack consent: action id -> what would consent to it. The walk refuses
// exactly these; nothing else decides consent.
[[nodiscard]] std::map<std::string, std::string> refusals(const Plan& plan);

// What the hosts will look like once `recovery` (finish_transfer / undo_transfer actions) ran:
// the rest of the plan is computed from this, so it neither redoes nor undoes the recovery.
[[nodiscard]] model::LiveState after_recovery(model::LiveState live, const std::vector<Action>& recovery);

// Puts recovery actions first and makes every other action touching one of their containers
// depend on them. `plan.actions` must be in DAG order; the result is too.
void prepend_recovery(Plan& plan, std::vector<Action> recovery);

// The basis (digest of every instance read) of the remotes read in `live`.
[[nodiscard]] std::map<std::string, std::string> basis_of(const model::LiveState& live);

// `berth destroy`: delete every instance this fleet owns (user.berth.fleet) on the remotes that
// were read; running ones are stopped by the delete itself.
[[nodiscard]] Plan compute_destroy_plan(const model::Fleet& fleet, const model::LiveState& live);

// Why a saved plan no longer applies: every address an action touches (target and source) must
// still have the digest recorded in plan.basis, and must not have appeared or vanished since.
// Empty when the plan is still current.
[[nodiscard]] std::vector<std::string> stale_addresses(const Plan& plan, const model::LiveState& live);

}  // namespace berth::plan
