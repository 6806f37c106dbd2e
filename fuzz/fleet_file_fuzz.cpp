// Fleet files, read as `berth validate`, `plan` and `apply` read them (cli/files.cpp): YAML,
// ${env:...} interpolation, the schema, resolution, then the diagnostics printed through the
// secret scrubber. Whatever the bytes, the result is a fleet or diagnostics: never a crash, a hang,
// an exception, a fleet despite errors, or a diagnostic that shows a value from the environment.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "engine/config/load.hpp"
#include "engine/util/redact.hpp"

namespace {

// Every value from the environment holds this, so a diagnostic that prints one is caught.
constexpr std::string_view secret_marker = "fuzz-secret";

// The fuzzer's own environment must not change what an input does, so ${env:NAME} reads this
// instead: the name picks unset, empty, a value with YAML and interpolation syntax in it (used
// verbatim, never parsed again), or a URL, which is what real fleet files take from the environment.
std::optional<std::string> fake_env(std::string_view name) {
  if (name.starts_with("UNSET")) return std::nullopt;
  if (name.starts_with("EMPTY")) return std::string{};
  if (name.starts_with("ODD")) return std::string{secret_marker} + "\n'\"${env:X} $${ [a, {b: c}] # d";
  return "https://" + std::string{secret_marker} + ".example:8443";
}

void fail(const char* what, const std::string& output) {
  std::fprintf(stderr, "fleet_file_fuzz: %s\n%s", what, output.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text{reinterpret_cast<const char*>(data), size};
  const berth::config::LoadResult loaded = berth::config::load_fleet_text(text, "fuzz.yaml", fake_env);

  const std::string printed = berth::diag::format(loaded.diagnostics);
  if (loaded.fleet.has_value() == loaded.diagnostics.has_errors()) fail("a fleet despite errors, or neither", printed);
  if (text.find(secret_marker) == std::string_view::npos && printed.find(secret_marker) != std::string::npos) {
    fail("a diagnostic shows a value from the environment", printed);
  }

  // What the CLI prints goes through the scrubber, fed with the fleet's secrets.
  berth::util::Redactor redactor;
  if (loaded.fleet) {
    for (const auto& secret : loaded.fleet->secrets) redactor.add(secret.value, secret.shown);
  }
  static_cast<void>(redactor.apply(printed));
  return 0;
}
