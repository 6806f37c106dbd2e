#include "providers/lxd/instance_api.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <utility>

#include "providers/lxd/remote_connection.hpp"
#include "providers/lxd/url.hpp"

namespace berth::lxd {

Error RemoteHandle::error(const Error& e) const {
  if (e.message.starts_with("remote " + spec.name + ": ")) return e;
  return e.for_remote(spec.name);
}

Result<RemoteHandle> open_remote(const ClientConfig& config, const model::RemoteSpec& spec, const Timeouts& timeouts) {
  auto client = connect_remote(config, spec, timeouts);
  if (!client) return client.error();  // already names the remote
  RemoteHandle handle{spec, std::move(*client)};
  // urls: the one that answered is where other hosts reach it too (a migration's source).
  if (spec.urls.size() > 1) handle.spec.url = handle.client.url();
  return handle;
}

Result<std::optional<InstanceRead>> get_instance(RemoteHandle& r, const std::string& name) {
  const std::string target = "/1.0/instances/" + path_segment(name);
  auto res = r.client.get(target);
  if (!res) {
    if (res.error().kind == ErrorKind::server && res.error().http_status == 404) {
      return std::optional<InstanceRead>{};
    }
    return r.error(res.error());
  }
  auto instance = wire::parse_instance(res->metadata);
  if (!instance) return r.error(make_error(ErrorKind::protocol, "GET " + target + ": " + instance.error().message));
  return std::optional<InstanceRead>{InstanceRead{std::move(*instance), res->etag()}};
}

Result<std::vector<std::string>> snapshot_names(RemoteHandle& r, const std::string& name) {
  const std::string target = "/1.0/instances/" + path_segment(name) + "/snapshots?recursion=1";
  auto res = r.client.get(target);
  if (!res) return r.error(res.error());
  auto snaps = wire::parse_snapshots(res->metadata);
  if (!snaps) return r.error(make_error(ErrorKind::protocol, "GET " + target + ": " + snaps.error().message));
  // RFC 3339 timestamps of one daemon compare as text when they have the same number of fraction
  // digits (LXD 5.0 writes nanoseconds; Go drops trailing zeros, so a rare tie may misorder).
  std::stable_sort(snaps->begin(), snaps->end(),
                   [](const wire::Snapshot& a, const wire::Snapshot& b) { return a.created_at < b.created_at; });
  std::vector<std::string> out;
  out.reserve(snaps->size());
  for (auto& s : *snaps) out.push_back(std::move(s.name));
  return out;
}

Result<wire::Environment> server_environment(RemoteHandle& r) {
  auto res = r.client.get("/1.0");
  if (!res) return r.error(res.error());
  auto server = wire::parse_server(res->metadata);
  if (!server) return r.error(make_error(ErrorKind::protocol, "GET /1.0: " + server.error().message));
  if (server->auth != "trusted" || !server->environment) {
    return r.error(make_error(ErrorKind::not_trusted, "GET /1.0: the server does not trust this client"));
  }
  return std::move(*server->environment);
}

Result<std::string> reachable_url(const model::RemoteSpec& spec, const wire::Environment& environment) {
  if (spec.url.starts_with("https://")) return spec.url;
  for (const auto& addr : environment.addresses) {
    if (addr.empty() || addr.front() == ':') continue;  // as lxc's GetConnectionInfo: no wildcard-only entries
    return "https://" + addr;
  }
  return make_error(ErrorKind::invalid_argument,
                    "is reached over " + spec.url +
                        " and listens on no network address, so another host cannot pull from it; set "
                        "core.https_address on it or declare it with its https:// URL")
      .for_remote(spec.name);
}

Result<OperationStatus> call_and_wait(RemoteHandle& r, Method method, const std::string& target,
                                      const std::optional<nlohmann::json>& body, const WaitOptions& wait,
                                      const Headers& headers) {
  auto res = r.client.request(method, target, body, headers);
  if (!res) return r.error(res.error());
  if (res->type == ResponseType::sync) {
    OperationStatus done;
    done.status = "Success";
    done.status_code = 200;
    done.metadata = res->metadata.is_object() ? res->metadata : nlohmann::json::object();
    return done;
  }
  auto op = wait_operation(r.client, res->operation, wait);
  if (!op) return r.error(op.error());
  return op;
}

Result<void> change_state(RemoteHandle& r, const std::string& name, const std::string& action, int timeout_seconds,
                          bool force, const WaitOptions& wait) {
  const nlohmann::json body = {{"action", action}, {"timeout", timeout_seconds}, {"force", force}, {"stateful", false}};
  auto op = call_and_wait(r, Method::put, "/1.0/instances/" + path_segment(name) + "/state", body, wait);
  if (!op) return op.error();
  return {};
}

namespace {

std::string files_target(const std::string& name, std::string_view path) {
  std::string target = "/1.0/instances/" + path_segment(name) + "/files?path=";
  // The path as one query value: '/' may stay, everything else outside the unreserved set is encoded.
  std::size_t start = 0;
  while (start <= path.size()) {
    const auto slash = path.find('/', start);
    const auto end = slash == std::string_view::npos ? path.size() : slash;
    target += path_segment(path.substr(start, end - start));
    if (slash == std::string_view::npos) break;
    target += '/';
    start = slash + 1;
  }
  return target;
}

Headers file_headers(std::string_view type, int mode, std::int64_t uid, std::int64_t gid) {
  char octal[16];
  std::snprintf(octal, sizeof octal, "%04o", static_cast<unsigned>(mode));
  return {{"X-LXD-type", std::string{type}},
          {"X-LXD-mode", octal},
          {"X-LXD-uid", std::to_string(uid)},
          {"X-LXD-gid", std::to_string(gid)},
          {"X-LXD-write", "overwrite"}};
}

bool missing_parent(const Error& e) {
  if (e.kind != ErrorKind::server) return false;
  if (e.http_status == 404) return true;
  std::string lower = e.message;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  return lower.find("no such file") != std::string::npos;
}

}  // namespace

Result<void> push_file(RemoteHandle& r, const std::string& name, const model::FileSpec& file) {
  const auto post = [&] {
    return r.client.request_bytes(Method::post, files_target(name, file.path), file.content,
                                  file_headers("file", file.mode, file.uid, file.gid));
  };
  auto res = post();
  if (res) return {};
  if (!missing_parent(res.error())) return r.error(res.error());
  // Create the missing directories from the top down; one that exists answers the GET.
  for (std::size_t slash = file.path.find('/', 1); slash != std::string::npos; slash = file.path.find('/', slash + 1)) {
    const std::string dir = file.path.substr(0, slash);
    if (r.client.get_bytes(files_target(name, dir))) continue;
    auto made =
        r.client.request_bytes(Method::post, files_target(name, dir), {}, file_headers("directory", 0755, 0, 0));
    if (!made) return r.error(made.error());
  }
  res = post();
  if (!res) return r.error(res.error());
  return {};
}

Result<CommandResult> run_command(RemoteHandle& r, const std::string& name, const model::ExecSpec& exec,
                                  const WaitOptions& wait, std::size_t max_output) {
  nlohmann::json body = {{"command", exec.command},
                         {"environment", nlohmann::json(exec.environment)},
                         {"wait-for-websocket", false},
                         {"interactive", false},
                         {"record-output", true},
                         {"width", 0},
                         {"height", 0},
                         {"user", exec.uid},
                         {"group", exec.gid},
                         {"cwd", exec.cwd}};
  auto op = call_and_wait(r, Method::post, "/1.0/instances/" + path_segment(name) + "/exec", body, wait);
  if (!op) return op.error();
  CommandResult result;
  const auto code = op->metadata.find("return");
  if (code == op->metadata.end() || !code->is_number_integer() || !std::in_range<int>(code->get<std::int64_t>())) {
    return r.error(make_error(ErrorKind::protocol, wait.what + ": the finished command reports no exit code"));
  }
  result.exit_code = static_cast<int>(code->get<std::int64_t>());
  const auto output = op->metadata.find("output");
  if (output == op->metadata.end() || !output->is_object()) return result;
  // The command ran: from here on nothing fails the call, so that its run is recorded. Output that
  // cannot be read is said to be missing.
  const auto read_log = [&](const char* fd, std::string& into) {
    const auto log = wire::string_in(*output, fd);
    // Only the instance's own log files: the path comes from the daemon's answer.
    const std::string prefix = "/1.0/instances/" + path_segment(name) + "/logs/";
    if (!log || !log->starts_with(prefix) || log->find("..") != std::string::npos ||
        log->find_first_of("%?#", prefix.size()) != std::string::npos) {
      return;
    }
    auto bytes = r.client.get_bytes(*log);
    if (!bytes) {
      into = "(output not read: " + r.error(bytes.error()).message + ")";
      result.cut = true;
      return;
    }
    if (bytes->size() > max_output) {
      // The end, from a line start: a secret is never cut in two (the runner masks whole secrets).
      std::size_t from = bytes->size() - max_output;
      if (const auto nl = bytes->find('\n', from); nl != std::string::npos) from = nl + 1;
      into = bytes->substr(from);
      result.cut = true;
    } else {
      into = std::move(*bytes);
    }
    (void)r.client.request(Method::delete_, *log);  // a log left behind is harmless
  };
  read_log("1", result.out);
  read_log("2", result.err);
  return result;
}

Result<std::vector<OperationStatus>> running_operations_on(RemoteHandle& r, const std::string& name) {
  auto res = r.client.get("/1.0/operations?recursion=1");
  if (!res) return r.error(res.error());
  // Only the groups of operations still going: a malformed entry in the history of finished ones
  // must not hide them.
  nlohmann::json going = nlohmann::json::object();
  if (res->metadata.is_object()) {
    for (const char* group : {"running", "pending"}) {
      if (const auto it = res->metadata.find(group); it != res->metadata.end()) going[group] = *it;
    }
  }
  auto ops = wire::parse_operations(res->metadata.is_object() ? going : res->metadata);
  if (!ops) return r.error(make_error(ErrorKind::protocol, "GET /1.0/operations: " + ops.error().message));
  // "/1.0/instances/c1", "/1.0/instances/c1/snapshots/s", "/1.0/containers/c1?project=p"
  const auto names_instance = [&](const std::string& url) {
    for (const std::string& prefix : {"/1.0/instances/" + name, "/1.0/containers/" + name}) {
      if (url.starts_with(prefix) &&
          (url.size() == prefix.size() || url[prefix.size()] == '/' || url[prefix.size()] == '?')) {
        return true;
      }
    }
    return false;
  };
  std::vector<OperationStatus> out;
  for (auto& op : *ops) {
    if (op.is_final()) continue;
    const bool mentions = std::any_of(op.resources.begin(), op.resources.end(), [&](const auto& kind_urls) {
      return std::any_of(kind_urls.second.begin(), kind_urls.second.end(), names_instance);
    });
    if (mentions) out.push_back(std::move(op));
  }
  return out;
}

}  // namespace berth::lxd
