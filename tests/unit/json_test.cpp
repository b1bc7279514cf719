#include "virtcaps/json.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace virtcaps {
namespace {

TEST(JsonTest, ParsesQmpGreetingWithNestedObjectsAndArrays) {
  auto value = ParseJson(R"({"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, )"
                         R"("package": "Debian 1:7.2+dfsg-7"}, "capabilities": ["oob"]}})"
                         "\r\n");
  ASSERT_TRUE(value) << value.error();
  ASSERT_TRUE(value->is_object());
  const JsonValue* qmp = value->Find("QMP");
  ASSERT_NE(qmp, nullptr);
  const JsonValue* qemu = qmp->Find("version")->Find("qemu");
  ASSERT_NE(qemu, nullptr);
  EXPECT_EQ(qemu->Find("micro")->integer(), 22);
  EXPECT_EQ(qemu->Find("major")->number(), 7.0);
  EXPECT_EQ(qmp->Find("version")->Find("package")->string(), "Debian 1:7.2+dfsg-7");
  const JsonValue* capabilities = qmp->Find("capabilities");
  ASSERT_TRUE(capabilities->is_array());
  ASSERT_EQ(capabilities->items().size(), 1u);
  EXPECT_EQ(capabilities->items()[0].string(), "oob");
  EXPECT_EQ(value->Find("missing"), nullptr);
  EXPECT_EQ(capabilities->Find("oob"), nullptr);  // not an object
  // Members keep document order.
  ASSERT_EQ(qemu->members().size(), 3u);
  EXPECT_EQ(qemu->members()[0].first, "micro");
  EXPECT_EQ(qemu->members()[2].first, "major");
}

TEST(JsonTest, ParsesLiteralsAndEmptyContainers) {
  auto value = ParseJson(R"( [true, false, null, {}, [], ""] )");
  ASSERT_TRUE(value) << value.error();
  const auto& items = value->items();
  ASSERT_EQ(items.size(), 6u);
  EXPECT_TRUE(items[0].is_bool() && items[0].bool_value());
  EXPECT_TRUE(items[1].is_bool() && !items[1].bool_value());
  EXPECT_TRUE(items[2].is_null());
  EXPECT_TRUE(items[3].is_object() && items[3].members().empty());
  EXPECT_TRUE(items[4].is_array() && items[4].items().empty());
  EXPECT_TRUE(items[5].is_string() && items[5].string().empty());
}

TEST(JsonTest, DecodesEveryEscapeIncludingSurrogatePairs) {
  auto value = ParseJson(R"("q\" b\\ s\/ \b\f\n\r\t \u0041\u00e9\u20ac\ud83d\ude00 \u0000!")");
  ASSERT_TRUE(value) << value.error();
  EXPECT_EQ(value->string(), std::string("q\" b\\ s/ \b\f\n\r\t A\xC3\xA9\xE2\x82\xAC"
                                         "\xF0\x9F\x98\x80 ") +
                                 std::string(1, '\0') + "!");
  // Raw UTF-8 passes through unchanged.
  auto raw = ParseJson("\"caf\xC3\xA9 \xF0\x9F\x98\x80\"");
  ASSERT_TRUE(raw) << raw.error();
  EXPECT_EQ(raw->string(), "caf\xC3\xA9 \xF0\x9F\x98\x80");
}

TEST(JsonTest, ParsesNumbersExactlyAndKeepsIntegers) {
  auto value = ParseJson(
      "[0, -0, 255, -17, 1.5, -2.5e3, 1E2, 6.02e+23, 1e-3, 9223372036854775807, "
      "-9223372036854775808, 9223372036854775808]");
  ASSERT_TRUE(value) << value.error();
  const auto& n = value->items();
  ASSERT_EQ(n.size(), 12u);
  EXPECT_EQ(n[0].integer(), 0);
  EXPECT_EQ(n[1].integer(), 0);
  EXPECT_EQ(n[2].integer(), 255);
  EXPECT_EQ(n[3].integer(), -17);
  EXPECT_EQ(n[4].number(), 1.5);
  EXPECT_FALSE(n[4].integer().has_value());
  EXPECT_EQ(n[5].number(), -2500.0);
  EXPECT_EQ(n[6].number(), 100.0);
  EXPECT_FALSE(n[6].integer().has_value());  // written with an exponent
  EXPECT_EQ(n[7].number(), 6.02e23);
  EXPECT_EQ(n[8].number(), 0.001);
  EXPECT_EQ(n[9].integer(), INT64_MAX);
  EXPECT_EQ(n[10].integer(), INT64_MIN);
  EXPECT_FALSE(n[11].integer().has_value());  // too big for int64_t, still a number
  EXPECT_EQ(n[11].number(), 9223372036854775808.0);
}

struct Malformed {
  std::string text;
  size_t offset;  // where the error must point
};

TEST(JsonTest, RejectsMalformedInputNamingTheOffset) {
  const std::vector<Malformed> cases = {
      {"", 0},
      {"   ", 3},
      {"{", 1},
      {R"({"a": 1)", 7},
      {R"({"a": 1}x)", 8},
      {R"({"a": 1} {"b": 2})", 9},
      {R"({"a" 1})", 5},
      {R"({"a": })", 6},
      {R"({a: 1})", 1},
      {R"({'a': 1})", 1},
      {R"([1,])", 3},
      {R"({"a": 1,})", 8},
      {R"([1 2])", 3},
      {R"({"a": tru})", 6},
      {"nul", 0},
      {"01", 1},
      {"-", 1},
      {"1.", 2},
      {".5", 0},
      {"1e", 2},
      {"+1", 0},
      {"1e400", 0},
      {R"("abc)", 0},
      {R"("\x")", 1},
      {R"("\u12")", 3},
      {R"("\u12g4")", 5},
      {R"("\ud800")", 1},
      {R"("\ud800\u0041")", 1},
      {R"("\udc00")", 1},
      {"\"a\tb\"", 2},
      {"\"a\nb\"", 2},
      {std::string("\"a\0b\"", 5), 2},
      {"\"\xFF\"", 1},
      {"\"\xC0\xAF\"", 1},      // overlong '/'
      {"\"\xED\xA0\x80\"", 1},  // an encoded surrogate
      {"\"\xE2\x82\"", 1},      // truncated sequence
      {R"({"a": 1, "a": 2})", 0},
  };
  for (const Malformed& c : cases) {
    auto value = ParseJson(c.text);
    ASSERT_FALSE(value) << "accepted: " << c.text;
    std::string expected = "offset " + std::to_string(c.offset) + ":";
    EXPECT_EQ(value.error().rfind(expected, 0), 0u) << c.text << " -> " << value.error();
  }
}

TEST(JsonTest, EnforcesDepthAndSizeLimits) {
  auto nested = [](size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); };
  EXPECT_TRUE(ParseJson(nested(64)));
  auto too_deep = ParseJson(nested(65));
  ASSERT_FALSE(too_deep);
  EXPECT_NE(too_deep.error().find("offset 64: nesting deeper than 64"), std::string::npos)
      << too_deep.error();
  std::string objects;
  for (int i = 0; i < 65; ++i) objects += "{\"a\":";
  objects += "1" + std::string(65, '}');
  EXPECT_FALSE(ParseJson(objects));
  // Very deep input is refused without recursing through all of it.
  EXPECT_FALSE(ParseJson(std::string(1000000, '[')));

  JsonLimits small;
  small.max_bytes = 10;
  EXPECT_TRUE(ParseJson("[1,2,3,4]", small));
  auto too_big = ParseJson("[1,2,3,4,5]", small);
  ASSERT_FALSE(too_big);
  EXPECT_NE(too_big.error().find("larger than 10 bytes"), std::string::npos);
}

TEST(JsonTest, TypedAccessorsAreNeutralOnTheWrongType) {
  auto value = ParseJson(R"({"s": "x", "n": 3})");
  ASSERT_TRUE(value);
  EXPECT_FALSE(value->Find("s")->bool_value());
  EXPECT_FALSE(value->Find("s")->integer().has_value());
  EXPECT_EQ(value->Find("n")->string(), "");
  EXPECT_TRUE(value->Find("n")->items().empty());
}

TEST(JsonTest, QuoteJsonRoundTrips) {
  std::string text = std::string("a\"b\\c\n\t\x01 \xC3\xA9") + std::string(1, '\0');
  std::string quoted = QuoteJson(text);
  EXPECT_EQ(quoted, "\"a\\\"b\\\\c\\n\\t\\u0001 \xC3\xA9\\u0000\"");
  auto back = ParseJson(quoted);
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ(back->string(), text);
}

}  // namespace
}  // namespace virtcaps
