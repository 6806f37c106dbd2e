#include "daemon/api/router.hpp"

#include <spdlog/spdlog.h>

#include "daemon/api/response.hpp"
#include "engine/util/sha256.hpp"

namespace berth::daemon::api {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<std::string> percent_decode(std::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '%') {
      if (i + 2 >= text.size()) return std::nullopt;
      const int hi = hex_value(text[i + 1]);
      const int lo = hex_value(text[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::vector<std::string> split(std::string_view path) {
  std::vector<std::string> out;
  std::size_t start = 1;  // after the leading '/'
  while (start <= path.size()) {
    const auto slash = path.find('/', start);
    const auto end = slash == std::string_view::npos ? path.size() : slash;
    out.emplace_back(path.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

// How deeply a request body may nest arrays and objects: LXD's bodies need a handful of levels;
// a body of nothing but '[' would make millions of nodes.
constexpr int max_json_depth = 32;

// Whether `text` nests arrays and objects deeper than `limit` (brackets inside strings do not count).
bool nests_deeper_than(std::string_view text, int limit) {
  int depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (const char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > limit) return true;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return false;
}

}  // namespace

int Call::recursion() const {
  const auto it = query.find("recursion");
  if (it == query.end()) return 0;
  if (it->second == "1") return 1;
  if (it->second == "2") return 2;
  return 0;
}

std::optional<nlohmann::json> Call::json_object(std::string& error) const {
  if (nests_deeper_than(request.body, max_json_depth)) {
    error = "the request body nests deeper than " + std::to_string(max_json_depth) + " levels";
    return std::nullopt;
  }
  auto j = nlohmann::json::parse(request.body, nullptr, false);
  if (j.is_discarded()) {
    error = "the request body is not JSON";
    return std::nullopt;
  }
  if (!j.is_object()) {
    error = "the request body is not a JSON object";
    return std::nullopt;
  }
  return j;
}

std::optional<std::string> decode_path(std::string_view path) {
  if (path.empty() || path.front() != '/') return std::nullopt;
  // Each segment is decoded on its own, so an encoded '/' cannot make a new segment.
  std::string out;
  const auto raw = split(path);
  for (std::size_t i = 0; i < raw.size(); ++i) {
    auto segment = percent_decode(raw[i], false);
    if (!segment) return std::nullopt;
    const bool last = i + 1 == raw.size();
    if (segment->empty() && !(last && raw.size() == 1)) return std::nullopt;  // "//", trailing '/'
    if (*segment == "." || *segment == "..") return std::nullopt;
    if (segment->find('\0') != std::string::npos || segment->find('/') != std::string::npos ||
        segment->find('\\') != std::string::npos) {
      return std::nullopt;
    }
    out += "/" + *segment;
  }
  return out;
}

std::map<std::string, std::string> decode_query(std::string_view query) {
  std::map<std::string, std::string> out;
  std::size_t start = 0;
  while (start <= query.size() && !query.empty()) {
    const auto amp = query.find('&', start);
    const auto end = amp == std::string_view::npos ? query.size() : amp;
    const auto pair = query.substr(start, end - start);
    if (!pair.empty()) {
      const auto eq = pair.find('=');
      auto name = percent_decode(pair.substr(0, eq), true);
      auto value =
          eq == std::string_view::npos ? std::optional<std::string>{""} : percent_decode(pair.substr(eq + 1), true);
      if (name && value) out.emplace(*name, *value);
    }
    if (amp == std::string_view::npos) break;
    start = amp + 1;
  }
  return out;
}

void Router::add(std::string pattern, std::string method, Access access, RouteHandler handler) {
  auto segments = pattern == "/" ? std::vector<std::string>{""} : split(pattern);
  for (auto& route : routes_) {
    if (route.segments == segments) {
      route.verbs[method] = Verb{access, std::move(handler)};
      return;
    }
  }
  Route route{std::move(segments), {}};
  route.verbs[method] = Verb{access, std::move(handler)};
  routes_.push_back(std::move(route));
}

http::Response Router::handle(const http::Request& request) const {
  const std::string_view target = request.target;
  const auto question = target.find('?');
  const auto decoded = decode_path(target.substr(0, question));
  if (!decoded) return error_response(400, "malformed path");
  std::string fingerprint;
  if (!request.peer_certificate.empty()) fingerprint = util::sha256_hex(request.peer_certificate);
  const bool trusted = trust_(request, fingerprint);

  const auto segments = *decoded == "/" ? std::vector<std::string>{""} : split(*decoded);
  for (const auto& route : routes_) {
    if (route.segments.size() != segments.size()) continue;
    std::map<std::string, std::string> params;
    bool match = true;
    for (std::size_t i = 0; i < segments.size() && match; ++i) {
      const auto& want = route.segments[i];
      if (want.size() > 2 && want.front() == '{' && want.back() == '}') {
        if (segments[i].empty()) match = false;
        params[want.substr(1, want.size() - 2)] = segments[i];
      } else {
        match = want == segments[i];
      }
    }
    if (!match) continue;
    // As LXD: an untrusted caller learns nothing but 403; a verb the path lacks is not found.
    const auto verb = route.verbs.find(request.method);
    const bool open = verb != route.verbs.end() && verb->second.access == Access::untrusted;
    if (!trusted && !open) return error_response(403, "not authorized");
    if (verb == route.verbs.end()) return error_response(404, "not found");
    const Call call{request,
                    *decoded,
                    decode_query(question == std::string_view::npos ? std::string_view{} : target.substr(question + 1)),
                    std::move(params),
                    trusted,
                    fingerprint};
    try {
      return verb->second.handler(call);
    } catch (const std::exception& e) {
      spdlog::error("api: {} {}: {}", request.method, *decoded, e.what());
      return error_response(500, "internal error");
    }
  }
  return error_response(404, "not found");
}

}  // namespace berth::daemon::api
