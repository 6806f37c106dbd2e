#pragma once
// Durations as the command line writes them: "30", "30s", "1.5s", "250ms", "2m", "1h".

#include <chrono>
#include <optional>
#include <string_view>

namespace berth::util {

// Milliseconds; nullopt when malformed, negative, not finite, or longer than 10 years (a typo,
// never a timeout anyone means).
[[nodiscard]] std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);

}  // namespace berth::util
