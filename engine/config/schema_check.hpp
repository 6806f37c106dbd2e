#pragma once
// Validates the document against the embedded JSON Schema (valijson) and turns each failure into
// a diagnostic a user can act on: file:line:col of the offending key or value, its key path, and
// a sentence instead of valijson's wording. Internal to engine/config.

#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/config/document.hpp"
#include "engine/diag/diagnostics.hpp"

namespace berth::config {

// Where the schema wants a string, a plain scalar that YAML typed as a number or boolean is taken
// as the string it was written as (`alias: 22.04`, `remote: 1`): what a user means, and what
// `lxc` would do. Run before check_schema.
void coerce_scalars_to_strings(Document& doc);

// Reports every schema violation in `doc` to `out` and adds the path of each offending value to
// `flagged`, so that later checks do not report the same value twice.
void check_schema(const Document& doc, diag::Diagnostics& out, std::set<KeyPath>& flagged);

// The message for a remote URL that url_problem() rejects: summary and what to do. Never quotes a
// value that came from the environment.
[[nodiscard]] std::pair<std::string, std::string> bad_url_message(const Document& doc, const KeyPath& path,
                                                                  const std::string& value);

// Levenshtein distance, for "did you mean" hints.
[[nodiscard]] std::size_t edit_distance(std::string_view a, std::string_view b);

// " (did you mean 'x'?)"-style hint: the closest candidate within distance 2, if any.
[[nodiscard]] std::optional<std::string> closest(std::string_view word, const std::vector<std::string>& candidates);

}  // namespace berth::config
