#include <algorithm>

#include <nlohmann/json.hpp>

#include "engine/model/desired.hpp"
#include "engine/model/live.hpp"
#include "engine/util/printable.hpp"
#include "engine/util/sha256.hpp"

namespace berth::model {

std::string_view to_string(DesiredState s) {
  switch (s) {
    case DesiredState::running: return "running";
    case DesiredState::stopped: return "stopped";
    case DesiredState::frozen: return "frozen";
    case DesiredState::absent: return "absent";
  }
  return "?";
}

std::optional<DesiredState> desired_state_from_string(std::string_view s) {
  if (s == "running") return DesiredState::running;
  if (s == "stopped") return DesiredState::stopped;
  if (s == "frozen") return DesiredState::frozen;
  if (s == "absent") return DesiredState::absent;
  return std::nullopt;
}

std::string_view to_string(DriftPolicy p) {
  switch (p) {
    case DriftPolicy::correct: return "correct";
    case DriftPolicy::report: return "report";
    case DriftPolicy::ignore: return "ignore";
  }
  return "?";
}

std::string_view to_string(Strategy s) {
  return s == Strategy::pack ? "pack" : "spread";
}

std::optional<Strategy> strategy_from_string(std::string_view s) {
  if (s == "spread") return Strategy::spread;
  if (s == "pack") return Strategy::pack;
  return std::nullopt;
}

SiteRef parse_site(std::string_view text) {
  const auto slash = text.find('/');
  if (slash == std::string_view::npos) return {std::string{text}, {}};
  return {std::string{text.substr(0, slash)}, std::string{text.substr(slash + 1)}};
}

std::string_view to_string(ImageProtocol p) {
  switch (p) {
    case ImageProtocol::simplestreams: return "simplestreams";
    case ImageProtocol::lxd: return "lxd";
  }
  return "?";
}

std::optional<ImageProtocol> image_protocol_from_string(std::string_view s) {
  if (s == "simplestreams") return ImageProtocol::simplestreams;
  if (s == "lxd") return ImageProtocol::lxd;
  return std::nullopt;
}

std::string to_string(const ImageRef& image) {
  if (!image.server) return image.remote + ":" + image.alias;
  std::string text = image.server->url + " " + image.alias;
  if (image.fingerprint) text += " (pinned " + image.fingerprint->substr(0, 12) + ")";
  return text;
}

std::optional<std::string> fingerprint_for(const ServerImage& image, const std::string& architecture) {
  if (!image.error.empty() || image.fingerprints.empty()) return std::nullopt;
  if (architecture.empty()) return image.fingerprints.begin()->second;
  // LXD prefers the host's own architecture, then the ones it runs as a personality
  // (shared/simplestreams/sort.go, sortedAliases).
  // (shared/osarch/architectures.go, architectureSupportedPersonalities).
  static const std::map<std::string, std::vector<std::string>> personalities = {
      {"x86_64", {"i686"}},
      {"aarch64", {"armv6l", "armv7l", "armv8l"}},
      {"armv8l", {"armv6l", "armv7l"}},
      {"armv7l", {"armv6l"}},
      {"ppc64", {"ppc"}},
      {"mips64", {"mips"}}};
  if (const auto it = image.fingerprints.find(architecture); it != image.fingerprints.end()) return it->second;
  if (const auto p = personalities.find(architecture); p != personalities.end()) {
    for (const auto& other : p->second) {
      if (const auto it = image.fingerprints.find(other); it != image.fingerprints.end()) return it->second;
    }
  }
  if (const auto it = image.fingerprints.find(""); it != image.fingerprints.end()) return it->second;
  return std::nullopt;
}

std::string_view to_string(LivePower s) {
  switch (s) {
    case LivePower::running: return "running";
    case LivePower::stopped: return "stopped";
    case LivePower::frozen: return "frozen";
    case LivePower::other: return "other";
  }
  return "?";
}

LivePower live_power_from_status_code(int status_code) {
  switch (status_code) {
    case 103: return LivePower::running;
    case 102: return LivePower::stopped;
    case 110: return LivePower::frozen;
    default: return LivePower::other;
  }
}

bool LiveInstance::owned_by(std::string_view fleet_name) const {
  const auto it = config.find(std::string{fleet_key});
  return it != config.end() && it->second == fleet_name;
}

bool LiveInstance::has_snapshot(std::string_view snap) const {
  return std::any_of(snapshots.begin(), snapshots.end(), [&](const LiveSnapshot& s) { return s.name == snap; });
}

std::string instance_key(std::string_view project, std::string_view name) {
  if (project.empty() || project == default_project) return std::string{name};
  return std::string{project} + "/" + std::string{name};
}

std::string digest_of(const LiveInstance& instance) {
  // volatile.* keys change on every start (hwaddr, idmap, last_state) without any intent behind them;
  // leaving them out keeps a saved plan valid across such noise.
  nlohmann::json config = nlohmann::json::object();
  for (const auto& [key, value] : instance.config) {
    if (key.rfind("volatile.", 0) != 0) config[key] = value;
  }
  nlohmann::json snapshots = nlohmann::json::array();
  for (const auto& s : instance.snapshots) snapshots.push_back(s.name);
  nlohmann::json basis = {{"config", config},
                          {"devices", instance.devices},
                          {"profiles", instance.profiles},
                          {"power", to_string(instance.power)},
                          {"snapshots", snapshots}};
  // Only when not LXD's defaults: the digest of an instance without them stays what it was, so a
  // plan saved before berth compared them is not stale for nothing.
  if (instance.ephemeral) basis["ephemeral"] = true;
  if (!instance.description.empty()) basis["description"] = instance.description;
  // On a cluster, where it lives: a saved plan is stale once it moved to another member.
  if (!instance.location.empty()) basis["location"] = instance.location;
  if (instance.placeholder) basis["placeholder"] = true;
  return "sha256:" + util::sha256_hex(util::json_text(basis));
}

}  // namespace berth::model
