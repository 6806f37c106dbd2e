// Answers of an LXD daemon, read as berth reads them: the envelope (client.cpp parse_envelope), then
// every typed parser in providers/lxd/wire.cpp and what the state reader, the executor and the
// recoverer build from their results; and the same bytes as an image server's simplestreams index
// and products file (image_server.cpp). A daemon's or a server's answer may be broken or hostile;
// whatever the bytes, the result is a value or an error, never a crash, a hang or an exception. The
// writable part of an instance that parses also survives the trip through its PUT body unchanged.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "engine/util/json_parse.hpp"
#include "providers/lxd/client.hpp"
#include "providers/lxd/image_server.hpp"
#include "providers/lxd/live_parse.hpp"
#include "providers/lxd/migration.hpp"
#include "providers/lxd/operations.hpp"
#include "providers/lxd/wire.hpp"

namespace {

namespace lxd = berth::lxd;
namespace wire = berth::lxd::wire;

void check_round_trip(const wire::Instance& instance) {
  nlohmann::json body = wire::to_json(instance);
  body["name"] = instance.name;
  const auto again = wire::parse_instance(body);
  if (!again || static_cast<const wire::InstancePut&>(*again) != static_cast<const wire::InstancePut&>(instance)) {
    std::fprintf(stderr, "lxd_response_fuzz: the PUT body of a parsed instance does not parse back to it:\n%s\n",
                 body.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    std::abort();
  }
}

void read_as_everything(const nlohmann::json& metadata) {
  if (auto instance = wire::parse_instance(metadata)) {
    check_round_trip(*instance);
    lxd::TargetOverlay overlay;
    overlay.name = "c2";
    static_cast<void>(lxd::migration_target_request(*instance, lxd::TransferKind::move, overlay, "u", {}, "", true));
    static_cast<void>(lxd::verify_move(*instance, {}, *instance, {}, instance->config));
    static_cast<void>(lxd::target_changed(*instance, "etag", metadata));
    static_cast<void>(lxd::source_changed(*instance, "etag", {}, metadata));
  }
  if (auto instances = lxd::parse_instances(metadata)) {
    static_cast<void>(lxd::add_snapshot_volumes(metadata, *instances));
    lxd::finish_instances(*instances);
  }
  berth::model::LiveInstance one;
  static_cast<void>(lxd::set_instance_snapshots(metadata, one));
  static_cast<void>(wire::parse_snapshots(metadata));
  static_cast<void>(wire::parse_volumes(metadata));
  static_cast<void>(wire::parse_image_alias(metadata));
  static_cast<void>(lxd::parse_image_aliases(metadata));
  static_cast<void>(wire::parse_server(metadata));
  static_cast<void>(lxd::parse_host_resources(metadata));
  static_cast<void>(lxd::parse_members(metadata));
  static_cast<void>(wire::parse_operations(metadata));
  static_cast<void>(wire::parse_names(metadata));
  if (auto op = wire::parse_operation(metadata)) {
    static_cast<void>(lxd::progress_from_metadata(op->metadata));
    static_cast<void>(lxd::secrets_of(op->metadata));
  }
}

// The same bytes as an image server's simplestreams index and products file (image_server.cpp).
void read_as_image_server(std::string_view body) {
  const auto parsed = berth::util::parse_bounded_json(body);
  if (parsed.problem != berth::util::JsonProblem::none) return;
  static_cast<void>(lxd::parse_stream_index(parsed.value));
  if (auto images = lxd::parse_stream_products(parsed.value)) {
    static_cast<void>(lxd::resolve_stream_alias(*images, "a", "https://cloud-images.ubuntu.com/releases"));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body{reinterpret_cast<const char*>(data), size};
  read_as_image_server(body);
  // The same bytes as a success and as an error answer: both paths of the envelope.
  static_cast<void>(lxd::parse_envelope(404, body, {}, "GET /1.0/fuzz"));
  auto envelope = lxd::parse_envelope(200, body, {}, "GET /1.0/fuzz");
  if (!envelope) return 0;
  read_as_everything(envelope->metadata);
  return 0;
}
