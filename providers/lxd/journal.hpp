#pragma once
// Wraps one host-changing call in the step journal: intent before, result after. A crash between
// the two leaves the intent open, which is what recovery looks for. Details must hold no secrets.

#include <cstdint>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "providers/lxd/result.hpp"
#include "providers/provider.hpp"

namespace berth::lxd {

class Journal {
 public:
  Journal(providers::StepJournal* journal, std::string action_id)
      : journal_(journal), action_id_(std::move(action_id)) {}

  // Runs `call` (returning Result<T>) between the intent and the result. `extra`, if given, is called
  // after `call` and its object is merged into the result detail (e.g. an operation URL learnt).
  template <class Call>
  auto step(const std::string& name, const nlohmann::json& detail, Call&& call) {
    return step(name, detail, std::forward<Call>(call), [] { return nlohmann::json::object(); });
  }

  template <class Call, class Extra>
  auto step(const std::string& name, const nlohmann::json& detail, Call&& call, Extra&& extra) {
    const std::int64_t seq = journal_ != nullptr ? journal_->intent(action_id_, name, detail) : 0;
    auto result = call();
    if (journal_ != nullptr) {
      nlohmann::json out = extra();
      if (!out.is_object()) out = nlohmann::json::object();
      if (!result) out["error"] = result.error().message;
      journal_->result(seq, result.ok(), out);
    }
    return result;
  }

 private:
  providers::StepJournal* journal_;
  std::string action_id_;
};

}  // namespace berth::lxd
