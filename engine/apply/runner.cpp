#include "engine/apply/runner.hpp"

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "engine/util/printable.hpp"

namespace berth::apply {
namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The journal of this run, shared by the worker threads. SQLite serialises writes; the mutex keeps
// each intent/result call atomic with respect to the others.
class StoreJournal final : public providers::StepJournal {
 public:
  StoreJournal(state::Store& store, std::int64_t run_id, const RunOptions& options)
      : store_(store), run_id_(run_id), options_(options) {}
  std::int64_t intent(const std::string& action_id, const std::string& step, const nlohmann::json& detail) override {
    std::int64_t seq = 0;
    {
      const std::lock_guard lock(mutex_);
      seq = store_.journal_intent(run_id_, action_id, step, util::json_text(clean_json(detail)));
    }
    if (options_.on_intent) options_.on_intent(action_id, step);
    return seq;
  }
  void result(std::int64_t seq, bool ok, const nlohmann::json& detail) override {
    const std::lock_guard lock(mutex_);
    store_.journal_result(seq, ok, util::json_text(clean_json(detail)));
  }
  std::mutex& mutex() { return mutex_; }
  [[nodiscard]] std::string clean(std::string_view text) const {
    return options_.redactor != nullptr ? options_.redactor->apply(text) : std::string{text};
  }
  // Every string in `j` scrubbed before it is serialised: a secret a daemon echoed inside an error
  // is escaped again by the dump, in a form the redactor would no longer recognise.
  [[nodiscard]] nlohmann::json clean_json(nlohmann::json j) const {
    if (options_.redactor == nullptr) return j;
    if (j.is_string()) return clean(j.get<std::string>());
    if (j.is_structured()) {
      for (auto& item : j) item = clean_json(std::move(item));
    }
    return j;
  }

 private:
  state::Store& store_;
  std::int64_t run_id_;
  const RunOptions& options_;
  std::mutex mutex_;
};

const plan::Action* find_action(const plan::Plan& plan, const std::string& id) {
  for (const auto& a : plan.actions) {
    if (a.id == id) return &a;
  }
  return nullptr;
}

struct Finished {
  std::string id;
  providers::ExecuteResponse response;
  double seconds = 0;
};

}  // namespace

RunSummary run_plan(const plan::Plan& plan, const model::Fleet& fleet, providers::ActionExecutor& executor,
                    state::Store& store, std::int64_t run_id, const RunOptions& options, const EventSink& events) {
  Walk walk(plan, options.limits, plan::refusals(plan));
  StoreJournal journal(store, run_id, options);

  std::mutex mutex;  // guards `finished` and serialises calls to `events`
  std::condition_variable wake;
  std::deque<Finished> finished;
  std::vector<std::thread> workers;

  auto emit = [&](const nlohmann::json& e) {
    const std::lock_guard lock(mutex);
    events(e);
  };
  // Writes to the state file from the walking thread. A failure (disk full, a damaged page) is
  // remembered and reported, never thrown past running workers.
  std::string state_error;
  auto record = [&](const auto& write) {
    const std::lock_guard jl(journal.mutex());
    try {
      write();
    } catch (const std::exception& e) {
      if (state_error.empty()) state_error = e.what();
    }
  };

  for (const auto& a : plan.actions) {
    const auto& o = walk.outcome(a.id);
    if (o.status == Status::refused || o.status == Status::skipped) {
      emit({{"event", std::string{to_string(o.status)}}, {"action", a.id}, {"error", o.error}});
      record([&] { store.record_action(run_id, a.id, std::string{to_string(o.status)}, journal.clean(o.error), 0); });
    }
  }

  bool cancelled_reported = false;
  while (!walk.done()) {
    const bool cancelled = options.cancel != nullptr && options.cancel->load();
    if (!cancelled) {
      for (const auto* action : walk.take_ready()) {
        emit({{"event", "started"}, {"action", action->id}});
        workers.emplace_back([&, action] {
          const auto start = std::chrono::steady_clock::now();
          providers::ExecuteRequest request;
          request.action = action;
          request.fleet = &fleet;
          request.journal = &journal;
          request.cancel = options.abort != nullptr ? options.abort : options.cancel;
          request.progress = [&, id = action->id](const providers::Progress& p) {
            nlohmann::json e = {{"event", "progress"}, {"action", id}, {"message", p.message}};
            if (p.bytes) e["bytes"] = *p.bytes;
            if (p.bytes_per_second) e["bytes_per_second"] = *p.bytes_per_second;
            if (p.total_bytes) e["total_bytes"] = *p.total_bytes;
            emit(e);
          };
          providers::ExecuteResponse response;
          try {
            response = executor.execute(request);
          } catch (const std::exception& e) {
            // A bug (or an answer no parser expected): this action fails; the walk, the journal
            // and the lock stay intact instead of the process aborting.
            response.ok = false;
            response.error = std::string{"internal error: "} + e.what();
          }
          response.error = journal.clean(response.error);  // before it goes into events and the state file
          const std::lock_guard lock(mutex);
          finished.push_back({action->id, std::move(response), seconds_since(start)});
          wake.notify_one();
        });
      }
    } else if (!cancelled_reported) {
      cancelled_reported = true;
      emit({{"event", "cancelled"}, {"message", "interrupted: waiting for running actions, starting no new ones"}});
    }
    if (walk.running() == 0) {
      if (cancelled) break;  // nothing running and nothing may start
      continue;              // take_ready found nothing and nothing runs: the walk is done
    }

    std::unique_lock lock(mutex);
    wake.wait(lock, [&] { return !finished.empty(); });
    while (!finished.empty()) {
      auto f = std::move(finished.front());
      finished.pop_front();
      lock.unlock();
      if (f.response.ok) {
        walk.succeed(f.id);
      } else {
        walk.fail(f.id, f.response.error);
      }
      record([&] {
        store.record_action(run_id, f.id, f.response.ok ? "succeeded" : "failed", journal.clean(f.response.error),
                            f.seconds);
        const auto* action = find_action(plan, f.id);
        if (f.response.ok && action != nullptr && action->recovery) {
          store.resolve_intents(action->recovery->settles, "settled by " + f.id + " in run " + std::to_string(run_id));
        }
      });
      nlohmann::json e = {{"event", f.response.ok ? "finished" : "failed"}, {"action", f.id}, {"seconds", f.seconds}};
      if (!f.response.ok) e["error"] = f.response.error;
      if (f.response.command) {
        // A command's output may echo a secret it was given: scrubbed like every error.
        const auto& c = *f.response.command;
        e["exit_code"] = c.exit_code;
        e["stdout"] = journal.clean(c.out);
        e["stderr"] = journal.clean(c.err);
        if (c.cut) e["output_cut"] = true;
      }
      lock.lock();
      events(e);
      lock.unlock();
      // Whatever this failure made unreachable is reported now, not at the end.
      if (!f.response.ok) {
        for (const auto& a : plan.actions) {
          const auto& o = walk.outcome(a.id);
          if (o.status == Status::skipped && o.error.find(f.id + ",") != std::string::npos) {
            emit({{"event", "skipped"}, {"action", a.id}, {"error", o.error}});
            record([&] { store.record_action(run_id, a.id, "skipped", journal.clean(o.error), 0); });
          }
        }
      }
      lock.lock();
    }
  }
  for (auto& t : workers) t.join();

  RunSummary summary;
  summary.counts = walk.counts();
  for (const auto& a : plan.actions) summary.outcomes[a.id] = walk.outcome(a.id);
  summary.all_succeeded = walk.all_succeeded() && state_error.empty();
  summary.state_error = state_error;
  return summary;
}

}  // namespace berth::apply
