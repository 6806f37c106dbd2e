#include <algorithm>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>

#include "engine/plan/render.hpp"
#include "engine/plan/render_parts.hpp"
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

std::string_view colour_of(ActionKind k) {
  const auto s = render_parts::symbol(k);
  if (s == "+") return green;
  if (s == "-" || s == "-/+") return red;
  if (s == ">" || s == "=" || s == "&" || s == "!") return cyan;
  return yellow;
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

void write_action(Writer& w, const Action& a) {
  std::string verb = render_parts::verb(a.kind);
  verb.resize(std::max<std::size_t>(verb.size(), 9), ' ');
  // Symbols right-aligned in three columns: "  + launch", "-/+ recreate".
  const std::string_view mark = render_parts::symbol(a.kind);
  w.text(std::string(3 - std::min<std::size_t>(mark.size(), 3), ' '))
      .paint(colour_of(a.kind), std::string{mark} + " " + verb)
      .text(" ")
      .text(render_parts::subject(a));
  w.text("  ").paint(dim, {"(", util::printable(a.reason), ")"});
  if (const auto note = render_parts::consent_note(a); !note.empty()) w.text("  ").paint(red, "[" + note + "]");
  w.text("\n");
  for (const auto& line : render_parts::detail_lines(a)) {
    switch (line.kind) {
      case render_parts::LineKind::change: w.text("        ").text(line.text).text("\n"); break;
      case render_parts::LineKind::note: w.text("        ").paint(dim, line.text).text("\n"); break;
      case render_parts::LineKind::file: w.text("          ").paint(dim, line.text).text("\n"); break;
    }
  }
}

}  // namespace

std::string summary_line(const Plan& plan) {
  if (plan.actions.empty()) return plan.complete() ? "No changes." : "No changes to what could be planned.";
  return "Plan: " + render_parts::action_counts(plan) + ".";
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
    if (!remote.members.empty()) {
      std::string down;
      for (const auto& [member, status] : remote.members) {
        if (status != "Online")
          down += (down.empty() ? "" : ", ") + util::printable(member) + " " + util::printable(status);
      }
      w.text(": LXD cluster of " + std::to_string(remote.members.size()) + " member" +
             (remote.members.size() == 1 ? "" : "s") + (down.empty() ? "" : " (" + down + ")"));
    }
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

  if (!plan.drain.empty()) {
    std::string list;
    for (const auto& r : plan.drain) list += (list.empty() ? "" : ", ") + util::printable(r);
    w.paint(bold, "draining: ").text(list).text("\n");
  }
  for (const auto& p : plan.placements) {
    w.paint(bold, {"placement ", util::printable(p.container)})
        .text(p.policy.empty() ? std::string{} : " (" + util::printable(p.policy) + ")")
        .text(": ")
        .text(util::printable(p.explanation))
        .text("\n");
    for (const auto& r : p.rejected) w.text("    ").paint(dim, util::printable(r)).text("\n");
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
  if (!plan.complete()) w.paint(red, "Plan incomplete: " + render_parts::incomplete_reason(plan) + ".").text("\n");
  return w.str();
}

}  // namespace berth::plan
