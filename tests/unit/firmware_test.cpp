// QEMU firmware descriptors: reading them as libvirt 9.0 finds them (override by name,
// masking, only regular files, bad files skipped), libvirt's matching rules, and the
// <os> of the domain capabilities against what libvirt 9.0 printed for the same files
// (tests/fixtures/firmware/README.md).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>

#include "test_support.h"
#include "virtcaps/files.h"
#include "virtcaps/firmware.h"
#include "virtcaps/renderers.h"

namespace virtcaps {
namespace {

std::string FirmwareFixture(const std::string& name) {
  return testing::SourceDir() + "/tests/fixtures/firmware/" + name;
}

HostPaths Root(const std::string& rootfs) {
  HostPaths paths;
  paths.rootfs = rootfs;
  return paths;
}

std::vector<std::string> Paths(const QemuFirmware& firmware) {
  std::vector<std::string> paths;
  for (const FirmwareDescriptor& descriptor : firmware.descriptors)
    paths.push_back(descriptor.path);
  return paths;
}

// A copy of the broken fixture plus what git cannot hold: a FIFO (that would block a
// plain open) and a descriptor over the 1 MiB cap.
std::string BrokenRootWithFifoAndOversized() {
  std::string root = testing::TempDir() + "/broken";
  std::filesystem::copy(FirmwareFixture("broken"), root, std::filesystem::copy_options::recursive);
  EXPECT_EQ(::mkfifo((root + "/usr/share/qemu/firmware/35-fifo.json").c_str(), 0644), 0);
  // A FIFO in /etc does not override the regular file of the same name below it.
  EXPECT_EQ(::mkfifo((root + "/etc/qemu/firmware/50-edk2-x86_64-secure.json").c_str(), 0644), 0);
  testing::WriteTestFile(
      root + "/usr/share/qemu/firmware/80-oversized.json",
      "{\"description\": \"" + std::string(kMaxFirmwareDescriptorBytes, 'x') + "\"}");
  return root;
}

TEST(FirmwareGlobTest, MatchesAsGlibPatternMatchSimple) {
  EXPECT_TRUE(FirmwareGlobMatch("pc-q35-*", "pc-q35-7.2"));
  EXPECT_TRUE(FirmwareGlobMatch("pc-q35-*", "pc-q35-"));
  EXPECT_FALSE(FirmwareGlobMatch("pc-q35-*", "pc-i440fx-7.2"));
  EXPECT_FALSE(FirmwareGlobMatch("pc-q35-*", "q35"));  // aliases are matched by the real name
  EXPECT_TRUE(FirmwareGlobMatch("pc-*-7.?", "pc-q35-7.2"));
  EXPECT_FALSE(FirmwareGlobMatch("pc-*-7.?", "pc-q35-7.10"));
  EXPECT_TRUE(FirmwareGlobMatch("*", ""));
  EXPECT_TRUE(FirmwareGlobMatch("virt", "virt"));
  EXPECT_FALSE(FirmwareGlobMatch("virt", "virt-7.2"));
  EXPECT_TRUE(FirmwareGlobMatch("*-*-7.2", "pc-i440fx-7.2"));
  EXPECT_FALSE(FirmwareGlobMatch("[pq]c-*", "pc-q35-7.2"));  // no bracket classes in GLib's
}

TEST(FirmwareParseTest, ReadsDebiansOvmfDescriptor) {
  std::string path = "/usr/share/qemu/firmware/50-edk2-x86_64-secure.json";
  auto text = ReadFile(FirmwareFixture("debian-ovmf") + path);
  ASSERT_TRUE(text) << text.error();
  auto descriptor = ParseFirmwareDescriptor(*text, path);
  ASSERT_TRUE(descriptor) << descriptor.error();
  EXPECT_EQ(descriptor->path, path);
  EXPECT_EQ(descriptor->interfaces, std::vector<std::string>({"uefi"}));
  EXPECT_EQ(descriptor->device, "flash");
  EXPECT_EQ(descriptor->flash_mode, "split");
  EXPECT_EQ(descriptor->executable, "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd");
  EXPECT_EQ(descriptor->nvram_template, "/usr/share/OVMF/OVMF_VARS_4M.fd");
  ASSERT_EQ(descriptor->targets.size(), 1u);
  EXPECT_EQ(descriptor->targets[0].arch, "x86_64");
  EXPECT_EQ(descriptor->targets[0].machines, std::vector<std::string>({"pc-q35-*"}));
  EXPECT_EQ(descriptor->features, std::vector<std::string>({"acpi-s3", "amd-sev", "requires-smm",
                                                            "secure-boot", "verbose-dynamic"}));
}

TEST(FirmwareParseTest, RefusesWhatLibvirtRefusesAndNamesIt) {
  auto error = [](const std::string& json) {
    auto parsed = ParseFirmwareDescriptor(json, "/etc/qemu/firmware/x.json");
    return parsed ? std::string("parsed") : parsed.error();
  };
  std::string mapping =
      R"("mapping": {"device": "memory", "filename": "/bios.bin"}, )"
      R"("targets": [{"architecture": "i386", "machines": ["pc-*"]}], "features": [])";
  EXPECT_EQ(error(R"({"interface-types": ["bios"], )" + mapping + "}"), "parsed");
  EXPECT_NE(error("{").find("/etc/qemu/firmware/x.json: not JSON: offset"), std::string::npos);
  EXPECT_NE(error("[]").find("not a JSON object"), std::string::npos);
  EXPECT_NE(error(R"({"interface-types": ["coreboot"], )" + mapping + "}")
                .find("unknown interface type \"coreboot\""),
            std::string::npos);
  EXPECT_NE(error(R"({"interface-types": ["bios"], "features": []})").find("missing 'mapping'"),
            std::string::npos);
  EXPECT_NE(error(R"({"interface-types": ["uefi"], "mapping": {"device": "flash", "executable": )"
                  R"({"filename": "/c.fd", "format": "raw"}}, "targets": [], "features": []})")
                .find("nvram-template"),
            std::string::npos);
  EXPECT_NE(error(R"({"interface-types": ["uefi"], "mapping": {"device": "disk"}})")
                .find("unknown mapping device \"disk\""),
            std::string::npos);
  EXPECT_NE(error(R"({"interface-types": ["bios"], "mapping": {"device": "memory", "filename": )"
                  R"("/b"}, "targets": [{"architecture": "vax", "machines": []}], "features": []})")
                .find("unknown architecture \"vax\""),
            std::string::npos);
  // Stateless flash needs no NVRAM template; an unknown feature is ignored, as libvirt does.
  auto stateless = ParseFirmwareDescriptor(
      R"({"interface-types": ["uefi"], "mapping": {"device": "flash", "mode": "stateless", )"
      R"("executable": {"filename": "/c.fd", "format": "raw"}}, "targets": [{"architecture": )"
      R"("aarch64", "machines": ["virt-*"]}], "features": ["secure-boot", "future-thing"]})",
      "/x.json");
  ASSERT_TRUE(stateless) << stateless.error();
  EXPECT_EQ(stateless->flash_mode, "stateless");
  EXPECT_EQ(stateless->features, std::vector<std::string>({"secure-boot"}));
  EXPECT_EQ(stateless->targets[0].arch, "aarch64");
}

TEST(FirmwareReadTest, DebiansDescriptorsInFileNameOrder) {
  QemuOptions options;
  QemuFirmware firmware = ReadQemuFirmware(options, Root(FirmwareFixture("debian-ovmf")));
  EXPECT_TRUE(firmware.reread);
  EXPECT_TRUE(firmware.invalid.empty());
  EXPECT_TRUE(firmware.masked.empty());
  EXPECT_EQ(Paths(firmware), std::vector<std::string>({
                                 "/usr/share/qemu/firmware/40-edk2-x86_64-secure-enrolled.json",
                                 "/usr/share/qemu/firmware/50-edk2-x86_64-secure.json",
                                 "/usr/share/qemu/firmware/60-edk2-x86_64.json",
                             }));
  for (const FirmwareDescriptor& descriptor : firmware.descriptors)
    EXPECT_TRUE(descriptor.executable_exists) << descriptor.executable;
  // The legacy nvram list, as far as its loaders exist in the tree (OVMF only).
  EXPECT_EQ(firmware.legacy_loaders,
            std::vector<std::string>(
                {"/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_CODE.secboot.fd"}));
}

TEST(FirmwareReadTest, OverridesMasksAndSkipsBadFilesOneByOne) {
  std::string root = BrokenRootWithFifoAndOversized();
  QemuOptions options;
  QemuFirmware firmware = ReadQemuFirmware(options, Root(root));
  EXPECT_EQ(Paths(firmware), std::vector<std::string>({
                                 "/usr/share/qemu/firmware/30-aarch64-only.json",
                                 "/usr/share/qemu/firmware/50-edk2-x86_64-secure.json",
                                 "/etc/qemu/firmware/60-edk2-x86_64.json",
                                 "/usr/share/qemu/firmware/70-seabios.json",
                             }));
  EXPECT_EQ(firmware.masked, std::vector<std::string>({"40-edk2-x86_64-secure-enrolled.json"}));
  std::map<std::string, std::string> invalid;
  for (const FirmwareDescriptorProblem& problem : firmware.invalid)
    invalid[problem.path] = problem.reason;
  ASSERT_EQ(invalid.size(), 3u);
  EXPECT_NE(invalid["/usr/share/qemu/firmware/10-garbled.json"].find("not JSON: offset"),
            std::string::npos);
  EXPECT_NE(invalid["/usr/share/qemu/firmware/20-unknown-interface.json"].find("coreboot"),
            std::string::npos);
  // FIFOs are passed over, as libvirt does; the one in /etc does not hide the file below.
  ASSERT_EQ(firmware.ignored.size(), 2u);
  EXPECT_EQ(firmware.ignored[0].path, "/usr/share/qemu/firmware/35-fifo.json");
  EXPECT_EQ(firmware.ignored[1].path, "/etc/qemu/firmware/50-edk2-x86_64-secure.json");
  EXPECT_NE(firmware.ignored[1].reason.find("not a regular file"), std::string::npos);
  EXPECT_NE(invalid["/usr/share/qemu/firmware/80-oversized.json"].find("larger than"),
            std::string::npos)
      << invalid["/usr/share/qemu/firmware/80-oversized.json"];
  // The override's loader exists in /opt; the BIOS image of 70-seabios is not installed.
  EXPECT_TRUE(firmware.descriptors[2].executable_exists);
  EXPECT_FALSE(firmware.descriptors[3].executable_exists);
}

TEST(FirmwareReadTest, ProblemListsStayBounded) {
  std::string root = testing::TempDir();
  std::filesystem::create_directories(root + "/usr/share/qemu/firmware");
  for (int i = 0; i < 300; ++i) {
    std::string name = root + "/usr/share/qemu/firmware/" + std::to_string(1000 + i);
    ASSERT_EQ(::mkfifo((name + "-fifo.json").c_str(), 0644), 0);
    testing::WriteTestFile(name + "-garbled.json", "{");
  }
  QemuFirmware firmware = ReadQemuFirmware(QemuOptions(), Root(root));
  ASSERT_EQ(firmware.ignored.size(), kMaxFirmwareDescriptors);
  EXPECT_EQ(firmware.ignored.back().reason, "45 more not listed");
  // Past kMaxFirmwareDescriptors names nothing is read; those are listed as not read.
  ASSERT_EQ(firmware.invalid.size(), kMaxFirmwareDescriptors);
  EXPECT_EQ(firmware.invalid.back().reason, "45 more not listed");
  EXPECT_TRUE(firmware.descriptors.empty());
}

TEST(FirmwareReadTest, NoDirectoriesMeansNoDescriptorsButTheLegacyList) {
  QemuOptions options;
  options.firmware_dirs = {"/nonexistent/firmware"};
  QemuFirmware firmware = ReadQemuFirmware(options, Root(FirmwareFixture("debian-ovmf")));
  EXPECT_TRUE(firmware.descriptors.empty());
  EXPECT_TRUE(firmware.invalid.empty());
  EXPECT_EQ(firmware.legacy_loaders.size(), 2u);
  DomainOsCaps os = LibvirtDomainOsCaps(firmware, "x86_64", "pc-q35-7.2");
  EXPECT_FALSE(os.efi);
  EXPECT_FALSE(os.secure);
  EXPECT_EQ(os.loaders, firmware.legacy_loaders);
}

TEST(FirmwareMemoryTest, ReReadsOnlyWhenADirectoryChanges) {
  std::string root = testing::TempDir() + "/debian-ovmf";
  std::filesystem::copy(FirmwareFixture("debian-ovmf"), root,
                        std::filesystem::copy_options::recursive);
  QemuOptions options;
  QemuFirmwareMemory memory;
  QemuFirmware first = memory.Read(options, Root(root));
  EXPECT_TRUE(first.reread);
  EXPECT_EQ(first.descriptors.size(), 3u);
  QemuFirmware warm = memory.Read(options, Root(root));
  EXPECT_FALSE(warm.reread);
  EXPECT_EQ(Paths(warm), Paths(first));
  // A loader removed is seen at once (existence is checked every time)...
  std::filesystem::remove(root + "/usr/share/OVMF/OVMF_CODE_4M.fd");
  warm = memory.Read(options, Root(root));
  EXPECT_FALSE(warm.reread);
  EXPECT_FALSE(warm.descriptors[2].executable_exists);
  // ...a new file in /etc (masking one) makes it read again.
  std::filesystem::create_directories(root + "/etc/qemu/firmware");
  testing::WriteTestFile(root + "/etc/qemu/firmware/60-edk2-x86_64.json", "");
  QemuFirmware changed = memory.Read(options, Root(root));
  EXPECT_TRUE(changed.reread);
  EXPECT_EQ(changed.descriptors.size(), 2u);
  EXPECT_EQ(changed.masked, std::vector<std::string>({"60-edk2-x86_64.json"}));
  // A file rewritten in place (same name) is a change too.
  testing::WriteTestFile(root + "/etc/qemu/firmware/60-edk2-x86_64.json", "{");
  changed = memory.Read(options, Root(root));
  EXPECT_TRUE(changed.reread);
  EXPECT_EQ(changed.invalid.size(), 1u);
  EXPECT_FALSE(memory.Read(options, Root(root)).reread);
  // A descriptor removed, and the whole /etc directory removed, are changes.
  std::filesystem::remove(root + "/usr/share/qemu/firmware/50-edk2-x86_64-secure.json");
  changed = memory.Read(options, Root(root));
  EXPECT_TRUE(changed.reread);
  EXPECT_EQ(changed.descriptors.size(), 1u);
  std::filesystem::remove_all(root + "/etc/qemu/firmware");
  changed = memory.Read(options, Root(root));
  EXPECT_TRUE(changed.reread);
  EXPECT_EQ(changed.descriptors.size(), 2u);
  EXPECT_FALSE(memory.Read(options, Root(root)).reread);  // still absent: nothing to read
}

TEST(FirmwareRulesTest, DebianOvmfPerMachineAsLibvirt) {
  QemuOptions options;
  QemuFirmware firmware = ReadQemuFirmware(options, Root(FirmwareFixture("debian-ovmf")));
  DomainOsCaps q35 = LibvirtDomainOsCaps(firmware, "x86_64", "pc-q35-7.2");
  EXPECT_TRUE(q35.efi);
  EXPECT_FALSE(q35.bios);
  EXPECT_TRUE(q35.secure);
  EXPECT_EQ(q35.loaders, std::vector<std::string>({"/usr/share/OVMF/OVMF_CODE_4M.ms.fd",
                                                   "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd",
                                                   "/usr/share/OVMF/OVMF_CODE_4M.fd"}));
  DomainOsCaps pc = LibvirtDomainOsCaps(firmware, "x86_64", "pc-i440fx-7.2");
  EXPECT_TRUE(pc.efi);
  EXPECT_FALSE(pc.secure);
  EXPECT_EQ(pc.loaders, std::vector<std::string>({"/usr/share/OVMF/OVMF_CODE_4M.fd"}));
  // No descriptor for these: libvirt lists the legacy nvram loaders that exist.
  for (auto [arch, machine] : {std::pair{"x86_64", "isapc"}, std::pair{"i686", "pc-i440fx-7.2"}}) {
    DomainOsCaps none = LibvirtDomainOsCaps(firmware, arch, machine);
    EXPECT_FALSE(none.efi) << arch << " " << machine;
    EXPECT_FALSE(none.secure);
    EXPECT_EQ(none.loaders, firmware.legacy_loaders);
  }
}

TEST(FirmwareRulesTest, DebianAavmfSecureBootWithoutSmm) {
  QemuFirmware firmware = ReadQemuFirmware(QemuOptions(), Root(FirmwareFixture("debian-aavmf")));
  ASSERT_EQ(firmware.descriptors.size(), 3u);
  // secure-boot without requires-smm: libvirt's secure enum says only 'no'.
  DomainOsCaps virt = LibvirtDomainOsCaps(firmware, "aarch64", "virt-7.2");
  EXPECT_TRUE(virt.efi);
  EXPECT_FALSE(virt.secure);
  EXPECT_EQ(virt.loaders, std::vector<std::string>({"/usr/share/AAVMF/AAVMF_CODE.ms.fd",
                                                    "/usr/share/AAVMF/AAVMF_CODE.secboot.fd",
                                                    "/usr/share/AAVMF/AAVMF_CODE.fd"}));
  EXPECT_FALSE(LibvirtDomainOsCaps(firmware, "x86_64", "pc-q35-7.2").efi);
  // ...yet the metric says Secure Boot guests can boot: the descriptor has the feature.
  Guest guest;
  guest.hypervisor = "qemu";
  guest.arch = "aarch64";
  guest.machines = {{"virt-7.2", "", 512, false, false}, {"virt", "virt-7.2", 512, false, false}};
  std::vector<GuestFirmwareOffer> offers = GuestFirmwareOffers(firmware, guest);
  ASSERT_EQ(offers.size(), 2u);
  EXPECT_EQ(offers[1].firmware, "efi");
  EXPECT_TRUE(offers[1].secure_boot);
}

TEST(FirmwareRulesTest, BrokenTreeAsLibvirtWouldReadTheGoodFiles) {
  QemuOptions options;
  QemuFirmware firmware = ReadQemuFirmware(options, Root(BrokenRootWithFifoAndOversized()));
  DomainOsCaps q35 = LibvirtDomainOsCaps(firmware, "x86_64", "pc-q35-7.2");
  EXPECT_TRUE(q35.efi);
  EXPECT_FALSE(q35.bios);
  EXPECT_TRUE(q35.secure);
  EXPECT_EQ(q35.loaders, std::vector<std::string>({"/usr/share/OVMF/OVMF_CODE_4M.secboot.fd",
                                                   "/opt/edk2/OVMF_CODE_4M.fd"}));
  // The BIOS descriptor matches but its image is missing: no loader, and no fallback.
  DomainOsCaps pc = LibvirtDomainOsCaps(firmware, "x86_64", "pc-i440fx-7.2");
  EXPECT_TRUE(pc.bios);
  EXPECT_FALSE(pc.efi);
  EXPECT_TRUE(pc.loaders.empty());
  DomainOsCaps i686 = LibvirtDomainOsCaps(firmware, "i686", "pc-i440fx-7.2");
  EXPECT_TRUE(i686.bios);
  EXPECT_TRUE(i686.loaders.empty());
}

Guest X86Guest(const std::string& arch) {
  Guest guest;
  guest.hypervisor = "qemu";
  guest.os_type = "hvm";
  guest.arch = arch;
  guest.emulator = "/usr/bin/qemu-system-x86_64";
  guest.machines = {{"pc-i440fx-7.2", "", 255, false, true},
                    {"pc", "pc-i440fx-7.2", 255, false, false},
                    {"pc-q35-7.2", "", 288, false, false},
                    {"q35", "pc-q35-7.2", 288, false, false},
                    {"isapc", "", 1, false, false}};
  guest.domains = {{"qemu", "", {}}, {"kvm", "", {}}};
  return guest;
}

TEST(FirmwareRulesTest, GuestOffersNeedAnExistingImage) {
  QemuOptions options;
  QemuFirmware firmware = ReadQemuFirmware(options, Root(FirmwareFixture("debian-ovmf")));
  std::vector<GuestFirmwareOffer> x86 = GuestFirmwareOffers(firmware, X86Guest("x86_64"));
  ASSERT_EQ(x86.size(), 2u);
  EXPECT_EQ(x86[0].firmware, "efi");
  EXPECT_FALSE(x86[0].secure_boot);
  EXPECT_TRUE(x86[1].secure_boot);
  EXPECT_TRUE(GuestFirmwareOffers(firmware, X86Guest("i686")).empty());
  for (FirmwareDescriptor& descriptor : firmware.descriptors) descriptor.executable_exists = false;
  EXPECT_TRUE(GuestFirmwareOffers(firmware, X86Guest("x86_64")).empty());
}

// The <os> element of our document, for one machine.
std::string OsElement(const HostCapabilities& caps, const std::string& arch,
                      const std::string& machine) {
  auto xml = RenderDomainCapabilitiesXml(caps, {arch, "kvm", machine, ""});
  EXPECT_TRUE(xml) << xml.error();
  if (!xml) return "";
  size_t begin = xml->find("  <os");
  size_t end = xml->find("</os>\n");
  if (begin == std::string::npos || end == std::string::npos) return "(no <os>)";
  return xml->substr(begin, end + 6 - begin);
}

// What libvirt 9.0 printed here, with Debian's ovmf installed, for the same files.
TEST(FirmwareDomcapsTest, OsEqualsLibvirt90OnDebiansOvmf) {
  HostCapabilities caps;
  caps.cpu.arch = "x86_64";
  caps.guests = {X86Guest("x86_64"), X86Guest("i686")};
  caps.qemu_firmware = ReadQemuFirmware(QemuOptions(), Root(FirmwareFixture("debian-ovmf")));
  auto recorded = [](const std::string& name) {
    auto text = ReadFile(FirmwareFixture("libvirt-9.0/" + name));
    EXPECT_TRUE(text) << text.error();
    return text ? *text : std::string();
  };
  EXPECT_EQ(OsElement(caps, "x86_64", "q35"), recorded("os-x86_64-q35.xml"));
  EXPECT_EQ(OsElement(caps, "x86_64", ""), recorded("os-x86_64-pc.xml"));
  EXPECT_EQ(OsElement(caps, "x86_64", "pc"), recorded("os-x86_64-pc.xml"));
  EXPECT_EQ(OsElement(caps, "x86_64", "isapc"), recorded("os-x86_64-isapc.xml"));
  EXPECT_EQ(OsElement(caps, "i686", ""), recorded("os-i686-pc.xml"));
  // The same for the qemu virt type.
  auto tcg = RenderDomainCapabilitiesXml(caps, {"x86_64", "qemu", "q35", ""});
  ASSERT_TRUE(tcg);
  EXPECT_NE(tcg->find(recorded("os-x86_64-q35.xml")), std::string::npos);
  // <os> sits where domaincaps.rng wants it: after <vcpu>, before <cpu>.
  EXPECT_LT(tcg->find("<vcpu"), tcg->find("<os "));
  EXPECT_LT(tcg->find("</os>"), tcg->find("<cpu>"));
}

TEST(FirmwareDomcapsTest, NoFirmwareReadingMeansNoOs) {
  HostCapabilities caps;
  caps.cpu.arch = "x86_64";
  caps.guests = {X86Guest("x86_64")};
  EXPECT_EQ(OsElement(caps, "x86_64", ""), "(no <os>)");
}

}  // namespace
}  // namespace virtcaps
