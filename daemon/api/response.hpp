#pragma once
// The LXD envelopes (lxd-protocol.md §1.2): every answer berthd's API gives is made here, so the
// status, the keys and their types are decided in one place.

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "http/server.hpp"
#include "providers/lxd/result.hpp"

namespace berth::daemon::api {

// {"type":"sync","status":"Success","status_code":200,...,"metadata":<metadata>}. `etag` (unquoted
// hex) becomes the ETag header; `location` the Location header, and then the status is 201.
[[nodiscard]] http::Response sync_response(const nlohmann::json& metadata, const std::string& etag = {},
                                           const std::string& location = {});
// The same, 200, with the metadata as JSON text the caller made (Instances::render_all_text).
[[nodiscard]] http::Response sync_response_text(std::string_view metadata);

// 202 with Location: /1.0/operations/<id> and the operation object as metadata.
[[nodiscard]] http::Response async_response(const nlohmann::json& operation);

// An error envelope with `status` as HTTP status and error_code.
[[nodiscard]] http::Response error_response(int status, const std::string& message);

// An expected failure as its envelope: invalid_argument 400, not_found 404, conflict 409; anything
// else is 500 and logged.
[[nodiscard]] http::Response error_response(const lxd::Error& error);

// The value an ETag is made of: the sha256 hex of its JSON. Clients treat it as opaque
// (lxd-protocol.md §1.7), so it only has to be stable for one value.
[[nodiscard]] std::string etag_of(const nlohmann::json& value);

}  // namespace berth::daemon::api
