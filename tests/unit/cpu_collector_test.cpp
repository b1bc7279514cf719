// The cpu collector on small host trees built here: each test changes one input.
#include <gtest/gtest.h>

#include <filesystem>

#include "test_support.h"
#include "virtcaps/collector.h"

namespace virtcaps {
namespace {

// A minimal Intel host: two CPUs, one core each, in one socket.
class CpuCollectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = testing::TempDir();
    config_.paths.rootfs = root_;
    Write("proc/sys/kernel/arch", "x86_64\n");
    Write("sys/devices/system/cpu/online", "0-1\n");
    for (int cpu = 0; cpu < 2; ++cpu) {
      std::string dir = "sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/";
      Write(dir + "physical_package_id", "0\n");
      Write(dir + "die_id", "0\n");
      Write(dir + "core_id", std::to_string(cpu) + "\n");
    }
    SetFlags("fpu vme vmx sse4_1");
    // A host with libvirt 9.0's CPU map, so the model part succeeds too.
    std::filesystem::create_directories(root_ + "/usr/share/libvirt");
    std::filesystem::create_directory_symlink(
        testing::SourceDir() + "/tests/fixtures/cpu_map/libvirt-9.0",
        root_ + "/usr/share/libvirt/cpu_map");
  }

  void Write(const std::string& relative, const std::string& content) {
    testing::WriteTestFile(root_ + "/" + relative, content);
  }

  void SetFlags(const std::string& flags) {
    std::string block;
    for (int cpu = 0; cpu < 2; ++cpu) {
      block += "processor\t: " + std::to_string(cpu) +
               "\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 85\n"
               "model name\t: Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz\nstepping\t: 4\n"
               "microcode\t: 0x2006e05\nflags\t\t: " +
               flags + "\naddress sizes\t: 46 bits physical, 48 bits virtual\n\n";
    }
    Write("proc/cpuinfo", block);
  }

  // CPUID leaf 1 of a Xeon Gold 6148 (family 6 model 85 stepping 4), VMX bit as given.
  void SetCpuid(bool vmx) {
    CpuidTable table;
    table[{0, 0}] = CpuidRegisters{0x16, 0x756e6547, 0x6c65746e, 0x49656e69};  // GenuineIntel
    table[{1, 0}] = CpuidRegisters{0x00050654, 0, vmx ? 0x7ffefbffu : 0x7ffefbdfu, 0xbfebfbff};
    table[{0x80000000, 0}] = CpuidRegisters{0x80000008, 0, 0, 0};
    table[{0x80000001, 0}] = CpuidRegisters{0, 0, 0x121, 0x2c100800};
    probes_.cpuid = MakeTableCpuid(table);
  }

  Status Collect() {
    caps_ = HostCapabilities{};
    HostPaths paths = HostPaths::FromConfig(config_.paths);
    CollectContext context{paths, probes_, config_};
    caps_.cpu.arch = HostArch(paths);
    return MakeCpuCollector()->Collect(context, caps_);
  }

  std::string root_;
  Config config_;
  Probes probes_;
  HostCapabilities caps_;
};

TEST_F(CpuCollectorTest, ReadsIdentityAndTopology) {
  SetCpuid(true);
  ASSERT_TRUE(Collect().ok());
  const HostCpu& cpu = caps_.cpu;
  EXPECT_EQ(cpu.arch, "x86_64");
  EXPECT_EQ(cpu.vendor, "Intel");
  EXPECT_EQ(cpu.microcode, 0x2006e05u);
  ASSERT_TRUE(cpu.signature);
  EXPECT_EQ(cpu.signature->family, 6u);
  EXPECT_EQ(cpu.signature->model, 85u);
  EXPECT_EQ(cpu.signature->stepping, 4u);
  ASSERT_TRUE(cpu.topology);
  EXPECT_EQ(cpu.topology->sockets, 1u);
  EXPECT_EQ(cpu.topology->cores, 2u);
  EXPECT_EQ(cpu.topology->threads, 1u);
  EXPECT_EQ(cpu.max_phys_addr_bits, 46u);
  EXPECT_EQ(cpu.features, (std::vector<std::string>{"fpu", "sse4_1", "vme", "vmx"}));
}

TEST_F(CpuCollectorTest, VmxSupportedAndEnabled) {
  SetCpuid(true);
  ASSERT_TRUE(Collect().ok());
  const auto& virt = caps_.cpu.virtualization;
  EXPECT_EQ(virt.extension, "vmx");
  EXPECT_EQ(virt.cpu_supported, true);
  EXPECT_EQ(virt.kernel_enabled, true);
  EXPECT_EQ(virt.firmware_disabled, false);
}

TEST_F(CpuCollectorTest, FirmwareDisabledVmxFromCpuidAgainstCpuinfo) {
  SetCpuid(true);
  SetFlags("fpu vme sse4_1");  // the kernel dropped vmx
  ASSERT_TRUE(Collect().ok());
  const auto& virt = caps_.cpu.virtualization;
  EXPECT_EQ(virt.cpu_supported, true);
  EXPECT_EQ(virt.kernel_enabled, false);
  EXPECT_EQ(virt.firmware_disabled, true);
}

TEST_F(CpuCollectorTest, FeatureControlMsrSaysWhy) {
  SetCpuid(true);
  SetFlags("fpu vme sse4_1");
  probes_.msr = MakeFixedMsrReader({{0x3a, 0x1}});  // locked, VMX outside SMX off
  ASSERT_TRUE(Collect().ok());
  EXPECT_EQ(caps_.cpu.virtualization.firmware_disabled, true);
  EXPECT_EQ(caps_.cpu.virtualization.firmware_evidence,
            "IA32_FEATURE_CONTROL=0x1 (locked, VMX off)");
  probes_.msr = MakeFixedMsrReader({{0x3a, 0x5}});  // locked, VMX on
  SetFlags("fpu vme vmx sse4_1");
  ASSERT_TRUE(Collect().ok());
  EXPECT_EQ(caps_.cpu.virtualization.firmware_disabled, false);
}

TEST_F(CpuCollectorTest, NoVmxInTheCpu) {
  SetCpuid(false);
  SetFlags("fpu vme sse4_1");
  ASSERT_TRUE(Collect().ok());
  EXPECT_EQ(caps_.cpu.virtualization.cpu_supported, false);
  EXPECT_EQ(caps_.cpu.virtualization.firmware_disabled, false);
}

TEST_F(CpuCollectorTest, WithoutCpuidSupportIsUnknownNotFalse) {
  SetFlags("fpu vme sse4_1");
  ASSERT_TRUE(Collect().ok());
  EXPECT_FALSE(caps_.cpu.virtualization.cpu_supported.has_value());
  EXPECT_FALSE(caps_.cpu.virtualization.firmware_disabled.has_value());
  EXPECT_EQ(caps_.cpu.virtualization.kernel_enabled, false);
  ASSERT_TRUE(caps_.cpu.signature);  // from cpuinfo instead
  EXPECT_EQ(caps_.cpu.signature->model, 85u);
}

TEST_F(CpuCollectorTest, GarbledTopologyFailsTheCollector) {
  Write("sys/devices/system/cpu/cpu1/topology/core_id", "\x01\x02zz\n");
  Status status = Collect();
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("cpu1/topology/core_id"), std::string::npos) << status.message();
  EXPECT_EQ(caps_.cpu.vendor, "Intel");  // what was read before the failure stays
}

TEST_F(CpuCollectorTest, MissingCpuinfoFailsTheCollector) {
  ::unlink((root_ + "/proc/cpuinfo").c_str());
  Status status = Collect();
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("proc/cpuinfo"), std::string::npos);
}

TEST_F(CpuCollectorTest, UnreadableCpuidDumpFailsAfterReadingFiles) {
  probes_.cpuid = MakeDumpCpuid(root_ + "/missing-cpuid.txt");
  Status status = Collect();
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("missing-cpuid.txt"), std::string::npos);
  EXPECT_EQ(caps_.cpu.model_name, "Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz");
}

TEST_F(CpuCollectorTest, HugePageSizesFollowTheBasePage) {
  Write("sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages", "0\n");
  Write("sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages", "0\n");
  Write("proc/self/smaps",
        "55d0-55d1 r--p 0 08:01 1 /bin/x\nSize: 4 kB\nKernelPageSize:        4 kB\n");
  SetCpuid(true);
  ASSERT_TRUE(Collect().ok());
  EXPECT_EQ(caps_.cpu.page_sizes_kib, (std::vector<uint64_t>{4, 2048, 1048576}));
}

TEST(ArchNameTest, NamesArchitecturesAsLibvirtDoes) {
  EXPECT_EQ(LibvirtArchName("i386"), "i686");
  EXPECT_EQ(LibvirtArchName("i586"), "i686");
  EXPECT_EQ(LibvirtArchName("arm64"), "aarch64");
  EXPECT_EQ(LibvirtArchName("x86_64"), "x86_64");
  EXPECT_EQ(LibvirtArchName("s390x"), "s390x");
}

}  // namespace
}  // namespace virtcaps
