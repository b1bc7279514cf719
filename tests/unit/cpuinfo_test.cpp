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
}

// Single-CPU 32-bit Arm kernels print no "processor : N" line, and "Processor" is the
// CPU's name there (a Raspberry Pi 1 / ARM1176 kernel 3.x file, trimmed).
TEST(CpuinfoTest, KeepsFilesWithoutProcessorEntries) {
  auto cpuinfo = ParseCpuinfo(
      "Processor\t: ARMv6-compatible processor rev 7 (v6l)\nBogoMIPS\t: 697.95\n"
      "Features\t: swp half thumb fastmult vfp edsp java tls\nCPU implementer\t: 0x41\n"
      "CPU architecture: 7\nCPU variant\t: 0x0\nCPU part\t: 0xb76\nCPU revision\t: 7\n\n"
      "Hardware\t: BCM2708\nRevision\t: 000e\n");
  ASSERT_TRUE(cpuinfo) << cpuinfo.error();
  EXPECT_TRUE(cpuinfo->processors.empty());
  EXPECT_EQ(cpuinfo->Get("CPU part"), "0xb76");
  EXPECT_EQ(cpuinfo->Get("Hardware"), "BCM2708");
  EXPECT_EQ(cpuinfo->Get("processor"), "ARMv6-compatible processor rev 7 (v6l)");
}

// LoongArch capitalises its keys ("Address Sizes", "Model Name"); lookups find them.
TEST(CpuinfoTest, FindsKeysWhateverTheirCase) {
  auto cpuinfo = ParseCpuinfo(
      "system type\t\t: generic-loongson-machine\n\nprocessor\t\t: 0\npackage\t\t\t: 0\n"
      "Model Name\t\t: Loongson-3A5000\nAddress Sizes\t\t: 48 bits physical, 48 bits "
      "virtual\n\n");
  ASSERT_TRUE(cpuinfo) << cpuinfo.error();
  ASSERT_EQ(cpuinfo->processors.size(), 1u);
  EXPECT_EQ(cpuinfo->Get("address sizes"), "48 bits physical, 48 bits virtual");
  EXPECT_EQ(cpuinfo->Get("model name"), "Loongson-3A5000");
  EXPECT_EQ(cpuinfo->Get("system type"), "generic-loongson-machine");
}

}  // namespace
}  // namespace virtcaps
