// libvirt 9.0's mapping from its QEMU capability flags to the domain capabilities'
// <iothreads>, <memoryBacking>, <devices> and <features>
// (qemu_capabilities.c: virQEMUCapsFillDomainCaps and the functions it calls), over the
// facts the qemu prober keeps (GuestDeviceFacts). Every enum's values come out in the
// order of libvirt's own enum, which is the order libvirt prints them in.
#include "virtcaps/domain_devices.h"

#include <algorithm>
#include <initializer_list>

namespace virtcaps {

bool GuestDeviceFacts::Answered(std::string_view probe) const {
  return std::find(answered.begin(), answered.end(), probe) != answered.end();
}

bool GuestDeviceFacts::Has(std::string_view fact) const {
  return std::find(found.begin(), found.end(), fact) != found.end();
}

namespace {

bool StartsWith(const std::string& text, std::string_view prefix) {
  return text.compare(0, prefix.size(), prefix) == 0;
}

bool IsX86(const std::string& arch) { return arch == "x86_64" || arch == "i686"; }

// The values of `order` (libvirt's enum) that `wanted` selects, in that order.
std::vector<std::string> InOrder(std::initializer_list<const char*> order,
                                 const std::vector<std::string>& wanted) {
  std::vector<std::string> values;
  for (const char* value : order) {
    if (std::find(wanted.begin(), wanted.end(), value) != wanted.end()) values.push_back(value);
  }
  return values;
}

DomainCapsElement Supported(std::string name, std::vector<DomainCapsEnum> enums = {}) {
  return DomainCapsElement{std::move(name), true, std::move(enums)};
}

DomainCapsElement Unsupported(std::string name) {
  return DomainCapsElement{std::move(name), false, {}};
}

// QEMU_CAPS_VIRTIO_PCI_TRANSITIONAL: any of the transitional virtio-pci types.
bool HasVirtioTransitional(const GuestDeviceFacts& facts) {
  for (const char* base :
       {"virtio-blk-pci", "virtio-net-pci", "vhost-scsi-pci", "virtio-rng-pci", "virtio-9p-pci",
        "virtio-balloon-pci", "vhost-vsock-pci", "virtio-scsi-pci", "virtio-serial-pci"}) {
    for (const char* suffix : {"-transitional", "-non-transitional"}) {
      if (facts.Has(std::string("type:") + base + suffix)) return true;
    }
  }
  return false;
}

DomainCapsElement Disk(const GuestDeviceFacts& facts, const std::string& arch,
                       const std::string& machine) {
  std::vector<std::string> devices = {"disk", "cdrom", "lun"};
  std::vector<std::string> buses = {"scsi", "virtio"};
  if (!MachineIsPSeries(machine, arch)) {
    devices.push_back("floppy");
    buses.push_back("fdc");
  }
  if (MachineHasBuiltinIde(machine, arch)) buses.push_back("ide");
  if (facts.Has("type:usb-storage")) buses.push_back("usb");
  if (facts.Has("type:ich9-ahci")) buses.push_back("sata");
  std::vector<std::string> models = {"virtio"};
  if (HasVirtioTransitional(facts)) {
    models.push_back("virtio-transitional");
    models.push_back("virtio-non-transitional");
  }
  return Supported(
      "disk",
      {{"diskDevice", InOrder({"disk", "cdrom", "floppy", "lun"}, devices)},
       {"bus", InOrder({"ide", "fdc", "scsi", "virtio", "xen", "usb", "uml", "sata", "sd"}, buses)},
       {"model", InOrder({"virtio", "virtio-transitional", "virtio-non-transitional"}, models)}});
}

DomainCapsElement Graphics(const GuestDeviceFacts& facts) {
  std::vector<std::string> types;
  if (facts.Has("schema:display-sdl")) types.push_back("sdl");
  if (facts.Has("command:query-vnc")) types.push_back("vnc");
  if (facts.Has("option:spice")) types.push_back("spice");
  if (facts.Has("schema:display-egl-headless")) types.push_back("egl-headless");
  if (facts.Has("schema:display-dbus")) types.push_back("dbus");
  return Supported(
      "graphics",
      {{"type",
        InOrder({"sdl", "vnc", "rdp", "desktop", "spice", "egl-headless", "dbus"}, types)}});
}

DomainCapsElement Video(const GuestDeviceFacts& facts) {
  std::vector<std::string> models = {"none"};
  const std::pair<const char*, const char*> types[] = {{"type:VGA", "vga"},
                                                       {"type:cirrus-vga", "cirrus"},
                                                       {"type:vmware-svga", "vmvga"},
                                                       {"type:qxl", "qxl"},
                                                       {"type:virtio-gpu-pci", "virtio"},
                                                       {"type:virtio-gpu-device", "virtio"},
                                                       {"type:bochs-display", "bochs"},
                                                       {"type:ramfb", "ramfb"}};
  for (const auto& [fact, model] : types) {
    if (facts.Has(fact)) models.push_back(model);
  }
  return Supported(
      "video", {{"modelType", InOrder({"default", "vga", "cirrus", "vmvga", "xen", "vbox", "qxl",
                                       "parallels", "virtio", "gop", "none", "bochs", "ramfb"},
                                      models)}});
}

DomainCapsElement Hostdev(const GuestDeviceFacts& facts, bool host_vfio) {
  std::vector<std::string> subsystems = {"pci", "scsi"};
  for (const char* controller :
       {"type:piix3-usb-uhci", "type:piix4-usb-uhci", "type:usb-ehci", "type:ich9-usb-ehci1",
        "type:vt82c686b-usb-uhci", "type:pci-ohci", "type:nec-usb-xhci", "type:qemu-xhci"}) {
    if (facts.Has(controller)) {
      subsystems.push_back("usb");
      break;
    }
  }
  std::vector<std::string> backends;
  if (host_vfio && facts.Has("type:vfio-pci")) backends = {"default", "vfio"};
  return Supported(
      "hostdev", {{"mode", {"subsystem"}},
                  {"startupPolicy", {"default", "mandatory", "requisite", "optional"}},
                  {"subsysType", InOrder({"usb", "pci", "scsi", "scsi_host", "mdev"}, subsystems)},
                  {"capsType", {}},
                  {"pciBackend", InOrder({"default", "kvm", "vfio", "xen"}, backends)}});
}

DomainCapsElement Rng(const GuestDeviceFacts& facts) {
  std::vector<std::string> models, backends;
  if (facts.Has("type:virtio-rng-pci") || facts.Has("type:virtio-rng-ccw") ||
      facts.Has("type:virtio-rng-device")) {
    models.push_back("virtio");
    if (HasVirtioTransitional(facts)) {
      models.push_back("virtio-transitional");
      models.push_back("virtio-non-transitional");
    }
  }
  if (facts.Has("type:rng-egd")) backends.push_back("egd");
  if (facts.Has("type:rng-random")) backends.push_back("random");
  if (facts.Has("type:rng-builtin")) backends.push_back("builtin");
  return Supported(
      "rng",
      {{"model", InOrder({"virtio", "virtio-transitional", "virtio-non-transitional"}, models)},
       {"backendModel", InOrder({"random", "egd", "builtin"}, backends)}});
}

DomainCapsElement Filesystem(const GuestDeviceFacts& facts) {
  std::vector<std::string> drivers = {"path", "handle"};
  if (facts.Has("type:vhost-user-fs-device")) drivers.push_back("virtiofs");
  return Supported(
      "filesystem",
      {{"driverType",
        InOrder({"default", "path", "handle", "loop", "nbd", "ploop", "virtiofs"}, drivers)}});
}

// Needs at least one model to be usable, as libvirt says. The emulator backend also
// needs swtpm on the host.
DomainCapsElement Tpm(const GuestDeviceFacts& facts, bool swtpm) {
  std::vector<std::string> models, backends;
  for (const char* model : {"tpm-tis", "tpm-crb", "tpm-spapr"}) {
    if (facts.Has(std::string("tpm-model:") + model)) models.push_back(model);
  }
  if (facts.Has("tpm-type:passthrough")) backends.push_back("passthrough");
  if (swtpm && facts.Has("tpm-type:emulator")) backends.push_back("emulator");
  if (models.empty()) return Unsupported("tpm");
  return Supported(
      "tpm", {{"model", InOrder({"tpm-tis", "tpm-crb", "tpm-spapr", "spapr-tpm-proxy"}, models)},
              {"backendModel", InOrder({"passthrough", "emulator"}, backends)}});
}

}  // namespace

bool MachineHasBuiltinIde(const std::string& machine, const std::string& arch) {
  bool i440fx = IsX86(arch) &&
                (machine == "pc" || StartsWith(machine, "pc-0.") || StartsWith(machine, "pc-1.") ||
                 StartsWith(machine, "pc-i440fx-") || StartsWith(machine, "rhel"));
  return i440fx || machine == "malta" || machine == "sun4u" || machine == "g3beige";
}

bool MachineIsPSeries(const std::string& machine, const std::string& arch) {
  return (arch == "ppc64" || arch == "ppc64le") &&
         (machine == "pseries" || StartsWith(machine, "pseries-"));
}

bool MachineIsArmVirt(const std::string& machine, const std::string& arch) {
  return (arch == "aarch64" || arch == "armv7l") &&
         (machine == "virt" || StartsWith(machine, "virt-"));
}

DomainDeviceCaps LibvirtDomainDeviceCaps(const Guest& guest, const std::string& arch,
                                         const std::string& machine, const std::string& virttype,
                                         const HostCapabilities& host) {
  (void)virttype;  // libvirt probes these once per emulator, for every virt type
  DomainDeviceCaps caps;
  if (!guest.device_facts) return caps;
  const GuestDeviceFacts& facts = *guest.device_facts;
  bool types = facts.Answered("qom-list-types");
  bool schema = facts.Answered("query-qmp-schema");

  if (types) {
    caps.iothreads = facts.Has("type:iothread") ? Supported("iothreads") : Unsupported("iothreads");
    std::vector<std::string> sources = {"anonymous"};
    if (facts.Has("type:memory-backend-file")) sources.push_back("file");
    if (facts.Has("type:memory-backend-memfd")) sources.push_back("memfd");
    caps.memory_backing = Supported(
        "memoryBacking", {{"sourceType", InOrder({"file", "anonymous", "memfd"}, sources)}});
    caps.devices.push_back(Disk(facts, arch, machine));
  }
  if (schema && facts.Answered("command-line-options")) caps.devices.push_back(Graphics(facts));
  if (types) {
    caps.devices.push_back(Video(facts));
    // VFIO needs an IOMMU in use and /dev/vfio/vfio (virHostdevHostSupportsPassthroughVFIO).
    std::optional<bool> vfio_device;
    if (host.facilities) {
      for (const auto& [path, present] : host.facilities->devices) {
        if (path == "/dev/vfio/vfio") vfio_device = present;
      }
    }
    if (host.iommu && vfio_device) {
      caps.devices.push_back(Hostdev(facts, host.iommu->kernel_enabled && *vfio_device));
    }
    caps.devices.push_back(Rng(facts));
    caps.devices.push_back(Filesystem(facts));
  }
  // With swtpm installed libvirt 9.0 also asks swtpm_setup which TPM versions it makes,
  // which is not probed: the element is left out then.
  if (facts.Answered("query-tpm-models") && facts.swtpm.has_value() && !*facts.swtpm) {
    caps.devices.push_back(Tpm(facts, false));
  }
  if (types) {
    caps.devices.push_back(facts.Has("type:usb-redir") ? Supported("redirdev", {{"bus", {"usb"}}})
                                                       : Unsupported("redirdev"));
  }
  if (facts.Answered("command-line-options")) {
    std::vector<std::string> channels = {"pty", "unix"};
    if (facts.Has("option:spice")) channels.push_back("spicevmc");
    caps.devices.push_back(Supported("channel", {{"type", channels}}));
  }

  // <gic>: only Arm's virt machine has one; its versions (query-gic-capabilities) are
  // not probed, so there it is left out.
  if (!MachineIsArmVirt(machine, arch)) caps.features_before_sev.push_back(Unsupported("gic"));
  if (types) {
    caps.features_before_sev.push_back(facts.Has("type:vmcoreinfo") ? Supported("vmcoreinfo")
                                                                    : Unsupported("vmcoreinfo"));
    caps.features_before_sev.push_back(facts.Has("type:vmgenid") ? Supported("genid")
                                                                 : Unsupported("genid"));
  }
  caps.features_before_sev.push_back(Supported("backingStoreInput"));
  if (schema) {
    // QEMU_CAPS_INCREMENTAL_BACKUP: blockdev-reopen and bitmap transforms in migration.
    bool backup = facts.Has("command:blockdev-reopen") && facts.Has("schema:block-bitmap-mapping");
    caps.features_before_sev.push_back(backup ? Supported("backup") : Unsupported("backup"));
  }
  // <sgx>: libvirt prints no unless QEMU's query-sgx-capabilities answered; then it
  // prints the EPC sections, which are not kept: left out.
  if (types && !facts.Has("sgx") &&
      (!facts.Has("type:sgx-epc") || facts.Answered("query-sgx-capabilities"))) {
    caps.features_after_sev.push_back(Unsupported("sgx"));
  }
  if (facts.Answered("hyperv") && !facts.hyperv.empty()) {
    caps.features_after_sev.push_back(Supported(
        "hyperv",
        {{"features", std::vector<std::string>(facts.hyperv.begin(), facts.hyperv.end())}}));
  }
  return caps;
}

}  // namespace virtcaps
