// What the refresh loop keeps between refreshes: the shared vector the model's CPU
// modes live in, the CPU layout kept until a hotplug, and QEMU's finished guests.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "test_support.h"
#include "virtcaps/collector.h"
#include "virtcaps/cpu_layout_memory.h"
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
  // The cpu and cache collectors, as one refresh runs them, with `memory_`.
  Status Refresh() {
    caps_ = HostCapabilities{};
    HostPaths paths = HostPaths::FromConfig(config_.paths);
    Probes probes;
    CollectContext context{paths, probes, config_};
    context.cpu_layout_memory = &memory_;
    caps_.cpu.arch = HostArch(paths);
    Status cpu = MakeCpuCollector()->Collect(context, caps_);
    Status cache = MakeCacheCollector()->Collect(context, caps_);
    return !cpu.ok() ? cpu : cache;
  }
  unsigned CoreOf(unsigned cpu) const { return caps_.cpu.logical_cpus.at(cpu).core_id; }

  std::string root_;
  Config config_;
  CpuLayoutMemory memory_;
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
  EXPECT_TRUE(found->at(0).cpu_modes.SharesWith(finished[0].cpu_modes));          // not copied
  EXPECT_FALSE(memory.FindFinished(probed, std::make_shared<int>(1), "x86_64"));  // another map
  EXPECT_FALSE(memory.FindFinished(probed, map, "aarch64"));
  std::vector<Guest> reprobed = {ProbedGuest("x86_64")};
  reprobed[0].cpu_modes[0].models.push_back({"EPYC", false, {"svm"}, ""});
  EXPECT_FALSE(memory.FindFinished(reprobed, map, "x86_64"));
  EXPECT_FALSE(memory.FindFinished({}, map, "x86_64"));
}

}  // namespace
}  // namespace virtcaps
