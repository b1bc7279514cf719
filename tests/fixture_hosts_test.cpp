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
  for (const XmlElement* feature : cpu->ChildrenNamed("feature"))
    features.insert(*feature->Attribute("name"));
  EXPECT_EQ(features, expected_features);

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

// What the agent serves under the profile's configuration (collectors.cpu.flags_include).
TEST_P(FixtureHostTest, MetricsMatchGolden) {
  std::string text =
      RenderPrometheus(caps_, RefreshFacts{1700000000, 0.001, 1, 60},
                       BuildInfo{"golden", "golden", "golden"}, MetricsOptionsFor(config_));
  EXPECT_EQ(
      testing::CompareGolden(testing::SourceDir() + "/tests/golden/" + GetParam() + ".prom", text),
      "");
}

// The same families as OpenMetrics (what Accept: application/openmetrics-text gets, minus
// the server's live families); tests/e2e/schema_and_lint.sh parses these strictly.
TEST_P(FixtureHostTest, OpenMetricsMatchesGolden) {
  std::string text =
      RenderOpenMetrics(caps_, RefreshFacts{1700000000, 0.001, 1, 60},
                        BuildInfo{"golden", "golden", "golden"}, MetricsOptionsFor(config_));
  EXPECT_EQ(text.substr(text.size() - 6), "# EOF\n");
  EXPECT_EQ(
      testing::CompareGolden(testing::SourceDir() + "/tests/golden/" + GetParam() + ".om", text),
      "");
}

// The default flags_include keeps what alerts and placement use and drops the rest.
TEST_P(FixtureHostTest, DefaultFlagsIncludeKeepsPlacementFlagsOnly) {
  std::string all = RenderPrometheus(caps_, RefreshFacts{}, BuildInfo{});
  std::string kept =
      RenderPrometheus(caps_, RefreshFacts{}, BuildInfo{}, MetricsOptionsFor(config_));
  auto count = [](const std::string& text, const std::string& needle) {
    size_t n = 0;
    for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1))
      ++n;
    return n;
  };
  size_t features = caps_.cpu.features.size();
  EXPECT_EQ(count(all, "\nvirtcaps_cpu_feature_info{"), features);
  EXPECT_LE(count(kept, "\nvirtcaps_cpu_feature_info{"), features);
  for (const std::string& flag : caps_.cpu.features) {
    bool placement = flag == "vmx" || flag == "svm" || flag == "avx2" || flag == "md_clear" ||
                     flag.rfind("avx512", 0) == 0 || flag.rfind("sev", 0) == 0;
    bool noise = flag == "fpu" || flag == "de" || flag == "pse" || flag == "mmx" || flag == "cmov";
    std::string series = "\nvirtcaps_cpu_feature_info{feature=\"" + flag + "\"} 1";
    if (placement) {
      EXPECT_NE(kept.find(series), std::string::npos) << flag;
    }
    if (noise) {
      EXPECT_EQ(kept.find(series), std::string::npos) << flag;
    }
  }
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
