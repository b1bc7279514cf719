// The cpu collector on small host trees built here: each test changes one input.
#include <gtest/gtest.h>

#include <algorithm>
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

  // One CPU's sysfs topology; an empty `siblings_list` leaves that file out.
  void WriteCpu(unsigned cpu, unsigned package, unsigned core, const std::string& siblings_list) {
    std::string dir = "sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/";
    Write(dir + "physical_package_id", std::to_string(package) + "\n");
    Write(dir + "core_id", std::to_string(core) + "\n");
    if (!siblings_list.empty()) Write(dir + "thread_siblings_list", siblings_list + "\n");
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

// Two SMT cores; the second thread of core 1 is offline. libvirt counts the offline
// CPU as present, the online siblings give 2 threads: 1 x 1 x 2 x 2 = 4 adds up.
TEST_F(CpuCollectorTest, OfflineSiblingStillCountsAsPresent) {
  Write("sys/devices/system/cpu/present", "0-3\n");
  Write("sys/devices/system/cpu/online", "0-2\n");
  WriteCpu(0, 0, 0, "0-1");
  WriteCpu(1, 0, 0, "0-1");
  WriteCpu(2, 0, 1, "2");
  ASSERT_TRUE(Collect().ok());
  const CpuTopology& topology = *caps_.cpu.topology;
  EXPECT_EQ(topology.method, "whole_host");
  EXPECT_EQ(topology.cores, 2u);
  EXPECT_EQ(topology.threads, 2u);
  EXPECT_EQ(topology.offline_cpus, 1u);
  EXPECT_EQ(caps_.cpu.present_cpus, 4u);
  EXPECT_EQ(caps_.cpu.online_cpus, 3u);
}

// core_id repeats inside one package (two dies the kernel does not number, no SMT):
// dividing CPUs by distinct core ids said 2 threads; libvirt's counts do not add up
// (1 x 2 x 1 != 4) and it reports the flat 1 x 4 x 1, so must we.
TEST_F(CpuCollectorTest, RepeatedCoreIdsWithoutSmtFallBackToFlat) {
  Write("sys/devices/system/cpu/online", "0-3\n");
  for (unsigned cpu = 0; cpu < 4; ++cpu) WriteCpu(cpu, 0, cpu % 2, std::to_string(cpu));
  ASSERT_TRUE(Collect().ok());
  const CpuTopology& topology = *caps_.cpu.topology;
  EXPECT_EQ(topology.method, "flat_fallback");
  EXPECT_EQ(topology.sockets, 1u);
  EXPECT_EQ(topology.cores, 4u);
  EXPECT_EQ(topology.threads, 1u);
  EXPECT_EQ(topology.physical_packages, 1u);
}

// Two NUMA nodes of one package each: libvirt's sockets are per node (1), the
// physical packages stay 2.
TEST_F(CpuCollectorTest, SocketsAreCountedPerNumaNode) {
  Write("sys/devices/system/cpu/online", "0-3\n");
  for (unsigned cpu = 0; cpu < 4; ++cpu) WriteCpu(cpu, cpu / 2, cpu % 2, std::to_string(cpu));
  Write("sys/devices/system/node/node0/cpulist", "0-1\n");
  Write("sys/devices/system/node/node1/cpulist", "2-3\n");
  ASSERT_TRUE(Collect().ok());
  const CpuTopology& topology = *caps_.cpu.topology;
  EXPECT_EQ(topology.method, "per_node");
  EXPECT_EQ(topology.nodes, 2u);
  EXPECT_EQ(topology.sockets, 1u);
  EXPECT_EQ(topology.cores, 2u);
  EXPECT_EQ(topology.physical_packages, 2u);
}

// Kernels before 2.6.26 have only the hex mask; a CPU with neither file is alone.
TEST_F(CpuCollectorTest, ReadsTheSiblingMaskWhenThereIsNoList) {
  Write("sys/devices/system/cpu/online", "0-3\n");
  for (unsigned cpu = 0; cpu < 3; ++cpu) WriteCpu(cpu, 0, cpu / 2, "");
  WriteCpu(3, 0, 1, "");
  Write("sys/devices/system/cpu/cpu0/topology/thread_siblings", "00000000,00000003\n");
  Write("sys/devices/system/cpu/cpu1/topology/thread_siblings", "00000000,00000003\n");
  Write("sys/devices/system/cpu/cpu2/topology/thread_siblings", "00000000,0000000c\n");
  ASSERT_TRUE(Collect().ok());
  const std::vector<LogicalCpu>& cpus = caps_.cpu.logical_cpus;
  ASSERT_EQ(cpus.size(), 4u);
  EXPECT_EQ(cpus[0].siblings, (std::vector<unsigned>{0, 1}));
  EXPECT_EQ(cpus[0].siblings_source, "thread_siblings");
  EXPECT_EQ(cpus[2].siblings, (std::vector<unsigned>{2, 3}));
  EXPECT_EQ(cpus[3].siblings, (std::vector<unsigned>{3}));
  EXPECT_EQ(cpus[3].siblings_source, "self");
  EXPECT_EQ(caps_.cpu.topology->threads, 2u);
  EXPECT_EQ(caps_.cpu.topology->method, "whole_host");
}

TEST_F(CpuCollectorTest, GarbledSiblingMaskNamesTheFile) {
  Write("sys/devices/system/cpu/cpu1/topology/thread_siblings", "zz,00000003\n");
  Status status = Collect();
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("cpu1/topology/thread_siblings"), std::string::npos)
      << status.message();
}

// A single-CPU 32-bit Arm kernel's cpuinfo has no "processor : 0": the CPU count
// comes from sysfs and the identity from what the file does have.
TEST_F(CpuCollectorTest, CpuinfoWithoutProcessorLinesKeepsEverything) {
  Write("proc/sys/kernel/arch", "armv7l\n");
  Write("sys/devices/system/cpu/online", "0\n");
  Write("sys/devices/system/cpu/present", "0\n");
  Write("proc/cpuinfo",
        "Processor\t: ARMv7 Processor rev 2 (v7l)\nBogoMIPS\t: 298.32\n"
        "Features\t: swp half thumb fastmult vfp edsp neon vfpv3 tls\n"
        "CPU implementer\t: 0x41\nCPU architecture: 7\nCPU variant\t: 0x3\n"
        "CPU part\t: 0xc08\nCPU revision\t: 2\n\nHardware\t: Freescale i.MX53\n");
  ASSERT_TRUE(Collect().ok());
  EXPECT_EQ(caps_.cpu.arch, "armv7l");
  EXPECT_EQ(caps_.cpu.vendor, "ARM");
  EXPECT_EQ(caps_.cpu.online_cpus, 1u);
  EXPECT_EQ(caps_.cpu.topology->cores, 1u);
  EXPECT_NE(std::find(caps_.cpu.features.begin(), caps_.cpu.features.end(), "neon"),
            caps_.cpu.features.end());
}

// An unreadable cpuinfo still fails the collector, but the topology is kept.
TEST_F(CpuCollectorTest, MissingCpuinfoKeepsTheTopology) {
  ::unlink((root_ + "/proc/cpuinfo").c_str());
  ASSERT_FALSE(Collect().ok());
  ASSERT_TRUE(caps_.cpu.topology);
  EXPECT_EQ(caps_.cpu.online_cpus, 2u);
  EXPECT_EQ(caps_.cpu.topology->cores, 2u);
}

// One topology read and one huge page listing per refresh: the numa collector builds
// its cells from what the cpu collector read, so files changed in between are not
// read again (a second read would see them).
TEST_F(CpuCollectorTest, NumaUsesTheCpuCollectorsTopologyReadAndHugePageListing) {
  Write("sys/devices/system/cpu/online", "0-1\n");
  Write("sys/devices/system/node/online", "0\n");
  Write("sys/devices/system/node/node0/cpulist", "0-1\n");
  Write("sys/devices/system/node/node0/meminfo", "Node 0 MemTotal: 1024 kB\n");
  Write("sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages", "3\n");
  Write("sys/devices/system/cpu/cpu1/topology/thread_siblings_list", "0-1\n");
  Write("sys/devices/system/cpu/cpu0/topology/thread_siblings_list", "0-1\n");
  ASSERT_TRUE(Collect().ok());
  Write("sys/devices/system/cpu/cpu1/topology/core_id", "7\n");
  Write("sys/devices/system/cpu/cpu0/topology/thread_siblings_list", "0\n");
  Write("sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages", "1\n");
  HostPaths paths = HostPaths::FromConfig(config_.paths);
  CollectContext context{paths, probes_, config_};
  ASSERT_TRUE(MakeNumaCollector()->Collect(context, caps_).ok());
  ASSERT_EQ(caps_.cells.size(), 1u);
  ASSERT_EQ(caps_.cells[0].cpus.size(), 2u);
  EXPECT_EQ(caps_.cells[0].cpus[1].core_id, 1u);
  EXPECT_EQ(caps_.cells[0].cpus[0].siblings, (std::vector<unsigned>{0, 1}));
  ASSERT_EQ(caps_.hugepages.size(), 1u);
  EXPECT_EQ(caps_.hugepages[0].size_kib, 2048u);
  EXPECT_EQ(caps_.hugepages[0].total, 3u);

  // Without the cpu collector's read the numa collector reads for itself.
  HostCapabilities alone;
  ASSERT_TRUE(MakeNumaCollector()->Collect(context, alone).ok());
  EXPECT_EQ(alone.cells[0].cpus[1].core_id, 7u);
  EXPECT_EQ(alone.hugepages.size(), 2u);
}

// The pools are read before they are looked for: a size a node lacks is left out, a
// missing free_hugepages leaves free unknown, and a garbled count is the error.
TEST_F(CpuCollectorTest, HugePagePoolsReadWhatIsThereAndNameWhatIsGarbled) {
  Write("sys/devices/system/node/online", "0\n");
  Write("sys/devices/system/node/node0/cpulist", "0-1\n");
  Write("sys/devices/system/node/node0/meminfo", "Node 0 MemTotal: 1024 kB\n");
  Write("sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages", "3\n");
  Write("sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages", "2\n");
  Write("sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages", "1\n");
  const std::string node = "sys/devices/system/node/node0/hugepages/hugepages-2048kB/";
  Write(node + "nr_hugepages", "3\n");  // no free_hugepages; no 1 GiB pool on the node
  ASSERT_TRUE(Collect().ok());
  HostPaths paths = HostPaths::FromConfig(config_.paths);
  CollectContext context{paths, probes_, config_};
  ASSERT_TRUE(MakeNumaCollector()->Collect(context, caps_).ok());
  ASSERT_EQ(caps_.hugepages.size(), 2u);
  EXPECT_EQ(caps_.hugepages[0], (PagePool{2048, 3, 2}));
  EXPECT_EQ(caps_.hugepages[1], (PagePool{1048576, 1, std::nullopt}));
  ASSERT_EQ(caps_.cells.size(), 1u);
  ASSERT_EQ(caps_.cells[0].pages.size(), 2u);  // the base page, then the 2 MiB pool
  EXPECT_EQ(caps_.cells[0].pages[1], (PagePool{2048, 3, std::nullopt}));

  Write(node + "free_hugepages", "many\n");
  HostCapabilities garbled_free;
  Status status = MakeNumaCollector()->Collect(context, garbled_free);
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find(node + "free_hugepages"), std::string::npos) << status.message();
  Write(node + "free_hugepages", "1\n");
  Write(node + "nr_hugepages", "");
  HostCapabilities garbled_total;
  status = MakeNumaCollector()->Collect(context, garbled_total);
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find(node + "nr_hugepages"), std::string::npos) << status.message();
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
