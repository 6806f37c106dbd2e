#pragma once
// The fleet file as a JSON value (what the schema validates and resolution reads) plus, for every
// value, where it came from in the YAML text. Internal to engine/config.

#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/config/interpolate.hpp"
#include "engine/diag/diagnostics.hpp"

namespace berth::config {

// A position in the document: map keys, and array indices as decimal strings. The type of the
// parent value says which one a segment is.
using KeyPath = std::vector<std::string>;

struct NodeOrigin {
  diag::SourceLocation value;               // where the value starts
  std::optional<diag::SourceLocation> key;  // where its key starts, for a map entry
  std::string text;                         // a scalar's text as written, after interpolation
  std::vector<std::string> env_vars;        // variables interpolated into it: never print its text
  // Their values, each a secret of its own: a command may print one without the text around it.
  std::vector<std::string> env_values;
};

struct Document {
  std::string file;
  nlohmann::json root;
  std::map<KeyPath, NodeOrigin> origins;
  std::set<KeyPath> broken;  // values whose interpolation failed: already reported, check nothing else

  [[nodiscard]] const nlohmann::json* find(const KeyPath& path) const;
  [[nodiscard]] nlohmann::json* find(const KeyPath& path);
  [[nodiscard]] const NodeOrigin* origin(const KeyPath& path) const;
  // Where the value at `path` starts (its nearest known ancestor when it is absent).
  [[nodiscard]] diag::SourceLocation value_where(const KeyPath& path) const;
  // Where its key starts, for a map entry; else where the value starts.
  [[nodiscard]] diag::SourceLocation key_where(const KeyPath& path) const;
  // containers.c1.snapshots[0]
  [[nodiscard]] std::string display(const KeyPath& path) const;
  // 'the text', or "the value of ${env:NAME}" when it came from the environment.
  [[nodiscard]] std::string quoted(const KeyPath& path) const;
};

// Parses YAML text. Malformed YAML is one diagnostic and no document. Duplicate keys, keys that
// are not strings and failed interpolations are diagnostics too, but the document is still
// returned so that the rest of the file gets checked.
[[nodiscard]] std::optional<Document> parse_document(std::string_view text, const std::string& file,
                                                     const EnvLookup& env, diag::Diagnostics& out);

// 'text' in single quotes, with control characters escaped.
[[nodiscard]] std::string quote(std::string_view text);

}  // namespace berth::config
