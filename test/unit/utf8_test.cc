// Utf8Check (UTF-8 a byte at a time, RFC 3629's edges) and printable_utf8
// (what a log line or a close reason may quote of a peer's bytes).

#include <gtest/gtest.h>

#include <string>

#include <percore/base/utf8.h>

namespace percore {
namespace {

TEST(Utf8CheckTest, AcceptsTheEdgesAndRefusesWhatIsNotUtf8) {
  auto valid = [](const std::string& text) {
    Utf8Check check;
    for (const char c : text) {
      if (!check.feed(static_cast<unsigned char>(c)))
        return false;
    }
    return check.complete();
  };
  EXPECT_TRUE(valid("plain"));
  EXPECT_TRUE(valid("\xC2\x80\xDF\xBF"));          // U+0080, U+07FF
  EXPECT_TRUE(valid("\xE0\xA0\x80\xEF\xBF\xBF"));  // U+0800, U+FFFF
  EXPECT_TRUE(valid("\xED\x9F\xBF\xEE\x80\x80"));  // U+D7FF, U+E000
  EXPECT_TRUE(valid("\xF0\x90\x80\x80\xF4\x8F\xBF\xBF"));  // U+10000, U+10FFFF
  EXPECT_FALSE(valid("\xC1\xBF"));                  // Overlong.
  EXPECT_FALSE(valid("\xE0\x9F\xBF"));              // Overlong.
  EXPECT_FALSE(valid("\xF0\x8F\xBF\xBF"));          // Overlong.
  EXPECT_FALSE(valid("\xED\xA0\x80"));              // A surrogate.
  EXPECT_FALSE(valid("\xF4\x90\x80\x80"));          // Past U+10FFFF.
  EXPECT_FALSE(valid("\xF5\x80\x80\x80"));
  EXPECT_FALSE(valid("\x80"));
  EXPECT_FALSE(valid("\xE2\x82"));  // Cut short.
}

TEST(PrintableUtf8Test, EscapesControlBytesAndWhatIsNotUtf8) {
  EXPECT_EQ(printable_utf8("plain text, € and 漢"), "plain text, € and 漢");
  EXPECT_EQ(printable_utf8("a\r\n[2099] [error] FAKE\x1B[31m"),
            "a\\x0D\\x0A[2099] [error] FAKE\\x1B[31m");
  EXPECT_EQ(printable_utf8(std::string("nul\0tab\t\x7F", 9)), "nul\\x00tab\\x09\\x7F");
  EXPECT_EQ(printable_utf8("\xFF\xC3\x28\xE2\x82"), "\\xFF\\xC3(\\xE2\\x82");
  // C1 controls (CSI, NEL) and the line and paragraph separators.
  EXPECT_EQ(printable_utf8("a\xC2\x9B" "31m b\xC2\x85 c\xE2\x80\xA8 d\xE2\x80\xA9 \xC2\xA0"),
            "a\\xC2\\x9B31m b\\xC2\\x85 c\\xE2\\x80\\xA8 d\\xE2\\x80\\xA9 \xC2\xA0");
  EXPECT_TRUE(is_valid_utf8("€"));
  EXPECT_FALSE(is_valid_utf8("\xE2\x82"));
}

TEST(PrintableUtf8Test, CutsBetweenCharactersAndEscapesNeverInside) {
  bool cut = false;
  EXPECT_EQ(printable_utf8("\xFF\xFF\xFF", 10, &cut), "\\xFF\\xFF");
  EXPECT_TRUE(cut);
  EXPECT_EQ(printable_utf8("ab€", 4, &cut), "ab");
  EXPECT_TRUE(cut);
  EXPECT_EQ(printable_utf8("ab€", 5, &cut), "ab€");
  EXPECT_FALSE(cut);
}

}  // namespace
}  // namespace percore
