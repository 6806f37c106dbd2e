#pragma once
// Helpers for the fleet file tests: load text with a fixed environment, and find diagnostics.

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <string_view>

#include "engine/config/load.hpp"

namespace berth::config::testing {

inline EnvLookup fixed_env(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](std::string_view name) -> std::optional<std::string> {
    const auto it = vars.find(std::string{name});
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

inline LoadResult load(std::string_view text, std::map<std::string, std::string> env = {}) {
  return load_fleet_text(text, "fleet.yaml", fixed_env(std::move(env)));
}

inline std::string all(const LoadResult& r) {
  return diag::format(r.diagnostics);
}

// Asserts that an error at fleet.yaml:line:col has `path` and a summary containing `summary`;
// returns it (nullptr when missing).
inline const diag::Diagnostic* expect_error(const LoadResult& r, int line, int column, const std::string& path,
                                            const std::string& summary) {
  for (const auto& d : r.diagnostics.items()) {
    if (d.severity != diag::Severity::error || !d.where) continue;
    if (d.where->line == line && d.where->column == column && d.path == path &&
        d.summary.find(summary) != std::string::npos) {
      EXPECT_EQ(d.where->file, "fleet.yaml");
      return &d;
    }
  }
  ADD_FAILURE() << "no error at fleet.yaml:" << line << ":" << column << " with path '" << path
                << "' and summary containing '" << summary << "'; got:\n"
                << all(r);
  return nullptr;
}

inline std::size_t error_count(const LoadResult& r) {
  std::size_t n = 0;
  for (const auto& d : r.diagnostics.items()) n += d.severity == diag::Severity::error ? 1 : 0;
  return n;
}

}  // namespace berth::config::testing
