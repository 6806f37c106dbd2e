// Desired + live -> actions. Pure: this file never contacts a host.
//
// Rules (docs/plan-format.md explains them to users):
// - Only declared keys are compared; volatile.* and image.* are observations, never diffs.
// - Placement is desired state: a container found on another remote than declared is moved,
//   never destroyed and recreated.
// - A remote that could not be read is Unknown: its containers get no actions.
// - Only instances this fleet owns (user.berth.fleet) are ever deleted, and only with pruning.
// - A key or device the file no longer declares is removed only if berth's record on the instance
//   (user.berth.managed) says berth set it; what berth never set is never touched.
// - A declared container that exists but no fleet owns is adopted (an explicit action); one that
//   another fleet owns is left alone.
// - On an LXD cluster, target: is placement too: a container on another member is moved between
//   the members. One on a member the cluster cannot reach (a placeholder) gets no action at all.

#include <algorithm>
#include <array>
#include <queue>
#include <set>
#include <string_view>
#include <unordered_set>

#include "engine/model/managed.hpp"
#include "engine/model/provision.hpp"
#include "engine/plan/order.hpp"
#include "engine/plan/placement.hpp"
#include "engine/plan/plan.hpp"
#include "engine/util/printable.hpp"

namespace berth::plan {
namespace {

using model::ContainerSpec;
using model::DesiredState;
using model::LiveInstance;
using model::LivePower;
using model::RemoteStatus;

// Container keys LXD applies only when the container starts (LXD 5.0 instance options whose
// "live update" is "no"). Changing one on a running container needs a restart to take effect.
bool needs_restart(std::string_view key) {
  static constexpr std::array<std::string_view, 12> exact = {"raw.lxc",
                                                             "raw.idmap",
                                                             "raw.seccomp",
                                                             "raw.apparmor",
                                                             "security.privileged",
                                                             "security.nesting",
                                                             "security.idmap.base",
                                                             "security.idmap.isolated",
                                                             "security.idmap.size",
                                                             "security.protection.shift",
                                                             "linux.kernel_modules",
                                                             "nvidia.runtime"};
  static constexpr std::array<std::string_view, 2> prefixes = {"security.syscalls.", "nvidia."};
  if (std::find(exact.begin(), exact.end(), key) != exact.end()) return true;
  return std::any_of(prefixes.begin(), prefixes.end(), [&](std::string_view p) { return key.rfind(p, 0) == 0; });
}

bool is_bookkeeping(const Change& ch) {
  return ch.path == "config." + std::string{model::managed_key} || ch.path == "config." + std::string{model::fleet_key};
}

// The changes a user declared (or undeclared), without berth's own marks.
std::vector<Change> content_changes(const std::vector<Change>& changes) {
  std::vector<Change> out;
  for (const auto& ch : changes) {
    if (!is_bookkeeping(ch)) out.push_back(ch);
  }
  return out;
}

std::string paths_of(const std::vector<Change>& changes) {
  std::string what;
  for (const auto& ch : changes) what += (what.empty() ? "" : ", ") + ch.path;
  return what;
}

// The changes of an update or restart action, with before/after as the user reads them and the
// declared spec the executor needs.
void fill_changes(Action& a, std::vector<Change> changes, const ContainerSpec& c) {
  a.before = nlohmann::json::object();
  a.after = nlohmann::json::object();
  for (auto& ch : changes) {
    ch.sensitive = ch.sensitive || c.sensitive.count(ch.path) != 0;
    a.before[ch.path] = ch.sensitive && !ch.before.is_null() ? nlohmann::json(sensitive_text) : ch.before;
    a.after[ch.path] = ch.sensitive && !ch.after.is_null() ? nlohmann::json(sensitive_text) : ch.after;
  }
  a.changes = std::move(changes);
  a.config = c.config;
  a.devices = c.devices;
  a.profiles = c.profiles;
  a.sensitive = c.sensitive;
}

bool is_observation(std::string_view key) {
  return key.rfind("volatile.", 0) == 0 || key.rfind("image.", 0) == 0;
}

nlohmann::json value_or_null(const model::ConfigMap& map, const std::string& key) {
  const auto it = map.find(key);
  return it == map.end() ? nlohmann::json(nullptr) : nlohmann::json(it->second);
}

std::optional<std::string> config_value(const LiveInstance& inst, std::string_view key) {
  const auto it = inst.config.find(std::string{key});
  if (it == inst.config.end()) return std::nullopt;
  return it->second;
}

// The config a new instance gets: the declared keys and berth's record of them (the executor adds
// the fleet mark).
model::ConfigMap config_with_record(const ContainerSpec& c) {
  model::ConfigMap config = c.config;
  config[std::string{model::managed_key}] = model::record_text(model::managed_of(c));
  return config;
}

std::string short_fingerprint(const std::string& f) {
  return util::printable(f.substr(0, 12));
}

// Where a declared container lives (or one of its snapshots): its remote and project.
Address address_of(const ContainerSpec& c, std::optional<std::string> snapshot = std::nullopt) {
  return Address{c.remote, c.name, std::move(snapshot), c.project};
}

// How a declared container is keyed in LiveRemote::instances.
std::string key_of(const ContainerSpec& c) {
  return model::instance_key(c.project, c.name);
}

// What a user reads of a declared spec: sensitive values masked (the action's spec keeps them).
nlohmann::json spec_after(const ContainerSpec& c) {
  nlohmann::json after = {{"remote", c.remote}, {"state", model::to_string(c.state)}};
  if (c.project != model::default_project) after["project"] = c.project;
  if (c.ephemeral) after["ephemeral"] = *c.ephemeral;
  if (c.description) after["description"] = *c.description;
  if (c.image) after["image"] = model::to_string(*c.image);
  if (!c.config.empty()) {
    after["config"] = c.config;
    for (const auto& [k, v] : c.config) {
      if (c.sensitive.count("config." + k) != 0) after["config"][k] = sensitive_text;
    }
  }
  if (!c.devices.empty()) {
    after["devices"] = c.devices;
    for (const auto& [d, keys] : c.devices) {
      if (c.sensitive.count("devices." + d) != 0) after["devices"][d] = sensitive_text;
    }
  }
  if (c.profiles) after["profiles"] = *c.profiles;
  return after;
}

// What a launch, copy or recreate makes: the declared spec, with berth's record of it.
void set_spec(Action& a, const ContainerSpec& c) {
  a.sensitive = c.sensitive;
  a.config = config_with_record(c);
  model::DigestRecord pending;
  for (const auto& e : c.exec) {
    if (e.when == model::ExecWhen::create) pending.emplace(e.name, model::pending_digest);
  }
  // A when: create command runs once, in the container berth creates: marked here, recorded as run
  // by its exec action, so that a run interrupted in between still runs it.
  if (!pending.empty()) a.config[std::string{model::exec_key}] = model::record_text(pending);
  a.devices = c.devices;
  a.profiles = c.profiles;
  a.ephemeral = c.ephemeral;
  a.description = c.description;
  // Files go in before the first start: the action creates it stopped, a start follows the push.
  const bool files_first = !c.files.empty() && c.state != DesiredState::stopped;
  a.target_state = files_first ? DesiredState::stopped : c.state;
  a.after = spec_after(c);
  if (files_first) a.after["state"] = "stopped";
}

// Every declared remote's status, and the basis (digest of each instance read) of a plan.
void summarise_remotes(const model::Fleet& fleet, const model::LiveState& live, Plan& plan) {
  plan.fleet_path = fleet.path;
  plan.fleet_digest = fleet.digest;
  for (const auto& [name, spec] : fleet.remotes) {
    RemoteSummary summary;
    summary.url = spec.url;
    const auto it = live.remotes.find(name);
    if (it == live.remotes.end()) {
      summary.error = "not read";
    } else {
      summary.status = it->second.status;
      summary.error = it->second.error;
      summary.instances = it->second.instances.size();
      if (it->second.members) {
        for (const auto& [mname, m] : *it->second.members) summary.members.emplace(mname, m.status);
      }
      if (it->second.status == RemoteStatus::ok) {
        for (const auto& [iname, inst] : it->second.instances) plan.basis[name + ":" + iname] = inst.digest;
      }
    }
    plan.remotes.emplace(name, std::move(summary));
  }
}

class Planner {
 public:
  Planner(const model::Fleet& fleet, const model::LiveState& live, const PlanOptions& options)
      : fleet_(fleet),
        live_(live),
        prune_(options.prune || fleet.prune),
        replace_(options.replace),
        held_(options.held),
        digest_key_(fleet.digest_key) {}

  // What placement decided (placed containers have their remote in `fleet`); its not-placed
  // containers, warnings and explanations go into the plan.
  void take_placement(Placed placed) {
    for (const auto& p : placed.placements) {
      if (!p.remote.empty()) placement_of_.emplace(p.container, p.explanation);
    }
    plan_.placements = std::move(placed.placements);
    plan_.drain = std::move(placed.drain);
    plan_.not_planned.merge(placed.not_planned);
    plan_.diagnostics.append(placed.diagnostics);
  }

  Plan run() {
    summarise_remotes(fleet_, live_, plan_);
    for (const auto& [name, spec] : fleet_.containers) plan_container(spec);
    plan_copies();
    plan_prunes();
    warn_unreplaced();
    order_actions(plan_);
    return std::move(plan_);
  }

 private:
  const model::LiveRemote* known_remote(const std::string& name) const {
    const auto it = live_.remotes.find(name);
    if (it == live_.remotes.end() || it->second.status != RemoteStatus::ok) return nullptr;
    return &it->second;
  }

  Action& add(ActionKind kind, Address address, std::string reason) {
    Action a;
    a.kind = kind;
    a.id = std::string{to_string(kind)} + " " + to_string(address);
    a.address = std::move(address);
    a.reason = std::move(reason);
    plan_.actions.push_back(std::move(a));
    return plan_.actions.back();
  }

  void plan_container(const ContainerSpec& c) {
    const Address here_addr = address_of(c);
    if (const auto held = held_.find(c.name); held != held_.end()) {
      plan_.diagnostics.warning("not planned: " + held->second, to_string(here_addr), c.where,
                                "see `berth state intents`; once the hosts are put right by hand, "
                                "`berth state drop-intent ID` lets berth plan it again");
      return;
    }
    if (c.remote.empty()) return;  // not placed: placement said why
    const auto* remote = known_remote(c.remote);
    if (remote == nullptr) return;  // Unknown: no actions; the remote summary says why.

    const std::string key = key_of(c);
    const auto here = remote->instances.find(key);
    if (here != remote->instances.end() && here->second.placeholder) {
      plan_.not_planned[instance_address(here_addr)] = unreachable_why(here->second);
      return;
    }
    if (!target_met_by(c, *remote)) return;
    std::vector<std::string> elsewhere;  // other remotes where it lives in its declared project
    for (const auto& [rname, lr] : live_.remotes) {
      if (rname != c.remote && lr.status == RemoteStatus::ok && lr.instances.count(key) != 0) {
        elsewhere.push_back(rname);
      }
    }

    if (c.state == DesiredState::absent) {
      if (here != remote->instances.end() && !here->second.owned_by(fleet_.name)) {
        plan_.diagnostics.warning(
            "declared absent, but it is not owned by fleet '" + fleet_.name + "'; berth deletes only what it owns",
            to_string(here_addr), c.where, "delete it by hand (lxc delete) if it should go");
        return;
      }
      if (here != remote->instances.end()) {
        auto& del = add(ActionKind::delete_, here_addr, "declared absent");
        del.disruption = Disruption::destroy;
        del.before = {{"state", model::to_string(here->second.power)}};
      }
      return;
    }

    if (here != remote->instances.end()) {
      // A second instance of the same name elsewhere is not declared there: like any undeclared
      // instance, it is pruned only if this fleet owns it and pruning is on.
      for (const auto& other : elsewhere) {
        const LiveInstance& extra = live_.remotes.at(other).instances.at(key);
        const Address extra_addr{other, c.name, std::nullopt, c.project};
        if (extra.owned_by(fleet_.name) && prune_) {
          auto& del = add(ActionKind::delete_, extra_addr,
                          "owned by this fleet, declared on '" + c.remote + "' where it also exists; pruning");
          del.disruption = Disruption::destroy;
          del.before = {{"state", model::to_string(extra.power)}};
          continue;
        }
        plan_.diagnostics.warning(
            "also exists on remote '" + other + "'; only the one on '" + c.remote + "' is managed",
            to_string(extra_addr), std::nullopt,
            extra.owned_by(fleet_.name) ? "it is owned by this fleet: run with --prune (or prune: true) to delete it"
                                        : "delete or rename it by hand if it is a leftover");
      }
      plan_existing(c, here->second);
      return;
    }

    if (elsewhere.size() > 1) {
      std::string list;
      for (const auto& r : elsewhere) list += (list.empty() ? "" : ", ") + r;
      plan_.diagnostics.error("exists on several remotes (" + list + ") but is declared on '" + c.remote +
                                  "'; cannot tell which one to move",
                              to_string(here_addr), c.where, "delete the extra copies by hand, then plan again");
      return;
    }

    if (elsewhere.size() == 1) {
      const LiveInstance& there = live_.remotes.at(elsewhere.front()).instances.at(key);
      if (there.placeholder) {
        plan_.not_planned[instance_address(here_addr)] =
            unreachable_why(there) + " (on remote " + elsewhere.front() + ")";
        return;
      }
      plan_move(c, elsewhere.front());
      return;
    }

    if (in_another_project(c)) return;
    warn_if_maybe_on_unknown_remote(c);
    if (const auto why = target_offline(c)) {
      plan_.not_planned[instance_address(here_addr)] = *why + ": not created there";
      return;
    }
    if (c.copy_of) {
      pending_copies_.push_back(&c);  // planned once every source's own actions exist
      return;
    }
    if (resolve_image(c).missing) return;
    auto& launch = add(ActionKind::launch, here_addr,
                       "declared, does not exist; from " + model::to_string(*c.image) + ", then " + first_state(c) +
                           placed_because(c));
    launch.image = c.image;
    set_spec(launch, c);
    if (c.target) launch.member = *c.target;
    const std::string launch_id = launch.id;  // `launch` dangles once more actions are added
    created_by_[c.name] = launch_id;
    provision_new(c, launch_id);
    plan_new_snapshots(c, created_by_[c.name]);  // of the container as provisioned
  }

  static std::string unreachable_why(const LiveInstance& inst) {
    if (inst.location.empty()) {
      return "the host lists it without its state (status " + util::printable(inst.status) +
             "): its state is unknown; nothing is planned for it";
    }
    return "lives on member " + util::printable(inst.location) +
           ", which the cluster cannot reach: its state is unknown; nothing is planned for it until the member is back";
  }

  // Whether the remote can hold the container where its target: says (a member, or a group with a
  // member), which needs the remote to be an LXD cluster; an error when it cannot.
  bool target_met_by(const ContainerSpec& c, const model::LiveRemote& remote) {
    if (!c.target) return true;
    const std::string& target = *c.target;
    const std::string where = to_string(address_of(c));
    if (!remote.members) {
      plan_.diagnostics.error(
          "target: " + target + " needs an LXD cluster, but remote '" + c.remote + "' is a standalone host", where,
          c.where, "remove target:, or point remote: at a cluster");
      return false;
    }
    if (target.starts_with("@")) {
      const std::string group = target.substr(1);
      const bool any = std::any_of(remote.members->begin(), remote.members->end(), [&](const auto& m) {
        return std::find(m.second.groups.begin(), m.second.groups.end(), group) != m.second.groups.end();
      });
      if (!any) {
        plan_.diagnostics.error(
            "target: " + target + ": no member of cluster '" + c.remote + "' is in group '" + group + "'", where,
            c.where, "assign members to it (lxc cluster group assign), or name another group or member");
        return false;
      }
      return true;
    }
    if (remote.members->count(target) == 0) {
      std::string names;
      for (const auto& [name, m] : *remote.members) names += (names.empty() ? "" : ", ") + util::printable(name);
      plan_.diagnostics.error("target: cluster '" + c.remote + "' has no member '" + target + "'", where, c.where,
                              "name one of its members (" + names + ") or a group (@GROUP)");
      return false;
    }
    return true;
  }

  // Why the member the container's target: names cannot take it now; nullopt when it can (or the
  // target is a group: LXD chooses among its members).
  std::optional<std::string> target_offline(const ContainerSpec& c) const {
    if (!c.target) return std::nullopt;
    const auto remote = live_.remotes.find(c.remote);
    if (remote == live_.remotes.end() || !remote->second.members) return std::nullopt;
    if (c.target->starts_with("@")) {
      // A group: LXD chooses among its members; none of them online is as good as none.
      const std::string group = c.target->substr(1);
      bool in_group = false;
      for (const auto& [name, m] : *remote->second.members) {
        if (std::find(m.groups.begin(), m.groups.end(), group) == m.groups.end()) continue;
        in_group = true;
        if (m.online()) return std::nullopt;
      }
      if (!in_group) return std::nullopt;  // target_met_by says so
      return "no member of its target group " + util::printable(group) + " is online";
    }
    const auto m = remote->second.members->find(*c.target);
    if (m == remote->second.members->end() || m->second.online()) return std::nullopt;
    return "its target member " + *c.target + " is " + util::printable(m->second.status);
  }

  // Whether an instance on a cluster is where the container's target: wants it.
  static bool on_target(const ContainerSpec& c, const model::LiveRemote& remote, const LiveInstance& inst) {
    if (!c.target || !remote.members) return true;
    if (!c.target->starts_with("@")) return inst.location == *c.target;
    const auto member = remote.members->find(inst.location);
    if (member == remote.members->end()) return false;
    const auto& groups = member->second.groups;
    return std::find(groups.begin(), groups.end(), c.target->substr(1)) != groups.end();
  }

  // "; placed on b: spread, ..." for a container placement puts where it is created; else "".
  std::string placed_because(const ContainerSpec& c) const {
    const auto it = placement_of_.find(c.name);
    return it == placement_of_.end() ? std::string{} : "; " + it->second;
  }

  static std::string policy_text(const ContainerSpec& c) {
    return c.placement && !c.placement->name.empty() ? "placement " + c.placement->name : "placement";
  }

  // --- files and commands ------------------------------------------------------------------------

  // A new container with files is created stopped, so that they are there when it first starts.
  static bool starts_after_push(const ContainerSpec& c) { return !c.files.empty() && c.state != DesiredState::stopped; }

  static std::string first_state(const ContainerSpec& c) {
    return starts_after_push(c) ? "files pushed, then " + std::string{model::to_string(c.state)}
                                : std::string{model::to_string(c.state)};
  }

  // What berth recorded on the instance under `key`; a damaged record counts as empty (everything
  // is pushed or run again), with a warning.
  model::DigestRecord digest_record(const ContainerSpec& c, const LiveInstance* inst, std::string_view key) {
    if (inst == nullptr) return {};
    const auto text = config_value(*inst, key);
    if (!text) return {};
    auto record = model::parse_digest_record(*text);
    if (!record) {
      plan_.diagnostics.warning(
          "berth's record " + std::string{key} + " on it is damaged; " +
              (key == model::files_key ? "every file is pushed again" : "every when: change command runs again"),
          instance_address(address_of(c)), c.where);
      return {};
    }
    return *record;
  }

  // The push of the files whose digest is not what berth recorded; returns its id, or "".
  std::string plan_push(const ContainerSpec& c, const LiveInstance* inst, const std::string& after_id,
                        const std::string& why) {
    const model::DigestRecord record = digest_record(c, inst, model::files_key);
    std::vector<Change> changes;
    std::vector<model::FileSpec> files;
    for (const auto& [path, file] : c.files) {
      const auto digest = model::file_digest(file, digest_key_);
      const auto recorded = record.find(path);
      if (inst != nullptr && digest && recorded != record.end() && recorded->second == *digest) continue;
      changes.push_back({"files." + path,
                         recorded == record.end() ? nlohmann::json(nullptr) : nlohmann::json(recorded->second),
                         digest ? nlohmann::json(*digest) : nlohmann::json(nullptr)});
      files.push_back(file);
    }
    if (files.empty()) return {};
    std::string reason = why;
    if (reason.empty()) {
      std::string paths;
      for (const auto& f : files) paths += (paths.empty() ? "" : ", ") + f.path;
      reason = "not pushed as declared: " + paths;
    }
    auto& push = add(ActionKind::push, address_of(c), reason);
    push.changes = std::move(changes);
    push.files = std::move(files);
    if (!after_id.empty()) push.depends_on.push_back(after_id);
    return push.id;
  }

  // The commands that are due, one after another in file order after `after_id`; returns the last id.
  std::string plan_execs(const ContainerSpec& c, const LiveInstance* inst, std::string last) {
    const model::DigestRecord record = digest_record(c, inst, model::exec_key);
    for (const auto& e : c.exec) {
      const auto digest = model::exec_digest(e, c, digest_key_);
      const auto recorded = record.find(e.name);
      const bool has = recorded != record.end();
      std::string reason;
      if (inst == nullptr) {
        reason = "the container is new";
      } else if (e.when == model::ExecWhen::create) {
        if (!has) {
          plan_.diagnostics.warning("exec " + e.name +
                                        " (when: create) does not run: the container existed before berth "
                                        "created it with this command",
                                    instance_address(address_of(c)), e.where,
                                    "when: create commands run once in containers berth creates; say when: change to "
                                    "run it in this one too, or replace the container (--replace)");
          continue;
        }
        if (recorded->second != model::pending_digest) continue;
        reason = "created by berth, and its when: create command has not run yet";
      } else {
        if (has && digest && recorded->second == *digest) continue;
        reason = !has     ? "has not run in this container"
                 : digest ? "the command, its environment or a watched file changed"
                          : "its digest is unknown (it holds a secret and berth has no digest key): runs again";
      }
      Address addr = address_of(c);
      Action a;
      a.kind = ActionKind::exec;
      a.id = "exec " + to_string(addr) + " " + e.name;
      a.address = std::move(addr);
      a.reason = std::move(reason);
      a.changes.push_back({"exec." + e.name, has ? nlohmann::json(recorded->second) : nlohmann::json(nullptr),
                           digest ? nlohmann::json(*digest) : nlohmann::json(nullptr)});
      a.exec = e;
      if (!last.empty()) a.depends_on.push_back(last);
      last = a.id;
      plan_.actions.push_back(std::move(a));
    }
    return last;
  }

  // Files and commands of a container that `created_id` creates: every file is pushed, and (when it
  // is to run) it starts after the push, then its commands run.
  void provision_new(const ContainerSpec& c, const std::string& created_id) {
    std::string last = created_id;
    if (!c.files.empty()) {
      last = plan_push(c, nullptr, last, "the container is new: its files go in before it first starts");
      // Created stopped for its files: now it reaches its declared state (a start, and a freeze).
      if (starts_after_push(c)) last = plan_power(c, LivePower::stopped, last);
    }
    last = plan_execs(c, nullptr, last);
    created_by_[c.name] = last;  // a copy of it waits until it is complete
  }

  // What the declared image resolves to now. An alias that does not exist where it is declared makes
  // the container unplannable (no action, plan incomplete), as an unknown remote does: a launch
  // would fail, and drift cannot be told.
  struct ResolvedImage {
    bool missing = false;
    std::optional<std::string> fingerprint;  // unset: not checked (remote unknown, aliases unread)
  };

  // `architecture`: the existing instance's (LXD's name), whose image a server alias is resolved
  // for; empty for a container to launch, which only needs the alias to exist.
  ResolvedImage resolve_image(const ContainerSpec& c, const std::string& architecture = {}) {
    ResolvedImage out;
    if (!c.image) return out;
    const std::string where = instance_address(address_of(c));
    if (c.image->server) return resolve_server_image(c, where, architecture);
    const auto* remote = known_remote(c.image->remote);
    if (remote == nullptr) {
      plan_.diagnostics.warning("image remote '" + c.image->remote + "' is unknown; the image was not checked", where,
                                c.where);
      return out;
    }
    // An image on the container's own remote is looked up in the container's project (it may have
    // its own images), one elsewhere in its remote's project: where the executor looks it up.
    const model::ImageAliases* aliases = remote->image_aliases ? &*remote->image_aliases : nullptr;
    std::string in_project_text;
    const auto spec = fleet_.remotes.find(c.image->remote);
    if (c.image->remote == c.remote && spec != fleet_.remotes.end() && c.project != spec->second.project) {
      const auto in_project = remote->project_image_aliases.find(c.project);
      aliases = in_project == remote->project_image_aliases.end() ? nullptr : &in_project->second;
      in_project_text = " in project '" + c.project + "'";
    }
    if (aliases == nullptr) return out;
    const auto alias = aliases->find(c.image->alias);
    if (alias == aliases->end()) {
      out.missing = true;
      const std::string why =
          "image alias '" + c.image->alias + "' does not exist on remote '" + c.image->remote + "'" + in_project_text;
      plan_.not_planned[where] = why;
      plan_.diagnostics.warning(why + "; not planned", where, c.where,
                                "import the image there (lxc image import ... --alias " + c.image->alias +
                                    "), or fix the image in the fleet file");
      return out;
    }
    if (!alias->second.empty()) out.fingerprint = alias->second;
    return out;
  }

  // An image server's alias as the provider resolved it at plan time; a pinned fingerprint is what
  // the image is, without asking the server. A server that could not be read, or lacks the alias,
  // makes the container unplannable as a missing alias on a remote does.
  ResolvedImage resolve_server_image(const ContainerSpec& c, const std::string& where,
                                     const std::string& architecture) {
    ResolvedImage out;
    const model::ImageRef& image = *c.image;
    if (image.fingerprint) {
      out.fingerprint = *image.fingerprint;
      return out;
    }
    const auto it = live_.server_images.find(model::ServerImageQuery{*image.server, image.alias});
    if (it == live_.server_images.end()) return out;  // not read
    std::string why = it->second.error;
    if (why.empty()) {
      if (auto fingerprint = model::fingerprint_for(it->second, architecture)) {
        if (!fingerprint->empty()) out.fingerprint = *fingerprint;
        return out;
      }
      why = "image server " + image.server->url + " has no image '" + image.alias + "' for architecture " +
            util::printable(architecture);
    }
    out.missing = true;
    plan_.not_planned[where] = why;
    plan_.diagnostics.warning(why + "; not planned", where, c.where,
                              "check that the server answers and lists the alias, or pin the image with "
                              "fingerprint: in the fleet file");
    return out;
  }

  void warn_if_maybe_on_unknown_remote(const ContainerSpec& c) {
    for (const auto& [rname, lr] : live_.remotes) {
      if (lr.status != RemoteStatus::ok) {
        plan_.diagnostics.warning("not found on any reachable remote, but remote '" + rname +
                                      "' is unknown; if it lives there, creating it would make a second one",
                                  to_string(address_of(c)), std::nullopt);
      }
    }
  }

  // This fleet's instance of the same name in another project (the file's project: changed):
  // berth does not move a container between projects, and launching a second one would leave the
  // first behind, so it plans nothing for it and says so.
  bool in_another_project(const ContainerSpec& c) {
    for (const auto& [rname, lr] : live_.remotes) {
      if (lr.status != RemoteStatus::ok) continue;
      for (const auto& [key, inst] : lr.instances) {
        if (inst.name != c.name || inst.project == c.project || !inst.owned_by(fleet_.name)) continue;
        const Address there{rname, c.name, std::nullopt, inst.project};
        plan_.diagnostics.error("declared in project '" + c.project + "' on '" + c.remote +
                                    "', but this fleet's container of that name lives in project '" + inst.project +
                                    "' on '" + rname + "'; berth does not move containers between projects",
                                to_string(address_of(c)), c.where,
                                "move it by hand (lxc move " + rname + ":" + c.name + " " + rname + ":" + c.name +
                                    " --project " + inst.project + " --target-project " + c.project +
                                    "), or declare project: " + inst.project + " again; " + to_string(there) +
                                    " is left as it is");
        return true;
      }
    }
    return false;
  }

  // The fleet that owns an instance: unset when none does (adoption), or a warning and nullopt-of-
  // optional when another fleet does (hands off).
  std::optional<bool> adoptable(const ContainerSpec& c, const LiveInstance& inst, const Address& addr) {
    const auto owner = config_value(inst, model::fleet_key);
    if (!owner) return true;
    if (*owner == fleet_.name) return false;
    plan_.diagnostics.warning("owned by fleet '" + util::printable(*owner) + "', not by '" + fleet_.name +
                                  "'; it is neither adopted nor changed",
                              to_string(addr), c.where,
                              "declare it in that fleet's file, or remove user.berth.fleet from it by hand "
                              "(lxc config unset) so that this fleet adopts it");
    return std::nullopt;
  }

  // A --replace that got no recreate (the container does not exist where it is declared, is held,
  // moves, or is another fleet's) says so rather than doing nothing silently.
  void warn_unreplaced() {
    for (const auto& t : replace_) {
      const bool replaced = std::any_of(plan_.actions.begin(), plan_.actions.end(), [&](const Action& a) {
        return a.kind == ActionKind::recreate && matches(t, a.address);
      });
      if (!replaced) {
        plan_.diagnostics.warning("--replace " + to_string(t) + ": it is not recreated by this plan", to_string(t),
                                  std::nullopt,
                                  "only a container this fleet owns, that exists on its declared remote and was "
                                  "launched from an image, is replaced; see the other messages about it");
      }
    }
  }

  bool replace_requested(const ContainerSpec& c) const {
    const Address addr = address_of(c);
    return std::any_of(replace_.begin(), replace_.end(), [&](const Target& t) { return matches(t, addr); });
  }

  void plan_existing(const ContainerSpec& c, const LiveInstance& inst) {
    const Address addr = address_of(c);
    const model::LiveRemote& remote = live_.remotes.at(c.remote);
    if (!on_target(c, remote, inst)) {
      plan_move(c, c.remote);  // between the cluster's members
      return;
    }
    const auto adopting = adoptable(c, inst, addr);
    if (!adopting) return;
    const ResolvedImage image = resolve_image(c, inst.architecture);
    if (image.missing) return;

    const auto running = config_value(inst, "volatile.base_image");
    const bool drift = image.fingerprint && running && !running->empty() && *running != *image.fingerprint;
    const bool forced = replace_requested(c);
    const bool replace = forced || (drift && c.on_image_change == model::OnImageChange::replace);
    const std::string declared = c.image ? model::to_string(*c.image) : std::string{};
    if (drift && !replace) {
      plan_.diagnostics.warning(
          "runs image " + short_fingerprint(*running) + ", but " + declared + " now resolves to " +
              short_fingerprint(*image.fingerprint) + "; not replaced",
          to_string(addr), c.where,
          "`berth apply --replace " + to_string(addr) +
              " --allow-recreate` recreates it from the new image (its data and snapshots are not kept); "
              "on_image_change: replace does so on every image change");
    }
    if (replace && !c.image) {
      plan_.diagnostics.error(
          "--replace names a container made by copy_of; only containers launched from an image "
          "can be replaced",
          to_string(addr), c.where, "delete it by hand, then apply to copy it again");
      return;
    }
    if (replace && *adopting) {
      plan_.diagnostics.warning("is not owned by this fleet, so it is not replaced; it is adopted instead",
                                to_string(addr), c.where, "apply once to adopt it, then replace it");
    } else if (replace) {
      plan_recreate(c, inst,
                    drift ? "image changed: runs " + short_fingerprint(*running) + ", " + declared +
                                " now resolves to " + short_fingerprint(*image.fingerprint)
                          : "replacement requested (--replace)");
      return;
    }
    converge_existing(c, inst, inst.power, {}, *adopting);
  }

  // Delete and launch anew from the image, with the declared spec; declared snapshots are taken
  // again afterwards. Nothing of the old instance is kept.
  void plan_recreate(const ContainerSpec& c, const LiveInstance& inst, const std::string& why) {
    const Address addr = address_of(c);
    auto& re = add(ActionKind::recreate, addr,
                   why + "; recreated from " + model::to_string(*c.image) + " — its data and snapshots are not kept");
    re.disruption = Disruption::recreate;
    re.consented = c.recreate == model::Consent::allowed;
    re.image = c.image;
    set_spec(re, c);
    // On a cluster, launched again where it is declared to be, else where it was.
    re.member = c.target.value_or(inst.location);
    nlohmann::json before = {{"state", model::to_string(inst.power)}, {"snapshots", inst.snapshots.size()}};
    if (const auto base = config_value(inst, "volatile.base_image")) before["image"] = *base;
    re.before = std::move(before);
    const std::string id = re.id;
    created_by_[c.name] = id;
    provision_new(c, id);
    plan_new_snapshots(c, created_by_[c.name]);  // of the container as provisioned
  }

  // A move keeps the container's project: it lives in its declared project on `from`, and arrives
  // in the same project on its declared remote. `from` its declared remote itself: an LXD
  // cluster's move from the member it lives on to the one its target: names.
  void plan_move(const ContainerSpec& c, const std::string& from) {
    const LiveInstance& inst = live_.remotes.at(from).instances.at(key_of(c));
    const Address source{from, c.name, std::nullopt, c.project};
    const Address target = address_of(c);
    const bool between_members = from == c.remote;
    const auto adopting = adoptable(c, inst, source);
    if (!adopting) return;
    if (const auto why = target_offline(c)) {
      plan_.not_planned[instance_address(target)] = *why + ": not moved there";
      return;
    }
    if (inst.ephemeral) {
      plan_.diagnostics.error("is ephemeral and lives on '" + from +
                                  "': an offline move stops it, and LXD deletes an ephemeral container when it "
                                  "stops; not moved",
                              to_string(target), c.where,
                              "declare it on '" + from +
                                  "' with ephemeral: false and apply, then move it; or "
                                  "delete it so that it is created on '" +
                                  c.remote + "'");
      return;
    }
    std::string stop_id;
    if (inst.power == LivePower::running || inst.power == LivePower::frozen) {
      auto& stop = add(ActionKind::stop, source, "an offline move needs the container stopped");
      stop.before = {{"state", model::to_string(inst.power)}};
      stop.after = {{"state", "stopped"}};
      stop.disruption = Disruption::move;
      stop.consented = c.move == model::Consent::allowed;
      stop_id = stop.id;
    }
    const auto placed = placement_of_.find(c.name);
    const std::string declared = between_members ? "declared on member " + c.target.value_or("") +
                                                       " (target:), lives on member " + util::printable(inst.location)
                                                 : "declared on '" + c.remote + "', lives on '" + from + "'";
    auto& move = add(ActionKind::move, target,
                     placed != placement_of_.end() ? policy_text(c) + ": " + placed->second : declared);
    move.source = source;
    move.disruption = Disruption::move;
    move.consented = c.move == model::Consent::allowed;
    move.before = {{"remote", from}, {"state", model::to_string(inst.power)}};
    move.after = {{"remote", c.remote}, {"state", "stopped"}};
    if (!inst.location.empty()) move.before["member"] = inst.location;
    if (c.target) {
      move.member = *c.target;
      move.after["member"] = *c.target;
    }
    if (!stop_id.empty()) move.depends_on.push_back(stop_id);
    created_by_[c.name] = move.id;
    // After the move the container is on its declared remote with its own config and snapshots, stopped.
    const std::string move_id = move.id;
    converge_existing(c, inst, LivePower::stopped, move_id, *adopting);
  }

  // Config, devices, profiles, snapshots and power state of a container that exists (or will, after `after_id`).
  // Takes ids by value: references into plan_.actions dangle as soon as an action is added.
  // Keys, devices and profiles berth recorded setting that the file no longer declares: removed.
  // Without a record (an instance made by an older berth, or adopted) nothing is removed.
  std::optional<model::Managed> record_of(const ContainerSpec& c, const LiveInstance& inst, const Address& addr) {
    const auto text = config_value(inst, model::managed_key);
    if (!text) return std::nullopt;
    auto record = model::parse_record(*text);
    if (!record) {
      plan_.diagnostics.warning("its record of what berth manages (" + std::string{model::managed_key} +
                                    ") is damaged; nothing undeclared is removed, and the record is written anew",
                                to_string(addr), c.where);
    }
    return record;
  }

  // Berth's record in the update (`before`: what it sets) and in the restart (`restart`: the rest).
  static void add_record_changes(const LiveInstance& inst, const std::optional<model::Managed>& record,
                                 const model::Managed& wanted, std::vector<Change>& restart,
                                 std::vector<Change>& before) {
    model::Managed between = wanted;
    for (const auto& ch : restart) {
      if (!ch.path.starts_with("config.")) continue;
      const std::string key = ch.path.substr(7);
      const bool had = record && record->config.count(key) != 0;
      if (had) {
        between.config.insert(key);
        if (record->sensitive.count(ch.path) != 0) between.sensitive.insert(ch.path);
      } else {
        between.config.erase(key);
        between.sensitive.erase(ch.path);
      }
    }
    const std::string path = "config." + std::string{model::managed_key};
    const auto had = config_value(inst, model::managed_key);
    const std::string between_text = model::record_text(between);
    if (had != between_text)
      before.push_back({path, value_or_null(inst.config, std::string{model::managed_key}), between_text});
    if (!restart.empty()) {
      const std::string final_text = model::record_text(wanted);
      if (final_text != between_text) restart.push_back({path, between_text, final_text});
    }
  }

  // `adopting`: no fleet owns the instance; the first action marks it as this fleet's.
  void converge_existing(const ContainerSpec& c, const LiveInstance& inst, LivePower power, std::string after_id,
                         bool adopting) {
    const Address addr = address_of(c);
    std::string last = after_id;
    // A record on an instance no fleet owns was left by someone else (a fleet whose mark was
    // removed by hand): it says nothing about what this fleet set, so adoption removes nothing.
    const auto record = adopting ? std::nullopt : record_of(c, inst, addr);
    const model::Managed wanted = model::managed_of(c);

    std::vector<Change> changes;
    for (const auto& [key, value] : c.config) {
      if (is_observation(key)) continue;
      const auto it = inst.config.find(key);
      if (it == inst.config.end() || it->second != value) {
        changes.push_back({"config." + key, value_or_null(inst.config, key), value});
      }
    }
    for (const auto& [dev, keys] : c.devices) {
      const auto it = inst.devices.find(dev);
      if (it == inst.devices.end() || it->second != keys) {
        changes.push_back(
            {"devices." + dev, it == inst.devices.end() ? nlohmann::json(nullptr) : nlohmann::json(it->second), keys});
      }
    }
    if (record) {
      for (const auto& key : record->config) {
        if (c.config.count(key) != 0 || is_observation(key) || key.starts_with(model::owner_key_prefix)) continue;
        if (const auto value = config_value(inst, key)) {
          changes.push_back({"config." + key, *value, nullptr, record->sensitive.count("config." + key) != 0});
        }
      }
      for (const auto& dev : record->devices) {
        if (c.devices.count(dev) != 0) continue;
        if (const auto it = inst.devices.find(dev); it != inst.devices.end()) {
          changes.push_back({"devices." + dev, it->second, nullptr, record->sensitive.count("devices." + dev) != 0});
        }
      }
    }
    if (c.profiles) {
      // Profiles berth never set (attached by hand, or LXD's default) stay, before the declared ones
      // so that those override them; the ones it set and the file dropped go.
      std::vector<std::string> profiles;
      for (const auto& p : inst.profiles) {
        const bool declared = std::find(c.profiles->begin(), c.profiles->end(), p) != c.profiles->end();
        const bool set_by_berth = record && record->profiles.count(p) != 0;
        if (!declared && !set_by_berth) profiles.push_back(p);
      }
      profiles.insert(profiles.end(), c.profiles->begin(), c.profiles->end());
      if (profiles != inst.profiles) changes.push_back({"profiles", inst.profiles, profiles});
    }
    if (c.ephemeral && *c.ephemeral != inst.ephemeral) changes.push_back({"ephemeral", inst.ephemeral, *c.ephemeral});
    if (c.description && *c.description != inst.description) {
      changes.push_back({"description", inst.description, *c.description});
    }
    if (adopting) changes.push_back({"config." + std::string{model::fleet_key}, nullptr, fleet_.name});

    std::string adopt_id;
    // A restart-needing key changed on a container that keeps running only takes effect on a
    // restart: such keys go to a separate `restart` action that needs consent, so that without it
    // nothing of theirs reaches the host (and the next plan still shows them). Keys LXD applies
    // live are updated in place either way.
    const bool keeps_running =
        (power == LivePower::running || power == LivePower::frozen) && c.state != DesiredState::stopped;
    const bool pending = inst.config.count(std::string{model::restart_pending_key}) != 0;
    std::vector<Change> live_changes;
    std::vector<Change> restart_changes;
    for (auto& ch : changes) {
      const bool on_restart = ch.path.rfind("config.", 0) == 0 && needs_restart(ch.path.substr(7));
      (keeps_running && on_restart ? restart_changes : live_changes).push_back(std::move(ch));
    }
    if (pending && !keeps_running) {
      // Not running on, so no restart is due: the next start applies the config; the mark goes.
      live_changes.push_back({"config." + std::string{model::restart_pending_key},
                              inst.config.at(std::string{model::restart_pending_key}), nullptr});
    }
    // The record changes with what reaches the host: the update (or adopt) records what it sets and
    // keeps the old record's word on the keys of the restart, which records them when it runs. A
    // refused restart thus leaves the record saying what is on the host, and the next plan shows
    // the restart (an addition or a removal) again.
    add_record_changes(inst, record, wanted, restart_changes, live_changes);

    if (adopting) {
      const auto content = content_changes(live_changes);
      auto& adopt = add(ActionKind::adopt, addr,
                        "exists, owned by no fleet; adopted into fleet '" + fleet_.name + "'" +
                            (content.empty() ? std::string{} : "; differs: " + paths_of(content)));
      fill_changes(adopt, std::move(live_changes), c);
      if (!last.empty()) adopt.depends_on.push_back(last);
      last = adopt.id;
      adopt_id = adopt.id;
    } else if (!live_changes.empty()) {
      const auto content = content_changes(live_changes);
      auto& update = add(ActionKind::update, addr,
                         content.empty() ? "record what berth manages on it (" + model::describe(wanted) + ")"
                                         : "differs: " + paths_of(content));
      fill_changes(update, std::move(live_changes), c);
      if (!last.empty()) update.depends_on.push_back(last);
      last = update.id;
    }
    if (!restart_changes.empty() || (pending && keeps_running)) {
      std::string why = restart_changes.empty()
                            ? "config set by an interrupted run still needs a restart to take effect"
                            : "differs: " + paths_of(content_changes(restart_changes)) + "; takes effect on restart";
      if (!restart_changes.empty() && pending) why += " (an interrupted run's restart is also pending)";
      auto& restart = add(ActionKind::restart, addr, why);
      fill_changes(restart, std::move(restart_changes), c);
      restart.disruption = Disruption::restart;
      restart.consented = c.restart == model::Consent::allowed;
      if (!last.empty()) restart.depends_on.push_back(last);
      last = restart.id;
    }

    // Deleting snapshots needs the container to be this fleet's: after the adopt when there is one.
    plan_snapshots(c, inst, last, adopting ? adopt_id : after_id);
    if (c.ephemeral.value_or(inst.ephemeral) && c.state == DesiredState::stopped && power != LivePower::stopped) {
      plan_.diagnostics.error(
          "is ephemeral and declared stopped: LXD deletes an ephemeral container when it stops; "
          "not stopped",
          to_string(addr), c.where, "declare ephemeral: false, or another state");
      return;
    }
    last = plan_power(c, power, last);
    if (const auto push = plan_push(c, &inst, last, {}); !push.empty()) last = push;
    plan_execs(c, &inst, last);
  }

  // Declared snapshots that are missing, and (with snapshots: prune) undeclared ones. Only when the
  // read could list them: without the list every declared snapshot would look missing.
  void plan_snapshots(const ContainerSpec& c, const LiveInstance& inst, const std::string& last,
                      const std::string& after_id) {
    if (!inst.snapshots_known) {
      if (!c.snapshots.empty() || c.prune_snapshots) {
        plan_.diagnostics.warning("its snapshots could not be read; none are taken or deleted",
                                  to_string(address_of(c)), c.where, "see the remote's warning, then plan again");
      }
      return;
    }
    // Hash sets both ways: a container may declare and have tens of thousands of snapshots.
    std::unordered_set<std::string_view> live_snapshots;
    live_snapshots.reserve(inst.snapshots.size());
    for (const auto& s : inst.snapshots) live_snapshots.insert(s.name);
    std::string snapshots_after = last;
    for (const auto& snap : c.snapshots) {
      if (live_snapshots.contains(snap)) continue;
      auto& s = add(ActionKind::snapshot, address_of(c, snap), "declared, does not exist");
      s.after = {{"snapshot", snap}};
      if (!snapshots_after.empty()) s.depends_on.push_back(snapshots_after);
      snapshot_by_[c.name + "/" + snap] = s.id;
    }
    if (c.prune_snapshots) {
      const std::unordered_set<std::string_view> declared(c.snapshots.begin(), c.snapshots.end());
      for (const auto& live_snap : inst.snapshots) {
        if (declared.contains(live_snap.name)) continue;
        auto& d = add(ActionKind::delete_snapshot, address_of(c, live_snap.name), "not declared; snapshots: prune");
        d.before = {{"snapshot", live_snap.name}, {"created_at", live_snap.created_at}};
        d.disruption = Disruption::destroy;
        if (!after_id.empty()) d.depends_on.push_back(after_id);
      }
    }
  }

  // Returns the id of the last power action, or `after_id` when none is needed.
  std::string plan_power(const ContainerSpec& c, LivePower power, std::string after_id) {
    const Address addr = address_of(c);
    auto step = [&](ActionKind kind, std::string_view from, std::string_view to, const std::string& dep) -> Action& {
      auto& a =
          add(kind, addr,
              "declared " + std::string{model::to_string(c.state)} + ", is " + std::string{model::to_string(power)});
      a.before = {{"state", from}};
      a.after = {{"state", to}};
      a.target_state = c.state;
      if (!dep.empty()) a.depends_on.push_back(dep);
      return a;
    };
    if (power == LivePower::other) {
      plan_.diagnostics.warning("is in a transitional or error state; its power state is not planned", to_string(addr),
                                std::nullopt, "check it with `lxc info`, then plan again");
      return after_id;
    }
    switch (c.state) {
      case DesiredState::running:
        if (power == LivePower::stopped) return step(ActionKind::start, "stopped", "running", after_id).id;
        if (power == LivePower::frozen) return step(ActionKind::unfreeze, "frozen", "running", after_id).id;
        break;
      case DesiredState::stopped:
        if (power != LivePower::stopped) return step(ActionKind::stop, model::to_string(power), "stopped", after_id).id;
        break;
      case DesiredState::frozen:
        if (power == LivePower::stopped) {
          const std::string start_id = step(ActionKind::start, "stopped", "running", after_id).id;
          return step(ActionKind::freeze, "running", "frozen", start_id).id;
        }
        if (power == LivePower::running) return step(ActionKind::freeze, "running", "frozen", after_id).id;
        break;
      case DesiredState::absent: break;
    }
    return after_id;
  }

  // Snapshots of a container that does not exist yet: all declared ones, after its creation.
  void plan_new_snapshots(const ContainerSpec& c, std::string created_id) {
    for (const auto& snap : c.snapshots) {
      auto& s = add(ActionKind::snapshot, address_of(c, snap), "declared, does not exist");
      s.after = {{"snapshot", snap}};
      s.depends_on.push_back(created_id);
      snapshot_by_[c.name + "/" + snap] = s.id;
    }
  }

  // Copies go last so that their sources' launches, moves and snapshots are known (copy of a copy works too:
  // copies are planned in dependency order).
  //
  // The order is that of passes over the pending copies in file order, each pass planning the
  // copies whose source is planned by then. It is computed without the passes (which cost a pass
  // per link of the longest chain): a copy is due in its source's pass when it comes after its
  // source, else in the next pass, and a heap hands them out by (pass, position).
  void plan_copies() {
    const auto& todo = pending_copies_;
    std::map<std::string, std::size_t> position;  // pending copy -> its index in todo
    for (std::size_t i = 0; i < todo.size(); ++i) position.emplace(todo[i]->name, i);
    std::vector<std::vector<std::size_t>> copies_of(todo.size());  // pending source -> its pending copies
    using Due = std::pair<std::size_t, std::size_t>;               // (pass, position)
    std::priority_queue<Due, std::vector<Due>, std::greater<>> due;
    for (std::size_t i = 0; i < todo.size(); ++i) {
      const auto source = position.find(todo[i]->copy_of->container);
      if (source == position.end()) {
        due.emplace(0, i);
      } else {
        copies_of[source->second].push_back(i);
      }
    }
    std::vector<bool> planned(todo.size(), false);
    while (!due.empty()) {
      const auto [pass, i] = due.top();
      due.pop();
      plan_copy(*todo[i]);
      planned[i] = true;
      for (const std::size_t copy : copies_of[i]) due.emplace(copy > i ? pass : pass + 1, copy);
    }
    for (std::size_t i = 0; i < todo.size(); ++i) {
      if (!planned[i])
        plan_.diagnostics.error("copy_of forms a cycle", to_string(address_of(*todo[i])), todo[i]->where);
    }
  }

  void plan_copy(const ContainerSpec& c) {
    const Address target = address_of(c);
    const auto& src_spec = fleet_.containers.at(c.copy_of->container);
    const Address source = address_of(src_spec, c.copy_of->snapshot);
    if (src_spec.remote.empty()) {
      const std::string why = "its copy source " + src_spec.name + " is not placed";
      plan_.not_planned[instance_address(target)] = why;
      plan_.diagnostics.warning(why + "; not planned", to_string(target), c.where);
      return;
    }
    if (known_remote(src_spec.remote) == nullptr) {
      plan_.diagnostics.warning("its copy source is on unknown remote '" + src_spec.remote + "'; not planned",
                                to_string(target), std::nullopt);
      return;
    }
    if (src_spec.state == DesiredState::absent) {
      plan_.diagnostics.error("copy_of names '" + src_spec.name + "', which is declared absent", to_string(target),
                              c.where, "declare the source, or launch this container from an image");
      return;
    }
    const bool source_exists = created_by_.count(src_spec.name) != 0 || source_is_live(src_spec);
    if (!source_exists) {
      // Its source could not be planned either (that has its own diagnostic); if that makes the
      // plan incomplete, this container is just as unplanned.
      const std::string src_addr = instance_address(address_of(src_spec));
      if (const auto why = plan_.not_planned.find(src_addr); why != plan_.not_planned.end()) {
        plan_.not_planned[to_string(target)] = "its copy source " + src_addr + " is not planned: " + why->second;
      }
      return;
    }

    const bool cross = src_spec.remote != c.remote;  // another project on the same remote is a local copy
    auto& copy = add(ActionKind::copy, target,
                     std::string{"declared as a copy of "} + to_string(source) + (cross ? " on another remote" : "") +
                         ", does not exist; then " + std::string{model::to_string(c.state)});
    copy.source = source;
    set_spec(copy, c);
    if (c.target) copy.member = *c.target;
    copy.after["source"] = to_string(source);
    if (const auto it = created_by_.find(src_spec.name); it != created_by_.end()) copy.depends_on.push_back(it->second);
    if (c.copy_of->snapshot) {
      if (const auto it = snapshot_by_.find(src_spec.name + "/" + *c.copy_of->snapshot); it != snapshot_by_.end()) {
        copy.depends_on.push_back(it->second);
      }
    }
    const std::string copy_id = copy.id;
    created_by_[c.name] = copy_id;
    provision_new(c, copy_id);
    plan_new_snapshots(c, created_by_[c.name]);  // of the container as provisioned
  }

  bool source_is_live(const ContainerSpec& src) const {
    const auto* remote = known_remote(src.remote);
    if (remote == nullptr) return false;
    const auto it = remote->instances.find(key_of(src));
    return it != remote->instances.end() && !it->second.placeholder;  // a placeholder cannot be copied
  }

  void plan_prunes() {
    for (const auto& [rname, lr] : live_.remotes) {
      if (lr.status != RemoteStatus::ok) continue;
      for (const auto& [key, inst] : lr.instances) {
        // Declared in its project (here or elsewhere: a move source). While the declared one does not
        // exist, one of its name in another project makes the plan an error (in_another_project).
        if (const auto spec = fleet_.containers.find(inst.name);
            spec != fleet_.containers.end() && spec->second.project == inst.project) {
          continue;
        }
        if (inst.placeholder) continue;             // on a member the cluster cannot reach: unknown
        if (!inst.owned_by(fleet_.name)) continue;  // never touch what this fleet does not own
        if (held_.count(inst.name) != 0) continue;  // an interrupted run's leftover: not pruned
        const Address addr{rname, inst.name, std::nullopt, inst.project};
        if (!prune_) {
          plan_.diagnostics.warning("owned by this fleet but no longer declared; kept", to_string(addr), std::nullopt,
                                    "run with --prune (or prune: true) to delete it");
          continue;
        }
        auto& del = add(ActionKind::delete_, addr, "owned by this fleet, not declared; pruning");
        del.disruption = Disruption::destroy;
        del.before = {{"state", model::to_string(inst.power)}};
      }
    }
  }

  const model::Fleet& fleet_;
  const model::LiveState& live_;
  bool prune_;
  std::vector<Target> replace_;
  const std::map<std::string, std::string>& held_;
  const std::optional<std::string>& digest_key_;
  Plan plan_;
  std::map<std::string, std::string> created_by_;   // container -> id of the launch/copy/move that makes it
  std::map<std::string, std::string> snapshot_by_;  // "c/snap" -> id of the snapshot action
  std::vector<const ContainerSpec*> pending_copies_;
  std::map<std::string, std::string> placement_of_;  // placed container -> its explanation
};

}  // namespace

Plan compute_plan(const model::Fleet& fleet, const model::LiveState& live, const PlanOptions& options) {
  if (!has_placements(fleet) && options.drain.empty() &&
      std::none_of(fleet.remotes.begin(), fleet.remotes.end(), [](const auto& r) { return r.second.drain; })) {
    return Planner(fleet, live, options).run();
  }
  Placed placed = place(fleet, live, options.drain);
  const model::Fleet placed_fleet = std::move(placed.fleet);  // the planner refers to it while it runs
  Planner planner(placed_fleet, live, options);
  planner.take_placement(std::move(placed));
  return planner.run();
}

}  // namespace berth::plan

namespace berth::plan {

Plan compute_destroy_plan(const model::Fleet& fleet, const model::LiveState& live) {
  Plan plan;
  plan.destroy = true;
  summarise_remotes(fleet, live, plan);
  for (const auto& [name, lr] : live.remotes) {
    if (fleet.remotes.count(name) == 0 || lr.status != model::RemoteStatus::ok) continue;
    for (const auto& [key, inst] : lr.instances) {
      if (!inst.owned_by(fleet.name)) continue;
      Action del;
      del.kind = ActionKind::delete_;
      del.address = Address{name, inst.name, std::nullopt, inst.project};
      del.id = "delete " + to_string(del.address);
      del.reason = "owned by fleet '" + fleet.name + "'; destroy";
      del.disruption = Disruption::destroy;
      del.before = {{"state", model::to_string(inst.power)}};
      plan.actions.push_back(std::move(del));
    }
  }
  return plan;
}

std::vector<std::string> stale_addresses(const Plan& plan, const model::LiveState& live) {
  std::set<std::pair<std::string, std::string>> touched;  // (remote, instance key)
  for (const auto& a : plan.actions) {
    touched.emplace(a.address.remote, model::instance_key(a.address.project, a.address.container));
    if (a.source) touched.emplace(a.source->remote, model::instance_key(a.source->project, a.source->container));
  }
  std::vector<std::string> stale;
  for (const auto& [remote, container] : touched) {
    const std::string address = remote + ":" + container;
    const auto r = live.remotes.find(remote);
    if (r == live.remotes.end() || r->second.status != model::RemoteStatus::ok) {
      stale.push_back(address + " (remote unknown now)");
      continue;
    }
    const auto inst = r->second.instances.find(container);
    const auto basis = plan.basis.find(address);
    const bool was = basis != plan.basis.end();
    const bool is = inst != r->second.instances.end();
    if (was != is) {
      stale.push_back(address + (is ? " (appeared)" : " (vanished)"));
    } else if (was && basis->second != inst->second.digest) {
      stale.push_back(address + " (changed)");
    }
  }
  return stale;
}

}  // namespace berth::plan
