// The status page: drawn from GET /status's JSON, escaped, and never thrown off by odd input.

#include <gtest/gtest.h>

#include "engine/watch/page.hpp"

namespace berth::watch {
namespace {

using nlohmann::json;

json sample() {
  return json::parse(R"({
    "fleet": {"path": "berth.yaml", "name": "default", "revision": "3f2a9c1e0b7d-dirty", "error": null},
    "mode": "correct", "suspended": false, "suspended_by": null,
    "next_run_at": "2026-12-02T10:00:00Z",
    "last_run": {"id": 12, "started_at": "2026-12-02T09:59:50Z", "finished_at": "2026-12-02T09:59:51Z",
                 "result": "succeeded", "duration_seconds": 1.25, "drift": 3, "corrected": 2, "failed": 0, "error": ""},
    "last_error": null,
    "remotes": [
      {"name": "h1", "up": true, "error": "", "read_seconds": 0.12, "url": "https://127.0.0.1:8443"},
      {"name": "h2", "up": false, "error": "remote h2: connection refused", "read_seconds": 5, "url": "https://10.0.0.2:8443"}
    ],
    "containers": [
      {"address": "h1:web", "remote": "h1", "name": "web", "sync": "OutOfSync", "health": "Healthy",
       "policy": "correct", "drift": ["update config.limits.cpu", "start"], "why": ""},
      {"address": "h1:db", "remote": "h1", "name": "db", "sync": "Synced", "health": "Healthy",
       "policy": "report", "drift": [], "why": ""},
      {"address": "h2:cache", "remote": "h2", "name": "cache", "sync": "Unknown", "health": "Unknown",
       "policy": "correct", "drift": [], "why": "remote h2: connection refused"},
      {"address": "h9:stray", "remote": "h9", "name": "stray", "sync": "Unknown", "health": "Missing",
       "policy": "correct", "drift": [], "why": ""}
    ],
    "runs": [
      {"id": 12, "started_at": "2026-12-02T09:59:50Z", "result": "succeeded", "duration_seconds": 1.2,
       "drift": 3, "corrected": 2, "failed": 0, "error": ""},
      {"id": 11, "started_at": "2026-12-02T09:58:50Z", "result": "failed", "duration_seconds": 0.5,
       "drift": 1, "corrected": 0, "failed": 1, "error": "h1:web: exit 1"}
    ]
  })");
}

bool has(const std::string& page, const std::string& needle) {
  return page.find(needle) != std::string::npos;
}

// The part of the page from the section that starts with `heading` to the end of that section.
std::string section(const std::string& page, const std::string& heading) {
  const auto start = page.find(heading);
  if (start == std::string::npos) return "";
  return page.substr(start, page.find("</section>", start) - start);
}

TEST(WatchPage, ADriftedContainersRowShowsOutOfSync) {
  const auto page = render_status_page(sample());
  EXPECT_EQ(page.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_TRUE(has(page, R"(<meta http-equiv="refresh" content="10">)"));
  const auto h1 = section(page, "Remote h1");
  ASSERT_FALSE(h1.empty());
  const auto web = h1.substr(h1.find("<td class=\"name\">web</td>"));
  EXPECT_EQ(web.rfind(R"(<td class="name">web</td><td class="sync OutOfSync">OutOfSync</td>)", 0), 0u) << web;
  EXPECT_TRUE(has(web, R"(<td class="health Healthy">Healthy</td>)"));
  EXPECT_TRUE(has(web, "<li>update config.limits.cpu</li><li>start</li>"));
  EXPECT_TRUE(has(h1, R"(<td class="name">db</td><td class="sync Synced">Synced</td>)"));
  EXPECT_FALSE(has(h1, "cache"));  // h2's container is in h2's section
}

TEST(WatchPage, TheHeaderShowsTheFleetAndTheLastRun) {
  const auto page = render_status_page(sample());
  EXPECT_TRUE(has(page, "<title>berth watch: default</title>"));
  EXPECT_TRUE(has(page, "<code>berth.yaml</code>"));
  EXPECT_TRUE(has(page, "<code>3f2a9c1e0b7d-dirty</code>"));
  EXPECT_TRUE(has(page, R"(<span class="mode">correct</span>)"));
  EXPECT_TRUE(has(page, "last run 12: succeeded"));
  EXPECT_TRUE(has(page, "1.25 s"));
  EXPECT_FALSE(has(page, "banner suspended"));
  EXPECT_FALSE(has(page, "fleet-error"));

  auto suspended = sample();
  suspended["suspended"] = true;
  suspended["suspended_by"] = "api";
  EXPECT_TRUE(has(render_status_page(suspended), R"(<p class="banner suspended">Suspended (by api)</p>)"));
}

TEST(WatchPage, AFleetFileErrorIsABannerInRed) {
  auto status = sample();
  status["fleet"]["error"] = "berth.yaml:3:1: unknown key 'contaners'\nberth.yaml:9:5: remote 'h3' is not declared";
  status["last_error"] = "reading h2: timeout";
  const auto page = render_status_page(status);
  EXPECT_TRUE(has(page,
                  "<div class=\"banner error fleet-error\"><strong>Fleet file error</strong><pre>berth.yaml:3:1: "
                  "unknown key &#39;contaners&#39;\nberth.yaml:9:5: remote &#39;h3&#39; is not declared</pre></div>"));
  EXPECT_TRUE(has(page, "last-error\"><strong>Last error</strong><pre>reading h2: timeout</pre>"));
  EXPECT_TRUE(has(page, ".banner.error { background: #fde8e8; color: #8a1c1c;"));
}

TEST(WatchPage, ARemoteThatIsDownShowsItsError) {
  const auto page = render_status_page(sample());
  const auto h2 = section(page, "Remote h2");
  ASSERT_FALSE(h2.empty());
  EXPECT_TRUE(has(h2, R"(<span class="down">down</span>)"));
  EXPECT_TRUE(has(h2, R"(<p class="remote-error">remote h2: connection refused</p>)"));
  EXPECT_TRUE(has(h2, "read in 5.00 s"));
  EXPECT_TRUE(has(h2, R"(<td class="name">cache</td><td class="sync Unknown">Unknown</td>)"));
  EXPECT_TRUE(has(section(page, "Remote h1"), R"(<span class="up">up</span>)"));
}

TEST(WatchPage, ContainersOnNoListedRemoteHaveTheirOwnSection) {
  const auto page = render_status_page(sample());
  const auto other = section(page, "Containers on no listed remote");
  ASSERT_FALSE(other.empty());
  EXPECT_TRUE(has(other, R"(<td class="name">h9:stray</td>)"));
  EXPECT_TRUE(has(other, R"(<td class="health Missing">Missing</td>)"));
  EXPECT_FALSE(has(other, "h1:web"));
}

TEST(WatchPage, TheLastRunsAreATable) {
  const auto page = render_status_page(sample());
  const auto runs = section(page, "Last runs");
  EXPECT_TRUE(has(runs, R"(<tr><td>12</td><td>2026-12-02T09:59:50Z</td><td class="result succeeded">succeeded</td>)"));
  EXPECT_TRUE(has(runs, R"(<td class="result failed">failed</td><td>0.50 s</td><td>1</td><td>0</td><td>1</td>)"
                        R"(<td>h1:web: exit 1</td>)"));
}

TEST(WatchPage, EveryStringIsEscaped) {
  auto status = sample();
  const std::string hostile = "<script>alert(1)</script>";
  status["fleet"]["name"] = hostile;
  status["fleet"]["path"] = "\"'&";
  status["remotes"][0]["error"] = hostile;
  status["remotes"][0]["url"] = "javascript:alert(1)";
  status["containers"][0]["name"] = hostile;
  status["containers"][0]["drift"] = {hostile};
  status["containers"][0]["why"] = hostile;
  status["containers"][1]["sync"] = "\"><script>x</script>";  // also not a class name
  status["runs"][0]["error"] = hostile;
  status["last_error"] = hostile;
  status["containers"][2]["name"] = "\x1b]0;owned\x07";
  const auto page = render_status_page(status);
  EXPECT_FALSE(has(page, "<script"));
  EXPECT_FALSE(has(page, "\x1b"));
  EXPECT_FALSE(has(page, "href="));
  EXPECT_FALSE(has(page, "src="));
  EXPECT_TRUE(has(page, R"(<td class="name">&lt;script&gt;alert(1)&lt;/script&gt;</td>)"));
  EXPECT_TRUE(has(page, "<code>&quot;&#39;&amp;</code>"));
  EXPECT_TRUE(has(page, R"(<td class="sync other">&quot;&gt;&lt;script&gt;x&lt;/script&gt;</td>)"));
  EXPECT_TRUE(has(page, R"(<td class="name">\x1b]0;owned\x07</td>)"));
}

TEST(WatchPage, GarbageRendersWithoutThrowing) {
  for (const json& status : {json(nullptr), json::array({1, 2}), json(42), json("status"), json(true), json::object(),
                             json::parse(R"({"fleet": null, "remotes": null, "containers": null})")}) {
    std::string page;
    ASSERT_NO_THROW(page = render_status_page(status)) << status.dump();
    EXPECT_EQ(page.rfind("<!DOCTYPE html>", 0), 0u);
    EXPECT_TRUE(has(page, "</html>"));
  }
  const auto odd = json::parse(R"({
    "fleet": {"name": 7, "path": ["x"], "revision": {"a": 1}, "error": 3},
    "mode": 1, "suspended": "yes", "suspended_by": 5, "next_run_at": false,
    "last_run": {"id": "twelve", "result": 3, "duration_seconds": "slow", "drift": -1.7, "corrected": null,
                 "failed": 18446744073709551615},
    "last_error": {"message": "x"},
    "remotes": [null, 3, "h1", {"name": 5, "up": "yes", "read_seconds": "fast"}, {"name": "h1", "up": 1}],
    "containers": [null, 1, "web", {"name": null, "remote": "h1", "sync": ["OutOfSync"], "health": 2,
                   "policy": {}, "drift": "start", "why": 4}, {"remote": 7, "drift": [1, null, "start"]}],
    "runs": {"id": 1}
  })");
  std::string page;
  ASSERT_NO_THROW(page = render_status_page(odd));
  EXPECT_TRUE(has(page, "last run -: -"));
  EXPECT_TRUE(has(page, "drift -1, corrected -, failed 18446744073709551615"));
  EXPECT_TRUE(has(page, "<li>start</li>"));
  EXPECT_FALSE(has(page, "fleet-error"));
  EXPECT_FALSE(has(page, "banner suspended"));
  EXPECT_TRUE(has(page, "No runs yet."));

  auto runs = json::parse(R"({"runs": [null, {"id": 1.5, "duration_seconds": 1e308, "drift": 1e300}]})");
  ASSERT_NO_THROW(page = render_status_page(runs));
  EXPECT_TRUE(has(page, "<tr><td>1</td>"));
}

TEST(WatchPage, HtmlEscape) {
  EXPECT_EQ(html_escape(R"(<a href="x">Tom & Jerry's</a>)"),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&#39;s&lt;/a&gt;");
  EXPECT_EQ(html_escape(""), "");
  EXPECT_EQ(html_escape("plain ü"), "plain ü");
}

}  // namespace
}  // namespace berth::watch
