// The domain capabilities' <iothreads>, <memoryBacking>, <devices> and <features>:
// what the prober keeps of the recorded Debian QEMU 7.2 (qmp-replay), libvirt's
// mapping of those facts per machine type (domain_devices.cpp), the cache, and
// emulators that refuse or garble the new commands.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "test_support.h"
#include "virtcaps/domain_devices.h"
#include "virtcaps/files.h"
#include "virtcaps/qemu.h"
#include "virtcaps/renderers.h"
#include "virtcaps/xml.h"

namespace virtcaps {
namespace {

// A copy of the recorded emulator, so a test can remove or change replies.
std::string CopyRecorded() {
  std::string dir = testing::TempDir();
  std::filesystem::copy(
      testing::FixtureHost("amd-epyc-pvm-guest") + "/usr/bin", dir + "/bin",
      std::filesystem::copy_options::recursive | std::filesystem::copy_options::copy_symlinks);
  std::filesystem::remove(dir + "/bin/qemu-system-x86_64");
  std::filesystem::create_symlink(testing::SourceDir() + "/tests/fixtures/emulators/qmp-replay",
                                  dir + "/bin/qemu-system-x86_64");
  return dir + "/bin/qemu-system-x86_64";
}

Guest Probe(const std::string& exec_path) {
  auto guest = ProbeQemuEmulator("/usr/bin/qemu-system-x86_64", exec_path, QemuOptions{});
  EXPECT_TRUE(guest) << guest.error();
  return guest ? *guest : Guest{};
}

// A host like the recorded one: no IOMMU in use, no /dev/vfio/vfio, no swtpm.
HostCapabilities HostWith(Guest guest) {
  HostCapabilities caps;
  caps.cpu.arch = "x86_64";
  caps.iommu = IommuState{};
  caps.facilities = HostFacilities{};
  caps.facilities->devices.push_back({"/dev/vfio/vfio", false});
  if (guest.device_facts) guest.device_facts->swtpm = false;
  caps.guests.push_back(std::move(guest));
  return caps;
}

std::string Render(const HostCapabilities& caps, const std::string& virttype,
                   const std::string& machine = "") {
  DomainCapabilitiesQuery query;
  query.virttype = virttype;
  query.machine = machine;
  auto xml = RenderDomainCapabilitiesXml(caps, query);
  EXPECT_TRUE(xml) << xml.error();
  return xml ? *xml : "";
}

// The values of <devices>/<ELEMENT>/<enum name=NAME>.
std::vector<std::string> EnumValues(const std::string& document, const std::string& element,
                                    const std::string& name) {
  auto doc = ParseXml(document);
  EXPECT_TRUE(doc) << doc.error();
  std::vector<std::string> values;
  const XmlElement* devices = doc ? doc->Child("devices") : nullptr;
  const XmlElement* item = devices ? devices->Child(element) : nullptr;
  if (item == nullptr) return {"<" + element + "> absent"};
  for (const XmlElement* entry : item->ChildrenNamed("enum")) {
    if (*entry->Attribute("name") != name) continue;
    for (const XmlElement* value : entry->ChildrenNamed("value")) values.push_back(value->text);
  }
  return values;
}

// The four subtrees after <cpu>, serialized, for comparing two documents.
std::string AfterCpu(const std::string& document) {
  auto doc = ParseXml(document);
  EXPECT_TRUE(doc) << doc.error();
  std::string out;
  for (const char* name : {"iothreads", "memoryBacking", "devices", "features"}) {
    const XmlElement* element = doc ? doc->Child(name) : nullptr;
    out += element ? WriteXml(*element) : std::string("no <") + name + ">\n";
  }
  return out;
}

void ExpectSchemaValid(const std::string& document) {
  std::string file = testing::TempDir() + "/domcaps.xml";
  testing::WriteTestFile(file, document);
  auto valid = testing::RunProcess({"/usr/bin/xmllint", "--noout", "--relaxng",
                                    "/usr/share/libvirt/schemas/domaincaps.rng", file});
  EXPECT_EQ(valid.exit_code, 0) << valid.err << document;
}

TEST(DomainDevices, RecordedQemuKeepsOnlyLibvirtsFacts) {
  Guest guest = Probe(CopyRecorded());
  ASSERT_TRUE(guest.device_facts);
  const GuestDeviceFacts& facts = *guest.device_facts;
  EXPECT_EQ(facts.answered,
            (SharedVector<std::string>{"command-line-options", "hyperv", "qom-list-types",
                                       "query-qmp-schema", "query-sgx-capabilities",
                                       "query-tpm-models", "query-tpm-types"}));
  for (const char* fact :
       {"type:VGA", "type:usb-storage", "type:ich9-ahci", "type:iothread", "type:sgx-epc",
        "command:query-vnc", "command:blockdev-reopen", "schema:display-sdl",
        "schema:display-egl-headless", "schema:display-dbus", "schema:block-bitmap-mapping",
        "option:spice", "tpm-model:tpm-tis", "tpm-model:tpm-crb", "tpm-type:passthrough",
        "tpm-type:emulator"}) {
    EXPECT_TRUE(facts.Has(fact)) << fact;
  }
  // KVM here has no SGX (query-sgx-capabilities is an error, not recorded).
  EXPECT_FALSE(facts.Has("sgx"));
  // Bounded: only names from the agent's tables, not QEMU's ~700 types.
  EXPECT_LT(facts.found.size(), 80u);
  EXPECT_EQ(facts.hyperv, (SharedVector<std::string>{"spinlocks", "vendor_id"}));
}

TEST(DomainDevices, RecordedHostMatchesLibvirtOnTheBuildMachine) {
  // libvirt 9.0's answer recorded on the machine the replies come from.
  HostCapabilities caps = HostWith(Probe(CopyRecorded()));
  auto theirs =
      ReadFile(testing::SourceDir() + "/tests/fixtures/cpu_decode/build-machine-domcaps-kvm.xml");
  ASSERT_TRUE(theirs);
  std::string ours = Render(caps, "kvm");
  EXPECT_EQ(AfterCpu(ours), AfterCpu(*theirs));
  ExpectSchemaValid(ours);
  // The same devices and features for the qemu virt type (libvirt probes them once).
  EXPECT_EQ(AfterCpu(Render(caps, "qemu", "pc-i440fx-7.2")), AfterCpu(ours));
}

TEST(DomainDevices, MachineTypeDecidesIdeAndFloppy) {
  HostCapabilities caps = HostWith(Probe(CopyRecorded()));
  EXPECT_EQ(EnumValues(Render(caps, "kvm", "pc"), "disk", "bus"),
            (std::vector<std::string>{"ide", "fdc", "scsi", "virtio", "usb", "sata"}));
  EXPECT_EQ(EnumValues(Render(caps, "kvm", "q35"), "disk", "bus"),
            (std::vector<std::string>{"fdc", "scsi", "virtio", "usb", "sata"}));
  EXPECT_TRUE(MachineHasBuiltinIde("pc-i440fx-7.2", "x86_64"));
  EXPECT_TRUE(MachineHasBuiltinIde("pc-1.3", "i686"));
  EXPECT_FALSE(MachineHasBuiltinIde("pc-q35-7.2", "x86_64"));
  EXPECT_FALSE(MachineHasBuiltinIde("pc-i440fx-7.2", "aarch64"));
  EXPECT_TRUE(MachineHasBuiltinIde("g3beige", "ppc"));

  // pseries: no floppy and no fdc.
  Guest ppc = Probe(CopyRecorded());
  GuestDeviceFacts facts = *ppc.device_facts;
  facts.swtpm = false;
  ppc.arch = "ppc64le";
  ppc.device_facts = facts;
  HostCapabilities host = HostWith(ppc);
  DomainDeviceCaps pseries = LibvirtDomainDeviceCaps(ppc, "ppc64le", "pseries-7.2", "qemu", host);
  ASSERT_FALSE(pseries.devices.empty());
  const DomainCapsElement& disk = pseries.devices.front();
  ASSERT_EQ(disk.name, "disk");
  EXPECT_EQ(disk.enums[0].values, (std::vector<std::string>{"disk", "cdrom", "lun"}));
  EXPECT_EQ(disk.enums[1].values, (std::vector<std::string>{"scsi", "virtio", "usb", "sata"}));
  // Arm's virt machine has a GIC whose versions are not probed: <gic> is left out.
  DomainDeviceCaps virt = LibvirtDomainDeviceCaps(ppc, "aarch64", "virt-7.2", "kvm", host);
  for (const DomainCapsElement& feature : virt.features_before_sev) {
    EXPECT_NE(feature.name, "gic");
  }
}

TEST(DomainDevices, HostDecidesVfioAndTheTpmEmulator) {
  Guest guest = Probe(CopyRecorded());
  HostCapabilities caps = HostWith(guest);
  EXPECT_TRUE(EnumValues(Render(caps, "kvm"), "hostdev", "pciBackend").empty());
  caps.iommu->kernel_enabled = true;
  caps.facilities->devices[0].second = true;
  EXPECT_EQ(EnumValues(Render(caps, "kvm"), "hostdev", "pciBackend"),
            (std::vector<std::string>{"default", "vfio"}));
  // Unknown host (no facilities collected): hostdev is left out, not guessed.
  caps.facilities.reset();
  EXPECT_EQ(EnumValues(Render(caps, "kvm"), "hostdev", "pciBackend"),
            (std::vector<std::string>{"<hostdev> absent"}));
  // swtpm installed: libvirt would add the emulator with its TPM versions (asked of
  // swtpm_setup, not probed), so <tpm> is left out; not known: left out too.
  caps = HostWith(guest);
  EXPECT_EQ(EnumValues(Render(caps, "kvm"), "tpm", "backendModel"),
            (std::vector<std::string>{"passthrough"}));
  caps.guests[0].device_facts->swtpm = true;
  EXPECT_EQ(EnumValues(Render(caps, "kvm"), "tpm", "model"),
            (std::vector<std::string>{"<tpm> absent"}));
  caps.guests[0].device_facts->swtpm.reset();
  EXPECT_EQ(EnumValues(Render(caps, "kvm"), "tpm", "model"),
            (std::vector<std::string>{"<tpm> absent"}));
}

TEST(DomainDevices, AnErrorToQomListTypesStillYieldsTheGuestAndAValidDocument) {
  std::string emulator = CopyRecorded();
  // qmp-replay answers CommandNotFound for a command without a recording.
  ASSERT_TRUE(std::filesystem::remove(emulator + ".qmp/qom-list-types.json"));
  Guest guest = Probe(emulator);
  ASSERT_TRUE(guest.device_facts);
  EXPECT_FALSE(guest.device_facts->Answered("qom-list-types"));
  EXPECT_TRUE(guest.device_facts->Answered("query-qmp-schema"));
  EXPECT_FALSE(guest.machines.empty());
  std::string document = Render(HostWith(guest), "kvm");
  ExpectSchemaValid(document);
  // What the types decide is left out; what the other probes decide is still said.
  EXPECT_EQ(document.find("<memoryBacking"), std::string::npos);
  EXPECT_EQ(document.find("<disk"), std::string::npos);
  EXPECT_EQ(document.find("<video"), std::string::npos);
  EXPECT_EQ(document.find("<vmcoreinfo"), std::string::npos);
  EXPECT_EQ(EnumValues(document, "graphics", "type"),
            (std::vector<std::string>{"sdl", "vnc", "spice", "egl-headless", "dbus"}));
  EXPECT_NE(document.find("<backup supported='yes'/>"), std::string::npos);
  EXPECT_NE(document.find("<sev supported='no'/>"), std::string::npos);
}

TEST(DomainDevices, GarbledOrRefusedRepliesLeaveOnlyTheirElementsOut) {
  std::string emulator = CopyRecorded();
  // A schema that is not a list, a type list of non-objects, no TPM commands.
  testing::WriteTestFile(emulator + ".qmp/query-qmp-schema.json", "{\"not\": \"a list\"}\n");
  testing::WriteTestFile(emulator + ".qmp/qom-list-types.json", "[1, \"VGA\", null]\n");
  ASSERT_TRUE(std::filesystem::remove(emulator + ".qmp/query-tpm-models.json"));
  Guest guest = Probe(emulator);
  ASSERT_TRUE(guest.device_facts);
  EXPECT_FALSE(guest.device_facts->Answered("query-qmp-schema"));
  EXPECT_FALSE(guest.device_facts->Answered("query-tpm-models"));
  EXPECT_FALSE(guest.device_facts->Answered("query-tpm-types"));  // asked only after models
  // The list answered, and it names none of the types libvirt wants.
  EXPECT_TRUE(guest.device_facts->Answered("qom-list-types"));
  std::string document = Render(HostWith(guest), "kvm");
  ExpectSchemaValid(document);
  EXPECT_EQ(document.find("<graphics"), std::string::npos);
  EXPECT_EQ(document.find("<backup"), std::string::npos);
  EXPECT_EQ(document.find("<tpm"), std::string::npos);
  EXPECT_EQ(EnumValues(document, "video", "modelType"), (std::vector<std::string>{"none"}));
  EXPECT_NE(document.find("<redirdev supported='no'/>"), std::string::npos);
  EXPECT_NE(document.find("<iothreads supported='no'/>"), std::string::npos);
}

TEST(DomainDevices, TheCacheKeepsTheFactsButNotTheHostsSwtpm) {
  Guest guest = Probe(CopyRecorded());
  ASSERT_TRUE(guest.device_facts);
  guest.device_facts->swtpm = true;
  std::string cache = testing::TempDir() + "/cache";
  QemuBinaryIdentity binary{1, 2, 3, 4, 5};
  QemuHostFacts facts;
  ASSERT_TRUE(WriteQemuCache(cache, guest.emulator, binary, facts, guest));
  auto cached = ReadQemuCache(cache, guest.emulator, binary, facts);
  ASSERT_TRUE(cached);
  ASSERT_TRUE(cached->device_facts);
  EXPECT_EQ(cached->device_facts->answered, guest.device_facts->answered);
  EXPECT_EQ(cached->device_facts->found, guest.device_facts->found);
  EXPECT_EQ(cached->device_facts->hyperv, guest.device_facts->hyperv);
  EXPECT_FALSE(cached->device_facts->swtpm.has_value());
}

}  // namespace
}  // namespace virtcaps
