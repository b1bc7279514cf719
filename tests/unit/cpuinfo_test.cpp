#include "virtcaps/cpuinfo.h"

#include <gtest/gtest.h>

#include "test_support.h"
#include "virtcaps/files.h"

namespace virtcaps {
namespace {

Cpuinfo ParseFixture(const std::string& profile) {
  auto text = ReadFile(testing::FixtureHost(profile) + "/proc/cpuinfo");
  EXPECT_TRUE(text) << text.error();
  auto cpuinfo = ParseCpuinfo(text ? *text : "");
  EXPECT_TRUE(cpuinfo) << cpuinfo.error();
  return cpuinfo ? *cpuinfo : Cpuinfo{};
}

TEST(CpuinfoTest, ParsesX86) {
  Cpuinfo cpuinfo = ParseFixture("amd-epyc-pvm-guest");
  EXPECT_EQ(cpuinfo.processors.size(), 2u);
  EXPECT_EQ(cpuinfo.Get("vendor_id"), "AuthenticAMD");
  EXPECT_NE(cpuinfo.Get("flags").find("hypervisor"), std::string::npos);
}

TEST(CpuinfoTest, ParsesAarch64) {
  Cpuinfo cpuinfo = ParseFixture("aarch64-server");
  EXPECT_FALSE(cpuinfo.processors.empty());
  EXPECT_FALSE(cpuinfo.Get("CPU implementer").empty());
  EXPECT_NE(cpuinfo.Get("Features").find("asimd"), std::string::npos);
}

TEST(CpuinfoTest, ParsesOtherArchitectureShapes) {
  // Real files from ppc64le and s390x hosts (see tests/fixtures/cpuinfo/README.md).
  for (std::string name : {"ppc64le-power9.txt", "s390x-z14.txt"}) {
    auto text = ReadFile(testing::SourceDir() + "/tests/fixtures/cpuinfo/" + name);
    ASSERT_TRUE(text) << text.error();
    auto cpuinfo = ParseCpuinfo(*text);
    ASSERT_TRUE(cpuinfo) << name << ": " << cpuinfo.error();
    if (name.rfind("ppc", 0) == 0) {
      EXPECT_NE(cpuinfo->Get("cpu").find("POWER"), std::string::npos);
      EXPECT_FALSE(cpuinfo->global.at("platform").empty());
    } else {
      EXPECT_EQ(cpuinfo->Get("vendor_id"), "IBM/S390");
      EXPECT_NE(cpuinfo->Get("features").find("sie"), std::string::npos);
    }
  }
}

TEST(CpuinfoTest, GarbledInputIsAnErrorWithALine) {
  auto garbled =
      ParseCpuinfo("processor\t: 0\nvendor_id\t: GenuineIntel\n\x7f\x45LF binary junk\n");
  ASSERT_FALSE(garbled);
  EXPECT_NE(garbled.error().find("line 3"), std::string::npos) << garbled.error();
  EXPECT_FALSE(ParseCpuinfo(""));
  EXPECT_FALSE(ParseCpuinfo("model name : x\n"));  // no processor entries
}

}  // namespace
}  // namespace virtcaps
