#pragma once
// How the engine reaches a host daemon. Read-only capability (state) is separate from
// full capability (actions): `berth plan` only ever holds a StateReader.
// Requests and responses are plain structs; a response carries its own diagnostics.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/diag/diagnostics.hpp"
#include "engine/model/desired.hpp"
#include "engine/model/live.hpp"
#include "engine/plan/plan.hpp"

namespace berth::providers {

struct ReadStateRequest {
  model::RemoteSpec remote;
  bool read_image_aliases = false;  // a declared image lives on this remote (read in remote.project)
  // The LXD projects to read. `projects`: the remote's own and those of the containers declared on
  // it; one that does not exist makes the remote unknown. `other_projects`: those of containers
  // declared elsewhere (a move's source may live here); one that does not exist has no instances.
  // Both empty: remote.project alone.
  std::set<std::string> projects;
  std::set<std::string> other_projects;
  // Projects other than remote.project whose image aliases are read too (LiveRemote::
  // project_image_aliases): those of containers here that launch from an image on this remote.
  std::set<std::string> alias_projects;
  // Read GET /1.0/resources (LiveRemote::resources): a placement may need what the host has.
  bool read_resources = false;
};

struct ReadStateResponse {
  // status is unknown when the remote could not be read; `error` says why and names the remote.
  model::LiveRemote live;
  diag::Diagnostics diagnostics;
};

// An alias on an image server, resolved at plan time (read-only: the index, never the image).
struct ReadImageRequest {
  model::ServerImageQuery query;
};

struct ReadImageResponse {
  model::ServerImage image;  // error set when it does not resolve; the message names the server
};

class StateReader {
 public:
  virtual ~StateReader() = default;
  // Reads one remote in bulk. Thread-safe: the caller reads all remotes in parallel.
  virtual ReadStateResponse read_state(const ReadStateRequest& request) = 0;
  // Resolves one alias on an image server. Thread-safe, like read_state. A reader that cannot
  // reach image servers answers that it does not resolve.
  virtual ReadImageResponse read_image(const ReadImageRequest& request) {
    ReadImageResponse response;
    response.image.error = "image server " + request.query.server.url + ": not read by this provider";
    return response;
  }
};

// ---------------------------------------------------------------------------------------------
// Full capability: carrying out one plan action (berth apply).

// What a running action reports: a step, and for transfers bytes so far and a rate.
struct Progress {
  std::string action_id;
  std::string message;                 // "migrating", "waiting for operation", ...
  std::optional<std::uint64_t> bytes;  // transferred so far
  std::optional<double> bytes_per_second;
  // The whole of what `bytes` counts, where the host says (a move's or copy's source volume): the
  // progress line then shows it and an ETA.
  std::optional<std::uint64_t> total_bytes;
};

// The step journal (engine/state): every call that changes a host is recorded before it is made
// and its result after, so that a crash at any point leaves a record of what may be half-done.
// `detail` must never contain secrets (no migration secrets, passwords or tokens).
class StepJournal {
 public:
  virtual ~StepJournal() = default;
  virtual std::int64_t intent(const std::string& action_id, const std::string& step, const nlohmann::json& detail) = 0;
  virtual void result(std::int64_t seq, bool ok, const nlohmann::json& detail) = 0;
};

struct ExecuteRequest {
  const plan::Action* action = nullptr;
  const model::Fleet* fleet = nullptr;  // remotes (url, fingerprint) by name; fleet name for ownership marks
  StepJournal* journal = nullptr;
  std::function<void(const Progress&)> progress;  // may be called from the executing thread only
  const std::atomic<bool>* cancel = nullptr;      // set on SIGINT/SIGTERM: stop between steps
};

// What an exec action's command did: reported in its apply events (scrubbed of secrets).
struct CommandOutput {
  int exit_code = 0;
  std::string out;   // stdout (its end, when long)
  std::string err;   // stderr (likewise)
  bool cut = false;  // output was left out
};

struct ExecuteResponse {
  bool ok = false;
  std::string error;                     // what failed, naming the remote; never secrets
  std::optional<CommandOutput> command;  // exec actions that ran their command
};

class ActionExecutor {
 public:
  virtual ~ActionExecutor() = default;
  // Carries out one action. Thread-safe: apply runs independent actions in parallel.
  // Must leave nothing half-done on failure where it can help it (e.g. a failed copy deletes
  // the partial target it created), and never delete a move's source before the target is verified.
  virtual ExecuteResponse execute(const ExecuteRequest& request) = 0;
};

// What the journal of an interrupted run left open, and what inspecting the hosts found.
//
// Recovery is planned, not done: settle() only reads (it may wait for operations still running
// on the hosts) and returns a verdict. Whatever must change on a host becomes a recovery action
// (finish_transfer / undo_transfer) on the plan value, shown and confirmed like any other, and
// carried out by the ActionExecutor, which checks the action's proof again right before it acts.
//
// One request per interrupted action: every journal entry that action wrote in that run, in
// order, so that steps done before the crash (verify, unmark) count as evidence.
struct JournalStep {
  std::int64_t seq = 0;
  std::string step;
  std::string phase;      // intent (open: the crash came before its result) | done | failed | recovered
  nlohmann::json detail;  // as journaled at intent time (null if unreadable)
  nlohmann::json result;  // what the result added (null while open)
};

struct SettleRequest {
  const model::Fleet* fleet = nullptr;
  std::int64_t run_id = 0;
  std::string action_id;
  std::vector<JournalStep> steps;  // all of the action's entries in that run, oldest first
};

enum class Verdict {
  settled,  // nothing is half-done: the open intents can be closed, the plan converges the rest
  recover,  // `action` finishes or undoes what was left; closing the intents waits for it
  held,     // cannot be settled now (host unreachable, remote gone, changed by someone): left as it is
};

struct SettleResponse {
  Verdict verdict = Verdict::held;
  std::optional<plan::Action> action;   // recover only: its recovery.settles lists the open seqs
  std::string note;                     // what was found and, when held, what to do
  std::vector<std::string> containers;  // the container names concerned (held: not planned meanwhile)
};

class Recoverer {
 public:
  virtual ~Recoverer() = default;
  // Read-only. Thread-safe.
  virtual SettleResponse settle(const SettleRequest& request) = 0;
};

// ---------------------------------------------------------------------------------------------
// The fleet's lock on a host: two runners with their own state files never change the same host
// at once. One lock per fleet and host, held by a claim (a random id per run) until it expires;
// the holder renews it while its run lasts. Taking over an expired lock never removes a fresh one.

struct HostLockClaim {
  std::string fleet;   // the fleet's name: which lock
  std::string id;      // random, one per run: whose lock
  std::string holder;  // for people: "berth apply, root@runner-7, pid 4242"
  std::chrono::seconds ttl{120};
};

// A lock as found on a host.
struct HostLockInfo {
  std::string remote;
  std::string object;  // where it lives on the host (an LXD profile's name)
  std::string id;
  std::string holder;
  std::string since;                    // RFC 3339 UTC, as the holder wrote it
  std::string machine;                  // where the holder ran (host name, boot), as its provider wrote it
  std::string process;                  // which process it was there
  std::optional<std::int64_t> expires;  // unix seconds; nullopt: unreadable (held until forced)
  bool taken_over = false;              // a copy left by a takeover (not a live lock)
  bool process_gone = false;            // its holder ran on this machine and is gone (taken over early)
};

enum class LockAnswer {
  acquired,  // ours now (or still ours, for renew)
  held,      // someone else's: `holder` (renew: we lost it)
  failed,    // could not tell (the host is unreachable, ...): `error`
};

struct HostLockResponse {
  LockAnswer answer = LockAnswer::failed;
  std::optional<HostLockInfo> holder;
  std::string error;       // names the remote; never secrets
  bool took_over = false;  // acquired by taking over an expired lock: `holder` was its holder
};

class HostLocker {
 public:
  virtual ~HostLocker() = default;
  // One attempt to take the claim's lock on the remote. Thread-safe.
  virtual HostLockResponse acquire(const model::RemoteSpec& remote, const HostLockClaim& claim) = 0;
  // Pushes the expiry out by claim.ttl if the lock is still the claim's; `held` when it is not.
  virtual HostLockResponse renew(const model::RemoteSpec& remote, const HostLockClaim& claim) = 0;
  // Gives the lock up if it is still the claim's; an error string when that could not be done.
  virtual std::string release(const model::RemoteSpec& remote, const HostLockClaim& claim) = 0;
  // `berth force-unlock --hosts`: what is on the remote for this fleet, and removing it by force.
  virtual std::vector<HostLockInfo> list(const model::RemoteSpec& remote, const std::string& fleet,
                                         std::string& error) = 0;
  virtual std::string remove(const model::RemoteSpec& remote, const HostLockInfo& lock) = 0;
};

}  // namespace berth::providers
