#pragma once
// Scrubs secrets out of text on its way out: every value from the environment or marked
// sensitive, in its plain and its JSON-escaped form, is replaced by what may be shown instead
// ("(sensitive)", or "${env:NAME}" for a URL). The plan masks secrets structurally; this is the
// net under everything else that is printed, logged or stored (errors from a daemon, events).

#include <shared_mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace berth::util {

class Redactor {
 public:
  // Values shorter than this are not scrubbed from free text (a "2" would mangle every number);
  // the plan still masks them wherever it shows them.
  static constexpr std::size_t min_length = 4;

  void add(std::string_view secret, std::string_view shown);
  [[nodiscard]] std::string apply(std::string_view text) const;
  [[nodiscard]] bool empty() const;

 private:
  mutable std::shared_mutex mutex_;
  std::vector<std::pair<std::string, std::string>> pairs_;  // longest first
};

}  // namespace berth::util
