#include "daemon/api/instances_api.hpp"

#include <chrono>
#include <optional>
#include <sstream>

#include <spdlog/spdlog.h>

#include "daemon/api/requests.hpp"
#include "daemon/api/response.hpp"

namespace berth::daemon::api {
namespace {

using lxd::ErrorKind;

std::string instance_url(const std::string& name) {
  return "/1.0/instances/" + name;
}

nlohmann::json resources_of(const std::string& name) {
  return {{"instances", {instance_url(name)}}, {"containers", {"/1.0/containers/" + name}}};
}

// A task whose work gives nothing but success or an error.
http::Response run(Operations& operations, const std::string& description, nlohmann::json resources,
                   std::function<Result<void>()> work) {
  return async_response(
      operations.add_task(description, std::move(resources), [work = std::move(work)]() -> Result<nlohmann::json> {
        if (auto done = work(); !done) return done.error();
        return nlohmann::json::object();
      }));
}

std::string if_match(const Call& call) {
  auto want = call.request.header("If-Match");
  if (want.size() >= 2 && want.front() == '"' && want.back() == '"') want = want.substr(1, want.size() - 2);
  return want;
}

class InstanceRoutes {
 public:
  InstanceRoutes(Instances& instances, Operations& operations, Database& db, StoragePool& pool, ImageFetcher fetch,
                 Migrations& migrations)
      : instances_(instances),
        operations_(operations),
        db_(db),
        pool_(pool),
        fetch_(std::move(fetch)),
        migrations_(migrations) {}

  http::Response list(const Call& call) const {
    const auto recursion = call.recursion();
    const auto filter_it = call.query.find("filter");
    const std::string filter = filter_it == call.query.end() ? "" : filter_it->second;
    nlohmann::json out = nlohmann::json::array();
    if (recursion == 0 && filter.empty()) {
      auto names = instances_.names();
      if (!names) return error_response(names.error());
      for (const auto& name : *names) out.push_back(instance_url(name));
      return sync_response(out);
    }
    // The common list (lxc list, berth's reads) from text kept between changes (bench/api).
    if (recursion == 1 && filter.empty()) {
      auto text = instances_.render_all_text();
      if (!text) return error_response(text.error());
      return sync_response_text(*text);
    }
    // All of them at once: per-instance reads made a list of 50 take ~50 ms.
    auto objects = instances_.render_all(recursion == 2);
    if (!objects) return error_response(objects.error());
    for (auto& [name, object] : *objects) {
      if (!filter.empty()) {
        std::string error;
        const auto matches = filter_matches(filter, object, error);
        if (!matches) return error_response(400, error);
        if (!*matches) continue;
      }
      if (recursion == 0) {
        out.push_back(instance_url(name));
      } else {
        out.push_back(std::move(object));
      }
    }
    return sync_response(out);
  }

  http::Response create(const Call& call) const {
    std::string error;
    auto body = call.json_object(error);
    if (!body) return error_response(400, error);
    // The body's shape and values first (a 400 whatever exists); then what it names.
    auto parsed = parse_instance_create(*body);
    if (!parsed) return error_response(parsed.error());
    auto request = instances_.check_create(*body);
    if (!request) return error_response(request.error());
    if (parsed->migration) {
      request->migration = std::move(parsed->migration);
      return migrations_.target(std::move(*request), *body);
    }
    if (request->pull) {
      // From another server's image: fetched first (unless it is here), then as from a local one.
      return run(operations_, "Creating instance", resources_of(request->name),
                 [&instances = instances_, fetch = fetch_, r = *request]() mutable -> Result<void> {
                   auto fingerprint = fetch(*r.pull);
                   if (!fingerprint) return fingerprint.error();
                   r.image = std::move(*fingerprint);
                   r.pull.reset();
                   return instances.create(r);
                 });
    }
    return run(operations_, "Creating instance", resources_of(request->name),
               [&instances = instances_, r = *request] { return instances.create(r); });
  }

  http::Response get(const Call& call) const {
    const auto& name = call.params.at("name");
    auto object = instances_.render(name, call.recursion() >= 1);
    if (!object) return error_response(object.error());
    auto writable = instances_.writable(name);
    if (!writable) return error_response(writable.error());
    return sync_response(*object, etag_of(*writable));
  }

  http::Response update(const Call& call, bool patch) const {
    const auto& name = call.params.at("name");
    std::string error;
    auto body = call.json_object(error);
    if (!body) return error_response(400, error);
    const auto request = parse_instance_put(*body);
    if (!request) return error_response(request.error());
    auto writable = instances_.writable(name);
    if (!writable) return error_response(writable.error());
    if (const auto want = if_match(call); !want.empty() && want != etag_of(*writable)) {
      return error_response(412, "ETag doesn't match: " + want);
    }
    if (!patch && !request->restore.empty()) {
      // lxc sends "NAME/SNAP"; the bare snapshot name is taken too.
      std::string snap = request->restore;
      if (const auto slash = snap.find('/'); slash != std::string::npos) {
        if (snap.substr(0, slash) != name) return error_response(400, "Cannot restore another instance's snapshot");
        snap = snap.substr(slash + 1);
      }
      if (auto found = instances_.render_snapshot(name, snap); !found) return error_response(found.error());
      return run(operations_, "Restoring snapshot", resources_of(name),
                 [&instances = instances_, name, snap] { return instances.restore(name, snap); });
    }
    if (patch) {
      // PATCH is answered when done (LXD answers it sync).
      if (auto done = instances_.update(name, *body, true); !done) return error_response(done.error());
      return sync_response(nullptr);
    }
    return run(operations_, "Updating instance", resources_of(name),
               [&instances = instances_, name, b = *body] { return instances.update(name, b, false); });
  }

  http::Response rename(const Call& call) const {
    const auto& name = call.params.at("name");
    std::string error;
    auto body = call.json_object(error);
    if (!body) return error_response(400, error);
    const auto migrating = is_migration(*body);
    if (!migrating) return error_response(migrating.error());
    if (*migrating) {
      const auto request = parse_migration_source(*body);
      if (!request) return error_response(request.error());
      return migrations_.source(name, "", *request);
    }
    const auto to = parse_rename(*body);
    if (!to) return error_response(to.error());
    if (auto found = instances_.writable(name); !found) return error_response(found.error());
    return run(operations_, "Renaming instance", resources_of(name),
               [&instances = instances_, name, to = *to] { return instances.rename(name, to); });
  }

  http::Response remove(const Call& call) const {
    const auto& name = call.params.at("name");
    if (auto found = instances_.writable(name); !found) return error_response(found.error());
    if (instances_.active(name)) return error_response(400, "Instance is running");
    return run(operations_, "Deleting instance", resources_of(name),
               [&instances = instances_, name] { return instances.remove(name); });
  }

  http::Response get_state(const Call& call) const {
    auto state = instances_.render_state(call.params.at("name"));
    if (!state) return error_response(state.error());
    return sync_response(*state);
  }

  http::Response put_state(const Call& call) const {
    const auto& name = call.params.at("name");
    std::string error;
    auto body = call.json_object(error);
    if (!body) return error_response(400, error);
    if (auto parsed = parse_state_change(*body); !parsed) return error_response(parsed.error());
    auto change = instances_.check_state_change(name, *body);
    if (!change) return error_response(change.error());
    static const std::map<std::string, std::string> descriptions{{"start", "Starting instance"},
                                                                 {"stop", "Stopping instance"},
                                                                 {"restart", "Restarting instance"},
                                                                 {"freeze", "Freezing instance"},
                                                                 {"unfreeze", "Unfreezing instance"}};
    return run(operations_, descriptions.at(change->action), resources_of(name),
               [&instances = instances_, name, c = *change] { return instances.change_state(name, c); });
  }

  http::Response list_snapshots(const Call& call) const {
    const auto& name = call.params.at("name");
    if (auto found = instances_.writable(name); !found) return error_response(found.error());
    auto names = instances_.snapshot_names(name);
    if (!names) return error_response(names.error());
    nlohmann::json out = nlohmann::json::array();
    for (const auto& snap : *names) {
      if (call.recursion() == 0) {
        out.push_back(instance_url(name) + "/snapshots/" + snap);
      } else if (auto object = instances_.render_snapshot(name, snap)) {
        out.push_back(std::move(*object));
      }
    }
    return sync_response(out);
  }

  http::Response create_snapshot(const Call& call) const {
    const auto& name = call.params.at("name");
    std::string error;
    auto body = call.json_object(error);
    if (!body) return error_response(400, error);
    auto request = parse_snapshot_create(*body);
    if (!request) return error_response(request.error());
    if (auto found = instances_.writable(name); !found) return error_response(found.error());
    std::string snap = request->name;
    if (snap.empty()) {
      auto next = instances_.next_snapshot_name(name);
      if (!next) return error_response(next.error());
      snap = *next;
    }
    if (auto existing = instances_.render_snapshot(name, snap); existing) {
      return error_response(409, "Snapshot \"" + snap + "\" already exists");
    }
    const auto expires = request->expires;
    auto resources = resources_of(name);
    resources["instances_snapshots"] = {instance_url(name) + "/snapshots/" + snap};
    return run(operations_, "Snapshotting instance", resources, [&instances = instances_, name, snap, expires] {
      return instances.create_snapshot(name, snap, expires);
    });
  }

  http::Response get_snapshot(const Call& call) const {
    auto object = instances_.render_snapshot(call.params.at("name"), call.params.at("snapshot"));
    if (!object) return error_response(object.error());
    return sync_response(*object, etag_of((*object)["expires_at"]));
  }

  http::Response remove_snapshot(const Call& call) const {
    const auto& name = call.params.at("name");
    const auto& snap = call.params.at("snapshot");
    if (auto found = instances_.render_snapshot(name, snap); !found) return error_response(found.error());
    return run(operations_, "Deleting snapshot", resources_of(name),
               [&instances = instances_, name, snap] { return instances.remove_snapshot(name, snap); });
  }

  http::Response rename_snapshot(const Call& call) const {
    const auto& name = call.params.at("name");
    const auto& snap = call.params.at("snapshot");
    std::string error;
    auto body = call.json_object(error);
    if (!body) return error_response(400, error);
    const auto migrating = is_migration(*body);
    if (!migrating) return error_response(migrating.error());
    if (*migrating) {
      const auto request = parse_migration_source(*body);
      if (!request) return error_response(request.error());
      return migrations_.source(name, snap, *request);
    }
    const auto to = parse_rename(*body);
    if (!to) return error_response(to.error());
    if (auto found = instances_.render_snapshot(name, snap); !found) return error_response(found.error());
    return run(operations_, "Renaming snapshot", resources_of(name),
               [&instances = instances_, name, snap, to = *to] { return instances.rename_snapshot(name, snap, to); });
  }

  // ---- profiles ----
  nlohmann::json profile_object(const Document& profile) const {
    nlohmann::json out = profile.body;
    out["name"] = profile.key;
    nlohmann::json used_by = nlohmann::json::array();
    if (auto docs = db_.documents(DocumentKind::instance)) {
      for (const auto& d : *docs) {
        for (const auto& p : d.body.value("profiles", nlohmann::json::array())) {
          if (p == profile.key) used_by.push_back(instance_url(d.key));
        }
      }
    }
    out["used_by"] = used_by;
    return out;
  }

  http::Response list_profiles(const Call& call) const {
    auto docs = db_.documents(DocumentKind::profile);
    if (!docs) return error_response(docs.error());
    nlohmann::json out = nlohmann::json::array();
    for (const auto& d : *docs) {
      if (call.recursion() == 0) {
        out.push_back("/1.0/profiles/" + d.key);
      } else {
        out.push_back(profile_object(d));
      }
    }
    return sync_response(out);
  }

  http::Response get_profile(const Call& call) const {
    const auto& name = call.params.at("name");
    auto doc = db_.document(DocumentKind::profile, name);
    if (!doc) return error_response(doc.error());
    if (!doc->has_value()) return error_response(404, "Profile not found");
    const auto object = profile_object(Document{name, **doc});
    return sync_response(object, etag_of(**doc));
  }

  http::Response create_profile(const Call& call) const {
    std::string error;
    auto body = call.json_object(error);
    if (!body) return error_response(400, error);
    const auto parsed_name = parse_profile_name(*body, true);
    if (!parsed_name) return error_response(parsed_name.error());
    const std::string& name = *parsed_name;
    auto doc = parse_profile(*body);
    if (!doc) return error_response(doc.error());
    (*doc)["name"] = name;
    if (auto stored = db_.change({{DocumentChange::Op::insert, DocumentKind::profile, name, *doc, {}}}); !stored) {
      if (stored.error().kind == ErrorKind::conflict)
        return error_response(409, "Profile \"" + name + "\" already exists");
      return error_response(stored.error());
    }
    return sync_response(nullptr, {}, "/1.0/profiles/" + name);
  }

  http::Response update_profile(const Call& call, bool patch) const {
    const auto& name = call.params.at("name");
    std::string error;
    auto body = call.json_object(error);
    if (!body) return error_response(400, error);
    auto doc = db_.document(DocumentKind::profile, name);
    if (!doc) return error_response(doc.error());
    if (!doc->has_value()) return error_response(404, "Profile not found");
    if (const auto want = if_match(call); !want.empty() && want != etag_of(**doc)) {
      return error_response(412, "ETag doesn't match: " + want);
    }
    nlohmann::json merged = *body;
    if (patch) {
      merged = **doc;
      if (body->contains("config") && (*body)["config"].is_object()) merged["config"].update((*body)["config"]);
      if (body->contains("devices") && (*body)["devices"].is_object()) merged["devices"].update((*body)["devices"]);
      if (body->contains("description")) merged["description"] = (*body)["description"];
    }
    auto next = parse_profile(merged);
    if (!next) return error_response(next.error());
    (*next)["name"] = name;
    // Instances using it must stay valid: their expanded config is checked when they start.
    if (auto stored = db_.change({{DocumentChange::Op::replace, DocumentKind::profile, name, *next, {}}}); !stored) {
      return error_response(stored.error());
    }
    return sync_response(nullptr);
  }

  http::Response rename_profile(const Call& call) const {
    const auto& name = call.params.at("name");
    if (name == "default") return error_response(403, "The \"default\" profile cannot be renamed");
    std::string error;
    auto body = call.json_object(error);
    if (!body) return error_response(400, error);
    const auto parsed_name = parse_profile_name(*body, false);
    if (!parsed_name) return error_response(parsed_name.error());
    const std::string& to = *parsed_name;
    auto doc = db_.document(DocumentKind::profile, name);
    if (!doc) return error_response(doc.error());
    if (!doc->has_value()) return error_response(404, "Profile not found");
    if (!profile_object(Document{name, **doc})["used_by"].empty()) {
      return error_response(400, "Profile \"" + name + "\" is in use");
    }
    nlohmann::json next = **doc;
    next["name"] = to;
    if (auto stored = db_.change({{DocumentChange::Op::remove, DocumentKind::profile, name, nullptr, {}},
                                  {DocumentChange::Op::insert, DocumentKind::profile, to, next, {}}});
        !stored) {
      if (stored.error().kind == ErrorKind::conflict)
        return error_response(409, "Profile \"" + to + "\" already exists");
      return error_response(stored.error());
    }
    return sync_response(nullptr, {}, "/1.0/profiles/" + to);
  }

  http::Response delete_profile(const Call& call) const {
    const auto& name = call.params.at("name");
    if (name == "default") return error_response(403, "The \"default\" profile cannot be deleted");
    auto doc = db_.document(DocumentKind::profile, name);
    if (!doc) return error_response(doc.error());
    if (!doc->has_value()) return error_response(404, "Profile not found");
    if (!profile_object(Document{name, **doc})["used_by"].empty()) {
      return error_response(400, "Profile is currently in use");
    }
    if (auto stored = db_.change({{DocumentChange::Op::remove, DocumentKind::profile, name, nullptr, {}}}); !stored) {
      return error_response(stored.error());
    }
    return sync_response(nullptr);
  }

  // ---- storage pools ----
  nlohmann::json pool_object() const {
    nlohmann::json used_by = nlohmann::json::array({"/1.0/profiles/default"});
    if (auto names = instances_.names()) {
      for (const auto& n : *names) used_by.push_back(instance_url(n));
    }
    return {{"name", pool_.name()}, {"driver", pool_.driver()},
            {"description", ""},    {"config", {{"source", pool_.path().string()}}},
            {"status", "Created"},  {"locations", {"none"}},
            {"used_by", used_by}};
  }

  http::Response list_pools(const Call& call) const {
    if (call.recursion() == 0) return sync_response(nlohmann::json::array({"/1.0/storage-pools/" + pool_.name()}));
    return sync_response(nlohmann::json::array({pool_object()}));
  }

  http::Response get_pool(const Call& call) const {
    if (call.params.at("pool") != pool_.name()) return error_response(404, "Storage pool not found");
    return sync_response(pool_object());
  }

  http::Response list_volumes(const Call& call) const {
    if (call.params.at("pool") != pool_.name()) return error_response(404, "Storage pool not found");
    auto names = instances_.names();
    if (!names) return error_response(names.error());
    nlohmann::json out = nlohmann::json::array();
    const std::string base = "/1.0/storage-pools/" + pool_.name() + "/volumes/container/";
    // Each instance's volume, then its snapshots' as "NAME/SNAP", as LXD lists them (berth reads
    // snapshot names from here).
    const auto add = [&](const std::string& volume, const std::string& instance) {
      if (call.recursion() == 0) {
        out.push_back(base + volume);
        return;
      }
      out.push_back({{"name", volume},
                     {"type", "container"},
                     {"content_type", "filesystem"},
                     {"description", ""},
                     {"config", nlohmann::json::object()},
                     {"location", "none"},
                     {"project", "default"},
                     {"created_at", "0001-01-01T00:00:00Z"},
                     {"used_by", {instance_url(instance)}}});
    };
    for (const auto& name : *names) {
      add(name, name);
      auto snaps = instances_.snapshot_names(name);
      if (!snaps) return error_response(snaps.error());
      for (const auto& snap : *snaps) add(name + "/" + snap, name);
    }
    return sync_response(out);
  }

 private:
  Instances& instances_;
  Operations& operations_;
  Database& db_;
  StoragePool& pool_;
  ImageFetcher fetch_;
  Migrations& migrations_;
};

}  // namespace

const std::vector<std::string>& instance_extensions() {
  // container_only_migration: `instance_only` of a copy (lxc copy --instance-only), here on one host.
  // snapshot_expiry_creation: `expires_at` of a new snapshot (lxc snapshot --no-expiry sends it).
  // container_push, container_push_target: migrations in push and relay mode (lxc copy --mode).
  // container_incremental_copy: lxc copy --refresh.
  static const std::vector<std::string> list = {"storage",
                                                "instances",
                                                "container_full",
                                                "api_filtering",
                                                "instance_get_full",
                                                "container_only_migration",
                                                "container_push",
                                                "container_push_target",
                                                "container_incremental_copy",
                                                "snapshot_expiry_creation"};
  return list;
}

std::optional<bool> filter_matches(const std::string& filter, const nlohmann::json& object, std::string& error) {
  std::istringstream in(filter);
  std::vector<std::string> words;
  for (std::string w; in >> w;) words.push_back(w);
  if (words.empty()) return true;
  // "FIELD OP VALUE" terms joined by "and": 3, 7, 11, ... words.
  if ((words.size() + 1) % 4 != 0) {
    error = "Invalid filter: " + filter;
    return std::nullopt;
  }
  bool all = true;
  for (std::size_t i = 0; i < words.size(); i += 4) {
    if (i + 2 >= words.size()) {
      error = "Invalid filter: " + filter;
      return std::nullopt;
    }
    const auto& field = words[i];
    const auto& op = words[i + 1];
    auto value = words[i + 2];
    if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') && value.back() == value.front()) {
      value = value.substr(1, value.size() - 2);
    }
    if (op != "eq" && op != "ne") {
      error = "Invalid filter operator \"" + op + "\" (berthd knows eq and ne)";
      return std::nullopt;
    }
    if (i + 3 < words.size() && words[i + 3] != "and") {
      error = "Invalid filter: only \"and\" joins terms in berthd (" + filter + ")";
      return std::nullopt;
    }
    std::string actual;
    const auto dot = field.find('.');
    if (dot != std::string::npos) {
      const auto map = field.substr(0, dot);
      const auto key = field.substr(dot + 1);
      if (object.contains(map) && object[map].is_object() && object[map].contains(key)) {
        const auto& v = object[map][key];
        actual = v.is_string() ? v.get<std::string>() : v.dump();
      }
    } else if (object.contains(field)) {
      const auto& v = object[field];
      actual = v.is_string() ? v.get<std::string>() : v.dump();
    }
    const bool equal = actual == value;
    all = all && (op == "eq" ? equal : !equal);
  }
  return all;
}

void add_instance_routes(Router& router, Instances& instances, Operations& operations, Database& db, StoragePool& pool,
                         ImageFetcher fetch, Migrations& migrations) {
  auto routes = std::make_shared<InstanceRoutes>(instances, operations, db, pool, std::move(fetch), migrations);
  const auto bind = [routes](http::Response (InstanceRoutes::*method)(const Call&) const) {
    return [routes, method](const Call& call) { return ((*routes).*method)(call); };
  };
  router.add("/1.0/instances", "GET", Access::trusted, bind(&InstanceRoutes::list));
  router.add("/1.0/instances", "POST", Access::trusted, bind(&InstanceRoutes::create));
  router.add("/1.0/instances/{name}", "GET", Access::trusted, bind(&InstanceRoutes::get));
  router.add("/1.0/instances/{name}", "PUT", Access::trusted,
             [routes](const Call& call) { return routes->update(call, false); });
  router.add("/1.0/instances/{name}", "PATCH", Access::trusted,
             [routes](const Call& call) { return routes->update(call, true); });
  router.add("/1.0/instances/{name}", "POST", Access::trusted, bind(&InstanceRoutes::rename));
  router.add("/1.0/instances/{name}", "DELETE", Access::trusted, bind(&InstanceRoutes::remove));
  router.add("/1.0/instances/{name}/state", "GET", Access::trusted, bind(&InstanceRoutes::get_state));
  router.add("/1.0/instances/{name}/state", "PUT", Access::trusted, bind(&InstanceRoutes::put_state));
  router.add("/1.0/instances/{name}/snapshots", "GET", Access::trusted, bind(&InstanceRoutes::list_snapshots));
  router.add("/1.0/instances/{name}/snapshots", "POST", Access::trusted, bind(&InstanceRoutes::create_snapshot));
  router.add("/1.0/instances/{name}/snapshots/{snapshot}", "GET", Access::trusted, bind(&InstanceRoutes::get_snapshot));
  router.add("/1.0/instances/{name}/snapshots/{snapshot}", "DELETE", Access::trusted,
             bind(&InstanceRoutes::remove_snapshot));
  router.add("/1.0/instances/{name}/snapshots/{snapshot}", "POST", Access::trusted,
             bind(&InstanceRoutes::rename_snapshot));
  router.add("/1.0/profiles", "GET", Access::trusted, bind(&InstanceRoutes::list_profiles));
  router.add("/1.0/profiles", "POST", Access::trusted, bind(&InstanceRoutes::create_profile));
  router.add("/1.0/profiles/{name}", "GET", Access::trusted, bind(&InstanceRoutes::get_profile));
  router.add("/1.0/profiles/{name}", "PUT", Access::trusted,
             [routes](const Call& call) { return routes->update_profile(call, false); });
  router.add("/1.0/profiles/{name}", "PATCH", Access::trusted,
             [routes](const Call& call) { return routes->update_profile(call, true); });
  router.add("/1.0/profiles/{name}", "POST", Access::trusted, bind(&InstanceRoutes::rename_profile));
  router.add("/1.0/profiles/{name}", "DELETE", Access::trusted, bind(&InstanceRoutes::delete_profile));
  router.add("/1.0/storage-pools", "GET", Access::trusted, bind(&InstanceRoutes::list_pools));
  router.add("/1.0/storage-pools/{pool}", "GET", Access::trusted, bind(&InstanceRoutes::get_pool));
  router.add("/1.0/storage-pools/{pool}/volumes", "GET", Access::trusted, bind(&InstanceRoutes::list_volumes));
}

}  // namespace berth::daemon::api
