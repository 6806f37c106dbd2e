// The markdown plan (a pull-request comment): summary, disruptive actions first, a table per
// remote, the text plan in a collapsed block; hostile names and values stay in their cell, span and
// block; sensitive values are masked as in the text plan.

#include <algorithm>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "engine/plan/plan.hpp"
#include "engine/plan/render.hpp"

namespace berth::plan {
namespace {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// The cells of a table row as GitHub splits it (cmark-gfm): a backslash and the punctuation
// character after it are one escaped character, so a pipe ends a cell unless it is escaped.
std::vector<std::string> cells(const std::string& row) {
  std::vector<std::string> out;
  std::string cell;
  bool started = false;
  for (std::size_t i = 0; i < row.size(); ++i) {
    const char c = row[i];
    if (c == '\\' && i + 1 < row.size() && std::ispunct(static_cast<unsigned char>(row[i + 1])) != 0) {
      cell += c;
      cell += row[++i];
      continue;
    }
    if (c == '|') {
      if (started) out.push_back(cell);
      started = true;
      cell.clear();
      continue;
    }
    cell += c;
  }
  if (!cell.empty() && cell.find_first_not_of(' ') != std::string::npos) out.push_back(cell);
  return out;
}

Action make(ActionKind kind, std::string remote, std::string container, std::string reason,
            Disruption disruption = Disruption::none, bool consented = true) {
  Action a;
  a.kind = kind;
  a.address = {std::move(remote), std::move(container), std::nullopt};
  a.id = std::string{to_string(kind)} + " " + to_string(a.address);
  a.reason = std::move(reason);
  a.disruption = disruption;
  a.consented = consented;
  return a;
}

RemoteSummary remote(std::string url, std::size_t instances) {
  RemoteSummary r;
  r.url = std::move(url);
  r.status = model::RemoteStatus::ok;
  r.instances = instances;
  return r;
}

Plan mixed_plan() {
  Plan plan;
  plan.fleet_path = "fleet.yaml";
  plan.remotes.emplace("h1", remote("https://10.0.0.1:8443", 3));
  plan.remotes.emplace("h2", remote("unix:///var/lib/berthd/unix.socket", 1));
  plan.actions.push_back(make(ActionKind::launch, "h1", "new", "declared, absent"));
  auto update = make(ActionKind::update, "h1", "web", "differs: config.limits.memory");
  update.changes.push_back({"config.limits.memory", "256MiB", "512MiB", false});
  plan.actions.push_back(update);
  auto restart = make(ActionKind::restart, "h1", "db", "differs: config.limits.cpu", Disruption::restart, false);
  restart.changes.push_back({"config.limits.cpu", "1", "2", false});
  plan.actions.push_back(restart);
  plan.actions.push_back(
      make(ActionKind::delete_, "h2", "old", "owned, no longer declared (prune)", Disruption::destroy));
  return plan;
}

// The lines of the section that starts with `heading`, up to the next heading or the details.
std::vector<std::string> section(const std::string& md, const std::string& heading) {
  std::vector<std::string> out;
  bool in = false;
  for (const auto& line : lines_of(md)) {
    if (line == heading) {
      in = true;
      continue;
    }
    if (in && (line.starts_with("#") || line.starts_with("<details>"))) break;
    if (in && !line.empty()) out.push_back(line);
  }
  return out;
}

std::vector<std::string> table_rows(const std::vector<std::string>& lines) {
  std::vector<std::string> rows;
  for (const auto& line : lines) {
    if (line.starts_with("| ") && !line.starts_with("| Action |") && !line.starts_with("| --- |")) rows.push_back(line);
  }
  return rows;
}

TEST(RenderMarkdown, SummaryCountsDisruptiveActionsAndDiagnostics) {
  Plan plan = mixed_plan();
  plan.diagnostics.warning("h1:web is frozen", "h1:web");
  plan.diagnostics.error("no such image", "containers.x.image");
  plan.diagnostics.warning("another", "");
  const auto lines = lines_of(render_markdown(plan));
  ASSERT_GE(lines.size(), 3U);
  EXPECT_EQ(lines[0], "### berth plan: `fleet.yaml`");
  EXPECT_EQ(lines[2],
            "**Plan:** 1 to launch, 1 to update, 1 to restart, 1 to delete (2 disruptive, 1 needs consent). 1 error, "
            "2 warnings.");
}

TEST(RenderMarkdown, DisruptiveActionsComeFirst) {
  const std::string md = render_markdown(mixed_plan());
  const auto disruptive = md.find("#### Disruptive");
  const auto first_table = md.find("| Action |");
  ASSERT_NE(disruptive, std::string::npos) << md;
  ASSERT_NE(first_table, std::string::npos) << md;
  EXPECT_LT(disruptive, first_table) << md;
  const auto items = section(md, "#### Disruptive");
  ASSERT_EQ(items.size(), 2U) << md;
  EXPECT_EQ(items[0],
            "- `~ restart` `h1:db` (restart): differs: config.limits.cpu — **needs consent: --allow-restart or "
            "restart: allowed**");
  EXPECT_EQ(items[1], "- `- delete` `h2:old` (destroy): owned, no longer declared (prune)");
}

TEST(RenderMarkdown, NoDisruptiveSectionWithoutDisruption) {
  Plan plan = mixed_plan();
  plan.actions.resize(2);  // the launch and the update
  const std::string md = render_markdown(plan);
  EXPECT_FALSE(contains(md, "Disruptive")) << md;
  EXPECT_TRUE(contains(md, "**Plan:** 1 to launch, 1 to update.\n")) << md;
}

TEST(RenderMarkdown, ATablePerRemoteInApplyOrder) {
  Plan plan = mixed_plan();
  RemoteSummary gone;
  gone.url = "https://10.0.0.3:8443";
  gone.error = "connection refused";
  plan.remotes.emplace("h3", gone);
  const std::string md = render_markdown(plan);

  const auto h1 = section(md, "#### Remote `h1` (`https://10.0.0.1:8443`)");
  ASSERT_FALSE(h1.empty()) << md;
  EXPECT_EQ(h1[0], "3 instances, 3 actions.");
  const auto h1_rows = table_rows(h1);
  ASSERT_EQ(h1_rows.size(), 3U) << md;
  EXPECT_EQ(h1_rows[0], "| `+ launch` | `h1:new` |  | declared, absent |");
  EXPECT_EQ(h1_rows[1],
            "| `~ update` | `h1:web` | `config.limits.memory: \"256MiB\" -> \"512MiB\"` | differs: "
            "config.limits.memory |");
  EXPECT_EQ(h1_rows[2],
            "| `~ restart` ⚠️ | `h1:db` | `config.limits.cpu: \"1\" -> \"2\"` | differs: "
            "config.limits.cpu<br>disruptive: "
            "restart<br>**needs consent: --allow-restart or restart: allowed** |");

  const auto h2_rows = table_rows(section(md, "#### Remote `h2` (`unix:///var/lib/berthd/unix.socket`)"));
  ASSERT_EQ(h2_rows.size(), 1U) << md;
  EXPECT_TRUE(h2_rows[0].starts_with("| `- delete` ⚠️ | `h2:old` |")) << h2_rows[0];

  const auto h3 = section(md, "#### Remote `h3` (`https://10.0.0.3:8443`)");
  ASSERT_EQ(h3.size(), 1U) << md;
  EXPECT_EQ(h3[0], "**Unknown**: `connection refused`. Its containers are not planned.");
  EXPECT_TRUE(contains(md, "**Plan incomplete:** 1 remote unknown (h3).\n")) << md;

  // The tables come in the order of the remotes, after the disruptive list.
  EXPECT_LT(md.find("#### Remote `h1`"), md.find("#### Remote `h2`"));
  EXPECT_LT(md.find("#### Remote `h2`"), md.find("#### Remote `h3`"));
}

TEST(RenderMarkdown, HostileValuesStayInTheirCellsSpansAndBlock) {
  Plan plan;
  plan.remotes.emplace("h1", remote("https://10.0.0.1:8443", 1));
  auto a = make(ActionKind::update, "h1", "web", "differs: config.user.note | *bold* <b>x</b> `tick`");
  const std::string hostile = "a|b\\|c ``` `x` \n</details>\n<script>alert(1)</script> | ";
  a.changes.push_back({"config.user.n|te`", hostile, "````", false});
  a.changes.push_back({"config.user.other", "\\", "|", false});
  plan.actions.push_back(a);
  plan.diagnostics.warning("</details> ``` | x", "h1:web");
  const std::string md = render_markdown(plan);
  const auto lines = lines_of(md);

  // Every table row has its four cells, however many pipes the values hold.
  const auto rows = table_rows(lines);
  ASSERT_EQ(rows.size(), 1U) << md;
  const auto row = cells(rows[0]);
  ASSERT_EQ(row.size(), 4U) << rows[0];
  EXPECT_EQ(row[0], " `~ update` ");
  // Values are code spans: their fence is longer than any run of backticks inside them (four).
  EXPECT_TRUE(row[2].starts_with(" `````config.user.n\\|te`: ")) << row[2];
  EXPECT_TRUE(contains(row[2], "\"a\\|b\\\\\\|c")) << row[2];  // after two backslashes, one more
  EXPECT_TRUE(contains(row[2], "`````<br>`config.user.other: \"\\\\\" -> \"\\|\"`")) << row[2];
  // The reason is prose: markdown and HTML in it are escaped.
  EXPECT_TRUE(contains(row[3], "differs: config.user.note \\| \\*bold\\* &lt;b&gt;x&lt;/b&gt; \\`tick\\`")) << row[3];

  // No line but berth's own opens or closes HTML, and the full plan's fence is closed only at its end.
  std::size_t details_open = 0;
  std::size_t details_close = 0;
  std::string fence;
  std::size_t fence_opened = 0;
  std::size_t fence_closed = 0;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const auto& line = lines[i];
    if (!fence.empty() && fence_closed == 0) {
      if (line == fence) fence_closed = i;
      continue;
    }
    if (line.starts_with("```")) {
      fence = line.substr(0, line.find_first_not_of('`'));
      fence_opened = i;
      continue;
    }
    if (line == "<details><summary>Full plan</summary>") ++details_open;
    if (line == "</details>") ++details_close;
    if (line.starts_with("<") && line != "<details><summary>Full plan</summary>" && line != "</details>")
      ADD_FAILURE() << "a line opens HTML: " << line;
  }
  EXPECT_EQ(details_open, 1U);
  EXPECT_EQ(details_close, 1U);
  ASSERT_GT(fence_closed, fence_opened) << md;
  EXPECT_GT(fence.size(), 4U) << "longer than the four backticks of the value";
  EXPECT_EQ(lines.back(), "</details>");
  EXPECT_EQ(fence_closed + 2, lines.size() - 1) << "the fence closes right before </details>";
  // Inside the block: the text plan, as render_text prints it without colour.
  std::string block;
  for (std::size_t i = fence_opened + 1; i < fence_closed; ++i) block += lines[i] + "\n";
  EXPECT_EQ(block, render_text(plan, TextStyle{}));
  EXPECT_TRUE(contains(block, "</details>")) << "escaped for a terminal, kept as text in the block";
}

TEST(RenderMarkdown, SensitiveValuesAreMaskedAsInText) {
  Plan plan;
  plan.remotes.emplace("h1", remote("https://10.0.0.1:8443", 1));
  auto a = make(ActionKind::update, "h1", "web", "differs: config.environment.TOKEN");
  a.changes.push_back({"config.environment.TOKEN", "old-hunter2", "new-hunter2", true});
  a.changes.push_back({"config.user.plain", "seen-before", "seen-after", false});
  a.sensitive.insert("config.environment.TOKEN");
  plan.actions.push_back(a);
  const std::string md = render_markdown(plan);
  EXPECT_FALSE(contains(md, "hunter2")) << md;
  EXPECT_TRUE(contains(md, "`config.environment.TOKEN: (sensitive) -> (sensitive)`")) << md;
  EXPECT_TRUE(contains(md, "seen-after")) << "what is not sensitive is shown";
}

TEST(RenderMarkdown, AnEmptyPlanSaysNoChanges) {
  Plan plan;
  plan.fleet_path = "-";
  plan.remotes.emplace("h1", remote("https://10.0.0.1:8443", 2));
  const std::string md = render_markdown(plan);
  const auto lines = lines_of(md);
  ASSERT_GE(lines.size(), 3U);
  EXPECT_EQ(lines[0], "### berth plan: `<stdin>`");
  EXPECT_EQ(lines[2], "**No changes.**");
  EXPECT_FALSE(contains(md, "| Action |")) << md;
  EXPECT_FALSE(contains(md, "Disruptive")) << md;
  EXPECT_TRUE(contains(md, "2 instances, no changes.\n")) << md;
  EXPECT_TRUE(contains(md, "\nNo changes.\n```\n")) << "the full plan ends with the text summary";
}

TEST(RenderMarkdown, ErrorsAndIncompletePlansAreSaid) {
  Plan plan;
  plan.destroy = true;
  plan.remotes.emplace("h1", remote("https://10.0.0.1:8443", 1));
  plan.not_planned.emplace("h1:web", "image alias 'bb' does not exist");
  plan.diagnostics.error("image alias 'bb' does not exist on h1", "containers.web.image");
  const std::string md = render_markdown(plan, MarkdownStyle{"Saved plan *x*.plan, made now."});
  const auto lines = lines_of(md);
  ASSERT_GE(lines.size(), 7U);
  EXPECT_EQ(lines[0], "### berth destroy plan");
  EXPECT_EQ(lines[2], "Saved plan \\*x\\*.plan, made now.");
  EXPECT_EQ(lines[4], "Deletes every container the fleet owns.");
  EXPECT_EQ(lines[6], "**No changes to what could be planned.** 1 error.");
  EXPECT_TRUE(contains(md, "**Plan incomplete:** 1 container not planned (h1:web).\n")) << md;
  EXPECT_TRUE(contains(md, "#### Not planned\n\n- `h1:web`: image alias 'bb' does not exist\n")) << md;
  EXPECT_TRUE(contains(md,
                       "#### Errors and warnings\n\n- **error:** `containers.web.image`: image alias 'bb' does not "
                       "exist on h1\n"))
      << md;
}

}  // namespace
}  // namespace berth::plan
