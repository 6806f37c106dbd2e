#include "engine/util/duration.hpp"

#include <charconv>
#include <cmath>
#include <string>

namespace berth::util {

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text) {
  // Digits and at most one point: no sign, exponent, "inf" or "nan" (which strtod would take).
  const auto number_end = text.find_first_not_of("0123456789.");
  const std::string_view number = text.substr(0, number_end);
  const std::string_view unit = number_end == std::string_view::npos ? std::string_view{} : text.substr(number_end);
  if (number.empty() || number == "." || number.find('.') != number.rfind('.')) return std::nullopt;
  double value = 0;
  const auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
  if (ec != std::errc{} || end != number.data() + number.size() || !std::isfinite(value)) return std::nullopt;
  double scale = 0;
  if (unit == "ms") {
    scale = 1;
  } else if (unit.empty() || unit == "s") {
    scale = 1000;
  } else if (unit == "m") {
    scale = 60'000;
  } else if (unit == "h") {
    scale = 3'600'000;
  } else {
    return std::nullopt;
  }
  const double ms = value * scale;
  constexpr double ten_years_ms = 10.0 * 365 * 24 * 3'600'000;
  if (ms > ten_years_ms) return std::nullopt;
  return std::chrono::milliseconds(static_cast<long long>(std::llround(ms)));
}

}  // namespace berth::util
