// What the refresh loop keeps between refreshes: the shared vector the model's CPU
// modes live in, the CPU layout kept until a hotplug, and QEMU's finished guests.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include <sys/utsname.h>

#include "test_support.h"
#include "virtcaps/boot_constants.h"
#include "virtcaps/collector.h"
#include "virtcaps/cpu_layout_memory.h"
#include "virtcaps/files.h"
#include "virtcaps/qemu.h"

namespace virtcaps {
namespace {

TEST(SharedVectorTest, CopiesShareUntilOneIsChanged) {
  SharedVector<std::string> first{"a", "b"};
  SharedVector<std::string> second = first;
  EXPECT_TRUE(second.SharesWith(first));
  EXPECT_EQ(second, first);
  second.push_back("c");  // second gets its own buffer; first is untouched
  EXPECT_FALSE(second.SharesWith(first));
  EXPECT_EQ(first.size(), 2u);
  EXPECT_EQ(second.size(), 3u);
  EXPECT_NE(second, first);
  SharedVector<std::string> third = first;
  third[0] = "z";  // a non-const element access copies too
  EXPECT_EQ(first[0], "a");
  EXPECT_EQ(third[0], "z");
  // Equal contents in separate buffers compare equal.
  SharedVector<std::string> again{"a", "b"};
  EXPECT_FALSE(again.SharesWith(first));
  EXPECT_EQ(again, first);
}

TEST(SharedVectorTest, EmptyReadsAndGrows) {
  SharedVector<int> empty;
  EXPECT_TRUE(empty.empty());
  EXPECT_EQ(empty.begin(), empty.end());
  EXPECT_EQ(empty, SharedVector<int>());
  const SharedVector<int> copy = empty;
  empty.emplace_back(7);
  EXPECT_EQ(empty.front(), 7);
  EXPECT_TRUE(copy.empty());
  empty.clear();
  EXPECT_TRUE(empty.empty());
}

// A two-CPU host with an L3 shared by both, and what each collector reads of it.
class CpuLayoutMemoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = testing::TempDir();
    config_.paths.rootfs = root_;
    Write("proc/sys/kernel/arch", "x86_64\n");
    Write("proc/cpuinfo",
          "processor\t: 0\nvendor_id\t: AuthenticAMD\n\n"
          "processor\t: 1\nvendor_id\t: AuthenticAMD\n\n");
    Write("sys/devices/system/cpu/present", "0-1\n");
    Write("sys/devices/system/cpu/online", "0-1\n");
    Write("sys/devices/system/node/online", "0\n");
    Write("sys/devices/system/node/node0/cpulist", "0-1\n");
    Write("sys/devices/system/node/node0/distance", "10\n");
    Write("sys/devices/system/node/node0/meminfo", "Node 0 MemTotal:  1048576 kB\n");
    for (unsigned cpu = 0; cpu < 2; ++cpu) {
      std::string dir = "sys/devices/system/cpu/cpu" + std::to_string(cpu);
      Write(dir + "/topology/physical_package_id", "0\n");
      Write(dir + "/topology/core_id", std::to_string(cpu) + "\n");
      Write(dir + "/topology/thread_siblings_list", std::to_string(cpu) + "\n");
      Write(dir + "/cache/index3/level", "3\n");
      Write(dir + "/cache/index3/id", "0\n");
      Write(dir + "/cache/index3/type", "Unified\n");
      Write(dir + "/cache/index3/size", "32768K\n");
      Write(dir + "/cache/index3/shared_cpu_list", "0-1\n");
    }
  }
  void Write(const std::string& relative, const std::string& content) {
    testing::WriteTestFile(root_ + "/" + relative, content);
  }
  // The cpu, cache and numa collectors, as one refresh runs them, with `memory_`
  // and `microcode_` as MakeProbes read CPU 0's revision.
  Status Refresh() {
    caps_ = HostCapabilities{};
    HostPaths paths = HostPaths::FromConfig(config_.paths);
    Probes probes;
    probes.microcode_revision = microcode_;
    CollectContext context{paths, probes, config_};
    context.cpu_layout_memory = &memory_;
    memory_.StartRefresh();
    caps_.cpu.arch = HostArch(paths);
    Status cpu = MakeCpuCollector()->Collect(context, caps_);
    Status cache = MakeCacheCollector()->Collect(context, caps_);
    numa_ = MakeNumaCollector()->Collect(context, caps_);
    return !cpu.ok() ? cpu : cache;
  }
  unsigned CoreOf(unsigned cpu) const { return caps_.cpu.logical_cpus.at(cpu).core_id; }

  std::string root_;
  Config config_;
  CpuLayoutMemory memory_;
  std::optional<std::string> microcode_;
  Status numa_;
  HostCapabilities caps_;
};

TEST_F(CpuLayoutMemoryTest, KeepsTheLayoutUntilAHotplugRewritesTheLists) {
  ASSERT_TRUE(Refresh().ok());
  EXPECT_EQ(CoreOf(1), 1u);
  ASSERT_EQ(caps_.caches.size(), 1u);
  EXPECT_EQ(caps_.caches[0].size_bytes, 32u << 20);
  // Files that only change with a hotplug are not read again while the lists stay.
  Write("sys/devices/system/cpu/cpu1/topology/core_id", "5\n");
  Write("sys/devices/system/cpu/cpu0/cache/index3/size", "16384K\n");
  Write("sys/devices/system/cpu/cpu1/cache/index3/size", "16384K\n");
  ASSERT_TRUE(Refresh().ok());
  EXPECT_EQ(CoreOf(1), 1u);
  EXPECT_EQ(caps_.caches.at(0).size_bytes, 32u << 20);
  // CPU 1 goes offline: both are read again, and CPU 1 is offline.
  Write("sys/devices/system/cpu/online", "0\n");
  ASSERT_TRUE(Refresh().ok());
  EXPECT_FALSE(caps_.cpu.logical_cpus.at(1).online);
  EXPECT_EQ(caps_.caches.at(0).size_bytes, 16u << 20);
  // And back online: its new core id shows.
  Write("sys/devices/system/cpu/online", "0-1\n");
  ASSERT_TRUE(Refresh().ok());
  EXPECT_EQ(CoreOf(1), 5u);
  EXPECT_EQ(caps_.caches.at(0).size_bytes, 16u << 20);
}

TEST_F(CpuLayoutMemoryTest, EachListIsPartOfTheKey) {
  ASSERT_TRUE(Refresh().ok());
  Write("sys/devices/system/cpu/cpu1/topology/core_id", "6\n");
  Write("sys/devices/system/cpu/present", "0-2\n");  // a CPU hot-added, not yet online
  ASSERT_TRUE(Refresh().ok());
  EXPECT_EQ(CoreOf(1), 6u);
  EXPECT_EQ(caps_.cpu.present_cpus, 3u);
  Write("sys/devices/system/cpu/cpu1/topology/core_id", "7\n");
  Write("sys/devices/system/node/online", "0-1\n");  // a memory-only node plugged
  Write("sys/devices/system/node/node1/cpulist", "\n");
  ASSERT_TRUE(Refresh().ok());
  EXPECT_EQ(CoreOf(1), 7u);
  // A list that cannot be read is a key of its own too.
  Write("sys/devices/system/cpu/cpu1/topology/core_id", "8\n");
  std::filesystem::remove(root_ + "/sys/devices/system/node/online");
  ASSERT_TRUE(Refresh().ok());
  EXPECT_EQ(CoreOf(1), 8u);
}

TEST_F(CpuLayoutMemoryTest, AFailedReadIsNotKept) {
  Write("sys/devices/system/cpu/cpu1/topology/core_id", "garbled\n");
  Write("sys/devices/system/cpu/cpu1/cache/index3/size", "lots\n");
  HostPaths paths = HostPaths::FromConfig(config_.paths);
  EXPECT_FALSE(Refresh().ok());
  EXPECT_FALSE(Refresh().ok());  // reported again, not hidden by the memory
  EXPECT_FALSE(memory_.FindTopology(CpuLayoutKey(paths) + " cpuinfo 2"));
  EXPECT_FALSE(memory_.FindCaches(CpuLayoutKey(paths)));
  // Mended with the lists unchanged: the next refresh reads it.
  Write("sys/devices/system/cpu/cpu1/topology/core_id", "1\n");
  Write("sys/devices/system/cpu/cpu1/cache/index3/size", "32768K\n");
  ASSERT_TRUE(Refresh().ok());
  EXPECT_EQ(CoreOf(1), 1u);
  EXPECT_EQ(caps_.caches.at(0).size_bytes, 32u << 20);
}

TEST_F(CpuLayoutMemoryTest, NodesDistancesAndCpusKeptTheirMemoryReadEachRefresh) {
  ASSERT_TRUE(Refresh().ok());
  ASSERT_TRUE(numa_.ok()) << numa_.message();
  ASSERT_EQ(caps_.cells.size(), 1u);
  EXPECT_EQ(caps_.cells[0].distances, (std::vector<std::pair<unsigned, unsigned>>{{0, 10}}));
  EXPECT_EQ(caps_.cells[0].cpus.size(), 2u);
  // Distances and CPUs change only with a hotplug; memory and pools change any time.
  Write("sys/devices/system/node/node0/distance", "20\n");
  Write("sys/devices/system/node/node0/cpulist", "0\n");
  Write("sys/devices/system/node/node0/meminfo", "Node 0 MemTotal:  2097152 kB\n");
  ASSERT_TRUE(Refresh().ok());
  ASSERT_TRUE(numa_.ok()) << numa_.message();
  EXPECT_EQ(caps_.cells.at(0).distances.at(0).second, 10u);
  EXPECT_EQ(caps_.cells.at(0).cpus.size(), 2u);
  EXPECT_EQ(caps_.cells.at(0).memory_kib, 2097152u);
  // A node plugged: node/online reads differently and every node is read again.
  Write("sys/devices/system/node/online", "0-1\n");
  Write("sys/devices/system/node/node0/distance", "20 30\n");
  Write("sys/devices/system/node/node1/distance", "30 20\n");
  Write("sys/devices/system/node/node1/cpulist", "\n");
  Write("sys/devices/system/node/node1/meminfo", "Node 1 MemTotal:  1048576 kB\n");
  ASSERT_TRUE(Refresh().ok());
  ASSERT_TRUE(numa_.ok()) << numa_.message();
  ASSERT_EQ(caps_.cells.size(), 2u);
  EXPECT_EQ(caps_.cells[0].distances,
            (std::vector<std::pair<unsigned, unsigned>>{{0, 20}, {1, 30}}));
  EXPECT_EQ(caps_.cells[0].cpus.size(), 1u);
  // node/online garbled: the numa collector fails on the text the key read, naming it.
  Write("sys/devices/system/node/online", "0-x\n");
  Refresh();
  EXPECT_FALSE(numa_.ok());
  EXPECT_NE(numa_.message().find("node/online: bad cpu list"), std::string::npos)
      << numa_.message();
}

TEST_F(CpuLayoutMemoryTest, CpuinfoKeptUntilTheLayoutOrMicrocodeChanges) {
  microcode_ = "0xa0011d1";
  ASSERT_TRUE(Refresh().ok());
  EXPECT_EQ(caps_.cpu.vendor_id, "AuthenticAMD");
  auto cpuinfo_with = [this](const std::string& vendor) {
    Write("proc/cpuinfo", "processor\t: 0\nvendor_id\t: " + vendor +
                              "\n\nprocessor\t: 1\nvendor_id\t: " + vendor + "\n\n");
  };
  cpuinfo_with("GenuineIntel");
  ASSERT_TRUE(Refresh().ok());
  EXPECT_EQ(caps_.cpu.vendor_id, "AuthenticAMD");  // kept
  microcode_ = "0xa0011d5";                        // a late microcode load
  ASSERT_TRUE(Refresh().ok());
  EXPECT_EQ(caps_.cpu.vendor_id, "GenuineIntel");
  cpuinfo_with("HygonGenuine");
  microcode_.reset();  // the revision cannot be read: a key of its own
  ASSERT_TRUE(Refresh().ok());
  EXPECT_EQ(caps_.cpu.vendor_id, "HygonGenuine");
  cpuinfo_with("CentaurHauls");
  Write("sys/devices/system/cpu/online", "0\n");  // a hotplug
  ASSERT_TRUE(Refresh().ok());
  EXPECT_EQ(caps_.cpu.vendor_id, "CentaurHauls");
  // A garbled cpuinfo is reported every refresh, never kept.
  Write("proc/cpuinfo", "garbled line without a colon\n");
  Write("sys/devices/system/cpu/online", "0-1\n");
  EXPECT_FALSE(Refresh().ok());
  EXPECT_FALSE(Refresh().ok());
}

std::string ReleaseOr(const HostPaths& paths, const std::string& otherwise) {
  auto release = KernelRelease(paths);
  return release ? *release : otherwise;
}

TEST(KernelConstantTest, AnotherProcfsIsReadEachTime) {
  std::string root = testing::TempDir();
  HostPaths paths;
  paths.procfs = root + "/proc";
  testing::WriteTestFile(root + "/proc/sys/kernel/osrelease", "6.1.0-1\n");
  EXPECT_EQ(ReleaseOr(paths, ""), "6.1.0-1");
  testing::WriteTestFile(root + "/proc/sys/kernel/osrelease", "6.1.0-2\n");
  EXPECT_EQ(ReleaseOr(paths, ""), "6.1.0-2");
  // The agent's own /proc: the running kernel's release, the same on every call.
  HostPaths live;
  auto first = KernelRelease(live);
  ASSERT_TRUE(first) << first.status().message();
  EXPECT_EQ(*first, ReleaseOr(live, ""));
  struct utsname name;
  ASSERT_EQ(::uname(&name), 0);
  EXPECT_EQ(*first, name.release);
}

TEST(KernelConstantTest, AnotherSysfsIsReadEachTimeTheAgentsOwnIsKept) {
  std::string root = testing::TempDir();
  HostPaths paths;
  paths.sysfs = root + "/sys";
  const std::string uuid = "class/dmi/id/product_uuid";
  const std::string table = "firmware/acpi/tables/DMAR";
  testing::WriteTestFile(root + "/sys/" + uuid, "4c4c4544-0001\n");
  auto first = ReadBootSysfsValue(paths, uuid);
  ASSERT_TRUE(first) << first.status().message();
  EXPECT_EQ(*first, "4c4c4544-0001");
  testing::WriteTestFile(root + "/sys/" + uuid, "4c4c4544-0002\n");
  auto second = ReadBootSysfsValue(paths, uuid);
  ASSERT_TRUE(second) << second.status().message();
  EXPECT_EQ(*second, "4c4c4544-0002");
  EXPECT_FALSE(BootSysfsPathExists(paths, table));
  testing::WriteTestFile(root + "/sys/" + table, "");
  EXPECT_TRUE(BootSysfsPathExists(paths, table));
  // The agent's own /sys: the same answers as the files give.
  HostPaths live;
  EXPECT_EQ(BootSysfsPathExists(live, "kernel"), PathExists("/sys/kernel"));
  EXPECT_EQ(BootSysfsPathExists(live, "kernel"), PathExists("/sys/kernel"));  // asked again
  EXPECT_FALSE(BootSysfsPathExists(live, "no-such-directory-in-sysfs"));
  // A value that is not there fails the same way each time, naming the file.
  for (int ask = 0; ask < 2; ++ask) {
    auto absent = ReadBootSysfsValue(live, "no-such-file-in-sysfs");
    ASSERT_FALSE(absent);
    EXPECT_NE(absent.status().message().find("/sys/no-such-file-in-sysfs"), std::string::npos)
        << absent.status().message();
  }
  auto online = ReadBootSysfsValue(live, "devices/system/cpu/possible");
  auto direct = ReadValue("/sys/devices/system/cpu/possible");
  ASSERT_EQ(online.ok(), direct.ok());
  if (direct) {
    EXPECT_EQ(*online, *direct);
  }
}

TEST(CpuLayoutKeyTest, ContentsCannotRunTogether) {
  std::string root = testing::TempDir();
  HostPaths paths;
  paths.sysfs = root + "/sys";
  testing::WriteTestFile(root + "/sys/devices/system/cpu/present", "0-1 1:0\n");
  testing::WriteTestFile(root + "/sys/devices/system/cpu/online", "0\n");
  std::string first = CpuLayoutKey(paths);
  testing::WriteTestFile(root + "/sys/devices/system/cpu/present", "0-1\n");
  testing::WriteTestFile(root + "/sys/devices/system/cpu/online", "0 1:0\n");
  EXPECT_NE(CpuLayoutKey(paths), first);
}

Guest ProbedGuest(const std::string& arch) {
  Guest guest;
  guest.hypervisor = "qemu";
  guest.arch = arch;
  guest.emulator = "/usr/bin/qemu-system-" + arch;
  GuestCpuModes& modes = guest.cpu_modes.emplace_back();
  modes.virttype = "kvm";
  modes.models.push_back({"qemu64", true, {}, ""});
  GuestDeviceFacts& facts = guest.device_facts.emplace();
  facts.answered = SharedVector<std::string>({"query-qmp-schema", "query-tpm-models"});
  facts.found = SharedVector<std::string>({"schema:display-dbus", "tpm-model:tpm-crb"});
  return guest;
}

TEST(QemuFinishedGuestsTest, FoundOnlyForTheSameProbesMapAndArch) {
  QemuProbeMemory memory;
  std::vector<Guest> probed = {ProbedGuest("x86_64")};
  auto map = std::make_shared<int>(1);
  std::vector<Guest> finished = probed;
  finished[0].cpu_modes[0].models[0].vendor = "unknown";
  EXPECT_FALSE(memory.FindFinished(probed, map, "x86_64"));
  memory.RememberFinished(probed, map, "x86_64", finished);
  auto found = memory.FindFinished(probed, map, "x86_64");
  ASSERT_TRUE(found);
  EXPECT_EQ(*found, finished);
  EXPECT_TRUE(found->at(0).cpu_modes.SharesWith(finished[0].cpu_modes));  // not copied
  EXPECT_TRUE(found->at(0).device_facts->found.SharesWith(finished[0].device_facts->found));
  EXPECT_TRUE(found->at(0).device_facts->answered.SharesWith(finished[0].device_facts->answered));
  // A change to one copy's facts is its own.
  Guest changed = found->at(0);
  changed.device_facts->found.push_back("type:VGA");
  EXPECT_FALSE(changed.device_facts->found.SharesWith(finished[0].device_facts->found));
  EXPECT_EQ(finished[0].device_facts->found.size(), 2u);
  EXPECT_FALSE(memory.FindFinished(probed, std::make_shared<int>(1), "x86_64"));  // another map
  EXPECT_FALSE(memory.FindFinished(probed, map, "aarch64"));
  std::vector<Guest> reprobed = {ProbedGuest("x86_64")};
  reprobed[0].cpu_modes[0].models.push_back({"EPYC", false, {"svm"}, ""});
  EXPECT_FALSE(memory.FindFinished(reprobed, map, "x86_64"));
  EXPECT_FALSE(memory.FindFinished({}, map, "x86_64"));
}

}  // namespace
}  // namespace virtcaps
