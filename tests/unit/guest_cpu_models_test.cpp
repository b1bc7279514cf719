// Named guest CPU models from QMP query-cpu-definitions: the probe, the cache, and
// the real Debian QEMU on this machine against libvirt's own domain capabilities.
#include <gtest/gtest.h>

#include <filesystem>

#include "test_support.h"
#include "virtcaps/cpu_vocabulary.h"
#include "virtcaps/files.h"
#include "virtcaps/qemu.h"
#include "virtcaps/xml.h"

namespace virtcaps {
namespace {

std::string InstallFakeAs(const std::string& path) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::filesystem::copy_file(testing::SourceDir() + "/tests/fixtures/emulators/fake-qmp", path);
  std::filesystem::permissions(path, std::filesystem::perms::owner_all);
  return path;
}

std::vector<std::string> Describe(const std::vector<GuestCpuModel>& models) {
  std::vector<std::string> out;
  for (const GuestCpuModel& model : models) {
    std::string text = model.name + (model.usable ? " usable" : " blocked:");
    for (const std::string& blocker : model.blockers) text += " " + blocker;
    if (!model.vendor.empty()) text += " vendor=" + model.vendor;
    out.push_back(text);
  }
  return out;
}

TEST(GuestCpuModels, ListedAsLibvirtListsThem) {
  std::string fake = InstallFakeAs(testing::TempDir() + "/cpus-emulator");
  auto guest = ProbeQemuEmulator(fake, fake, QemuOptions{});
  ASSERT_TRUE(guest) << guest.error();
  // No versioned names an alias points at, no host/max modes; QEMU's order kept.
  ASSERT_EQ(guest->cpu_modes.size(), 1u);  // the fake's KVM is not enabled: no TCG probe
  EXPECT_EQ(Describe(guest->cpu_modes[0].models),
            (std::vector<std::string>{"Alpha blocked: svm avx2", "beta usable"}));
  EXPECT_EQ(guest->cpu_modes[0].virttype, "qemu");
  EXPECT_FALSE(guest->cpu_modes[0].expansion);  // the fake cannot expand
}

TEST(GuestCpuModels, AnEmulatorWithoutQueryCpuDefinitionsStillYieldsItsGuest) {
  std::string fake = InstallFakeAs(testing::TempDir() + "/qemu-system-x86_64");
  auto guest = ProbeQemuEmulator(fake, fake, QemuOptions{});
  ASSERT_TRUE(guest) << guest.error();
  EXPECT_FALSE(guest->machines.empty());
  EXPECT_TRUE(guest->cpu_modes.empty());
}

TEST(GuestCpuModels, SurviveTheCache) {
  std::string dir = testing::TempDir();
  std::string fake = InstallFakeAs(dir + "/cpus-emulator");
  auto guest = ProbeQemuEmulator(fake, fake, QemuOptions{});
  ASSERT_TRUE(guest) << guest.error();
  auto identity = StatQemuBinary(fake);
  ASSERT_TRUE(identity) << identity.error();
  QemuHostFacts facts;
  ASSERT_TRUE(WriteQemuCache(dir + "/cache", fake, *identity, facts, *guest));
  auto cached = ReadQemuCache(dir + "/cache", fake, *identity, facts);
  ASSERT_TRUE(cached);
  ASSERT_EQ(cached->cpu_modes.size(), 1u);
  EXPECT_EQ(Describe(cached->cpu_modes[0].models), Describe(guest->cpu_modes[0].models));
  EXPECT_EQ(cached->cpu_modes[0].virttype, guest->cpu_modes[0].virttype);
}

TEST(GuestCpuModels, X86ModelsAreThoseLibvirtsMapKnowsWithItsVendor) {
  Guest guest;
  guest.arch = "x86_64";
  GuestCpuModes& modes = guest.cpu_modes.emplace_back();
  modes.virttype = "kvm";
  for (const char* name : {"EPYC-Milan", "KnightsMill", "qemu64", "Denverton"}) {
    modes.models.push_back(GuestCpuModel{name, false, {}, ""});
  }
  std::vector<Guest> guests{guest};
  ASSERT_TRUE(
      NameGuestCpuModels(testing::SourceDir() + "/tests/fixtures/cpu_map/libvirt-9.0", guests)
          .ok());
  EXPECT_EQ(Describe(guests[0].cpu_modes[0].models),
            (std::vector<std::string>{"EPYC-Milan blocked: vendor=AMD",
                                      "qemu64 blocked: vendor=unknown"}));
  std::vector<Guest> unnamed{guest};
  EXPECT_FALSE(NameGuestCpuModels("/no/such/map", unnamed).ok());
  EXPECT_EQ(unnamed[0].cpu_modes[0].models.size(), 4u);  // kept as QEMU named them
}

// The real qemu-system-x86_64 under KVM on this machine: what the agent reports is
// what QEMU itself says, and what libvirt 9.0 printed here (virsh domcapabilities).
TEST(GuestCpuModelsLive, DebianQemuUnderKvmMatchesLibvirt) {
  const std::string qemu = "/usr/bin/qemu-system-x86_64";
  if (!PathExists(qemu)) GTEST_SKIP() << qemu << " is not installed";
  auto guest = ProbeQemuEmulator(qemu, qemu, QemuOptions{});
  ASSERT_TRUE(guest) << guest.error();
  if (!guest->CpuModesFor("kvm")) GTEST_SKIP() << "KVM does not come up here";
  std::vector<Guest> guests{*guest};
  ASSERT_TRUE(
      NameGuestCpuModels(testing::SourceDir() + "/tests/fixtures/cpu_map/libvirt-9.0", guests)
          .ok());

  auto libvirt = ParseXml(
      *ReadFile(testing::SourceDir() + "/tests/fixtures/cpu_decode/build-machine-domcaps-kvm.xml"));
  ASSERT_TRUE(libvirt) << libvirt.error();
  std::vector<std::string> expected;
  for (const XmlElement* mode : libvirt->Child("cpu")->ChildrenNamed("mode")) {
    if (*mode->Attribute("name") != "custom") continue;
    for (const XmlElement* model : mode->ChildrenNamed("model")) {
      expected.push_back(model->text + (*model->Attribute("usable") == "yes" ? " usable" : " no") +
                         " vendor=" + *model->Attribute("vendor"));
    }
  }
  std::vector<std::string> actual;
  for (const GuestCpuModel& model : guests[0].CpuModesFor("kvm")->models) {
    actual.push_back(model.name + (model.usable ? " usable" : " no") + " vendor=" + model.vendor);
  }
  if (actual != expected) {
    // Only meaningful where libvirt's answer was recorded: same model list, same host.
    ASSERT_EQ(actual.size(), expected.size()) << "not the recorded machine?";
  }
  EXPECT_EQ(actual, expected);
}

}  // namespace
}  // namespace virtcaps
