// The real agent on this machine against the real libvirt on this machine, asked at
// test time (tests/support/libvirt-reference.sh starts a libvirtd when none runs):
// `virtcaps-agent --once --format xml` must print the <host><cpu> that `virsh
// capabilities` prints, and the domain capabilities' named models must be virsh's.
// The machine libvirt 9.0 was recorded on last (an AMD EPYC guest) stays as a fixture
// test: its fixture tree against that recording.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>

#include "test_support.h"
#include "virtcaps/files.h"
#include "virtcaps/xml.h"

namespace virtcaps {
namespace {

std::string Recorded(const std::string& name) {
  return testing::SourceDir() + "/tests/fixtures/cpu_decode/" + name;
}

// libvirt's answers on this machine, recorded once per test program.
struct LibvirtReference {
  int exit_code = -1;
  std::string dir, log;
  std::string File(const std::string& name) const { return dir + "/" + name; }
};

const LibvirtReference& Reference() {
  static const LibvirtReference reference = [] {
    LibvirtReference result;
    result.dir = testing::TempDir();
    // Test programs run in parallel (ctest -j): one at a time may start a libvirtd.
    int lock = ::open("/tmp/virtcaps-libvirt-reference.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock >= 0) ::flock(lock, LOCK_EX);
    auto run = testing::RunProcess(
        {"/bin/bash", testing::SourceDir() + "/tests/support/libvirt-reference.sh", result.dir},
        400);
    if (lock >= 0) ::close(lock);  // releases the lock
    result.exit_code = run.exit_code;
    result.log = run.out + run.err;
    return result;
  }();
  return reference;
}

// Skips (exit 77: no libvirt can run here, e.g. not root and no daemon) or fails
// (any other failure of the reference script), else returns the parsed file.
#define LIBVIRT_REFERENCE_OR_SKIP(var, name)                      \
  const LibvirtReference& reference_ = Reference();               \
  if (reference_.exit_code == 77) GTEST_SKIP() << reference_.log; \
  ASSERT_EQ(reference_.exit_code, 0) << reference_.log;           \
  auto var##_text = ReadFile(reference_.File(name));              \
  ASSERT_TRUE(var##_text) << var##_text.error();                  \
  auto var = ParseXml(*var##_text);                               \
  ASSERT_TRUE(var) << reference_.File(name) << ": " << var.error()

const XmlElement* HostCpu(const XmlElement& capabilities) {
  const XmlElement* host = capabilities.Child("host");
  return host ? host->Child("cpu") : nullptr;
}

// Element by element, so that a failure names what differs: model, vendor,
// microcode, signature, counter, topology, maxphysaddr, each feature in libvirt's
// order, page sizes.
void ExpectSameCpu(const XmlElement& agent, const XmlElement& libvirt) {
  std::vector<std::string> ours, theirs;
  for (const auto& child : agent.children) ours.push_back(WriteXml(child));
  for (const auto& child : libvirt.children) theirs.push_back(WriteXml(child));
  for (size_t i = 0; i < std::max(ours.size(), theirs.size()); ++i) {
    EXPECT_EQ(i < ours.size() ? ours[i] : "(none)", i < theirs.size() ? theirs[i] : "(none)")
        << "child " << i << " of <cpu>";
    if (::testing::Test::HasFailure())
      break;  // one misplaced element shifts the rest: report the first
  }
  EXPECT_EQ(WriteXml(agent), WriteXml(libvirt));
}

TEST(HostCpuLive, AgentPrintsTheHostCpuLibvirtPrintsHere) {
  LIBVIRT_REFERENCE_OR_SKIP(capabilities, "capabilities.xml");
  const XmlElement* expected = HostCpu(*capabilities);
  ASSERT_NE(expected, nullptr) << "libvirt printed no <host><cpu>";
  auto result = testing::RunProcess({testing::AgentBinary(), "--once", "--format", "xml"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  auto doc = ParseXml(result.out);
  ASSERT_TRUE(doc) << doc.error();
  const XmlElement* cpu = HostCpu(*doc);
  ASSERT_NE(cpu, nullptr);
  // Not a trivially equal pair: libvirt names a model of its map here.
  ASSERT_NE(expected->Child("model"), nullptr);
  ExpectSameCpu(*cpu, *expected);
}

// The machine the previous recording comes from, as a fixture host: its CPUID dump,
// recorded KVM answers and topology against libvirt 9.0's answer there.
TEST(HostCpuRecorded, FixtureOfTheRecordedMachinePrintsLibvirtsHostCpu) {
  std::string dir = testing::FixtureHost("amd-epyc-pvm-guest");
  auto result =
      testing::RunProcess({testing::AgentBinary(), "--config.file=" + dir + "/virtcaps.yaml",
                           "--path.rootfs=" + dir, "--once", "--format", "xml"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  auto doc = ParseXml(result.out);
  ASSERT_TRUE(doc) << doc.error();
  const XmlElement* cpu = HostCpu(*doc);
  ASSERT_NE(cpu, nullptr);
  auto expected = ParseXml(*ReadFile(Recorded("build-machine-libvirt-host-cpu.xml")));
  ASSERT_TRUE(expected) << expected.error();
  ExpectSameCpu(*cpu, *expected);
}

// The decoder's expected answers (tests/fixtures/cpu_decode) against the real
// libvirt here: `virsh cpu-baseline` of two host CPUs with the same features (the
// expected <cpu>, and 486 plus that CPU's expanded feature list) makes libvirt decode
// exactly that feature set with its own map and rules. It must name the same model
// and the same features in the same order, less the ones baseline always omits.
std::vector<std::string> FeatureNames(const XmlElement& cpu) {
  std::vector<std::string> names;
  for (const XmlElement* feature : cpu.ChildrenNamed("feature"))
    names.push_back(*feature->Attribute("name"));
  return names;
}

TEST(CpuDecodeOracle, LibvirtsBaselineDecodesEachExpectedCpuTheSameWay) {
  LIBVIRT_REFERENCE_OR_SKIP(capabilities, "capabilities.xml");
  const std::vector<std::string> omitted = {"osxsave", "ospke", "cmt", "mbm_total", "mbm_local"};
  for (const char* name :
       {"x86_64-cpuid-EPYC-7502-32-Core-host.xml", "x86_64-cpuid-EPYC-9334-32-Core-host-9.0.xml",
        "x86_64-cpuid-Ice-Lake-Server-host-9.0.xml", "x86_64-cpuid-Xeon-Gold-6148-host-9.0.xml",
        "x86_64-cpuid-Xeon-Platinum-8268-host-9.0.xml", "x86_64-cpuid-Core-i7-8700-host-9.0.xml",
        "x86_64-cpuid-Ryzen-9-3900X-12-Core-host-9.0.xml", "this-machine-libvirt-host-cpu.xml",
        "build-machine-libvirt-host-cpu.xml"}) {
    SCOPED_TRACE(name);
    auto text = ReadFile(Recorded(name));
    ASSERT_TRUE(text) << text.error();
    auto expected = ParseXml(*text);
    ASSERT_TRUE(expected) << expected.error();
    std::string dir = testing::TempDir();
    testing::WriteTestFile(dir + "/one.xml", *text);
    auto expanded = testing::RunProcess(
        {"/usr/bin/virsh", "-c", "qemu:///system", "cpu-baseline", "--features", dir + "/one.xml"});
    ASSERT_EQ(expanded.exit_code, 0) << expanded.err;
    auto expanded_doc = ParseXml(expanded.out);
    ASSERT_TRUE(expanded_doc) << expanded_doc.error();
    XmlElement other("cpu");
    other.Add("arch", "x86_64");
    other.Add("model", "486");
    other.Add("vendor", expected->Child("vendor")->text);
    for (const std::string& feature : FeatureNames(*expanded_doc))
      other.Add("feature").SetAttribute("name", feature);
    testing::WriteTestFile(dir + "/two.xml", *text + WriteXml(other));
    auto baseline = testing::RunProcess(
        {"/usr/bin/virsh", "-c", "qemu:///system", "cpu-baseline", dir + "/two.xml"});
    ASSERT_EQ(baseline.exit_code, 0) << baseline.err;
    auto result = ParseXml(baseline.out);
    ASSERT_TRUE(result) << result.error();
    ASSERT_NE(result->Child("model"), nullptr) << baseline.out;
    EXPECT_EQ(result->Child("model")->text, expected->Child("model")->text);
    std::vector<std::string> want;
    for (const std::string& feature : FeatureNames(*expected))
      if (std::find(omitted.begin(), omitted.end(), feature) == omitted.end())
        want.push_back(feature);
    EXPECT_EQ(FeatureNames(*result), want);
  }
}

// The custom-mode models as "name usable vendor" (or "name vendor"), from a domain
// capabilities document.
std::vector<std::string> CustomModels(const XmlElement& doc, bool with_usable = true) {
  std::vector<std::string> models;
  const XmlElement* cpu = doc.Child("cpu");
  if (cpu == nullptr) return models;
  for (const XmlElement* mode : cpu->ChildrenNamed("mode")) {
    if (*mode->Attribute("name") != "custom") continue;
    for (const XmlElement* model : mode->ChildrenNamed("model")) {
      const std::string* usable = model->Attribute("usable");
      const std::string* vendor = model->Attribute("vendor");
      models.push_back(model->text + " " +
                       (with_usable ? (usable ? *usable : "?") + std::string(" ") : "") +
                       (vendor ? *vendor : "?"));
    }
  }
  return models;
}

void ExpectDomainCapabilitiesLikeVirsh(const std::string& virttype, const XmlElement& libvirt,
                                       bool with_usable = true) {
  auto result = testing::RunProcess(
      {testing::AgentBinary(), "--once", "--format", "domcapabilities", "--virttype", virttype},
      120);
  ASSERT_EQ(result.exit_code, 0) << result.err;
  std::string file = testing::TempDir() + "/domcaps.xml";
  testing::WriteTestFile(file, result.out);
  auto valid = testing::RunProcess({"/usr/bin/xmllint", "--noout", "--relaxng",
                                    "/usr/share/libvirt/schemas/domaincaps.rng", file});
  EXPECT_EQ(valid.exit_code, 0) << valid.err;
  auto doc = ParseXml(result.out);
  ASSERT_TRUE(doc) << doc.error();
  for (const char* element : {"path", "domain", "machine", "arch"}) {
    ASSERT_NE(libvirt.Child(element), nullptr) << element;
    ASSERT_NE(doc->Child(element), nullptr) << element;
    EXPECT_EQ(doc->Child(element)->text, libvirt.Child(element)->text) << element;
  }
  EXPECT_EQ(*doc->Child("vcpu")->Attribute("max"), *libvirt.Child("vcpu")->Attribute("max"));
  std::vector<std::string> expected = CustomModels(libvirt, with_usable);
  ASSERT_FALSE(expected.empty()) << "virsh listed no named models";
  EXPECT_EQ(CustomModels(*doc, with_usable), expected);
}

TEST(DomainCapabilitiesLive, AgentListsTheModelsVirshListsUnderKvm) {
  LIBVIRT_REFERENCE_OR_SKIP(capabilities, "capabilities.xml");
  std::string kvm = reference_.File("domcaps-kvm.xml");
  // The script writes it whenever libvirt offers a kvm domain here.
  if (!ReadFile(kvm)) GTEST_SKIP() << "libvirt offers no kvm guest on this machine";
  auto libvirt = ParseXml(*ReadFile(kvm));
  ASSERT_TRUE(libvirt) << libvirt.error();
  ExpectDomainCapabilitiesLikeVirsh("kvm", *libvirt);
}

TEST(DomainCapabilitiesLive, AgentListsTheModelsVirshListsUnderTcg) {
  LIBVIRT_REFERENCE_OR_SKIP(libvirt, "domcaps-qemu.xml");
  // Names, order and vendors only: under TCG the agent says usable='unknown' where
  // virsh says yes/no (the TCG usability probe is not part of this test's scope).
  ExpectDomainCapabilitiesLikeVirsh("qemu", *libvirt, /*with_usable=*/false);
}

TEST(DomainCapabilitiesLive, ServedOverHttpAndBadQueriesAre400) {
  testing::AgentProcess agent({});
  ASSERT_TRUE(agent.started()) << agent.log();
  ASSERT_TRUE(agent.WaitForLog("first snapshot ready", 60000)) << agent.log();
  auto bad = testing::HttpGet(agent.port(), "/domcapabilities?arch=%zz");
  EXPECT_EQ(bad.status, 400) << bad.body;
  auto unknown = testing::HttpGet(agent.port(), "/domcapabilities?emulator=/nonexistent");
  EXPECT_EQ(unknown.status, 404) << unknown.body;
  auto good = testing::HttpGet(agent.port(), "/domcapabilities");
  // Without a usable emulator there is nothing to describe; with one, a document.
  if (good.status == 200) {
    EXPECT_NE(good.body.find("<domainCapabilities>"), std::string::npos);
  } else {
    EXPECT_EQ(good.status, 404) << good.body;
  }
  EXPECT_EQ(testing::HttpGet(agent.port(), "/healthz").status, 200);  // still serving
}

}  // namespace
}  // namespace virtcaps
