#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "test_support.h"
#include "virtcaps/collector.h"

namespace virtcaps {
namespace {

class KvmCollectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = testing::TempDir();
    config_.paths.rootfs = root_;
    KvmProbeConfig fixed;
    fixed.api_version = 12;
    fixed.vm_creatable = true;
    fixed.max_vcpus = 710;
    probes_.kvm = MakeFixedKvmProbe(fixed);
  }
  void Write(const std::string& relative, const std::string& content) {
    testing::WriteTestFile(root_ + "/" + relative, content);
  }
  Status Collect() {
    caps_ = HostCapabilities{};
    HostPaths paths = HostPaths::FromConfig(config_.paths);
    CollectContext context{paths, probes_, config_};
    return MakeKvmCollector()->Collect(context, caps_);
  }
  std::string root_;
  Config config_;
  Probes probes_;
  HostCapabilities caps_;
};

TEST_F(KvmCollectorTest, UsableKvmWithNestedInEitherSpelling) {
  Write("dev/kvm", "");
  Write("sys/module/kvm/parameters/halt_poll_ns", "200000\n");
  for (const auto& [text, expected] : std::vector<std::pair<std::string, bool>>{
           {"Y\n", true}, {"N\n", false}, {"1\n", true}, {"0\n", false}}) {
    Write("sys/module/kvm_intel/parameters/nested", text);
    ASSERT_TRUE(Collect().ok());
    EXPECT_EQ(caps_.kvm.nested, expected) << text;
  }
  EXPECT_TRUE(caps_.kvm.usable());
  EXPECT_EQ(caps_.kvm.provider, "kvm_intel");
  EXPECT_EQ(caps_.kvm.modules, (std::vector<std::string>{"kvm_intel", "kvm"}));
  EXPECT_EQ(caps_.kvm.api_version, 12);
  EXPECT_EQ(caps_.kvm.max_vcpus, 710);
}

TEST_F(KvmCollectorTest, GarbledNestedParameterFailsTheCollector) {
  Write("dev/kvm", "");
  Write("sys/module/kvm_amd/parameters/nested", "maybe\n");
  Status status = Collect();
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("kvm_amd/parameters/nested"), std::string::npos);
  EXPECT_FALSE(caps_.kvm.nested.has_value());
  EXPECT_TRUE(caps_.kvm.device_present);  // the rest was still read
}

TEST_F(KvmCollectorTest, NoDeviceMeansNotUsable) {
  ASSERT_TRUE(Collect().ok());
  EXPECT_FALSE(caps_.kvm.device_present);
  EXPECT_FALSE(caps_.kvm.usable());
  EXPECT_EQ(caps_.kvm.nested, false);
  EXPECT_NE(caps_.kvm.problem.find("does not exist"), std::string::npos);
}

TEST_F(KvmCollectorTest, VmCreationFailureIsReported) {
  Write("dev/kvm", "");
  KvmProbeConfig failing;
  failing.vm_creatable = false;
  probes_.kvm = MakeFixedKvmProbe(failing);
  ASSERT_TRUE(Collect().ok());
  EXPECT_TRUE(caps_.kvm.device_present);
  EXPECT_FALSE(caps_.kvm.usable());
}

TEST_F(KvmCollectorTest, IoctlProbeOnANonDeviceFails) {
  // A regular file is not /dev/kvm: the real ioctls must fail, not pretend.
  Write("dev/kvm", "");
  probes_.kvm = MakeIoctlKvmProbe();
  ASSERT_TRUE(Collect().ok());
  EXPECT_FALSE(caps_.kvm.usable());
  EXPECT_FALSE(caps_.kvm.api_version.has_value());
}

TEST(KvmLiveTest, ThisHostCanCreateAVmWhenDevKvmIsThere) {
  // On this project's build machines /dev/kvm (kvm_pvm) works; elsewhere it may not exist.
  Config config;
  HostPaths paths = HostPaths::FromConfig(config.paths);
  Probes probes = MakeProbes(config.probes, paths);
  HostCapabilities caps;
  CollectContext context{paths, probes, config};
  ASSERT_TRUE(MakeKvmCollector()->Collect(context, caps).ok());
  if (access("/dev/kvm", R_OK | W_OK) != 0) GTEST_SKIP() << "no usable /dev/kvm on this machine";
  EXPECT_TRUE(caps.kvm.usable()) << caps.kvm.problem;
  EXPECT_EQ(caps.kvm.api_version, 12);
  EXPECT_GT(caps.kvm.max_vcpus.value_or(0), 0);
}

// The scratch VM's success is remembered for the recheck interval, per device node; a
// new node (a module reload makes one) or an elapsed interval asks KVM again.
TEST(KvmLiveTest, ASuccessfulScratchVmIsRememberedPerDeviceNode) {
  if (access("/dev/kvm", R_OK | W_OK) != 0) GTEST_SKIP() << "no usable /dev/kvm on this machine";
  HostProbeMemory memory;
  auto remembering = MakeRememberingIoctlKvmProbe(memory, std::chrono::hours(1));
  KvmIoctlResult first = remembering->Probe("/dev/kvm");
  ASSERT_TRUE(first.vm_creatable.value_or(false)) << first.create_vm_error;
  EXPECT_FALSE(first.vm_answer_remembered);
  KvmIoctlResult second = remembering->Probe("/dev/kvm");
  EXPECT_TRUE(second.vm_answer_remembered);
  EXPECT_EQ(second.vm_creatable, first.vm_creatable);
  EXPECT_EQ(second.tsc_khz, first.tsc_khz);
  EXPECT_EQ(second.tsc_scaling, first.tsc_scaling);
  EXPECT_EQ(second.api_version, first.api_version);  // the cheap ioctls are asked live

  // A second node of the same device is another node: asked again, then remembered.
  std::string dir = testing::TempDir();
  std::string node = dir + "/kvm";
  struct stat kvm;
  ASSERT_EQ(stat("/dev/kvm", &kvm), 0);
  unlink(node.c_str());
  if (mknod(node.c_str(), S_IFCHR | 0600, kvm.st_rdev) != 0) {
    GTEST_SKIP() << "mknod: " << std::strerror(errno) << " (needs CAP_MKNOD)";
  }
  EXPECT_FALSE(remembering->Probe(node).vm_answer_remembered);
  EXPECT_TRUE(remembering->Probe(node).vm_answer_remembered);
  // Replaced by a new node under the same path (as a module reload does): asked again.
  // The file system may give it the same inode number; its change time differs (the
  // pause makes sure of that on file systems with coarse timestamps).
  ASSERT_EQ(unlink(node.c_str()), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_EQ(mknod(node.c_str(), S_IFCHR | 0600, kvm.st_rdev), 0);
  EXPECT_FALSE(remembering->Probe(node).vm_answer_remembered);
  unlink(node.c_str());

  // A zero interval remembers nothing.
  auto every_time = MakeRememberingIoctlKvmProbe(memory, Duration(0));
  EXPECT_FALSE(every_time->Probe("/dev/kvm").vm_answer_remembered);
  EXPECT_FALSE(every_time->Probe("/dev/kvm").vm_answer_remembered);
}

TEST(KvmProbeMemoryTest, AFailureIsNeverRemembered) {
  // /dev/null opens read-write and refuses every KVM ioctl.
  HostProbeMemory memory;
  auto remembering = MakeRememberingIoctlKvmProbe(memory, std::chrono::hours(1));
  for (int i = 0; i < 2; ++i) {
    KvmIoctlResult result = remembering->Probe("/dev/null");
    EXPECT_TRUE(result.opened);
    EXPECT_EQ(result.vm_creatable, false);
    EXPECT_FALSE(result.vm_answer_remembered);
    EXPECT_NE(result.create_vm_error.find("KVM_CREATE_VM"), std::string::npos);
  }
  EXPECT_TRUE(memory.kvm_vms.empty());
}

}  // namespace
}  // namespace virtcaps
