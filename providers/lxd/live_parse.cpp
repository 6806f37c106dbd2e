#include "providers/lxd/live_parse.hpp"

#include <algorithm>

namespace berth::lxd {

namespace {

// What LXD's Go code renders for an unset time.Time.
constexpr std::string_view zero_time = "0001-01-01T00:00:00Z";

std::string string_of(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return {};
  return v.dump();
}

std::string string_field(const nlohmann::json& obj, const char* key) {
  const auto it = obj.find(key);
  return it == obj.end() ? std::string{} : string_of(*it);
}

std::string time_field(const nlohmann::json& obj, const char* key) {
  std::string t = string_field(obj, key);
  return t == zero_time ? std::string{} : t;
}

model::ConfigMap config_of(const nlohmann::json& obj) {
  model::ConfigMap out;
  if (!obj.is_object()) return out;
  for (const auto& [k, v] : obj.items()) out.emplace(k, string_of(v));
  return out;
}

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

}  // namespace

Result<LiveInstances> parse_instances(const nlohmann::json& metadata) {
  if (!metadata.is_array()) {
    return make_error(ErrorKind::protocol, "GET /1.0/instances?recursion=1 did not return a list of instances");
  }
  LiveInstances out;
  for (const auto& j : metadata) {
    if (!j.is_object() || !j.contains("name")) {
      return make_error(ErrorKind::protocol, "GET /1.0/instances?recursion=1 returned an entry without a name");
    }
    model::LiveInstance inst;
    inst.name = string_field(j, "name");
    if (auto t = string_field(j, "type"); !t.empty()) inst.type = t;
    inst.architecture = string_field(j, "architecture");
    inst.status = string_field(j, "status");
    if (const auto it = j.find("status_code"); it != j.end() && it->is_number_integer()) {
      inst.status_code = it->get<int>();
    }
    inst.power = model::live_power_from_status_code(inst.status_code);
    if (const auto it = j.find("config"); it != j.end()) inst.config = config_of(*it);
    if (const auto it = j.find("devices"); it != j.end() && it->is_object()) {
      for (const auto& [dev, keys] : it->items()) inst.devices.emplace(dev, config_of(keys));
    }
    if (const auto it = j.find("profiles"); it != j.end() && it->is_array()) {
      for (const auto& p : *it) inst.profiles.push_back(string_of(p));
    }
    inst.created_at = time_field(j, "created_at");
    out.emplace(inst.name, std::move(inst));
  }
  return out;
}

bool add_snapshot_volumes(const nlohmann::json& metadata, LiveInstances& instances) {
  if (!metadata.is_array()) return false;
  for (const auto& v : metadata) {
    if (!v.is_object()) return false;
    const std::string type = string_field(v, "type");
    if (type != "container" && type != "virtual-machine") continue;  // custom volumes, images
    if (const std::string project = string_field(v, "project"); !project.empty() && project != "default") continue;
    const std::string name = string_field(v, "name");
    const auto slash = name.find('/');
    if (slash == std::string::npos) continue;  // the instance's own volume
    const auto it = instances.find(name.substr(0, slash));
    if (it == instances.end()) continue;
    it->second.snapshots.push_back({name.substr(slash + 1), time_field(v, "created_at")});
  }
  return true;
}

bool set_instance_snapshots(const nlohmann::json& metadata, model::LiveInstance& instance) {
  if (!metadata.is_array()) return false;
  instance.snapshots.clear();
  for (const auto& s : metadata) {
    if (!s.is_object()) return false;
    std::string name = string_field(s, "name");
    if (const auto slash = name.find('/'); slash != std::string::npos) name = name.substr(slash + 1);
    instance.snapshots.push_back({name, time_field(s, "created_at")});
  }
  instance.snapshots_known = true;
  return true;
}

void finish_instances(LiveInstances& instances) {
  for (auto& [name, inst] : instances) {
    auto& snaps = inst.snapshots;
    const bool all_timed =
        std::all_of(snaps.begin(), snaps.end(), [](const model::LiveSnapshot& s) { return !s.created_at.empty(); });
    std::stable_sort(snaps.begin(), snaps.end(), [all_timed](const model::LiveSnapshot& a, const model::LiveSnapshot& b) {
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

std::vector<std::string> parse_image_aliases(const nlohmann::json& metadata) {
  std::vector<std::string> out;
  if (!metadata.is_array()) return out;
  for (const auto& a : metadata) {
    if (a.is_object()) {
      if (auto n = string_field(a, "name"); !n.empty()) out.push_back(std::move(n));
    } else if (a.is_string()) {
      // recursion=0 form: "/1.0/images/aliases/<name>"
      const std::string url = a.get<std::string>();
      out.push_back(url.substr(url.rfind('/') + 1));
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace berth::lxd
