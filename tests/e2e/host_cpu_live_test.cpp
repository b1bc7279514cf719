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
