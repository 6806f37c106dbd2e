#pragma once
// Wall-clock time as berth writes it: RFC 3339 in UTC to the second ("2026-12-03T04:05:06Z").

#include <chrono>
#include <string>

namespace berth::util {

[[nodiscard]] std::string rfc3339_utc(std::chrono::system_clock::time_point t);
[[nodiscard]] inline std::string rfc3339_utc_now() {
  return rfc3339_utc(std::chrono::system_clock::now());
}

}  // namespace berth::util
