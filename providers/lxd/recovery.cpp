// Recovery: what an apply that crashed (or was killed) left half-done, and how to make the hosts
// convergeable again. Called once per open journal intent; the next plan does the rest.
//
// Principles: never delete the only copy of a container; prefer finishing over undoing when the
// data is provably whole; a daemon keeps running an operation after berth dies, so first wait for
// whatever is still running on the instance concerned.
//
// Rules, by the journal step's detail:
//
// A. Transfers (detail has kind copy|move, source, target: steps migrate, verify, unmark,
//    delete-target, delete-source and the stop-force of a delete-source):
//    1. Wait for every running operation on the target instance (and for the recorded source
//       operation). An operation on the target that ends in success counts as a finished transfer.
//    2. Target absent: nothing half-done is left (LXD removes a failed migration's target itself);
//       the plan will copy/move again. If a move's source is absent too, the container is lost:
//       unresolved, for a human.
//    3. Target present and still marked user.berth.incomplete:
//       - the transfer is known to have finished (an op we waited for succeeded, or the open step
//         is verify/unmark, which only run after the transfer succeeded): finish it — a move's
//         target is verified against its source, then unmarked, then the source deleted; a copy is
//         unmarked. A move whose target fails verification is undone (target deleted).
//       - otherwise the data may be partial: the target is deleted, but only while the source
//         exists (never the only copy); with the source gone it is left alone, unresolved.
//    4. Target present, not marked: the transfer finished and, for a move, was verified. A move
//       whose source still exists is finished: re-verified, then the source deleted (else the plan
//       would see the container on two remotes and stop). A copy is complete.
//
// B. create (launch, same-remote copy): LXD finishes or reverts a creation on its own. Wait for
//    running operations on the instance; then nothing to undo: if it exists the plan converges
//    it (power state, snapshots), if not the plan creates it again.
//
// C. migrate-source (the source's migration op, no target yet): nothing to undo; the source
//    operation times out by itself after 10 s without peers.
//
// D. image-secret: nothing to undo (a one-time image token; unused it harms nothing).
//
// E. Every other single-instance step (update, start, stop, stop-force, freeze, unfreeze, restart,
//    snapshot, delete-snapshot, delete): wait for running operations on the instance; the plan
//    re-reads the host and converges from whatever state it is in.

#include <map>

#include <spdlog/spdlog.h>

#include "providers/lxd/executor.hpp"
#include "providers/lxd/instance_api.hpp"
#include "providers/lxd/migration.hpp"
#include "providers/lxd/operations.hpp"

namespace berth::lxd {

namespace {

using model::LivePower;

struct Place {
  std::string remote;
  std::string instance;
  std::optional<std::string> snapshot;
};

std::optional<Place> place_of(const nlohmann::json& j) {
  if (!j.is_object()) return std::nullopt;
  Place p;
  p.remote = j.value("remote", std::string{});
  p.instance = j.value("instance", std::string{});
  if (const auto it = j.find("snapshot"); it != j.end() && it->is_string()) p.snapshot = it->get<std::string>();
  if (p.remote.empty() || p.instance.empty()) return std::nullopt;
  return p;
}

class Recovery {
 public:
  Recovery(const ClientConfig& config, const ExecutorOptions& options, const providers::RecoveryRequest& request)
      : config_(config), options_(options), request_(request) {}

  providers::RecoveryResponse run() {
    const auto& d = request_.detail;
    const std::string& step = request_.step;
    if (d.is_object() && d.contains("kind") && d.contains("target") && d.contains("source") &&
        step != "migrate-source") {
      return transfer();
    }
    if (step == "migrate-source") return done("the source's migration operation was never used; it expires by itself");
    if (step == "image-secret") return done("an image secret was requested; nothing to undo");
    auto where = place_of(d);
    if (!where) return unresolved("the journal entry names no instance");
    auto r = remote(where->remote);
    if (!r) return unresolved(r.error().message);
    if (auto w = wait_for_instance(**r, where->instance); !w) return unresolved(w.error().message);
    auto inst = get_instance(**r, where->instance);
    if (!inst) return unresolved(inst.error().message);
    return done(where->remote + ":" + where->instance + (*inst ? " exists" : " does not exist") +
                "; nothing to undo, the next plan converges it");
  }

 private:
  providers::RecoveryResponse done(std::string note) { return {true, std::move(note)}; }
  providers::RecoveryResponse unresolved(std::string note) { return {false, std::move(note)}; }

  Result<RemoteHandle*> remote(const std::string& name) {
    if (const auto it = remotes_.find(name); it != remotes_.end()) return &it->second;
    if (request_.fleet == nullptr) return make_error(ErrorKind::invalid_argument, "no fleet given");
    const auto spec = request_.fleet->remotes.find(name);
    if (spec == request_.fleet->remotes.end()) {
      return make_error(ErrorKind::invalid_argument, "remote " + name + ": no longer declared in the fleet file");
    }
    auto handle = open_remote(config_, spec->second, options_.timeouts);
    if (!handle) return handle.error();
    return &remotes_.emplace(name, std::move(*handle)).first->second;
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
        // Only tasks (create, migrate as target, start, stop, snapshot, delete) end by themselves;
        // a websocket operation such as an `lxc exec` session may run for ever.
        if (op.operation_class != "task") continue;
        waited_any = true;
        spdlog::info("recovery: waiting for operation {} on {}:{}", op.id, r.name(), name);
        auto finished = wait_operation(r.client, "/1.0/operations/" + op.id, wait("waiting for " + name));
        if (finished) any_succeeded = true;
      }
      if (!waited_any) return any_succeeded;
    }
    return any_succeeded;
  }

  Result<void> remove(RemoteHandle& r, const std::string& name) {
    auto inst = get_instance(r, name);
    if (!inst) return inst.error();
    if (!*inst) return {};
    const auto p = model::live_power_from_status_code((*inst)->instance.value("status_code", 0));
    if (p != LivePower::stopped) {
      if (auto s = change_state(r, name, "stop", -1, true, wait("stopping " + name)); !s) return s;
    }
    auto op = call_and_wait(r, Method::delete_, "/1.0/instances/" + name, std::nullopt, wait("deleting " + name));
    if (!op) return op.error();
    return {};
  }

  Result<void> unmark(RemoteHandle& r, const std::string& name) {
    auto read = get_instance(r, name);
    if (!read) return read.error();
    if (!*read) return r.error(make_error(ErrorKind::not_found, name + " vanished"));
    nlohmann::json put = (*read)->instance;
    nlohmann::json config = put.value("config", nlohmann::json::object());
    config.erase(std::string{incomplete_key});
    const nlohmann::json body = {{"architecture", put.value("architecture", std::string{})},
                                 {"config", config},
                                 {"devices", put.value("devices", nlohmann::json::object())},
                                 {"ephemeral", put.value("ephemeral", false)},
                                 {"profiles", put.value("profiles", nlohmann::json::array())},
                                 {"description", put.value("description", std::string{})}};
    Headers headers;
    if (!(*read)->etag.empty()) headers.emplace_back("If-Match", (*read)->etag);
    auto op = call_and_wait(r, Method::put, "/1.0/instances/" + name, body, wait("unmarking " + name), headers);
    if (!op) return op.error();
    return {};
  }

  // nullopt: the target is a faithful copy of the source.
  Result<std::optional<std::string>> verify(RemoteHandle& src, const InstanceRead& source, const Place& from,
                                            RemoteHandle& dst, const InstanceRead& target, const Place& to) {
    auto ss = snapshot_names(src, from.instance);
    if (!ss) return ss.error();
    auto ts = snapshot_names(dst, to.instance);
    if (!ts) return ts.error();
    return verify_move(source.instance, *ss, target.instance, *ts, {});
  }

  providers::RecoveryResponse transfer() {
    const auto& d = request_.detail;
    const bool is_move = d.value("kind", std::string{}) == "move";
    const auto from = place_of(d["source"]);
    const auto to = place_of(d["target"]);
    if (!from || !to) return unresolved("the journal entry names no source or target");
    const std::string from_text = from->remote + ":" + from->instance + (from->snapshot ? "/" + *from->snapshot : "");
    const std::string to_text = to->remote + ":" + to->instance;

    auto dst = remote(to->remote);
    if (!dst) return unresolved(dst.error().message);
    auto src = remote(from->remote);
    if (!src) return unresolved(src.error().message);

    // 1. Let whatever still runs end.
    bool finished = request_.step == "verify" || request_.step == "unmark" || request_.step == "delete-source";
    // The target's operation first: it is the one that says whether the data arrived. The source's
    // pull-mode operation succeeds only once the target confirmed the transfer, so its success
    // counts too (the target's may already be gone when we look).
    auto waited = wait_for_instance(**dst, to->instance);
    if (!waited) return unresolved(waited.error().message);
    finished = finished || *waited;
    if (const auto it = d.find("source_operation"); it != d.end() && it->is_string()) {
      auto source_op =
          wait_operation((*src)->client, it->get<std::string>(), wait("waiting for the source operation"));
      finished = finished || source_op.ok();
      if (auto again = wait_for_instance(**dst, to->instance); again && *again) finished = true;
    }

    auto target = get_instance(**dst, to->instance);
    if (!target) return unresolved(target.error().message);
    auto source = get_instance(**src, from->instance);
    if (!source) return unresolved(source.error().message);

    // 2. No target.
    if (!*target) {
      if (is_move && !*source) {
        return unresolved("the move of " + from_text + " left neither the source nor the target " + to_text);
      }
      return done(to_text + " was not created; the next plan " + (is_move ? "moves" : "copies") + " again");
    }
    const bool marked = config_of((*target)->instance).count(std::string{incomplete_key}) != 0;

    // 3. Marked target.
    if (marked) {
      if (!*source) {
        return unresolved(to_text + " may be incomplete and its source " + from_text +
                          " no longer exists; left alone, check it by hand");
      }
      if (finished) {
        if (is_move) {
          auto problem = verify(**src, **source, *from, **dst, **target, *to);
          if (!problem) return unresolved(problem.error().message);
          if (*problem) {
            if (auto rm = remove(**dst, to->instance); !rm) return unresolved(rm.error().message);
            return done("the moved " + to_text + " did not match its source (" + **problem +
                        "); deleted it, the source stays");
          }
        }
        if (auto u = unmark(**dst, to->instance); !u) return unresolved(u.error().message);
        if (!is_move) return done("the copy " + to_text + " had finished; marked complete");
        if (auto rm = remove(**src, from->instance); !rm) return unresolved(rm.error().message);
        return done("the move to " + to_text + " had finished; verified it and deleted the source " + from_text);
      }
      if (auto rm = remove(**dst, to->instance); !rm) return unresolved(rm.error().message);
      return done("deleted the half-copied " + to_text + "; " + from_text + " is untouched");
    }

    // 4. Unmarked target: whole, and verified if it was a move.
    if (!is_move || !*source) return done(to_text + " is complete");
    auto problem = verify(**src, **source, *from, **dst, **target, *to);
    if (!problem) return unresolved(problem.error().message);
    if (*problem) {
      return unresolved("both " + from_text + " and " + to_text + " exist and differ (" + **problem +
                        "); neither was deleted, check them by hand");
    }
    if (auto rm = remove(**src, from->instance); !rm) return unresolved(rm.error().message);
    return done("finished the move to " + to_text + ": deleted the source " + from_text);
  }

  const ClientConfig& config_;
  const ExecutorOptions& options_;
  const providers::RecoveryRequest& request_;
  std::map<std::string, RemoteHandle> remotes_;
};

}  // namespace

LxdRecoverer::LxdRecoverer(ClientConfig config, ExecutorOptions options)
    : config_(std::move(config)), options_(options) {}

providers::RecoveryResponse LxdRecoverer::recover(const providers::RecoveryRequest& request) {
  Recovery recovery(config_, options_, request);
  return recovery.run();
}

std::unique_ptr<providers::Recoverer> make_recoverer(ClientConfig config, ExecutorOptions options) {
  return std::make_unique<LxdRecoverer>(std::move(config), options);
}

}  // namespace berth::lxd
