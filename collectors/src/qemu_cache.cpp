// The on-disk cache of emulator probes: one small XML file per emulator, valid for
// one binary identity and one set of host facts (libvirt's invalidation rules).
//
//   <qemuProbeCache version='5'>
//     <key emulator='...' device='..' inode='..' size='..' mtimeNs='..' ctimeNs='..'
//          kvmUsable='yes' kernelRelease='..' microcode='..' cpuSignature='..'
//          nested='..' sev='..'/>
//     <guest hypervisor='qemu' osType='hvm' arch='x86_64' wordsize='64' emulator='...'
//            qemuVersion='7.2.22'>
//       <machine name='pc-i440fx-7.2' maxCpus='255' deprecated='no' default='yes'/>
//       <domain type='kvm'/>
//       <feature name='acpi' default='on' toggle='yes'/>
//       <cpuModes virttype='kvm' modelsProbed='yes'>
//         <model name='EPYC' usable='no'><blocker name='svm'/></model>
//         <expansion type='static'>
//           <property name='invtsc' kind='boolean' value='yes' migratable='no'/>
//           <property name='family' kind='number' value='6' migratable='yes'/>
//         </expansion>
//       </cpuModes>
//       <deviceFacts>
//         <answered name='qom-list-types'/>
//         <found name='type:VGA'/>
//         <hyperv name='spinlocks'/>
//       </deviceFacts>
//     </guest>
//   </qemuProbeCache>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "virtcaps/files.h"
#include "virtcaps/qemu.h"
#include "virtcaps/strings.h"
#include "virtcaps/xml.h"

namespace virtcaps {

namespace {

constexpr const char* kRootName = "qemuProbeCache";
constexpr const char* kFormatVersion = "5";  // bump when the layout or the probe changes
constexpr size_t kMaxCacheFileBytes = 4u << 20;

int64_t Nanoseconds(const struct timespec& time) {
  return static_cast<int64_t>(time.tv_sec) * 1000000000 + time.tv_nsec;
}

const char* YesNo(bool value) { return value ? "yes" : "no"; }

XmlElement MakeKey(const std::string& emulator, const QemuBinaryIdentity& binary,
                   const QemuHostFacts& facts) {
  XmlElement key("key");
  key.SetAttribute("emulator", emulator);
  key.SetAttribute("device", std::to_string(binary.device));
  key.SetAttribute("inode", std::to_string(binary.inode));
  key.SetAttribute("size", std::to_string(binary.size));
  key.SetAttribute("mtimeNs", std::to_string(binary.mtime_ns));
  key.SetAttribute("ctimeNs", std::to_string(binary.ctime_ns));
  key.SetAttribute("kvmUsable", YesNo(facts.kvm_usable));
  key.SetAttribute("kernelRelease", facts.kernel_release);
  key.SetAttribute("microcode", facts.microcode);
  key.SetAttribute("cpuSignature", facts.cpu_signature);
  key.SetAttribute("nested", facts.nested);
  key.SetAttribute("sev", facts.sev);
  return key;
}

void AddMachines(XmlElement& parent, const std::vector<GuestMachine>& machines) {
  for (const GuestMachine& machine : machines) {
    XmlElement& element = parent.Add("machine");
    element.SetAttribute("name", machine.name);
    if (!machine.canonical.empty()) element.SetAttribute("canonical", machine.canonical);
    if (machine.max_cpus) element.SetAttribute("maxCpus", std::to_string(*machine.max_cpus));
    element.SetAttribute("deprecated", YesNo(machine.deprecated));
    element.SetAttribute("default", YesNo(machine.is_default));
  }
}

XmlElement GuestToXml(const Guest& guest) {
  XmlElement element("guest");
  element.SetAttribute("hypervisor", guest.hypervisor);
  element.SetAttribute("osType", guest.os_type);
  element.SetAttribute("arch", guest.arch);
  element.SetAttribute("wordsize", std::to_string(guest.wordsize));
  element.SetAttribute("emulator", guest.emulator);
  element.SetAttribute("loader", guest.loader);
  element.SetAttribute("qemuVersion", guest.qemu_version);
  AddMachines(element, guest.machines);
  for (const GuestDomain& domain : guest.domains) {
    XmlElement& child = element.Add("domain");
    child.SetAttribute("type", domain.type);
    child.SetAttribute("emulator", domain.emulator);
    AddMachines(child, domain.machines);
  }
  for (const GuestFeature& feature : guest.features) {
    XmlElement& child = element.Add("feature");
    child.SetAttribute("name", feature.name);
    if (feature.default_on) child.SetAttribute("default", *feature.default_on ? "on" : "off");
    if (feature.toggle) child.SetAttribute("toggle", YesNo(*feature.toggle));
  }
  for (const GuestCpuModes& modes : guest.cpu_modes) {
    XmlElement& child = element.Add("cpuModes");
    child.SetAttribute("virttype", modes.virttype);
    child.SetAttribute("modelsProbed", YesNo(modes.models_probed));
    for (const GuestCpuModel& model : modes.models) {
      XmlElement& entry = child.Add("model");
      entry.SetAttribute("name", model.name);
      entry.SetAttribute("usable", YesNo(model.usable));
      for (const std::string& blocker : model.blockers) {
        entry.Add("blocker").SetAttribute("name", blocker);
      }
    }
    if (modes.expansion) {
      XmlElement& expansion = child.Add("expansion");
      expansion.SetAttribute("type", modes.expansion_type);
      for (const CpuModelProperty& property : *modes.expansion) {
        XmlElement& entry = expansion.Add("property");
        entry.SetAttribute("name", property.name);
        switch (property.kind) {
          case CpuModelProperty::Kind::kBoolean:
            entry.SetAttribute("kind", "boolean").SetAttribute("value", YesNo(property.enabled));
            break;
          case CpuModelProperty::Kind::kNumber:
            entry.SetAttribute("kind", "number")
                .SetAttribute("value", std::to_string(property.number));
            break;
          case CpuModelProperty::Kind::kString:
            entry.SetAttribute("kind", "string").SetAttribute("value", property.text);
            break;
        }
        entry.SetAttribute("migratable", YesNo(property.migratable));
      }
    }
  }
  // Host state (swtpm) is not the emulator's and is not cached.
  if (guest.device_facts) {
    XmlElement& facts = element.Add("deviceFacts");
    for (const std::string& name : guest.device_facts->answered) {
      facts.Add("answered").SetAttribute("name", name);
    }
    for (const std::string& name : guest.device_facts->found) {
      facts.Add("found").SetAttribute("name", name);
    }
    for (const std::string& name : guest.device_facts->hyperv) {
      facts.Add("hyperv").SetAttribute("name", name);
    }
  }
  return element;
}

// Reading is strict: anything unexpected makes the whole file a miss.
bool Required(const XmlElement& element, std::string_view name, std::string& out) {
  const std::string* value = element.Attribute(name);
  if (value == nullptr) return false;
  out = *value;
  return true;
}

bool ReadYesNo(const XmlElement& element, std::string_view name, bool& out) {
  std::string text;
  if (!Required(element, name, text) || (text != "yes" && text != "no")) return false;
  out = text == "yes";
  return true;
}

bool ReadMachines(const XmlElement& parent, std::vector<GuestMachine>& machines) {
  for (const XmlElement* element : parent.ChildrenNamed("machine")) {
    GuestMachine machine;
    if (!Required(*element, "name", machine.name) || machine.name.empty()) return false;
    if (const std::string* canonical = element->Attribute("canonical")) {
      machine.canonical = *canonical;
    }
    if (const std::string* max_cpus = element->Attribute("maxCpus")) {
      auto value = ParseUint(*max_cpus);
      if (!value || *value > 0xFFFFFFFFu) return false;
      machine.max_cpus = static_cast<unsigned>(*value);
    }
    if (!ReadYesNo(*element, "deprecated", machine.deprecated) ||
        !ReadYesNo(*element, "default", machine.is_default)) {
      return false;
    }
    machines.push_back(std::move(machine));
  }
  return true;
}

std::optional<Guest> GuestFromXml(const XmlElement& element) {
  Guest guest;
  std::string wordsize;
  if (!Required(element, "hypervisor", guest.hypervisor) ||
      !Required(element, "osType", guest.os_type) || !Required(element, "arch", guest.arch) ||
      !Required(element, "wordsize", wordsize) || !Required(element, "emulator", guest.emulator) ||
      !Required(element, "loader", guest.loader) ||
      !Required(element, "qemuVersion", guest.qemu_version)) {
    return std::nullopt;
  }
  auto wordsize_value = ParseUint(wordsize);
  if (!wordsize_value || (*wordsize_value != 32 && *wordsize_value != 64)) return std::nullopt;
  guest.wordsize = static_cast<unsigned>(*wordsize_value);
  if (!ReadMachines(element, guest.machines)) return std::nullopt;
  for (const XmlElement* child : element.ChildrenNamed("domain")) {
    GuestDomain domain;
    if (!Required(*child, "type", domain.type) || domain.type.empty() ||
        !Required(*child, "emulator", domain.emulator) || !ReadMachines(*child, domain.machines)) {
      return std::nullopt;
    }
    guest.domains.push_back(std::move(domain));
  }
  if (guest.domains.empty()) return std::nullopt;
  for (const XmlElement* child : element.ChildrenNamed("feature")) {
    GuestFeature feature;
    if (!Required(*child, "name", feature.name) || feature.name.empty()) return std::nullopt;
    if (const std::string* default_on = child->Attribute("default")) {
      if (*default_on != "on" && *default_on != "off") return std::nullopt;
      feature.default_on = *default_on == "on";
    }
    if (child->Attribute("toggle") != nullptr) {
      bool toggle = false;
      if (!ReadYesNo(*child, "toggle", toggle)) return std::nullopt;
      feature.toggle = toggle;
    }
    guest.features.push_back(std::move(feature));
  }
  for (const XmlElement* child : element.ChildrenNamed("cpuModes")) {
    GuestCpuModes modes;
    if (!Required(*child, "virttype", modes.virttype) || modes.virttype.empty() ||
        !ReadYesNo(*child, "modelsProbed", modes.models_probed)) {
      return std::nullopt;
    }
    for (const XmlElement* entry : child->ChildrenNamed("model")) {
      GuestCpuModel model;
      if (!Required(*entry, "name", model.name) || model.name.empty() ||
          !ReadYesNo(*entry, "usable", model.usable)) {
        return std::nullopt;
      }
      for (const XmlElement* blocker : entry->ChildrenNamed("blocker")) {
        std::string name;
        if (!Required(*blocker, "name", name)) return std::nullopt;
        model.blockers.push_back(std::move(name));
      }
      modes.models.push_back(std::move(model));
    }
    if (const XmlElement* expansion = child->Child("expansion")) {
      if (!Required(*expansion, "type", modes.expansion_type) ||
          (modes.expansion_type != "static" && modes.expansion_type != "full")) {
        return std::nullopt;
      }
      std::vector<CpuModelProperty> properties;
      for (const XmlElement* entry : expansion->ChildrenNamed("property")) {
        CpuModelProperty property;
        std::string kind, value;
        if (!Required(*entry, "name", property.name) || property.name.empty() ||
            !Required(*entry, "kind", kind) || !Required(*entry, "value", value) ||
            !ReadYesNo(*entry, "migratable", property.migratable)) {
          return std::nullopt;
        }
        if (kind == "boolean") {
          if (value != "yes" && value != "no") return std::nullopt;
          property.kind = CpuModelProperty::Kind::kBoolean;
          property.enabled = value == "yes";
        } else if (kind == "number") {
          auto number = ParseInt(value);
          if (!number) return std::nullopt;
          property.kind = CpuModelProperty::Kind::kNumber;
          property.number = *number;
        } else if (kind == "string") {
          property.kind = CpuModelProperty::Kind::kString;
          property.text = value;
        } else {
          return std::nullopt;
        }
        properties.push_back(std::move(property));
      }
      modes.expansion = std::move(properties);
    }
    guest.cpu_modes.push_back(std::move(modes));
  }
  if (const XmlElement* facts = element.Child("deviceFacts")) {
    GuestDeviceFacts device_facts;
    const std::pair<const char*, SharedVector<std::string>*> lists[] = {
        {"answered", &device_facts.answered},
        {"found", &device_facts.found},
        {"hyperv", &device_facts.hyperv}};
    for (const auto& [tag, list] : lists) {
      for (const XmlElement* entry : facts->ChildrenNamed(tag)) {
        std::string name;
        if (!Required(*entry, "name", name) || name.empty()) return std::nullopt;
        list->push_back(std::move(name));
      }
    }
    guest.device_facts = std::move(device_facts);
  }
  return guest;
}

// mkdir -p; an existing directory is fine. New directories are 0755 whatever the
// umask, so CheckPrivateDirectory accepts what the agent made.
bool MakeDirectories(const std::string& path) {
  for (size_t slash = path.find('/', 1);; slash = path.find('/', slash + 1)) {
    std::string prefix = path.substr(0, slash);
    if (!prefix.empty()) {
      if (::mkdir(prefix.c_str(), 0755) == 0) {
        ::chmod(prefix.c_str(), 0755);
      } else if (errno != EEXIST) {
        return false;
      }
    }
    if (slash == std::string::npos) break;
  }
  return IsDirectory(path);
}

}  // namespace

Expected<QemuBinaryIdentity> StatQemuBinary(const std::string& exec_path) {
  struct stat st;
  if (::stat(exec_path.c_str(), &st) != 0) {
    return Status::Error(exec_path + ": " + std::strerror(errno));
  }
  return QemuBinaryIdentityOf(st);
}

QemuBinaryIdentity QemuBinaryIdentityOf(const struct stat& st) {
  QemuBinaryIdentity identity;
  identity.device = static_cast<uint64_t>(st.st_dev);
  identity.inode = static_cast<uint64_t>(st.st_ino);
  identity.size = static_cast<uint64_t>(st.st_size);
  identity.mtime_ns = Nanoseconds(st.st_mtim);
  identity.ctime_ns = Nanoseconds(st.st_ctim);
  return identity;
}

std::string QemuCacheKey(const std::string& emulator, const QemuBinaryIdentity& binary,
                         const QemuHostFacts& facts) {
  std::string key;
  for (const auto& [name, value] : MakeKey(emulator, binary, facts).attributes) {
    key += name + "=" + std::to_string(value.size()) + ":" + value + ";";  // unambiguous
  }
  return key;
}

std::string QemuCachePath(const std::string& cache_dir, const std::string& emulator) {
  uint64_t hash = 14695981039346656037ull;  // FNV-1a, 64 bits: stable across builds
  for (char c : emulator) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 1099511628211ull;
  }
  char name[40];
  std::snprintf(name, sizeof(name), "qemu-%016llx.xml", static_cast<unsigned long long>(hash));
  return JoinPath(cache_dir, name);
}

std::optional<Guest> ReadQemuCache(const std::string& cache_dir, const std::string& emulator,
                                   const QemuBinaryIdentity& binary, const QemuHostFacts& facts) {
  // Only our own directory and our own regular files count: a planted symlink, FIFO
  // or forged entry is a miss, and the rewrite replaces it.
  if (!CheckPrivateDirectory(cache_dir).ok()) return std::nullopt;
  auto text = ReadPrivateFile(QemuCachePath(cache_dir, emulator), kMaxCacheFileBytes);
  if (!text) return std::nullopt;
  auto document = ParseXml(*text);
  if (!document || document->name != kRootName) return std::nullopt;
  const std::string* version = document->Attribute("version");
  if (version == nullptr || *version != kFormatVersion) return std::nullopt;
  const XmlElement* key = document->Child("key");
  if (key == nullptr || key->attributes != MakeKey(emulator, binary, facts).attributes) {
    return std::nullopt;
  }
  std::vector<const XmlElement*> guests = document->ChildrenNamed("guest");
  if (guests.size() != 1) return std::nullopt;
  std::optional<Guest> guest = GuestFromXml(*guests.front());
  if (!guest || guest->emulator != emulator) return std::nullopt;
  return guest;
}

bool WriteQemuCache(const std::string& cache_dir, const std::string& emulator,
                    const QemuBinaryIdentity& binary, const QemuHostFacts& facts,
                    const Guest& guest) {
  if (cache_dir.empty() || !MakeDirectories(cache_dir)) return false;
  if (!CheckPrivateDirectory(cache_dir).ok()) return false;
  XmlElement root(kRootName);
  root.SetAttribute("version", kFormatVersion);
  root.children.push_back(MakeKey(emulator, binary, facts));
  root.children.push_back(GuestToXml(guest));
  return WriteFileAtomically(QemuCachePath(cache_dir, emulator), WriteXml(root)).ok();
}

}  // namespace virtcaps
