#pragma once
// Walks a plan's DAG: which actions may start now, given what finished, what failed and the
// concurrency bounds. A pure state machine — the caller owns threads and calls to hosts — so
// every scheduling rule is unit-testable without a host.
//
// Rules:
// - an action starts only when every action it depends on succeeded;
// - when an action fails, everything that depends on it (transitively) is skipped, not attempted;
// - at most `global` actions run at once, and at most the remote's bound on each remote an
//   action touches (a copy or move across hosts counts on both);
// - two actions touching the same container (as target or source) never run at once: LXD 5.0
//   can leave an operation Running forever when a running container is snapshotted and copied
//   concurrently, and ordering them costs little;
// - actions refused before the walk (missing consent) count as failed for their dependents.

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "engine/plan/plan.hpp"

namespace berth::apply {

enum class Status { pending, running, succeeded, failed, skipped, refused };
[[nodiscard]] std::string_view to_string(Status s);

struct Limits {
  int global = 10;
  int default_per_remote = 4;
  std::map<std::string, int> per_remote;  // overrides, from the fleet file
  [[nodiscard]] int for_remote(const std::string& remote) const;
};

struct Outcome {
  Status status = Status::pending;
  std::string error;  // failed: what went wrong; skipped: which failure it follows; refused: why
};

class Walk {
 public:
  // `refused`: action id -> reason (e.g. missing consent). Refused actions never run.
  Walk(const plan::Plan& plan, Limits limits, const std::map<std::string, std::string>& refused = {});

  // The actions that can start now, marked running; in plan order. Empty when none can start
  // (either all are running or blocked, or the walk is done).
  [[nodiscard]] std::vector<const plan::Action*> take_ready();

  void succeed(const std::string& id);
  void fail(const std::string& id, std::string error);

  [[nodiscard]] bool done() const;  // nothing pending or running
  [[nodiscard]] int running() const { return running_; }
  [[nodiscard]] const Outcome& outcome(const std::string& id) const;
  [[nodiscard]] std::map<Status, int> counts() const;
  [[nodiscard]] bool all_succeeded() const;

 private:
  [[nodiscard]] std::vector<std::string> remotes_of(const plan::Action& a) const;
  [[nodiscard]] static std::vector<std::string> containers_of(const plan::Action& a);
  void release(const plan::Action& a);
  void skip_dependents(const std::string& id, const std::string& because);

  const plan::Plan& plan_;
  Limits limits_;
  std::map<std::string, std::size_t> index_;
  std::map<std::string, std::vector<std::string>> dependents_;
  std::vector<Outcome> outcomes_;
  std::map<std::string, int> busy_;        // remote -> running actions touching it
  std::set<std::string> busy_containers_;  // "remote:container" touched by a running action
  int running_ = 0;
};

}  // namespace berth::apply
