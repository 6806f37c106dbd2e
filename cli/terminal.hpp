#pragma once
// What the CLI knows about where it writes: colour, prompts.

#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

namespace berth::cli {

// Colour only on a TTY, never with NO_COLOR set (https://no-color.org) or --no-color.
[[nodiscard]] bool use_color(std::FILE* stream, bool no_color_flag);

[[nodiscard]] bool stdin_is_tty();

// Prints `question` on stderr and reads one line from stdin; nullopt at EOF.
[[nodiscard]] std::optional<std::string> prompt(std::string_view question);

// As prompt(), without echoing what is typed (for passwords and tokens).
[[nodiscard]] std::optional<std::string> read_secret(std::string_view question);

}  // namespace berth::cli
