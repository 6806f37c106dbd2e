#pragma once
// When `berth watch` runs next: every interval with jitter, so that many watchers of one fleet
// do not read the hosts in step; and how long a failing action waits before it is tried again
// (capped exponential backoff). Pure: the caller supplies the random draw.

#include <chrono>

namespace berth::watch {

// `interval` moved by up to `jitter` (a fraction, 0.1 = 10 %) either way; `draw` is uniform in [0, 1).
[[nodiscard]] std::chrono::milliseconds jittered(std::chrono::milliseconds interval, double jitter, double draw);

// After `failures` failed attempts (>= 1): base * 2^(failures - 1), at most `cap`.
[[nodiscard]] std::chrono::milliseconds retry_delay(int failures, std::chrono::milliseconds base,
                                                    std::chrono::milliseconds cap);

}  // namespace berth::watch
