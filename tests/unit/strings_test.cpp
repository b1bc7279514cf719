#include "virtcaps/strings.h"

#include <gtest/gtest.h>

#include <clocale>

namespace virtcaps {
namespace {

TEST(StringsTest, ParsesIntegersStrictly) {
  EXPECT_EQ(ParseInt(" 42\n"), 42);
  EXPECT_EQ(ParseInt("-1"), -1);
  EXPECT_FALSE(ParseInt("42abc"));
  EXPECT_FALSE(ParseInt(""));
  EXPECT_FALSE(ParseUint("-1"));
  EXPECT_FALSE(ParseUint("99999999999999999999999"));
  EXPECT_EQ(ParseHex("0x1000065"), 0x1000065u);
  EXPECT_EQ(ParseHex("FF"), 0xffu);
  EXPECT_FALSE(ParseHex("0xZZ"));
}

TEST(StringsTest, CpuListsRoundTrip) {
  auto cpus = ParseCpuList("0-3,8,10-11\n");
  ASSERT_TRUE(cpus);
  EXPECT_EQ(*cpus, (std::vector<unsigned>{0, 1, 2, 3, 8, 10, 11}));
  EXPECT_EQ(FormatCpuList(*cpus), "0-3,8,10-11");
  EXPECT_EQ(ParseCpuList("")->size(), 0u);
  EXPECT_FALSE(ParseCpuList("3-1"));
  EXPECT_FALSE(ParseCpuList("0-4294967295"));  // bounded, not a giant allocation
  EXPECT_FALSE(ParseCpuList("1,,x"));
}

TEST(StringsTest, SplitsOnWhitespace) {
  auto words = SplitWhitespace("  fpu\tvme  de ");
  ASSERT_EQ(words.size(), 3u);
  EXPECT_EQ(words[2], "de");
}

TEST(StringsTest, NumbersIgnoreTheLocale) {
  // A comma-decimal locale must not leak into parsing or formatting.
  if (std::setlocale(LC_ALL, "de_DE.UTF-8") == nullptr) std::setlocale(LC_ALL, "C.UTF-8");
  EXPECT_EQ(ParseDouble("0.5"), 0.5);
  EXPECT_EQ(FormatDouble(0.25), "0.25");
  std::setlocale(LC_ALL, "C");
}

TEST(StringsTest, NothingButDigitsFollowsASignOrHexPrefix) {
  // Found by fuzz/sysfs_number_fuzzer: "+-223" read as -223, "0x 5" as 5.
  EXPECT_FALSE(ParseInt("+-223"));
  EXPECT_FALSE(ParseInt("+-0"));
  EXPECT_EQ(ParseInt("+5"), 5);
  EXPECT_FALSE(ParseHex("0x 5"));
  EXPECT_FALSE(ParseHex("0X\t1f"));
  EXPECT_EQ(ParseHex(" 0x1f\n"), 0x1fu);
}

TEST(StringsTest, RepeatedCpuRangesAreExpandedOnce) {
  // 400 copies of the largest range once took minutes (one set insertion per CPU per
  // copy); merged ranges expand once.
  std::string repeated = "0-1048576";
  for (int i = 1; i < 400; ++i) repeated += ",0-1048576";
  auto cpus = ParseCpuList(repeated);
  ASSERT_TRUE(cpus);
  ASSERT_EQ(cpus->size(), 1048577u);
  EXPECT_EQ(cpus->front(), 0u);
  EXPECT_EQ(cpus->back(), 1048576u);
  EXPECT_EQ(ParseCpuList("8-10,0-3,2-9,5,12,12"),
            (std::vector<unsigned>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12}));
}

// Issue 15.7: what XML 1.0 or the Prometheus text format cannot carry becomes U+FFFD.
TEST(StringsTest, SanitizeTextKeepsCleanTextAndReplacesWhatTheFormatsCannotCarry) {
  const std::string fffd = "\xEF\xBF\xBD";
  std::string clean =
      "Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz beta-\xC3\xA9 \xF0\x9F\x98\x80 <&>\"";
  EXPECT_EQ(SanitizeText(clean), clean);
  std::string unchanged = clean;
  EXPECT_FALSE(SanitizeInPlace(unchanged));
  struct Case {
    std::string in, out;
  };
  const Case cases[] = {
      {"Genuine\xFFIntel", "Genuine" + fffd + "Intel"},  // a stray 0xFF
      {"pc-\xEF\xBF\xBF", "pc-" + fffd},                 // U+FFFF
      {"pc-\xEF\xBF\xBE", "pc-" + fffd},                 // U+FFFE
      {std::string("a\0b", 3), "a" + fffd + "b"},        // NUL
      {"a\x01\x1B\x7F"
       "b",
       "a" + fffd + fffd + fffd + "b"},  // C0 controls, DEL
      {"a\xC2\x85"
       "b",
       "a" + fffd + "b"},  // C1 (NEL): one character, one U+FFFD
      {"a\xED\xA0\x80"
       "b",
       "a" + fffd + fffd + fffd + "b"},  // a surrogate
      {"a\xC0\xAF"
       "b",
       "a" + fffd + fffd + "b"},  // overlong '/'
      {"a\xE0\x80\xAF"
       "b",
       "a" + fffd + fffd + fffd + "b"},  // overlong, 3 bytes
      {"a\xF4\x90\x80\x80"
       "b",
       "a" + fffd + fffd + fffd + fffd + "b"},  // past U+10FFFF
      {"cut \xE2\x82", "cut " + fffd + fffd},   // truncated sequence
      {"two\nlines\tand\rtab", "two lines and tab"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(SanitizeText(c.in), c.out) << c.in;
    EXPECT_EQ(SanitizeText(c.out), c.out) << "idempotent: " << c.out;
  }
}

// The clean-ASCII scan goes eight bytes at a time: a byte it must stop at is found
// wherever it sits in the word, and the bytes around the word boundaries pass.
TEST(StringsTest, SanitizeInPlaceFindsABadByteAtEveryPosition) {
  const std::string fffd = "\xEF\xBF\xBD";
  const std::string clean = "pc-q35-7.2 ~ !Az{|}~ 0123456789";  // 0x20..0x7E only
  std::string unchanged = clean;
  EXPECT_FALSE(SanitizeInPlace(unchanged));
  for (char bad : {'\x00', '\x01', '\x1F', '\x7F', '\x80', '\xFF'}) {
    for (size_t at = 0; at < clean.size(); ++at) {
      std::string text = clean;
      text[at] = bad;
      EXPECT_TRUE(SanitizeInPlace(text)) << "byte " << int(bad) << " at " << at;
      EXPECT_EQ(text, clean.substr(0, at) + fffd + clean.substr(at + 1))
          << "byte " << int(bad) << " at " << at;
    }
  }
  // Neighbours of the bounds the word test uses (0x20 and 0x7E) stay as they are.
  std::string bounds(24, ' ');
  for (size_t at = 0; at < bounds.size(); at += 2) bounds[at] = '~';
  EXPECT_FALSE(SanitizeInPlace(bounds));
}

}  // namespace
}  // namespace virtcaps
