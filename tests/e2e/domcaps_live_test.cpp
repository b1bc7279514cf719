// The real agent against the real libvirt on whatever machine the tests run on:
// tests/support/libvirt-reference.sh asks this machine's libvirtd (virsh
// domcapabilities) at test time, and `virtcaps-agent --once --format domcapabilities`
// must print the same CPU section for every virt type libvirt offers here: the
// host-model (model, vendor, every feature and its policy, in order) and each named
// model's usable flag.
#include <gtest/gtest.h>

#include "test_support.h"
#include "virtcaps/files.h"
#include "virtcaps/xml.h"

namespace virtcaps {
namespace {

// The CPU section as lines: the host-model's support, model, vendor and features,
// then each custom model with its usable flag and vendor, in document order. One
// string of lines, so that a mismatch prints as a diff.
std::string CpuSection(const XmlElement& domcaps) {
  std::vector<std::string> lines;
  const XmlElement* cpu = domcaps.Child("cpu");
  if (cpu == nullptr) return "no <cpu>";
  for (const XmlElement* mode : cpu->ChildrenNamed("mode")) {
    std::string name = *mode->Attribute("name");
    lines.push_back("mode " + name + " supported=" + *mode->Attribute("supported"));
    if (name == "host-model") {
      for (const XmlElement* model : mode->ChildrenNamed("model")) {
        const std::string* fallback = model->Attribute("fallback");
        lines.push_back("model " + model->text + " fallback=" + (fallback ? *fallback : "-"));
      }
      for (const XmlElement* vendor : mode->ChildrenNamed("vendor")) {
        lines.push_back("vendor " + vendor->text);
      }
      for (const XmlElement* feature : mode->ChildrenNamed("feature")) {
        lines.push_back("feature " + *feature->Attribute("policy") + " " +
                        *feature->Attribute("name"));
      }
    } else if (name == "custom") {
      for (const XmlElement* model : mode->ChildrenNamed("model")) {
        lines.push_back(model->text + " usable=" + *model->Attribute("usable") +
                        " vendor=" + *model->Attribute("vendor"));
      }
    }
  }
  std::string text;
  for (const std::string& line : lines) text += line + "\n";
  return text;
}

class DomcapsLiveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    reference_ = testing::TempDir();
    auto result = testing::RunProcess(
        {"/bin/bash", testing::SourceDir() + "/tests/support/libvirt-reference.sh", reference_},
        300);
    if (result.exit_code == 77) GTEST_SKIP() << "libvirt cannot run here: " << result.err;
    ASSERT_EQ(result.exit_code, 0) << result.err;
    // A fresh cache: the first run probes, the second answers from the cache.
    std::string dir = testing::TempDir();
    config_ = dir + "/virtcaps.yaml";
    testing::WriteTestFile(config_,
                           "hypervisors:\n  - type: qemu\n    cache_dir: " + dir + "/cache\n");
  }

  // The agent's document for `virttype`, checked against libvirt's schema.
  std::string Agent(const std::string& virttype) {
    auto result = testing::RunProcess({testing::AgentBinary(), "--config.file", config_, "--once",
                                       "--format", "domcapabilities", "--virttype", virttype},
                                      120);
    EXPECT_EQ(result.exit_code, 0) << result.err;
    std::string file = testing::TempDir() + "/domcaps-" + virttype + ".xml";
    testing::WriteTestFile(file, result.out);
    auto valid = testing::RunProcess({"/usr/bin/xmllint", "--noout", "--relaxng",
                                      "/usr/share/libvirt/schemas/domaincaps.rng", file});
    EXPECT_EQ(valid.exit_code, 0) << valid.err << result.out;
    auto doc = ParseXml(result.out);
    EXPECT_TRUE(doc) << doc.error();
    if (doc) {
      for (const char* element : {"path", "domain", "arch"}) {
        EXPECT_NE(doc->Child(element), nullptr) << element;
      }
    }
    return doc ? CpuSection(*doc) : std::string();
  }

  std::string Libvirt(const std::string& virttype) {
    auto text = ReadFile(reference_ + "/domcaps-" + virttype + ".xml");
    EXPECT_TRUE(text) << virttype;
    auto doc = ParseXml(text ? *text : "");
    EXPECT_TRUE(doc) << doc.error();
    return doc ? CpuSection(*doc) : std::string();
  }

  std::string reference_, config_;
};

TEST_F(DomcapsLiveTest, CpuSectionEqualsVirshDomcapabilitiesForKvmAndQemu) {
  // libvirt-reference.sh writes domcaps-kvm.xml only where libvirt can use KVM; the
  // agent must then offer kvm too (and where it cannot, the agent must not either).
  bool kvm = PathExists(reference_ + "/domcaps-kvm.xml");
  std::vector<std::string> virttypes = {"qemu"};
  if (kvm) virttypes.insert(virttypes.begin(), "kvm");
  for (const std::string& virttype : virttypes) {
    std::string ours = Agent(virttype);
    std::string theirs = Libvirt(virttype);
    ASSERT_FALSE(theirs.empty()) << virttype;
    EXPECT_EQ(ours, theirs) << "virttype " << virttype;
  }
  if (!kvm) {
    auto result = testing::RunProcess({testing::AgentBinary(), "--config.file", config_, "--once",
                                       "--format", "domcapabilities", "--virttype", "kvm"});
    EXPECT_NE(result.exit_code, 0) << "kvm offered where libvirt cannot use it";
  }
  // Both runs again, from the cache this time: the same answers.
  for (const std::string& virttype : virttypes) {
    EXPECT_EQ(Agent(virttype), Libvirt(virttype)) << "cached, virttype " << virttype;
  }
}

}  // namespace
}  // namespace virtcaps
