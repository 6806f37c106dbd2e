#pragma once
// Text that came from outside berth (the fleet file, the environment, daemon answers, saved plans,
// the state file, the command line) on its way to a terminal or a log: one function decides how
// it is shown, so that no name, value or error text can move the cursor, retitle the window,
// colour the rest of the output or hide what follows it.
//
// Renderers escape the data they interpolate, never a whole line: berth's own colour codes are
// written around escaped data and keep working. Escaping is idempotent (its output is printable
// ASCII plus valid, harmless UTF-8), so text escaped twice reads the same as text escaped once.

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace berth::util {

// `text` with every byte that a terminal would act on written out:
//   \n \r \t               as those two-character escapes (every field shown is one line);
//   other C0 controls, DEL  as \xNN (NUL is \x00, ESC is \x1b);
//   invalid UTF-8           each offending byte as \xNN;
//   C1 controls (U+0080-U+009F), the line and paragraph separators (U+2028, U+2029) and the
//   bidirectional overrides and isolates (U+202A-U+202E, U+2066-U+2069)   as \uNNNN.
// Everything else, including a backslash and any other valid UTF-8, is kept as it is.
[[nodiscard]] std::string printable(std::string_view text);

// True when `text` is valid UTF-8 (no overlong forms, surrogates or values above U+10FFFF).
[[nodiscard]] bool is_utf8(std::string_view text);

// value.dump(indent) for output: never throws. nlohmann's dump() throws type_error 316 on a string
// that is not valid UTF-8 (a fleet value, a path from the command line, a header); here such bytes
// become U+FFFD. Control characters come out as JSON escapes (\u001b), as dump() always writes them.
[[nodiscard]] std::string json_text(const nlohmann::json& value, int indent = -1);

}  // namespace berth::util
