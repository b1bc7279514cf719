#include <cstring>

#include <gtest/gtest.h>

#include "test_support.h"
#include "virtcaps/files.h"
#include "virtcaps/probes.h"

namespace virtcaps {
namespace {

TEST(CpuidDumpTest, ParsesCpu0OfARealDump) {
  auto source = MakeDumpCpuid(testing::FixtureHost("amd-epyc-pvm-guest") + "/cpuid.txt");
  ASSERT_TRUE(source->status().ok()) << source->status().message();
  auto leaf0 = source->Query(0, 0);
  ASSERT_TRUE(leaf0);
  // "AuthenticAMD" is spelled across EBX, EDX, ECX.
  EXPECT_EQ(leaf0->ebx, 0x68747541u);
  EXPECT_EQ(leaf0->edx, 0x69746e65u);
  EXPECT_EQ(leaf0->ecx, 0x444d4163u);
  EXPECT_FALSE(source->Query(0x12345678, 0));
}

TEST(CpuidDumpTest, KeepsOnlyCpu0) {
  auto table = ParseCpuidDump(
      "CPU 0:\n   0x00000000 0x00: eax=0x00000001 ebx=0x0 ecx=0x0 edx=0x0\n"
      "CPU 1:\n   0x00000000 0x00: eax=0x00000002 ebx=0x0 ecx=0x0 edx=0x0\n");
  ASSERT_TRUE(table) << table.error();
  EXPECT_EQ(table->at({0, 0}).eax, 1u);
}

TEST(CpuidDumpTest, MalformedDumpsAreErrors) {
  EXPECT_FALSE(ParseCpuidDump(""));
  EXPECT_FALSE(ParseCpuidDump("CPU 0:\n   0x00000000 0x00: eax=0xZZ ebx=0x0 ecx=0x0 edx=0x0\n"));
  EXPECT_FALSE(ParseCpuidDump("CPU 0:\n   0x00000000: eax=0x1\n"));
  auto missing = MakeDumpCpuid("/nonexistent/cpuid.txt");
  EXPECT_FALSE(missing->status().ok());
  EXPECT_NE(missing->status().message().find("/nonexistent/cpuid.txt"), std::string::npos);
}

TEST(CpuidInstructionTest, AgreesWithProcCpuinfoOnThisHost) {
  auto cpuid = MakeInstructionCpuid();
#if defined(__x86_64__)
  ASSERT_NE(cpuid, nullptr);
  auto leaf0 = cpuid->Query(0, 0);
  ASSERT_TRUE(leaf0);
  char vendor[13] = {};
  std::memcpy(vendor, &leaf0->ebx, 4);
  std::memcpy(vendor + 4, &leaf0->edx, 4);
  std::memcpy(vendor + 8, &leaf0->ecx, 4);
  auto cpuinfo = ReadFile("/proc/cpuinfo");
  ASSERT_TRUE(cpuinfo);
  EXPECT_NE(cpuinfo->find(std::string("vendor_id\t: ") + vendor), std::string::npos) << vendor;
#else
  EXPECT_EQ(cpuid, nullptr);
#endif
}

}  // namespace
}  // namespace virtcaps

namespace virtcaps {
namespace {

// Counts the questions that reach the live source.
class CountingCpuid : public CpuidSource {
 public:
  CountingCpuid(int* asked, uint32_t eax) : asked_(asked), eax_(eax) {}
  std::optional<CpuidRegisters> Query(uint32_t leaf, uint32_t) const override {
    ++*asked_;
    if (leaf > 0x20) return std::nullopt;
    return CpuidRegisters{eax_ + leaf, 0, 0, 0};
  }

 private:
  int* asked_;
  uint32_t eax_;
};

TEST(CpuidMemoryTest, AnswersAreRememberedUnderTheMicrocodeRevision) {
  HostProbeMemory memory;
  int asked = 0;
  {
    auto cpuid = MakeRememberingCpuid(std::make_unique<CountingCpuid>(&asked, 100), memory, "0x1");
    EXPECT_EQ(cpuid->Query(1, 0)->eax, 101u);
    EXPECT_EQ(cpuid->Query(1, 0)->eax, 101u);
    EXPECT_FALSE(cpuid->Query(0x40, 0));
    EXPECT_FALSE(cpuid->Query(0x40, 0));  // "no such leaf" is remembered too
  }
  EXPECT_EQ(asked, 2);
  {
    // The next refresh, same revision: nothing reaches the CPU.
    auto cpuid = MakeRememberingCpuid(std::make_unique<CountingCpuid>(&asked, 200), memory, "0x1");
    EXPECT_EQ(cpuid->Query(1, 0)->eax, 101u);
  }
  EXPECT_EQ(asked, 2);
  {
    // Late-loaded microcode can change CPUID bits: everything is asked again.
    auto cpuid = MakeRememberingCpuid(std::make_unique<CountingCpuid>(&asked, 200), memory, "0x2");
    EXPECT_EQ(cpuid->Query(1, 0)->eax, 201u);
  }
  EXPECT_EQ(asked, 3);
}

TEST(CpuidMemoryTest, MakeProbesKeysTheMemoryOnCpu0sMicrocodeFile) {
  std::string root = testing::TempDir();
  testing::WriteTestFile(root + "/sys/devices/system/cpu/cpu0/microcode/version", "0xb000040\n");
  Config config;
  config.paths.rootfs = root;
  HostPaths paths = HostPaths::FromConfig(config.paths);
  HostProbeMemory memory;
  Probes probes = MakeProbes(config.probes, paths, &memory);
  if (!probes.cpuid) GTEST_SKIP() << "no CPUID instruction on this architecture";
  auto live = MakeInstructionCpuid()->Query(0, 0);
  EXPECT_EQ(probes.cpuid->Query(0, 0), live);
  ASSERT_TRUE(memory.cpuid);
  EXPECT_EQ(memory.cpuid->key, "0xb000040");
  EXPECT_EQ(memory.cpuid->answers.size(), 1u);
  // Without a memory, nothing is kept anywhere (a one-off --once).
  Probes once = MakeProbes(config.probes, paths);
  EXPECT_EQ(once.cpuid->Query(0, 0), live);
}

}  // namespace
}  // namespace virtcaps
