#pragma once
// ${env:NAME} in fleet file values. Values read from the environment may be secrets (trust
// passwords, tokens, internal addresses): callers must not print interpolated text, only the
// names of the variables it came from.

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace berth::config {

// Looks up an environment variable; nullopt when it is not set. Injectable for tests.
using EnvLookup = std::function<std::optional<std::string>(std::string_view)>;

// The process environment (getenv).
[[nodiscard]] EnvLookup process_env();

struct InterpolationError {
  std::string summary;
  std::string detail;
};

struct Interpolation {
  std::string text;                        // the value with every reference replaced
  std::vector<std::string> variables;      // names of the variables it used, in order
  std::vector<InterpolationError> errors;  // unset variables, malformed references
};

// Replaces each ${env:NAME} (NAME: [A-Za-z_][A-Za-z0-9_]*) with the variable's value and each $${
// with a literal ${. Any other ${...} is an error; so is an unset variable. A bare $ is literal.
[[nodiscard]] Interpolation interpolate(std::string_view value, const EnvLookup& env);

}  // namespace berth::config
