#include <cstdint>
#include <map>
#include <set>
#include <utility>

#include "engine/config/url.hpp"
#include "engine/plan/render.hpp"

namespace berth::plan {
namespace {

using nlohmann::json;

json address_json(const std::optional<Address>& a) {
  return a ? json(to_string(*a)) : json(nullptr);
}

json diagnostic_json(const diag::Diagnostic& d) {
  json location = nullptr;
  if (d.where) {
    location = d.where->file + ":" + std::to_string(d.where->line) + ":" + std::to_string(d.where->column);
  }
  return {{"severity", d.severity == diag::Severity::error ? "error" : "warning"},
          {"summary", d.summary},
          {"detail", d.detail},
          {"path", d.path},
          {"location", location}};
}

json masked(const json& v, bool sensitive) {
  return sensitive && !v.is_null() ? json(sensitive_text) : v;
}

json action_json(const Action& a) {
  json changes = json::array();
  for (const auto& c : a.changes) {
    json change = {
        {"path", c.path}, {"before", masked(c.before, c.sensitive)}, {"after", masked(c.after, c.sensitive)}};
    if (c.sensitive) change["sensitive"] = true;
    changes.push_back(std::move(change));
  }
  json out = {{"id", a.id},
              {"action", to_string(a.kind)},
              {"address", to_string(a.address)},
              {"remote", a.address.remote},
              {"container", a.address.container},
              {"snapshot", a.address.snapshot ? json(*a.address.snapshot) : json(nullptr)},
              {"source", address_json(a.source)},
              {"before", a.before},
              {"after", a.after},
              {"changes", changes},
              {"reason", a.reason},
              {"disruption", to_string(a.disruption)},
              {"consented", a.consented},
              {"depends_on", a.depends_on}};
  // Only outside the default project: a plan without projects reads as before.
  if (a.address.project != model::default_project) out["project"] = a.address.project;
  if (a.source && a.source->project != model::default_project) out["source_project"] = a.source->project;
  // What apply needs to carry the action out, beyond what a reader needs to see.
  json spec = json::object();
  if (a.image && a.image->server) {
    json image = {{"server", a.image->server->url},
                  {"protocol", model::to_string(a.image->server->protocol)},
                  {"alias", a.image->alias}};
    if (a.image->fingerprint) image["fingerprint"] = *a.image->fingerprint;
    if (!a.image->server->certificate.empty()) image["certificate"] = a.image->server->certificate;
    spec["image"] = std::move(image);
  } else if (a.image) {
    spec["image"] = {{"remote", a.image->remote}, {"alias", a.image->alias}};
  }
  if (!a.config.empty()) {
    spec["config"] = a.config;
    for (const auto& [k, v] : a.config) spec["config"][k] = masked(v, a.sensitive.count("config." + k) != 0);
  }
  if (!a.devices.empty()) {
    spec["devices"] = a.devices;
    for (const auto& [d, keys] : a.devices) {
      if (a.sensitive.count("devices." + d) != 0) spec["devices"][d] = {{"type", sensitive_text}};
    }
  }
  if (!a.sensitive.empty()) spec["sensitive"] = a.sensitive;
  if (!a.secret_digests.empty()) spec["secrets"] = a.secret_digests;
  if (a.profiles) spec["profiles"] = *a.profiles;
  if (a.ephemeral) spec["ephemeral"] = *a.ephemeral;
  if (a.description) spec["description"] = *a.description;
  if (a.target_state) spec["state"] = model::to_string(*a.target_state);
  if (!a.member.empty()) spec["member"] = a.member;
  if (!a.files.empty()) {
    // No content: applying a saved plan takes it from the fleet file again (restore_contents).
    json files = json::array();
    for (const auto& f : a.files) {
      json file = {{"path", f.path}, {"mode", f.mode}, {"uid", f.uid}, {"gid", f.gid}, {"sensitive", f.sensitive}};
      if (f.source) file["source"] = *f.source;
      files.push_back(std::move(file));
    }
    spec["files"] = std::move(files);
  }
  if (a.exec) {
    json environment = json::object();
    for (const auto& [k, v] : a.exec->environment) {
      environment[k] = masked(v, a.exec->sensitive_environment.count(k) != 0);
    }
    spec["exec"] = {{"name", a.exec->name},
                    {"command", a.exec->command},
                    {"when", model::to_string(a.exec->when)},
                    {"watch", a.exec->watch},
                    {"environment", std::move(environment)},
                    {"sensitive_environment", a.exec->sensitive_environment},
                    {"cwd", a.exec->cwd},
                    {"uid", a.exec->uid},
                    {"gid", a.exec->gid},
                    {"allow_failure", a.exec->allow_failure}};
  }
  out["spec"] = spec;
  if (a.recovery) {
    out["recovery"] = {{"settles", a.recovery->settles},
                       {"run_id", a.recovery->run_id},
                       {"transfer", a.recovery->transfer},
                       {"found", a.recovery->found},
                       {"proof", a.recovery->proof}};
  }
  return out;
}

// "remote:[project/]container[/snapshot]" as to_string(Address) writes it; the project comes
// from its own member ("project", "source_project"), since "a:x/y" alone reads both ways.
std::optional<Address> parse_address(const std::string& text, const std::string& project) {
  const auto colon = text.find(':');
  if (colon == std::string::npos || colon == 0) return std::nullopt;
  Address a;
  a.remote = text.substr(0, colon);
  a.project = project;
  std::string rest = text.substr(colon + 1);
  if (project != model::default_project) {
    if (project.empty() || !rest.starts_with(project + "/")) return std::nullopt;
    rest = rest.substr(project.size() + 1);
  }
  if (const auto slash = rest.find('/'); slash != std::string::npos) {
    a.snapshot = rest.substr(slash + 1);
    rest = rest.substr(0, slash);
  }
  if (rest.empty()) return std::nullopt;
  a.container = rest;
  return a;
}

// A whole number that fits T, or nullopt. get<T>() would cast a float (1e300) or an integer out of
// T's range unchecked, and the cast of such a float is undefined behaviour: a saved plan may hold
// anything.
template <class T>
std::optional<T> whole_number(const json& j) {
  if (j.is_number_unsigned()) {
    const auto v = j.get<std::uint64_t>();
    if (std::in_range<T>(v)) return static_cast<T>(v);
  } else if (j.is_number_integer()) {
    const auto v = j.get<std::int64_t>();
    if (std::in_range<T>(v)) return static_cast<T>(v);
  }
  return std::nullopt;
}

// "file:line:col" back into a location; the file part may itself contain colons.
std::optional<diag::SourceLocation> parse_location(const json& j) {
  if (!j.is_string()) return std::nullopt;
  const auto text = j.get<std::string>();
  const auto c2 = text.rfind(':');
  if (c2 == std::string::npos || c2 == 0) return std::nullopt;
  const auto c1 = text.rfind(':', c2 - 1);
  if (c1 == std::string::npos) return std::nullopt;
  try {
    return diag::SourceLocation{text.substr(0, c1), std::stoi(text.substr(c1 + 1, c2 - c1 - 1)),
                                std::stoi(text.substr(c2 + 1))};
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// A plan's actions must have unique ids and list every dependency before its dependents (the
// order the planner writes): that also rules out cycles and dangling ids, which the walk cannot
// run. Linear in the number of dependencies.
std::optional<std::string> structure_problem(const Plan& plan) {
  std::set<std::string> seen;
  for (const auto& a : plan.actions) {
    for (const auto& dep : a.depends_on) {
      if (seen.count(dep) == 0) {
        return "action '" + a.id + "' depends on '" + dep + "', which is not an earlier action of the plan";
      }
    }
    if (!seen.insert(a.id).second) return "action id '" + a.id + "' appears twice";
  }
  return std::nullopt;
}

}  // namespace

json to_json(const Plan& plan) {
  json remotes = json::object();
  for (const auto& [name, r] : plan.remotes) {
    remotes[name] = {{"url", r.url},
                     {"status", r.status == model::RemoteStatus::ok ? "ok" : "unknown"},
                     {"error", r.error},
                     {"instances", r.instances}};
    if (!r.members.empty()) remotes[name]["members"] = r.members;  // an LXD cluster
  }
  json actions = json::array();
  std::map<std::string, int> counts;
  for (const auto& a : plan.actions) {
    actions.push_back(action_json(a));
    ++counts[std::string{to_string(a.kind)}];
  }
  json summary = json::object();
  for (const auto& [k, n] : counts) summary[k] = n;
  summary["total"] = plan.actions.size();
  json diagnostics = json::array();
  for (const auto& d : plan.diagnostics.items()) diagnostics.push_back(diagnostic_json(d));
  json out = {{"format_version", plan_json_format_version},
              {"fleet", {{"path", plan.fleet_path}, {"digest", plan.fleet_digest}}},
              {"complete", plan.complete()},
              {"remotes", remotes},
              {"actions", actions},
              {"summary", summary},
              {"diagnostics", diagnostics},
              {"basis", plan.basis},
              {"consent",
               {{"restart", plan.consent.restart}, {"move", plan.consent.move}, {"recreate", plan.consent.recreate}}},
              {"not_planned", plan.not_planned},
              {"destroy", plan.destroy},
              {"targets", plan.targets}};
  // Only a plan with placed containers (or a drain) has these: other plans read as before.
  if (!plan.placements.empty()) {
    json placements = json::array();
    for (const auto& p : plan.placements) {
      json entry = {{"container", p.container}, {"project", p.project}, {"policy", p.policy},
                    {"remote", p.remote},       {"from", p.from},       {"explanation", p.explanation},
                    {"rejected", p.rejected}};
      if (!p.member.empty()) entry["member"] = p.member;  // on an LXD cluster only
      placements.push_back(std::move(entry));
    }
    out["placements"] = std::move(placements);
  }
  if (!plan.drain.empty()) out["drain"] = plan.drain;
  return out;
}

ParsedPlan plan_from_json(const json& j, const std::string& origin) {
  ParsedPlan result;
  auto& diags = result.diagnostics;
  auto fail = [&](const std::string& what) {
    diags.error(what, origin, std::nullopt, "the file is not a plan written by this version of berth");
    return result;
  };
  try {
    if (!j.is_object()) return fail("not a JSON object");
    const auto version = j.find("format_version");
    if (version == j.end() || !version->is_number_integer() ||
        version->get<std::int64_t>() != plan_json_format_version) {
      return fail("unsupported plan format_version " + (version == j.end() ? std::string{"(none)"} : version->dump()));
    }
    Plan plan;
    plan.fleet_path = j.at("fleet").at("path").get<std::string>();
    plan.fleet_digest = j.at("fleet").at("digest").get<std::string>();
    for (const auto& [name, r] : j.at("remotes").items()) {
      RemoteSummary s;
      s.url = r.at("url").get<std::string>();
      s.status = r.at("status").get<std::string>() == "ok" ? model::RemoteStatus::ok : model::RemoteStatus::unknown;
      s.error = r.at("error").get<std::string>();
      const auto instances = whole_number<std::size_t>(r.at("instances"));
      if (!instances) return fail("malformed instances of remote '" + name + "'");
      s.instances = *instances;
      if (const auto members = r.find("members"); members != r.end()) {
        s.members = members->get<std::map<std::string, std::string>>();
      }
      plan.remotes.emplace(name, std::move(s));
    }
    for (const auto& ja : j.at("actions")) {
      Action a;
      a.id = ja.at("id").get<std::string>();
      const auto kind = action_kind_from_string(ja.at("action").get<std::string>());
      const auto project = ja.value("project", std::string{model::default_project});
      const auto address = parse_address(ja.at("address").get<std::string>(), project);
      const auto disruption = disruption_from_string(ja.at("disruption").get<std::string>());
      if (!kind || !address || !disruption) return fail("malformed action '" + a.id + "'");
      a.kind = *kind;
      a.address = *address;
      a.disruption = *disruption;
      if (!ja.at("source").is_null()) {
        a.source = parse_address(ja.at("source").get<std::string>(),
                                 ja.value("source_project", std::string{model::default_project}));
        if (!a.source) return fail("malformed source in action '" + a.id + "'");
      }
      a.before = ja.at("before");
      a.after = ja.at("after");
      for (const auto& c : ja.at("changes")) {
        a.changes.push_back(
            {c.at("path").get<std::string>(), c.at("before"), c.at("after"), c.value("sensitive", false)});
      }
      a.reason = ja.at("reason").get<std::string>();
      a.consented = ja.at("consented").get<bool>();
      a.depends_on = ja.at("depends_on").get<std::vector<std::string>>();
      const auto& spec = ja.at("spec");
      if (spec.contains("image")) {
        const auto& image = spec["image"];
        if (image.contains("server")) {
          model::ImageServer server;
          const auto url = config::parse_image_server_url(image.at("server").get<std::string>());
          const auto protocol = model::image_protocol_from_string(image.at("protocol").get<std::string>());
          if (!url.url || !protocol) return fail("malformed image server in action '" + a.id + "'");
          server.url = url.url->to_string();
          server.protocol = *protocol;
          if (image.contains("certificate")) server.certificate = image.at("certificate").get<std::string>();
          std::optional<std::string> fingerprint;
          if (image.contains("fingerprint")) {
            fingerprint = config::normalize_image_fingerprint(image.at("fingerprint").get<std::string>());
            if (!fingerprint) return fail("malformed image fingerprint in action '" + a.id + "'");
          }
          a.image = model::ImageRef{{}, image.at("alias").get<std::string>(), std::move(server), fingerprint};
        } else {
          a.image = model::ImageRef{image.at("remote").get<std::string>(), image.at("alias").get<std::string>(),
                                    std::nullopt, std::nullopt};
        }
      }
      if (spec.contains("config")) a.config = spec["config"].get<model::ConfigMap>();
      if (spec.contains("devices")) a.devices = spec["devices"].get<model::DeviceMap>();
      if (spec.contains("profiles")) a.profiles = spec["profiles"].get<std::vector<std::string>>();
      if (spec.contains("ephemeral")) a.ephemeral = spec["ephemeral"].get<bool>();
      if (spec.contains("description")) a.description = spec["description"].get<std::string>();
      if (spec.contains("sensitive")) a.sensitive = spec["sensitive"].get<std::set<std::string>>();
      if (spec.contains("secrets")) a.secret_digests = spec["secrets"].get<std::map<std::string, std::string>>();
      if (spec.contains("member")) a.member = spec["member"].get<std::string>();
      if (spec.contains("state")) {
        a.target_state = model::desired_state_from_string(spec["state"].get<std::string>());
        if (!a.target_state) return fail("malformed state in action '" + a.id + "'");
      }
      if (const auto files = spec.find("files"); files != spec.end()) {
        for (const auto& jf : *files) {
          model::FileSpec f;
          f.path = jf.at("path").get<std::string>();
          const auto mode = whole_number<int>(jf.at("mode"));
          const auto uid = whole_number<std::int64_t>(jf.at("uid"));
          const auto gid = whole_number<std::int64_t>(jf.at("gid"));
          if (!mode || !uid || !gid) return fail("malformed file in action '" + a.id + "'");
          f.mode = *mode;
          f.uid = *uid;
          f.gid = *gid;
          f.sensitive = jf.at("sensitive").get<bool>();
          if (jf.contains("source")) f.source = jf["source"].get<std::string>();
          a.files.push_back(std::move(f));
        }
      }
      if (const auto je = spec.find("exec"); je != spec.end()) {
        model::ExecSpec e;
        e.name = je->at("name").get<std::string>();
        e.command = je->at("command").get<std::vector<std::string>>();
        e.when = je->at("when").get<std::string>() == "change" ? model::ExecWhen::change : model::ExecWhen::create;
        e.watch = je->at("watch").get<std::vector<std::string>>();
        e.environment = je->at("environment").get<model::ConfigMap>();
        e.sensitive_environment = je->at("sensitive_environment").get<std::set<std::string>>();
        e.cwd = je->at("cwd").get<std::string>();
        const auto uid = whole_number<std::int64_t>(je->at("uid"));
        const auto gid = whole_number<std::int64_t>(je->at("gid"));
        if (!uid || !gid) return fail("malformed command in action '" + a.id + "'");
        e.uid = *uid;
        e.gid = *gid;
        e.allow_failure = je->at("allow_failure").get<bool>();
        a.exec = std::move(e);
      }
      if ((a.kind == ActionKind::exec) != a.exec.has_value() || (a.kind == ActionKind::push) == a.files.empty()) {
        return fail("malformed " + std::string{to_string(a.kind)} + " action '" + a.id + "'");
      }
      if (const auto r = ja.find("recovery"); r != ja.end()) {
        Recovery rec;
        const auto& settles = r->at("settles");
        const auto run_id = whole_number<std::int64_t>(r->at("run_id"));
        if (!settles.is_array() || !run_id) return fail("malformed recovery in action '" + a.id + "'");
        for (const auto& seq : settles) {
          const auto n = whole_number<std::int64_t>(seq);
          if (!n) return fail("malformed recovery in action '" + a.id + "'");
          rec.settles.push_back(*n);
        }
        rec.run_id = *run_id;
        rec.transfer = r->at("transfer").get<std::string>();
        rec.found = r->at("found").get<std::string>();
        rec.proof = r->at("proof");
        if (!rec.proof.is_object()) return fail("malformed recovery in action '" + a.id + "'");
        a.recovery = std::move(rec);
      }
      if (is_recovery(a.kind) != a.recovery.has_value()) return fail("malformed recovery in action '" + a.id + "'");
      plan.actions.push_back(std::move(a));
    }
    for (const auto& d : j.at("diagnostics")) {
      plan.diagnostics.add(
          {d.at("severity").get<std::string>() == "error" ? diag::Severity::error : diag::Severity::warning,
           d.at("summary").get<std::string>(), d.at("detail").get<std::string>(), d.at("path").get<std::string>(),
           parse_location(d.at("location"))});
    }
    if (auto problem = structure_problem(plan)) return fail(*problem);
    plan.basis = j.at("basis").get<std::map<std::string, std::string>>();
    if (const auto c = j.find("consent"); c != j.end()) {
      plan.consent.restart = c->at("restart").get<bool>();
      plan.consent.move = c->at("move").get<bool>();
      plan.consent.recreate = c->at("recreate").get<bool>();
    }
    plan.not_planned = j.at("not_planned").get<std::map<std::string, std::string>>();
    plan.destroy = j.at("destroy").get<bool>();
    plan.targets = j.at("targets").get<std::vector<std::string>>();
    if (const auto placements = j.find("placements"); placements != j.end()) {
      for (const auto& jp : placements->get_ref<const json::array_t&>()) {
        Placement p;
        p.container = jp.at("container").get<std::string>();
        p.project = jp.at("project").get<std::string>();
        p.policy = jp.at("policy").get<std::string>();
        p.remote = jp.at("remote").get<std::string>();
        p.from = jp.at("from").get<std::string>();
        p.member = jp.value("member", std::string{});
        p.explanation = jp.at("explanation").get<std::string>();
        p.rejected = jp.at("rejected").get<std::vector<std::string>>();
        plan.placements.push_back(std::move(p));
      }
    }
    if (const auto drain = j.find("drain"); drain != j.end()) plan.drain = drain->get<std::vector<std::string>>();
    result.plan = std::move(plan);
  } catch (const json::exception& e) {
    return fail(std::string{"malformed plan: "} + e.what());
  }
  return result;
}

}  // namespace berth::plan
