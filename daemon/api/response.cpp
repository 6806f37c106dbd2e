#include "daemon/api/response.hpp"

#include <spdlog/spdlog.h>

#include "engine/util/sha256.hpp"

namespace berth::daemon::api {
namespace {

constexpr const char* json_type = "application/json";

// Text that is not UTF-8 (a name from a client, say) is replaced, never a reason to throw.
std::string dump(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

http::Response sync_response_text(std::string_view metadata) {
  http::Response r;
  r.status = 200;
  r.content_type = json_type;
  // The envelope's text around the metadata's, as dump() orders the keys: no copy of a large
  // metadata (a list of instances) into an envelope object.
  constexpr std::string_view head = R"({"error":"","error_code":0,"metadata":)";
  constexpr std::string_view tail = R"(,"operation":"","status":"Success","status_code":200,"type":"sync"})";
  r.body.reserve(head.size() + metadata.size() + tail.size());
  r.body.append(head).append(metadata).append(tail);
  return r;
}

http::Response sync_response(const nlohmann::json& metadata, const std::string& etag, const std::string& location) {
  http::Response r = sync_response_text(dump(metadata));
  if (!location.empty()) r.status = 201;
  if (!etag.empty()) r.headers.emplace_back("ETag", "\"" + etag + "\"");
  if (!location.empty()) r.headers.emplace_back("Location", location);
  return r;
}

http::Response async_response(const nlohmann::json& operation) {
  const std::string url = "/1.0/operations/" + operation.value("id", std::string{});
  http::Response r;
  r.status = 202;
  r.content_type = json_type;
  r.body = dump(nlohmann::json{{"type", "async"},
                               {"status", "Operation created"},
                               {"status_code", 100},
                               {"operation", url},
                               {"error_code", 0},
                               {"error", ""},
                               {"metadata", operation}});
  r.headers.emplace_back("Location", url);
  return r;
}

http::Response error_response(int status, const std::string& message) {
  http::Response r;
  r.status = status;
  r.content_type = json_type;
  r.body = dump(nlohmann::json{{"type", "error"},
                               {"status", ""},
                               {"status_code", 0},
                               {"operation", ""},
                               {"error_code", status},
                               {"error", message},
                               {"metadata", nullptr}});
  return r;
}

std::string etag_of(const nlohmann::json& value) {
  return util::sha256_hex(dump(value));
}

http::Response error_response(const lxd::Error& error) {
  switch (error.kind) {
    case lxd::ErrorKind::invalid_argument: return error_response(400, error.message);
    case lxd::ErrorKind::not_found: return error_response(404, error.message);
    case lxd::ErrorKind::conflict: return error_response(409, error.message);
    default: spdlog::error("api: {}", error.message); return error_response(500, error.message);
  }
}

}  // namespace berth::daemon::api
