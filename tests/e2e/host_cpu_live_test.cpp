// The real agent on this machine against libvirt 9.0's own answer recorded here:
// `virtcaps-agent --once --format xml` must print the same <host><cpu> as
// `virsh capabilities` (tests/fixtures/cpu_decode/build-machine-libvirt-host-cpu.xml).
#include <gtest/gtest.h>

#include "test_support.h"
#include "virtcaps/files.h"
#include "virtcaps/probes.h"
#include "virtcaps/xml.h"

namespace virtcaps {
namespace {

std::string Recorded(const std::string& name) {
  return testing::SourceDir() + "/tests/fixtures/cpu_decode/" + name;
}

// True when this is the machine libvirt's answer was recorded on (same CPUID leaf 1
// and vendor as the recorded dump), where the answers must agree.
bool IsTheRecordedMachine(std::string& why) {
  auto live = MakeInstructionCpuid();
  auto recorded = MakeDumpCpuid(Recorded("build-machine-cpuid-r.txt"));
  if (!live) {
    why = "no CPUID instruction here";
    return false;
  }
  auto live1 = live->Query(1, 0), recorded1 = recorded->Query(1, 0);
  auto live0 = live->Query(0, 0), recorded0 = recorded->Query(0, 0);
  if (!live1 || !recorded1 || !live0 || !recorded0 || live1->eax != recorded1->eax ||
      live1->ecx != recorded1->ecx || live0->ebx != recorded0->ebx) {
    why = "this is not the machine libvirt's answer was recorded on";
    return false;
  }
  return true;
}

TEST(HostCpuLive, AgentPrintsTheHostCpuLibvirtPrints) {
  std::string why;
  if (!IsTheRecordedMachine(why)) GTEST_SKIP() << why;
  auto result = testing::RunProcess({testing::AgentBinary(), "--once", "--format", "xml"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  auto doc = ParseXml(result.out);
  ASSERT_TRUE(doc) << doc.error();
  const XmlElement* cpu = doc->Child("host") ? doc->Child("host")->Child("cpu") : nullptr;
  ASSERT_NE(cpu, nullptr);
  auto expected = ParseXml(*ReadFile(Recorded("build-machine-libvirt-host-cpu.xml")));
  ASSERT_TRUE(expected) << expected.error();
  // Element by element: model, vendor, microcode, signature, counter, topology,
  // maxphysaddr, every feature in libvirt's order, page sizes.
  EXPECT_EQ(WriteXml(*cpu), WriteXml(*expected));
}

}  // namespace
}  // namespace virtcaps

namespace virtcaps {
namespace {

// The custom-mode models as "name usable vendor", from a domain capabilities document.
std::vector<std::string> CustomModels(const XmlElement& doc) {
  std::vector<std::string> models;
  for (const XmlElement* mode : doc.Child("cpu")->ChildrenNamed("mode")) {
    if (*mode->Attribute("name") != "custom") continue;
    for (const XmlElement* model : mode->ChildrenNamed("model"))
      models.push_back(model->text + " " + *model->Attribute("usable") + " " +
                       *model->Attribute("vendor"));
  }
  return models;
}

TEST(DomainCapabilitiesLive, AgentListsTheModelsVirshDomcapabilitiesLists) {
  std::string why;
  if (!IsTheRecordedMachine(why)) GTEST_SKIP() << why;
  auto result = testing::RunProcess(
      {testing::AgentBinary(), "--once", "--format", "domcapabilities", "--virttype", "kvm"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  std::string file = testing::TempDir() + "/domcaps.xml";
  testing::WriteTestFile(file, result.out);
  auto valid = testing::RunProcess({"/usr/bin/xmllint", "--noout", "--relaxng",
                                    "/usr/share/libvirt/schemas/domaincaps.rng", file});
  EXPECT_EQ(valid.exit_code, 0) << valid.err;
  auto doc = ParseXml(result.out);
  ASSERT_TRUE(doc) << doc.error();
  auto libvirt = ParseXml(*ReadFile(Recorded("build-machine-domcaps-kvm.xml")));
  ASSERT_TRUE(libvirt) << libvirt.error();
  for (const char* element : {"path", "domain", "machine", "arch"}) {
    EXPECT_EQ(doc->Child(element)->text, libvirt->Child(element)->text) << element;
  }
  EXPECT_EQ(*doc->Child("vcpu")->Attribute("max"), *libvirt->Child("vcpu")->Attribute("max"));
  EXPECT_EQ(CustomModels(*doc), CustomModels(*libvirt));
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
