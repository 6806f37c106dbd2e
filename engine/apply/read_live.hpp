#pragma once

#include "engine/model/desired.hpp"
#include "engine/model/live.hpp"
#include "providers/provider.hpp"

namespace berth::apply {

// Reads every declared remote at once, one thread per remote (each does its own bulk reads).
// A remote that fails is Unknown in the result; the others are unaffected.
struct LiveRead {
  model::LiveState live;
  diag::Diagnostics diagnostics;  // what the reads reported beyond an Unknown remote (which `live` carries)
};
[[nodiscard]] LiveRead read_live_state(const model::Fleet& fleet, providers::StateReader& reader);

}  // namespace berth::apply
