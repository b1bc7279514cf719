// Every fixture host, end to end through the library: collectors, both renderers,
// golden files, and the XML read back with expat and checked against the fixture's
// own files. Regenerate goldens with VIRTCAPS_UPDATE_GOLDEN=1 (see README.md).
#include <gtest/gtest.h>

#include <algorithm>
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
      // Topology classes (tests/fixtures/topology_hosts.py, each README names its model).
      {"intel-xeon-4s-snc-mba", {"x86_64", "Intel", std::nullopt, true, false, true, false, {}}},
      {"intel-skylake-sp-cat-cdp", {"x86_64", "Intel", std::nullopt, true, false, true, false, {}}},
      {"intel-xeon-offline-cpus", {"x86_64", "Intel", std::nullopt, true, false, true, false, {}}},
      {"amd-opteron-2s-no-smt", {"x86_64", "AMD", std::nullopt, true, false, false, false, {}}},
      {"amd-opteron-8node-masks-only",
       {"x86_64", "AMD", std::nullopt, true, false, false, false, {}}},
      {"ibm-z14-lpar", {"s390x", "IBM", true, true, std::nullopt, false, false, {}}},
      {"sophgo-sg2042-riscv64",
       {"riscv64", "", std::nullopt, std::nullopt, std::nullopt, false, false, {}}},
      {"rockchip-rk3399-big-little",
       {"aarch64", "ARM", std::nullopt, std::nullopt, std::nullopt, false, false, {}}},
      {"loongson-3a5000-loongarch64",
       {"loongarch64", "", std::nullopt, std::nullopt, std::nullopt, false, false, {}}},
      {"imx53-armv7l-single",
       {"armv7l", "ARM", std::nullopt, std::nullopt, std::nullopt, false, false, {}}},
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
  // cpu/online, or (kernels before 2.6.26) CPUs 0..N-1 of cpuinfo's processor entries.
  std::optional<std::vector<unsigned>> OnlineCpus() const {
    if (auto online = ReadValue(Fixture("sys/devices/system/cpu/online")))
      return ParseCpuList(*online);
    auto cpuinfo = ParseCpuinfo(*ReadFile(Fixture("proc/cpuinfo")));
    if (!cpuinfo) return std::nullopt;
    std::vector<unsigned> cpus;
    for (size_t i = 0; i < std::max<size_t>(cpuinfo->processors.size(), 1); ++i)
      cpus.push_back(static_cast<unsigned>(i));
    return cpus;
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
  bool x86 = caps_.cpu.arch == "x86_64" || caps_.cpu.arch == "i686";
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
  if (std::string family = cpuinfo->Get("cpu family"); x86 && !family.empty()) {
    const XmlElement* signature = cpu->Child("signature");
    ASSERT_NE(signature, nullptr);
    EXPECT_EQ(*signature->Attribute("family"), family);
    EXPECT_EQ(*signature->Attribute("model"), cpuinfo->Get("model"));
    EXPECT_EQ(*signature->Attribute("stepping"), cpuinfo->Get("stepping"));
  }

  // libvirt's rule: nodes x sockets x dies x cores x threads = present CPUs, or the
  // flat fallback (1 socket, 1 thread, a core per CPU) is reported as such.
  auto online = OnlineCpus();
  ASSERT_TRUE(online);
  auto present_text = ReadValue(Fixture("sys/devices/system/cpu/present"));
  auto present = present_text ? ParseCpuList(*present_text) : online;
  ASSERT_TRUE(present);
  std::set<std::string> packages;
  for (unsigned id : *online) {
    auto package = ReadValue(Fixture("sys/devices/system/cpu/cpu" + std::to_string(id) +
                                     "/topology/physical_package_id"));
    packages.insert(package ? *package : "0");
  }
  const XmlElement* topology = cpu->Child("topology");
  ASSERT_NE(topology, nullptr);
  auto attribute = [&](const char* name) { return *ParseUint(*topology->Attribute(name)); };
  ASSERT_TRUE(caps_.cpu.topology);
  const CpuTopology& model = *caps_.cpu.topology;
  EXPECT_EQ(attribute("dies"), 1u);  // libvirt's host CPU never counts dies
  if (model.method == "flat_fallback") {
    EXPECT_EQ(attribute("sockets"), 1u);
    EXPECT_EQ(attribute("threads"), 1u);
    EXPECT_EQ(attribute("cores"), present->size());
  } else {
    EXPECT_EQ(model.nodes * attribute("sockets") * attribute("dies") * attribute("cores") *
                  attribute("threads"),
              present->size())
        << model.method;
    EXPECT_LE(attribute("sockets"), packages.size());
  }
  EXPECT_EQ(model.physical_packages, packages.size());
  // resctrl: one <control> per info/L<level>[CODE|DATA] directory on each bank of that
  // level, with its num_closids; <memory_bandwidth> nodes exactly when info/MB exists.
  const XmlElement* host = doc->Child("host");
  std::string info = Fixture("sys/fs/resctrl/info/");
  if (const XmlElement* cache = host->Child("cache")) {
    for (const XmlElement* bank : cache->ChildrenNamed("bank")) {
      std::string level = *bank->Attribute("level");
      std::set<std::string> expected, found;
      for (const char* suffix : {"", "CODE", "DATA"}) {
        std::string dir = info + "L" + level + suffix;
        if (IsDirectory(dir))
          expected.insert(std::string(*suffix ? suffix : "both") + "=" +
                          *ReadValue(dir + "/num_closids"));
      }
      for (const XmlElement* control : bank->ChildrenNamed("control")) {
        std::string type = *control->Attribute("type");
        found.insert((type == "both"   ? "both"
                      : type == "code" ? "CODE"
                                       : "DATA") +
                     std::string("=") + *control->Attribute("maxAllocs"));
      }
      EXPECT_EQ(found, expected) << "bank level " << level;
    }
  }
  EXPECT_EQ(host->Child("memory_bandwidth") != nullptr, IsDirectory(info + "MB"));

  // One <pages> per huge page size directory, plus the base page.
  auto huge = ListDirectory(Fixture("sys/kernel/mm/hugepages"));
  EXPECT_EQ(cpu->ChildrenNamed("pages").size(), 1 + (huge ? huge->size() : 0));
}

// Over every fixture: the cells hold exactly the online CPUs, each once, and thread
// sibling lists are symmetric (if A lists B, B lists A).
TEST_P(FixtureHostTest, CellsHoldExactlyTheOnlineCpusWithSymmetricSiblings) {
  auto numa = std::find_if(caps_.collectors.begin(), caps_.collectors.end(),
                           [](const CollectorOutcome& outcome) { return outcome.name == "numa"; });
  if (numa == caps_.collectors.end() || !numa->success) {
    // Only the deliberately broken profile, or one with host collectors off, gets here.
    EXPECT_TRUE(GetParam() == "broken-sysfs" || !config_.collectors.at("numa")) << GetParam();
    return;
  }
  auto online = OnlineCpus();
  ASSERT_TRUE(online);
  std::map<unsigned, std::vector<unsigned>> siblings_of;
  std::vector<unsigned> in_cells;
  for (const NumaCell& cell : caps_.cells) {
    for (const CellCpu& cpu : cell.cpus) {
      in_cells.push_back(cpu.id);
      siblings_of[cpu.id] = cpu.siblings;
    }
  }
  std::sort(in_cells.begin(), in_cells.end());
  EXPECT_EQ(in_cells, *online);
  for (const auto& [id, siblings] : siblings_of) {
    EXPECT_TRUE(std::binary_search(siblings.begin(), siblings.end(), id)) << "cpu " << id;
    for (unsigned sibling : siblings) {
      auto other = siblings_of.find(sibling);
      ASSERT_NE(other, siblings_of.end()) << "cpu " << id << " lists offline sibling " << sibling;
      EXPECT_TRUE(std::binary_search(other->second.begin(), other->second.end(), id))
          << "cpu " << id << " lists " << sibling << " but not the other way round";
    }
  }
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

// libvirt's domain capabilities of each virt type the host's native QEMU guest has,
// as goldens (tests/golden/HOST.domcaps-VIRTTYPE.xml), valid against libvirt's schema.
TEST_P(FixtureHostTest, DomainCapabilitiesMatchGoldens) {
  const Guest* native = nullptr;
  for (const Guest& guest : caps_.guests) {
    if (guest.hypervisor == "qemu" && guest.arch == caps_.cpu.arch) native = &guest;
  }
  if (native == nullptr) return;  // no QEMU guest for the host arch: nothing to render
  for (const GuestDomain& domain : native->domains) {
    auto xml = RenderDomainCapabilitiesXml(caps_, {"", domain.type, "", ""});
    ASSERT_TRUE(xml) << xml.error();
    std::string file = testing::TempDir() + "/" + GetParam() + "-domcaps.xml";
    testing::WriteTestFile(file, *xml);
    auto valid = testing::RunProcess({"/usr/bin/xmllint", "--noout", "--relaxng",
                                      "/usr/share/libvirt/schemas/domaincaps.rng", file});
    EXPECT_EQ(valid.exit_code, 0) << valid.err;
    EXPECT_EQ(testing::CompareGolden(testing::SourceDir() + "/tests/golden/" + GetParam() +
                                         ".domcaps-" + domain.type + ".xml",
                                     *xml),
              "");
  }
}

// What the refresh loop remembers (CPUID answers, KVM's scratch VM, topology and
// caches, emulator probes, finished guests) must not change a document: the third
// probe with one memory (the second and third take everything over) says what the
// one-off probe says.
TEST_P(FixtureHostTest, RememberingRefreshesSayWhatAOneOffProbeSays) {
  RefreshMemory memory;
  ProbeHost(config_, nullptr, &memory);
  ProbeHost(config_, nullptr, &memory);
  HostCapabilities warm = ProbeHost(config_, nullptr, &memory);
  for (CollectorOutcome& outcome : warm.collectors) outcome.duration_seconds = 0;
  EXPECT_EQ(RenderCapabilitiesXml(warm), RenderCapabilitiesXml(caps_));
  // The counters of probes spawned and cache hits differ by design; nothing else may.
  auto without_probe_counts = [](std::string text) {
    std::string kept;
    for (std::string_view line : Split(text, '\n')) {
      if (line.find("virtcaps_qemu_") != std::string_view::npos &&
          (line.find("cache_hits") != std::string_view::npos ||
           line.find("probes_spawned") != std::string_view::npos))
        continue;
      kept.append(line).append("\n");
    }
    return kept;
  };
  EXPECT_EQ(without_probe_counts(RenderPrometheus(warm, RefreshFacts{}, BuildInfo{})),
            without_probe_counts(RenderPrometheus(caps_, RefreshFacts{}, BuildInfo{})));
  for (const Guest& guest : caps_.guests) {
    if (guest.hypervisor != "qemu") continue;
    for (const GuestDomain& domain : guest.domains) {
      DomainCapabilitiesQuery query{guest.arch, domain.type, "", guest.emulator};
      auto cold_xml = RenderDomainCapabilitiesXml(caps_, query);
      auto warm_xml = RenderDomainCapabilitiesXml(warm, query);
      ASSERT_EQ(cold_xml.ok(), warm_xml.ok());
      if (cold_xml) {
        EXPECT_EQ(*warm_xml, *cold_xml) << guest.arch << " " << domain.type;
      }
    }
  }
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
