#pragma once
// Reading a fleet file: YAML text -> validated, resolved desired state (model::Fleet), or every
// problem in the file as diagnostics with file:line:col, key path and what to do. Never touches
// the network; reads only the file it is given and, for ${env:NAME}, the environment.

#include <filesystem>
#include <istream>
#include <optional>
#include <string>
#include <string_view>

#include "engine/config/interpolate.hpp"
#include "engine/diag/diagnostics.hpp"
#include "engine/model/desired.hpp"
#include "engine/util/limits.hpp"

namespace berth::config {

struct LoadResult {
  std::optional<model::Fleet> fleet;  // set only when `diagnostics` has no errors
  diag::Diagnostics diagnostics;      // every problem in the file, sorted by position
};

// Reads and loads the file at `path`; a missing or unreadable file is a diagnostic, and so is one
// larger than `max_bytes`, which is refused before it is parsed (docs/fleet-file.md, Limits).
// Fleet.path is `path` as given.
[[nodiscard]] LoadResult load_fleet_file(const std::filesystem::path& path, const EnvLookup& env = process_env(),
                                         std::uint64_t max_bytes = util::InputLimits{}.fleet_file_bytes);

// `-f -`: the fleet file is read from standard input. Diagnostics call it "<stdin>"; Fleet.path is
// "-", so that a plan saved from it says where its fleet came from.
inline constexpr std::string_view stdin_path = "-";
inline constexpr std::string_view stdin_name = "<stdin>";

// Reads the rest of `in` (at most `max_bytes`, as load_fleet_file) and loads it as the fleet file
// from standard input. Read once: the caller keeps the result, whose digest covers these bytes.
[[nodiscard]] LoadResult load_fleet_stream(std::istream& in, const EnvLookup& env = process_env(),
                                           std::uint64_t max_bytes = util::InputLimits{}.fleet_file_bytes);

// Loads fleet file text; `path_for_messages` names it in diagnostics and becomes Fleet.path.
// Fleet.digest is "sha256:" + the SHA-256 of `text`.
[[nodiscard]] LoadResult load_fleet_text(std::string_view text, std::string path_for_messages,
                                         const EnvLookup& env = process_env());

}  // namespace berth::config
