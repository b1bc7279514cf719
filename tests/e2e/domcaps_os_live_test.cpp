// The real agent against the real libvirt on this machine, for <os> of the domain
// capabilities: firmware and loaders from the QEMU firmware descriptors installed
// here (Debian's ovmf on the build machines). For kvm and qemu, the default machine
// and q35, and i686 where libvirt offers it, `virtcaps-agent --once --format
// domcapabilities` must print the <os> element `virsh domcapabilities` prints, byte
// for byte, and the document must stay valid against domaincaps.rng.
#include <gtest/gtest.h>

#include "test_support.h"
#include "virtcaps/files.h"

namespace virtcaps {
namespace {

// The <os ...>...</os> lines of a document, or a note that there are none.
std::string OsElement(const std::string& xml) {
  size_t begin = xml.find("  <os");
  size_t end = xml.find("</os>\n");
  if (begin == std::string::npos || end == std::string::npos) return "(no <os>) in:\n" + xml;
  return xml.substr(begin, end + 6 - begin);
}

class DomcapsOsLiveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    reference_ = testing::TempDir();
    auto result = testing::RunProcess(
        {"/bin/bash", testing::SourceDir() + "/tests/support/libvirt-reference.sh", reference_},
        300);
    if (result.exit_code == 77) GTEST_SKIP() << "libvirt cannot run here: " << result.err;
    ASSERT_EQ(result.exit_code, 0) << result.err;
    std::string dir = testing::TempDir();
    config_ = dir + "/virtcaps.yaml";
    testing::WriteTestFile(config_,
                           "hypervisors:\n  - type: qemu\n    cache_dir: " + dir + "/cache\n");
  }

  // virsh's document; empty when libvirt refuses the combination.
  std::string Virsh(const std::vector<std::string>& query) {
    std::vector<std::string> argv = {"/usr/bin/virsh", "-c", "qemu:///system", "domcapabilities"};
    argv.insert(argv.end(), query.begin(), query.end());
    auto result = testing::RunProcess(argv, 120);
    return result.exit_code == 0 ? result.out : "";
  }

  std::string Agent(const std::vector<std::string>& query) {
    std::vector<std::string> argv = {
        testing::AgentBinary(), "--config.file", config_, "--once", "--format", "domcapabilities"};
    argv.insert(argv.end(), query.begin(), query.end());
    auto result = testing::RunProcess(argv, 120);
    EXPECT_EQ(result.exit_code, 0) << result.err;
    std::string file = testing::TempDir() + "/domcaps.xml";
    testing::WriteTestFile(file, result.out);
    auto valid = testing::RunProcess({"/usr/bin/xmllint", "--noout", "--relaxng",
                                      "/usr/share/libvirt/schemas/domaincaps.rng", file});
    EXPECT_EQ(valid.exit_code, 0) << valid.err << result.out;
    return result.out;
  }

  std::string reference_, config_;
};

TEST_F(DomcapsOsLiveTest, OsEqualsVirshDomcapabilities) {
  std::vector<std::string> virttypes = {"qemu"};
  if (PathExists(reference_ + "/domcaps-kvm.xml")) virttypes.insert(virttypes.begin(), "kvm");
  size_t compared = 0;
  // The default machine (pc), q35 (descriptors for it alone), isapc (none: libvirt's
  // legacy nvram list), and i686 (no descriptor names it).
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"x86_64", ""}, {"x86_64", "q35"}, {"x86_64", "isapc"}, {"i686", ""}};
  for (const std::string& virttype : virttypes) {
    for (const auto& [arch, machine] : cases) {
      std::vector<std::string> query = {"--virttype", virttype, "--arch", arch};
      if (!machine.empty()) query.insert(query.end(), {"--machine", machine});
      std::string theirs = Virsh(query);
      if (theirs.empty()) continue;  // libvirt does not offer it (no such emulator here)
      SCOPED_TRACE(virttype + " " + arch + " machine '" + machine + "'");
      EXPECT_EQ(OsElement(Agent(query)), OsElement(theirs));
      ++compared;
    }
  }
  // The default machine and q35 of x86_64 at least, where libvirt offers x86_64 at all.
  if (Virsh({"--virttype", "qemu", "--arch", "x86_64"}).empty()) {
    GTEST_SKIP() << "libvirt offers no x86_64 guest here";
  }
  EXPECT_GE(compared, 2u);
}

// The descriptors themselves: what the agent says about the ones installed here.
TEST_F(DomcapsOsLiveTest, MetricsSayWhichFirmwareX86GuestsCanBoot) {
  auto result = testing::RunProcess(
      {testing::AgentBinary(), "--config.file", config_, "--once", "--format", "prometheus"}, 120);
  ASSERT_EQ(result.exit_code, 0) << result.err;
  std::string q35 = Virsh({"--virttype", "qemu", "--arch", "x86_64", "--machine", "q35"});
  if (q35.empty()) GTEST_SKIP() << "libvirt offers no x86_64 q35 guest here";
  // libvirt offers efi for q35 exactly when a descriptor matches it here.
  bool efi = q35.find("<value>efi</value>") != std::string::npos;
  std::string series =
      "virtcaps_guest_firmware_available{arch=\"x86_64\",firmware=\"efi\",secure_boot=\"no\"} ";
  EXPECT_NE(result.out.find(series + (efi ? "1" : "0")), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("virtcaps_qemu_firmware_descriptors{state=\"invalid\"} 0"),
            std::string::npos);
}

}  // namespace
}  // namespace virtcaps
