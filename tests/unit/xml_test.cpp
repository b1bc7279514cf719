#include "virtcaps/xml.h"

#include <gtest/gtest.h>

namespace virtcaps {
namespace {

TEST(XmlTest, WritesLibvirtLayoutAndReadsItBack) {
  XmlElement root("capabilities");
  XmlElement& cpu = root.Add("host").Add("cpu");
  cpu.Add("arch", "x86_64");
  cpu.Add("feature").SetAttribute("name", "a<b&'c'");
  std::string text = WriteXml(root);
  EXPECT_EQ(text,
            "<capabilities>\n  <host>\n    <cpu>\n      <arch>x86_64</arch>\n"
            "      <feature name='a&lt;b&amp;&apos;c&apos;'/>\n    </cpu>\n  </host>\n"
            "</capabilities>\n");
  auto parsed = ParseXml(text);
  ASSERT_TRUE(parsed) << parsed.error();
  const XmlElement* parsed_cpu = parsed->Child("host")->Child("cpu");
  ASSERT_NE(parsed_cpu, nullptr);
  EXPECT_EQ(parsed_cpu->Child("arch")->text, "x86_64");
  EXPECT_EQ(*parsed_cpu->Child("feature")->Attribute("name"), "a<b&'c'");
}

TEST(XmlTest, ReportsWhereMalformedInputBreaks) {
  auto parsed = ParseXml("<a>\n<b></a>");
  ASSERT_FALSE(parsed);
  EXPECT_NE(parsed.error().find("line 2"), std::string::npos) << parsed.error();
  EXPECT_FALSE(ParseXml(""));
  EXPECT_FALSE(ParseXml("\x01\x02garbage"));
}

TEST(XmlTest, RefusesDoctypeAndDeepNesting) {
  auto entity = ParseXml("<!DOCTYPE a [<!ENTITY x 'y'>]><a>&x;</a>");
  ASSERT_FALSE(entity);
  EXPECT_NE(entity.error().find("DOCTYPE"), std::string::npos);
  std::string deep;
  for (int i = 0; i < 100; ++i) deep += "<a>";
  for (int i = 0; i < 100; ++i) deep += "</a>";
  auto nested = ParseXml(deep);
  ASSERT_FALSE(nested);
  EXPECT_NE(nested.error().find("nesting"), std::string::npos);
}

}  // namespace
}  // namespace virtcaps
