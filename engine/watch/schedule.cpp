#include "engine/watch/schedule.hpp"

#include <algorithm>
#include <cmath>

namespace berth::watch {

std::chrono::milliseconds jittered(std::chrono::milliseconds interval, double jitter, double draw) {
  jitter = std::clamp(jitter, 0.0, 1.0);
  draw = std::clamp(draw, 0.0, 1.0);
  const double factor = 1.0 + jitter * (2.0 * draw - 1.0);
  const auto ms = static_cast<double>(interval.count()) * factor;
  return std::chrono::milliseconds{static_cast<std::int64_t>(std::llround(std::max(ms, 0.0)))};
}

std::chrono::milliseconds retry_delay(int failures, std::chrono::milliseconds base, std::chrono::milliseconds cap) {
  if (failures < 1) return std::chrono::milliseconds{0};
  auto delay = base;
  for (int i = 1; i < failures && delay < cap; ++i) delay *= 2;  // no overflow: stops at the cap
  return std::min(delay, cap);
}

}  // namespace berth::watch
