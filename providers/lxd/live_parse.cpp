#include "providers/lxd/live_parse.hpp"

#include <algorithm>
#include <limits>

#include "providers/lxd/wire.hpp"

namespace berth::lxd {

namespace {

// RFC 3339 as Go renders it drops trailing zeros of the fraction ("...:16Z", "...:16.5Z"), which
// breaks text order; padding the fraction to nine digits restores it for times in one zone.
std::string time_sort_key(const std::string& t) {
  const auto tpos = t.find('T');
  if (tpos == std::string::npos || t.size() < tpos + 9) return t;
  const std::size_t sec_end = tpos + 9;  // after "THH:MM:SS"
  std::string frac;
  std::size_t i = sec_end;
  if (i < t.size() && t[i] == '.') {
    for (++i; i < t.size() && t[i] >= '0' && t[i] <= '9'; ++i) frac.push_back(t[i]);
  }
  frac.resize(9, '0');
  return t.substr(0, sec_end) + "." + frac + t.substr(i);
}

// The keys of LiveInstance::limits: what placement counts of an instance.
constexpr const char* limit_keys[] = {"limits.cpu", "limits.memory"};

}  // namespace

Result<LiveInstances> parse_instances(const nlohmann::json& metadata) {
  auto parsed = wire::parse_instances(metadata);
  if (!parsed) return make_error(ErrorKind::protocol, "GET /1.0/instances?recursion=1: " + parsed.error().message);
  LiveInstances out;
  for (auto& w : *parsed) {
    model::LiveInstance inst;
    inst.name = std::move(w.name);
    inst.type = std::move(w.type);
    inst.architecture = std::move(w.architecture);
    inst.status = std::move(w.status);
    inst.status_code = w.status_code;
    inst.power = model::live_power_from_status_code(inst.status_code);
    const model::ConfigMap& expanded = w.expanded_config ? *w.expanded_config : w.config;
    for (const char* key : limit_keys) {
      // An empty value is LXD's "no limit", as an absent key is.
      if (const auto it = expanded.find(key); it != expanded.end() && !it->second.empty()) inst.limits.insert(*it);
    }
    inst.config = std::move(w.config);
    inst.devices = std::move(w.devices);
    inst.profiles = std::move(w.profiles).value_or(std::vector<std::string>{});
    inst.ephemeral = w.ephemeral;
    inst.description = std::move(w.description);
    inst.created_at = std::move(w.created_at);
    inst.location = w.location == "none" ? std::string{} : std::move(w.location);  // "none": standalone
    // LXD 5.0.2 (lxd/instances_get.go) lists an instance on a member it cannot reach as a bare
    // entry: name, project, location, status Error (112), nothing else. A real instance always
    // has its architecture.
    inst.placeholder = inst.status_code == 112 && inst.architecture.empty();
    const std::string name = inst.name;
    if (!out.emplace(name, std::move(inst)).second) {
      return make_error(ErrorKind::protocol, "GET /1.0/instances?recursion=1: instance " + name + " is listed twice");
    }
  }
  return out;
}

Result<void> add_snapshot_volumes(const nlohmann::json& metadata, LiveInstances& instances, std::string_view project) {
  auto volumes = wire::parse_volumes(metadata);
  if (!volumes) return volumes.error();
  for (auto& v : *volumes) {
    if (v.type != "container" && v.type != "virtual-machine") continue;  // custom volumes, images
    if ((v.project.empty() ? model::default_project : std::string_view{v.project}) != project) continue;
    const auto slash = v.name.find('/');
    if (slash == std::string::npos) continue;  // the instance's own volume
    const auto it = instances.find(v.name.substr(0, slash));
    if (it == instances.end()) continue;
    it->second.snapshots.push_back({v.name.substr(slash + 1), std::move(v.created_at)});
  }
  return {};
}

Result<void> set_instance_snapshots(const nlohmann::json& metadata, model::LiveInstance& instance) {
  auto snapshots = wire::parse_snapshots(metadata);
  if (!snapshots) return snapshots.error();
  instance.snapshots.clear();
  for (auto& s : *snapshots) instance.snapshots.push_back({std::move(s.name), std::move(s.created_at)});
  instance.snapshots_known = true;
  return {};
}

void finish_instances(LiveInstances& instances) {
  for (auto& [name, inst] : instances) {
    auto& snaps = inst.snapshots;
    const bool all_timed =
        std::all_of(snaps.begin(), snaps.end(), [](const model::LiveSnapshot& s) { return !s.created_at.empty(); });
    std::stable_sort(snaps.begin(), snaps.end(),
                     [all_timed](const model::LiveSnapshot& a, const model::LiveSnapshot& b) {
                       if (all_timed) {
                         const auto ka = time_sort_key(a.created_at);
                         const auto kb = time_sort_key(b.created_at);
                         if (ka != kb) return ka < kb;
                       }
                       return a.name < b.name;
                     });
    inst.digest = model::digest_of(inst);
  }
}

Result<std::map<std::string, model::ClusterMember>> parse_members(const nlohmann::json& metadata) {
  auto parsed = wire::parse_cluster_members(metadata);
  if (!parsed) return parsed.error();
  std::map<std::string, model::ClusterMember> out;
  for (auto& w : *parsed) {
    if (w.server_name.find('/') != std::string::npos || w.server_name.front() == '@') {
      return make_error(ErrorKind::protocol, "cluster member '" + w.server_name + "' is not a member name");
    }
    const std::string name = w.server_name;
    model::ClusterMember m{name, std::move(w.status), std::move(w.message), std::move(w.groups)};
    if (!out.emplace(name, std::move(m)).second) {
      return make_error(ErrorKind::protocol, "cluster member " + name + " is listed twice");
    }
  }
  return out;
}

Result<model::HostResources> parse_host_resources(const nlohmann::json& metadata) {
  auto parsed = wire::parse_resources(metadata);
  if (!parsed) return parsed.error();
  if (parsed->cpu_total == 0) return make_error(ErrorKind::protocol, "cpu.total is missing or 0");
  if (parsed->memory_total == 0) return make_error(ErrorKind::protocol, "memory.total is missing or 0");
  if (parsed->cpu_total > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    return make_error(ErrorKind::protocol, "cpu.total is out of range");
  }
  return model::HostResources{static_cast<std::int64_t>(parsed->cpu_total), parsed->memory_total};
}

Result<model::ImageAliases> parse_image_aliases(const nlohmann::json& metadata) {
  auto aliases = wire::parse_image_aliases(metadata);
  if (!aliases) return aliases.error();
  model::ImageAliases out;
  for (auto& a : *aliases) out[std::move(a.name)] = std::move(a.target);
  return out;
}

}  // namespace berth::lxd
