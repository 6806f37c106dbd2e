#pragma once

#include "engine/model/desired.hpp"
#include "engine/model/live.hpp"
#include "providers/provider.hpp"

namespace berth::apply {

// Reads every declared remote, at most `parallelism` at once (a bounded pool of threads, each
// doing one remote's bulk reads at a time): a fleet of thousands of remotes never means
// thousands of threads. A remote that fails is Unknown in the result; the others are unaffected.
inline constexpr int default_read_parallelism = 32;
struct LiveRead {
  model::LiveState live;
  diag::Diagnostics diagnostics;  // what the reads reported beyond an Unknown remote (which `live` carries)
  std::map<std::string, double> read_seconds;  // remote -> how long its read took
};
[[nodiscard]] LiveRead read_live_state(const model::Fleet& fleet, providers::StateReader& reader,
                                       int parallelism = default_read_parallelism);

}  // namespace berth::apply
