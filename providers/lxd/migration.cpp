#include "providers/lxd/migration.hpp"

#include "engine/model/live.hpp"
#include "providers/lxd/instance_api.hpp"

namespace berth::lxd {

namespace {

bool is_volatile(const std::string& key) {
  return key.starts_with("volatile.");
}

nlohmann::json devices_json(const nlohmann::json& source, const model::DeviceMap& declared) {
  nlohmann::json devices = nlohmann::json::object();
  if (const auto it = source.find("devices"); it != source.end() && it->is_object()) devices = *it;
  for (const auto& [name, keys] : declared) devices[name] = keys;
  return devices;
}

model::ConfigMap comparable_config(const nlohmann::json& instance) {
  model::ConfigMap out;
  for (auto& [k, v] : config_of(instance)) {
    if (is_volatile(k) || k == incomplete_key || k == model::restart_pending_key) continue;
    out.emplace(k, v);
  }
  return out;
}

std::string list_text(const std::vector<std::string>& names) {
  std::string out = "[";
  for (const auto& n : names) out += (out.size() > 1 ? ", " : "") + n;
  return out + "]";
}

}  // namespace

nlohmann::json migration_source_request(const std::string& target_name, bool with_snapshots) {
  return {{"name", target_name},
          {"migration", true},
          {"live", false},
          {"instance_only", !with_snapshots},
          {"container_only", !with_snapshots},
          {"target", nullptr},
          {"pool", ""},
          {"project", ""},
          {"allow_inconsistent", false}};
}

model::ConfigMap transfer_config(const model::ConfigMap& source, TransferKind kind) {
  model::ConfigMap out;
  for (const auto& [k, v] : source) {
    // A half-done transfer's mark never travels; nor does a pending restart (the target starts
    // fresh with the config).
    if (k == incomplete_key || k == model::restart_pending_key) continue;
    if (is_volatile(k)) {
      if (kind == TransferKind::copy && k != "volatile.base_image") continue;
      if (kind == TransferKind::move && k == "volatile.last_state.power") continue;
    }
    out.emplace(k, v);
  }
  return out;
}

nlohmann::json migration_target_request(const nlohmann::json& source, TransferKind kind, const TargetOverlay& overlay,
                                        const std::string& source_operation_url, const nlohmann::json& secrets,
                                        const std::string& source_certificate, bool with_snapshots) {
  model::ConfigMap config = transfer_config(config_of(source), kind);
  for (const auto& [k, v] : overlay.config) config[k] = v;
  if (kind == TransferKind::copy && !overlay.fleet_name.empty())
    config[std::string{model::fleet_key}] = overlay.fleet_name;
  if (!overlay.incomplete_marker.empty()) config[std::string{incomplete_key}] = overlay.incomplete_marker;

  nlohmann::json profiles = source.contains("profiles") ? source["profiles"] : nlohmann::json(nullptr);
  if (overlay.profiles) profiles = *overlay.profiles;

  const std::string base_image = [&] {
    const auto it = config.find("volatile.base_image");
    return it == config.end() ? std::string{} : it->second;
  }();
  nlohmann::json src = {{"type", "migration"},
                        {"mode", "pull"},
                        {"operation", source_operation_url},
                        {"secrets", secrets},
                        {"certificate", source_certificate},
                        {"live", false},
                        {"instance_only", !with_snapshots},
                        {"container_only", !with_snapshots},
                        {"allow_inconsistent", false}};
  if (!base_image.empty()) src["base-image"] = base_image;

  return {{"name", overlay.name},
          {"architecture", source.value("architecture", std::string{})},
          {"config", config},
          {"devices", devices_json(source, overlay.devices)},
          {"ephemeral", source.value("ephemeral", false)},
          {"profiles", profiles},
          {"stateful", false},
          {"description", source.value("description", std::string{})},
          {"type", source.value("type", std::string{"container"})},
          {"instance_type", ""},
          {"source", src}};
}

nlohmann::json secrets_of(const nlohmann::json& metadata) {
  nlohmann::json out = nlohmann::json::object();
  if (!metadata.is_object()) return out;
  for (const auto& [k, v] : metadata.items()) {
    if (v.is_string()) out[k] = v;
  }
  return out;
}

std::optional<std::string> verify_move(const nlohmann::json& source, const std::vector<std::string>& source_snapshots,
                                       const nlohmann::json& target, const std::vector<std::string>& target_snapshots,
                                       const model::ConfigMap& declared) {
  if (source_snapshots != target_snapshots) {
    return "snapshots differ: source " + list_text(source_snapshots) + ", target " + list_text(target_snapshots);
  }
  const auto want = comparable_config(source);
  const auto have = comparable_config(target);
  for (const auto& [k, v] : want) {
    const auto it = have.find(k);
    if (it == have.end()) return "config key " + k + " is missing on the target";
    if (it->second != v) return "config key " + k + " differs on the target";
  }
  for (const auto& [k, v] : have) {
    if (want.count(k) == 0 && declared.count(k) == 0) return "config key " + k + " appeared on the target";
  }
  for (const auto& [k, v] : declared) {
    const auto it = have.find(k);
    if (it == have.end() || it->second != v) return "declared config key " + k + " is not set on the target";
  }
  const auto devices = [](const nlohmann::json& i) { return i.value("devices", nlohmann::json::object()); };
  if (devices(source) != devices(target)) return "devices differ";
  const auto profiles = [](const nlohmann::json& i) { return i.value("profiles", nlohmann::json::array()); };
  if (profiles(source) != profiles(target)) return "profiles differ";
  return std::nullopt;
}

std::optional<std::string> target_changed(const nlohmann::json& target, const std::string& etag,
                                          const nlohmann::json& proof) {
  const auto text = [&](const char* key) {
    const auto it = proof.find(key);
    return it != proof.end() && it->is_string() ? it->get<std::string>() : std::string{};
  };
  const auto config = config_of(target);
  const auto mark = config.find(std::string{incomplete_key});
  if (mark != config.end()) {
    if (text("mark").empty() || mark->second != text("mark")) return "it carries another transfer's mark";
    if (!text("marked_etag").empty() && text("marked_etag") != etag) return "it changed since the transfer made it";
    return std::nullopt;
  }
  if (text("target_etag").empty() || text("target_etag") != etag) return "it changed since the interrupted run left it";
  return std::nullopt;
}

std::optional<std::string> source_changed(const nlohmann::json& source, const std::string& etag,
                                          const std::vector<std::string>& snapshots,
                                          const nlohmann::json& source_state) {
  const auto code = source.find("status_code");
  const int status_code = code != source.end() && code->is_number_integer() ? code->get<int>() : 0;
  if (model::live_power_from_status_code(status_code) != model::LivePower::stopped) {
    const auto status = source.find("status");
    return "it is " + (status != source.end() && status->is_string() ? status->get<std::string>() : std::string{"?"});
  }
  const auto recorded_etag = source_state.find("etag");
  if (recorded_etag == source_state.end() || !recorded_etag->is_string() || *recorded_etag != etag) {
    return "its configuration changed";
  }
  const auto recorded = source_state.find("snapshots");
  if (recorded == source_state.end() || *recorded != nlohmann::json(snapshots)) return "its snapshots changed";
  return std::nullopt;
}

}  // namespace berth::lxd
