#include "engine/model/managed.hpp"

#include <nlohmann/json.hpp>

#include "engine/util/json_parse.hpp"
#include "engine/util/printable.hpp"

namespace berth::model {
namespace {

std::optional<std::set<std::string>> names_in(const nlohmann::json& record, const char* member) {
  const auto it = record.find(member);
  if (it == record.end()) return std::set<std::string>{};
  if (!it->is_array()) return std::nullopt;
  std::set<std::string> out;
  for (const auto& v : *it) {
    if (!v.is_string()) return std::nullopt;
    out.insert(v.get<std::string>());
  }
  return out;
}

}  // namespace

Managed managed_of(const ContainerSpec& spec) {
  Managed m;
  for (const auto& [key, value] : spec.config) {
    if (!key.starts_with(owner_key_prefix)) m.config.insert(key);
  }
  for (const auto& [name, keys] : spec.devices) m.devices.insert(name);
  if (spec.profiles) m.profiles.insert(spec.profiles->begin(), spec.profiles->end());
  m.sensitive = spec.sensitive;
  return m;
}

std::string record_text(const Managed& managed) {
  nlohmann::json j = nlohmann::json::object();
  j["config"] = managed.config;
  j["devices"] = managed.devices;
  j["profiles"] = managed.profiles;
  if (!managed.sensitive.empty()) j["sensitive"] = managed.sensitive;
  return util::json_text(j);
}

std::optional<Managed> parse_record(std::string_view text) {
  const auto parsed = util::parse_bounded_json(text);
  if (parsed.problem != util::JsonProblem::none || !parsed.value.is_object()) return std::nullopt;
  auto config = names_in(parsed.value, "config");
  auto devices = names_in(parsed.value, "devices");
  auto profiles = names_in(parsed.value, "profiles");
  auto sensitive = names_in(parsed.value, "sensitive");
  if (!config || !devices || !profiles || !sensitive) return std::nullopt;
  return Managed{std::move(*config), std::move(*devices), std::move(*profiles), std::move(*sensitive)};
}

std::string describe(const Managed& managed) {
  std::string out;
  const auto add = [&](std::string_view section, const std::set<std::string>& names) {
    for (const auto& n : names) out += (out.empty() ? "" : ", ") + std::string{section} + "." + n;
  };
  add("config", managed.config);
  add("devices", managed.devices);
  add("profiles", managed.profiles);
  return out.empty() ? std::string{"nothing"} : out;
}

}  // namespace berth::model
