// Every fixture host, end to end through the library: collectors, both renderers,
// golden files, and the XML read back with expat and checked against the fixture's
// own files. Regenerate goldens with VIRTCAPS_UPDATE_GOLDEN=1 (see README.md).
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "test_support.h"
#include "virtcaps/collector.h"
#include "virtcaps/cpuinfo.h"
#include "virtcaps/files.h"
#include "virtcaps/refresher.h"
#include "virtcaps/renderers.h"
#include "virtcaps/strings.h"
#include "virtcaps/xml.h"

namespace virtcaps {
namespace {

// What each profile is there to show; the values are the host's, per its README.
struct Expectation {
  std::string arch;
  std::string vendor;
  std::optional<bool> cpu_supported;
  std::optional<bool> kernel_enabled;
  std::optional<bool> firmware_disabled;
  bool kvm_usable;
  std::optional<bool> nested;
  std::set<std::string> failing_collectors;
};

const std::map<std::string, Expectation>& Expectations() {
  static const std::map<std::string, Expectation> kExpectations = {
      // The build machine: svm hidden by the hypervisor, yet KVM works through kvm_pvm.
      {"amd-epyc-pvm-guest", {"x86_64", "AMD", false, false, false, true, false, {}}},
      {"intel-xeon-vmx-nested", {"x86_64", "Intel", true, true, false, true, true, {}}},
      {"intel-vmx-firmware-disabled", {"x86_64", "Intel", true, false, true, false, false, {}}},
      {"aarch64-server",
       {"aarch64", "ARM", std::nullopt, std::nullopt, std::nullopt, true, false, {}}},
      {"amd-epyc-sev-host", {"x86_64", "AMD", true, true, false, true, true, {}}},
      {"kvm-guest-nested", {"x86_64", "Intel", true, true, false, true, true, {}}},
      // A PV dom0: Xen hides vmx, and there is no CPUID dump of it.
      {"xen-dom0", {"x86_64", "Intel", std::nullopt, false, std::nullopt, false, false, {}}},
      {"ppc64le-power9",
       {"ppc64le", "IBM", std::nullopt, std::nullopt, std::nullopt, true, true, {}}},
      // Garbled node0/meminfo and distance: numa fails, everything else carries on.
      {"broken-sysfs", {"x86_64", "AMD", false, false, false, true, false, {"numa"}}},
      // Host collectors off: only the arch and the xen guests are reported.
      {"xen-classic",
       {"x86_64", "", std::nullopt, std::nullopt, std::nullopt, false, std::nullopt, {}}},
  };
  return kExpectations;
}

class FixtureHostTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    config_ = testing::FixtureConfig(GetParam());
    caps_ = ProbeHost(config_);
    for (CollectorOutcome& outcome : caps_.collectors)
      outcome.duration_seconds = 0;  // deterministic
  }
  std::string Fixture(const std::string& relative) const {
    return testing::FixtureHost(GetParam()) + "/" + relative;
  }
  Config config_;
  HostCapabilities caps_;
};

TEST_P(FixtureHostTest, CollectorsSucceedAsExpected) {
  auto expected = Expectations().find(GetParam());
  ASSERT_NE(expected, Expectations().end()) << "add an expectation for " << GetParam();
  for (const CollectorOutcome& outcome : caps_.collectors) {
    EXPECT_EQ(outcome.success, !expected->second.failing_collectors.count(outcome.name))
        << outcome.name << ": " << outcome.error;
  }
}

TEST_P(FixtureHostTest, ReportsTheSignalsThisHostIsAbout) {
  const Expectation& want = Expectations().at(GetParam());
  EXPECT_EQ(caps_.cpu.arch, want.arch);
  EXPECT_EQ(caps_.cpu.vendor, want.vendor);
  EXPECT_EQ(caps_.cpu.virtualization.cpu_supported, want.cpu_supported);
  EXPECT_EQ(caps_.cpu.virtualization.kernel_enabled, want.kernel_enabled);
  EXPECT_EQ(caps_.cpu.virtualization.firmware_disabled, want.firmware_disabled);
  EXPECT_EQ(caps_.kvm.usable(), want.kvm_usable) << caps_.kvm.problem;
  EXPECT_EQ(caps_.kvm.nested, want.nested);
}

TEST_P(FixtureHostTest, XmlMatchesGoldenAndTheFixtureFiles) {
  std::string xml = RenderCapabilitiesXml(caps_);
  std::string diff =
      testing::CompareGolden(testing::SourceDir() + "/tests/golden/" + GetParam() + ".xml", xml);
  EXPECT_EQ(diff, "");

  // Read the document back with expat and check it against the host's files,
  // read here independently of the collectors.
  auto doc = ParseXml(xml);
  ASSERT_TRUE(doc) << doc.error();
  ASSERT_EQ(doc->name, "capabilities");
  const XmlElement* cpu = doc->Child("host") ? doc->Child("host")->Child("cpu") : nullptr;
  ASSERT_NE(cpu, nullptr);
  EXPECT_EQ(cpu->Child("arch")->text, LibvirtArchName(*ReadValue(Fixture("proc/sys/kernel/arch"))));
  if (!config_.collectors.at("cpu")) return;  // a guests-only profile

  auto cpuinfo = ParseCpuinfo(*ReadFile(Fixture("proc/cpuinfo")));
  ASSERT_TRUE(cpuinfo);
  std::string flags = cpuinfo->Get("flags") + cpuinfo->Get("Features");
  std::set<std::string> expected_features;
  for (std::string_view flag : SplitWhitespace(flags)) expected_features.emplace(flag);
  std::set<std::string> features;
  std::vector<std::string> feature_order;
  for (const XmlElement* feature : cpu->ChildrenNamed("feature")) {
    features.insert(*feature->Attribute("name"));
    feature_order.push_back(*feature->Attribute("name"));
  }
  bool x86 = cpuinfo->Get("flags").size() > 0;
  if (x86 && cpu->Child("model")) {
    // libvirt's vocabulary: every feature is one of the host's cpu map, listed in
    // map order, and the model is one of its models.
    auto map = ParseXml(*ReadFile(Fixture("usr/share/libvirt/cpu_map/x86_features.xml")));
    ASSERT_TRUE(map) << map.error();
    std::map<std::string, size_t> map_order;
    for (const XmlElement* feature : map->ChildrenNamed("feature"))
      map_order.emplace(*feature->Attribute("name"), map_order.size());
    size_t previous = 0;
    for (const std::string& name : feature_order) {
      auto found = map_order.find(name);
      ASSERT_NE(found, map_order.end()) << name << " is not a libvirt feature name";
      EXPECT_GE(found->second, previous) << name << " is out of map order";
      previous = found->second;
    }
    EXPECT_TRUE(
        PathExists(Fixture("usr/share/libvirt/cpu_map/x86_" + cpu->Child("model")->text + ".xml")))
        << cpu->Child("model")->text;
  } else {
    EXPECT_EQ(features, expected_features);
  }

  if (std::string microcode = cpuinfo->Get("microcode"); !microcode.empty()) {
    ASSERT_NE(cpu->Child("microcode"), nullptr);
    EXPECT_EQ(*cpu->Child("microcode")->Attribute("version"), std::to_string(*ParseHex(microcode)));
  }
  if (std::string family = cpuinfo->Get("cpu family"); !family.empty()) {
    const XmlElement* signature = cpu->Child("signature");
    ASSERT_NE(signature, nullptr);
    EXPECT_EQ(*signature->Attribute("family"), family);
    EXPECT_EQ(*signature->Attribute("model"), cpuinfo->Get("model"));
    EXPECT_EQ(*signature->Attribute("stepping"), cpuinfo->Get("stepping"));
  }

  // sockets x dies x cores x threads = online CPUs, and sockets = distinct packages.
  auto online = ParseCpuList(*ReadValue(Fixture("sys/devices/system/cpu/online")));
  ASSERT_TRUE(online);
  std::set<std::string> packages;
  for (unsigned id : *online) {
    packages.insert(*ReadValue(Fixture("sys/devices/system/cpu/cpu" + std::to_string(id) +
                                       "/topology/physical_package_id")));
  }
  const XmlElement* topology = cpu->Child("topology");
  ASSERT_NE(topology, nullptr);
  auto attribute = [&](const char* name) { return *ParseUint(*topology->Attribute(name)); };
  EXPECT_EQ(attribute("sockets"), packages.size());
  EXPECT_EQ(attribute("sockets") * attribute("dies") * attribute("cores") * attribute("threads"),
            online->size());

  // One <pages> per huge page size directory, plus the base page.
  auto huge = ListDirectory(Fixture("sys/kernel/mm/hugepages"));
  EXPECT_EQ(cpu->ChildrenNamed("pages").size(), 1 + (huge ? huge->size() : 0));
}

TEST_P(FixtureHostTest, MetricsMatchGolden) {
  std::string text = RenderPrometheus(caps_, RefreshFacts{1700000000, 0.001, 1, 60},
                                      BuildInfo{"golden", "golden", "golden"});
  EXPECT_EQ(
      testing::CompareGolden(testing::SourceDir() + "/tests/golden/" + GetParam() + ".prom", text),
      "");
}

INSTANTIATE_TEST_SUITE_P(Hosts, FixtureHostTest, ::testing::ValuesIn(testing::FixtureProfiles()),
                         [](const ::testing::TestParamInfo<std::string>& param_info) {
                           std::string name = param_info.param;
                           for (char& c : name)
                             c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
                           return name;
                         });

TEST(FixtureHostsTest, EveryProfileHasAReadmeAndConfig) {
  auto profiles = testing::FixtureProfiles();
  EXPECT_GE(profiles.size(), 4u);
  for (const std::string& profile : profiles) {
    EXPECT_TRUE(PathExists(testing::FixtureHost(profile) + "/README.md")) << profile;
    EXPECT_TRUE(PathExists(testing::FixtureHost(profile) + "/virtcaps.yaml")) << profile;
  }
}

}  // namespace
}  // namespace virtcaps
