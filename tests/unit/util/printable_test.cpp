// Text from input on its way to a terminal: control characters, escape sequences and invalid UTF-8
// are written out, everything else is kept.

#include "engine/util/printable.hpp"

#include <gtest/gtest.h>

namespace berth::util {
namespace {

TEST(Printable, KeepsOrdinaryTextAndUnicode) {
  EXPECT_EQ(printable("web-1/snap 0"), "web-1/snap 0");
  EXPECT_EQ(printable("caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x90\xb3"), "caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x90\xb3");
  EXPECT_EQ(printable(R"(C:\path "quoted")"), R"(C:\path "quoted")");
  EXPECT_EQ(printable(""), "");
}

TEST(Printable, EscapesControlCharacters) {
  EXPECT_EQ(printable("a\x1b[31mred\x1b[0m"), "a\\x1b[31mred\\x1b[0m");
  EXPECT_EQ(printable(std::string_view{"nul\0byte", 8}), "nul\\x00byte");
  EXPECT_EQ(printable("line1\nline2\r\tend"), "line1\\nline2\\r\\tend");
  EXPECT_EQ(printable("bell\x07 del\x7f"), "bell\\x07 del\\x7f");
  // OSC 52 would write to the clipboard; the title sequence would rename the window.
  EXPECT_EQ(printable("\x1b]0;owned\x07"), "\\x1b]0;owned\\x07");
}

TEST(Printable, EscapesC1ControlsAndDeceptiveCodePoints) {
  EXPECT_EQ(printable("\xc2\x9b"
                      "2J"),
            "\\u009b2J");  // CSI in its 8-bit form
  EXPECT_EQ(printable("\xc2\x85"), "\\u0085");
  EXPECT_EQ(printable("admin\xe2\x80\xae"
                      "txt.exe"),
            "admin\\u202etxt.exe");  // right-to-left override
  EXPECT_EQ(printable("a\xe2\x80\xa8"
                      "b"),
            "a\\u2028b");
}

TEST(Printable, EscapesEachByteOfInvalidUtf8) {
  EXPECT_EQ(printable("bad\xff\xfe"), "bad\\xff\\xfe");
  EXPECT_EQ(printable("\xc3"), "\\xc3");                             // truncated
  EXPECT_EQ(printable("\xc0\xaf"), "\\xc0\\xaf");                    // overlong '/'
  EXPECT_EQ(printable("\xed\xa0\x80"), "\\xed\\xa0\\x80");           // a surrogate
  EXPECT_EQ(printable("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");  // above U+10FFFF
  EXPECT_EQ(printable("\x80x"), "\\x80x");                           // stray continuation byte
}

TEST(Printable, IsIdempotent) {
  const std::string once = printable(std::string_view{"\x1b[2J\0\xff\xc2\x9b\n", 8});
  EXPECT_EQ(printable(once), once);
  EXPECT_TRUE(is_utf8(once));
}

TEST(Printable, Utf8Validity) {
  EXPECT_TRUE(is_utf8("plain"));
  EXPECT_TRUE(is_utf8("caf\xc3\xa9"));
  EXPECT_FALSE(is_utf8("caf\xe9"));
  EXPECT_FALSE(is_utf8("\xed\xa0\x80"));
}

// nlohmann's dump() throws type_error 316 on invalid UTF-8; output must never crash on it.
TEST(JsonText, InvalidUtf8IsReplacedNotThrown) {
  const nlohmann::json value = {{"name", "web\xff"}, {"error", std::string{"\x1b[31m\0", 6}}};
  EXPECT_THROW((void)value.dump(), nlohmann::json::type_error);
  std::string text;
  ASSERT_NO_THROW(text = json_text(value));
  EXPECT_EQ(text, R"({"error":"\u001b[31m\u0000","name":"web)"
                  "\xef\xbf\xbd"
                  R"("})");
  const auto back = nlohmann::json::parse(text);  // valid JSON
  EXPECT_EQ(back["name"], "web\xef\xbf\xbd");
  EXPECT_EQ(json_text(value, 2).find('\n'), 1U);
}

}  // namespace
}  // namespace berth::util
