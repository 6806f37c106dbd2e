#include <algorithm>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>

#include "engine/model/managed.hpp"
#include "engine/model/provision.hpp"
#include "engine/plan/render.hpp"
#include "engine/util/printable.hpp"

namespace berth::plan {
namespace {

constexpr std::string_view reset = "\x1b[0m";
constexpr std::string_view green = "\x1b[32m";
constexpr std::string_view yellow = "\x1b[33m";
constexpr std::string_view cyan = "\x1b[36m";
constexpr std::string_view red = "\x1b[31m";
constexpr std::string_view bold = "\x1b[1m";
constexpr std::string_view dim = "\x1b[2m";

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

std::string_view colour_of(ActionKind k) {
  const auto s = symbol(k);
  if (s == "+") return green;
  if (s == "-" || s == "-/+") return red;
  if (s == ">" || s == "=" || s == "&" || s == "!") return cyan;
  return yellow;
}

// A JSON value as a user reads it: strings quoted, null as "(unset)", objects inline. JSON already
// escapes control characters; printable() takes care of DEL and the C1 range.
std::string show(const nlohmann::json& v) {
  if (v.is_null()) return "(unset)";
  return util::printable(util::json_text(v));
}

class Writer {
 public:
  explicit Writer(const TextStyle& style) : style_(style) {}
  // Text is written as given: callers escape what came from input (names, values, reasons, errors)
  // with util::printable, so that only berth's own colour codes reach the terminal.
  Writer& paint(std::string_view colour, std::string_view text) { return paint(colour, {text}); }
  // Parts, so that escaped input is never the right operand of "literal" + std::string (GCC 12
  // warns falsely there: -Wrestrict, bug 105329).
  Writer& paint(std::string_view colour, std::initializer_list<std::string_view> parts) {
    if (style_.color) out_ << colour;
    for (const auto part : parts) out_ << part;
    if (style_.color) out_ << reset;
    return *this;
  }
  Writer& text(std::string_view t) {
    out_ << t;
    return *this;
  }
  [[nodiscard]] std::string str() const { return out_.str(); }

 private:
  const TextStyle& style_;
  std::ostringstream out_;
};

std::string consent_note(const Action& a) {
  if (a.consented) return {};
  switch (a.disruption) {
    case Disruption::restart: return "needs consent: --allow-restart or restart: allowed";
    case Disruption::move: return "needs consent: --allow-move or move: allowed";
    case Disruption::recreate: return "needs consent: --allow-recreate or recreate: allowed";
    default: return "needs consent";
  }
}

void change_line(Writer& w, const std::string& path, const std::string& before, const std::string& after) {
  w.text("        ").text(util::printable(path)).text(": ").text(before).text(" -> ").text(after).text("\n");
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
void write_change(Writer& w, const Change& c) {
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
    change_line(w, c.path.substr(file ? 6 : 5), digest(c.before, true), digest(c.after, false));
    return;
  }
  if (c.path == "config." + std::string{model::managed_key}) {
    change_line(w, "berth's record", record_shown(c.before), record_shown(c.after));
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
      if (before != after) change_line(w, c.path + "." + k, show(before), show(after));
    }
    return;
  }
  change_line(w, c.path, value(c.before), value(c.after));
}

// Under a pushed file's digests: its mode, owner and where its content comes from.
void file_details(Writer& w, const Action& a, std::string_view path) {
  const auto f = std::find_if(a.files.begin(), a.files.end(), [&](const model::FileSpec& x) { return x.path == path; });
  if (f == a.files.end()) return;
  std::string from;  // not "literal" + string: GCC 12 warns falsely there (-Wrestrict, bug 105329)
  if (f->source) {
    from = ", from ";
    from += util::printable(*f->source);
  }
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(f->mode));
  w.text("          ")
      .paint(dim, {"mode ", mode, ", owner ", std::to_string(f->uid), ":", std::to_string(f->gid), from,
                   f->sensitive ? ", content (sensitive)" : ""})
      .text("\n");
}

void write_action(Writer& w, const Action& a) {
  std::string subject = util::printable(to_string(a.address));
  if (a.exec) {
    subject += ' ';
    subject += util::printable(a.exec->name);
  }
  if (a.source && a.kind != ActionKind::stop) subject = util::printable(to_string(*a.source)) + " -> " + subject;
  std::string verb{to_string(a.kind)};
  if (a.kind == ActionKind::delete_snapshot) verb = "delete";
  verb.resize(std::max<std::size_t>(verb.size(), 9), ' ');
  // Symbols right-aligned in three columns: "  + launch", "-/+ recreate".
  const std::string_view mark = symbol(a.kind);
  w.text(std::string(3 - std::min<std::size_t>(mark.size(), 3), ' '))
      .paint(colour_of(a.kind), std::string{mark} + " " + verb)
      .text(" ")
      .text(subject);
  w.text("  ").paint(dim, {"(", util::printable(a.reason), ")"});
  if (const auto note = consent_note(a); !note.empty()) w.text("  ").paint(red, "[" + note + "]");
  w.text("\n");
  if (a.recovery) {
    w.text("        ")
        .paint(dim, {"recovery of run ", std::to_string(a.recovery->run_id), ": ", util::printable(a.recovery->found)})
        .text("\n");
  }
  if (a.exec) {
    std::string command;
    for (const auto& arg : a.exec->command) {
      if (!command.empty()) command += ' ';
      command += util::json_text(arg);
    }
    w.text("        ").paint(dim, {"command: ", util::printable(command)}).text("\n");
  }
  for (const auto& c : a.changes) {
    write_change(w, c);
    if (c.path.starts_with("files.")) file_details(w, a, c.path.substr(6));
  }
}

}  // namespace

std::string summary_line(const Plan& plan) {
  if (plan.actions.empty()) return plan.complete() ? "No changes." : "No changes to what could be planned.";
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
  std::string line = "Plan:";
  bool first = true;
  for (const auto& [kind, words] : order) {
    if (counts[kind] == 0) continue;
    line += (first ? " " : ", ") + std::to_string(counts[kind]) + " " + std::string{words};
    first = false;
  }
  return line + ".";
}

std::string render_text(const Plan& plan, const TextStyle& style) {
  Writer w(style);
  std::map<std::string, std::size_t> per_remote;
  for (const auto& a : plan.actions) ++per_remote[a.address.remote];

  if (plan.destroy) w.paint(bold, "Destroy plan: deletes every container the fleet owns").text("\n");
  for (const auto& [name, remote] : plan.remotes) {
    w.paint(bold, {"remote ", util::printable(name)}).text(" (").text(util::printable(remote.url)).text(")");
    if (remote.status != model::RemoteStatus::ok) {
      w.text(": ")
          .paint(red, "Unknown")
          .text(" — ")
          .text(util::printable(remote.error))
          .text("\n  its containers are not planned\n");
      continue;
    }
    const std::size_t n = per_remote[name];
    w.text(": " + std::to_string(remote.instances) + " instance" + (remote.instances == 1 ? "" : "s") + ", " +
           (n == 0 ? std::string{"no changes"} : std::to_string(n) + " action" + (n == 1 ? "" : "s")) + "\n");
  }
  for (const auto& [address, why] : plan.not_planned) {
    w.text("  ")
        .paint(red, {util::printable(address), " not planned"})
        .text(": ")
        .text(util::printable(why))
        .text("\n");
  }

  // In the order apply runs them: whatever an action depends on is printed before it.
  if (!plan.actions.empty()) w.text("\n");
  for (const auto& a : plan.actions) write_action(w, a);

  if (!plan.diagnostics.empty()) {
    w.text("\n");
    for (const auto& d : plan.diagnostics.items()) {
      const bool error = d.severity == diag::Severity::error;
      w.paint(error ? red : yellow, error ? "error: " : "warning: ");
      if (!d.path.empty()) w.text(util::printable(d.path) + ": ");
      w.text(util::printable(d.summary) + "\n");
      if (!d.detail.empty()) w.text("  ").text(util::printable(d.detail)).text("\n");
    }
  }

  w.text("\n").paint(bold, summary_line(plan)).text("\n");
  if (!plan.complete()) {
    std::string unknown;
    int count = 0;
    for (const auto& [name, remote] : plan.remotes) {
      if (remote.status == model::RemoteStatus::ok) continue;
      unknown += (unknown.empty() ? "" : ", ") + util::printable(name);
      ++count;
    }
    std::string why;
    if (count > 0) {
      why = std::to_string(count) + " remote" + (count == 1 ? "" : "s") + " unknown (" + unknown + ")";
    }
    if (!plan.not_planned.empty()) {
      std::string names;
      for (const auto& [address, reason] : plan.not_planned)
        names += (names.empty() ? "" : ", ") + util::printable(address);
      why += (why.empty() ? "" : "; ") + std::to_string(plan.not_planned.size()) + " container" +
             (plan.not_planned.size() == 1 ? "" : "s") + " not planned (" + names + ")";
    }
    w.paint(red, "Plan incomplete: " + why + ".").text("\n");
  }
  return w.str();
}

}  // namespace berth::plan
