#include "daemon/api/files_api.hpp"

#include <array>
#include <cstdio>
#include <ctime>

#include "daemon/api/requests.hpp"
#include "daemon/api/response.hpp"

namespace berth::daemon::api {
namespace {

std::string rfc1123ish(std::int64_t seconds) {
  const std::time_t t = static_cast<std::time_t>(seconds);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  std::array<char, 64> buf{};
  std::strftime(buf.data(), buf.size(), "%Y-%m-%d %H:%M:%S +0000 UTC", &tm);
  return buf.data();
}

class FileRoutes {
 public:
  explicit FileRoutes(Instances& instances) : instances_(instances) {}

  http::Response get(const Call& call) const {
    const auto path = call.query.find("path");
    if (path == call.query.end() || path->second.empty()) return error_response(400, "Missing path argument");
    auto entry = instances_.read_file(call.params.at("name"), path->second, max_file_transfer);
    if (!entry) return error_response(entry.error());
    std::array<char, 8> mode{};
    std::snprintf(mode.data(), mode.size(), "%04o", entry->mode & 0777);
    const std::vector<std::pair<std::string, std::string>> headers = {{"X-LXD-uid", std::to_string(entry->uid)},
                                                                      {"X-LXD-gid", std::to_string(entry->gid)},
                                                                      {"X-LXD-mode", mode.data()},
                                                                      {"X-LXD-modified", rfc1123ish(entry->modified)},
                                                                      {"X-LXD-type", entry->type}};
    http::Response response;
    if (entry->type == "directory") {
      response = sync_response(entry->entries);
    } else {
      response.content_type = "application/octet-stream";
      response.body = std::move(entry->content);
    }
    response.headers.insert(response.headers.end(), headers.begin(), headers.end());
    return response;
  }

  http::Response push(const Call& call) const {
    const auto path = call.query.find("path");
    if (path == call.query.end() || path->second.empty()) return error_response(400, "Missing path argument");
    const auto& request = call.request;
    RootfsWrite what =
        parse_file_headers({request.header("X-LXD-uid"), request.header("X-LXD-gid"), request.header("X-LXD-mode"),
                            request.header("X-LXD-type"), request.header("X-LXD-write")});
    what.content = call.request.body;
    if (auto done = instances_.write_file(call.params.at("name"), path->second, what); !done) {
      return error_response(done.error());
    }
    return sync_response(nullptr);
  }

  http::Response remove(const Call& call) const {
    const auto path = call.query.find("path");
    if (path == call.query.end() || path->second.empty()) return error_response(400, "Missing path argument");
    if (auto done = instances_.delete_file(call.params.at("name"), path->second); !done) {
      return error_response(done.error());
    }
    return sync_response(nullptr);
  }

 private:
  Instances& instances_;
};

}  // namespace

bool is_file_push(const std::string& method, const std::string& target) {
  if (method != "POST") return false;
  const std::string path = target.substr(0, target.find('?'));
  constexpr std::string_view prefix = "/1.0/instances/";
  constexpr std::string_view suffix = "/files";
  return path.starts_with(prefix) && path.ends_with(suffix) && path.size() > prefix.size() + suffix.size() &&
         path.find('/', prefix.size()) == path.size() - suffix.size();
}

void add_file_routes(Router& router, Instances& instances) {
  auto routes = std::make_shared<FileRoutes>(instances);
  auto bind = [routes](auto method) {
    return [routes, method](const Call& call) { return ((*routes).*method)(call); };
  };
  router.add("/1.0/instances/{name}/files", "GET", Access::trusted, bind(&FileRoutes::get));
  router.add("/1.0/instances/{name}/files", "POST", Access::trusted, bind(&FileRoutes::push));
  router.add("/1.0/instances/{name}/files", "DELETE", Access::trusted, bind(&FileRoutes::remove));
}

const std::vector<std::string>& file_extensions() {
  // file_delete, file_append, file_symlinks: DELETE, X-LXD-write: append, X-LXD-type: symlink;
  // directory_manipulation: X-LXD-type: directory and directory listings (lxc file push -r).
  static const std::vector<std::string> list = {"file_delete", "file_append", "file_symlinks",
                                                "directory_manipulation"};
  return list;
}

}  // namespace berth::daemon::api
