// What a plan shows of names, values, reasons and errors that came from input (a daemon, a saved
// plan): escaped in text, so that only berth's own colour codes reach a terminal, and valid JSON
// whatever bytes the strings hold.

#include <gtest/gtest.h>

#include "engine/plan/plan.hpp"
#include "engine/plan/plan_file.hpp"
#include "engine/plan/render.hpp"
#include "engine/util/printable.hpp"

namespace berth::plan {
namespace {

const std::string kNul{"\0", 1};

Plan hostile_plan() {
  Plan plan;
  RemoteSummary h1;
  h1.url = "unix:///s\x1b[8m";
  h1.status = model::RemoteStatus::ok;
  h1.instances = 1;
  plan.remotes.emplace("h1", h1);
  RemoteSummary h2;
  h2.url = "https://127.0.0.1:8443";
  h2.error = "GET /1.0: \x1b]0;pwned\x07 bad\xff answer\r\nfake: ok";
  plan.remotes.emplace("h2", h2);
  Action a;
  a.kind = ActionKind::update;
  a.address = {"h1", "web\x1b[31mRED", std::nullopt};
  a.id = "update " + to_string(a.address);
  a.reason = "differs: config.user.note" + kNul;
  a.changes.push_back({"config.user.\rnote", "old\x1b[2J", "new\xff\xfe value\x7f\xc2\x9b", false});
  a.before = {{"config.user.\rnote", "old\x1b[2J"}};
  a.after = {{"config.user.\rnote", "new\xff\xfe value"}};
  plan.actions.push_back(a);
  plan.diagnostics.warning("is in state \x1b[5mBlinking", "h1:web\x1b[31mRED");
  return plan;
}

// The text with berth's own colour codes taken out.
std::string without_colours(std::string text) {
  for (const std::string code : {"\x1b[0m", "\x1b[32m", "\x1b[33m", "\x1b[36m", "\x1b[31m", "\x1b[1m", "\x1b[2m"}) {
    for (auto at = text.find(code); at != std::string::npos; at = text.find(code)) text.erase(at, code.size());
  }
  return text;
}

TEST(RenderText, InputIsEscapedAndColoursStay) {
  const std::string text = render_text(hostile_plan(), TextStyle{true});
  EXPECT_NE(text.find("\x1b[1mremote h1"), std::string::npos) << text;  // berth's own codes are kept
  const std::string plain = without_colours(text);
  EXPECT_EQ(plain.find('\x1b'), std::string::npos) << plain;
  EXPECT_EQ(plain.find('\0'), std::string::npos) << plain;
  EXPECT_EQ(plain.find('\r'), std::string::npos) << plain;
  EXPECT_EQ(plain.find('\x7f'), std::string::npos) << plain;
  EXPECT_TRUE(util::is_utf8(plain)) << plain;
  EXPECT_NE(plain.find("h1:web\\x1b[31mRED"), std::string::npos) << plain;
  EXPECT_NE(plain.find("(differs: config.user.note\\x00)"), std::string::npos) << plain;
  EXPECT_NE(plain.find("config.user.\\rnote: \"old\\u001b[2J\" -> \"new\xef\xbf\xbd\xef\xbf\xbd value\\x7f\\u009b\""),
            std::string::npos)
      << plain;
  EXPECT_NE(plain.find("Unknown — GET /1.0: \\x1b]0;pwned\\x07 bad\\xff answer\\r\\nfake: ok\n"), std::string::npos)
      << plain;
  EXPECT_NE(plain.find("(unix:///s\\x1b[8m)"), std::string::npos) << plain;
  EXPECT_NE(plain.find("warning: h1:web\\x1b[31mRED: is in state \\x1b[5mBlinking"), std::string::npos) << plain;
}

TEST(RenderJson, InvalidUtf8NeverThrowsAndStaysValidJson) {
  const Plan plan = hostile_plan();
  std::string text;
  ASSERT_NO_THROW(text = util::json_text(to_json(plan), 2));
  const auto back = nlohmann::json::parse(text);
  EXPECT_EQ(back["actions"][0]["container"], "web\x1b[31mRED");
  EXPECT_EQ(back["actions"][0]["changes"][0]["after"], "new\xef\xbf\xbd\xef\xbf\xbd value\x7f\xc2\x9b");
  EXPECT_EQ(text.find('\x1b'), std::string::npos);  // JSON writes control characters as \u001b

  std::string saved;
  ASSERT_NO_THROW(saved = serialize(PlanFile{plan, "2026-01-01T00:00:00Z", "test"}));
  const auto parsed = parse_plan_file(saved, "saved.plan");
  ASSERT_TRUE(parsed.file.has_value()) << diag::format(parsed.diagnostics);
  EXPECT_EQ(parsed.file->plan.actions.at(0).address.container, "web\x1b[31mRED");
  // What `berth show` prints of it is escaped the same way.
  EXPECT_EQ(without_colours(render_text(parsed.file->plan, TextStyle{true})).find('\x1b'), std::string::npos);
}

}  // namespace
}  // namespace berth::plan
