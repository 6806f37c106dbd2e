#include "engine/plan/render_parts.hpp"

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>
#include <utility>

#include "engine/model/managed.hpp"
#include "engine/model/provision.hpp"
#include "engine/util/printable.hpp"

namespace berth::plan::render_parts {
namespace {

// A JSON value as a user reads it: strings quoted, null as "(unset)", objects inline. JSON already
// escapes control characters; printable() takes care of DEL and the C1 range.
std::string show(const nlohmann::json& v) {
  if (v.is_null()) return "(unset)";
  return util::printable(util::json_text(v));
}

void change_line(std::vector<DetailLine>& out, const std::string& path, const std::string& before,
                 const std::string& after) {
  std::string text = util::printable(path);
  text += ": ";
  text += before;
  text += " -> ";
  text += after;
  out.push_back({LineKind::change, std::move(text)});
}

// berth's record of what it manages, as the list it holds rather than its JSON text.
std::string record_shown(const nlohmann::json& v) {
  if (!v.is_string()) return "(none)";
  const auto record = model::parse_record(v.get<std::string>());
  if (!record) return "(damaged)";
  std::string shown{"["};  // not "[" + string: GCC 12 warns falsely there (-Wrestrict, bug 105329)
  shown += util::printable(model::describe(*record));
  shown += ']';
  return shown;
}

// One line per change; a device changed in place, one line per key that differs.
void change_lines(std::vector<DetailLine>& out, const Change& c) {
  // The one place a sensitive value is masked for people: text and markdown both come through here.
  const auto value = [&](const nlohmann::json& v) {
    return c.sensitive && !v.is_null() ? std::string{sensitive_text} : show(v);
  };
  if (c.path.starts_with("files.") || c.path.starts_with("exec.")) {
    // Digests: what berth recorded on the instance, and what it will record.
    const bool file = c.path.starts_with("files.");
    const auto digest = [&](const nlohmann::json& v, bool before) -> std::string {
      if (v.is_string() && v.get<std::string>() == model::pending_digest) return "(not run yet)";
      if (v.is_string()) return model::short_digest(v.get<std::string>());
      if (before) return file ? "(not pushed by berth)" : "(never run)";
      return "(digest unknown: secret without berth's digest key)";
    };
    change_line(out, c.path.substr(file ? 6 : 5), digest(c.before, true), digest(c.after, false));
    return;
  }
  if (c.path == "config." + std::string{model::managed_key}) {
    change_line(out, "berth's record", record_shown(c.before), record_shown(c.after));
    return;
  }
  if (c.path.starts_with("devices.") && c.before.is_object() && c.after.is_object() && !c.sensitive) {
    std::set<std::string> keys;
    for (const auto& [k, v] : c.before.items()) keys.insert(k);
    for (const auto& [k, v] : c.after.items()) keys.insert(k);
    for (const auto& k : keys) {
      const auto b = c.before.find(k);
      const auto a = c.after.find(k);
      const nlohmann::json before = b == c.before.end() ? nlohmann::json() : *b;
      const nlohmann::json after = a == c.after.end() ? nlohmann::json() : *a;
      if (before != after) change_line(out, c.path + "." + k, show(before), show(after));
    }
    return;
  }
  change_line(out, c.path, value(c.before), value(c.after));
}

// Under a pushed file's digests: its mode, owner and where its content comes from.
void file_details(std::vector<DetailLine>& out, const Action& a, std::string_view path) {
  const auto f = std::find_if(a.files.begin(), a.files.end(), [&](const model::FileSpec& x) { return x.path == path; });
  if (f == a.files.end()) return;
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(f->mode));
  std::string text = "mode ";
  text += mode;
  text += ", owner ";
  text += std::to_string(f->uid);
  text += ':';
  text += std::to_string(f->gid);
  if (f->source) {
    text += ", from ";
    text += util::printable(*f->source);
  }
  if (f->sensitive) text += ", content (sensitive)";
  out.push_back({LineKind::file, std::move(text)});
}

}  // namespace

std::string_view symbol(ActionKind k) {
  switch (k) {
    case ActionKind::launch: return "+";
    case ActionKind::copy: return "=";
    case ActionKind::move:
    case ActionKind::finish_transfer: return ">";
    case ActionKind::undo_transfer: return "-";
    case ActionKind::recreate: return "-/+";
    case ActionKind::adopt: return "&";
    case ActionKind::snapshot: return "*";
    case ActionKind::delete_:
    case ActionKind::delete_snapshot: return "-";
    case ActionKind::restart:
    case ActionKind::update:
    case ActionKind::start:
    case ActionKind::stop:
    case ActionKind::freeze:
    case ActionKind::unfreeze:
    case ActionKind::push: return "~";
    case ActionKind::exec: return "!";
  }
  return "?";
}

std::string verb(ActionKind k) {
  if (k == ActionKind::delete_snapshot) return "delete";
  return std::string{to_string(k)};
}

std::string subject(const Action& a) {
  std::string subject = util::printable(to_string(a.address));
  if (a.exec) {
    subject += ' ';
    subject += util::printable(a.exec->name);
  }
  // On an LXD cluster: "prod:web on m1 -> prod:web on m3".
  if (!a.member.empty()) subject += " on " + util::printable(a.member);
  if (a.source && a.kind != ActionKind::stop) {
    std::string from = util::printable(to_string(*a.source));
    if (const auto m = a.before.find("member"); a.before.is_object() && m != a.before.end() && m->is_string()) {
      from += " on " + util::printable(m->get<std::string>());
    }
    subject = from + " -> " + subject;
  }
  return subject;
}

std::string consent_note(const Action& a) {
  if (a.consented) return {};
  switch (a.disruption) {
    case Disruption::restart: return "needs consent: --allow-restart or restart: allowed";
    case Disruption::move: return "needs consent: --allow-move or move: allowed";
    case Disruption::recreate: return "needs consent: --allow-recreate or recreate: allowed";
    default: return "needs consent";
  }
}

std::vector<DetailLine> detail_lines(const Action& a) {
  std::vector<DetailLine> out;
  // Lines built with += (not "literal" + string: GCC 12 warns falsely there, -Wrestrict, bug 105329).
  if (a.recovery) {
    std::string text = "recovery of run ";
    text += std::to_string(a.recovery->run_id);
    text += ": ";
    text += util::printable(a.recovery->found);
    out.push_back({LineKind::note, std::move(text)});
  }
  if (a.exec) {
    std::string command;
    for (const auto& arg : a.exec->command) {
      if (!command.empty()) command += ' ';
      command += util::json_text(arg);
    }
    std::string text = "command: ";
    text += util::printable(command);
    out.push_back({LineKind::note, std::move(text)});
  }
  for (const auto& c : a.changes) {
    change_lines(out, c);
    if (c.path.starts_with("files.")) file_details(out, a, c.path.substr(6));
  }
  return out;
}

std::string action_counts(const Plan& plan) {
  // Fixed order, so the line reads the same every time.
  const std::pair<ActionKind, std::string_view> order[] = {
      {ActionKind::launch, "to launch"},
      {ActionKind::recreate, "to recreate"},
      {ActionKind::copy, "to copy"},
      {ActionKind::adopt, "to adopt"},
      {ActionKind::finish_transfer, "interrupted transfer(s) to finish"},
      {ActionKind::undo_transfer, "interrupted transfer(s) to undo"},
      {ActionKind::move, "to move"},
      {ActionKind::update, "to update"},
      {ActionKind::restart, "to restart"},
      {ActionKind::start, "to start"},
      {ActionKind::stop, "to stop"},
      {ActionKind::freeze, "to freeze"},
      {ActionKind::unfreeze, "to unfreeze"},
      {ActionKind::push, "to push files into"},
      {ActionKind::exec, "command(s) to run"},
      {ActionKind::snapshot, "snapshot(s) to take"},
      {ActionKind::delete_snapshot, "snapshot(s) to delete"},
      {ActionKind::delete_, "to delete"}};
  std::map<ActionKind, int> counts;
  for (const auto& a : plan.actions) ++counts[a.kind];
  std::string line;
  for (const auto& [kind, words] : order) {
    if (counts[kind] == 0) continue;
    if (!line.empty()) line += ", ";
    line += std::to_string(counts[kind]);
    line += ' ';
    line += words;
  }
  return line;
}

std::string incomplete_reason(const Plan& plan) {
  if (plan.complete()) return {};
  std::string unknown;
  int count = 0;
  for (const auto& [name, remote] : plan.remotes) {
    if (remote.status == model::RemoteStatus::ok) continue;
    unknown += (unknown.empty() ? "" : ", ") + util::printable(name);
    ++count;
  }
  std::string why;
  if (count > 0) why = std::to_string(count) + " remote" + (count == 1 ? "" : "s") + " unknown (" + unknown + ")";
  if (!plan.not_planned.empty()) {
    std::string names;
    for (const auto& [address, reason] : plan.not_planned)
      names += (names.empty() ? "" : ", ") + util::printable(address);
    why += (why.empty() ? "" : "; ") + std::to_string(plan.not_planned.size()) + " container" +
           (plan.not_planned.size() == 1 ? "" : "s") + " not planned (" + names + ")";
  }
  return why;
}

}  // namespace berth::plan::render_parts
