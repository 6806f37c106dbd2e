#pragma once
// Helpers for the watch tests: a fleet from text, with no environment.

#include <stdexcept>
#include <string>

#include "engine/config/load.hpp"

namespace berth::watch::testing {

inline model::Fleet load(const std::string& text) {
  auto loaded = config::load_fleet_text(text, "fleet.yaml", [](std::string_view) { return std::nullopt; });
  if (!loaded.fleet) throw std::runtime_error(diag::format(loaded.diagnostics));
  return std::move(*loaded.fleet);
}

}  // namespace berth::watch::testing
