#include "engine/model/live_json.hpp"

namespace berth::model {

nlohmann::json to_json(const LiveState& live) {
  nlohmann::json remotes = nlohmann::json::object();
  for (const auto& [name, r] : live.remotes) {
    nlohmann::json instances = nlohmann::json::array();
    for (const auto& [iname, inst] : r.instances) {
      nlohmann::json snaps = nlohmann::json::array();
      for (const auto& s : inst.snapshots) snaps.push_back({{"name", s.name}, {"created_at", s.created_at}});
      nlohmann::json ji = {{"name", inst.name},
                           {"status", inst.status},
                           {"status_code", inst.status_code},
                           {"architecture", inst.architecture},
                           {"config", inst.config},
                           {"devices", inst.devices},
                           {"profiles", inst.profiles},
                           {"snapshots", snaps}};
      if (inst.project != default_project) ji["project"] = inst.project;
      if (inst.ephemeral) ji["ephemeral"] = true;
      if (!inst.description.empty()) ji["description"] = inst.description;
      if (!inst.limits.empty()) ji["limits"] = inst.limits;
      if (!inst.location.empty()) ji["location"] = inst.location;
      if (inst.placeholder) ji["placeholder"] = true;
      instances.push_back(std::move(ji));
    }
    remotes[name] = {
        {"status", r.status == RemoteStatus::ok ? "ok" : "unknown"}, {"error", r.error}, {"instances", instances}};
    if (r.image_aliases) remotes[name]["image_aliases"] = *r.image_aliases;
    if (!r.project_image_aliases.empty()) remotes[name]["project_image_aliases"] = r.project_image_aliases;
    if (r.resources) remotes[name]["resources"] = {{"cpu", r.resources->cpu}, {"memory", r.resources->memory}};
    if (!r.resources_error.empty()) remotes[name]["resources_error"] = r.resources_error;
    if (r.members) {
      nlohmann::json members = nlohmann::json::object();
      for (const auto& [mname, m] : *r.members) {
        members[mname] = {{"status", m.status}, {"message", m.message}, {"groups", m.groups}};
        if (const auto res = r.member_resources.find(mname); res != r.member_resources.end()) {
          members[mname]["resources"] = {{"cpu", res->second.cpu}, {"memory", res->second.memory}};
        }
      }
      remotes[name]["members"] = std::move(members);
    }
  }
  nlohmann::json out = {{"remotes", remotes}};
  for (const auto& [query, image] : live.server_images) {
    nlohmann::json entry = {{"server", query.server.url},
                            {"protocol", to_string(query.server.protocol)},
                            {"alias", query.alias},
                            {"fingerprints", image.fingerprints}};
    if (!query.server.certificate.empty()) entry["certificate"] = query.server.certificate;
    if (!image.error.empty()) entry["error"] = image.error;
    out["image_servers"].push_back(std::move(entry));
  }
  return out;
}

LiveState live_state_from_json(const nlohmann::json& j) {
  LiveState live;
  for (const auto& [name, r] : j.at("remotes").items()) {
    LiveRemote remote;
    remote.name = name;
    remote.status = r.value("status", "ok") == "ok" ? RemoteStatus::ok : RemoteStatus::unknown;
    remote.error = r.value("error", "");
    if (const auto aliases = r.find("image_aliases"); aliases != r.end()) {
      // A list of names (fingerprints unknown) or a map name -> fingerprint.
      remote.image_aliases.emplace();
      if (aliases->is_array()) {
        for (const auto& a : *aliases) remote.image_aliases->emplace(a.get<std::string>(), "");
      } else {
        *remote.image_aliases = aliases->get<ImageAliases>();
      }
    }
    if (const auto aliases = r.find("project_image_aliases"); aliases != r.end()) {
      remote.project_image_aliases = aliases->get<std::map<std::string, ImageAliases>>();
    }
    if (const auto resources = r.find("resources"); resources != r.end()) {
      remote.resources =
          HostResources{resources->at("cpu").get<std::int64_t>(), resources->at("memory").get<std::uint64_t>()};
    }
    remote.resources_error = r.value("resources_error", "");
    if (const auto members = r.find("members"); members != r.end()) {
      remote.members.emplace();
      for (const auto& [mname, m] : members->items()) {
        remote.members->emplace(mname, ClusterMember{mname, m.value("status", "Unknown"), m.value("message", ""),
                                                     m.value("groups", std::vector<std::string>{})});
        if (const auto res = m.find("resources"); res != m.end()) {
          remote.member_resources.emplace(
              mname, HostResources{res->at("cpu").get<std::int64_t>(), res->at("memory").get<std::uint64_t>()});
        }
      }
    }
    for (const auto& ji : r.value("instances", nlohmann::json::array())) {
      LiveInstance inst;
      inst.name = ji.at("name").get<std::string>();
      inst.architecture = ji.value("architecture", "");
      inst.project = ji.value("project", std::string{default_project});
      inst.ephemeral = ji.value("ephemeral", false);
      inst.description = ji.value("description", std::string{});
      inst.status_code = ji.value("status_code", 102);
      inst.power = live_power_from_status_code(inst.status_code);
      inst.status = ji.value("status", std::string{to_string(inst.power)});
      inst.config = ji.value("config", ConfigMap{});
      inst.devices = ji.value("devices", DeviceMap{});
      inst.limits = ji.value("limits", ConfigMap{});
      inst.profiles = ji.value("profiles", std::vector<std::string>{"default"});
      inst.location = ji.value("location", std::string{});
      inst.placeholder = ji.value("placeholder", false);
      for (const auto& s : ji.value("snapshots", nlohmann::json::array())) {
        if (s.is_string())
          inst.snapshots.push_back({s.get<std::string>(), ""});
        else
          inst.snapshots.push_back({s.at("name").get<std::string>(), s.value("created_at", "")});
      }
      inst.digest = digest_of(inst);
      remote.instances.emplace(instance_key(inst.project, inst.name), std::move(inst));
    }
    live.remotes.emplace(name, std::move(remote));
  }
  for (const auto& entry : j.value("image_servers", nlohmann::json::array())) {
    ServerImageQuery query;
    query.server.url = entry.at("server").get<std::string>();
    query.server.protocol =
        image_protocol_from_string(entry.value("protocol", "simplestreams")).value_or(ImageProtocol::simplestreams);
    query.server.certificate = entry.value("certificate", "");
    query.alias = entry.at("alias").get<std::string>();
    ServerImage image;
    image.fingerprints = entry.value("fingerprints", std::map<std::string, std::string>{});
    image.error = entry.value("error", "");
    live.server_images.emplace(std::move(query), std::move(image));
  }
  return live;
}

}  // namespace berth::model
