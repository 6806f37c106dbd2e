#include "providers/lxd/instance_api.hpp"

#include <algorithm>

#include "providers/lxd/remote_connection.hpp"

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
  auto res = r.client.get("/1.0/instances/" + name);
  if (!res) {
    if (res.error().kind == ErrorKind::server && res.error().http_status == 404) {
      return std::optional<InstanceRead>{};
    }
    return r.error(res.error());
  }
  if (!res->metadata.is_object()) {
    return r.error(make_error(ErrorKind::protocol, "GET /1.0/instances/" + name + ": not an instance object"));
  }
  return std::optional<InstanceRead>{InstanceRead{std::move(res->metadata), res->etag()}};
}

Result<std::vector<std::string>> snapshot_names(RemoteHandle& r, const std::string& name) {
  auto res = r.client.get("/1.0/instances/" + name + "/snapshots?recursion=1");
  if (!res) return r.error(res.error());
  if (!res->metadata.is_array()) {
    return r.error(make_error(ErrorKind::protocol, "GET /1.0/instances/" + name + "/snapshots: not a list"));
  }
  struct Snap {
    std::string name;
    std::string created_at;
  };
  std::vector<Snap> snaps;
  for (const auto& s : res->metadata) {
    if (!s.is_object() || !s.contains("name") || !s["name"].is_string()) continue;
    std::string n = s["name"].get<std::string>();
    if (const auto slash = n.rfind('/'); slash != std::string::npos) n = n.substr(slash + 1);  // older daemons: "c1/snap0"
    snaps.push_back({std::move(n), s.value("created_at", std::string{})});
  }
  // RFC 3339 timestamps of one daemon compare correctly as text.
  std::stable_sort(snaps.begin(), snaps.end(), [](const Snap& a, const Snap& b) { return a.created_at < b.created_at; });
  std::vector<std::string> out;
  out.reserve(snaps.size());
  for (auto& s : snaps) out.push_back(std::move(s.name));
  return out;
}

Result<nlohmann::json> server_environment(RemoteHandle& r) {
  auto res = r.client.get("/1.0");
  if (!res) return r.error(res.error());
  const auto& md = res->metadata;
  if (!md.is_object() || md.value("auth", std::string{}) != "trusted" || !md.contains("environment") ||
      !md["environment"].is_object()) {
    return r.error(make_error(ErrorKind::not_trusted, "GET /1.0: the server does not trust this client"));
  }
  return md["environment"];
}

Result<std::string> reachable_url(const model::RemoteSpec& spec, const nlohmann::json& environment) {
  if (spec.url.starts_with("https://")) return spec.url;
  if (const auto it = environment.find("addresses"); it != environment.end() && it->is_array()) {
    for (const auto& a : *it) {
      if (!a.is_string()) continue;
      const auto& addr = a.get_ref<const std::string&>();
      if (addr.empty() || addr.front() == ':') continue;  // as lxc's GetConnectionInfo: no wildcard-only entries
      return "https://" + addr;
    }
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
  const nlohmann::json body = {
      {"action", action}, {"timeout", timeout_seconds}, {"force", force}, {"stateful", false}};
  auto op = call_and_wait(r, Method::put, "/1.0/instances/" + name + "/state", body, wait);
  if (!op) return op.error();
  return {};
}

Result<std::vector<OperationStatus>> running_operations_on(RemoteHandle& r, const std::string& name) {
  auto res = r.client.get("/1.0/operations?recursion=1");
  if (!res) return r.error(res.error());
  std::vector<OperationStatus> out;
  const std::string wanted = "/1.0/instances/" + name;
  if (!res->metadata.is_object()) return out;
  for (const auto& group : {"running", "pending"}) {
    const auto it = res->metadata.find(group);
    if (it == res->metadata.end() || !it->is_array()) continue;
    for (const auto& op : *it) {
      const auto resources = op.find("resources");
      if (resources == op.end() || !resources->is_object()) continue;
      bool mentions = false;
      for (const auto& [kind, urls] : resources->items()) {
        if (!urls.is_array()) continue;
        for (const auto& u : urls) {
          if (!u.is_string()) continue;
          const auto& s = u.get_ref<const std::string&>();
          // "/1.0/instances/c1", "/1.0/instances/c1/snapshots/s", "/1.0/containers/c1?project=p"
          const std::string alt = "/1.0/containers/" + name;
          for (const auto& prefix : {wanted, alt}) {
            if (s.starts_with(prefix) && (s.size() == prefix.size() || s[prefix.size()] == '/' ||
                                          s[prefix.size()] == '?')) {
              mentions = true;
            }
          }
        }
      }
      if (!mentions) continue;
      if (auto parsed = parse_operation(op); parsed && !parsed->is_final()) out.push_back(std::move(*parsed));
    }
  }
  return out;
}

model::ConfigMap config_of(const nlohmann::json& instance) {
  model::ConfigMap out;
  const auto it = instance.find("config");
  if (it == instance.end() || !it->is_object()) return out;
  for (const auto& [k, v] : it->items()) out[k] = v.is_string() ? v.get<std::string>() : v.dump();
  return out;
}

}  // namespace berth::lxd
