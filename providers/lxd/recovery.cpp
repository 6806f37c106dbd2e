// Recovery: inspecting what an interrupted apply left half-done, and planning what settles it.
// Read-only: this file never changes a host. What must change becomes a recovery action
// (finish_transfer / undo_transfer) on the plan value, shown and confirmed with the rest, and
// carried out by the executor, which checks the same proof again right before it acts.
//
// Principles:
// - Prove before acting. The journal says what berth did (steps done, the transfer's token, the
//   source's ETag, status and snapshot names when it started, the target's ETag after unmark);
//   the hosts say what is there now. Only what both prove is finished or undone.
// - Finish a transfer only when the data provably arrived (the migrate step or its operation
//   succeeded, or verify/unmark ran) and, for a move, the source is exactly as it was (stopped,
//   same ETag and snapshots): then unmark the target and delete the stopped source.
// - Undo only what berth alone made and nobody touched: a target still carrying this transfer's
//   mark (or its recorded post-unmark ETag), stopped. Its source stays.
// - A running source is never stopped or deleted. A source someone changed since wins over the
//   target copied from it: the untouched target is undone and the plan moves again.
// - Anything else is held: left as it is, with a note saying what was found and what to do; the
//   containers concerned are not planned until `berth state drop-intent`.
// - A daemon keeps running an operation after berth dies, so whatever still runs on the instance
//   concerned is waited for first.

#include <map>

#include <spdlog/spdlog.h>

#include "providers/lxd/executor.hpp"
#include "providers/lxd/instance_api.hpp"
#include "providers/lxd/migration.hpp"
#include "providers/lxd/operations.hpp"
#include "providers/lxd/wire.hpp"

namespace berth::lxd {

namespace {

using model::LivePower;

struct Place {
  std::string remote;
  std::string instance;
  std::optional<std::string> snapshot;
  std::string project{model::default_project};  // journaled only when not default

  [[nodiscard]] plan::Address address() const { return plan::Address{remote, instance, snapshot, project}; }
};

std::optional<Place> place_of(const nlohmann::json& j) {
  if (!j.is_object()) return std::nullopt;
  Place p;
  p.remote = wire::text_in(j, "remote");
  p.instance = wire::text_in(j, "instance");
  p.snapshot = wire::string_in(j, "snapshot");
  if (const auto project = wire::string_in(j, "project"); project && !project->empty()) p.project = *project;
  if (p.remote.empty() || p.instance.empty()) return std::nullopt;
  return p;
}

using providers::JournalStep;
using providers::SettleResponse;
using providers::Verdict;

bool has_transfer_context(const nlohmann::json& d) {
  return d.is_object() && d.contains("kind") && d.contains("source") && d.contains("target");
}

class Settler {
 public:
  Settler(const ClientConfig& config, const ExecutorOptions& options, const providers::SettleRequest& request)
      : config_(config), options_(options), request_(request) {}

  SettleResponse run() {
    for (const auto& s : request_.steps) {
      if (s.step != "migrate-source" && has_transfer_context(s.detail)) return transfer(s.detail);
    }
    return single();
  }

 private:
  static SettleResponse settled(std::string note) { return {Verdict::settled, std::nullopt, std::move(note), {}}; }
  static SettleResponse held(std::string note, std::vector<std::string> containers) {
    return {Verdict::held, std::nullopt, std::move(note), std::move(containers)};
  }

  const JournalStep* last_done(std::string_view step) const {
    const JournalStep* found = nullptr;
    for (const auto& s : request_.steps) {
      if (s.step == step && s.phase == "done") found = &s;
    }
    return found;
  }

  // Steps that change only one instance (create, update, restart, power, snapshots, delete): LXD
  // finishes or reverts each by itself, and the plan converges from whatever state it is in.
  SettleResponse single() {
    std::optional<Place> where;
    for (const auto& s : request_.steps) {
      if (s.phase != "intent") continue;
      if (s.step == "migrate-source")
        return settled("the source's migration operation was never used; it expires by itself");
      if (s.step == "image-secret") return settled("an image secret was requested; nothing to undo");
      if (!where) where = place_of(s.detail);
    }
    if (!where) return held("the journal entry names no instance", {});
    auto r = remote(where->remote, where->project);
    if (!r) return held(r.error().message, {where->instance});
    if (auto w = wait_for_instance(**r, where->instance); !w) return held(w.error().message, {where->instance});
    auto inst = get_instance(**r, where->instance);
    if (!inst) return held(inst.error().message, {where->instance});
    return settled(plan::to_string(where->address()) + (*inst ? " exists" : " does not exist") +
                   "; nothing is half-done, the plan converges it");
  }

  SettleResponse transfer(const nlohmann::json& d) {
    const std::string kind = wire::text_in(d, "kind");
    const bool is_move = kind == "move";
    const auto from = place_of(wire::object_in(d, "source"));
    const auto to = place_of(wire::object_in(d, "target"));
    if (!from || !to || (kind != "move" && kind != "copy"))
      return held("the journal entry names no source or target", {});
    const std::string from_text = plan::to_string(from->address());
    const std::string to_text = plan::to_string(to->address());
    const std::vector<std::string> concerned = {to->instance};

    auto dst = remote(to->remote, to->project);
    if (!dst) return held(dst.error().message, concerned);
    auto src = remote(from->remote, from->project);
    if (!src) return held(src.error().message, concerned);

    // Let whatever still runs end. The target's operation says whether the data arrived; the
    // source's pull-mode operation succeeds only once the target confirmed the transfer.
    auto waited = wait_for_instance(**dst, to->instance);
    if (!waited) return held(waited.error().message, concerned);
    bool op_succeeded = *waited;
    for (const auto& s : request_.steps) {
      for (const auto* j : {&s.detail, &s.result}) {
        const auto op = wire::string_in(*j, "source_operation");
        if (!op) continue;
        if (wait_operation((*src)->client, *op, wait("waiting for the source operation"))) {
          op_succeeded = true;
        }
      }
    }

    auto target = get_instance(**dst, to->instance);
    if (!target) return held(target.error().message, concerned);
    auto source = get_instance(**src, from->instance);
    if (!source) return held(source.error().message, concerned);

    // What the journal proves.
    const auto* verify = last_done("verify");
    const auto* unmark = last_done("unmark");
    const bool arrived = op_succeeded || last_done("migrate") != nullptr || verify != nullptr || unmark != nullptr ||
                         wire::flag_in(d, "arrived");
    nlohmann::json source_state = wire::object_in(d, "source_state");
    if (verify != nullptr) {
      if (auto e = wire::string_in(verify->result, "source_etag")) source_state["etag"] = *e;  // as verified
    }
    nlohmann::json proof = {
        {"token", wire::text_in(d, "token")}, {"mark", wire::text_in(d, "mark")}, {"source_state", source_state}};
    // The unmarked target's ETag: from this run's unmark, or carried by an interrupted recovery.
    if (const std::string e = wire::text_in(d, "target_etag"); !e.empty()) proof["target_etag"] = e;
    if (unmark != nullptr && unmark->result.is_object())
      proof["target_etag"] = wire::text_in(unmark->result, "target_etag");
    // The marked target as the transfer (or verify) saw it; an interrupted recovery carries it on.
    std::string marked_etag = wire::text_in(d, "marked_etag");
    for (const auto* step : {last_done("migrate"), verify}) {
      if (step == nullptr) continue;
      if (std::string e = wire::text_in(step->result, "target_etag"); !e.empty()) marked_etag = std::move(e);
    }
    if (!marked_etag.empty()) proof["marked_etag"] = marked_etag;

    if (!*target) {
      if (is_move && !*source) {
        return held("the move of " + from_text + " left neither the source nor the target " + to_text +
                        "; restore it from a backup or snapshot",
                    concerned);
      }
      return settled(to_text + " was not created; the plan " + std::string{is_move ? "moves" : "copies"} + " again");
    }

    const bool marked = (*target)->instance.config.count(std::string{incomplete_key}) != 0;
    const auto target_change = target_changed((*target)->instance, (*target)->etag, proof);
    const bool target_stopped =
        model::live_power_from_status_code((*target)->instance.status_code) == LivePower::stopped;

    if (target_change) {
      if (!marked && (!is_move || !*source)) return settled(to_text + " is complete");
      return held(to_text + ": " + *target_change +
                      (is_move && *source ? "; its source " + from_text + " still exists" : std::string{}) +
                      "; neither was touched. Keep the one you want, delete the other",
                  concerned);
    }

    if (!is_move) {
      if (!marked) return settled("the copy " + to_text + " is complete");
      if (arrived)
        return recover(plan::ActionKind::finish_transfer, kind, *from, *to, proof,
                       "the copy to " + to_text + " arrived whole but was not marked complete");
      if (!target_stopped) return held(to_text + " may be incomplete and someone started it; left alone", concerned);
      return recover(plan::ActionKind::undo_transfer, kind, *from, *to, proof,
                     "the copy to " + to_text + " may be incomplete; " + from_text + " is untouched");
    }

    if (!*source) {
      if (!marked) return settled("the move to " + to_text + " is complete");
      return held(to_text + " may be incomplete and its source " + from_text +
                      " no longer exists; left alone, check it by hand",
                  concerned);
    }
    auto source_snaps = snapshot_names(**src, from->instance);
    if (!source_snaps) return held(source_snaps.error().message, concerned);
    const auto changed = source_changed((*source)->instance, (*source)->etag, *source_snaps, source_state);
    if (!changed && arrived) {
      return recover(plan::ActionKind::finish_transfer, kind, *from, *to, proof,
                     "the move to " + to_text + " arrived" + std::string{verify != nullptr ? " and was verified" : ""} +
                         "; " + from_text + " is stopped and unchanged");
    }
    if (!target_stopped) {
      return held(
          "both " + from_text + " and " + to_text + " exist and someone started the target; neither was touched",
          concerned);
    }
    return recover(plan::ActionKind::undo_transfer, kind, *from, *to, proof,
                   changed ? "the source " + from_text + " changed since the move began (" + *changed +
                                 "): it stays, the copy made from it goes"
                           : "the move to " + to_text + " may not have arrived; " + from_text + " is untouched");
  }

  SettleResponse recover(plan::ActionKind kind, const std::string& transfer, const Place& from, const Place& to,
                         nlohmann::json proof, std::string found) {
    plan::Action a;
    a.kind = kind;
    a.address = to.address();
    a.address.snapshot.reset();
    a.source = from.address();
    a.id = std::string{plan::to_string(kind)} + " " + plan::to_string(a.address);
    a.consented = true;  // the interrupted run had consent for the transfer; undo removes only berth's own
    if (kind == plan::ActionKind::finish_transfer) {
      a.reason = transfer == "move" ? "finish the interrupted move: unmark the target, delete the stopped source"
                                    : "finish the interrupted copy: mark the target complete";
      a.disruption = transfer == "move" ? plan::Disruption::move : plan::Disruption::none;
    } else {
      a.reason = "undo the interrupted " + transfer + ": delete the target berth made";
      a.disruption = plan::Disruption::destroy;
    }
    a.recovery.emplace();
    a.recovery->transfer = transfer;
    a.recovery->found = found;
    a.recovery->proof = std::move(proof);
    return {Verdict::recover, std::move(a), std::move(found), {to.instance}};
  }

  Result<RemoteHandle*> remote(const std::string& name, const std::string& project) {
    const auto key = std::make_pair(name, project);
    if (const auto it = remotes_.find(key); it != remotes_.end()) return &it->second;
    if (request_.fleet == nullptr) return make_error(ErrorKind::invalid_argument, "no fleet given");
    const auto spec = request_.fleet->remotes.find(name);
    if (spec == request_.fleet->remotes.end()) {
      return make_error(ErrorKind::invalid_argument, "remote " + name + " is no longer declared in the fleet file");
    }
    auto handle = open_remote(config_, spec->second, options_.timeouts);
    if (!handle) return handle.error();
    handle->client.set_project(project);
    return &remotes_.emplace(key, std::move(*handle)).first->second;
  }

  WaitOptions wait(std::string what) const {
    WaitOptions w;
    w.what = std::move(what);
    w.poll = options_.poll;
    return w;
  }

  // Waits for everything still running on the instance. Returns true if one of them succeeded.
  Result<bool> wait_for_instance(RemoteHandle& r, const std::string& name) {
    bool any_succeeded = false;
    for (int round = 0; round < 100; ++round) {  // new ones may start while we wait (e.g. start after create)
      auto ops = running_operations_on(r, name);
      if (!ops) return ops.error();
      if (ops->empty()) return any_succeeded;
      bool waited_any = false;
      for (const auto& op : *ops) {
        // Only tasks end by themselves; a websocket operation such as `lxc exec` may run for ever.
        if (op.operation_class != "task") continue;
        waited_any = true;
        spdlog::info("recovery: waiting for operation {} on {}:{}", op.id, r.name(), name);
        if (wait_operation(r.client, "/1.0/operations/" + op.id, wait("waiting for " + name))) any_succeeded = true;
      }
      if (!waited_any) return any_succeeded;
    }
    return any_succeeded;
  }

  const ClientConfig& config_;
  const ExecutorOptions& options_;
  const providers::SettleRequest& request_;
  std::map<std::pair<std::string, std::string>, RemoteHandle> remotes_;  // by (remote, project)
};

}  // namespace

LxdRecoverer::LxdRecoverer(ClientConfig config, ExecutorOptions options)
    : config_(std::move(config)), options_(options) {}

providers::SettleResponse LxdRecoverer::settle(const providers::SettleRequest& request) {
  Settler settler(config_, options_, request);
  return settler.run();
}

std::unique_ptr<providers::Recoverer> make_recoverer(ClientConfig config, ExecutorOptions options) {
  return std::make_unique<LxdRecoverer>(std::move(config), options);
}

}  // namespace berth::lxd
