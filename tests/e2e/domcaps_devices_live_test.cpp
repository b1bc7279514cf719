// The real agent against the real libvirt on whatever machine the tests run on, for
// what the domain capabilities say after <cpu>: <iothreads>, <memoryBacking>,
// <devices> and <features>. tests/support/libvirt-reference.sh starts this machine's
// libvirtd (if none runs) and then `virsh domcapabilities` is asked directly for each
// virt type libvirt offers here and each machine (the default and q35; and the i686
// guest's default), and
// `virtcaps-agent --once --format domcapabilities` must print the same four subtrees
// (canonicalized: element paths, attributes and text, in document order).
//
// Where the two cannot match, the test says so instead of comparing: libvirt prints
// <sev supported='yes'> details (not probed: the agent leaves <sev> out there), <sgx>
// details on an SGX host, <gic> versions on Arm's virt machine, and a <tpm> with
// swtpm installed (libvirt also asks swtpm_setup for the TPM versions).
#include <gtest/gtest.h>

#include "test_support.h"
#include "virtcaps/files.h"
#include "virtcaps/xml.h"

namespace virtcaps {
namespace {

void Canonical(const XmlElement& element, const std::string& path,
               std::vector<std::string>& lines) {
  std::string here = path + "/" + element.name;
  std::string line = here;
  for (const auto& [key, value] : element.attributes) line += " @" + key + "=" + value;
  if (!element.text.empty()) line += " text=" + element.text;
  lines.push_back(line);
  for (const XmlElement& child : element.children) Canonical(child, here, lines);
}

// The four subtrees, one line per element; an absent one is a line saying so.
std::vector<std::string> AfterCpu(const std::string& document, const std::string& what) {
  auto doc = ParseXml(document);
  EXPECT_TRUE(doc) << what << ": " << doc.error();
  if (!doc) return {};
  std::vector<std::string> lines;
  for (const char* name : {"iothreads", "memoryBacking", "devices", "features"}) {
    const XmlElement* element = doc->Child(name);
    if (element == nullptr) {
      lines.push_back(std::string("no <") + name + ">");
    } else {
      Canonical(*element, "", lines);
    }
  }
  return lines;
}

class DomcapsDevicesLiveTest : public ::testing::Test {
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

  // `virsh domcapabilities` or the agent for one virt type and machine (empty: default).
  std::string Ask(bool agent, const std::string& virttype, const std::string& machine,
                  const std::string& arch = "") {
    std::vector<std::string> argv;
    if (agent) {
      argv = {testing::AgentBinary(), "--config.file", config_, "--once", "--format",
              "domcapabilities",      "--virttype",    virttype};
    } else {
      argv = {"/usr/bin/virsh", "-c", "qemu:///system", "domcapabilities", "--virttype", virttype};
    }
    if (!machine.empty()) {
      argv.push_back("--machine");
      argv.push_back(machine);
    }
    if (!arch.empty()) {
      argv.push_back("--arch");
      argv.push_back(arch);
    }
    auto result = testing::RunProcess(argv, 120);
    EXPECT_EQ(result.exit_code, 0) << (agent ? "agent " : "virsh ") << result.err;
    return result.out;
  }

  // The agent's document is valid against libvirt's schema too.
  void ExpectValid(const std::string& document, const std::string& what) {
    std::string file = testing::TempDir() + "/domcaps.xml";
    testing::WriteTestFile(file, document);
    auto valid = testing::RunProcess({"/usr/bin/xmllint", "--noout", "--relaxng",
                                      "/usr/share/libvirt/schemas/domaincaps.rng", file});
    EXPECT_EQ(valid.exit_code, 0) << what << ": " << valid.err << document;
  }

  std::string reference_, config_;
};

TEST_F(DomcapsDevicesLiveTest, DevicesAndFeaturesEqualVirshForEachVirtTypeAndMachine) {
  if (PathExists("/usr/bin/swtpm")) {
    GTEST_SKIP() << "swtpm is installed: libvirt's <tpm> then has versions the agent does "
                    "not probe";
  }
  std::vector<std::string> virttypes = {"qemu"};
  if (PathExists(reference_ + "/domcaps-kvm.xml")) virttypes.insert(virttypes.begin(), "kvm");
  // libvirt answers each virsh domcapabilities in seconds: each is asked once, and the
  // agent twice (the first run probes, the second answers from its cache).
  for (const std::string& virttype : virttypes) {
    for (const std::string machine : {"", "q35"}) {
      std::string what =
          "virttype " + virttype + " machine " + (machine.empty() ? "(default)" : machine);
      // The default machine's answer libvirt-reference.sh already has.
      auto recorded = ReadFile(reference_ + "/domcaps-" + virttype + ".xml");
      std::string theirs = machine.empty() && recorded ? *recorded : Ask(false, virttype, machine);
      // SEV/SGX hosts: libvirt prints details the agent does not probe.
      for (const char* detail : {"<sev supported='yes'", "<sgx supported='yes'"}) {
        if (theirs.find(detail) != std::string::npos) {
          GTEST_SKIP() << detail << " on this host: its details are not probed";
        }
      }
      std::vector<std::string> expected = AfterCpu(theirs, "virsh " + what);
      ASSERT_FALSE(expected.empty()) << what;
      for (const char* round : {"probed", "cached"}) {
        std::string ours = Ask(true, virttype, machine);
        ExpectValid(ours, what);
        EXPECT_EQ(AfterCpu(ours, "agent " + what), expected) << what << ", " << round;
      }
    }
  }
  // On an x86_64 host the i686 guest too (qemu-system-i386, or qemu-system-x86_64).
  auto capabilities = ReadFile(reference_ + "/capabilities.xml");
  ASSERT_TRUE(capabilities);
  if (capabilities->find("<arch name='i686'>") == std::string::npos) {
    return;
  }
  for (const std::string& virttype : virttypes) {
    std::string what = "arch i686 virttype " + virttype;
    std::string ours = Ask(true, virttype, "", "i686");
    ExpectValid(ours, what);
    EXPECT_EQ(AfterCpu(ours, "agent " + what), AfterCpu(Ask(false, virttype, "", "i686"), what))
        << what;
  }
}

}  // namespace
}  // namespace virtcaps
