#include "engine/util/redact.hpp"

#include <algorithm>
#include <mutex>

#include <nlohmann/json.hpp>

#include "engine/util/printable.hpp"

namespace berth::util {

void Redactor::add(std::string_view secret, std::string_view shown) {
  if (secret.size() < min_length) return;
  const std::string plain{secret};
  const std::string dumped = json_text(nlohmann::json(plain));
  const std::string escaped = dumped.substr(1, dumped.size() - 2);  // as it appears inside a JSON string
  const std::string shown_escaped = printable(plain);               // as a terminal line shows it
  const std::unique_lock lock(mutex_);
  for (const auto& needle : {plain, escaped, shown_escaped}) {
    const bool known = std::any_of(pairs_.begin(), pairs_.end(), [&](const auto& p) { return p.first == needle; });
    if (!known) pairs_.emplace_back(needle, std::string{shown});
  }
  std::stable_sort(pairs_.begin(), pairs_.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
}

std::string Redactor::apply(std::string_view text) const {
  const std::shared_lock lock(mutex_);
  std::string out{text};
  for (const auto& [needle, shown] : pairs_) {
    for (std::size_t at = out.find(needle); at != std::string::npos; at = out.find(needle, at + shown.size())) {
      out.replace(at, needle.size(), shown);
    }
  }
  return out;
}

bool Redactor::empty() const {
  const std::shared_lock lock(mutex_);
  return pairs_.empty();
}

}  // namespace berth::util
