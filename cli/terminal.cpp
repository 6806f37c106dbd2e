#include "cli/terminal.hpp"

#include "cli/output.hpp"

#include <termios.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>

namespace berth::cli {

bool use_color(std::FILE* stream, bool no_color_flag) {
  if (no_color_flag) return false;
  if (const char* v = std::getenv("NO_COLOR"); v != nullptr && *v != '\0') return false;
  return ::isatty(::fileno(stream)) == 1;
}

bool stdin_is_tty() {
  return ::isatty(STDIN_FILENO) == 1;
}

std::optional<std::string> prompt(std::string_view question) {
  std::cerr << question << std::flush;
  flush_partial_output();
  std::string line;
  if (!std::getline(std::cin, line)) return std::nullopt;
  return line;
}

std::optional<std::string> read_secret(std::string_view question) {
  termios saved{};
  const bool tty = ::tcgetattr(STDIN_FILENO, &saved) == 0;
  if (tty) {
    termios quiet = saved;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
  }
  auto line = prompt(question);
  if (tty) {
    ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
    std::cerr << '\n';
  }
  return line;
}

}  // namespace berth::cli
