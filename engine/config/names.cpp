#include "engine/config/names.hpp"

#include <algorithm>

namespace berth::config {
namespace {

bool is_ascii_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool is_ascii_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_ascii_alnum(char c) {
  return is_ascii_alpha(c) || is_ascii_digit(c);
}
// The characters std::regex's \s matches (ECMAScript WhiteSpace and LineTerminator, ASCII part).
bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}
bool has_space(std::string_view s) {
  return std::any_of(s.begin(), s.end(), is_space);
}

std::optional<std::string> length_problem(std::string_view s, std::size_t max) {
  if (s.empty()) return "must not be empty";
  if (s.size() > max) return "must be at most " + std::to_string(max) + " characters long";
  return std::nullopt;
}

}  // namespace

std::optional<std::string> instance_name_problem(std::string_view name) {
  if (auto p = length_problem(name, 63)) return p;
  if (name.find('/') != std::string_view::npos)
    return std::string{"must not contain '/' (LXD reserves it for snapshots)"};
  if (name.front() == '-') return std::string{"must not start with a hyphen"};
  if (is_ascii_digit(name.front())) return std::string{"must not start with a digit"};
  if (name.back() == '-') return std::string{"must not end with a hyphen"};
  if (!std::all_of(name.begin(), name.end(), [](char c) { return is_ascii_alnum(c) || c == '-'; })) {
    return std::string{"may contain only ASCII letters, digits and hyphens"};
  }
  return std::nullopt;
}

std::optional<std::string> snapshot_name_problem(std::string_view name) {
  if (auto p = length_problem(name, 63)) return p;
  if (name == "." || name == "..") return std::string{"must not be '.' or '..'"};
  if (name.find('/') != std::string_view::npos) return std::string{"must not contain '/'"};
  if (has_space(name)) return std::string{"must not contain whitespace"};
  return std::nullopt;
}

std::optional<std::string> profile_name_problem(std::string_view name) {
  return snapshot_name_problem(name);
}

std::optional<std::string> remote_name_problem(std::string_view name) {
  if (auto p = length_problem(name, 63)) return p;
  if (name.front() == '.' || name.front() == '-') return std::string{"must not start with '.' or '-'"};
  if (!std::all_of(name.begin(), name.end(),
                   [](char c) { return is_ascii_alnum(c) || c == '.' || c == '-' || c == '_'; })) {
    return std::string{"may contain only ASCII letters, digits, '.', '-' and '_'"};
  }
  return std::nullopt;
}

std::optional<std::string> project_name_problem(std::string_view name) {
  if (auto p = length_problem(name, 63)) return p;
  if (name.front() == '.' || name.front() == '-') return std::string{"must not start with '.' or '-'"};
  if (!std::all_of(name.begin(), name.end(), [](char c) { return is_ascii_alnum(c) || c == '.' || c == '-'; })) {
    return std::string{"may contain only ASCII letters, digits, '.' and '-'"};
  }
  return std::nullopt;
}

std::optional<std::string> local_name_problem(std::string_view name) {
  if (auto p = length_problem(name, 63)) return p;
  if (!std::all_of(name.begin(), name.end(), [](char c) { return is_ascii_alnum(c) || c == '-' || c == '_'; })) {
    return std::string{"may contain only ASCII letters, digits, '-' and '_'"};
  }
  return std::nullopt;
}

std::optional<std::string> label_name_problem(std::string_view name) {
  if (auto p = length_problem(name, 63)) return p;
  if (!is_ascii_alnum(name.front())) return std::string{"must start with an ASCII letter or digit"};
  if (!std::all_of(name.begin(), name.end(),
                   [](char c) { return is_ascii_alnum(c) || c == '.' || c == '_' || c == '/' || c == '-'; })) {
    return std::string{"may contain only ASCII letters, digits, '.', '_', '/' and '-'"};
  }
  return std::nullopt;
}

std::optional<std::string> alias_problem(std::string_view alias) {
  if (auto p = length_problem(alias, 255)) return p;
  if (has_space(alias)) return std::string{"must not contain whitespace"};
  if (alias.find(':') != std::string_view::npos) return std::string{"must not contain ':'"};
  return std::nullopt;
}

std::optional<std::string> config_key_problem(std::string_view key) {
  if (auto p = length_problem(key, 255)) return p;
  if (has_space(key)) return std::string{"must not contain whitespace"};
  if (key.starts_with("volatile.")) return std::string{"volatile.* keys belong to LXD and cannot be declared"};
  if (key.starts_with("user.berth.")) {
    return std::string{"user.berth.* keys are berth's ownership marks and cannot be declared"};
  }
  return std::nullopt;
}

std::optional<std::string> device_name_problem(std::string_view name) {
  if (auto p = length_problem(name, 63)) return p;
  if (name.front() == '.') return std::string{"must not start with '.'"};
  if (!std::all_of(name.begin(), name.end(), [](char c) {
        return is_ascii_alnum(c) || c == '-' || c == '_' || c == '.' || c == ':' || c == '/';
      })) {
    return std::string{"may contain only ASCII letters, digits and - _ . : /"};
  }
  return std::nullopt;
}

std::optional<std::string> device_key_problem(std::string_view key) {
  if (auto p = length_problem(key, 255)) return p;
  if (has_space(key)) return std::string{"must not contain whitespace"};
  return std::nullopt;
}

}  // namespace berth::config
