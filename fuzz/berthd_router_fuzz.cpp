// Requests as berthd's router takes them from a client (daemon/api/router.cpp): the method, the
// target (path and query, percent-encoded), the body, and whether the client is trusted. The
// router decodes and checks the path, decodes the query, matches berthd's route table, decides
// access, and hands the handler a Call whose recursion() and json_object() the handlers use; the
// instance list's ?filter= is read as GET /1.0/instances and /1.0/images read it. Whatever the
// bytes, the answer is an envelope (never a 500: these handlers do not fail), and a handler only
// ever sees a decoded path without empty, "." or ".." segments, NUL or backslash, non-empty
// parameters without '/', and, on a trusted-only route, a trusted client.
//
// Input: the first line is "METHOD TARGET [untrusted] [websocket]"; the rest is the body.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/api/instances_api.hpp"
#include "daemon/api/response.hpp"
#include "daemon/api/router.hpp"

namespace {

namespace api = berth::daemon::api;

void fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "berthd_router_fuzz: %s: %s\n", what, detail.c_str());
  std::abort();
}

// berthd's route table (daemon/api/*.cpp add_*_routes and Api's constructor): the patterns,
// verbs and access, with handlers that check what the router promises them.
struct RouteSpec {
  const char* pattern;
  const char* method;
  api::Access access;
};

constexpr api::Access open = api::Access::untrusted;
constexpr api::Access closed = api::Access::trusted;

const RouteSpec routes[] = {
    {"/", "GET", open},
    {"/1.0", "GET", open},
    {"/1.0", "PUT", closed},
    {"/1.0", "PATCH", closed},
    {"/1.0/certificates", "GET", closed},
    {"/1.0/certificates", "POST", open},
    {"/1.0/certificates/{fingerprint}", "GET", closed},
    {"/1.0/certificates/{fingerprint}", "DELETE", closed},
    {"/1.0/operations", "GET", closed},
    {"/1.0/operations/{id}", "GET", closed},
    {"/1.0/operations/{id}", "DELETE", closed},
    {"/1.0/operations/{id}/wait", "GET", closed},
    {"/1.0/operations/{id}/websocket", "GET", open},
    {"/1.0/events", "GET", closed},
    {"/1.0/metrics", "GET", open},
    {"/1.0/resources", "GET", closed},
    {"/1.0/instances", "GET", closed},
    {"/1.0/instances", "POST", closed},
    {"/1.0/instances/{name}", "GET", closed},
    {"/1.0/instances/{name}", "PUT", closed},
    {"/1.0/instances/{name}", "PATCH", closed},
    {"/1.0/instances/{name}", "POST", closed},
    {"/1.0/instances/{name}", "DELETE", closed},
    {"/1.0/instances/{name}/state", "GET", closed},
    {"/1.0/instances/{name}/state", "PUT", closed},
    {"/1.0/instances/{name}/snapshots", "GET", closed},
    {"/1.0/instances/{name}/snapshots", "POST", closed},
    {"/1.0/instances/{name}/snapshots/{snapshot}", "GET", closed},
    {"/1.0/instances/{name}/snapshots/{snapshot}", "DELETE", closed},
    {"/1.0/instances/{name}/snapshots/{snapshot}", "POST", closed},
    {"/1.0/instances/{name}/exec", "POST", closed},
    {"/1.0/instances/{name}/logs", "GET", closed},
    {"/1.0/instances/{name}/logs/{file}", "GET", closed},
    {"/1.0/instances/{name}/logs/{file}", "DELETE", closed},
    {"/1.0/instances/{name}/files", "GET", closed},
    {"/1.0/instances/{name}/files", "POST", closed},
    {"/1.0/instances/{name}/files", "DELETE", closed},
    {"/1.0/profiles", "GET", closed},
    {"/1.0/profiles", "POST", closed},
    {"/1.0/profiles/{name}", "GET", closed},
    {"/1.0/profiles/{name}", "PUT", closed},
    {"/1.0/profiles/{name}", "PATCH", closed},
    {"/1.0/profiles/{name}", "POST", closed},
    {"/1.0/profiles/{name}", "DELETE", closed},
    {"/1.0/storage-pools", "GET", closed},
    {"/1.0/storage-pools/{pool}", "GET", closed},
    {"/1.0/storage-pools/{pool}/volumes", "GET", closed},
    {"/1.0/images", "GET", open},
    {"/1.0/images", "POST", closed},
    {"/1.0/images/aliases", "GET", open},
    {"/1.0/images/aliases", "POST", closed},
    {"/1.0/images/aliases/{name}", "GET", open},
    {"/1.0/images/aliases/{name}", "PUT", closed},
    {"/1.0/images/aliases/{name}", "PATCH", closed},
    {"/1.0/images/aliases/{name}", "POST", closed},
    {"/1.0/images/aliases/{name}", "DELETE", closed},
    {"/1.0/images/{fingerprint}", "GET", open},
    {"/1.0/images/{fingerprint}", "PUT", closed},
    {"/1.0/images/{fingerprint}", "PATCH", closed},
    {"/1.0/images/{fingerprint}", "DELETE", closed},
    {"/1.0/images/{fingerprint}/export", "GET", open},
    {"/1.0/images/{fingerprint}/secret", "POST", closed},
};

// What a handler may rely on, checked; the answer carries what it saw, so that the envelope is
// made of client bytes too.
berth::http::Response check(const RouteSpec& route, const api::Call& call) {
  if (route.access == api::Access::trusted && !call.trusted) fail("an untrusted client reached", route.pattern);
  const std::string& path = call.path;
  if (path.empty() || path.front() != '/') fail("a path not from /", path);
  if (path != "/" && (path.back() == '/' || path.find("//") != std::string::npos)) fail("an empty segment", path);
  if (path.find("/./") != std::string::npos || path.find("/../") != std::string::npos || path.ends_with("/.") ||
      path.ends_with("/..")) {
    fail("a dot segment", path);
  }
  if (path.find('\0') != std::string::npos || path.find('\\') != std::string::npos) fail("NUL or backslash", path);
  for (const auto& [name, value] : call.params) {
    if (value.empty() || value.find('/') != std::string::npos) fail("a parameter empty or with '/'", name);
  }
  if (const int r = call.recursion(); r < 0 || r > 2) fail("recursion out of range", std::to_string(r));
  nlohmann::json seen = {{"path", path}, {"params", call.params}, {"query", call.query}};
  std::string error;
  if (const auto body = call.json_object(error)) {
    if (!body->is_object()) fail("json_object gave a non-object", route.pattern);
    seen["body"] = *body;
  } else if (error.empty()) {
    fail("json_object refused a body without saying why", route.pattern);
  }
  if (const auto filter = call.query.find("filter"); filter != call.query.end()) {
    static const nlohmann::json object = {{"name", "c1"},
                                          {"status", "Running"},
                                          {"config", {{"image.os", "Ubuntu"}, {"limits.cpu", "2"}}},
                                          {"expanded_config", {{"user.x", "y"}}},
                                          {"ephemeral", false},
                                          {"profiles", {"default"}}};
    std::string why;
    if (!api::filter_matches(filter->second, object, why) && why.empty()) fail("a filter refused silently", why);
  }
  return api::sync_response(seen, api::etag_of(seen));
}

const api::Router& router(bool& trusted) {
  static bool* trust = nullptr;
  static const api::Router table = [] {
    api::Router r([](const berth::http::Request&, const std::string&) { return *trust; });
    for (const auto& route : routes) {
      r.add(route.pattern, route.method, route.access, [&route](const api::Call& call) { return check(route, call); });
    }
    return r;
  }();
  trust = &trusted;
  return table;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input{reinterpret_cast<const char*>(data), size};
  const auto eol = input.find('\n');
  const std::string_view first = input.substr(0, eol);
  berth::http::Request request;
  request.body = eol == std::string_view::npos ? std::string{} : std::string{input.substr(eol + 1)};
  std::vector<std::string_view> words;
  for (std::size_t start = 0; start <= first.size();) {
    const auto space = first.find(' ', start);
    const auto end = space == std::string_view::npos ? first.size() : space;
    words.push_back(first.substr(start, end - start));
    start = end + 1;
  }
  request.method = std::string{words[0]};
  request.target = words.size() > 1 ? std::string{words[1]} : std::string{};
  bool trusted = true;
  for (std::size_t i = 2; i < words.size(); ++i) {
    if (words[i] == "untrusted") trusted = false;
    if (words[i] == "websocket") request.websocket_upgrade = true;
  }
  request.peer = "127.0.0.1:40112";
  const auto response = router(trusted).handle(request);
  if (response.status != 200 && response.status != 400 && response.status != 403 && response.status != 404) {
    fail("an answer other than 200, 400, 403 or 404", std::to_string(response.status) + " " + response.body);
  }
  const auto envelope = nlohmann::json::parse(response.body, nullptr, false);
  if (!envelope.is_object() || !envelope.contains("type")) fail("an answer that is no envelope", response.body);
  return 0;
}
