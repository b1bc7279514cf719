// libvirt's host-model in domain capabilities: QEMU's CPU model expansion turned into
// CPUID-like data and decoded against libvirt's CPU map (cpu_decode.cpp), from the QMP
// replies recorded on the build machine, and from small made-up maps for each rule.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "test_support.h"
#include "virtcaps/cpu_decode.h"
#include "virtcaps/cpu_map.h"
#include "virtcaps/cpu_vocabulary.h"
#include "virtcaps/files.h"
#include "virtcaps/qemu.h"
#include "virtcaps/renderers.h"
#include "virtcaps/xml.h"

namespace virtcaps {
namespace {

const std::string& MapDir() {
  static const std::string dir = testing::SourceDir() + "/tests/fixtures/cpu_map/libvirt-9.0";
  return dir;
}

// The recorded Debian QEMU 7.2 of the build machine, through qmp-replay.
Guest RecordedGuest() {
  std::string emulator = testing::FixtureHost("amd-epyc-pvm-guest") + "/usr/bin/qemu-system-x86_64";
  auto guest = ProbeQemuEmulator("/usr/bin/qemu-system-x86_64", emulator, QemuOptions{});
  EXPECT_TRUE(guest) << guest.error();
  return guest ? *guest : Guest{};
}

// libvirt's <mode name='host-model'> and custom models of a virsh domcapabilities file,
// one line per item, in its order.
std::vector<std::string> CpuLines(const XmlElement& domcaps) {
  std::vector<std::string> lines;
  for (const XmlElement* mode : domcaps.Child("cpu")->ChildrenNamed("mode")) {
    std::string name = *mode->Attribute("name");
    if (name == "host-model") {
      lines.push_back("host-model supported=" + *mode->Attribute("supported"));
      if (const XmlElement* model = mode->Child("model")) lines.push_back("model " + model->text);
      if (const XmlElement* vendor = mode->Child("vendor")) {
        lines.push_back("vendor " + vendor->text);
      }
      for (const XmlElement* feature : mode->ChildrenNamed("feature")) {
        lines.push_back(*feature->Attribute("policy") + " " + *feature->Attribute("name"));
      }
    } else if (name == "custom") {
      for (const XmlElement* model : mode->ChildrenNamed("model")) {
        lines.push_back(model->text + " usable=" + *model->Attribute("usable"));
      }
    }
  }
  return lines;
}

std::vector<std::string> CpuLinesOfFile(const std::string& path) {
  auto text = ReadFile(path);
  EXPECT_TRUE(text) << path;
  auto doc = ParseXml(text ? *text : "");
  EXPECT_TRUE(doc) << path;
  return doc ? CpuLines(*doc) : std::vector<std::string>{};
}

TEST(HostModel, QemuNamesBecomeLibvirtsNames) {
  EXPECT_EQ(LibvirtX86FeatureName("pclmulqdq"), "pclmuldq");
  EXPECT_EQ(LibvirtX86FeatureName("lahf-lm"), "lahf_lm");
  EXPECT_EQ(LibvirtX86FeatureName("tsc-adjust"), "tsc_adjust");
  EXPECT_EQ(LibvirtX86FeatureName("fxsr-opt"), "fxsr_opt");
  EXPECT_EQ(LibvirtX86FeatureName("cmp-legacy"), "cmp_legacy");
  EXPECT_EQ(LibvirtX86FeatureName("tsc-deadline"), "tsc-deadline");  // same in both
  EXPECT_EQ(LibvirtX86FeatureName("sse4.1"), "sse4.1");
  // Every libvirt map feature QEMU spells differently has its translation: after it,
  // each map name is either a QEMU property or one QEMU does not have at all.
  auto map = LoadX86CpuMap(MapDir());
  ASSERT_TRUE(map) << map.error();
  Guest guest = RecordedGuest();
  ASSERT_FALSE(guest.cpu_modes.empty());
  ASSERT_TRUE(guest.cpu_modes[0].expansion);
  std::set<std::string> translated;
  for (const CpuModelProperty& property : *guest.cpu_modes[0].expansion) {
    translated.insert(LibvirtX86FeatureName(property.name));
  }
  std::vector<std::string> unknown;
  for (const X86Feature& feature : map->features) {
    if (!translated.count(feature.name)) unknown.push_back(feature.name);
  }
  // Features QEMU 7.2 has no property for (libvirt ignores them for QEMU too).
  EXPECT_EQ(unknown, (std::vector<std::string>{"osxsave", "cmt", "ospke", "pconfig", "mbm_total",
                                               "mbm_local", "cvt16"}));
}

TEST(HostModel, TheProbeAsksBothExpansionsAndATcgSession) {
  Guest guest = RecordedGuest();
  ASSERT_EQ(guest.cpu_modes.size(), 2u);
  EXPECT_EQ(guest.cpu_modes[0].virttype, "kvm");
  EXPECT_EQ(guest.cpu_modes[1].virttype, "qemu");
  EXPECT_EQ(guest.qemu_version, "7.2.22");
  for (const GuestCpuModes& modes : guest.cpu_modes) {
    EXPECT_TRUE(modes.models_probed);
    ASSERT_TRUE(modes.expansion) << modes.virttype;
    EXPECT_GT(modes.expansion->size(), 300u);
  }
  // invtsc is enabled only with migratable=false: enabled, and marked not migratable.
  auto find = [&](const GuestCpuModes& modes, const std::string& name) {
    for (const CpuModelProperty& property : *modes.expansion) {
      if (property.name == name) return property;
    }
    ADD_FAILURE() << name;
    return CpuModelProperty{};
  };
  CpuModelProperty invtsc = find(guest.cpu_modes[0], "invtsc");
  EXPECT_TRUE(invtsc.enabled);
  EXPECT_FALSE(invtsc.migratable);
  CpuModelProperty vme = find(guest.cpu_modes[0], "vme");
  EXPECT_TRUE(vme.enabled);
  EXPECT_TRUE(vme.migratable);
  CpuModelProperty vendor = find(guest.cpu_modes[1], "vendor");
  EXPECT_EQ(vendor.kind, CpuModelProperty::Kind::kString);
  EXPECT_EQ(vendor.text, "AuthenticAMD");
  CpuModelProperty family = find(guest.cpu_modes[1], "family");
  EXPECT_EQ(family.kind, CpuModelProperty::Kind::kNumber);
  EXPECT_EQ(family.number, 15);
  // TCG's models are usable where KVM's are not (kvm64 is blocked under KVM here).
  auto usable = [](const GuestCpuModes& modes, const std::string& name) {
    for (const GuestCpuModel& model : modes.models) {
      if (model.name == name) return model.usable;
    }
    return false;
  };
  EXPECT_FALSE(usable(guest.cpu_modes[0], "kvm64"));
  EXPECT_TRUE(usable(guest.cpu_modes[1], "kvm64"));
}

// The recorded replies decode to what libvirt 9.0 printed on the same machine the same
// day, for kvm and for qemu: model, vendor, every feature and policy in order, and
// each named model's usable flag.
TEST(HostModel, RecordedReplyDecodesToLibvirtsAnswer) {
  HostCapabilities caps;
  caps.cpu.arch = "x86_64";
  caps.guests = LibvirtQemuGuests({RecordedGuest()}, "x86_64");
  ASSERT_TRUE(NameGuestCpuModels(MapDir(), caps.guests).ok());
  ASSERT_TRUE(DescribeGuestHostModels(MapDir(), "x86_64", caps.guests).ok());
  for (const char* virttype : {"kvm", "qemu"}) {
    auto xml = RenderDomainCapabilitiesXml(caps, {"x86_64", virttype, "", ""});
    ASSERT_TRUE(xml) << xml.error();
    auto doc = ParseXml(*xml);
    ASSERT_TRUE(doc);
    EXPECT_EQ(CpuLines(*doc),
              CpuLinesOfFile(testing::SourceDir() +
                             "/tests/fixtures/cpu_decode/pvm-guest-domcaps-" + virttype + ".xml"))
        << virttype;
  }
  // i686 is native on x86_64: the same host-models.
  ASSERT_EQ(caps.guests.size(), 2u);
  ASSERT_TRUE(caps.guests[1].CpuModesFor("qemu"));
  ASSERT_TRUE(caps.guests[1].CpuModesFor("qemu")->host_model);
  EXPECT_EQ(caps.guests[1].CpuModesFor("qemu")->host_model->model, "EPYC");
}

// libvirt expands statically only when QEMU's max-x86_64-cpu has unavailable-features
// (the recorded QEMU does); otherwise (qemu-system-i386, old QEMUs) fully, and then
// MSR features stay out of the host-model.
TEST(HostModel, FullExpansionsWhenQemuLacksCanonicalNamesAndThenNoMsrFeatures) {
  Guest recorded = RecordedGuest();
  ASSERT_FALSE(recorded.cpu_modes.empty());
  EXPECT_EQ(recorded.cpu_modes[0].expansion_type, "static");

  // The same replies without the qom-list-properties answer: a full expansion is
  // asked for, which the recording does not hold (so none is known).
  std::string dir = testing::TempDir();
  std::filesystem::copy(
      testing::FixtureHost("amd-epyc-pvm-guest") + "/usr/bin", dir + "/bin",
      std::filesystem::copy_options::recursive | std::filesystem::copy_options::copy_symlinks);
  std::filesystem::remove(dir + "/bin/qemu-system-x86_64");
  std::filesystem::create_symlink(testing::SourceDir() + "/tests/fixtures/emulators/qmp-replay",
                                  dir + "/bin/qemu-system-x86_64");
  ASSERT_TRUE(std::filesystem::remove(
      dir + "/bin/qemu-system-x86_64.qmp/qom-list-properties@typenamemaxx8664cpu.json"));
  auto old = ProbeQemuEmulator("/usr/bin/qemu-system-x86_64", dir + "/bin/qemu-system-x86_64",
                               QemuOptions{});
  ASSERT_TRUE(old) << old.error();
  ASSERT_FALSE(old->cpu_modes.empty());
  EXPECT_EQ(old->cpu_modes[0].expansion_type, "full");
  EXPECT_FALSE(old->cpu_modes[0].expansion);

  auto features = [&](const std::string& type) {
    std::vector<Guest> guests{recorded};
    guests[0].cpu_modes[0].expansion_type = type;
    EXPECT_TRUE(NameGuestCpuModels(MapDir(), guests).ok());
    EXPECT_TRUE(DescribeGuestHostModels(MapDir(), "x86_64", guests).ok());
    std::set<std::string> names;
    for (const CpuFeaturePolicy& feature : guests[0].cpu_modes[0].host_model->features) {
      names.insert(feature.name);
    }
    return names;
  };
  std::set<std::string> all = features("static"), full = features("full");
  EXPECT_TRUE(all.count("rdctl-no"));  // IA32_ARCH_CAPABILITIES bits: MSR features
  EXPECT_FALSE(full.count("rdctl-no"));
  EXPECT_FALSE(full.count("taa-no"));
  EXPECT_TRUE(full.count("arch-capabilities"));  // a CPUID bit, kept
  EXPECT_EQ(all.size() - full.size(), 6u);       // rdctl-no rsba skip-l1dfl-vmentry mds-no
                                                 // pschange-mc-no taa-no
}

// Issue 13: the host-model decode is remembered under its inputs. Decoding the same
// guest again gives the same answer; a changed expansion, a model no longer offered or
// a changed expansion type each give that input's own answer, not the remembered one.
TEST(HostModel, RememberedDecodeFollowsEachInput) {
  Guest recorded = RecordedGuest();
  ASSERT_FALSE(recorded.cpu_modes.empty());
  ASSERT_TRUE(recorded.cpu_modes[0].expansion);
  auto decode = [](Guest guest) {
    std::vector<Guest> guests{std::move(guest)};
    EXPECT_TRUE(NameGuestCpuModels(MapDir(), guests).ok());
    EXPECT_TRUE(DescribeGuestHostModels(MapDir(), "x86_64", guests).ok());
    return guests[0].cpu_modes[0].host_model.value_or(GuestHostModel{});
  };
  GuestHostModel first = decode(recorded);
  ASSERT_FALSE(first.model.empty());
  EXPECT_EQ(decode(recorded), first);
  // The expansion without one feature the host-model requires: that feature is no
  // longer required.
  auto required = std::find_if(first.features.begin(), first.features.end(),
                               [](const CpuFeaturePolicy& f) { return f.policy == "require"; });
  ASSERT_NE(required, first.features.end());
  Guest fewer = recorded;
  bool dropped = false;
  for (CpuModelProperty& property : *fewer.cpu_modes[0].expansion) {
    if (LibvirtX86FeatureName(property.name) == required->name) {
      property.enabled = false;
      dropped = true;
    }
  }
  ASSERT_TRUE(dropped) << required->name;
  GuestHostModel without = decode(fewer);
  EXPECT_EQ(std::count(without.features.begin(), without.features.end(), *required), 0);
  // The chosen model no longer offered: another model.
  Guest unoffered = recorded;
  auto& models = unoffered.cpu_modes[0].models;
  models.erase(std::remove_if(models.begin(), models.end(),
                              [&](const GuestCpuModel& m) { return m.name == first.model; }),
               models.end());
  EXPECT_NE(decode(unoffered).model, first.model);
  // And the first inputs once more: the first answer.
  EXPECT_EQ(decode(recorded), first);
}

// A made-up map: vendors, a few features on leaf 1 EDX, and models built from them.
X86CpuMap SmallMap() {
  X86CpuMap map;
  map.vendors = {{"Intel", "GenuineIntel"}, {"AMD", "AuthenticAMD"}};
  const char* names[] = {"fpu", "vme", "de", "pse", "tsc", "msr", "pae", "mce", "cx8"};
  for (uint32_t bit = 0; bit < 9; ++bit) {
    X86Feature feature;
    feature.name = names[bit];
    feature.data.cpuid[{1, 0}].edx = 1u << bit;
    map.features.push_back(feature);
  }
  auto model = [&](const std::string& name, const std::string& vendor,
                   std::vector<std::string> features) {
    X86Model result;
    result.name = name;
    result.vendor = vendor;
    for (const std::string& feature : features) result.data.Add(map.FindFeature(feature)->data);
    return result;
  };
  map.models.push_back(model("old", "", {"fpu", "vme"}));
  map.models.push_back(model("intel-a", "Intel", {"fpu", "vme", "de", "pse"}));
  map.models.push_back(model("amd-a", "AMD", {"fpu", "vme", "de", "pse", "tsc"}));
  map.models.push_back(model("intel-b", "Intel", {"fpu", "vme", "de", "pse", "tsc", "msr"}));
  return map;
}

std::vector<CpuModelProperty> Expansion(const std::string& vendor,
                                        std::vector<std::string> enabled) {
  std::vector<CpuModelProperty> expansion;
  CpuModelProperty text;
  text.name = "vendor";
  text.kind = CpuModelProperty::Kind::kString;
  text.text = vendor;
  expansion.push_back(text);
  for (const std::string& name : enabled) {
    CpuModelProperty property;
    property.name = name;
    property.enabled = true;
    expansion.push_back(property);
  }
  CpuModelProperty off;
  off.name = "cx8";
  expansion.push_back(off);  // disabled features add nothing
  return expansion;
}

std::string Describe(const Expected<GuestHostModel>& decoded) {
  if (!decoded) return "error: " + decoded.error();
  std::string text = decoded->model + "/" + decoded->vendor;
  for (const CpuFeaturePolicy& feature : decoded->features) {
    text += " " + std::string(feature.policy == "require" ? "+" : "-") + feature.name;
  }
  return text;
}

std::vector<HypervisorCpuModel> Offer(std::vector<std::string> names) {
  std::vector<HypervisorCpuModel> models;
  for (std::string& name : names) models.push_back({std::move(name), {}});
  return models;
}

TEST(HostModel, FewestFeaturesWinAmongTheVendorsModelsTheHypervisorOffers) {
  X86CpuMap map = SmallMap();
  X86Data data = X86DataFromExpansion(
      map, Expansion("GenuineIntel", {"fpu", "vme", "de", "pse", "tsc", "mce"}), false);
  // intel-b: +mce -msr (2); intel-a: +tsc +mce (2, older: the newer stays); amd-a is
  // another vendor's; old: +de +pse +tsc +mce (4).
  EXPECT_EQ(
      Describe(DecodeX86HypervisorCpu(map, data, Offer({"old", "intel-a", "amd-a", "intel-b"}))),
      "intel-b/Intel +mce -msr");
  // A model the hypervisor does not offer is never the answer.
  EXPECT_EQ(Describe(DecodeX86HypervisorCpu(map, data, Offer({"old", "intel-a", "amd-a"}))),
            "intel-a/Intel +tsc +mce");
  EXPECT_EQ(Describe(DecodeX86HypervisorCpu(map, data, Offer({}))).substr(0, 6), "error:");
  // A model the map lets decode hosts only is skipped for guests.
  map.models[3].decode_guest = false;
  EXPECT_EQ(Describe(DecodeX86HypervisorCpu(map, data, Offer({"old", "intel-a", "intel-b"}))),
            "intel-a/Intel +tsc +mce");
}

TEST(HostModel, BlockersAreDisabledUnlessTheDataProvidesThemBeyondTheModel) {
  X86CpuMap map = SmallMap();
  X86Data data = X86DataFromExpansion(
      map, Expansion("GenuineIntel", {"fpu", "vme", "de", "pse", "tsc", "msr", "mce"}), false);
  std::vector<HypervisorCpuModel> offered = {{"intel-b", {"de", "mce", "nosuchfeature"}}};
  // de is the model's own: blocked, so disabled although the data has it; mce is in
  // the data beyond the model: required, not disabled; unknown names are ignored.
  EXPECT_EQ(Describe(DecodeX86HypervisorCpu(map, data, offered)), "intel-b/Intel +mce -de");
}

TEST(HostModel, RemovedFeaturesPresentAreRequired) {
  X86CpuMap map = SmallMap();
  // amd-a: QEMU dropped tsc from it; the map keeps the name, not the bits.
  map.models[2].data.Subtract(map.FindFeature("tsc")->data);
  map.models[2].removed_features = {"tsc"};
  X86Data data = X86DataFromExpansion(
      map, Expansion("AuthenticAMD", {"fpu", "vme", "de", "pse", "tsc"}), false);
  EXPECT_EQ(Describe(DecodeX86HypervisorCpu(map, data, Offer({"amd-a"}))), "amd-a/AMD +tsc");
  X86Data without =
      X86DataFromExpansion(map, Expansion("AuthenticAMD", {"fpu", "vme", "de", "pse"}), false);
  EXPECT_EQ(Describe(DecodeX86HypervisorCpu(map, without, Offer({"amd-a"}))), "amd-a/AMD -tsc");
}

// libvirt disables a removed feature the data lacks after the decoded features, not in
// map order (libvirt 9.0 on Icelake-Server hosts lists intel-pt last), and only once.
TEST(HostModel, AbsentRemovedFeaturesAreDisabledLastInTheModelsOrder) {
  X86CpuMap map = SmallMap();
  // amd-a without vme and de (QEMU dropped them); the map keeps the names.
  map.models[2].data.Subtract(map.FindFeature("vme")->data);
  map.models[2].data.Subtract(map.FindFeature("de")->data);
  map.models[2].removed_features = {"de", "vme"};
  X86Data data = X86DataFromExpansion(map, Expansion("AuthenticAMD", {"fpu", "pse", "mce"}), false);
  EXPECT_EQ(Describe(DecodeX86HypervisorCpu(map, data, Offer({"amd-a"}))),
            "amd-a/AMD +mce -tsc -de -vme");
  // A removed feature QEMU blocks is disabled once, where the blockers are.
  std::vector<HypervisorCpuModel> offered = {{"amd-a", {"vme"}}};
  EXPECT_EQ(Describe(DecodeX86HypervisorCpu(map, data, offered)), "amd-a/AMD +mce -vme -tsc -de");
}

TEST(HostModel, AMatchingSignatureBeatsFewerFeatures) {
  X86CpuMap map = SmallMap();
  map.models[1].signatures = {{6, 85, std::nullopt}};  // intel-a
  std::vector<CpuModelProperty> expansion =
      Expansion("GenuineIntel", {"fpu", "vme", "de", "pse", "tsc", "msr"});
  for (auto [name, value] : {std::pair{"family", 6}, {"model", 85}, {"stepping", 4}}) {
    CpuModelProperty number;
    number.name = name;
    number.kind = CpuModelProperty::Kind::kNumber;
    number.number = value;
    expansion.push_back(number);
  }
  X86Data data = X86DataFromExpansion(map, expansion, false);
  EXPECT_EQ((data.cpuid[{1, 0}].eax) & 0x0fff3fff, 0x00050654u);  // family 6, model 0x55, 4
  EXPECT_EQ(Describe(DecodeX86HypervisorCpu(map, data, Offer({"intel-a", "intel-b"}))),
            "intel-a/Intel +tsc +msr");
}

TEST(HostModel, NonMigratableFeaturesCanBeLeftOut) {
  X86CpuMap map = SmallMap();
  std::vector<CpuModelProperty> expansion = Expansion("GenuineIntel", {"fpu", "vme", "de"});
  expansion[2].migratable = false;  // vme
  X86Data all = X86DataFromExpansion(map, expansion, false);
  X86Data migratable = X86DataFromExpansion(map, expansion, true);
  EXPECT_EQ((all.cpuid[{1, 0}].edx) & 0x1ff, 0x7u);
  EXPECT_EQ((migratable.cpuid[{1, 0}].edx) & 0x1ff, 0x5u);
}

// An emulator that answers query-cpu-definitions but not query-cpu-model-expansion:
// its guest and named models stand, and there is no host-model (supported='no').
TEST(HostModel, AnEmulatorWithoutExpansionKeepsItsGuestWithoutHostModel) {
  std::string fake = testing::TempDir() + "/cpus-emulator";
  std::filesystem::copy_file(testing::SourceDir() + "/tests/fixtures/emulators/fake-qmp", fake);
  std::filesystem::permissions(fake, std::filesystem::perms::owner_all);
  auto guest = ProbeQemuEmulator(fake, fake, QemuOptions{});
  ASSERT_TRUE(guest) << guest.error();
  ASSERT_EQ(guest->cpu_modes.size(), 1u);
  EXPECT_FALSE(guest->cpu_modes[0].expansion);
  EXPECT_EQ(guest->qemu_version, "");  // the fake has no query-version either
  HostCapabilities caps;
  caps.cpu.arch = "x86_64";
  caps.guests = {*guest};
  EXPECT_TRUE(DescribeGuestHostModels(MapDir(), "x86_64", caps.guests).ok());
  auto xml = RenderDomainCapabilitiesXml(caps, {});
  ASSERT_TRUE(xml) << xml.error();
  EXPECT_NE(xml->find("<mode name='host-model' supported='no'/>"), std::string::npos) << *xml;
  EXPECT_NE(xml->find(">beta</model>"), std::string::npos) << *xml;
}

TEST(HostModel, ExpansionAndVersionSurviveTheCache) {
  Guest guest = RecordedGuest();
  std::string dir = testing::TempDir();
  std::string file = dir + "/stand-in";
  testing::WriteTestFile(file, "x");
  auto identity = StatQemuBinary(file);
  ASSERT_TRUE(identity) << identity.error();
  QemuHostFacts facts;
  ASSERT_TRUE(WriteQemuCache(dir + "/cache", guest.emulator, *identity, facts, guest));
  auto cached = ReadQemuCache(dir + "/cache", guest.emulator, *identity, facts);
  ASSERT_TRUE(cached);
  EXPECT_EQ(cached->qemu_version, "7.2.22");
  ASSERT_EQ(cached->cpu_modes.size(), guest.cpu_modes.size());
  for (size_t i = 0; i < guest.cpu_modes.size(); ++i) {
    const GuestCpuModes& a = guest.cpu_modes[i];
    const GuestCpuModes& b = cached->cpu_modes[i];
    EXPECT_EQ(a.virttype, b.virttype);
    EXPECT_EQ(a.models.size(), b.models.size());
    ASSERT_TRUE(b.expansion);
    ASSERT_EQ(a.expansion->size(), b.expansion->size());
    for (size_t j = 0; j < a.expansion->size(); ++j) {
      const CpuModelProperty& x = (*a.expansion)[j];
      const CpuModelProperty& y = (*b.expansion)[j];
      EXPECT_EQ(x.name + std::to_string(static_cast<int>(x.kind)) + (x.enabled ? "1" : "0") +
                    std::to_string(x.number) + x.text + (x.migratable ? "m" : "-"),
                y.name + std::to_string(static_cast<int>(y.kind)) + (y.enabled ? "1" : "0") +
                    std::to_string(y.number) + y.text + (y.migratable ? "m" : "-"));
    }
  }
}

}  // namespace
}  // namespace virtcaps
