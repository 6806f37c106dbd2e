#pragma once
// The JSON Schema of the fleet file (schemas/berth.schema.json), compiled into the binary at
// build time so that `berth validate` does not depend on the source tree.

#include <string_view>

namespace berth::config {

// The schema's JSON text, as in schemas/berth.schema.json when berth was built.
[[nodiscard]] std::string_view fleet_schema_text();

}  // namespace berth::config
