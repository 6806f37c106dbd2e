#include "daemon/instances/instances.hpp"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <functional>
#include <iterator>
#include <set>
#include <utility>

#include <unistd.h>

#include <spdlog/spdlog.h>

#include "daemon/instances/shift.hpp"
#include "daemon/instances/unique_fd.hpp"
#include "daemon/operations/operations.hpp"
#include "engine/util/time.hpp"

namespace berth::daemon {
namespace {

using lxd::ErrorKind;
using lxd::make_error;
using Op = DocumentChange::Op;
using StringMap = std::map<std::string, std::string>;
using DeviceMap = std::map<std::string, StringMap>;

constexpr const char* never = "0001-01-01T00:00:00Z";

std::string now_text() {
  return util::rfc3339_utc(std::chrono::system_clock::now());
}

// Undo steps of a multi-step change, run in reverse unless the change succeeded.
class Reverter {
 public:
  Reverter() = default;
  Reverter(const Reverter&) = delete;
  Reverter& operator=(const Reverter&) = delete;
  ~Reverter() {
    if (done_) return;
    for (auto it = steps_.rbegin(); it != steps_.rend(); ++it) {
      try {
        (*it)();
      } catch (const std::exception& e) {
        spdlog::error("instances: undoing a failed change failed too: {}", e.what());
      }
    }
  }
  void add(std::function<void()> step) { steps_.push_back(std::move(step)); }
  void success() { done_ = true; }

 private:
  std::vector<std::function<void()>> steps_;
  bool done_ = false;
};

void log_undo(const Result<void>& r, const char* what) {
  if (!r) spdlog::error("instances: undo {}: {}", what, r.error().message);
}

// The string values of a JSON object (a config); anything else is left out.
StringMap string_values(const nlohmann::json& object) {
  StringMap out;
  if (!object.is_object()) return out;
  for (const auto& [k, v] : object.items()) {
    if (v.is_string()) out[k] = v.get<std::string>();
  }
  return out;
}

StringMap config_of(const nlohmann::json& doc) {
  return doc.contains("config") ? string_values(doc["config"]) : StringMap{};
}

// The profiles' config or devices, in the document's order, then the instance's own. `profiles`
// holds the stored profiles (a missing one adds nothing).
nlohmann::json expand(const nlohmann::json& doc, const char* field,
                      const std::map<std::string, nlohmann::json>& profiles) {
  nlohmann::json out = nlohmann::json::object();
  const auto listed = doc.find("profiles");
  if (listed != doc.end()) {
    for (const auto& profile : *listed) {
      if (!profile.is_string()) continue;
      const auto p = profiles.find(profile.get_ref<const std::string&>());
      if (p == profiles.end()) continue;
      const auto part = p->second.find(field);
      if (part != p->second.end() && part->is_object()) out.update(*part);
    }
  }
  const auto own = doc.find(field);
  if (own != doc.end() && own->is_object()) out.update(*own);
  return out;
}

// InstanceState (lxd-protocol.md §5.1) from the driver's figures; a stopped one shows zeros.
nlohmann::json state_object(const ContainerState& s, nlohmann::json disk) {
  const bool running = s.status_code != 102 && s.status_code != 112;
  return nlohmann::json{
      {"status", s.status},
      {"status_code", s.status_code},
      {"disk", std::move(disk)},
      {"memory",
       {{"usage", running ? s.memory_usage : 0}, {"usage_peak", 0}, {"swap_usage", 0}, {"swap_usage_peak", 0}}},
      {"network", nlohmann::json::object()},
      {"pid", running ? s.pid : 0},
      {"processes", running ? s.processes : 0},
      {"cpu", {{"usage", running ? s.cpu_usage_ns : 0}}}};
}

// Keys a user may set: the driver's set, without volatile.* and image.* that berthd keeps.
Result<void> check_user_config(const StringMap& config) {
  return validate_instance_config(config);
}

// The files' owners under `config`'s volatile.last_state.idmap ("[]": host ids, privileged):
// container ids to the host's (`to_host`) or back.
Result<IdMappings> file_owner_mappings(const StringMap& config, bool to_host) {
  const auto last = config.count("volatile.last_state.idmap") != 0 ? config.at("volatile.last_state.idmap") : "[]";
  auto map = idmap_from_json(last);
  if (!map) return map.error();
  if (map->empty()) {
    const IdMapping same = [](std::int64_t id) { return std::optional<std::int64_t>{id}; };
    return IdMappings{same, same};
  }
  if (to_host) {
    return IdMappings{[m = *map](std::int64_t id) { return shift_uid(m, id); },
                      [m = *map](std::int64_t id) { return shift_gid(m, id); }};
  }
  return IdMappings{[m = *map](std::int64_t id) { return unshift_uid(m, id); },
                    [m = *map](std::int64_t id) { return unshift_gid(m, id); }};
}

Result<void> check_snapshot_name(const std::string& snap) {
  if (snap.empty() || snap.size() > 63 || snap.find('/') != std::string::npos || snap == "." || snap == ".." ||
      snap.find_first_of(std::string_view("\0 \t\n", 4)) != std::string::npos) {
    return make_error(ErrorKind::invalid_argument, "Invalid snapshot name '" + snap + "'");
  }
  return {};
}

}  // namespace

Result<StringMap> read_string_map(const nlohmann::json& j, const std::string& what) {
  StringMap out;
  if (j.is_null()) return out;
  if (!j.is_object()) return make_error(ErrorKind::invalid_argument, what + " must be an object");
  for (const auto& [key, value] : j.items()) {
    if (!value.is_string()) return make_error(ErrorKind::invalid_argument, what + " key " + key + " must be a string");
    out[key] = value.get<std::string>();
  }
  return out;
}

Result<DeviceMap> read_devices(const nlohmann::json& j) {
  DeviceMap out;
  if (j.is_null()) return out;
  if (!j.is_object()) return make_error(ErrorKind::invalid_argument, "devices must be an object");
  for (const auto& [name, device] : j.items()) {
    auto m = read_string_map(device, "device " + name);
    if (!m) return m.error();
    out[name] = std::move(*m);
  }
  return out;
}

Result<std::vector<std::string>> read_string_list(const nlohmann::json& j, const std::string& what) {
  std::vector<std::string> out;
  if (j.is_null()) return out;
  if (!j.is_array()) return make_error(ErrorKind::invalid_argument, what + " must be a list");
  for (const auto& v : j) {
    if (!v.is_string()) return make_error(ErrorKind::invalid_argument, what + " must be a list of strings");
    out.push_back(v.get<std::string>());
  }
  return out;
}

Instances::Instances(Database& db, StoragePool& pool, LxcDriver& driver, ImageStore& images, Idmap idmap,
                     std::string architecture)
    : db_(db),
      pool_(pool),
      driver_(driver),
      images_(images),
      idmap_(std::move(idmap)),
      architecture_(std::move(architecture)) {}

std::shared_ptr<std::mutex> Instances::mutex_of(const std::string& name) {
  const std::lock_guard guard(locks_mu_);
  auto& slot = locks_[name];
  if (!slot) slot = std::make_shared<std::mutex>();
  return slot;
}

// The mutexes live in locks_ for as long as the Instances: a returned lock never outlives its mutex.
std::unique_lock<std::mutex> Instances::lock(const std::string& name) {
  return std::unique_lock(*mutex_of(name));
}

std::unique_lock<std::mutex> Instances::try_lock(const std::string& name) {
  return {*mutex_of(name), std::try_to_lock};
}

Result<nlohmann::json> Instances::load(const std::string& name) const {
  auto doc = db_.document(DocumentKind::instance, name);
  if (!doc) return doc.error();
  if (!doc->has_value()) return make_error(ErrorKind::not_found, "Instance not found");
  return std::move(**doc);
}

Result<std::vector<std::string>> Instances::names() const {
  auto docs = db_.documents(DocumentKind::instance);
  if (!docs) return docs.error();
  std::vector<std::string> out;
  for (const auto& d : *docs) out.push_back(d.key);
  return out;
}

Result<Instances::Profiles> Instances::profiles_of(const nlohmann::json& doc) const {
  Profiles out;
  for (const auto& profile : doc.value("profiles", nlohmann::json::array())) {
    if (!profile.is_string() || out.count(profile.get_ref<const std::string&>()) != 0) continue;
    auto p = db_.document(DocumentKind::profile, profile.get<std::string>());
    if (!p) return p.error();
    if (p->has_value()) out.emplace(profile.get<std::string>(), std::move(**p));
  }
  return out;
}

Result<nlohmann::json> Instances::expanded(const nlohmann::json& doc, const char* field) const {
  auto profiles = profiles_of(doc);
  if (!profiles) return profiles.error();
  return expand(doc, field, *profiles);
}

Result<nlohmann::json> Instances::writable(const std::string& name) const {
  auto doc = load(name);
  if (!doc) return doc;
  return writable_of(*doc);
}

nlohmann::json Instances::writable_of(const nlohmann::json& doc) const {
  const auto* d = &doc;
  return nlohmann::json{{"architecture", d->value("architecture", architecture_)},
                        {"config", d->value("config", nlohmann::json::object())},
                        {"devices", d->value("devices", nlohmann::json::object())},
                        {"ephemeral", d->value("ephemeral", false)},
                        {"profiles", d->value("profiles", nlohmann::json::array())},
                        {"stateful", false},
                        {"description", d->value("description", "")}};
}

Result<nlohmann::json> Instances::render(const std::string& name, bool full) const {
  auto doc = load(name);
  if (!doc) return doc;
  auto profiles = profiles_of(*doc);
  if (!profiles) return profiles.error();
  if (!full) return render_loaded(name, *doc, *profiles, driver_.status(name));
  const auto state = driver_.state(name);
  auto out = render_loaded(name, *doc, *profiles, {state.status, state.status_code});
  if (auto added = add_full_parts(name, state, out); !added) return added.error();
  return out;
}

Result<std::vector<std::pair<std::string, nlohmann::json>>> Instances::render_all(bool full) const {
  auto docs = db_.documents(DocumentKind::instance);
  if (!docs) return docs.error();
  auto profile_docs = db_.documents(DocumentKind::profile);
  if (!profile_docs) return profile_docs.error();
  Profiles profiles;
  for (auto& p : *profile_docs) profiles.emplace(std::move(p.key), std::move(p.body));
  std::map<std::string, ContainerStatus> statuses;
  if (!full) {
    std::vector<std::string> names;
    names.reserve(docs->size());
    for (const auto& d : *docs) names.push_back(d.key);
    statuses = driver_.statuses(names);
  }
  std::vector<std::pair<std::string, nlohmann::json>> out;
  out.reserve(docs->size());
  for (const auto& d : *docs) {
    if (!full) {
      out.emplace_back(d.key, render_loaded(d.key, d.body, profiles, statuses[d.key]));
      continue;
    }
    const auto state = driver_.state(d.key);
    auto object = render_loaded(d.key, d.body, profiles, {state.status, state.status_code});
    if (auto added = add_full_parts(d.key, state, object); !added) return added.error();
    out.emplace_back(d.key, std::move(object));
  }
  return out;
}

Result<std::string> Instances::render_all_text() const {
  std::shared_ptr<const RenderedList> list;
  {
    const std::lock_guard guard(rendered_mu_);
    list = rendered_;
  }
  // Read before the documents: a change committed after this read moves it on, and the next call
  // renders again (a list is never kept under a number newer than what it shows).
  const auto generation = db_.generation();
  if (!list || list->generation != generation) {
    auto docs = db_.documents(DocumentKind::instance);
    if (!docs) return docs.error();
    auto profile_docs = db_.documents(DocumentKind::profile);
    if (!profile_docs) return profile_docs.error();
    Profiles profiles;
    for (auto& p : *profile_docs) profiles.emplace(std::move(p.key), std::move(p.body));
    auto fresh = std::make_shared<RenderedList>();
    fresh->generation = generation;
    for (const auto& d : *docs) {
      auto object = render_loaded(d.key, d.body, profiles, {});
      object.erase("status");
      object.erase("status_code");
      fresh->names.push_back(d.key);
      fresh->members.push_back(object.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).substr(1));
    }
    list = fresh;
    const std::lock_guard guard(rendered_mu_);
    rendered_ = std::move(fresh);
  }
  const auto statuses = driver_.statuses(list->names);
  std::size_t size = 2;
  for (const auto& m : list->members) size += m.size() + 64;
  std::string out;
  out.reserve(size);
  out += '[';
  for (std::size_t i = 0; i < list->names.size(); ++i) {
    const auto it = statuses.find(list->names[i]);
    const ContainerStatus status = it == statuses.end() ? ContainerStatus{} : it->second;
    if (i != 0) out += ',';
    out += R"({"status":)";
    out += nlohmann::json(status.status).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    out += R"(,"status_code":)";
    out += std::to_string(status.status_code);
    const auto& rest = list->members[i];
    if (rest != "}") out += ',';
    out += rest;
  }
  out += ']';
  return out;
}

nlohmann::json Instances::render_loaded(const std::string& name, const nlohmann::json& doc, const Profiles& profiles,
                                        const ContainerStatus& status) const {
  auto out = writable_of(doc);
  out["name"] = name;
  out["created_at"] = doc.value("created_at", never);
  out["last_used_at"] = doc.value("last_used_at", never);
  out["expanded_config"] = expand(doc, "config", profiles);
  out["expanded_devices"] = expand(doc, "devices", profiles);
  out["status"] = status.status;
  out["status_code"] = status.status_code;
  out["location"] = "none";
  out["type"] = "container";
  out["project"] = "default";
  return out;
}

Result<void> Instances::add_full_parts(const std::string& name, const ContainerState& state,
                                       nlohmann::json& out) const {
  out["state"] = state_object(state, nlohmann::json::object());
  auto snaps = snapshot_names(name);
  if (!snaps) return snaps.error();
  nlohmann::json snapshots = nlohmann::json::array();
  for (const auto& s : *snaps) {
    auto snap = render_snapshot(name, s);
    if (snap) snapshots.push_back(std::move(*snap));
  }
  out["snapshots"] = snapshots.empty() ? nlohmann::json(nullptr) : snapshots;
  out["backups"] = nullptr;
  return {};
}

Result<nlohmann::json> Instances::render_state(const std::string& name, bool disk_usage) const {
  if (auto doc = load(name); !doc) return doc.error();
  nlohmann::json disk = nlohmann::json::object();
  // A walk of the whole rootfs: for one instance's state, not for every instance of a list.
  if (disk_usage) {
    if (auto used = pool_.usage(name)) disk["root"] = {{"usage", *used}};
  }
  return state_object(driver_.state(name), std::move(disk));
}

Result<std::vector<std::string>> Instances::snapshot_names(const std::string& name) const {
  auto docs = db_.documents(DocumentKind::snapshot, name + "/");
  if (!docs) return docs.error();
  // Oldest first, as LXD lists them.
  std::sort(docs->begin(), docs->end(), [](const Document& a, const Document& b) {
    const auto ta = a.body.value("created_at", "");
    const auto tb = b.body.value("created_at", "");
    return ta != tb ? ta < tb : a.key < b.key;
  });
  std::vector<std::string> out;
  for (const auto& d : *docs) out.push_back(d.key.substr(name.size() + 1));
  return out;
}

Result<nlohmann::json> Instances::render_snapshot(const std::string& name, const std::string& snap) const {
  auto doc = db_.document(DocumentKind::snapshot, name + "/" + snap);
  if (!doc) return doc.error();
  if (!doc->has_value()) return make_error(ErrorKind::not_found, "Snapshot not found");
  auto& body = **doc;
  auto config = expanded(body, "config");
  if (!config) return config;
  auto devices = expanded(body, "devices");
  if (!devices) return devices;
  return nlohmann::json{{"architecture", body.value("architecture", architecture_)},
                        {"config", body.value("config", nlohmann::json::object())},
                        {"created_at", body.value("created_at", never)},
                        {"devices", body.value("devices", nlohmann::json::object())},
                        {"ephemeral", body.value("ephemeral", false)},
                        {"expanded_config", std::move(*config)},
                        {"expanded_devices", std::move(*devices)},
                        {"last_used_at", body.value("last_used_at", never)},
                        {"name", snap},
                        {"profiles", body.value("profiles", nlohmann::json::array())},
                        {"stateful", false},
                        {"size", -1},
                        {"expires_at", body.value("expires_at", never)},
                        {"description", body.value("description", "")}};
}

Result<std::string> Instances::next_snapshot_name(const std::string& name) const {
  auto names = snapshot_names(name);
  if (!names) return names.error();
  const std::set<std::string> taken(names->begin(), names->end());
  for (int i = 0;; ++i) {
    auto candidate = "snap" + std::to_string(i);
    if (taken.count(candidate) == 0) return candidate;
  }
}

Result<std::string> Instances::resolve_image(const std::string& ref) const {
  if (ref.empty()) return make_error(ErrorKind::invalid_argument, "No image given");
  auto alias = db_.document(DocumentKind::image_alias, ref);
  if (!alias) return alias.error();
  if (alias->has_value()) return (**alias).value("target", "");
  if (ref.find_first_not_of("0123456789abcdef") != std::string::npos) {
    return make_error(ErrorKind::not_found, "Image not found: " + ref);
  }
  auto matches = db_.documents(DocumentKind::image, ref);
  if (!matches) return matches.error();
  if (matches->empty()) return make_error(ErrorKind::not_found, "Image not found: " + ref);
  if (matches->size() > 1) return make_error(ErrorKind::invalid_argument, "More than one image matches " + ref);
  return matches->front().key;
}

Result<CreateRequest> Instances::check_create(const nlohmann::json& body) const {
  CreateRequest r;
  r.name = body.value("name", "");
  if (r.name.empty()) return make_error(ErrorKind::invalid_argument, "An instance name is required");
  if (auto ok = validate_instance_name(r.name); !ok) return ok.error();
  if (body.contains("type") && body["type"].is_string() && !body["type"].get<std::string>().empty() &&
      body["type"] != "container") {
    return make_error(ErrorKind::invalid_argument, "Instance type not supported: " + body["type"].get<std::string>());
  }
  // A refresh (source.refresh, lxc copy --refresh) brings one that exists up to date.
  const auto& source_doc = body.contains("source") ? body["source"] : nlohmann::json();
  const bool refresh = source_doc.is_object() && source_doc.value("type", nlohmann::json()) == "migration" &&
                       source_doc.value("refresh", nlohmann::json()) == true;
  if (auto existing = db_.document(DocumentKind::instance, r.name); !existing) {
    return existing.error();
  } else if (existing->has_value() && !refresh) {
    return make_error(ErrorKind::conflict, "Instance \"" + r.name + "\" already exists");
  }
  auto config = read_string_map(body.value("config", nlohmann::json(nullptr)), "config");
  if (!config) return config.error();
  for (const auto& [key, value] : *config) {
    if (key.rfind("volatile.", 0) == 0 || key.rfind("image.", 0) == 0) continue;  // kept as given
    r.config[key] = value;
  }
  if (auto ok = check_user_config(r.config); !ok) return ok.error();
  for (const auto& [key, value] : *config) r.config[key] = value;
  auto devices = read_devices(body.value("devices", nlohmann::json(nullptr)));
  if (!devices) return devices.error();
  if (auto ok = validate_devices(*devices); !ok) return ok.error();
  r.devices = std::move(*devices);
  auto profiles = read_string_list(body.value("profiles", nlohmann::json(nullptr)), "profiles");
  if (!profiles) return profiles.error();
  r.profiles = profiles->empty() && body.value("profiles", nlohmann::json(nullptr)).is_null()
                   ? std::vector<std::string>{"default"}
                   : std::move(*profiles);
  for (const auto& p : r.profiles) {
    auto found = db_.document(DocumentKind::profile, p);
    if (!found) return found.error();
    if (!found->has_value()) return make_error(ErrorKind::not_found, "Profile not found: " + p);
  }
  r.description = body.value("description", "");
  r.ephemeral = body.value("ephemeral", false);
  const auto& source = body.value("source", nlohmann::json::object());
  const std::string type = source.value("type", "");
  if (type == "image") {
    if (source.value("mode", "local") == "pull" && !source.value("server", "").empty()) {
      auto pull = parse_pull_source(source);
      if (!pull) return pull.error();
      r.pull = std::move(*pull);
      return r;
    }
    auto fp = resolve_image(!source.value("fingerprint", "").empty() ? source.value("fingerprint", "")
                                                                     : source.value("alias", ""));
    if (!fp) return fp.error();
    r.image = std::move(*fp);
  } else if (type == "copy") {
    const std::string from = source.value("source", "");
    const auto slash = from.find('/');
    r.copy_of = from.substr(0, slash);
    if (slash != std::string::npos) r.copy_snapshot = from.substr(slash + 1);
    r.instance_only = source.value("instance_only", false);
    if (auto src = load(r.copy_of); !src) return src.error();
    if (!r.copy_snapshot.empty()) {
      if (auto snap = render_snapshot(r.copy_of, r.copy_snapshot); !snap) return snap.error();
    }
  } else if (type == "migration") {
    // The rest (the source's operation, secrets, certificate) is the migration's to check.
    r.image = source.value("base-image", "");
  } else {
    return make_error(ErrorKind::invalid_argument,
                      "Unsupported instance source type \"" + type + "\" (berthd creates from an image or a copy)");
  }
  return r;
}

Result<void> Instances::create(const CreateRequest& request) {
  // A copy holds its source too (its snapshots must not go meanwhile): both locks in name order,
  // the only place two are held, so no two tasks wait on each other.
  std::unique_lock<std::mutex> guard;
  std::unique_lock<std::mutex> source_guard;
  if (!request.copy_of.empty() && request.copy_of != request.name) {
    const bool source_first = request.copy_of < request.name;
    (source_first ? source_guard : guard) = lock(source_first ? request.copy_of : request.name);
    (source_first ? guard : source_guard) = lock(source_first ? request.name : request.copy_of);
  } else {
    guard = lock(request.name);
  }
  if (auto existing = db_.document(DocumentKind::instance, request.name); !existing) {
    return existing.error();
  } else if (existing->has_value()) {
    return make_error(ErrorKind::conflict, "Instance \"" + request.name + "\" already exists");
  }
  // Written down before the first step on disk: should berthd die before the record below is
  // stored, the next start removes what was made (recover).
  if (auto noted = note_pending(request.name, "create"); !noted) return noted;
  Reverter revert;
  revert.add([&] { log_undo(db_.change({{Op::remove, DocumentKind::pending, request.name, {}, {}}}), "the journal"); });
  StringMap config = request.config;
  const bool privileged = config_true(config, "security.privileged");
  const Idmap map = privileged ? Idmap{} : idmap_;
  std::string architecture = architecture_;
  std::vector<DocumentChange> snapshot_copies;

  if (!request.copy_of.empty()) {
    auto source = load(request.copy_of);
    if (!source) return source.error();
    // A copy keeps the source's config (without its volatile keys but volatile.base_image and
    // volatile.last_state.idmap: the same host, the same map) under what the request says.
    StringMap merged;
    StringMap from_config = config_of(*source);
    if (!request.copy_snapshot.empty()) {
      auto snap = db_.document(DocumentKind::snapshot, request.copy_of + "/" + request.copy_snapshot);
      if (!snap) return snap.error();
      if (!snap->has_value()) return make_error(ErrorKind::not_found, "Snapshot not found");
      from_config = config_of(**snap);  // its files are owned as its config says
    }
    for (const auto& [k, v] : from_config) {
      if (k.rfind("volatile.", 0) == 0 && k != "volatile.base_image" && k != "volatile.last_state.idmap") continue;
      merged[k] = v;
    }
    for (const auto& [k, v] : config) {
      if (k.rfind("volatile.", 0) == 0 && k != "volatile.base_image") continue;
      merged[k] = v;
    }
    config = std::move(merged);
    architecture = source->value("architecture", architecture_);
    auto copied = request.copy_snapshot.empty()
                      ? pool_.copy_volume(request.copy_of, request.name)
                      : pool_.copy_snapshot_to_volume(request.copy_of, request.copy_snapshot, request.name);
    if (!copied) return copied.error();
    // With its snapshots, as `lxc copy` makes it unless --instance-only (the volume's removal
    // below takes them too).
    revert.add([&] { log_undo(pool_.delete_volume(request.name), "the copied volume"); });
    if (request.copy_snapshot.empty() && !request.instance_only) {
      auto snaps = snapshot_names(request.copy_of);
      if (!snaps) return snaps.error();
      for (const auto& snap : *snaps) {
        auto snap_doc = db_.document(DocumentKind::snapshot, request.copy_of + "/" + snap);
        if (!snap_doc) return snap_doc.error();
        if (!snap_doc->has_value()) continue;
        if (auto made = pool_.copy_snapshot(request.copy_of, snap, request.name); !made) return made.error();
        snapshot_copies.push_back({Op::insert, DocumentKind::snapshot, request.name + "/" + snap, **snap_doc, {}});
      }
    }
  } else {
    if (auto made = pool_.create_volume(request.name); !made) return made.error();
    revert.add([&] { log_undo(pool_.delete_volume(request.name), "the new volume"); });
    ImageStore::IdShift shift;
    if (privileged) {
      shift.uid = [](std::int64_t id) { return std::optional<std::int64_t>{id}; };
      shift.gid = shift.uid;
      shift.skip_devices = false;
    } else {
      shift.uid = [&map](std::int64_t id) { return shift_uid(map, id); };
      shift.gid = [&map](std::int64_t id) { return shift_gid(map, id); };
    }
    if (auto unpacked = images_.unpack(request.image, pool_.volume_path(request.name), shift); !unpacked) {
      return unpacked.error();
    }
    auto image = db_.document(DocumentKind::image, request.image);
    if (!image) return image.error();
    if (image->has_value()) {
      architecture = (**image).value("architecture", architecture_);
      const auto properties = (**image).value("properties", nlohmann::json::object());
      for (const auto& [k, v] : properties.items()) {
        if (v.is_string()) config.emplace("image." + k, v.get<std::string>());
      }
      auto used = **image;
      used["last_used_at"] = now_text();
      log_undo(db_.change({{Op::replace, DocumentKind::image, request.image, used, {}}}), "the image's last use");
    }
    config["volatile.base_image"] = request.image;
    config["volatile.last_state.idmap"] = idmap_to_json(map);
  }
  config["volatile.uuid"] = random_uuid();
  config["volatile.idmap.base"] = "0";
  config["volatile.idmap.next"] = idmap_to_json(map);
  config["volatile.last_state.power"] = "STOPPED";
  config.erase("volatile.idmap.current");

  nlohmann::json doc{{"architecture", architecture},   {"config", config},         {"devices", request.devices},
                     {"ephemeral", request.ephemeral}, {"stateful", false},        {"description", request.description},
                     {"profiles", request.profiles},   {"created_at", now_text()}, {"last_used_at", never}};
  std::vector<DocumentChange> changes{{Op::insert, DocumentKind::instance, request.name, doc, {}},
                                      {Op::remove, DocumentKind::pending, request.name, {}, {}}};
  changes.insert(changes.end(), snapshot_copies.begin(), snapshot_copies.end());
  if (auto done = define_and_store(request.name, doc, changes); !done) return done;
  revert.success();
  return {};
}

Result<void> Instances::define_and_store(const std::string& name, const nlohmann::json& doc,
                                         const std::vector<DocumentChange>& changes) {
  auto spec = spec_of(name, doc);
  if (!spec) return spec.error();
  // Whatever define wrote goes with a failure, even a config it could not finish.
  Reverter revert;
  revert.add([&] {
    std::error_code ec;
    std::filesystem::remove_all(driver_.lxcpath() / name, ec);
    if (ec) spdlog::error("instances: undo the container's config: {}", ec.message());
  });
  if (auto defined = driver_.define(*spec); !defined) return defined.error();
  if (auto stored = db_.change(changes); !stored) return stored.error();
  revert.success();
  return {};
}

Result<ContainerSpec> Instances::spec_of(const std::string& name, const nlohmann::json& doc) const {
  auto config = expanded(doc, "config");
  if (!config) return config.error();
  auto devices = expanded(doc, "devices");
  if (!devices) return devices.error();
  ContainerSpec spec;
  spec.name = name;
  spec.rootfs = pool_.volume_path(name) / "rootfs";
  for (const auto& [k, v] : config->items()) {
    if (v.is_string()) spec.config[k] = v.get<std::string>();
  }
  spec.privileged = config_true(spec.config, "security.privileged");
  if (!spec.privileged) {
    auto map = idmap_from_json(spec.config.count("volatile.idmap.next") != 0 ? spec.config["volatile.idmap.next"]
                                                                             : idmap_to_json(idmap_));
    if (!map) return map.error();
    spec.idmap = std::move(*map);
  }
  auto device_set = read_devices(*devices);
  if (!device_set) return device_set.error();
  spec.devices = std::move(*device_set);
  return spec;
}

Result<void> Instances::set_config_key(const std::string& name, const std::string& key, const std::string& value) {
  auto doc = load(name);
  if (!doc) return doc.error();
  (*doc)["config"][key] = value;
  return db_.change({{Op::replace, DocumentKind::instance, name, *doc, {}}});
}

Result<void> Instances::start_locked(const std::string& name) {
  auto doc = load(name);
  if (!doc) return doc.error();
  auto spec = spec_of(name, *doc);
  if (!spec) return spec.error();
  // The rootfs is shifted to the map it will run with, when that changed (privileged toggled).
  const auto config = config_of(*doc);
  const std::string next = spec->privileged ? "[]" : idmap_to_json(spec->idmap);
  const std::string last =
      config.count("volatile.last_state.idmap") != 0 ? config.at("volatile.last_state.idmap") : "[]";
  if (last != next) {
    auto from = idmap_from_json(last);
    if (!from) return from.error();
    if (auto shifted = shift_tree(spec->rootfs, *from, spec->privileged ? Idmap{} : spec->idmap); !shifted) {
      return shifted.error();
    }
    // Recorded at once: a failed start must not shift the files a second time at the next one.
    (*doc)["config"]["volatile.last_state.idmap"] = next;
    if (auto stored = db_.change({{Op::replace, DocumentKind::instance, name, *doc, {}}}); !stored) return stored;
  }
  if (auto started = driver_.start(*spec); !started) return started.error();
  (*doc)["config"]["volatile.idmap.current"] = next;
  (*doc)["config"]["volatile.last_state.power"] = "RUNNING";
  (*doc)["last_used_at"] = now_text();
  return db_.change({{Op::replace, DocumentKind::instance, name, *doc, {}}});
}

Result<void> Instances::stop_locked(const std::string& name, int timeout, bool force) {
  if (auto stopped = driver_.stop(name, timeout, force); !stopped) return stopped.error();
  return set_config_key(name, "volatile.last_state.power", "STOPPED");
}

Result<StateChange> Instances::check_state_change(const std::string& name, const nlohmann::json& body) const {
  if (auto doc = load(name); !doc) return doc.error();
  StateChange c;
  c.action = body.value("action", "");
  static const std::set<std::string> actions{"start", "stop", "restart", "freeze", "unfreeze"};
  if (actions.count(c.action) == 0) return make_error(ErrorKind::invalid_argument, "Unknown action " + c.action);
  if (body.contains("timeout") && body["timeout"].is_number_integer()) c.timeout = body["timeout"].get<int>();
  c.force = body.value("force", false);
  if (body.value("stateful", false)) {
    return make_error(ErrorKind::invalid_argument, "Stateful start and stop need CRIU, which berthd does not support");
  }
  const auto state = driver_.state(name);
  const bool running = state.status_code == 103;
  const bool frozen = state.status_code == 110;
  if (c.action == "start" && (running || frozen)) {
    return make_error(ErrorKind::invalid_argument, "The instance is already running");
  }
  if ((c.action == "stop" || c.action == "restart" || c.action == "freeze") && !running && !frozen) {
    return make_error(ErrorKind::invalid_argument, "The instance is already stopped");
  }
  if (c.action == "freeze" && frozen) return make_error(ErrorKind::invalid_argument, "The instance is already frozen");
  if (c.action == "unfreeze" && !frozen) return make_error(ErrorKind::invalid_argument, "The instance is not frozen");
  return c;
}

bool Instances::active(const std::string& name) const {
  const auto code = driver_.state(name).status_code;
  return code != 102 && code != 112;
}

Result<void> Instances::change_state(const std::string& name, const StateChange& change) {
  // A forced stop does not queue behind a clean stop still waiting for init to go (lxc stop -f
  // after an lxc stop that hangs): it kills at once, and the waiting stop then returns.
  const bool forced_stop = change.action == "stop" && change.force;
  auto guard = forced_stop ? std::unique_lock<std::mutex>{} : lock(name);
  auto doc = load(name);
  if (!doc) return doc.error();
  if (change.action == "start") return start_locked(name);
  if (change.action == "freeze") {
    if (auto r = driver_.freeze(name); !r) return r;
    return set_config_key(name, "volatile.last_state.power", "FROZEN");
  }
  if (change.action == "unfreeze") {
    if (auto r = driver_.unfreeze(name); !r) return r;
    return set_config_key(name, "volatile.last_state.power", "RUNNING");
  }
  // A frozen container is thawed before it is stopped, so that init can see the signal.
  if (driver_.state(name).status_code == 110) {
    if (auto r = driver_.unfreeze(name); !r) return r;
  }
  if (auto stopped = stop_locked(name, change.timeout, change.force); !stopped) return stopped;
  if (change.action == "restart") return start_locked(name);
  if (doc->value("ephemeral", false)) {
    if (guard.owns_lock()) guard.unlock();
    return remove(name);
  }
  return {};
}

Result<void> Instances::update(const std::string& name, const nlohmann::json& body, bool patch) {
  auto guard = lock(name);
  auto doc = load(name);
  if (!doc) return doc.error();
  nlohmann::json next = *doc;
  auto config = read_string_map(body.value("config", nlohmann::json(nullptr)), "config");
  if (!config) return config.error();
  auto devices = read_devices(body.value("devices", nlohmann::json(nullptr)));
  if (!devices) return devices.error();
  if (patch) {
    for (const auto& [k, v] : *config) next["config"][k] = v;
    for (const auto& [k, v] : *devices) next["devices"][k] = v;
  } else {
    // PUT replaces config and devices; the volatile keys a client did not send are kept.
    nlohmann::json merged = *config;
    if (merged.is_null()) merged = nlohmann::json::object();
    for (const auto& [k, v] : config_of(*doc)) {
      if (k.rfind("volatile.", 0) == 0 && !merged.contains(k)) merged[k] = v;
    }
    next["config"] = merged;
    next["devices"] = *devices;
  }
  if (body.contains("profiles") && !body["profiles"].is_null()) {
    auto profiles = read_string_list(body["profiles"], "profiles");
    if (!profiles) return profiles.error();
    for (const auto& p : *profiles) {
      auto found = db_.document(DocumentKind::profile, p);
      if (!found) return found.error();
      if (!found->has_value()) return make_error(ErrorKind::not_found, "Profile not found: " + p);
    }
    next["profiles"] = *profiles;
  }
  if (body.contains("description") && body["description"].is_string()) next["description"] = body["description"];
  if (body.contains("ephemeral") && body["ephemeral"].is_boolean()) next["ephemeral"] = body["ephemeral"];
  if (auto ok = validate_instance_config(config_of(next)); !ok) return ok.error();
  auto next_devices = read_devices(next.value("devices", nlohmann::json::object()));
  if (!next_devices) return next_devices.error();
  if (auto ok = validate_devices(*next_devices); !ok) return ok.error();
  const auto state = driver_.state(name);
  if (state.status_code == 103 || state.status_code == 110) {
    // Limits change live. security.privileged, as in LXD, takes effect at the next start, which
    // shifts the rootfs to the new map (start_locked).
    auto expanded_after = spec_of(name, next);
    if (!expanded_after) return expanded_after.error();
    if (auto applied = driver_.apply_limits(name, expanded_after->config); !applied) return applied;
  }
  return db_.change({{Op::replace, DocumentKind::instance, name, next, {}}});
}

Result<void> Instances::rename(const std::string& from, const std::string& to) {
  if (auto ok = validate_instance_name(to); !ok) return ok;
  auto guard = lock(from);
  auto doc = load(from);
  if (!doc) return doc.error();
  if (driver_.state(from).status_code != 102) {
    return make_error(ErrorKind::invalid_argument, "Renaming of running instance not allowed");
  }
  if (auto existing = db_.document(DocumentKind::instance, to); !existing) {
    return existing.error();
  } else if (existing->has_value()) {
    return make_error(ErrorKind::conflict, "Name \"" + to + "\" already in use");
  }
  Reverter revert;
  if (auto moved = pool_.rename_volume(from, to); !moved) return moved;
  revert.add([&] { log_undo(pool_.rename_volume(to, from), "the volume's rename"); });
  if (auto moved = driver_.rename(from, to); !moved) return moved;
  revert.add([&] { log_undo(driver_.rename(to, from), "the container's rename"); });
  if (auto stored = db_.change({{Op::remove, DocumentKind::instance, from, nullptr, {}},
                                {Op::insert, DocumentKind::instance, to, *doc, {}},
                                {Op::rename_prefix, DocumentKind::snapshot, from + "/", nullptr, to + "/"}});
      !stored) {
    return stored;
  }
  revert.success();
  return {};
}

Result<void> Instances::remove(const std::string& name) {
  auto guard = lock(name);
  if (auto doc = load(name); !doc) return doc.error();
  if (driver_.state(name).status_code != 102) {
    return make_error(ErrorKind::invalid_argument, "Instance is running");
  }
  // The record goes last: a failure before leaves the instance there to delete again.
  if (auto removed = driver_.remove(name); !removed && removed.error().kind != ErrorKind::not_found) return removed;
  if (auto deleted = pool_.delete_volume(name); !deleted && deleted.error().kind != ErrorKind::not_found) {
    return deleted;
  }
  return db_.change({{Op::remove, DocumentKind::instance, name, nullptr, {}},
                     {Op::remove_prefix, DocumentKind::snapshot, name + "/", nullptr, {}}});
}

Result<void> Instances::create_snapshot(const std::string& name, const std::string& snap,
                                        std::optional<std::chrono::system_clock::time_point> expires) {
  if (auto ok = check_snapshot_name(snap); !ok) return ok;
  auto guard = lock(name);
  auto doc = load(name);
  if (!doc) return doc.error();
  if (auto existing = db_.document(DocumentKind::snapshot, name + "/" + snap); !existing) {
    return existing.error();
  } else if (existing->has_value()) {
    return make_error(ErrorKind::conflict, "Snapshot \"" + snap + "\" already exists");
  }
  const auto key = name + "/" + snap;
  if (auto noted = note_pending(key, "snapshot"); !noted) return noted;
  Reverter revert;
  revert.add([&] { log_undo(db_.change({{Op::remove, DocumentKind::pending, key, {}, {}}}), "the journal"); });
  if (auto made = pool_.create_snapshot(name, snap); !made) return made;
  revert.add([&] { log_undo(pool_.delete_snapshot(name, snap), "the new snapshot"); });
  nlohmann::json body{{"architecture", doc->value("architecture", architecture_)},
                      {"config", doc->value("config", nlohmann::json::object())},
                      {"devices", doc->value("devices", nlohmann::json::object())},
                      {"ephemeral", doc->value("ephemeral", false)},
                      {"profiles", doc->value("profiles", nlohmann::json::array())},
                      {"stateful", false},
                      {"description", doc->value("description", "")},
                      {"created_at", now_text()},
                      {"last_used_at", never},
                      {"expires_at", expires ? util::rfc3339_utc(*expires) : never}};
  if (auto stored = db_.change(
          {{Op::insert, DocumentKind::snapshot, key, body, {}}, {Op::remove, DocumentKind::pending, key, {}, {}}});
      !stored) {
    return stored;
  }
  revert.success();
  return {};
}

Result<void> Instances::send(const std::string& name, const std::string& snapshot, bool instance_only,
                             const std::function<Result<void>(const Outgoing&)>& transfer) {
  auto guard = lock(name);
  auto doc = load(name);
  if (!doc) return doc.error();
  Outgoing out;
  out.volume = pool_.volume_path(name);
  out.running = active(name);
  if (!snapshot.empty()) {
    auto snap = db_.document(DocumentKind::snapshot, name + "/" + snapshot);
    if (!snap) return snap.error();
    if (!snap->has_value()) return make_error(ErrorKind::not_found, "Snapshot not found");
    doc = std::move(**snap);
    out.volume = pool_.snapshot_path(name, snapshot);
    out.running = false;
    instance_only = true;
  }
  const auto config = config_of(*doc);  // its files are owned as its own config says
  out.architecture = doc->value("architecture", architecture_);
  const auto owned = config.find("volatile.last_state.idmap");
  out.disk_idmap = owned != config.end() && !owned->second.empty() ? owned->second : "[]";
  if (!instance_only) {
    auto snaps = snapshot_names(name);
    if (!snaps) return snaps.error();
    for (const auto& snap : *snaps) {
      auto snap_doc = db_.document(DocumentKind::snapshot, name + "/" + snap);
      if (!snap_doc) return snap_doc.error();
      if (!snap_doc->has_value()) continue;
      out.snapshots.push_back({snap, **snap_doc, pool_.snapshot_path(name, snap)});
    }
  }
  // Only a running container is frozen for the last pass (and so thawed after it): one the user
  // froze stays frozen.
  out.freeze = [this, name](bool frozen) -> Result<void> {
    if (!frozen) return driver_.unfreeze(name);
    if (driver_.state(name).status_code != 103) return make_error(ErrorKind::conflict, "not running");
    return driver_.freeze(name);
  };
  return transfer(out);
}

Result<void> Instances::check_arrival(const std::string& name, const std::vector<std::string>& profiles) const {
  if (auto ok = validate_instance_name(name); !ok) return ok.error();
  if (auto existing = db_.document(DocumentKind::instance, name); !existing) {
    return existing.error();
  } else if (existing->has_value()) {
    return make_error(ErrorKind::conflict, "Instance \"" + name + "\" already exists");
  }
  for (const auto& p : profiles) {
    auto found = db_.document(DocumentKind::profile, p);
    if (!found) return found.error();
    if (!found->has_value()) return make_error(ErrorKind::not_found, "Requested profile \"" + p + "\" doesn't exist");
  }
  return {};
}

Result<void> Instances::receive(const Arrival& arrival,
                                const std::function<Result<void>(const std::filesystem::path&, std::size_t)>& fill) {
  const auto& request = arrival.request;
  auto guard = lock(request.name);
  if (auto ok = check_arrival(request.name, request.profiles); !ok) return ok;
  auto disk_map = idmap_from_json(arrival.disk_idmap);
  if (!disk_map) return disk_map.error();
  for (const auto& [snap, doc] : arrival.snapshots) {
    if (auto ok = check_snapshot_name(snap); !ok) return ok;
  }
  const bool adopting = !arrival.received.empty();
  if (adopting && arrival.received.size() != arrival.snapshots.size() + 1) {
    return make_error(ErrorKind::protocol, "a migration received " + std::to_string(arrival.received.size()) +
                                               " subvolumes for " + std::to_string(arrival.snapshots.size()) +
                                               " snapshots and a volume");
  }
  if (auto noted = note_pending(request.name, "create"); !noted) return noted;
  Reverter revert;
  revert.add([&] { log_undo(db_.change({{Op::remove, DocumentKind::pending, request.name, {}, {}}}), "the journal"); });
  if (auto made =
          adopting ? pool_.adopt_volume(request.name, arrival.received.back()) : pool_.create_volume(request.name);
      !made) {
    return made.error();
  }
  revert.add([&] { log_undo(pool_.delete_volume(request.name), "the arriving volume"); });
  const auto volume = pool_.volume_path(request.name);

  // The base image first, owned as the files will arrive, so that rsync sends only what differs.
  bool prefilled = false;
  if (!request.image.empty() && !adopting) {
    auto image = db_.document(DocumentKind::image, request.image);
    if (image && image->has_value()) {
      ImageStore::IdShift shift;
      if (disk_map->empty()) {
        shift.uid = [](std::int64_t id) { return std::optional<std::int64_t>{id}; };
        shift.gid = shift.uid;
        shift.skip_devices = false;
      } else {
        shift.uid = [&map = *disk_map](std::int64_t id) { return shift_uid(map, id); };
        shift.gid = [&map = *disk_map](std::int64_t id) { return shift_gid(map, id); };
      }
      if (auto unpacked = images_.unpack(request.image, volume, shift); unpacked) {
        prefilled = true;
      } else {
        // Only slower: rsync sends it all. What the unpack left is cleared first.
        spdlog::warn("instances: {} arrives without its base image {}: {}", request.name, request.image,
                     unpacked.error().message);
        if (auto cleared = pool_.delete_volume(request.name); !cleared) return cleared.error();
        if (auto made = pool_.create_volume(request.name); !made) return made.error();
      }
    }
  }
  spdlog::info("instances: receiving {} ({} snapshots{})", request.name, arrival.snapshots.size(),
               prefilled ? ", pre-filled from its base image" : "");
  std::vector<DocumentChange> changes;
  if (auto made = arrive_snapshots(arrival, fill, changes); !made) return made;

  StringMap config = request.config;
  const bool privileged = config_true(config, "security.privileged");
  config["volatile.last_state.idmap"] = arrival.disk_idmap;  // the next start shifts from there
  if (config["volatile.uuid"].empty()) config["volatile.uuid"] = random_uuid();
  config["volatile.idmap.base"] = "0";
  config["volatile.idmap.next"] = idmap_to_json(privileged ? Idmap{} : idmap_);
  config["volatile.last_state.power"] = "STOPPED";
  config.erase("volatile.idmap.current");
  if (!request.image.empty()) config["volatile.base_image"] = request.image;
  nlohmann::json doc{{"architecture", arrival.architecture.empty() ? architecture_ : arrival.architecture},
                     {"config", config},
                     {"devices", request.devices},
                     {"ephemeral", request.ephemeral},
                     {"stateful", false},
                     {"description", request.description},
                     {"profiles", request.profiles},
                     {"created_at", now_text()},
                     {"last_used_at", never}};
  changes.insert(changes.begin(), {{Op::insert, DocumentKind::instance, request.name, doc, {}},
                                   {Op::remove, DocumentKind::pending, request.name, {}, {}}});
  if (auto done = define_and_store(request.name, doc, changes); !done) return done;
  revert.success();
  return {};
}

Result<void> Instances::arrive_snapshots(
    const Arrival& arrival, const std::function<Result<void>(const std::filesystem::path&, std::size_t)>& fill,
    std::vector<DocumentChange>& changes) {
  const auto& name = arrival.request.name;
  const auto volume = pool_.volume_path(name);
  // Whatever the source's volume directory was, this one is berthd's (root's, 0711).
  const auto own_volume = [&]() -> Result<void> {
    std::error_code ec;
    std::filesystem::permissions(volume, static_cast<std::filesystem::perms>(0711), ec);
    if (ec || ::chown(volume.c_str(), 0, 0) != 0) {
      return make_error(ErrorKind::io, "cannot set the owner and mode of " + volume.string());
    }
    return {};
  };
  const bool adopting = !arrival.received.empty();
  for (std::size_t i = 0; i < arrival.snapshots.size(); ++i) {
    const auto& [snap, snap_doc] = arrival.snapshots[i];
    if (adopting) {
      if (auto made = pool_.adopt_snapshot(name, snap, arrival.received[i]); !made) return made;
    } else {
      if (auto filled = fill(volume, i); !filled) return filled;
      if (auto owned = own_volume(); !owned) return owned;
      if (auto made = pool_.create_snapshot(name, snap); !made) return made;
    }
    auto doc = snap_doc;
    doc["config"]["volatile.last_state.idmap"] = arrival.disk_idmap;  // how its files are owned
    changes.push_back({Op::insert, DocumentKind::snapshot, name + "/" + snap, doc, {}});
  }
  if (adopting) return {};
  if (auto filled = fill(volume, arrival.snapshots.size()); !filled) return filled;
  return own_volume();
}

Result<void> Instances::refresh(const Arrival& arrival,
                                const std::function<Result<void>(const std::filesystem::path&, std::size_t)>& fill) {
  const auto& name = arrival.request.name;
  auto guard = lock(name);
  auto doc = load(name);
  if (!doc) return doc.error();
  if (auto disk_map = idmap_from_json(arrival.disk_idmap); !disk_map) return disk_map.error();
  if (!arrival.received.empty()) {
    return make_error(ErrorKind::protocol, "a refresh is written in place: it takes no received subvolumes");
  }
  for (const auto& [snap, snap_doc] : arrival.snapshots) {
    if (auto ok = check_snapshot_name(snap); !ok) return ok;
    auto existing = db_.document(DocumentKind::snapshot, name + "/" + snap);
    if (!existing) return existing.error();
    if (existing->has_value()) {
      return make_error(ErrorKind::conflict, "Snapshot \"" + name + "/" + snap + "\" already exists");
    }
  }
  // Checked again under the lock: it may have been started since the request came.
  if (active(name)) {
    return make_error(ErrorKind::invalid_argument,
                      "Instance \"" + name + "\" is running: stop it before refreshing it (lxc stop)");
  }
  spdlog::info("instances: refreshing {} ({} snapshots arrive)", name, arrival.snapshots.size());
  // Journalled as snapshots are: one a crash leaves half-made goes at the next start.
  std::vector<DocumentChange> journal;
  for (const auto& [snap, snap_doc] : arrival.snapshots) {
    const auto key = name + "/" + snap;
    if (auto noted = note_pending(key, "snapshot"); !noted) return noted;
    journal.push_back({Op::remove, DocumentKind::pending, key, {}, {}});
  }
  Reverter revert;
  revert.add([&] {
    for (const auto& [snap, snap_doc] : arrival.snapshots) {
      const auto gone = pool_.delete_snapshot(name, snap);
      if (!gone && gone.error().kind != ErrorKind::not_found) log_undo(gone, "an arriving snapshot");
    }
    log_undo(db_.change(journal), "the journal");
  });
  std::vector<DocumentChange> changes;
  if (auto made = arrive_snapshots(arrival, fill, changes); !made) return made;
  auto next = *doc;
  next["config"]["volatile.last_state.idmap"] = arrival.disk_idmap;  // the next start shifts from there
  changes.insert(changes.begin(), {Op::replace, DocumentKind::instance, name, next, {}});
  changes.insert(changes.end(), journal.begin(), journal.end());
  if (auto stored = db_.change(changes); !stored) return stored;
  revert.success();
  return {};
}

Result<StoredImage> Instances::publish(const std::string& name, const std::string& snapshot,
                                       const std::optional<std::map<std::string, std::string>>& properties) {
  auto guard = lock(name);
  auto doc = load(name);
  if (!doc) return doc.error();
  StringMap config = config_of(*doc);
  std::filesystem::path volume = pool_.volume_path(name);
  if (snapshot.empty()) {
    if (active(name)) return make_error(ErrorKind::invalid_argument, "Cannot export a running instance as an image");
  } else {
    auto snap = db_.document(DocumentKind::snapshot, name + "/" + snapshot);
    if (!snap) return snap.error();
    if (!snap->has_value()) return make_error(ErrorKind::not_found, "Snapshot not found");
    config = config_of(**snap);  // its files are owned as its own config says
    volume = pool_.snapshot_path(name, snapshot);
  }
  // The files are owned as the map they were last shifted to says.
  auto mappings = file_owner_mappings(config, false);
  if (!mappings) return mappings.error();
  ImageStore::IdShift unshift;
  unshift.uid = mappings->uid;
  unshift.gid = mappings->gid;

  std::optional<std::string> existing;
  const auto metadata_path = volume / "metadata.yaml";
  std::error_code ec;
  if (std::filesystem::is_regular_file(std::filesystem::symlink_status(metadata_path, ec))) {
    constexpr std::uintmax_t limit = std::uintmax_t{1} << 20;
    if (std::filesystem::file_size(metadata_path, ec) > limit) {
      return make_error(ErrorKind::invalid_argument, "the instance's metadata.yaml is larger than 1 MiB");
    }
    std::ifstream in(metadata_path, std::ios::binary);
    existing = std::string{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }
  const auto now =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  auto metadata = published_metadata(existing, doc->value("architecture", architecture_), now, properties);
  if (!metadata) return metadata.error();
  return images_.publish(volume, *metadata, unshift);
}

Result<void> Instances::remove_snapshot(const std::string& name, const std::string& snap) {
  auto guard = lock(name);
  return remove_snapshot_locked(name, snap);
}

Result<void> Instances::remove_snapshot_locked(const std::string& name, const std::string& snap) {
  if (auto found = render_snapshot(name, snap); !found) return found.error();
  if (auto deleted = pool_.delete_snapshot(name, snap); !deleted && deleted.error().kind != ErrorKind::not_found) {
    return deleted;
  }
  return db_.change({{Op::remove, DocumentKind::snapshot, name + "/" + snap, nullptr, {}}});
}

Result<void> Instances::rename_snapshot(const std::string& name, const std::string& from, const std::string& to) {
  if (auto ok = check_snapshot_name(to); !ok) return ok;
  auto guard = lock(name);
  auto doc = db_.document(DocumentKind::snapshot, name + "/" + from);
  if (!doc) return doc.error();
  if (!doc->has_value()) return make_error(ErrorKind::not_found, "Snapshot not found");
  if (auto existing = db_.document(DocumentKind::snapshot, name + "/" + to); !existing) {
    return existing.error();
  } else if (existing->has_value()) {
    return make_error(ErrorKind::conflict, "Name \"" + to + "\" already in use");
  }
  Reverter revert;
  if (auto moved = pool_.rename_snapshot(name, from, to); !moved) return moved;
  revert.add([&] { log_undo(pool_.rename_snapshot(name, to, from), "the snapshot's rename"); });
  if (auto stored = db_.change({{Op::remove, DocumentKind::snapshot, name + "/" + from, nullptr, {}},
                                {Op::insert, DocumentKind::snapshot, name + "/" + to, **doc, {}}});
      !stored) {
    return stored;
  }
  revert.success();
  return {};
}

Result<void> Instances::restore(const std::string& name, const std::string& snap) {
  auto guard = lock(name);
  auto doc = load(name);
  if (!doc) return doc.error();
  auto snapshot = db_.document(DocumentKind::snapshot, name + "/" + snap);
  if (!snapshot) return snapshot.error();
  if (!snapshot->has_value()) return make_error(ErrorKind::not_found, "Snapshot not found");
  const auto state = driver_.state(name);
  const bool was_running = state.status_code == 103 || state.status_code == 110;
  if (was_running) {
    if (state.status_code == 110) {
      if (auto r = driver_.unfreeze(name); !r) return r;
    }
    if (auto stopped = stop_locked(name, 30, false); !stopped) {
      if (auto killed = stop_locked(name, 0, true); !killed) return killed;
    }
  }
  if (auto restored = pool_.restore_snapshot(name, snap); !restored) {
    if (was_running) log_undo(start_locked(name), "restarting after a failed restore");
    return restored;
  }
  // Config and devices come back from the snapshot; the instance's volatile state stays.
  nlohmann::json next = *doc;
  nlohmann::json config = (**snapshot).value("config", nlohmann::json::object());
  for (const auto& [k, v] : config_of(*doc)) {
    if (k.rfind("volatile.", 0) == 0) config[k] = v;
  }
  // The files are owned as they were when the snapshot was taken.
  const auto snap_config = config_of(**snapshot);
  const auto owned = snap_config.find("volatile.last_state.idmap");
  config["volatile.last_state.idmap"] = owned != snap_config.end() ? owned->second : "[]";
  next["config"] = config;
  next["devices"] = (**snapshot).value("devices", nlohmann::json::object());
  next["profiles"] = (**snapshot).value("profiles", nlohmann::json::array());
  if (auto stored = db_.change({{Op::replace, DocumentKind::instance, name, next, {}}}); !stored) return stored;
  if (was_running) return start_locked(name);
  return {};
}

Result<void> Instances::check_exec(const std::string& name) const {
  if (auto doc = load(name); !doc) return doc.error();
  const auto code = driver_.state(name).status_code;
  if (code == 110) return make_error(ErrorKind::invalid_argument, "Instance is frozen");
  if (code != 103) return make_error(ErrorKind::invalid_argument, "Instance is not running");
  return {};
}

Result<std::unique_ptr<ExecProcess>> Instances::exec(const std::string& name, ExecRequest request) const {
  auto doc = load(name);
  if (!doc) return doc.error();
  auto config = expanded(*doc, "config");
  if (!config) return config.error();
  add_default_environment(request, string_values(*config));
  // The container's root as the host sees it, from the map it runs with ("[]": privileged).
  const auto own = config_of(*doc);
  const auto current = own.count("volatile.idmap.current") != 0 ? own.at("volatile.idmap.current") : "[]";
  auto map = idmap_from_json(current);
  if (!map) return map.error();
  const auto root_uid = map->empty() ? std::optional<std::int64_t>{0} : shift_uid(*map, 0);
  const auto root_gid = map->empty() ? std::optional<std::int64_t>{0} : shift_gid(*map, 0);
  if (!root_uid || !root_gid) return make_error(ErrorKind::io, "container " + name + ": its id map has no root");
  if (driver_.helper().empty()) return make_error(ErrorKind::io, "no exec helper: berthd cannot find its executable");
  // The container's own devpts, as its monitor holds it (never a path inside the container,
  // which the container controls).
  UniqueFd devpts(request.interactive ? driver_.devpts_fd(name) : -1);
  return ExecProcess::start(driver_.helper(), driver_.lxcpath(), name, request,
                            {static_cast<uid_t>(*root_uid), static_cast<gid_t>(*root_gid)}, devpts.get());
}

std::filesystem::path Instances::log_dir(const std::string& name) const {
  return driver_.lxcpath() / name;
}

std::filesystem::path Instances::lxc_log(const std::string& name) const {
  return driver_.log_path(name);
}

Result<Instances::RootfsView> Instances::rootfs_view(const std::string& name) const {
  auto doc = load(name);
  if (!doc) return doc.error();
  const auto config = config_of(*doc);
  auto shift = file_owner_mappings(config, true);
  if (!shift) return shift.error();
  auto unshift = file_owner_mappings(config, false);
  if (!unshift) return unshift.error();
  return RootfsView{pool_.volume_path(name) / "rootfs", std::move(*shift), std::move(*unshift)};
}

Result<RootfsEntry> Instances::read_file(const std::string& name, const std::string& path,
                                         std::uintmax_t max_size) const {
  auto view = rootfs_view(name);
  if (!view) return view.error();
  return read_in_root(view->root, path, view->unshift, max_size);
}

Result<void> Instances::write_file(const std::string& name, const std::string& path, const RootfsWrite& what) {
  auto view = rootfs_view(name);
  if (!view) return view.error();
  return write_in_root(view->root, path, what, view->shift);
}

Result<void> Instances::delete_file(const std::string& name, const std::string& path) {
  auto view = rootfs_view(name);
  if (!view) return view.error();
  return remove_in_root(view->root, path);
}

Result<void> Instances::note_pending(const std::string& key, const std::string& action) {
  const nlohmann::json body{{"action", action}, {"since", now_text()}};
  auto noted = db_.change({{Op::insert, DocumentKind::pending, key, body, {}}});
  if (!noted && noted.error().kind == ErrorKind::conflict) {
    noted = db_.change({{Op::replace, DocumentKind::pending, key, body, {}}});
  }
  return noted;
}

std::vector<std::string> Instances::recover() {
  std::vector<std::string> done = pool_.recover_restores();
  auto pending = db_.documents(DocumentKind::pending);
  if (!pending) {
    done.push_back("cannot read the journal: " + pending.error().message);
    return done;
  }
  // Whether the record exists; nullopt when the database cannot say (then nothing is removed).
  const auto has = [this, &done](DocumentKind kind, const std::string& key) -> std::optional<bool> {
    auto d = db_.document(kind, key);
    if (!d) {
      done.push_back("cannot read the record of " + key + ", so its journal entry is kept: " + d.error().message);
      return std::nullopt;
    }
    return d->has_value();
  };
  for (const auto& entry : *pending) {
    const auto action = entry.body.is_object() && entry.body.contains("action") && entry.body["action"].is_string()
                            ? entry.body["action"].get<std::string>()
                            : std::string{};
    const auto slash = entry.key.find('/');
    // A damaged entry must not name a path outside the pool or lxcpath.
    const auto usable = [](const std::string& part) {
      return !part.empty() && part.front() != '.' && part.find('/') == std::string::npos &&
             part.find('\0') == std::string::npos;
    };
    const bool one_name = slash == std::string::npos && usable(entry.key);
    const bool two_names =
        slash != std::string::npos && usable(entry.key.substr(0, slash)) && usable(entry.key.substr(slash + 1));
    bool cleared = false;
    if (action == "create" && one_name) {
      const auto& name = entry.key;
      const auto stored = has(DocumentKind::instance, name);
      if (!stored) {
        continue;
      } else if (*stored) {
        cleared = true;  // its record was stored: nothing is half-made
      } else {
        cleared = true;
        if (std::filesystem::exists(pool_.volume_path(name))) {  // with the snapshots a copy made
          if (auto r = pool_.delete_volume(name); !r) {
            done.push_back("cannot remove the half-made volume of " + name + ": " + r.error().message);
            cleared = false;
          }
        }
        std::error_code ec;
        std::filesystem::remove_all(driver_.lxcpath() / name, ec);
        if (ec) {
          done.push_back("cannot remove the half-made liblxc config of " + name + ": " + ec.message());
          cleared = false;
        }
        if (cleared) done.push_back("removed instance " + name + ", which berthd stopped before it finished making");
      }
    } else if (action == "snapshot" && two_names) {
      const auto name = entry.key.substr(0, slash);
      const auto snap = entry.key.substr(slash + 1);
      const auto stored = has(DocumentKind::snapshot, entry.key);
      if (!stored) continue;
      cleared = true;
      if (!*stored && std::filesystem::exists(pool_.snapshot_path(name, snap))) {
        if (auto r = pool_.delete_snapshot(name, snap); !r) {
          done.push_back("cannot remove the half-made snapshot " + entry.key + ": " + r.error().message);
          cleared = false;
        } else {
          done.push_back("removed snapshot " + entry.key + ", which berthd stopped before it finished making");
        }
      }
    } else {
      done.push_back("journal entry " + entry.key + " (" + action + ") is not one this berthd knows; left as is");
    }
    if (cleared) log_undo(db_.change({{Op::remove, DocumentKind::pending, entry.key, {}, {}}}), "the journal entry");
  }
  // What the journal does not explain is reported, not guessed at: a volume may hold someone's data.
  auto records = names();
  if (records) {
    const std::set<std::string> known(records->begin(), records->end());
    for (const auto& volume : pool_.volumes()) {
      if (known.count(volume) == 0) {
        done.push_back("volume " + pool_.volume_path(volume).string() +
                       " belongs to no instance; left in place (remove it by hand if it is not wanted)");
      }
    }
    for (const auto& name : known) {
      if (!std::filesystem::exists(pool_.volume_path(name))) {
        done.push_back("instance " + name + " has no volume at " + pool_.volume_path(name).string() +
                       "; it cannot start until one is restored");
      }
    }
  }
  return done;
}

void Instances::autostart(const std::stop_token& stop) {
  auto all = names();
  if (!all) {
    spdlog::error("instances: autostart: {}", all.error().message);
    return;
  }
  for (const auto& name : *all) {
    if (stop.stop_requested()) return;
    auto doc = load(name);
    if (!doc) continue;
    auto expanded_config = expanded(*doc, "config");
    if (!expanded_config) continue;
    auto config = string_values(*expanded_config);
    const bool wanted = config["boot.autostart"].empty() ? config["volatile.last_state.power"] == "RUNNING"
                                                         : config_true(config, "boot.autostart");
    if (!wanted) continue;
    auto guard = lock(name);
    if (active(name)) continue;
    spdlog::info("instances: starting {} (boot.autostart or running when berthd last saw it)", name);
    if (auto started = start_locked(name); !started) {
      spdlog::error("instances: autostart of {} failed: {}", name, started.error().message);
    }
  }
}

void Instances::housekeep(std::chrono::system_clock::time_point now) {
  auto docs = db_.documents(DocumentKind::instance);
  if (!docs) {
    spdlog::error("instances: housekeeping: {}", docs.error().message);
    return;
  }
  std::set<std::string> stopped_now;
  for (const auto& d : *docs) {
    if (config_of(d.body)["volatile.last_state.power"] != "RUNNING" || active(d.key)) continue;
    stopped_now.insert(d.key);
    if (seen_stopped_.count(d.key) == 0) continue;
    auto guard = try_lock(d.key);
    if (!guard.owns_lock()) continue;
    // Again under the lock: a start or a stop may have ended since.
    auto doc = load(d.key);
    if (!doc || config_of(*doc)["volatile.last_state.power"] != "RUNNING" || active(d.key)) continue;
    if (doc->value("ephemeral", false)) {
      spdlog::info("instances: the ephemeral {} stopped; deleting it", d.key);
      guard.unlock();
      if (auto removed = remove(d.key); !removed) {
        spdlog::error("instances: deleting the ephemeral {}: {}", d.key, removed.error().message);
      }
    } else {
      spdlog::info("instances: {} stopped without berthd", d.key);
      if (auto stored = set_config_key(d.key, "volatile.last_state.power", "STOPPED"); !stored) {
        spdlog::error("instances: recording {} stopped: {}", d.key, stored.error().message);
      }
    }
  }
  seen_stopped_ = std::move(stopped_now);

  auto snapshots = db_.documents(DocumentKind::snapshot);
  if (!snapshots) {
    spdlog::error("instances: housekeeping: {}", snapshots.error().message);
    return;
  }
  for (const auto& d : *snapshots) {
    const auto expires = util::parse_rfc3339(d.body.value("expires_at", std::string{never}));
    if (!expires || *expires > now) continue;  // never is Go's zero time, which parse_rfc3339 refuses
    const auto slash = d.key.find('/');
    if (slash == std::string::npos) continue;
    const auto name = d.key.substr(0, slash);
    const auto snap = d.key.substr(slash + 1);
    auto guard = try_lock(name);
    if (!guard.owns_lock()) continue;
    spdlog::info("instances: snapshot {}/{} expired; deleting it", name, snap);
    if (auto removed = remove_snapshot_locked(name, snap); !removed) {
      spdlog::error("instances: deleting the expired snapshot {}/{}: {}", name, snap, removed.error().message);
    }
  }
}

}  // namespace berth::daemon
