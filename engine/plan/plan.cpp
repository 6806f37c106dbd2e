#include "engine/plan/plan.hpp"

#include <algorithm>
#include <set>

#include "engine/model/provision.hpp"
#include "engine/util/printable.hpp"
#include "engine/util/scrypt.hpp"

namespace berth::plan {

std::string_view to_string(ActionKind k) {
  switch (k) {
    case ActionKind::launch: return "launch";
    case ActionKind::update: return "update";
    case ActionKind::start: return "start";
    case ActionKind::stop: return "stop";
    case ActionKind::freeze: return "freeze";
    case ActionKind::unfreeze: return "unfreeze";
    case ActionKind::snapshot: return "snapshot";
    case ActionKind::delete_snapshot: return "delete_snapshot";
    case ActionKind::copy: return "copy";
    case ActionKind::move: return "move";
    case ActionKind::delete_: return "delete";
    case ActionKind::restart: return "restart";
    case ActionKind::finish_transfer: return "finish_transfer";
    case ActionKind::undo_transfer: return "undo_transfer";
    case ActionKind::adopt: return "adopt";
    case ActionKind::recreate: return "recreate";
    case ActionKind::push: return "push";
    case ActionKind::exec: return "exec";
  }
  return "?";
}

std::optional<ActionKind> action_kind_from_string(std::string_view s) {
  for (const auto k :
       {ActionKind::launch, ActionKind::update, ActionKind::start, ActionKind::stop, ActionKind::freeze,
        ActionKind::unfreeze, ActionKind::snapshot, ActionKind::delete_snapshot, ActionKind::copy, ActionKind::move,
        ActionKind::delete_, ActionKind::restart, ActionKind::finish_transfer, ActionKind::undo_transfer,
        ActionKind::adopt, ActionKind::recreate, ActionKind::push, ActionKind::exec}) {
    if (to_string(k) == s) return k;
  }
  return std::nullopt;
}

std::string_view to_string(Disruption d) {
  switch (d) {
    case Disruption::none: return "none";
    case Disruption::restart: return "restart";
    case Disruption::move: return "move";
    case Disruption::recreate: return "recreate";
    case Disruption::destroy: return "destroy";
  }
  return "?";
}

std::optional<Disruption> disruption_from_string(std::string_view s) {
  for (const auto d :
       {Disruption::none, Disruption::restart, Disruption::move, Disruption::recreate, Disruption::destroy}) {
    if (to_string(d) == s) return d;
  }
  return std::nullopt;
}

std::string to_string(const Address& a) {
  std::string out = instance_address(a);
  if (a.snapshot) out += "/" + *a.snapshot;
  return out;
}

std::string instance_address(const Address& a) {
  return a.remote + ":" + model::instance_key(a.project, a.container);
}

std::optional<Address> parse_instance_address(std::string_view text) {
  const auto colon = text.find(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == text.size()) return std::nullopt;
  Address a;
  a.remote = std::string{text.substr(0, colon)};
  std::string_view rest = text.substr(colon + 1);
  if (const auto slash = rest.find('/'); slash != std::string_view::npos) {
    if (slash == 0 || slash + 1 == rest.size()) return std::nullopt;
    a.project = std::string{rest.substr(0, slash)};
    rest = rest.substr(slash + 1);
    if (rest.find('/') != std::string_view::npos) return std::nullopt;
  }
  a.container = std::string{rest};
  return a;
}

bool Plan::complete() const {
  return not_planned.empty() && std::all_of(remotes.begin(), remotes.end(),
                                            [](const auto& r) { return r.second.status == model::RemoteStatus::ok; });
}

std::string to_string(const Target& t) {
  std::string name =
      t.project && (!t.remote || *t.project != model::default_project) ? *t.project + "/" + t.container : t.container;
  return t.remote ? *t.remote + ":" + name : name;
}

bool matches(const Target& target, const Address& address) {
  return address.container == target.container && (!target.remote || *target.remote == address.remote) &&
         (!target.project || *target.project == address.project);
}

std::vector<std::string> parse_targets(const std::vector<std::string>& texts, const model::Fleet& fleet,
                                       bool allow_undeclared, std::vector<Target>& out) {
  std::vector<std::string> problems;
  for (const auto& text : texts) {
    Target t;
    const auto colon = text.find(':');
    if (colon != std::string::npos) {
      t.remote = text.substr(0, colon);
      t.container = text.substr(colon + 1);
    } else {
      t.container = text;
    }
    if (const auto slash = t.container.find('/'); slash != std::string::npos) {
      t.project = t.container.substr(0, slash);
      t.container = t.container.substr(slash + 1);
    } else if (t.remote) {
      t.project = std::string{model::default_project};  // "a:web" is web in the default project, as printed
    }
    const std::string shown = "'" + util::printable(text) + "'";
    if (t.container.empty() || (t.remote && t.remote->empty()) || (t.project && t.project->empty()) ||
        t.container.find('/') != std::string::npos) {
      problems.push_back(shown +
                         " is not an address: write it as the plan prints it (remote:container, or "
                         "remote:project/container outside the default project) or as the container's name");
      continue;
    }
    if (t.remote && fleet.remotes.count(*t.remote) == 0) {
      problems.push_back(shown + ": the fleet file declares no remote '" + util::printable(*t.remote) + "'");
      continue;
    }
    const auto spec = fleet.containers.find(t.container);
    if (spec == fleet.containers.end() && !allow_undeclared) {
      problems.push_back(shown + ": the fleet file declares no container '" + util::printable(t.container) + "'");
      continue;
    }
    if (spec != fleet.containers.end() && !allow_undeclared && t.project && *t.project != spec->second.project) {
      problems.push_back(shown + ": the fleet file declares '" + util::printable(t.container) + "' in project '" +
                         spec->second.project + "', not '" + util::printable(*t.project) + "'");
      continue;
    }
    out.push_back(std::move(t));
  }
  return problems;
}

void limit_to_targets(Plan& plan, const std::vector<Target>& targets) {
  if (targets.empty()) return;
  std::map<std::string, const Action*> by_id;
  for (const auto& a : plan.actions) by_id.emplace(a.id, &a);
  std::set<std::string> keep;
  std::vector<const Action*> todo;
  for (const auto& a : plan.actions) {
    // Recovery actions stay whatever is targeted: a saved plan must hold the recovery that is due.
    const bool hit = a.recovery.has_value() || std::any_of(targets.begin(), targets.end(), [&](const Target& t) {
                       return matches(t, a.address) || (a.source && matches(t, *a.source));
                     });
    if (hit && keep.insert(a.id).second) todo.push_back(&a);
  }
  while (!todo.empty()) {
    const Action* a = todo.back();
    todo.pop_back();
    for (const auto& dep : a->depends_on) {
      const auto it = by_id.find(dep);
      if (it != by_id.end() && keep.insert(dep).second) todo.push_back(it->second);
    }
  }
  const std::size_t before = plan.actions.size();
  std::erase_if(plan.actions, [&](const Action& a) { return keep.count(a.id) == 0; });
  std::erase_if(plan.not_planned, [&](const auto& entry) {
    const auto address = parse_instance_address(entry.first);
    return !address ||
           std::none_of(targets.begin(), targets.end(), [&](const Target& t) { return matches(t, *address); });
  });
  std::string list;
  for (const auto& t : targets) {
    plan.targets.push_back(to_string(t));
    list += (list.empty() ? "" : ", ") + util::printable(to_string(t));
  }
  plan.diagnostics.warning("the plan is limited to the targets (" + list + ") and what they depend on; " +
                               std::to_string(before - plan.actions.size()) + " other action(s) are not planned",
                           "", std::nullopt, "plan without --target to see and apply everything the file declares");
}

namespace {

// The text a sensitive value is digested as: a config value itself, a device as its JSON.
std::optional<std::string> secret_text(const Action& a, const std::string& path) {
  if (path.rfind("config.", 0) == 0) {
    const auto it = a.config.find(path.substr(7));
    if (it != a.config.end()) return it->second;
  } else if (path.rfind("devices.", 0) == 0) {
    const auto it = a.devices.find(path.substr(8));
    if (it != a.devices.end()) return util::json_text(nlohmann::json(it->second));
  }
  return std::nullopt;
}

void collect_strings(const nlohmann::json& v, std::vector<std::string>& out) {
  if (v.is_string()) {
    if (v.get<std::string>() != sensitive_text) out.push_back(v.get<std::string>());
  } else if (v.is_structured()) {
    for (const auto& item : v) collect_strings(item, out);
  }
}

}  // namespace

std::vector<std::string> secret_values(const Plan& plan) {
  std::vector<std::string> out;
  for (const auto& a : plan.actions) {
    for (const auto& c : a.changes) {
      if (!c.sensitive) continue;
      collect_strings(c.before, out);
      collect_strings(c.after, out);
    }
    for (const auto& path : a.sensitive) {
      if (path.rfind("config.", 0) == 0) {
        if (const auto it = a.config.find(path.substr(7)); it != a.config.end()) out.push_back(it->second);
      } else if (path.rfind("devices.", 0) == 0) {
        if (const auto it = a.devices.find(path.substr(8)); it != a.devices.end()) {
          collect_strings(nlohmann::json(it->second), out);
        }
      }
    }
  }
  return out;
}

void fill_secret_digests(Plan& plan) {
  for (auto& a : plan.actions) {
    a.secret_digests.clear();
    for (const auto& path : a.sensitive) {
      if (const auto text = secret_text(a, path)) a.secret_digests[path] = util::secret_digest(*text);
    }
  }
}

std::vector<std::string> restore_secrets(Plan& plan, const model::Fleet& fleet) {
  std::vector<std::string> problems;
  for (auto& a : plan.actions) {
    if (a.sensitive.empty()) continue;
    const auto spec = fleet.containers.find(a.address.container);
    for (const auto& path : a.sensitive) {
      const auto digest = a.secret_digests.find(path);
      if (digest == a.secret_digests.end()) {
        // Nothing recorded: the plan sets no value there (a removal), or it was damaged.
        if (secret_text(a, path)) problems.push_back(a.id + ": " + path + " has no recorded digest");
        continue;
      }
      // The value the fleet file declares now: a config value, or a device's options.
      std::optional<nlohmann::json> declared;
      if (spec != fleet.containers.end()) {
        const auto& c = spec->second;
        if (path.rfind("config.", 0) == 0) {
          if (const auto it = c.config.find(path.substr(7)); it != c.config.end()) declared = it->second;
        } else if (const auto it = c.devices.find(path.substr(8)); it != c.devices.end()) {
          declared = nlohmann::json(it->second);
        }
      }
      if (!declared) {
        problems.push_back(a.id + ": " + path + " is no longer declared for " + a.address.container);
        continue;
      }
      const std::string text = declared->is_string() ? declared->get<std::string>() : util::json_text(*declared);
      if (!util::verify_secret_digest(text, digest->second)) {
        problems.push_back(a.id + ": the value of " + path +
                           " differs from when the plan was made (did its environment variable change?)");
        continue;
      }
      if (declared->is_string()) {
        a.config[path.substr(7)] = text;
      } else {
        a.devices[path.substr(8)] = declared->get<model::ConfigMap>();
      }
      for (auto& c : a.changes) {
        if (c.path == path && !c.after.is_null()) c.after = *declared;
      }
    }
  }
  return problems;
}

std::vector<std::string> restore_contents(Plan& plan, const model::Fleet& fleet) {
  const auto& digest_key = fleet.digest_key;
  std::vector<std::string> problems;
  // The digest the plan will record, which the content from the file now must have.
  const auto planned = [](const Action& a, const std::string& path) -> std::optional<std::string> {
    for (const auto& c : a.changes) {
      if (c.path == path && c.after.is_string()) return c.after.get<std::string>();
    }
    return std::nullopt;
  };
  for (auto& a : plan.actions) {
    if (a.kind != ActionKind::push && a.kind != ActionKind::exec) continue;
    const auto spec = fleet.containers.find(a.address.container);
    if (spec == fleet.containers.end()) {
      problems.push_back(a.id + ": " + a.address.container + " is no longer declared");
      continue;
    }
    const auto& c = spec->second;
    if (a.kind == ActionKind::push) {
      for (auto& file : a.files) {
        const auto declared = c.files.find(file.path);
        const auto want = planned(a, "files." + file.path);
        const auto now = declared == c.files.end() ? std::nullopt : model::file_digest(declared->second, digest_key);
        if (declared == c.files.end()) {
          problems.push_back(a.id + ": " + file.path + " is no longer declared");
        } else if (!want || !now) {
          problems.push_back(a.id + ": " + file.path +
                             " holds a secret and has no digest to check it against (berth's digest key was missing)");
        } else if (*want != *now) {
          problems.push_back(a.id + ": " + file.path + " differs from when the plan was made");
        } else {
          file = declared->second;
        }
      }
      continue;
    }
    if (!a.exec) {
      problems.push_back(a.id + ": the plan names no command");
      continue;
    }
    const auto declared =
        std::find_if(c.exec.begin(), c.exec.end(), [&](const model::ExecSpec& e) { return e.name == a.exec->name; });
    const auto want = planned(a, "exec." + a.exec->name);
    if (declared == c.exec.end()) {
      problems.push_back(a.id + ": the command is no longer declared");
      continue;
    }
    const auto now = model::exec_digest(*declared, c, digest_key);
    if (want && now && *want != *now) {
      problems.push_back(a.id + ": the command differs from when the plan was made");
    } else if (want.has_value() != now.has_value()) {
      problems.push_back(a.id + ": the command's digest cannot be checked (berth's digest key changed?)");
    } else if (!want && !declared->sensitive_environment.empty()) {
      problems.push_back(a.id +
                         ": the command's environment holds a secret and has no digest to check it against "
                         "(berth's digest key was missing)");
    } else {
      a.exec = *declared;
    }
  }
  return problems;
}

void grant_consent(Plan& plan, ConsentFlags flags) {
  plan.consent.restart = plan.consent.restart || flags.restart;
  plan.consent.move = plan.consent.move || flags.move;
  plan.consent.recreate = plan.consent.recreate || flags.recreate;
  for (auto& a : plan.actions) {
    if (a.disruption == Disruption::restart && flags.restart) a.consented = true;
    if (a.disruption == Disruption::move && flags.move) a.consented = true;
    if (a.disruption == Disruption::recreate && flags.recreate) a.consented = true;
  }
}

std::map<std::string, std::string> refusals(const Plan& plan) {
  std::map<std::string, std::string> refused;
  for (const auto& a : plan.actions) {
    if (a.consented) continue;
    switch (a.disruption) {
      case Disruption::restart:
        refused[a.id] = "needs a restart: pass --allow-restart or set restart: allowed on the container";
        break;
      case Disruption::move:
        refused[a.id] = "needs a move: pass --allow-move or set move: allowed on the container";
        break;
      case Disruption::recreate:
        refused[a.id] =
            "recreates the container (its data and snapshots are not kept): pass --allow-recreate or set recreate: "
            "allowed on the container";
        break;
      default: refused[a.id] = "needs consent"; break;
    }
  }
  return refused;
}

namespace {

model::LiveInstance* find_instance(model::LiveState& live, const Address& a) {
  const auto r = live.remotes.find(a.remote);
  if (r == live.remotes.end()) return nullptr;
  const auto i = r->second.instances.find(model::instance_key(a.project, a.container));
  return i == r->second.instances.end() ? nullptr : &i->second;
}

void erase_instance(model::LiveState& live, const Address& a) {
  if (const auto r = live.remotes.find(a.remote); r != live.remotes.end()) {
    r->second.instances.erase(model::instance_key(a.project, a.container));
  }
}

}  // namespace

model::LiveState after_recovery(model::LiveState live, const std::vector<Action>& recovery) {
  for (const auto& a : recovery) {
    if (a.kind == ActionKind::undo_transfer) {
      erase_instance(live, a.address);
    } else if (a.kind == ActionKind::finish_transfer) {
      if (auto* target = find_instance(live, a.address)) {
        target->config.erase(std::string{model::incomplete_key});
        target->digest = model::digest_of(*target);
      }
      if (a.recovery && a.recovery->transfer == "move" && a.source) erase_instance(live, *a.source);
    }
  }
  return live;
}

void prepend_recovery(Plan& plan, std::vector<Action> recovery) {
  if (recovery.empty()) return;
  // Container (instance_key: its project and name) -> recovery ids.
  std::map<std::string, std::vector<std::string>> by_container;
  const auto key = [](const Address& a) { return model::instance_key(a.project, a.container); };
  for (const auto& r : recovery) {
    by_container[key(r.address)].push_back(r.id);
    if (r.source) by_container[key(*r.source)].push_back(r.id);
  }
  for (auto& a : plan.actions) {
    std::set<std::string> deps(a.depends_on.begin(), a.depends_on.end());
    for (const auto* address : {&a.address, a.source ? &*a.source : nullptr}) {
      if (address == nullptr) continue;
      if (const auto it = by_container.find(key(*address)); it != by_container.end()) {
        for (const auto& id : it->second) {
          if (deps.insert(id).second) a.depends_on.push_back(id);
        }
      }
    }
  }
  std::move(plan.actions.begin(), plan.actions.end(), std::back_inserter(recovery));
  plan.actions = std::move(recovery);
}

std::map<std::string, std::string> basis_of(const model::LiveState& live) {
  std::map<std::string, std::string> basis;
  for (const auto& [name, remote] : live.remotes) {
    if (remote.status != model::RemoteStatus::ok) continue;
    for (const auto& [iname, inst] : remote.instances) basis[name + ":" + iname] = inst.digest;
  }
  return basis;
}

}  // namespace berth::plan
