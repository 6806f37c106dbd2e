#pragma once
// User-facing problems (tier one of the error model): accumulated, never thrown,
// each with where it happened, so that every problem in an input is reported at once.

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace berth::diag {

enum class Severity { error, warning };

struct SourceLocation {
  std::string file;
  int line = 0;    // 1-based; 0 when unknown
  int column = 0;  // 1-based; 0 when unknown
};

struct Diagnostic {
  Severity severity = Severity::error;
  std::string summary;                  // what is wrong, one line
  std::string detail;                   // what to do about it; may be empty
  std::string path;                     // key path (containers.c1.image) or address (local:c1)
  std::optional<SourceLocation> where;  // file:line:col when the input has one
};

class Diagnostics {
 public:
  void add(Diagnostic d) { items_.push_back(std::move(d)); }
  void error(std::string summary, std::string path = {}, std::optional<SourceLocation> where = {},
             std::string detail = {});
  void warning(std::string summary, std::string path = {}, std::optional<SourceLocation> where = {},
               std::string detail = {});
  void append(const Diagnostics& other);

  [[nodiscard]] bool has_errors() const;
  [[nodiscard]] bool empty() const { return items_.empty(); }
  [[nodiscard]] const std::vector<Diagnostic>& items() const { return items_; }

  // Sorted by file, line, column, then insertion order: the order a user reads a file in.
  void sort_by_location();

 private:
  std::vector<Diagnostic> items_;
};

// "berth.yaml:12:7: error: containers.c1.image: unknown image 'foo'\n  hint: ..."
[[nodiscard]] std::string format(const Diagnostic& d);
[[nodiscard]] std::string format(const Diagnostics& ds);

// {"severity": "error"|"warning", "file", "line", "column", "path", "message", "hint"}: what is
// unknown (no location, line or column 0, no key path, no hint) is null. Text is as found, not
// escaped: serialise with util::json_text (docs/cli.md, `berth validate --json`).
[[nodiscard]] nlohmann::json to_json(const Diagnostic& d);
[[nodiscard]] nlohmann::json to_json(const Diagnostics& ds);  // an array

}  // namespace berth::diag
