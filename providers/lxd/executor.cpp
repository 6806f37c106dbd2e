#include "providers/lxd/executor.hpp"

#include <algorithm>
#include <functional>
#include <map>
#include <mutex>
#include <set>

#include <spdlog/spdlog.h>

#include "engine/model/provision.hpp"
#include "engine/util/random.hpp"
#include "providers/lxd/image_server.hpp"
#include "providers/lxd/instance_api.hpp"
#include "providers/lxd/journal.hpp"
#include "providers/lxd/migration.hpp"
#include "providers/lxd/operations.hpp"
#include "providers/lxd/url.hpp"
#include "providers/lxd/wire.hpp"

namespace berth::lxd {

namespace {

using model::DesiredState;
using model::LivePower;
using plan::ActionKind;
using wire::object_in;
using wire::text_in;

std::string status_text(const wire::Instance& i) {
  return i.status.empty() ? std::string{"?"} : i.status;
}

// A change's `after` is plan data that a damaged saved plan can give any shape: anything but the
// shape its path takes is refused, never coerced (an `after` of the wrong type must not become "no
// profiles" or "no device keys").
std::optional<model::ConfigMap> string_map_of(const nlohmann::json& j) {
  if (!j.is_object()) return std::nullopt;
  model::ConfigMap out;
  for (const auto& [k, v] : j.items()) {
    if (!v.is_string()) return std::nullopt;
    out.emplace(k, v.get<std::string>());
  }
  return out;
}

std::optional<std::vector<std::string>> strings_of(const nlohmann::json& j) {
  if (!j.is_array()) return std::nullopt;
  std::vector<std::string> out;
  for (const auto& v : j) {
    if (!v.is_string()) return std::nullopt;
    out.push_back(v.get<std::string>());
  }
  return out;
}

}  // namespace

// What image servers answered during one apply, shared by its actions (thread-safe): a fleet that
// launches many containers from one image reads the server's index once, not once per container
// (a public server's images.json is megabytes). Only answers that resolved are kept; a failed read
// is tried again by the next action.
class ServerImageCache {
 public:
  model::ServerImage resolve(const model::ServerImageQuery& query, const Timeouts& timeouts) {
    {
      std::lock_guard lock(mu_);
      if (const auto it = resolved_.find(query); it != resolved_.end()) return it->second;
    }
    model::ServerImage image = read_server_image(query, timeouts);  // not under the lock: it is slow
    if (image.error.empty()) {
      std::lock_guard lock(mu_);
      resolved_.emplace(query, image);
    }
    return image;
  }

  std::string problem(const model::ServerImageQuery& query, const std::string& fingerprint, const Timeouts& timeouts) {
    {
      std::lock_guard lock(mu_);
      if (listed_.contains({query, fingerprint})) return {};
    }
    std::string why = server_image_problem(query, fingerprint, timeouts);
    if (why.empty()) {
      std::lock_guard lock(mu_);
      listed_.insert({query, fingerprint});
    }
    return why;
  }

 private:
  std::mutex mu_;
  std::map<model::ServerImageQuery, model::ServerImage> resolved_;
  std::set<std::pair<model::ServerImageQuery, std::string>> listed_;
};

namespace {

// One execute() call: the action, its connections (one per remote it touches, opened on first
// use) and its journal. Nothing here outlives the call, so parallel actions share nothing (but the
// image server answers of the apply).
class Run {
 public:
  Run(const ClientConfig& config, const ExecutorOptions& options, const providers::ExecuteRequest& request,
      ServerImageCache& images)
      : config_(config),
        options_(options),
        images_(images),
        request_(request),
        action_(*request.action),
        journal_(request.journal, action_.id) {}

  Result<void> execute() {
    switch (action_.kind) {
      case ActionKind::launch: return launch();
      case ActionKind::update: return update();
      case ActionKind::restart: return restart();
      case ActionKind::finish_transfer: return finish_transfer();
      case ActionKind::undo_transfer: return undo_transfer();
      case ActionKind::start: return power(DesiredState::running);
      case ActionKind::unfreeze: return power(DesiredState::running);
      case ActionKind::stop: return power(DesiredState::stopped);
      case ActionKind::freeze: return power(DesiredState::frozen);
      case ActionKind::snapshot: return snapshot();
      case ActionKind::delete_snapshot: return delete_snapshot();
      case ActionKind::copy: return copy();
      case ActionKind::move: return move();
      case ActionKind::delete_: return delete_instance();
      case ActionKind::adopt: return adopt();
      case ActionKind::recreate: return recreate();
      case ActionKind::push: return push();
      case ActionKind::exec: return exec();
    }
    return make_error(ErrorKind::invalid_argument, "unknown action kind");
  }

 private:
  // --- plumbing ------------------------------------------------------------------------------

  // A connection to a remote whose requests are about `project` (each carries ?project= unless it
  // is the default): one per remote and project the action touches.
  Result<RemoteHandle*> remote(const std::string& name, const std::string& project) {
    const auto key = std::make_pair(name, project);
    if (const auto it = remotes_.find(key); it != remotes_.end()) return &it->second;
    if (request_.fleet == nullptr) return make_error(ErrorKind::invalid_argument, "no fleet given");
    const auto spec = request_.fleet->remotes.find(name);
    if (spec == request_.fleet->remotes.end()) {
      return make_error(ErrorKind::invalid_argument, "remote " + name + ": not declared in the fleet file");
    }
    auto handle = open_remote(config_, spec->second, options_.timeouts);
    if (!handle) return handle.error();
    handle->client.set_project(project);
    return &remotes_.emplace(key, std::move(*handle)).first->second;
  }

  Result<RemoteHandle*> remote(const plan::Address& a) { return remote(a.remote, a.project); }

  // Where an instance is created: on an LXD cluster, on the action's member (?target=).
  std::string instances_target() const {
    if (action_.member.empty()) return "/1.0/instances";
    return "/1.0/instances?target=" + path_segment(action_.member);
  }

  // The project an image is looked up in: the container's, when the image lives on the container's
  // own remote (a project with features.images has its own images); else the image remote's.
  std::string image_project(const model::ImageRef& image) const {
    if (image.remote == action_.address.remote) return action_.address.project;
    if (request_.fleet != nullptr) {
      if (const auto spec = request_.fleet->remotes.find(image.remote); spec != request_.fleet->remotes.end()) {
        return spec->second.project;
      }
    }
    return std::string{model::default_project};
  }

  WaitOptions wait(std::string what) {
    WaitOptions w;
    w.what = std::move(what);
    w.poll = options_.poll;
    w.cancel = request_.cancel;
    w.on_progress = [this, m = w.what](const ProgressReading& p) { report(m + ": " + p.text, &p); };
    return w;
  }

  // `total`: what `p`'s bytes count up to, when known.
  void report(const std::string& message, const ProgressReading* p = nullptr,
              std::optional<std::uint64_t> total = std::nullopt) {
    if (!request_.progress) return;
    providers::Progress progress;
    progress.action_id = action_.id;
    progress.message = message;
    if (p != nullptr) {
      progress.bytes = p->bytes;
      progress.bytes_per_second = p->bytes_per_second;
      if (p->bytes) progress.total_bytes = total;
    }
    request_.progress(progress);
  }

  // The bytes the source's volume holds, as its state says (disk.root.usage), when the host
  // reports it (berthd does; LXD's dir pools do not): a transfer's total.
  std::optional<std::uint64_t> volume_usage(RemoteHandle& r, const std::string& name) {
    auto res = r.client.get("/1.0/instances/" + path_segment(name) + "/state");
    if (!res || !res->metadata.is_object()) return std::nullopt;
    const auto disk = res->metadata.find("disk");
    if (disk == res->metadata.end() || !disk->is_object()) return std::nullopt;
    const auto root = disk->find("root");
    if (root == disk->end() || !root->is_object()) return std::nullopt;
    const auto usage = root->find("usage");
    if (usage == root->end() || !usage->is_number_unsigned() || usage->get<std::uint64_t>() == 0) return std::nullopt;
    return usage->get<std::uint64_t>();
  }

  bool cancelled() const { return request_.cancel != nullptr && request_.cancel->load(); }

  static nlohmann::json where(const RemoteHandle& r, const std::string& instance) {
    nlohmann::json j = {{"remote", r.name()}, {"instance", instance}};
    if (r.client.project() != model::default_project) j["project"] = r.client.project();
    return j;
  }

  static nlohmann::json address_json(const plan::Address& a) {
    nlohmann::json j = {{"remote", a.remote}, {"instance", a.container}};
    if (a.project != model::default_project) j["project"] = a.project;
    if (a.snapshot) j["snapshot"] = *a.snapshot;
    return j;
  }

  Result<InstanceRead> must_exist(RemoteHandle& r, const std::string& name) {
    auto read = get_instance(r, name);
    if (!read) return read.error();
    if (!*read) return r.error(make_error(ErrorKind::not_found, name + " does not exist; plan again"));
    return std::move(**read);
  }

  // --- power -----------------------------------------------------------------------------------

  Result<LivePower> power_of(RemoteHandle& r, const std::string& name) {
    auto read = must_exist(r, name);
    if (!read) return read.error();
    const int code = read->instance.status_code;
    const LivePower p = model::live_power_from_status_code(code);
    if (p == LivePower::other) {
      return r.error(make_error(ErrorKind::conflict, name + " is " + status_text(read->instance) + " (status " +
                                                         std::to_string(code) +
                                                         "); wait for it to settle, then plan again"));
    }
    return p;
  }

  // `extra` is merged into the journal detail (a move's transfer, so recovery knows the context).
  Result<void> set_state(RemoteHandle& r, const std::string& name, const std::string& step, const std::string& verb,
                         int timeout, bool force, const nlohmann::json& extra = nlohmann::json::object()) {
    report(step + " " + name);
    nlohmann::json detail = where(r, name);
    detail.update(extra);
    return journal_.step(step, detail, [&]() -> Result<void> {
      return change_state(r, name, verb, timeout, force, wait(step + " " + name));
    });
  }

  // Graceful first, so services shut down cleanly; forced when the grace period runs out.
  Result<void> stop(RemoteHandle& r, const std::string& name, LivePower now) {
    if (now == LivePower::frozen) {
      if (auto u = set_state(r, name, "unfreeze", "unfreeze", -1, false); !u) return u;
    }
    const int grace = static_cast<int>(options_.stop_timeout.count());
    auto graceful = set_state(r, name, "stop", "stop", grace, false);
    if (graceful) return graceful;
    if (is_cancelled(graceful.error())) return graceful;
    spdlog::debug("{}: graceful stop failed ({}); forcing", name, graceful.error().message);
    return set_state(r, name, "stop-force", "stop", -1, true);
  }

  Result<void> reach_state(RemoteHandle& r, const std::string& name, DesiredState want) {
    auto now = power_of(r, name);
    if (!now) return now.error();
    switch (want) {
      case DesiredState::running:
        if (*now == LivePower::frozen) return set_state(r, name, "unfreeze", "unfreeze", -1, false);
        if (*now == LivePower::stopped) return set_state(r, name, "start", "start", -1, false);
        return {};
      case DesiredState::frozen:
        if (*now == LivePower::stopped) {
          if (auto s = set_state(r, name, "start", "start", -1, false); !s) return s;
          return set_state(r, name, "freeze", "freeze", -1, false);
        }
        if (*now == LivePower::running) return set_state(r, name, "freeze", "freeze", -1, false);
        return {};
      case DesiredState::stopped:
        if (*now == LivePower::stopped) return {};
        return stop(r, name, *now);
      case DesiredState::absent: break;
    }
    return {};
  }

  Result<void> power(DesiredState want) {
    auto r = remote(action_.address);
    if (!r) return r.error();
    return reach_state(**r, action_.address.container, want);
  }

  // --- launch ----------------------------------------------------------------------------------

  // The fingerprint the plan's image alias points at now, on the image's remote.
  Result<std::string> image_fingerprint(RemoteHandle& img, const model::ImageRef& image) {
    auto alias = img.client.get("/1.0/images/aliases/" + path_segment(image.alias));
    if (!alias) {
      if (alias.error().kind == ErrorKind::server && alias.error().http_status == 404) {
        return make_error(ErrorKind::not_found,
                          "image alias '" + image.alias + "' not found on remote '" + image.remote + "'");
      }
      return img.error(alias.error());
    }
    auto parsed_alias = wire::parse_image_alias(alias->metadata);
    if (!parsed_alias) {
      return img.error(make_error(ErrorKind::protocol, "GET /1.0/images/aliases/" + path_segment(image.alias) + ": " +
                                                           parsed_alias.error().message));
    }
    if (parsed_alias->target.empty()) {
      return img.error(make_error(ErrorKind::protocol, "image alias '" + image.alias + "' has no target"));
    }
    return parsed_alias->target;
  }

  // The image to launch from an image server: the pinned fingerprint, else what the alias names
  // now for the target host's architecture (read again, as a remote's alias is). The host is given
  // the fingerprint, not the alias: with images.auto_update_interval set (LXD's default), LXD 5.0
  // launches an alias from the image it cached earlier for the same server and alias
  // (lxd/daemon_images.go, PreferCached), so a recreate after the alias moved would get the old
  // image again.
  Result<std::string> server_image_fingerprint(RemoteHandle& dst, const model::ImageRef& image) {
    if (image.fingerprint) {
      // The server must still list it: a recreate deletes nothing before it knows.
      const std::string problem = images_.problem({*image.server, image.alias}, *image.fingerprint, options_.timeouts);
      if (!problem.empty()) return make_error(ErrorKind::not_found, problem);
      return *image.fingerprint;
    }
    auto env = server_environment(dst);
    if (!env) return env.error();
    const model::ServerImage found = images_.resolve({*image.server, image.alias}, options_.timeouts);
    if (!found.error.empty()) return make_error(ErrorKind::not_found, found.error);
    auto fingerprint = model::fingerprint_for(found, env->kernel_architecture);
    if (!fingerprint || fingerprint->empty()) {
      return make_error(ErrorKind::not_found, "image server " + image.server->url + " has no image '" + image.alias +
                                                  "' for architecture " + env->kernel_architecture + " (the " +
                                                  dst.name() + " host's)");
    }
    return *fingerprint;
  }

  // The body that creates the action's instance from `source`: its declared spec, marked as this
  // fleet's (LXD's defaults where the file leaves ephemeral and description out).
  nlohmann::json create_body(const nlohmann::json& source) const {
    nlohmann::json config = action_.config;
    if (request_.fleet != nullptr) config[std::string{model::fleet_key}] = request_.fleet->name;
    return {{"name", action_.address.container},
            {"architecture", ""},
            {"config", config},
            {"devices", nlohmann::json(action_.devices)},
            {"ephemeral", action_.ephemeral.value_or(false)},
            {"profiles", action_.profiles ? nlohmann::json(*action_.profiles) : nlohmann::json()},
            {"stateful", false},
            {"description", action_.description.value_or("")},
            {"type", "container"},
            {"instance_type", ""},
            {"source", source}};
  }

  Result<void> launch_from_server() {
    const auto& image = *action_.image;
    const std::string& name = action_.address.container;
    auto dst = remote(action_.address);
    if (!dst) return dst.error();
    auto resolved = server_image_fingerprint(**dst, image);
    if (!resolved) return resolved.error();
    const std::string fingerprint = *resolved;
    // As `lxc launch` does for a public image on an image server: the host fetches it itself.
    const nlohmann::json source = {{"type", "image"},
                                   {"mode", "pull"},
                                   {"server", image.server->url},
                                   {"protocol", model::to_string(image.server->protocol)},
                                   {"fingerprint", fingerprint},
                                   {"certificate", image.server->certificate}};
    const nlohmann::json body = create_body(source);
    report("creating " + name + " from " + model::to_string(image));
    auto created = journal_.step("create",
                                 {{"remote", action_.address.remote},
                                  {"instance", name},
                                  {"project", action_.address.project},
                                  {"image",
                                   {{"server", image.server->url},
                                    {"protocol", model::to_string(image.server->protocol)},
                                    {"alias", image.alias},
                                    {"fingerprint", fingerprint}}}},
                                 [&]() -> Result<void> {
                                   auto op = call_and_wait(**dst, Method::post, instances_target(), body,
                                                           wait("creating " + name));
                                   if (!op) return op.error();
                                   return {};
                                 });
    if (!created) return created;
    if (action_.target_state) return reach_state(**dst, name, *action_.target_state);
    return {};
  }

  Result<void> launch() {
    if (!action_.image) return make_error(ErrorKind::invalid_argument, action_.id + ": no image in the plan");
    if (action_.image->server) return launch_from_server();
    const auto& image = *action_.image;
    const std::string& name = action_.address.container;
    auto dst = remote(action_.address);
    if (!dst) return dst.error();
    auto img = remote(image.remote, image_project(image));
    if (!img) return img.error();

    auto resolved = image_fingerprint(**img, image);
    if (!resolved) return resolved.error();
    const std::string fingerprint = *resolved;
    nlohmann::json source;
    // The image secret is a token operation that LXD keeps until it is used; a target that already
    // has the image cached never uses it, so it is revoked once the launch is over.
    std::string secret_op;
    RemoteHandle* secret_op_remote = nullptr;
    if (image.remote == action_.address.remote) {
      source = nlohmann::json{{"type", "image"}, {"fingerprint", fingerprint}, {"certificate", ""}};
    } else {
      // As `lxc launch img-remote:alias target:c1` does for a private image on an LXD server: the
      // target downloads it from the image remote with a one-time secret.
      auto env = server_environment(**img);
      if (!env) return env.error();
      auto url = reachable_url((*img)->spec, *env);
      if (!url) return url.error();
      secret_op_remote = *img;
      auto secret = journal_.step(
          "image-secret", {{"remote", image.remote}, {"fingerprint", fingerprint}}, [&]() -> Result<std::string> {
            auto res = (*img)->client.request(Method::post, "/1.0/images/" + path_segment(fingerprint) + "/secret");
            if (!res) return (*img)->error(res.error());
            secret_op = res->operation;
            auto op = wire::parse_operation(res->metadata);
            auto value = op ? wire::string_in(op->metadata, "secret") : std::nullopt;
            if (!value) {
              return (*img)->error(make_error(ErrorKind::protocol, "the image secret operation has no secret"));
            }
            return *value;
          });
      if (!secret) return secret.error();
      source = nlohmann::json{{"type", "image"},
                              {"mode", "pull"},
                              {"server", *url},
                              {"protocol", "lxd"},
                              {"fingerprint", fingerprint},
                              {"secret", *secret},
                              {"certificate", env->certificate}};
    }

    const nlohmann::json body = create_body(source);
    report("creating " + name + " from " + image.remote + ":" + image.alias);
    auto created = journal_.step(
        "create",
        {{"remote", action_.address.remote},
         {"instance", name},
         {"project", action_.address.project},
         {"image", {{"remote", image.remote}, {"alias", image.alias}, {"fingerprint", fingerprint}}}},
        [&]() -> Result<void> {
          auto op = call_and_wait(**dst, Method::post, instances_target(), body, wait("creating " + name));
          if (!op) return op.error();
          return {};
        });
    if (!secret_op.empty() && secret_op_remote != nullptr) {
      (void)journal_.step("image-secret-revoke", {{"remote", image.remote}, {"fingerprint", fingerprint}},
                          [&]() -> Result<void> {
                            auto r = secret_op_remote->client.request(
                                Method::delete_, "/1.0/operations/" + path_segment(operation_id(secret_op)));
                            // Gone (404) or already used (400: not running) is what we want.
                            if (!r && !(r.error().kind == ErrorKind::server &&
                                        (r.error().http_status == 404 || r.error().http_status == 400))) {
                              return secret_op_remote->error(r.error());
                            }
                            return {};
                          });
    }
    if (!created) return created;
    if (action_.target_state) return reach_state(**dst, name, *action_.target_state);
    return {};
  }

  // --- update ----------------------------------------------------------------------------------

  // The instance's writable part (PUT body) as read, with `changes` applied: "config.K" set or
  // (null) removed, "devices.D" replaced or removed, "profiles" replaced. Keys the plan does not
  // name are sent back as they are, so nothing else on the instance changes; an answer that lacks
  // a writable field is refused rather than sent back with that field reset.
  Result<nlohmann::json> put_body(const RemoteHandle& r, const wire::Instance& inst,
                                  const std::vector<plan::Change>& changes) const {
    if (!inst.missing.empty()) {
      return r.error(make_error(ErrorKind::protocol, "the daemon's answer for " + inst.name + " has no " +
                                                         inst.missing.front() + "; it is not updated"));
    }
    const auto bad = [&](const plan::Change& c) {
      return make_error(ErrorKind::invalid_argument,
                        action_.id + ": the change of " + c.path + " has a value of the wrong type; plan again");
    };
    wire::InstancePut body = inst;
    for (const auto& c : changes) {
      if (c.path == "ephemeral") {
        if (!c.after.is_boolean()) return bad(c);
        body.ephemeral = c.after.get<bool>();
        continue;
      }
      if (c.path == "description") {
        if (!c.after.is_string()) return bad(c);
        body.description = c.after.get<std::string>();
        continue;
      }
      if (c.path == "profiles") {
        auto profiles = strings_of(c.after);
        if (!profiles) return bad(c);
        body.profiles = std::move(*profiles);
        continue;
      }
      const auto dot = c.path.find('.');
      if (dot == std::string::npos) continue;
      const std::string section = c.path.substr(0, dot);
      const std::string key = c.path.substr(dot + 1);
      if (section == "config") {
        if (c.after.is_null()) {
          body.config.erase(key);
        } else if (c.after.is_string()) {
          body.config[key] = c.after.get<std::string>();
        } else {
          return bad(c);
        }
      } else if (section == "devices") {
        if (c.after.is_null()) {
          body.devices.erase(key);
        } else if (auto keys = string_map_of(c.after)) {
          body.devices[key] = std::move(*keys);
        } else {
          return bad(c);
        }
      }
    }
    return wire::to_json(body);
  }

  // One PUT with the instance's ETag; a 412 means it changed since it was read.
  Result<void> put_instance(RemoteHandle& r, const std::string& name, const InstanceRead& read,
                            const nlohmann::json& body, const std::string& step, const nlohmann::json& detail) {
    Headers headers;
    if (!read.etag.empty()) headers.emplace_back("If-Match", read.etag);
    return journal_.step(step, detail, [&]() -> Result<void> {
      auto op = call_and_wait(r, Method::put, "/1.0/instances/" + path_segment(name), body, wait("updating " + name),
                              headers);
      if (!op) {
        if (op.error().kind == ErrorKind::server && op.error().http_status == 412) {
          return r.error(make_error(ErrorKind::conflict, name + " changed since it was read; plan again"));
        }
        return op.error();
      }
      return {};
    });
  }

  // The instance as it was before the change (ETag, status), so that recovery can tell whether
  // anyone changed it since.
  static nlohmann::json before_of(const InstanceRead& read) {
    return {{"etag", read.etag}, {"status", read.instance.status}};
  }

  nlohmann::json change_detail(const RemoteHandle& r, const std::string& name, const InstanceRead& read) const {
    nlohmann::json detail = where(r, name);
    detail["before"] = before_of(read);
    nlohmann::json keys = nlohmann::json::array();
    for (const auto& c : action_.changes) keys.push_back(c.path);
    detail["changes"] = keys;
    return detail;
  }

  // The plan's changes in one PUT with the instance's ETag; with `restart_pending`, the mark goes
  // in with them.
  Result<void> put_changes(RemoteHandle& r, const std::string& name, bool restart_pending) {
    auto read = must_exist(r, name);
    if (!read) return read.error();
    auto body = put_body(r, read->instance, action_.changes);
    if (!body) return body.error();
    if (restart_pending) (*body)["config"][std::string{model::restart_pending_key}] = "true";
    report("updating " + name);
    return put_instance(r, name, *read, *body, "update", change_detail(r, name, *read));
  }

  // Keys that take effect in place. Consent is not this action's concern: restart-needing keys
  // are never in it (the plan puts them in a `restart` action).
  Result<void> update() {
    auto r = remote(action_.address);
    if (!r) return r.error();
    return put_changes(**r, action_.address.container, false);
  }

  // Keys that take effect on restart, then the restart. The config goes in with a restart-pending
  // mark in the same PUT, and the mark comes off only after the restart: if berth dies in between,
  // the next plan finds the mark and plans the restart again. The walk runs this action only with
  // consent (the plan value decides that, once).
  Result<void> restart() {
    const std::string& name = action_.address.container;
    auto r = remote(action_.address);
    if (!r) return r.error();
    if (auto put = put_changes(**r, name, true); !put) return put;

    auto now = power_of(**r, name);
    if (!now) return now.error();
    if (*now != LivePower::stopped) {
      const bool was_frozen = *now == LivePower::frozen;
      if (was_frozen) {
        if (auto u = set_state(**r, name, "unfreeze", "unfreeze", -1, false); !u) return u;
      }
      const int grace = static_cast<int>(options_.stop_timeout.count());
      auto restarted = set_state(**r, name, "restart", "restart", grace, false);
      if (!restarted && !is_cancelled(restarted.error())) {
        restarted = set_state(**r, name, "restart", "restart", -1, true);
      }
      if (!restarted) return restarted;
      if (was_frozen) {
        if (auto f = set_state(**r, name, "freeze", "freeze", -1, false); !f) return f;
      }
    }
    // The restart happened (or a stopped instance applies the config at its next start).
    auto after = must_exist(**r, name);
    if (!after) return after.error();
    const std::vector<plan::Change> clear = {{"config." + std::string{model::restart_pending_key}, "true", nullptr}};
    auto body = put_body(**r, after->instance, clear);
    if (!body) return body.error();
    return put_instance(**r, name, *after, *body, "clear-restart-pending", where(**r, name));
  }

  // --- snapshots -------------------------------------------------------------------------------

  Result<void> snapshot() {
    const std::string& name = action_.address.container;
    if (!action_.address.snapshot) return make_error(ErrorKind::invalid_argument, action_.id + ": no snapshot name");
    const std::string& snap = *action_.address.snapshot;
    auto r = remote(action_.address);
    if (!r) return r.error();
    auto existing = (*r)->client.get("/1.0/instances/" + path_segment(name) + "/snapshots/" + path_segment(snap));
    if (existing) return {};  // already there: a re-run after a crash
    if (!(existing.error().kind == ErrorKind::server && existing.error().http_status == 404)) {
      return (*r)->error(existing.error());
    }
    nlohmann::json detail = where(**r, name);
    detail["snapshot"] = snap;
    report("snapshotting " + name + "/" + snap);
    return journal_.step("snapshot", detail, [&]() -> Result<void> {
      auto op = call_and_wait(**r, Method::post, "/1.0/instances/" + path_segment(name) + "/snapshots",
                              nlohmann::json{{"name", snap}, {"stateful", false}}, wait("snapshotting " + name));
      if (!op) return op.error();
      return {};
    });
  }

  Result<void> delete_snapshot() {
    const std::string& name = action_.address.container;
    if (!action_.address.snapshot) return make_error(ErrorKind::invalid_argument, action_.id + ": no snapshot name");
    const std::string& snap = *action_.address.snapshot;
    auto r = remote(action_.address);
    if (!r) return r.error();
    nlohmann::json detail = where(**r, name);
    detail["snapshot"] = snap;
    report("deleting snapshot " + name + "/" + snap);
    return journal_.step("delete-snapshot", detail, [&]() -> Result<void> {
      auto op = call_and_wait(**r, Method::delete_,
                              "/1.0/instances/" + path_segment(name) + "/snapshots/" + path_segment(snap), std::nullopt,
                              wait("deleting snapshot " + name + "/" + snap));
      if (!op && !(op.error().kind == ErrorKind::server && op.error().http_status == 404)) return op.error();
      return {};
    });
  }

  // --- delete ----------------------------------------------------------------------------------

  Result<void> remove(RemoteHandle& r, const std::string& name, const std::string& step,
                      const nlohmann::json& extra = nlohmann::json::object()) {
    auto now = get_instance(r, name);
    if (!now) return now.error();
    if (!*now) return {};
    const LivePower p = model::live_power_from_status_code((*now)->instance.status_code);
    if (p == LivePower::running || p == LivePower::frozen) {
      if (auto s = set_state(r, name, "stop-force", "stop", -1, true, extra); !s) return s;
    }
    report("deleting " + name);
    nlohmann::json detail = where(r, name);
    detail.update(extra);
    return journal_.step(step, detail, [&]() -> Result<void> {
      auto op = call_and_wait(r, Method::delete_, "/1.0/instances/" + path_segment(name), std::nullopt,
                              wait("deleting " + name));
      if (!op && !(op.error().kind == ErrorKind::server && op.error().http_status == 404)) return op.error();
      return {};
    });
  }

  Result<void> delete_instance() {
    const std::string& name = action_.address.container;
    auto r = remote(action_.address);
    if (!r) return r.error();
    auto read = get_instance(**r, name);
    if (!read) return read.error();
    if (!*read) return {};
    // The plan only deletes what this fleet owns; checked again here because the host may have
    // changed since the plan was made.
    if (auto owned = check_owner(**r, (*read)->instance, true); !owned) return owned;
    return remove(**r, name, "delete", {{"before", before_of(**read)}});
  }

  // The fleet mark on an instance, or the refusal when another fleet's (or none, with `must_own`).
  Result<void> check_owner(const RemoteHandle& r, const wire::Instance& inst, bool must_own) const {
    const auto owner = inst.config.find(std::string{model::fleet_key});
    const std::string fleet = request_.fleet != nullptr ? request_.fleet->name : std::string{};
    if (owner == inst.config.end()) {
      if (!must_own) return {};
      return r.error(
          make_error(ErrorKind::rejected, inst.name + " is not owned by fleet '" + fleet + "'; not changed"));
    }
    if (owner->second != fleet) {
      return r.error(make_error(ErrorKind::rejected, inst.name + " is owned by fleet '" + owner->second +
                                                         "' since the plan was made; not changed"));
    }
    return {};
  }

  // The action's instance as read now, with its remote: refused unless this fleet owns it (with
  // `must_own`), or when another fleet does.
  struct Checked {
    RemoteHandle* remote = nullptr;
    InstanceRead read;
  };
  Result<Checked> checked_instance(bool must_own) {
    auto r = remote(action_.address);
    if (!r) return r.error();
    auto read = must_exist(**r, action_.address.container);
    if (!read) return read.error();
    if (auto owned = check_owner(**r, read->instance, must_own); !owned) return owned.error();
    return Checked{*r, std::move(*read)};
  }

  // Marks the instance as this fleet's, with the plan's changes, in one PUT: refused if another
  // fleet claimed it since the plan was made.
  Result<void> adopt() {
    const std::string& name = action_.address.container;
    auto checked = checked_instance(false);
    if (!checked) return checked.error();
    auto& [r, read] = *checked;
    auto body = put_body(*r, read.instance, action_.changes);
    if (!body) return body.error();
    report("adopting " + name);
    return put_instance(*r, name, read, *body, "adopt", change_detail(*r, name, read));
  }

  // Deletes the instance (with its snapshots) and launches it anew from the plan's image and spec.
  // Only what this fleet owns; a crash in between leaves no instance, which the next plan launches.
  Result<void> recreate() {
    const std::string& name = action_.address.container;
    auto r = remote(action_.address);
    if (!r) return r.error();
    auto read = get_instance(**r, name);
    if (!read) return read.error();
    if (*read) {
      if (auto owned = check_owner(**r, (*read)->instance, true); !owned) return owned;
      // Nothing is deleted unless the image it is launched from again is there now (and, from
      // another remote, that remote answers): else the container would be lost and nothing made.
      if (!action_.image) return make_error(ErrorKind::invalid_argument, action_.id + ": no image in the plan");
      if (action_.image->server) return recreate_from_server(**r, name, **read);
      auto img = remote(action_.image->remote, image_project(*action_.image));
      if (!img) return img.error();
      if (auto fp = image_fingerprint(**img, *action_.image); !fp) return fp.error();
      if (action_.image->remote != action_.address.remote) {
        auto env = server_environment(**img);
        if (!env) return env.error();
        if (auto url = reachable_url((*img)->spec, *env); !url) return url.error();
      }
      if (auto removed = remove(**r, name, "recreate-delete", {{"before", before_of(**read)}}); !removed) {
        return removed;
      }
    }
    return launch();
  }

  // --- files and commands ----------------------------------------------------------------------

  // Sets entries of one of berth's digest records (user.berth.files, user.berth.exec) in a PUT
  // with the instance's ETag; entries berth no longer declares are dropped when `keep` says so.
  Result<void> record_digests(RemoteHandle& r, const std::string& name, std::string_view key,
                              const model::DigestRecord& set, const std::function<bool(const std::string&)>& keep,
                              const std::string& step) {
    auto read = must_exist(r, name);
    if (!read) return read.error();
    model::DigestRecord record;
    if (const auto it = read->instance.config.find(std::string{key}); it != read->instance.config.end()) {
      record = model::parse_digest_record(it->second).value_or(model::DigestRecord{});
    }
    std::erase_if(record, [&](const auto& entry) { return !keep(entry.first); });
    for (const auto& [k, v] : set) record[k] = v;
    const std::vector<plan::Change> change = {{"config." + std::string{key}, nullptr, model::record_text(record)}};
    auto body = put_body(r, read->instance, change);
    if (!body) return body.error();
    return put_instance(r, name, *read, *body, step, where(r, name));
  }

  // The digest the plan records for `path` ("files./etc/motd", "exec.init"); "unknown" when none.
  std::string planned_digest(const std::string& path) const {
    for (const auto& c : action_.changes) {
      if (c.path == path && c.after.is_string()) return c.after.get<std::string>();
    }
    return std::string{model::unknown_digest};
  }

  // Pushes the plan's files, then records their digests (and forgets files no longer declared).
  Result<void> push() {
    const std::string& name = action_.address.container;
    auto checked = checked_instance(true);
    if (!checked) return checked.error();
    RemoteHandle& r = *checked->remote;
    model::DigestRecord pushed;
    for (const auto& file : action_.files) {
      if (cancelled()) return cancelled_error("pushing files into " + name);
      report("pushing " + file.path);
      nlohmann::json detail = where(r, name);
      detail["path"] = file.path;
      auto done = journal_.step("push", detail, [&]() -> Result<void> { return push_file(r, name, file); });
      if (!done) return done;
      pushed[file.path] = planned_digest("files." + file.path);
    }
    const auto* declared = declared_container();
    return record_digests(
        r, name, model::files_key, pushed,
        [&](const std::string& path) { return declared == nullptr || declared->files.count(path) != 0; },
        "record-files");
  }

  const model::ContainerSpec* declared_container() const {
    if (request_.fleet == nullptr) return nullptr;
    const auto it = request_.fleet->containers.find(action_.address.container);
    return it == request_.fleet->containers.end() ? nullptr : &it->second;
  }

  // Runs the plan's command with recorded output; a zero exit (or allow_failure) records it as run.
  Result<void> exec() {
    if (!action_.exec) return make_error(ErrorKind::invalid_argument, action_.id + ": no command in the plan");
    const auto& e = *action_.exec;
    const std::string& name = action_.address.container;
    auto checked = checked_instance(true);
    if (!checked) return checked.error();
    RemoteHandle& r = *checked->remote;
    const InstanceRead& read = checked->read;
    if (model::live_power_from_status_code(read.instance.status_code) != LivePower::running) {
      return r.error(make_error(ErrorKind::conflict, name + " is " + status_text(read.instance) +
                                                         ", not running; the command " + e.name + " did not run"));
    }
    report("running " + e.name);
    WaitOptions w = wait("running " + e.name + " in " + name);
    w.stall_timeout = std::chrono::hours(24);  // a command reports no progress while it runs
    nlohmann::json detail = where(r, name);
    detail["command"] = e.name;
    CommandResult result;
    auto ran = journal_.step("exec", detail, [&]() -> Result<void> {
      auto res = run_command(r, name, e, w, max_command_output);
      if (!res) return res.error();
      result = std::move(*res);
      return {};
    });
    if (!ran) return ran;
    command_ = providers::CommandOutput{result.exit_code, std::move(result.out), std::move(result.err), result.cut};
    if (result.exit_code != 0 && !e.allow_failure) {
      return r.error(make_error(ErrorKind::rejected, e.name + " exited with " + std::to_string(result.exit_code) +
                                                         " in " + name + "; it is run again by the next apply"));
    }
    const model::DigestRecord ran_now = {{e.name, planned_digest("exec." + e.name)}};
    const auto* declared = declared_container();
    return record_digests(
        r, name, model::exec_key, ran_now,
        [&](const std::string& n) {
          return declared == nullptr || std::any_of(declared->exec.begin(), declared->exec.end(),
                                                    [&](const model::ExecSpec& x) { return x.name == n; });
        },
        "record-exec");
  }

 public:
  // What the command of an exec action did, once it ran.
  std::optional<providers::CommandOutput> command_;

 private:
  static constexpr std::size_t max_command_output = 64 * 1024;

  // A recreate from an image server deletes nothing before the host has the image: the server
  // answering berth is not enough, because LXD 5.0 reads a simplestreams server through its own
  // cache of index.json and images.json, kept an hour (client/connection.go
  // ConnectSimpleStreams; lxd/daemon_images.go: CacheExpiry), and cannot fetch a version published
  // since. So the host fetches the image into its store first (POST /1.0/images, as `lxc image
  // copy` does); if it cannot, the container stays as it is. An image fetched only for this is
  // removed from the store again once the container is made from it.
  Result<void> recreate_from_server(RemoteHandle& r, const std::string& name, const InstanceRead& read) {
    const auto& image = *action_.image;
    auto resolved = server_image_fingerprint(r, image);
    if (!resolved) return resolved.error();
    const std::string fingerprint = *resolved;
    auto present = r.client.get("/1.0/images/" + path_segment(fingerprint));
    if (!present && !(present.error().kind == ErrorKind::server && present.error().http_status == 404)) {
      return r.error(present.error());
    }
    const bool fetched = !present;
    const nlohmann::json image_detail = {{"server", image.server->url},
                                         {"protocol", model::to_string(image.server->protocol)},
                                         {"fingerprint", fingerprint}};
    if (fetched) {
      report("fetching image " + fingerprint.substr(0, 12) + " onto " + r.name());
      const nlohmann::json body = {{"source",
                                    {{"type", "image"},
                                     {"mode", "pull"},
                                     {"server", image.server->url},
                                     {"protocol", model::to_string(image.server->protocol)},
                                     {"fingerprint", fingerprint},
                                     {"certificate", image.server->certificate}}}};
      auto got = journal_.step("image-fetch", {{"remote", r.name()}, {"instance", name}, {"image", image_detail}},
                               [&]() -> Result<void> {
                                 auto op = call_and_wait(r, Method::post, "/1.0/images", body,
                                                         wait("fetching image " + fingerprint.substr(0, 12)));
                                 if (!op) return op.error();
                                 return {};
                               });
      if (!got) {
        return make_error(got.error().kind,
                          got.error().message + "; " + name + " was not deleted. The host reads an image server " +
                              "through a cache it keeps for an hour, so an image published since may not be " +
                              "visible to it yet: apply again later");
      }
    }
    if (auto removed = remove(r, name, "recreate-delete", {{"before", before_of(read)}}); !removed) return removed;
    auto launched = launch();
    if (fetched) {
      (void)journal_.step("image-fetch-remove", {{"remote", r.name()}, {"instance", name}, {"image", image_detail}},
                          [&]() -> Result<void> {
                            auto op = call_and_wait(r, Method::delete_, "/1.0/images/" + path_segment(fingerprint),
                                                    std::nullopt, wait("removing the fetched image"));
                            if (!op && !(op.error().kind == ErrorKind::server && op.error().http_status == 404)) {
                              return op.error();
                            }
                            return {};
                          });
    }
    return launched;
  }

  // --- copy and move ---------------------------------------------------------------------------

  Result<void> copy() {
    if (!action_.source) return make_error(ErrorKind::invalid_argument, action_.id + ": no source in the plan");
    const plan::Address& from = *action_.source;
    const std::string& name = action_.address.container;
    auto dst = remote(action_.address);
    if (!dst) return dst.error();
    auto src = remote(from);
    if (!src) return src.error();
    // Read what is copied: the instance, or the snapshot (its config, devices, profiles).
    const std::string object_path = "/1.0/instances/" + path_segment(from.container) +
                                    (from.snapshot ? "/snapshots/" + path_segment(*from.snapshot) : "");
    auto read = (*src)->client.get(object_path);
    if (!read) {
      if (read.error().kind == ErrorKind::server && read.error().http_status == 404) {
        return (*src)->error(make_error(ErrorKind::not_found, plan::to_string(from) + " does not exist"));
      }
      return (*src)->error(read.error());
    }
    auto object = wire::parse_instance(read->metadata);
    if (!object) {
      return (*src)->error(make_error(ErrorKind::protocol, "GET " + object_path + ": " + object.error().message));
    }
    if (from.remote == action_.address.remote) {
      nlohmann::json config = action_.config;
      if (request_.fleet != nullptr) config[std::string{model::fleet_key}] = request_.fleet->name;
      const std::string source_name = from.container + (from.snapshot ? "/" + *from.snapshot : "");
      nlohmann::json copy_source = {
          {"type", "copy"}, {"source", source_name}, {"instance_only", true}, {"container_only", true}};
      // A copy from another project of the same remote names it (lxd-protocol.md §3.6).
      if (from.project != action_.address.project) copy_source["project"] = from.project;
      // LXD fills in the source's config (without volatile.*) and devices for what the body leaves
      // out (lxd/instances_post.go createFromCopy), but LXD 5.0.2 gives a copy without profiles the
      // default profile, not the source's: so they are sent, as lxc does.
      const nlohmann::json body = {{"name", name},
                                   {"config", config},
                                   {"devices", nlohmann::json(action_.devices)},
                                   {"profiles", action_.profiles   ? nlohmann::json(*action_.profiles)
                                                : object->profiles ? nlohmann::json(*object->profiles)
                                                                   : nlohmann::json(nullptr)},
                                   {"ephemeral", action_.ephemeral.value_or(false)},
                                   {"stateful", false},
                                   {"description", action_.description.value_or("")},
                                   {"type", "container"},
                                   {"instance_type", ""},
                                   {"source", copy_source}};
      nlohmann::json detail = where(**dst, name);
      detail["source"] = address_json(from);
      report("copying " + source_name + " to " + name);
      auto created = journal_.step("create", detail, [&]() -> Result<void> {
        auto op = call_and_wait(**dst, Method::post, instances_target(), body, wait("copying " + source_name));
        if (!op) return op.error();
        return {};
      });
      if (!created) return created;
    } else {
      auto state =
          from.snapshot ? Result<nlohmann::json>(nlohmann::json::object()) : source_state(**src, from.container);
      if (!state) return state.error();
      begin_transfer("copy", from, **dst, name, *state);
      // The umbrella step stays open from before the migration until the target is unmarked, so a
      // crash between two inner steps still leaves an open intent for recovery to settle.
      auto copied = journal_.step("transfer", transfer_, [&]() -> Result<void> {
        if (auto m = migrate(TransferKind::copy, **src, from, *object, **dst, name, false); !m) return m;
        return unmark(**dst, name);
      });
      if (!copied) return copied;
    }
    if (action_.target_state) return reach_state(**dst, name, *action_.target_state);
    return {};
  }

  Result<void> move() {
    if (!action_.source) return make_error(ErrorKind::invalid_argument, action_.id + ": no source in the plan");
    const plan::Address& from = *action_.source;
    const std::string& name = action_.address.container;
    if (from.remote == action_.address.remote) {
      if (action_.member.empty()) {
        return make_error(ErrorKind::invalid_argument, action_.id + ": source and target are the same remote");
      }
      return move_between_members();
    }
    auto src = remote(from);
    if (!src) return src.error();
    auto dst = remote(action_.address);
    if (!dst) return dst.error();

    auto source = get_instance(**src, from.container);
    if (!source) return source.error();
    if (!*source) {
      // Already moved (a re-run after the source was deleted): fine if a whole target is there.
      auto there = get_instance(**dst, name);
      if (!there) return there.error();
      if (*there && (*there)->instance.config.count(std::string{incomplete_key}) == 0) return {};
      return (*src)->error(make_error(ErrorKind::not_found, from.container + " does not exist; plan again"));
    }
    if (model::live_power_from_status_code((*source)->instance.status_code) != LivePower::stopped) {
      return (*src)->error(make_error(ErrorKind::conflict, from.container + " is " + status_text((*source)->instance) +
                                                               "; an offline move needs it stopped"));
    }
    auto source_snaps = snapshot_names(**src, from.container);
    if (!source_snaps) return source_snaps.error();

    begin_transfer("move", from, **dst, name,
                   {{"etag", (*source)->etag}, {"status", (*source)->instance.status}, {"snapshots", *source_snaps}});
    // The umbrella step stays open from before the migration until the source is deleted: a crash in
    // any gap between the inner steps (e.g. after unmark, before delete-source) still leaves an open
    // intent, and recovery finishes or undoes the move instead of leaving it on two remotes.
    auto moved_whole = journal_.step("transfer", transfer_, [&]() -> Result<void> {
      return move_steps(**src, from, **source, **dst, name, *source_snaps);
    });
    if (!moved_whole) return moved_whole;
    if (action_.target_state) return reach_state(**dst, name, *action_.target_state);
    return {};
  }

  // A move between an LXD cluster's members: the cluster migrates it itself (POST
  // /1.0/instances/NAME?target=MEMBER with migration: true: it copies the instance to the member
  // under a temporary name, deletes the original and renames the copy), as `lxc move --target`.
  Result<void> move_between_members() {
    const std::string& name = action_.address.container;
    auto r = remote(action_.address);
    if (!r) return r.error();
    auto found = must_exist(**r, name);
    if (!found) return found.error();
    const wire::Instance& inst = found->instance;
    const bool group = action_.member.starts_with("@");
    if (!group && inst.location == action_.member) {
      // Already there (a re-run after the move): only the power state is left.
      return action_.target_state ? reach_state(**r, name, *action_.target_state) : Result<void>{};
    }
    if (model::live_power_from_status_code(inst.status_code) != LivePower::stopped) {
      return (*r)->error(
          make_error(ErrorKind::conflict, name + " is " + status_text(inst) + "; an offline move needs it stopped"));
    }
    report("moving " + name + " from member " + inst.location + " to " + action_.member);
    auto moved = journal_.step("cluster-move",
                               {{"remote", action_.address.remote},
                                {"instance", name},
                                {"project", action_.address.project},
                                {"from_member", inst.location},
                                {"to_member", action_.member}},
                               [&]() -> Result<void> {
                                 const nlohmann::json body = {{"name", name}, {"migration", true}, {"live", false}};
                                 auto op = call_and_wait(
                                     **r, Method::post,
                                     "/1.0/instances/" + path_segment(name) + "?target=" + path_segment(action_.member),
                                     body, wait("moving " + name + " to member " + action_.member));
                                 if (!op) return op.error();
                                 return {};
                               });
    if (!moved) return moved;
    if (action_.target_state) return reach_state(**r, name, *action_.target_state);
    return {};
  }

  // Migrate, verify, unmark, delete the source: in that order, so the source is never deleted
  // before the target is known whole.
  Result<void> move_steps(RemoteHandle& src, const plan::Address& from, const InstanceRead& source, RemoteHandle& dst,
                          const std::string& name, const std::vector<std::string>& source_snaps) {
    if (auto m = migrate(TransferKind::move, src, from, source.instance, dst, name, true); !m) return m;

    // Verify before anything is deleted: the source stays until the target is known whole.
    std::string target_etag;
    std::string source_etag;
    auto verified = journal_.step(
        "verify", transfer_,
        [&]() -> Result<void> {
          auto target = must_exist(dst, name);
          if (!target) return target.error();
          target_etag = target->etag;
          auto target_snaps = snapshot_names(dst, name);
          if (!target_snaps) return target_snaps.error();
          if (auto problem =
                  verify_move(source.instance, source_snaps, target->instance, *target_snaps, action_.config)) {
            return dst.error(
                make_error(ErrorKind::conflict, "the moved " + name + " does not match its source: " + *problem));
          }
          // The source must still be what was moved: someone who started it meanwhile has data the
          // target lacks, and it is never stopped or deleted for them.
          auto now = must_exist(src, from.container);
          if (!now) return now.error();
          source_etag = now->etag;
          if (model::live_power_from_status_code(now->instance.status_code) != LivePower::stopped) {
            return src.error(make_error(ErrorKind::conflict, from.container + " was started during the move; it "
                                                                              "stays, the unfinished target goes"));
          }
          return {};
        },
        [&] {
          return nlohmann::json{{"target_etag", target_etag}, {"source_etag", source_etag}};
        });
    if (!verified) {
      if (auto d = remove_stopped(dst, name, "delete-target"); !d) {
        spdlog::warn("{}: could not delete the unverified target: {}", action_.id, d.error().message);
      }
      return verified;
    }
    if (auto u = unmark(dst, name); !u) return u;
    report("deleting the source " + from.remote + ":" + from.container);
    return remove_stopped(src, from.container, "delete-source");
  }

  // Pull migration of `from` (an instance or one of its snapshots; `object` is what GET returned for
  // it) into a new instance `name` on `dst`. On failure the source operation is cancelled and a
  // partial target deleted.
  Result<void> migrate(TransferKind kind, RemoteHandle& src, const plan::Address& from, const wire::Instance& object,
                       RemoteHandle& dst, const std::string& name, bool with_snapshots) {
    const std::string kind_text = kind == TransferKind::copy ? "copy" : "move";
    auto existing = get_instance(dst, name);
    if (!existing) return existing.error();
    if (*existing) return dst.error(make_error(ErrorKind::conflict, name + " already exists"));
    auto env = server_environment(src);
    if (!env) return env.error();
    auto src_url = reachable_url(src.spec, *env);
    if (!src_url) return src_url.error();

    const std::string source_path = "/1.0/instances/" + path_segment(from.container) +
                                    (from.snapshot ? "/snapshots/" + path_segment(*from.snapshot) : "");
    std::string source_op;
    nlohmann::json secrets;
    auto started = journal_.step(
        "migrate-source", {{"kind", kind_text}, {"source", address_json(from)}},
        [&]() -> Result<void> {
          auto res = src.client.request(Method::post, source_path,
                                        migration_source_request(from.snapshot ? name : std::string{}, with_snapshots));
          if (!res) return src.error(res.error());
          if (res->type != ResponseType::async) {
            return src.error(make_error(ErrorKind::protocol, "POST " + source_path + ": no migration operation"));
          }
          source_op = res->operation;
          auto op = wire::parse_operation(res->metadata);
          if (!op) {
            return src.error(make_error(ErrorKind::protocol, "POST " + source_path + ": " + op.error().message));
          }
          secrets = secrets_of(op->metadata);
          return {};
        },
        [&] {
          return source_op.empty() ? nlohmann::json::object()
                                   : nlohmann::json{{"source_operation", *src_url + source_op}};
        });
    if (!started) return started;

    TargetOverlay overlay;
    overlay.name = name;
    overlay.config = action_.config;
    overlay.devices = action_.devices;
    overlay.profiles = action_.profiles;
    overlay.ephemeral = action_.ephemeral;
    overlay.description = action_.description;
    overlay.fleet_name = request_.fleet != nullptr ? request_.fleet->name : std::string{};
    overlay.incomplete_marker = wire::string_in(transfer_, "mark").value_or(plan::to_string(from));
    const nlohmann::json body = migration_target_request(object, kind, overlay, *src_url + source_op, secrets,
                                                         env->certificate, with_snapshots);

    std::string target_op;
    std::string target_etag;
    report(kind_text + " " + plan::to_string(from) + " -> " + dst.name() + ":" + name);
    const nlohmann::json detail = {{"kind", kind_text},
                                   {"source", address_json(from)},
                                   {"target", where(dst, name)},
                                   {"source_operation", *src_url + source_op}};
    bool target_created = false;
    auto moved = journal_.step(
        "migrate", detail,
        [&]() -> Result<void> {
          auto res = dst.client.request(Method::post, instances_target(), body);
          if (!res) return dst.error(res.error());
          target_op = res->operation;
          target_created = true;
          WaitOptions w = wait("migrating " + plan::to_string(from) + " to " + dst.name() + ":" + name);
          // The volume's own session ("c1: 12.34MB (...)") counts up to its size; a snapshot's
          // session ("c1/s1: ...") has no total here.
          if (const auto total = from.snapshot ? std::nullopt : volume_usage(src, from.container)) {
            const std::string volume_session = from.container + ":";
            w.on_progress = [this, m = w.what, total, volume_session](const ProgressReading& p) {
              report(m + ": " + p.text, &p, p.text.starts_with(volume_session) ? total : std::nullopt);
            };
          }
          // The bytes moved show up on the source operation (fs_progress); read it when the target's
          // own operation reports none.
          bool seen_on_target = false;
          const auto inner = w.on_progress;
          w.on_progress = [&, inner](const ProgressReading& p) {
            seen_on_target = true;
            inner(p);
          };
          std::string last;
          w.on_tick = [&] {
            if (seen_on_target) return;
            auto op = src.client.get("/1.0/operations/" + path_segment(operation_id(source_op)));
            if (!op) return;
            auto parsed = wire::parse_operation(op->metadata);
            if (!parsed) return;
            if (auto p = progress_from_metadata(parsed->metadata); p && p->text != last) {
              last = p->text;
              inner(*p);
            }
          };
          if (res->type == ResponseType::async) {
            auto op = wait_operation(dst.client, target_op, w);
            if (!op) return dst.error(op.error());
          }
          // The target as the transfer left it: recovery tells from this whether anyone touched it.
          if (auto made = get_instance(dst, name); made && *made) target_etag = (*made)->etag;
          return {};
        },
        [&] {
          nlohmann::json out = nlohmann::json::object();
          if (!target_op.empty()) out["target_operation"] = target_op;
          if (!target_etag.empty()) out["target_etag"] = target_etag;
          return out;
        });
    if (moved) return {};

    // Stop the source side (its op would otherwise wait for its peers until it times out), then
    // remove what the target may have created.
    if (auto c = src.client.request(Method::delete_, "/1.0/operations/" + path_segment(operation_id(source_op))); !c) {
      spdlog::debug("{}: cancelling the source operation: {}", action_.id, c.error().message);
    }
    if (target_created) {
      if (!target_op.empty()) {
        // A target whose op is still running (we were cancelled) ends once its source is gone.
        WaitOptions w;
        w.what = "waiting for the failed transfer to end";
        w.poll = options_.poll;
        (void)wait_operation(dst.client, target_op, w);
      }
      auto partial = get_instance(dst, name);
      if (partial && *partial && (*partial)->instance.config.count(std::string{incomplete_key}) != 0) {
        if (auto d = remove_stopped(dst, name, "delete-target"); !d) {
          spdlog::warn("{}: could not delete the partial target: {}", action_.id, d.error().message);
        }
      }
    }
    return moved;
  }

  // The transfer is whole: the target loses its incomplete mark (PUT with If-Match).
  Result<void> unmark(RemoteHandle& r, const std::string& name) {
    nlohmann::json detail = where(r, name);
    detail.update(transfer_);
    std::string etag_after;
    return journal_.step(
        "unmark", detail,
        [&]() -> Result<void> {
          auto read = must_exist(r, name);
          if (!read) return read.error();
          const std::vector<plan::Change> clear = {{"config." + std::string{incomplete_key}, nullptr, nullptr}};
          Headers headers;
          if (!read->etag.empty()) headers.emplace_back("If-Match", read->etag);
          auto body = put_body(r, read->instance, clear);
          if (!body) return body.error();
          auto op = call_and_wait(r, Method::put, "/1.0/instances/" + path_segment(name), *body,
                                  wait("finishing " + name), headers);
          if (!op) return op.error();
          // What the unmarked target looks like, so that recovery can tell it was not touched since.
          if (auto after = get_instance(r, name); after && *after) etag_after = (*after)->etag;
          return {};
        },
        [&] {
          return nlohmann::json{{"target_etag", etag_after}};
        });
  }

  // --- transfers: the journal's evidence ---------------------------------------------------------

  // The umbrella detail every step of a cross-remote transfer carries: what it moves where, a token
  // unique to this transfer (also in the target's incomplete mark, so recovery knows the target is
  // this transfer's own), and the source as it was (ETag, status, snapshots), so recovery can tell
  // whether anyone changed it since.
  void begin_transfer(const std::string& kind, const plan::Address& from, const RemoteHandle& dst,
                      const std::string& name, const nlohmann::json& source_state) {
    // Unique per transfer: ties a target's incomplete mark to the journal of the run that made it.
    const std::string token = util::random_hex(16);
    transfer_ = {{"kind", kind},
                 {"source", address_json(from)},
                 {"target", where(dst, name)},
                 {"token", token},
                 {"mark", plan::to_string(from) + " " + token},
                 {"source_state", source_state}};
  }

  Result<nlohmann::json> source_state(RemoteHandle& r, const std::string& name) {
    auto read = must_exist(r, name);
    if (!read) return read.error();
    auto snaps = snapshot_names(r, name);
    if (!snaps) return snaps.error();
    return nlohmann::json{{"etag", read->etag}, {"status", read->instance.status}, {"snapshots", *snaps}};
  }

  // Deletes an instance that must be stopped: never stops one (whoever started it has a reason).
  Result<void> remove_stopped(RemoteHandle& r, const std::string& name, const std::string& step) {
    nlohmann::json detail = where(r, name);
    detail.update(transfer_);
    return journal_.step(step, detail, [&]() -> Result<void> {
      auto now = get_instance(r, name);
      if (!now) return now.error();
      if (!*now) return {};
      if (model::live_power_from_status_code((*now)->instance.status_code) != LivePower::stopped) {
        return r.error(make_error(ErrorKind::conflict, name + " is " + status_text((*now)->instance) +
                                                           "; berth deletes it only while stopped, so it stays"));
      }
      auto op = call_and_wait(r, Method::delete_, "/1.0/instances/" + path_segment(name), std::nullopt,
                              wait("deleting " + name));
      if (!op && !(op.error().kind == ErrorKind::server && op.error().http_status == 404)) return op.error();
      return {};
    });
  }

  // --- recovery actions ------------------------------------------------------------------------
  // Planned by the recoverer from an interrupted run's journal; each checks its proof again right
  // before it acts, and changes nothing if the hosts no longer match it.

  struct RecoveryPlaces {
    RemoteHandle* src = nullptr;
    RemoteHandle* dst = nullptr;
    nlohmann::json proof;
  };

  Result<RecoveryPlaces> recovery_places() {
    if (!action_.recovery || !action_.source) {
      return make_error(ErrorKind::invalid_argument, action_.id + ": not a recovery action");
    }
    auto dst = remote(action_.address);
    if (!dst) return dst.error();
    auto src = remote(*action_.source);
    if (!src) return src.error();
    const auto& proof = action_.recovery->proof;
    transfer_ = {{"kind", action_.recovery->transfer},
                 {"source", address_json(*action_.source)},
                 {"target", where(**dst, action_.address.container)},
                 {"token", text_in(proof, "token")},
                 {"mark", text_in(proof, "mark")},
                 {"source_state", object_in(proof, "source_state")},
                 {"marked_etag", text_in(proof, "marked_etag")},
                 {"target_etag", text_in(proof, "target_etag")},
                 {"recovers_run", action_.recovery->run_id},
                 // finish_transfer is planned only once the data is proven to have arrived
                 {"arrived", action_.kind == ActionKind::finish_transfer}};
    return RecoveryPlaces{*src, *dst, proof};
  }

  Result<void> finish_transfer() {
    auto places = recovery_places();
    if (!places) return places.error();
    // Plain variables, not a structured binding: clang before 16 cannot capture those in a lambda.
    RemoteHandle* src = places->src;
    RemoteHandle* dst = places->dst;
    const nlohmann::json& proof = places->proof;
    const std::string& name = action_.address.container;
    const plan::Address& from = *action_.source;
    const bool is_move = action_.recovery->transfer == "move";
    // Journaled as a transfer itself, so a crash in the middle is settled the same way.
    return journal_.step("transfer", transfer_, [&]() -> Result<void> {
      auto target = must_exist(*dst, name);
      if (!target) return target.error();
      if (auto problem = target_changed(target->instance, target->etag, proof)) {
        return dst->error(make_error(ErrorKind::conflict, name + ": " + *problem + "; plan again"));
      }
      const bool marked = target->instance.config.count(std::string{incomplete_key}) != 0;
      std::optional<InstanceRead> source;
      if (is_move) {
        auto read = get_instance(*src, from.container);
        if (!read) return read.error();
        if (*read) {
          auto snaps = snapshot_names(*src, from.container);
          if (!snaps) return snaps.error();
          if (auto problem =
                  source_changed((*read)->instance, (*read)->etag, *snaps, object_in(proof, "source_state"))) {
            return src->error(make_error(ErrorKind::conflict, "the source " + from.container + " changed (" + *problem +
                                                                  "); it stays. Plan again"));
          }
          if (marked) {
            auto target_snaps = snapshot_names(*dst, name);
            if (!target_snaps) return target_snaps.error();
            if (auto problem = verify_move((*read)->instance, *snaps, target->instance, *target_snaps, {})) {
              return dst->error(
                  make_error(ErrorKind::conflict, "the moved " + name + " does not match its source: " + *problem));
            }
          }
          source = std::move(**read);
        }
      }
      if (marked) {
        if (auto u = unmark(*dst, name); !u) return u;
      }
      if (source) return remove_stopped(*src, from.container, "delete-source");
      return {};
    });
  }

  Result<void> undo_transfer() {
    auto places = recovery_places();
    if (!places) return places.error();
    RemoteHandle* dst = places->dst;
    const nlohmann::json& proof = places->proof;
    const std::string& name = action_.address.container;
    return journal_.step("transfer", transfer_, [&]() -> Result<void> {
      auto target = get_instance(*dst, name);
      if (!target) return target.error();
      if (!*target) return {};
      if (auto problem = target_changed((*target)->instance, (*target)->etag, proof)) {
        return dst->error(make_error(ErrorKind::conflict, name + ": " + *problem + "; it stays. Plan again"));
      }
      return remove_stopped(*dst, name, "delete-target");
    });
  }

  const ClientConfig& config_;
  const ExecutorOptions& options_;
  ServerImageCache& images_;
  const providers::ExecuteRequest& request_;
  const plan::Action& action_;
  Journal journal_;
  std::map<std::pair<std::string, std::string>, RemoteHandle> remotes_;  // by (remote, project)
  // Cross-remote copy or move: {kind, source, target}, added to the journal detail of every step
  // after the transfer so that recovery knows which transfer an open step belonged to.
  nlohmann::json transfer_ = nlohmann::json::object();
};

}  // namespace

LxdExecutor::LxdExecutor(ClientConfig config, ExecutorOptions options)
    : config_(std::move(config)), options_(options), images_(std::make_unique<ServerImageCache>()) {}

LxdExecutor::~LxdExecutor() = default;

providers::ExecuteResponse LxdExecutor::execute(const providers::ExecuteRequest& request) {
  providers::ExecuteResponse response;
  if (request.action == nullptr) {
    response.error = "no action given";
    return response;
  }
  Run run(config_, options_, request, *images_);
  auto result = run.execute();
  response.ok = result.ok();
  if (!result) response.error = result.error().message;
  response.command = std::move(run.command_);
  return response;
}

std::unique_ptr<providers::ActionExecutor> make_executor(ClientConfig config, ExecutorOptions options) {
  return std::make_unique<LxdExecutor>(std::move(config), options);
}

}  // namespace berth::lxd
