#pragma once
// Wall-clock time as berth writes it: RFC 3339 in UTC to the second ("2026-12-03T04:05:06Z").

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace berth::util {

[[nodiscard]] std::string rfc3339_utc(std::chrono::system_clock::time_point t);
[[nodiscard]] inline std::string rfc3339_utc_now() {
  return rfc3339_utc(std::chrono::system_clock::now());
}

// The time a "YYYY-MM-DDTHH:MM:SSZ" text (as rfc3339_utc writes it; a fraction of a second is
// allowed and dropped) names; nullopt for anything else, and for a year outside 1678-2261 (what a
// system_clock time point holds).
[[nodiscard]] std::optional<std::chrono::system_clock::time_point> parse_rfc3339_utc(std::string_view text);

// Any RFC 3339 time a client may send: "Z" or a "+HH:MM"/"-HH:MM" offset (Go's time marshalling
// writes both), a fraction of a second dropped; nullopt for anything else.
[[nodiscard]] std::optional<std::chrono::system_clock::time_point> parse_rfc3339(std::string_view text);

}  // namespace berth::util
