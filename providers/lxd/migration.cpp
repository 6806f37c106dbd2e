#include "providers/lxd/migration.hpp"

#include "engine/model/live.hpp"
#include "providers/lxd/instance_api.hpp"

namespace berth::lxd {

namespace {

bool is_volatile(const std::string& key) {
  return key.starts_with("volatile.");
}

model::DeviceMap devices_with(const wire::Instance& source, const model::DeviceMap& declared) {
  model::DeviceMap devices = source.devices;
  for (const auto& [name, keys] : declared) devices[name] = keys;
  return devices;
}

model::ConfigMap comparable_config(const wire::Instance& instance) {
  model::ConfigMap out;
  for (const auto& [k, v] : instance.config) {
    if (is_volatile(k) || k == incomplete_key || k == model::restart_pending_key) continue;
    out.emplace(k, v);
  }
  return out;
}

// "[a, b, c]"; a long list shows its first names and its length, so an error stays readable.
std::string list_text(const std::vector<std::string>& names) {
  constexpr std::size_t shown = 8;
  std::string out = "[";
  for (std::size_t i = 0; i < names.size() && i < shown; ++i) out += (i > 0 ? ", " : "") + names[i];
  if (names.size() > shown) out += ", ... (" + std::to_string(names.size()) + " in all)";
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

nlohmann::json migration_target_request(const wire::Instance& source, TransferKind kind, const TargetOverlay& overlay,
                                        const std::string& source_operation_url, const nlohmann::json& secrets,
                                        const std::string& source_certificate, bool with_snapshots) {
  model::ConfigMap config = transfer_config(source.config, kind);
  for (const auto& [k, v] : overlay.config) config[k] = v;
  if (kind == TransferKind::copy && !overlay.fleet_name.empty())
    config[std::string{model::fleet_key}] = overlay.fleet_name;
  if (!overlay.incomplete_marker.empty()) config[std::string{incomplete_key}] = overlay.incomplete_marker;

  const auto& profiles = overlay.profiles ? overlay.profiles : source.profiles;

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
          {"architecture", source.architecture},
          {"config", config},
          {"devices", devices_with(source, overlay.devices)},
          {"ephemeral", overlay.ephemeral.value_or(source.ephemeral)},
          {"profiles", profiles ? nlohmann::json(*profiles) : nlohmann::json(nullptr)},
          {"stateful", false},
          {"description", overlay.description.value_or(source.description)},
          {"type", source.type},
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

std::optional<std::string> verify_move(const wire::Instance& source, const std::vector<std::string>& source_snapshots,
                                       const wire::Instance& target, const std::vector<std::string>& target_snapshots,
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
  if (source.devices != target.devices) return "devices differ";
  const auto profiles = [](const wire::Instance& i) { return i.profiles.value_or(std::vector<std::string>{}); };
  if (profiles(source) != profiles(target)) return "profiles differ";
  return std::nullopt;
}

std::optional<std::string> target_changed(const wire::Instance& target, const std::string& etag,
                                          const nlohmann::json& proof) {
  const auto text = [&](const char* key) { return wire::string_in(proof, key).value_or(std::string{}); };
  const auto mark = target.config.find(std::string{incomplete_key});
  if (mark != target.config.end()) {
    if (text("mark").empty() || mark->second != text("mark")) return "it carries another transfer's mark";
    if (!text("marked_etag").empty() && text("marked_etag") != etag) return "it changed since the transfer made it";
    return std::nullopt;
  }
  if (text("target_etag").empty() || text("target_etag") != etag) return "it changed since the interrupted run left it";
  return std::nullopt;
}

std::optional<std::string> source_changed(const wire::Instance& source, const std::string& etag,
                                          const std::vector<std::string>& snapshots,
                                          const nlohmann::json& source_state) {
  if (model::live_power_from_status_code(source.status_code) != model::LivePower::stopped) {
    return "it is " + (source.status.empty() ? std::string{"?"} : source.status);
  }
  if (wire::string_in(source_state, "etag") != etag) return "its configuration changed";
  if (!source_state.is_object() || !source_state.contains("snapshots") ||
      source_state["snapshots"] != nlohmann::json(snapshots)) {
    return "its snapshots changed";
  }
  return std::nullopt;
}

}  // namespace berth::lxd
