// The plan as a pull-request comment. Everything from input (names, values, reasons, errors) is
// first escaped for a terminal (util::printable, via render_parts, so no newline or control
// character is left), then for markdown: in a code span when it is a name or a value, as escaped
// text when it is prose. Tables are GitHub's: a pipe splits a cell unless an odd number of
// backslashes stands before it, even inside a code span.

#include <algorithm>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "engine/config/load.hpp"
#include "engine/plan/render.hpp"
#include "engine/plan/render_parts.hpp"
#include "engine/util/printable.hpp"

namespace berth::plan {
namespace {

// Prose: every character markdown (or GitHub's math) would act on is escaped; <, > and & become
// entities, so that no HTML tag can open or close. A leading "1." or "1)" would start a list.
std::string text(std::string_view raw) {
  const std::string in = util::printable(raw);
  std::string out;
  out.reserve(in.size() + 8);
  std::size_t digits = 0;
  while (digits < in.size() && in[digits] >= '0' && in[digits] <= '9') ++digits;
  for (std::size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    switch (c) {
      case '<': out += "&lt;"; continue;
      case '>': out += "&gt;"; continue;
      case '&': out += "&amp;"; continue;
      case '\\':
      case '`':
      case '*':
      case '_':
      case '[':
      case ']':
      case '|':
      case '~':
      case '#':
      case '$': out += '\\'; break;
      case '-':
      case '+':
      case '=':
        if (i == 0) out += '\\';  // a list item or a heading's underline at the start of a line
        break;
      case '.':
      case ')':
        if (digits > 0 && i == digits) out += '\\';
        break;
      default: break;
    }
    out += c;
  }
  return out;
}

// The longest run of backticks in `s`.
std::size_t longest_backtick_run(std::string_view s) {
  std::size_t longest = 0;
  std::size_t run = 0;
  for (const char c : s) {
    run = c == '`' ? run + 1 : 0;
    longest = std::max(longest, run);
  }
  return longest;
}

enum class Where { prose, table };

// A name or a value as a code span: nothing in it is markdown or HTML. Its fence is longer than any
// run of backticks inside; in a table, each pipe gets the backslash that keeps it in its cell.
std::string code(std::string_view raw, Where where) {
  std::string in = util::printable(raw);  // no newline is left to end the span, or the row
  if (in.empty()) in.push_back(' ');      // not = " ": GCC 12 warns falsely there (-Wrestrict, bug 105329)
  std::string body;
  body.reserve(in.size() + 4);
  std::size_t backslashes = 0;
  for (const char c : in) {
    if (c == '|' && where == Where::table && backslashes % 2 == 0) body += '\\';
    body += c;
    backslashes = c == '\\' ? backslashes + 1 : 0;
  }
  const std::string fence(longest_backtick_run(body) + 1, '`');
  // A span that starts or ends with a backtick, or with a space on both sides, is padded: markdown
  // takes one space off each side.
  const bool pad = body.front() == '`' || body.back() == '`' ||
                   (body.size() > 1 && body.front() == ' ' && body.back() == ' ' &&
                    body.find_first_not_of(' ') != std::string::npos);
  std::string out = fence;
  if (pad) out += ' ';
  out += body;
  if (pad) out += ' ';
  out += fence;
  return out;
}

std::string plural(std::size_t n, std::string_view one, std::string_view many) {
  std::string out = std::to_string(n);
  out += ' ';
  out += n == 1 ? one : many;
  return out;
}

std::string action_cell(const Action& a) {
  std::string cell = code(std::string{render_parts::symbol(a.kind)} + " " + render_parts::verb(a.kind), Where::table);
  if (a.disruption != Disruption::none) cell += " ⚠️";
  return cell;
}

// The lines under the action in the text plan, one code span each.
std::string changes_cell(const Action& a) {
  std::string cell;
  for (const auto& line : render_parts::detail_lines(a)) {
    if (!cell.empty()) cell += "<br>";
    cell += code(line.text, Where::table);
  }
  return cell;
}

std::string why_cell(const Action& a) {
  std::string cell = text(a.reason);
  if (a.disruption != Disruption::none) {
    if (!cell.empty()) cell += "<br>";
    cell += "disruptive: ";
    cell += to_string(a.disruption);
  }
  if (const auto note = render_parts::consent_note(a); !note.empty()) {
    cell += "<br>**";
    cell += text(note);
    cell += "**";
  }
  return cell;
}

// "**Plan:** 2 to launch, 1 to delete (1 disruptive). 1 warning."
std::string summary(const Plan& plan) {
  std::string line;
  if (plan.actions.empty()) {
    line = plan.complete() ? "**No changes.**" : "**No changes to what could be planned.**";
  } else {
    const auto disruptive = static_cast<std::size_t>(std::count_if(
        plan.actions.begin(), plan.actions.end(), [](const Action& a) { return a.disruption != Disruption::none; }));
    const auto refused = static_cast<std::size_t>(
        std::count_if(plan.actions.begin(), plan.actions.end(), [](const Action& a) { return !a.consented; }));
    line = "**Plan:** ";
    line += text(render_parts::action_counts(plan));
    if (disruptive > 0) {
      line += " (";
      line += std::to_string(disruptive);
      line += " disruptive";
      if (refused > 0) {
        line += ", ";
        line += std::to_string(refused);
        line += refused == 1 ? " needs consent" : " need consent";
      }
      line += ')';
    }
    line += '.';
  }
  std::size_t errors = 0;
  std::size_t warnings = 0;
  for (const auto& d : plan.diagnostics.items()) ++(d.severity == diag::Severity::error ? errors : warnings);
  if (errors + warnings > 0) {
    line += ' ';
    if (errors > 0) line += plural(errors, "error", "errors");
    if (errors > 0 && warnings > 0) line += ", ";
    if (warnings > 0) line += plural(warnings, "warning", "warnings");
    line += '.';
  }
  return line;
}

// The remotes in the order the text plan lists them, then any an action names that the plan does not.
std::vector<std::string> remote_order(const Plan& plan) {
  std::vector<std::string> names;
  for (const auto& [name, remote] : plan.remotes) names.push_back(name);
  std::set<std::string> extra;
  for (const auto& a : plan.actions) {
    if (plan.remotes.count(a.address.remote) == 0) extra.insert(a.address.remote);
  }
  names.insert(names.end(), extra.begin(), extra.end());
  return names;
}

void write_remote(std::string& out, const Plan& plan, const std::string& name) {
  std::vector<const Action*> actions;
  for (const auto& a : plan.actions) {
    if (a.address.remote == name) actions.push_back(&a);
  }
  out += "#### Remote ";
  out += code(name, Where::prose);
  const auto remote = plan.remotes.find(name);
  if (remote != plan.remotes.end()) {
    out += " (";
    out += code(remote->second.url, Where::prose);
    out += ')';
  }
  out += "\n\n";
  if (remote != plan.remotes.end() && remote->second.status != model::RemoteStatus::ok) {
    out += "**Unknown**: ";
    out += code(remote->second.error.empty() ? std::string{"(no error given)"} : remote->second.error, Where::prose);
    out += ". Its containers are not planned.\n\n";
    if (actions.empty()) return;
  } else if (remote != plan.remotes.end()) {
    out += plural(remote->second.instances, "instance", "instances");
    out += ", ";
    out += actions.empty() ? std::string{"no changes"} : plural(actions.size(), "action", "actions");
    out += ".\n\n";
  }
  if (actions.empty()) return;
  out += "| Action | Container | Changes | Why |\n| --- | --- | --- | --- |\n";
  for (const auto* a : actions) {
    out += "| ";
    out += action_cell(*a);
    out += " | ";
    out += code(render_parts::subject(*a), Where::table);
    out += " | ";
    out += changes_cell(*a);
    out += " | ";
    out += why_cell(*a);
    out += " |\n";
  }
  out += '\n';
}

}  // namespace

std::string render_markdown(const Plan& plan, const MarkdownStyle& style) {
  std::string out = plan.destroy ? "### berth destroy plan" : "### berth plan";
  if (!plan.fleet_path.empty()) {
    out += ": ";
    out += code(plan.fleet_path == config::stdin_path ? config::stdin_name : std::string_view{plan.fleet_path},
                Where::prose);
  }
  out += "\n\n";
  if (!style.context.empty()) {
    out += text(style.context);
    out += "\n\n";
  }
  if (plan.destroy) out += "Deletes every container the fleet owns.\n\n";
  out += summary(plan);
  out += "\n\n";
  if (!plan.complete()) {
    out += "**Plan incomplete:** ";
    out += text(render_parts::incomplete_reason(plan));
    out += ".\n\n";
  }

  // What a reviewer must not miss, before the tables: in the order apply runs them.
  bool heading = false;
  for (const auto& a : plan.actions) {
    if (a.disruption == Disruption::none) continue;
    if (!heading) out += "#### Disruptive\n\n";
    heading = true;
    out += "- ";
    out += code(std::string{render_parts::symbol(a.kind)} + " " + render_parts::verb(a.kind), Where::prose);
    out += ' ';
    out += code(render_parts::subject(a), Where::prose);
    out += " (";
    out += to_string(a.disruption);
    out += "): ";
    out += text(a.reason);
    if (const auto note = render_parts::consent_note(a); !note.empty()) {
      out += " — **";
      out += text(note);
      out += "**";
    }
    out += '\n';
  }
  if (heading) out += '\n';

  for (const auto& name : remote_order(plan)) write_remote(out, plan, name);

  if (!plan.placements.empty() || !plan.drain.empty()) {
    out += "#### Placement\n\n";
    if (!plan.drain.empty()) {
      out += "Draining:";
      for (const auto& r : plan.drain) {
        out += ' ';
        out += code(r, Where::prose);
      }
      out += "\n\n";
    }
    for (const auto& p : plan.placements) {
      out += "- ";
      out += code(p.container, Where::prose);
      if (!p.policy.empty()) {
        out += " (";
        out += text(p.policy);
        out += ')';
      }
      out += ": ";
      out += text(p.explanation);
      out += '\n';
      for (const auto& r : p.rejected) {
        out += "  - ";
        out += text(r);
        out += '\n';
      }
    }
    out += '\n';
  }

  if (!plan.not_planned.empty()) {
    out += "#### Not planned\n\n";
    for (const auto& [address, why] : plan.not_planned) {
      out += "- ";
      out += code(address, Where::prose);
      out += ": ";
      out += text(why);
      out += '\n';
    }
    out += '\n';
  }

  if (!plan.diagnostics.empty()) {
    out += "#### Errors and warnings\n\n";
    for (const auto& d : plan.diagnostics.items()) {
      out += d.severity == diag::Severity::error ? "- **error:** " : "- **warning:** ";
      if (!d.path.empty()) {
        out += code(d.path, Where::prose);
        out += ": ";
      }
      out += text(d.summary);
      if (!d.detail.empty()) {
        out += " — ";  // on the same line: a line of its own could start a block
        out += text(d.detail);
      }
      out += '\n';
    }
    out += '\n';
  }

  // The text plan, escaped already; a fence longer than any run of backticks in it is never closed
  // by it, so neither it nor a </details> in it ends the block early.
  const std::string full = render_text(plan, TextStyle{});
  const std::string fence(std::max<std::size_t>(3, longest_backtick_run(full) + 1), '`');
  out += "<details><summary>Full plan</summary>\n\n";
  out += fence;
  out += "text\n";
  out += full;
  if (!full.empty() && full.back() != '\n') out += '\n';
  out += fence;
  out += "\n\n</details>\n";
  return out;
}

}  // namespace berth::plan
