#include "engine/diag/diagnostics.hpp"

#include <algorithm>
#include <tuple>

#include <nlohmann/json.hpp>

#include "engine/util/printable.hpp"

namespace berth::diag {

void Diagnostics::error(std::string summary, std::string path, std::optional<SourceLocation> where,
                        std::string detail) {
  items_.push_back({Severity::error, std::move(summary), std::move(detail), std::move(path), std::move(where)});
}

void Diagnostics::warning(std::string summary, std::string path, std::optional<SourceLocation> where,
                          std::string detail) {
  items_.push_back({Severity::warning, std::move(summary), std::move(detail), std::move(path), std::move(where)});
}

void Diagnostics::append(const Diagnostics& other) {
  items_.insert(items_.end(), other.items_.begin(), other.items_.end());
}

bool Diagnostics::has_errors() const {
  return std::any_of(items_.begin(), items_.end(), [](const Diagnostic& d) { return d.severity == Severity::error; });
}

void Diagnostics::sort_by_location() {
  std::stable_sort(items_.begin(), items_.end(), [](const Diagnostic& a, const Diagnostic& b) {
    auto key = [](const Diagnostic& d) {
      return d.where ? std::make_tuple(d.where->file, d.where->line, d.where->column)
                     : std::make_tuple(std::string{}, 0, 0);
    };
    return key(a) < key(b);
  });
}

// Every field may quote its input (a file name from the command line, a value from a daemon): each
// is escaped on its own, so the line breaks and the layout are format()'s.
std::string format(const Diagnostic& d) {
  std::string out;
  if (d.where) {
    out += util::printable(d.where->file);
    if (d.where->line > 0) {
      out += ':' + std::to_string(d.where->line);
      if (d.where->column > 0) out += ':' + std::to_string(d.where->column);
    }
    out += ": ";
  }
  out += d.severity == Severity::error ? "error: " : "warning: ";
  if (!d.path.empty()) out += util::printable(d.path) + ": ";
  out += util::printable(d.summary);
  if (!d.detail.empty()) {
    out += "\n  ";
    out += util::printable(d.detail);
  }
  return out;
}

std::string format(const Diagnostics& ds) {
  std::string out;
  for (const auto& d : ds.items()) out += format(d) + '\n';
  return out;
}

nlohmann::json to_json(const Diagnostic& d) {
  const auto text_or_null = [](const std::string& s) { return s.empty() ? nlohmann::json() : nlohmann::json(s); };
  const auto number_or_null = [](int n) { return n > 0 ? nlohmann::json(n) : nlohmann::json(); };
  return {{"severity", d.severity == Severity::error ? "error" : "warning"},
          {"file", d.where ? text_or_null(d.where->file) : nlohmann::json()},
          {"line", d.where ? number_or_null(d.where->line) : nlohmann::json()},
          {"column", d.where ? number_or_null(d.where->column) : nlohmann::json()},
          {"path", text_or_null(d.path)},
          {"message", d.summary},
          {"hint", text_or_null(d.detail)}};
}

nlohmann::json to_json(const Diagnostics& ds) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& d : ds.items()) out.push_back(to_json(d));
  return out;
}

}  // namespace berth::diag
