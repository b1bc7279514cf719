// libvirt's domain capabilities document: the renderer on a model built here, its
// schema (Debian's domaincaps.rng, with xmllint), and the /domcapabilities route.
#include <gtest/gtest.h>

#include "test_support.h"
#include "virtcaps/http_server.h"
#include "virtcaps/renderers.h"
#include "virtcaps/xml.h"

namespace virtcaps {
namespace {

HostCapabilities Host() {
  HostCapabilities caps;
  caps.cpu.arch = "x86_64";
  Guest guest;
  guest.hypervisor = "qemu";
  guest.os_type = "hvm";
  guest.arch = "x86_64";
  guest.emulator = "/usr/bin/qemu-system-x86_64";
  guest.machines = {{"pc-i440fx-7.2", "", 255u, false, true},
                    {"pc", "pc-i440fx-7.2", 255u, false, false},
                    {"pc-q35-7.2", "", 288u, false, false}};
  guest.domains = {{"qemu", "", {}}, {"kvm", "", {}}};
  GuestCpuModes& modes = guest.cpu_modes.emplace_back();
  modes.virttype = "kvm";
  modes.models = {{"qemu64", false, {"svm"}, "unknown"},
                  {"EPYC-Milan", false, {"svm", "pku"}, "AMD"},
                  {"486", true, {}, "unknown"}};
  modes.host_model = GuestHostModel{"kvm64", "Intel", {{"require", "vme"}, {"disable", "pni"}}};
  caps.guests.push_back(guest);
  return caps;
}

std::string Render(const DomainCapabilitiesQuery& query) {
  auto document = RenderDomainCapabilitiesXml(Host(), query);
  EXPECT_TRUE(document) << document.error();
  return document ? *document : "";
}

void ExpectValid(const std::string& xml) {
  std::string file = testing::TempDir() + "/domcaps.xml";
  testing::WriteTestFile(file, xml);
  auto result = testing::RunProcess({"/usr/bin/xmllint", "--noout", "--relaxng",
                                     "/usr/share/libvirt/schemas/domaincaps.rng", file});
  EXPECT_EQ(result.exit_code, 0) << result.err << xml;
}

TEST(DomainCapabilities, DefaultsAreVirshs) {
  std::string xml = Render({});
  ExpectValid(xml);
  auto doc = ParseXml(xml);
  ASSERT_TRUE(doc) << doc.error();
  EXPECT_EQ(doc->Child("path")->text, "/usr/bin/qemu-system-x86_64");
  EXPECT_EQ(doc->Child("domain")->text, "kvm");  // kvm when the guest has it
  EXPECT_EQ(doc->Child("machine")->text, "pc-i440fx-7.2");
  EXPECT_EQ(doc->Child("arch")->text, "x86_64");
  EXPECT_EQ(*doc->Child("vcpu")->Attribute("max"), "255");
  std::vector<std::string> modes;
  for (const XmlElement* mode : doc->Child("cpu")->ChildrenNamed("mode"))
    modes.push_back(*mode->Attribute("name") + "=" + *mode->Attribute("supported"));
  EXPECT_EQ(modes, (std::vector<std::string>{"host-passthrough=yes", "maximum=yes",
                                             "host-model=yes", "custom=yes"}));
  EXPECT_NE(xml.find("<model usable='no' vendor='AMD'>EPYC-Milan</model>"), std::string::npos);
  EXPECT_NE(xml.find("<model usable='yes' vendor='unknown'>486</model>"), std::string::npos);
  EXPECT_NE(xml.find("<mode name='host-model' supported='yes'>\n"
                     "      <model fallback='forbid'>kvm64</model>\n"
                     "      <vendor>Intel</vendor>\n"
                     "      <feature policy='require' name='vme'/>\n"
                     "      <feature policy='disable' name='pni'/>\n"
                     "    </mode>"),
            std::string::npos)
      << xml;
}

TEST(DomainCapabilities, NoHostModelMeansTheModeIsNotSupported) {
  HostCapabilities caps = Host();
  caps.guests[0].cpu_modes[0].host_model.reset();
  auto xml = RenderDomainCapabilitiesXml(caps, {});
  ASSERT_TRUE(xml) << xml.error();
  ExpectValid(*xml);
  EXPECT_NE(xml->find("<mode name='host-model' supported='no'/>"), std::string::npos) << *xml;
}

TEST(DomainCapabilities, TcgHasNoPassthroughAndUnprobedUsability) {
  std::string xml = Render({"x86_64", "qemu", "pc", ""});
  ExpectValid(xml);
  EXPECT_NE(xml.find("<mode name='host-passthrough' supported='no'/>"), std::string::npos);
  // The alias is reported as the machine it stands for.
  EXPECT_NE(xml.find("<machine>pc-i440fx-7.2</machine>"), std::string::npos);
  // Models were probed under KVM only: under TCG their usability is not known, and
  // neither is a host-model.
  EXPECT_NE(xml.find("<model usable='unknown' vendor='unknown'>486</model>"), std::string::npos);
  EXPECT_NE(xml.find("<mode name='host-model' supported='no'/>"), std::string::npos);
  EXPECT_NE(Render({"", "", "pc-q35-7.2", ""}).find("<vcpu max='288'/>"), std::string::npos);
}

// nova and KubeVirt read features/sev/@supported; it is 'no' unless SEV is on and KVM is
// used, and left out (not guessed without QEMU's C-bit position) when SEV could work.
TEST(DomainCapabilities, SevIsNoUnlessItCouldWork) {
  const std::string kNo = "<features>\n    <sev supported='no'/>\n  </features>";
  EXPECT_NE(Render({"", "kvm", "", ""}).find(kNo), std::string::npos);
  HostCapabilities caps = Host();
  caps.secure_guests.push_back({"sev", true, true, ""});
  auto kvm = RenderDomainCapabilitiesXml(caps, {"", "kvm", "", ""});
  ASSERT_TRUE(kvm) << kvm.error();
  EXPECT_EQ(kvm->find("<sev"), std::string::npos) << *kvm;
  ExpectValid(*kvm);
  auto tcg = RenderDomainCapabilitiesXml(caps, {"", "qemu", "", ""});
  ASSERT_TRUE(tcg) << tcg.error();
  EXPECT_NE(tcg->find(kNo), std::string::npos) << *tcg;
  ExpectValid(*tcg);
  caps.secure_guests.back().enabled = false;  // in the CPU, switched off in kvm_amd
  auto off = RenderDomainCapabilitiesXml(caps, {"", "kvm", "", ""});
  ASSERT_TRUE(off) << off.error();
  EXPECT_NE(off->find(kNo), std::string::npos) << *off;
}

TEST(DomainCapabilities, UnknownChoicesAreErrorsSayingWhich) {
  HostCapabilities caps = Host();
  EXPECT_NE(RenderDomainCapabilitiesXml(caps, {"aarch64", "", "", ""}).error().find("aarch64"),
            std::string::npos);
  EXPECT_NE(RenderDomainCapabilitiesXml(caps, {"", "xen", "", ""}).error().find("'xen'"),
            std::string::npos);
  EXPECT_NE(RenderDomainCapabilitiesXml(caps, {"", "", "isapc", ""}).error().find("'isapc'"),
            std::string::npos);
  EXPECT_NE(RenderDomainCapabilitiesXml(caps, {"", "", "", "/opt/qemu"}).error().find("/opt/qemu"),
            std::string::npos);
}

TEST(DomainCapabilities, QueryStringsAreParsedStrictly) {
  auto query = ParseDomainCapabilitiesQuery(
      "arch=x86_64&virttype=kvm&machine=pc%2Dq35&emulator="
      "%2Fusr%2Fbin%2Fqemu-system-x86_64");
  ASSERT_TRUE(query) << query.error();
  EXPECT_EQ(query->arch, "x86_64");
  EXPECT_EQ(query->virttype, "kvm");
  EXPECT_EQ(query->machine, "pc-q35");
  EXPECT_EQ(query->emulator, "/usr/bin/qemu-system-x86_64");
  EXPECT_TRUE(ParseDomainCapabilitiesQuery(""));
  EXPECT_NE(ParseDomainCapabilitiesQuery("flavour=x").error().find("flavour"), std::string::npos);
  EXPECT_NE(ParseDomainCapabilitiesQuery("arch=a&arch=b").error().find("twice"), std::string::npos);
  EXPECT_FALSE(ParseDomainCapabilitiesQuery("arch=%zz"));
  EXPECT_FALSE(ParseDomainCapabilitiesQuery("arch=%4"));
  EXPECT_FALSE(ParseDomainCapabilitiesQuery("arch=%00"));
  EXPECT_FALSE(ParseDomainCapabilitiesQuery("arch=% 1"));
}

TEST(DomainCapabilities, RouteAnswers200400And404) {
  SnapshotStore store;
  HttpServer server(HttpServerOptions{}, store);
  EXPECT_EQ(server.Handle("GET", "/domcapabilities").status, 503);  // no snapshot yet
  store.Publish(MakeSnapshot(Host(), RefreshFacts{}));
  auto ok = server.Handle("GET", "/domcapabilities", "", "virttype=qemu");
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(ok.content_type, "application/xml");
  EXPECT_NE(ok.body.find("<domain>qemu</domain>"), std::string::npos);
  auto bad = server.Handle("GET", "/domcapabilities", "", "arch=%zz");
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.body.find("percent escape"), std::string::npos);
  auto missing = server.Handle("GET", "/domcapabilities", "", "arch=s390x");
  EXPECT_EQ(missing.status, 404);
  EXPECT_NE(missing.body.find("s390x"), std::string::npos);
  EXPECT_EQ(server.Handle("POST", "/domcapabilities").status, 405);
}

}  // namespace
}  // namespace virtcaps
