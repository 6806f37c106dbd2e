#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "engine/apply/pipeline.hpp"
#include "engine/config/load.hpp"
#include "engine/model/desired.hpp"
#include "engine/plan/plan_file.hpp"
#include "engine/util/limits.hpp"

namespace berth::cli {

// Writes `contents` to a temporary file beside `path`, fsyncs it and renames it over `path`,
// so a reader never sees half a file. Returns an error message, empty on success.
[[nodiscard]] std::string write_file_atomically(const std::filesystem::path& path, std::string_view contents,
                                                unsigned mode);

// Loads and validates a fleet file (at most limits.fleet_file_bytes); "-" reads it from standard
// input, which is read at most once per process (a second attempt is an error, never a second,
// different fleet).
[[nodiscard]] config::LoadResult read_fleet(const std::string& file, const util::InputLimits& limits);

// read_fleet, printing its diagnostics on stderr; nullopt if it is invalid. With `config_dir`
// (plan, apply), the fleet gets berth's digest key from there (digest.key), which is made the first
// time a fleet declares a secret file or command environment.
[[nodiscard]] std::optional<model::Fleet> load_fleet(const std::string& file, const util::InputLimits& limits,
                                                     const std::filesystem::path& config_dir = {});

// Gives the fleet berth's digest key from `config_dir`, as load_fleet does (warnings on stderr).
void attach_digest_key(model::Fleet& fleet, const std::filesystem::path& config_dir);

// How messages name a fleet file: "-" is "the fleet file read on standard input".
[[nodiscard]] std::string fleet_shown(std::string_view file);

// Reads (at most limits.plan_file_bytes) and parses a plan saved with `berth plan --out`, printing
// what is wrong on stderr.
[[nodiscard]] std::optional<plan::PlanFile> read_plan_file(const std::string& path, const util::InputLimits& limits);

// --target and --replace addresses and --drain remotes checked against the fleet (printing each
// problem on stderr);
// nullopt if any is wrong. `undeclared_targets`: --target may name containers the file no longer
// declares (destroy, pruning).
[[nodiscard]] std::optional<apply::Selection> select(const model::Fleet& fleet, const std::vector<std::string>& targets,
                                                     const std::vector<std::string>& replace,
                                                     const std::vector<std::string>& drain, bool undeclared_targets);

}  // namespace berth::cli
