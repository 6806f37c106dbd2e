#include "providers/lxd/instance_api.hpp"

#include <algorithm>

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
  return RemoteHandle{spec, std::move(*client)};
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
