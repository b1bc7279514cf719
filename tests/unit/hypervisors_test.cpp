// Xen and LXC guests; QEMU has its own tests (qemu_test).
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <set>

#include "test_support.h"
#include "virtcaps/files.h"
#include "virtcaps/hypervisors.h"
#include "virtcaps/refresher.h"
#include "virtcaps/renderers.h"
#include "virtcaps/xml.h"

namespace virtcaps {
namespace {

TEST(XenTokenTest, ParsesTypesArchesAndSuffixes) {
  auto pv64 = ParseXenCapabilityToken("xen-3.0-x86_64");
  ASSERT_TRUE(pv64);
  EXPECT_EQ(pv64->os_type, "xen");
  EXPECT_EQ(pv64->arch, "x86_64");
  EXPECT_EQ(pv64->wordsize, 64u);
  auto pae = ParseXenCapabilityToken("hvm-3.0-x86_32p");
  ASSERT_TRUE(pae);
  EXPECT_EQ(pae->arch, "i686");
  EXPECT_TRUE(pae->pae);
  EXPECT_FALSE(pae->nonpae);
  EXPECT_TRUE(ParseXenCapabilityToken("hvm-3.0-x86_32")->nonpae);
  EXPECT_TRUE(ParseXenCapabilityToken("xen-3.0-ia64be")->ia64_be);
  EXPECT_EQ(ParseXenCapabilityToken("xen-3.0-powerpc64")->arch, "ppc64");
  EXPECT_EQ(ParseXenCapabilityToken("xen-3.0-aarch64")->arch, "aarch64");
  for (const char* bad : {"", "kvm-3.0-x86_64", "xen-3-x86_64", "xen-3.0-sparc", "xen-3.0-x86_64p",
                          "xen-3.0-aarch64be", "hvm-3.0"}) {
    EXPECT_FALSE(ParseXenCapabilityToken(bad)) << bad;
  }
}

TEST(XenGuestsTest, MergesPaeAndNonPaeIntoOneGuest) {
  XenOptions options;
  auto guests = XenGuests(
      "xen-3.0-x86_64 xen-3.0-x86_32p hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64 junk", options);
  ASSERT_EQ(guests.size(), 4u);
  const Guest& hvm32 = guests[2];
  EXPECT_EQ(hvm32.os_type, "hvm");
  EXPECT_EQ(hvm32.arch, "i686");
  EXPECT_EQ(hvm32.loader, options.loader);
  EXPECT_EQ(hvm32.machines.size(), 1u);
  std::vector<std::string> features;
  for (const GuestFeature& feature : hvm32.features) features.push_back(feature.name);
  EXPECT_EQ(features, (std::vector<std::string>{"pae", "nonpae", "acpi", "apic"}));
  EXPECT_TRUE(guests[0].loader.empty());  // paravirtual guests boot without hvmloader
  EXPECT_EQ(guests[0].domains.at(0).type, "xen");
}

// Reads a <guest> into comparable text, ignoring child order and whitespace.
std::multiset<std::string> Flatten(const XmlElement& element, const std::string& prefix = "") {
  std::multiset<std::string> out;
  std::string path = prefix + "/" + element.name;
  for (const auto& [key, value] : element.attributes) out.insert(path + "@" + key + "=" + value);
  if (!element.text.empty()) out.insert(path + "=" + element.text);
  if (element.children.empty() && element.text.empty()) out.insert(path);
  for (const XmlElement& child : element.children) {
    auto nested = Flatten(child, path);
    out.insert(nested.begin(), nested.end());
  }
  return out;
}

TEST(XenClassicTest, ReproducesTheFirstPublishedExample) {
  Config config = testing::FixtureConfig("xen-classic");
  HostCapabilities caps = ProbeHost(config);
  auto document = ParseXml(RenderCapabilitiesXml(caps));
  ASSERT_TRUE(document) << document.error();
  auto expected = ParseXml(*ReadFile(testing::FixtureHost("xen-classic") + "/expected-guests.xml"));
  ASSERT_TRUE(expected) << expected.error();
  auto want = expected->ChildrenNamed("guest");
  auto got = document->ChildrenNamed("guest");
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_EQ(Flatten(*got[i]), Flatten(*want[i])) << "guest " << i;
  ASSERT_EQ(caps.hypervisors.size(), 1u);
  EXPECT_TRUE(caps.hypervisors[0].available);
}

class HypervisorTreeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = testing::TempDir();
    config_.paths.rootfs = root_;
    config_.hypervisors.clear();
  }
  void Write(const std::string& relative, const std::string& content) {
    testing::WriteTestFile(root_ + "/" + relative, content);
  }
  Status Run(const HypervisorConfig& hypervisor) {
    HostPaths paths = HostPaths::FromConfig(config_.paths);
    Probes probes;
    CollectContext context{paths, probes, config_};
    return MakeHypervisorCollector(hypervisor)->Collect(context, caps_);
  }
  std::string root_;
  Config config_;
  HostCapabilities caps_;
};

TEST_F(HypervisorTreeTest, XenDomUIsNotAHost) {
  Write("sys/hypervisor/type", "xen\n");
  Write("sys/hypervisor/properties/capabilities", "xen-3.0-x86_64 hvm-3.0-x86_64\n");
  Write("sys/hypervisor/version/major", "4\n");
  Write("sys/hypervisor/version/minor", "17\n");
  Write("sys/hypervisor/version/extra", ".3\n");
  Write("proc/xen/capabilities", "\n");
  HypervisorConfig xen;
  xen.type = HypervisorType::kXen;
  ASSERT_TRUE(Run(xen).ok());
  EXPECT_FALSE(caps_.hypervisors.at(0).available);
  EXPECT_EQ(caps_.hypervisors.at(0).version, "4.17.3");
  EXPECT_TRUE(caps_.guests.empty());
}

TEST_F(HypervisorTreeTest, XenDom0WithGarbledCapabilitiesFails) {
  Write("sys/hypervisor/type", "xen\n");
  Write("sys/hypervisor/properties/capabilities", "\x01\x02 nonsense\n");
  Write("proc/xen/capabilities", "control_d\n");
  HypervisorConfig xen;
  xen.type = HypervisorType::kXen;
  Status status = Run(xen);
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("no guest types"), std::string::npos);
}

TEST_F(HypervisorTreeTest, NoXenOnBareMetal) {
  HypervisorConfig xen;
  xen.type = HypervisorType::kXen;
  ASSERT_TRUE(Run(xen).ok());
  EXPECT_FALSE(caps_.hypervisors.at(0).available);
}

TEST_F(HypervisorTreeTest, LxcGuestsForHostArchAndItsPersonality) {
  HostFacilities facilities;
  facilities.cgroup_version = 2;
  for (const char* ns : {"ipc", "mnt", "pid", "uts", "net", "user"})
    facilities.namespaces.emplace_back(ns, true);
  for (const char* controller :
       {"memory", "cpu", "cpuacct", "cpuset", "devices", "freezer", "blkio"}) {
    facilities.cgroup_controllers.emplace_back(controller, true);
  }
  caps_.facilities = facilities;
  caps_.cpu.arch = "aarch64";
  HypervisorConfig lxc;
  lxc.type = HypervisorType::kLxc;
  ASSERT_TRUE(Run(lxc).ok());
  ASSERT_EQ(caps_.guests.size(), 2u);
  EXPECT_EQ(caps_.guests[0].os_type, "exe");
  EXPECT_EQ(caps_.guests[0].arch, "aarch64");
  EXPECT_EQ(caps_.guests[1].arch, "armv7l");
  EXPECT_EQ(caps_.guests[1].wordsize, 32u);
  EXPECT_EQ(caps_.guests[1].domains.at(0).type, "lxc");
  EXPECT_EQ(caps_.guests[0].emulator, "/usr/lib/libvirt/libvirt_lxc");
}

TEST_F(HypervisorTreeTest, LxcUnavailableWithoutAController) {
  HostFacilities facilities;
  facilities.cgroup_version = 1;
  for (const char* ns : {"ipc", "mnt", "pid", "uts", "net"})
    facilities.namespaces.emplace_back(ns, true);
  facilities.cgroup_controllers = {{"memory", true}, {"freezer", false}};
  caps_.facilities = facilities;
  caps_.cpu.arch = "x86_64";
  HypervisorConfig lxc;
  lxc.type = HypervisorType::kLxc;
  ASSERT_TRUE(Run(lxc).ok());
  EXPECT_FALSE(caps_.hypervisors.at(0).available);
  EXPECT_NE(caps_.hypervisors.at(0).detail.find("cgroup:freezer"), std::string::npos);
  EXPECT_TRUE(caps_.guests.empty());
}

}  // namespace
}  // namespace virtcaps

namespace virtcaps {
namespace {

// Debian 12's entries for libvirt-qemu (uid 64055) as on the build machine, where
// `virsh capabilities` prints <baselabel type='kvm'>+64055:+64055</baselabel>.
constexpr const char* kDebianPasswd =
    "root:x:0:0:root:/root:/bin/bash\n"
    "libvirt-qemu:x:64055:108:Libvirt Qemu,,,:/var/lib/libvirt:/usr/sbin/nologin\n";
constexpr const char* kDebianGroup = "root:x:0:\nkvm:x:108:\nlibvirt-qemu:x:64055:libvirt-qemu\n";

class QemuDriverPartsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = testing::TempDir();
    testing::WriteTestFile(root_ + "/etc/passwd", kDebianPasswd);
    testing::WriteTestFile(root_ + "/etc/group", kDebianGroup);
    config_.paths.rootfs = root_;
    qemu_.type = HypervisorType::kQemu;
    qemu_.qemu.emulator_dirs = {"/usr/bin"};  // empty in the tree: no emulator to probe
    qemu_.qemu.cache_dir = "";
  }
  HostCapabilities Run() {
    HostCapabilities caps;
    HostPaths paths = HostPaths::FromConfig(config_.paths);
    Probes probes;
    CollectContext context{paths, probes, config_};
    EXPECT_TRUE(MakeHypervisorCollector(qemu_)->Collect(context, caps).ok());
    return caps;
  }
  std::string root_;
  Config config_;
  HypervisorConfig qemu_;
};

TEST_F(QemuDriverPartsTest, DacBaselabelsAndMigrationFeaturesAsLibvirtPrintsThem) {
  HostCapabilities caps = Run();
  std::string xml = RenderCapabilitiesXml(caps);
  EXPECT_NE(xml.find("    <secmodel>\n      <model>dac</model>\n      <doi>0</doi>\n"
                     "      <baselabel type='kvm'>+64055:+64055</baselabel>\n"
                     "      <baselabel type='qemu'>+64055:+64055</baselabel>\n"
                     "    </secmodel>\n"),
            std::string::npos)
      << xml;
  EXPECT_NE(xml.find("<migration_features>\n      <live/>\n      <uri_transports>\n"
                     "        <uri_transport>tcp</uri_transport>\n"
                     "        <uri_transport>rdma</uri_transport>\n"),
            std::string::npos)
      << xml;
  // The LXC driver's document has neither.
  std::string lxc = RenderCapabilitiesXml(caps, "lxc");
  EXPECT_EQ(lxc.find("baselabel"), std::string::npos);
  EXPECT_EQ(lxc.find("migration_features"), std::string::npos);
}

TEST_F(QemuDriverPartsTest, AnEditedGroupFileIsReadAgain) {
  qemu_.qemu.group = "kvm";
  EXPECT_EQ(Run().secmodels.at(0).baselabels.at(0).second, "+64055:+108");
  EXPECT_EQ(Run().secmodels.at(0).baselabels.at(0).second, "+64055:+108");  // answered again
  // groupmod writes a new file and renames it over the old one (a new inode).
  testing::WriteTestFile(root_ + "/etc/group.new", "root:x:0:\nkvm:x:109:\n");
  ASSERT_EQ(::rename((root_ + "/etc/group.new").c_str(), (root_ + "/etc/group").c_str()), 0);
  EXPECT_EQ(Run().secmodels.at(0).baselabels.at(0).second, "+64055:+109");
  // An edit in place that changes the size.
  testing::WriteTestFile(root_ + "/etc/group", "root:x:0:\nkvm:x:1100:\n");
  EXPECT_EQ(Run().secmodels.at(0).baselabels.at(0).second, "+64055:+1100");
  // Gone: no DAC model, and back again.
  ::unlink((root_ + "/etc/group").c_str());
  EXPECT_TRUE(Run().secmodels.empty());
  testing::WriteTestFile(root_ + "/etc/group", kDebianGroup);
  EXPECT_EQ(Run().secmodels.at(0).baselabels.at(0).second, "+64055:+108");
}

TEST_F(QemuDriverPartsTest, ConfiguredUserGroupNumericIdsAndSwitches) {
  qemu_.qemu.group = "kvm";
  EXPECT_EQ(Run().secmodels.at(0).baselabels.at(0).second, "+64055:+108");
  qemu_.qemu.user = "+107";
  qemu_.qemu.group = "+107";
  EXPECT_EQ(Run().secmodels.at(0).baselabels.at(1).second, "+107:+107");
  qemu_.qemu.user = "nobody-here";  // unknown: no DAC model rather than a guess
  EXPECT_TRUE(Run().secmodels.empty());
  qemu_.qemu.migration_features = false;
  EXPECT_FALSE(Run().migration);
}

TEST(DriverDocumentTest, GuestsSplitPerDriver) {
  HostCapabilities caps;
  auto guest = [](std::string hypervisor, std::string os_type, std::string emulator) {
    Guest made;
    made.hypervisor = std::move(hypervisor);
    made.os_type = std::move(os_type);
    made.arch = "x86_64";
    made.emulator = std::move(emulator);
    return made;
  };
  caps.guests.push_back(guest("qemu", "hvm", "/usr/bin/qemu-system-x86_64"));
  caps.guests.push_back(guest("lxc", "exe", "/usr/lib/libvirt/libvirt_lxc"));
  auto count = [](const std::string& xml) {
    size_t n = 0;
    for (size_t at = xml.find("<guest>"); at != std::string::npos; at = xml.find("<guest>", at + 1))
      ++n;
    return n;
  };
  EXPECT_EQ(count(RenderCapabilitiesXml(caps)), 2u);
  EXPECT_EQ(count(RenderCapabilitiesXml(caps, "qemu")), 1u);
  EXPECT_NE(RenderCapabilitiesXml(caps, "lxc").find("<os_type>exe</os_type>"), std::string::npos);
  EXPECT_EQ(count(RenderCapabilitiesXml(caps, "xen")), 0u);
}

}  // namespace
}  // namespace virtcaps
