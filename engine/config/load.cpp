#include "engine/config/load.hpp"

#include <set>
#include <tuple>

#include "engine/config/document.hpp"
#include "engine/config/resolve.hpp"
#include "engine/config/schema_check.hpp"
#include "engine/util/read_file.hpp"
#include "engine/util/sha256.hpp"

namespace berth::config {
namespace {

// The same problem can be found twice (two schema branches, a schema check and a semantic check);
// users should read it once.
void remove_repeats(diag::Diagnostics& diagnostics) {
  diag::Diagnostics unique;
  std::set<std::tuple<std::string, int, int, std::string, std::string>> seen;
  for (const auto& d : diagnostics.items()) {
    const auto where = d.where.value_or(diag::SourceLocation{});
    if (seen.emplace(where.file, where.line, where.column, d.path, d.summary).second) unique.add(d);
  }
  diagnostics = std::move(unique);
}

}  // namespace

LoadResult load_fleet_text(std::string_view text, std::string path_for_messages, const EnvLookup& env) {
  LoadResult result;
  std::optional<Document> doc = parse_document(text, path_for_messages, env, result.diagnostics);
  if (doc) {
    coerce_scalars_to_strings(*doc);
    std::set<KeyPath> flagged;
    check_schema(*doc, result.diagnostics, flagged);
    model::Fleet fleet = resolve(*doc, flagged, result.diagnostics);
    if (!result.diagnostics.has_errors()) {
      fleet.path = path_for_messages;
      fleet.digest = "sha256:" + util::sha256_hex(text);
      result.fleet = std::move(fleet);
    }
  }
  remove_repeats(result.diagnostics);
  result.diagnostics.sort_by_location();
  return result;
}

namespace {

LoadResult load_read(const util::FileRead& read, const std::string& name, const EnvLookup& env,
                     std::uint64_t max_bytes) {
  auto fail = [&](std::string summary, std::string detail) {
    LoadResult result;
    result.diagnostics.error(std::move(summary), {}, diag::SourceLocation{name, 0, 0}, std::move(detail));
    return result;
  };
  switch (read.problem) {
    case util::ReadProblem::none: break;
    case util::ReadProblem::not_found:
      return fail("no such file", "check the path, or name the fleet file with -f FILE");
    case util::ReadProblem::is_directory: return fail("is a directory, not a fleet file", "name a YAML file");
    case util::ReadProblem::cannot_open: return fail("cannot open the file: " + read.os_error, "check its permissions");
    case util::ReadProblem::cannot_read: return fail("cannot read the file: " + read.os_error, {});
    case util::ReadProblem::too_large:
      return fail("is larger than " + util::format_size(max_bytes),
                  "a fleet file is text of a few kilobytes: check that -f names the right file; if it is, raise "
                  "the limit with --max-file-size");
  }
  return load_fleet_text(read.bytes, name, env);
}

}  // namespace

LoadResult load_fleet_file(const std::filesystem::path& path, const EnvLookup& env, std::uint64_t max_bytes) {
  return load_read(util::read_file_bounded(path, max_bytes), path.string(), env, max_bytes);
}

LoadResult load_fleet_stream(std::istream& in, const EnvLookup& env, std::uint64_t max_bytes) {
  auto result = load_read(util::read_stream_bounded(in, max_bytes), std::string{stdin_name}, env, max_bytes);
  if (result.fleet) result.fleet->path = std::string{stdin_path};  // not operator=(string_view): GCC 12 -Wrestrict
  return result;
}

}  // namespace berth::config
