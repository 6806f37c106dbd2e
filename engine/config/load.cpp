#include "engine/config/load.hpp"

#include <array>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <tuple>

#include "engine/config/document.hpp"
#include "engine/config/resolve.hpp"
#include "engine/config/schema_check.hpp"
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

LoadResult load_fleet_file(const std::filesystem::path& path, const EnvLookup& env) {
  const std::string name = path.string();
  auto fail = [&](std::string summary, std::string detail) {
    LoadResult result;
    result.diagnostics.error(std::move(summary), {}, diag::SourceLocation{name, 0, 0}, std::move(detail));
    return result;
  };
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(status)) {
    return fail("no such file", "check the path, or name the fleet file with -f FILE");
  }
  if (std::filesystem::is_directory(status)) return fail("is a directory, not a fleet file", "name a YAML file");
  std::ifstream in{path, std::ios::binary};
  if (!in) return fail(std::string{"cannot open the file: "} + std::strerror(errno), "check its permissions");
  // Read at most one byte over the limit: a device such as /dev/zero never ends.
  std::string bytes;
  std::array<char, 65536> chunk{};
  while (in && bytes.size() <= max_fleet_file_bytes) {
    in.read(chunk.data(), chunk.size());
    bytes.append(chunk.data(), static_cast<std::size_t>(in.gcount()));
  }
  if (in.bad()) return fail(std::string{"cannot read the file: "} + std::strerror(errno), {});
  if (bytes.size() > max_fleet_file_bytes) {
    return fail("is larger than " + std::to_string(max_fleet_file_bytes / (1024 * 1024)) + " MiB",
                "a fleet file is text of a few kilobytes; check that -f names the right file");
  }
  return load_fleet_text(bytes, name, env);
}

}  // namespace berth::config
