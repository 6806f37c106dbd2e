#pragma once

#include <string>

namespace berth::util {

// `digits` random hex digits from std::random_device: ids that must not collide (lock ids,
// transfer tokens). Not for secrets.
[[nodiscard]] std::string random_hex(int digits);

}  // namespace berth::util
