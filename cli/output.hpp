#pragma once
// Everything berth prints (stdout, stderr, logs) passes through one Redactor: a secret that
// reached a message some other way (an error a daemon echoed, a URL from the environment) is
// scrubbed before it leaves the process.

#include <memory>
#include <streambuf>
#include <string>

#include "engine/model/desired.hpp"
#include "engine/plan/plan.hpp"
#include "engine/util/redact.hpp"

namespace berth::cli {

// The process's redactor; fed as secrets become known.
[[nodiscard]] util::Redactor& output_redactor();
void redact_fleet_secrets(const model::Fleet& fleet);
void redact_plan_secrets(const plan::Plan& plan);

// Passes on what is buffered of an unfinished line (a prompt before reading its answer).
void flush_partial_output();

// Installs a line-buffered scrubbing buffer on std::cout and std::cerr for its lifetime.
class RedactedOutput {
 public:
  RedactedOutput();
  ~RedactedOutput();
  RedactedOutput(const RedactedOutput&) = delete;
  RedactedOutput& operator=(const RedactedOutput&) = delete;

 private:
  std::unique_ptr<std::streambuf> out_;
  std::unique_ptr<std::streambuf> err_;
  std::streambuf* old_out_ = nullptr;
  std::streambuf* old_err_ = nullptr;
};

}  // namespace berth::cli
