#include "engine/watch/page.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <optional>
#include <set>
#include <vector>

#include "engine/util/printable.hpp"

namespace berth::watch {
namespace {

using nlohmann::json;

// Readers that never throw: json::value() throws when the key holds another type or the value is
// not an object, and the page is drawn from whatever /status had.
const json* field(const json& object, const char* key) {
  if (!object.is_object()) return nullptr;
  const auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

std::string string_of(const json& object, const char* key) {
  const json* v = field(object, key);
  return v != nullptr && v->is_string() ? v->get<std::string>() : std::string{};
}

std::optional<bool> bool_of(const json& object, const char* key) {
  const json* v = field(object, key);
  if (v == nullptr || !v->is_boolean()) return std::nullopt;
  return v->get<bool>();
}

const json& object_of(const json& object, const char* key) {
  static const json empty = json::object();
  const json* v = field(object, key);
  return v != nullptr && v->is_object() ? *v : empty;
}

const json& array_of(const json& object, const char* key) {
  static const json empty = json::array();
  const json* v = field(object, key);
  return v != nullptr && v->is_array() ? *v : empty;
}

// A count or an id: integers as they are, other numbers rounded towards zero, else "-".
std::string count_of(const json& object, const char* key) {
  const json* v = field(object, key);
  if (v == nullptr) return "-";
  if (v->is_number_unsigned()) return std::to_string(v->get<std::uint64_t>());
  if (v->is_number_integer()) return std::to_string(v->get<std::int64_t>());
  if (v->is_number_float()) {
    const double d = v->get<double>();
    if (!std::isfinite(d)) return "-";
    std::array<char, 64> buf{};
    std::snprintf(buf.data(), buf.size(), "%.0f", std::trunc(d));
    return buf.data();
  }
  return "-";
}

// Seconds: "1.25 s", or "-".
std::string seconds_of(const json& object, const char* key) {
  const json* v = field(object, key);
  if (v == nullptr || !v->is_number()) return "-";
  const double d = v->get<double>();
  if (!std::isfinite(d)) return "-";
  std::array<char, 64> buf{};
  std::snprintf(buf.data(), buf.size(), std::fabs(d) < 1e6 ? "%.2f s" : "%.3g s", d);
  return buf.data();
}

// Data on its way into the page: what a terminal would act on is written out (util::printable,
// which also makes the text valid UTF-8), then the HTML specials.
std::string text(std::string_view data) {
  return html_escape(util::printable(data));
}

std::string text_or_dash(std::string_view data) {
  return data.empty() ? "-" : text(data);
}

// Error texts keep their lines, in a <pre>.
std::string lines(std::string_view data) {
  std::string out;
  std::size_t start = 0;
  for (;;) {
    const auto end = data.find('\n', start);
    out += text(data.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
    if (end == std::string_view::npos) return out;
    out += '\n';
    start = end + 1;
  }
}

// A CSS class for a value from one of the lists /status uses; anything else is "other".
std::string_view css_class(std::string_view value, std::initializer_list<std::string_view> known) {
  for (const auto k : known) {
    if (k == value) return k;
  }
  return "other";
}

// A cell showing a value from a fixed vocabulary: the value as text, and as a class when known.
std::string state_cell(std::string_view kind, std::string_view value, std::initializer_list<std::string_view> known) {
  return "<td class=\"" + std::string(kind) + " " + std::string(css_class(value, known)) + "\">" + text_or_dash(value) +
         "</td>";
}

constexpr std::string_view style = R"(
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #1d1d1f; background: #fff; }
h1 { font-size: 1.4em; margin: 0 0 .3em; } h2 { font-size: 1.15em; margin: 1.5em 0 .4em; }
code { font-size: .95em; } .meta { color: #555; margin: .2em 0; }
.banner { padding: .6em .9em; border-radius: 4px; margin: .8em 0; }
.banner pre { margin: .3em 0 0; white-space: pre-wrap; }
.banner.error { background: #fde8e8; color: #8a1c1c; border: 1px solid #e5a0a0; }
.banner.suspended { background: #fff4d6; color: #6b4e00; border: 1px solid #e6c96b; }
table { border-collapse: collapse; margin: .4em 0 1em; } th, td { text-align: left; padding: .25em .8em; border-bottom: 1px solid #e3e3e3; vertical-align: top; }
th { background: #f5f5f7; } td ul { margin: 0; padding-left: 1.1em; }
.up { color: #1a7f37; } .down { color: #b42318; } .remote-error { color: #b42318; }
.Synced, .Healthy, .succeeded { color: #1a7f37; } .OutOfSync, .Degraded, .interrupted { color: #9a6700; }
.Missing, .failed { color: #b42318; } .Unknown, .other { color: #6e7781; } .why { color: #6e7781; }
)";

void render_header(std::string& out, const json& status) {
  const json& fleet = object_of(status, "fleet");
  out += "<header>\n<h1>berth watch: " + text_or_dash(string_of(fleet, "name")) + "</h1>\n";
  out += "<p class=\"meta\">fleet file <code>" + text_or_dash(string_of(fleet, "path")) + "</code> · revision <code>" +
         text_or_dash(string_of(fleet, "revision")) + "</code> · mode <span class=\"mode\">" +
         text_or_dash(string_of(status, "mode")) + "</span> · next run " +
         text_or_dash(string_of(status, "next_run_at")) + "</p>\n";
  if (bool_of(status, "suspended").value_or(false)) {
    const auto by = string_of(status, "suspended_by");
    out +=
        "<p class=\"banner suspended\">Suspended" + (by.empty() ? std::string{} : " (by " + text(by) + ")") + "</p>\n";
  }
  if (const auto error = string_of(fleet, "error"); !error.empty()) {
    out += "<div class=\"banner error fleet-error\"><strong>Fleet file error</strong><pre>" + lines(error) +
           "</pre></div>\n";
  }
  if (const auto error = string_of(status, "last_error"); !error.empty()) {
    out += "<div class=\"banner error last-error\"><strong>Last error</strong><pre>" + lines(error) + "</pre></div>\n";
  }
  if (const json& run = object_of(status, "last_run"); !run.empty()) {
    out += "<p class=\"meta\">last run " + count_of(run, "id") + ": " + text_or_dash(string_of(run, "result")) +
           ", started " + text_or_dash(string_of(run, "started_at")) + ", " + seconds_of(run, "duration_seconds") +
           "; drift " + count_of(run, "drift") + ", corrected " + count_of(run, "corrected") + ", failed " +
           count_of(run, "failed") + "</p>\n";
  }
  out += "</header>\n";
}

// One table of containers; `show_address` for the ones without a known remote.
void render_containers(std::string& out, const std::vector<const json*>& containers, bool show_address) {
  if (containers.empty()) {
    out += "<p class=\"none\">No containers.</p>\n";
    return;
  }
  out += "<table>\n<thead><tr><th>";
  out += show_address ? "Address" : "Container";
  out += "</th><th>Sync</th><th>Health</th><th>Policy</th><th>Drift</th></tr></thead>\n<tbody>\n";
  for (const json* c : containers) {
    auto name = string_of(*c, show_address ? "address" : "name");
    if (name.empty()) name = string_of(*c, show_address ? "name" : "address");
    out += "<tr><td class=\"name\">" + text_or_dash(name) + "</td>";
    out += state_cell("sync", string_of(*c, "sync"), {"Synced", "OutOfSync", "Unknown"});
    out += state_cell("health", string_of(*c, "health"), {"Healthy", "Degraded", "Missing", "Unknown"});
    out += state_cell("policy", string_of(*c, "policy"), {"correct", "report", "ignore", "suspended"});
    out += "<td class=\"drift\">";
    std::string items;
    for (const json& item : array_of(*c, "drift")) {
      if (item.is_string()) items += "<li>" + text(item.get<std::string>()) + "</li>";
    }
    if (!items.empty()) out += "<ul>" + items + "</ul>";
    if (const auto why = string_of(*c, "why"); !why.empty()) out += "<span class=\"why\">" + text(why) + "</span>";
    out += "</td></tr>\n";
  }
  out += "</tbody>\n</table>\n";
}

void render_remotes(std::string& out, const json& status) {
  const json& containers = array_of(status, "containers");
  std::set<std::string> remote_names;
  for (const json& remote : array_of(status, "remotes")) {
    if (!remote.is_object()) continue;
    const auto name = string_of(remote, "name");
    if (!name.empty()) remote_names.insert(name);
    const auto up = bool_of(remote, "up");
    out += "<section class=\"remote\">\n<h2>Remote " + text_or_dash(name) + " ";
    out += !up   ? "<span class=\"other\">state unknown</span>"
           : *up ? "<span class=\"up\">up</span>"
                 : "<span class=\"down\">down</span>";
    out += "</h2>\n";
    if (const auto error = string_of(remote, "error"); !error.empty()) {
      out += "<p class=\"remote-error\">" + text(error) + "</p>\n";
    }
    out += "<p class=\"meta\">" + text_or_dash(string_of(remote, "url")) + " · read in " +
           seconds_of(remote, "read_seconds") + "</p>\n";
    std::vector<const json*> here;
    for (const json& c : containers) {
      if (c.is_object() && !name.empty() && string_of(c, "remote") == name) here.push_back(&c);
    }
    render_containers(out, here, false);
    out += "</section>\n";
  }
  std::vector<const json*> elsewhere;
  for (const json& c : containers) {
    if (c.is_object() && remote_names.count(string_of(c, "remote")) == 0) elsewhere.push_back(&c);
  }
  if (!elsewhere.empty()) {
    out += "<section class=\"remote unlisted\">\n<h2>Containers on no listed remote</h2>\n";
    render_containers(out, elsewhere, true);
    out += "</section>\n";
  }
}

void render_runs(std::string& out, const json& status) {
  out += "<section class=\"runs\">\n<h2>Last runs</h2>\n";
  std::string rows;
  for (const json& run : array_of(status, "runs")) {
    if (!run.is_object()) continue;
    rows += "<tr><td>" + count_of(run, "id") + "</td><td>" + text_or_dash(string_of(run, "started_at")) + "</td>" +
            state_cell("result", string_of(run, "result"), {"succeeded", "failed", "interrupted"}) + "<td>" +
            seconds_of(run, "duration_seconds") + "</td><td>" + count_of(run, "drift") + "</td><td>" +
            count_of(run, "corrected") + "</td><td>" + count_of(run, "failed") + "</td><td>" +
            text(string_of(run, "error")) + "</td></tr>\n";
  }
  if (rows.empty()) {
    out += "<p class=\"none\">No runs yet.</p>\n";
  } else {
    out +=
        "<table>\n<thead><tr><th>Run</th><th>Started</th><th>Result</th><th>Duration</th><th>Drift</th>"
        "<th>Corrected</th><th>Failed</th><th>Error</th></tr></thead>\n<tbody>\n" +
        rows + "</tbody>\n</table>\n";
  }
  out += "</section>\n";
}

}  // namespace

std::string html_escape(std::string_view data) {
  std::string out;
  out.reserve(data.size());
  for (const char ch : data) {
    switch (ch) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += ch;
    }
  }
  return out;
}

std::string render_status_page(const nlohmann::json& status) {
  const auto name = string_of(object_of(status, "fleet"), "name");
  std::string out;
  out +=
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<meta http-equiv=\"refresh\" content=\"10\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>berth watch";
  if (!name.empty()) out += ": " + text(name);
  out += "</title>\n<style>";
  out += style;
  out += "</style>\n</head>\n<body>\n";
  render_header(out, status);
  out += "<main>\n";
  render_remotes(out, status);
  render_runs(out, status);
  out += "</main>\n</body>\n</html>\n";
  return out;
}

}  // namespace berth::watch
