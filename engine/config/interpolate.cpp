#include "engine/config/interpolate.hpp"

#include <algorithm>
#include <cstdlib>

namespace berth::config {
namespace {

bool is_name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool is_name_char(char c) {
  return is_name_start(c) || (c >= '0' && c <= '9');
}

bool is_variable_name(std::string_view name) {
  return !name.empty() && is_name_start(name.front()) && std::all_of(name.begin(), name.end(), is_name_char);
}

}  // namespace

EnvLookup process_env() {
  return [](std::string_view name) -> std::optional<std::string> {
    // getenv is only read here, never written by berth, so reading it is safe.
    const char* value = std::getenv(std::string{name}.c_str());  // NOLINT(concurrency-mt-unsafe)
    if (value == nullptr) return std::nullopt;
    return std::string{value};
  };
}

Interpolation interpolate(std::string_view value, const EnvLookup& env) {
  Interpolation out;
  std::size_t i = 0;
  while (i < value.size()) {
    const auto dollar = value.find('$', i);
    if (dollar == std::string_view::npos) {
      out.text.append(value.substr(i));
      break;
    }
    out.text.append(value.substr(i, dollar - i));
    const std::string_view rest = value.substr(dollar);
    if (rest.starts_with("$${")) {  // escape: $${ is a literal ${
      out.text.append("${");
      i = dollar + 3;
      continue;
    }
    if (!rest.starts_with("${")) {  // a lone $ is just a character
      out.text.push_back('$');
      i = dollar + 1;
      continue;
    }
    const auto close = rest.find('}');
    if (close == std::string_view::npos) {
      out.errors.push_back({"unterminated '${' in a value",
                            "write ${env:NAME} to read an environment variable, or $${ for a literal ${"});
      out.text.append(rest);
      break;
    }
    const std::string_view reference = rest.substr(0, close + 1);
    const std::string_view inner = rest.substr(2, close - 2);
    if (!inner.starts_with("env:") || !is_variable_name(inner.substr(4))) {
      out.errors.push_back({"unsupported reference '" + std::string{reference} + "'",
                            "only ${env:NAME} is supported (NAME: letters, digits and _); write $${ for a literal ${"});
      out.text.append(reference);
    } else {
      const std::string name{inner.substr(4)};
      out.variables.push_back(name);
      if (auto found = env(name)) {
        out.text.append(*found);
      } else {
        out.errors.push_back({"environment variable " + name + " is not set (referenced as ${env:" + name + "})",
                              "export " + name + " before running berth, or write $${env:" + name +
                                  "} for a literal ${env:" + name + "}"});
      }
    }
    i = dollar + close + 1;
  }
  return out;
}

}  // namespace berth::config
