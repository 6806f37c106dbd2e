#include "cli/output.hpp"

#include <iostream>
#include <mutex>

namespace berth::cli {
namespace {

// Collects a line, scrubs it, passes it on. Secrets are single-line values: a line is the unit
// in which one can appear whole, so a flush (std::cerr flushes after every <<) passes on only
// complete lines; a prompt's partial line goes out through flush_partial().
class RedactingBuf final : public std::streambuf {
 public:
  explicit RedactingBuf(std::streambuf* target) : target_(target) {}
  ~RedactingBuf() override { flush_partial(); }
  RedactingBuf(RedactingBuf&&) = delete;
  RedactingBuf(const RedactingBuf&) = delete;
  RedactingBuf& operator=(const RedactingBuf&) = delete;

 protected:
  int_type overflow(int_type ch) override {
    if (traits_type::eq_int_type(ch, traits_type::eof())) return traits_type::not_eof(ch);
    const std::lock_guard lock(mutex_);
    line_.push_back(traits_type::to_char_type(ch));
    if (ch == '\n') write_line();
    return ch;
  }
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    const std::lock_guard lock(mutex_);
    for (std::streamsize i = 0; i < n; ++i) {
      line_.push_back(s[i]);
      if (s[i] == '\n') write_line();
    }
    return n;
  }
  int sync() override { return target_->pubsync(); }

 public:
  void flush_partial() {
    const std::lock_guard lock(mutex_);
    write_line();
    target_->pubsync();
  }

 private:
  void write_line() {
    if (line_.empty()) return;
    const std::string clean = output_redactor().apply(line_);
    target_->sputn(clean.data(), static_cast<std::streamsize>(clean.size()));
    line_.clear();
  }

  std::streambuf* target_;
  std::mutex mutex_;
  std::string line_;
};

RedactingBuf* installed_out = nullptr;
RedactingBuf* installed_err = nullptr;

}  // namespace

void flush_partial_output() {
  for (auto* buf : {installed_out, installed_err}) {
    if (buf != nullptr) buf->flush_partial();
  }
}

util::Redactor& output_redactor() {
  static util::Redactor redactor;
  return redactor;
}

void redact_fleet_secrets(const model::Fleet& fleet) {
  for (const auto& s : fleet.secrets) output_redactor().add(s.value, s.shown);
}

void redact_plan_secrets(const plan::Plan& plan) {
  for (const auto& v : plan::secret_values(plan)) output_redactor().add(v, plan::sensitive_text);
}

RedactedOutput::RedactedOutput() {
  old_out_ = std::cout.rdbuf();
  old_err_ = std::cerr.rdbuf();
  auto out = std::make_unique<RedactingBuf>(old_out_);
  auto err = std::make_unique<RedactingBuf>(old_err_);
  installed_out = out.get();
  installed_err = err.get();
  out_ = std::move(out);
  err_ = std::move(err);
  std::cout.rdbuf(out_.get());
  std::cerr.rdbuf(err_.get());
}

RedactedOutput::~RedactedOutput() {
  std::cout.flush();
  std::cerr.flush();
  flush_partial_output();
  std::cout.rdbuf(old_out_);
  std::cerr.rdbuf(old_err_);
  installed_out = nullptr;
  installed_err = nullptr;
}

}  // namespace berth::cli
