#pragma once
// What the schema cannot say: references between entries (remotes, images, placements, copy
// sources and their snapshots), copy_of cycles, URLs, image-or-copy_of, remote-or-placement, label
// selectors, sizes. Builds the desired model from a document that passed the schema. Internal to
// engine/config.

#include <set>

#include "engine/config/document.hpp"
#include "engine/diag/diagnostics.hpp"
#include "engine/model/desired.hpp"

namespace berth::config {

// Reports every semantic problem to `out`, skipping values in `flagged` (already reported), and
// returns the resolved fleet. The fleet is only meaningful when `out` has no errors.
[[nodiscard]] model::Fleet resolve(const Document& doc, const std::set<KeyPath>& flagged, diag::Diagnostics& out);

}  // namespace berth::config
