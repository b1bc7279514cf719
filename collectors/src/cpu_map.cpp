#include "virtcaps/cpu_map.h"

#include <algorithm>
#include <functional>

#include "virtcaps/files.h"
#include "virtcaps/strings.h"
#include "virtcaps/xml.h"

namespace virtcaps {

namespace {

uint32_t& Register(CpuidRegisters& registers, int which) {
  switch (which) {
    case 0:
      return registers.eax;
    case 1:
      return registers.ebx;
    case 2:
      return registers.ecx;
    default:
      return registers.edx;
  }
}

uint32_t Register(const CpuidRegisters& registers, int which) {
  return Register(const_cast<CpuidRegisters&>(registers), which);
}

constexpr size_t kMaxMapFileBytes = 1u << 20;
constexpr size_t kMaxIncludes = 512;

// One map file's root (<cpus>) and its name, for messages.
struct MapFile {
  std::string name;
  XmlElement root;
};

Expected<MapFile> ReadMapFile(const std::string& dir, const std::string& name) {
  std::string path = JoinPath(dir, name);
  auto text = ReadFile(path, kMaxMapFileBytes);
  if (!text) return text.status();
  auto root = ParseXml(*text);
  if (!root) return Status::Error(path + ": " + root.error());
  if (root->name != "cpus") return Status::Error(path + ": root element is not <cpus>");
  return MapFile{path, std::move(*root)};
}

// Calls `visit` for every vendor/feature/model element of one architecture, in map
// order: index.xml's <arch name=ARCH> children, with each <include> expanded in place.
Status VisitArch(const std::string& dir, const std::string& map_arch,
                 const std::function<Status(const std::string& file, const XmlElement&)>& visit) {
  auto index = ReadMapFile(dir, "index.xml");
  if (!index) return index.status();
  const XmlElement* arch = nullptr;
  for (const XmlElement* candidate : index->root.ChildrenNamed("arch")) {
    const std::string* name = candidate->Attribute("name");
    if (name && *name == map_arch) arch = candidate;
  }
  if (arch == nullptr) return Status::Error(index->name + ": no <arch name='" + map_arch + "'>");
  size_t includes = 0;
  for (const XmlElement& child : arch->children) {
    if (child.name != "include") {
      if (Status s = visit(index->name, child); !s.ok()) return s;
      continue;
    }
    const std::string* file = child.Attribute("filename");
    // Plain names only: the map is one directory, and a path could leave it.
    if (file == nullptr || file->empty() || file->find('/') != std::string::npos || *file == "." ||
        *file == "..") {
      return Status::Error(index->name + ": <include> needs a plain filename");
    }
    if (++includes > kMaxIncludes) return Status::Error(index->name + ": too many includes");
    auto included = ReadMapFile(dir, *file);
    if (!included) return included.status();
    for (const XmlElement& element : included->root.children) {
      if (Status s = visit(included->name, element); !s.ok()) return s;
    }
  }
  return Status();
}

Expected<uint32_t> HexAttribute(const std::string& file, const XmlElement& element,
                                std::string_view key, bool required) {
  const std::string* text = element.Attribute(key);
  if (text == nullptr) {
    if (required) {
      return Status::Error(file + ": <" + element.name + "> lacks " + std::string(key));
    }
    return 0u;
  }
  auto value = ParseHex(*text);
  if (!value || *value > 0xffffffffu) {
    return Status::Error(file + ": <" + element.name + " " + std::string(key) + "='" + *text +
                         "'> is not a 32-bit hexadecimal number");
  }
  return static_cast<uint32_t>(*value);
}

std::string NameOf(const XmlElement& element) {
  const std::string* name = element.Attribute("name");
  return name ? *name : std::string();
}

// "0-4", "5,7", "10-11" as a bit set of steppings 0..31.
std::optional<uint32_t> ParseSteppings(std::string_view text) {
  auto list = ParseCpuList(text);
  if (!list || list->empty()) return std::nullopt;
  uint32_t bits = 0;
  for (unsigned stepping : *list) {
    if (stepping > 31) return std::nullopt;
    bits |= 1u << stepping;
  }
  return bits;
}

Status ParseX86Feature(const std::string& file, const XmlElement& element, X86CpuMap& map) {
  X86Feature feature;
  feature.name = NameOf(element);
  if (feature.name.empty()) return Status::Error(file + ": <feature> without a name");
  if (map.FindFeature(feature.name)) {
    return Status::Error(file + ": feature '" + feature.name + "' defined twice");
  }
  if (const std::string* migratable = element.Attribute("migratable")) {
    feature.migratable = *migratable != "no";
  }
  for (const XmlElement& child : element.children) {
    if (child.name == "cpuid") {
      auto leaf = HexAttribute(file, child, "eax_in", true);
      auto subleaf = HexAttribute(file, child, "ecx_in", false);
      if (!leaf) return leaf.status();
      if (!subleaf) return subleaf.status();
      CpuidRegisters& bits = feature.data.cpuid[{*leaf, *subleaf}];
      static const char* kNames[] = {"eax", "ebx", "ecx", "edx"};
      for (int which = 0; which < 4; ++which) {
        auto value = HexAttribute(file, child, kNames[which], false);
        if (!value) return value.status();
        Register(bits, which) |= *value;
      }
    } else if (child.name == "msr") {
      auto index = HexAttribute(file, child, "index", true);
      auto eax = HexAttribute(file, child, "eax", false);
      auto edx = HexAttribute(file, child, "edx", false);
      if (!index) return index.status();
      if (!eax) return eax.status();
      if (!edx) return edx.status();
      feature.data.msr[*index] |= (static_cast<uint64_t>(*edx) << 32) | *eax;
    }
    // <alias> names QEMU's spelling; libvirt prints its own name.
  }
  if (feature.data.Empty()) {
    return Status::Error(file + ": feature '" + feature.name + "' has no cpuid or msr bits");
  }
  map.features.push_back(std::move(feature));
  return Status();
}

Status ParseX86Model(const std::string& file, const XmlElement& element, X86CpuMap& map) {
  X86Model model;
  model.name = NameOf(element);
  if (model.name.empty()) return Status::Error(file + ": <model> without a name");
  auto where = [&](const std::string& what) {
    return Status::Error(file + ": model '" + model.name + "': " + what);
  };
  bool own_signatures = false;
  for (const XmlElement& child : element.children) {
    if (child.name == "model") {
      // An ancestor: its vendor, signatures and features come first.
      std::string parent = NameOf(child);
      auto found = std::find_if(map.models.begin(), map.models.end(),
                                [&](const X86Model& m) { return m.name == parent; });
      if (found == map.models.end()) return where("unknown ancestor '" + parent + "'");
      model.vendor = found->vendor;
      model.signatures = found->signatures;
      model.data = found->data;
    } else if (child.name == "decode") {
      const std::string* host = child.Attribute("host");
      const std::string* guest = child.Attribute("guest");
      if (host) model.decode_host = *host == "on";
      if (guest) model.decode_guest = *guest == "on";
    } else if (child.name == "signature") {
      auto family = ParseUint(child.Attribute("family") ? *child.Attribute("family") : "");
      auto number = ParseUint(child.Attribute("model") ? *child.Attribute("model") : "");
      if (!family || !number || *family > 0xffff || *number > 0xffff) {
        return where("<signature> needs numeric family and model");
      }
      X86Signature signature{static_cast<unsigned>(*family), static_cast<unsigned>(*number), {}};
      if (const std::string* stepping = child.Attribute("stepping")) {
        signature.steppings = ParseSteppings(*stepping);
        if (!signature.steppings) return where("bad signature stepping '" + *stepping + "'");
      }
      // A model's own signatures replace its ancestor's.
      if (!own_signatures) model.signatures.clear();
      own_signatures = true;
      model.signatures.push_back(signature);
    } else if (child.name == "vendor") {
      std::string vendor = NameOf(child);
      bool known = std::any_of(map.vendors.begin(), map.vendors.end(),
                               [&](const X86Vendor& v) { return v.name == vendor; });
      if (!known) return where("unknown vendor '" + vendor + "'");
      model.vendor = vendor;
    } else if (child.name == "feature") {
      const X86Feature* feature = map.FindFeature(NameOf(child));
      if (feature == nullptr) return where("unknown feature '" + NameOf(child) + "'");
      // removed='yes': QEMU dropped it from its model; libvirt keeps the name (a guest
      // CPU of this model lists it disabled) but it is not part of the model's data,
      // so a host that has it lists it as an extra feature. Not inherited.
      const std::string* removed = child.Attribute("removed");
      if (removed && *removed == "yes") {
        model.removed_features.push_back(feature->name);
        continue;
      }
      model.data.Add(feature->data);
    }
  }
  map.models.push_back(std::move(model));
  return Status();
}

}  // namespace

void X86Data::Add(const X86Data& other) {
  for (const auto& [key, bits] : other.cpuid) {
    CpuidRegisters& mine = cpuid[key];
    for (int which = 0; which < 4; ++which) Register(mine, which) |= Register(bits, which);
  }
  for (const auto& [index, bits] : other.msr) msr[index] |= bits;
}

void X86Data::Subtract(const X86Data& other) {
  for (const auto& [key, bits] : other.cpuid) {
    auto found = cpuid.find(key);
    if (found == cpuid.end()) continue;
    for (int which = 0; which < 4; ++which) {
      Register(found->second, which) &= ~Register(bits, which);
    }
  }
  for (const auto& [index, bits] : other.msr) {
    auto found = msr.find(index);
    if (found != msr.end()) found->second &= ~bits;
  }
}

bool X86Data::Contains(const X86Data& subset) const {
  for (const auto& [key, bits] : subset.cpuid) {
    auto found = cpuid.find(key);
    for (int which = 0; which < 4; ++which) {
      uint32_t want = Register(bits, which);
      uint32_t have = found == cpuid.end() ? 0 : Register(found->second, which);
      if ((have & want) != want) return false;
    }
  }
  for (const auto& [index, bits] : subset.msr) {
    auto found = msr.find(index);
    uint64_t have = found == msr.end() ? 0 : found->second;
    if ((have & bits) != bits) return false;
  }
  return true;
}

bool X86Data::Empty() const {
  for (const auto& [key, bits] : cpuid) {
    if (bits.eax | bits.ebx | bits.ecx | bits.edx) return false;
  }
  for (const auto& [index, bits] : msr) {
    if (bits) return false;
  }
  return true;
}

const X86Feature* X86CpuMap::FindFeature(std::string_view name) const {
  for (const X86Feature& feature : features) {
    if (feature.name == name) return &feature;
  }
  return nullptr;
}

std::string CpuMapArchFor(const std::string& libvirt_arch) {
  if (libvirt_arch == "x86_64" || libvirt_arch == "i686") return "x86";
  if (libvirt_arch == "aarch64" || libvirt_arch == "armv7l") return "arm";
  if (libvirt_arch.rfind("ppc64", 0) == 0) return "ppc64";
  return "";
}

Expected<X86CpuMap> LoadX86CpuMap(const std::string& dir) {
  X86CpuMap map;
  Status status = VisitArch(dir, "x86", [&](const std::string& file, const XmlElement& element) {
    if (element.name == "vendor") {
      X86Vendor vendor{NameOf(element),
                       element.Attribute("string") ? *element.Attribute("string") : std::string()};
      if (vendor.name.empty() || vendor.id_string.size() != 12) {
        return Status::Error(file + ": <vendor> needs a name and a 12-character string");
      }
      map.vendors.push_back(std::move(vendor));
    } else if (element.name == "feature") {
      return ParseX86Feature(file, element, map);
    } else if (element.name == "model") {
      return ParseX86Model(file, element, map);
    }
    return Status();
  });
  if (!status.ok()) return status;
  if (map.models.empty()) return Status::Error(JoinPath(dir, "index.xml") + ": no x86 models");
  return map;
}

Expected<IdCpuMap> LoadIdCpuMap(const std::string& dir, const std::string& map_arch) {
  IdCpuMap map;
  Status status = VisitArch(dir, map_arch, [&](const std::string& file, const XmlElement& element) {
    if (element.name == "vendor") {
      std::optional<uint32_t> value;
      if (element.Attribute("value")) {
        auto parsed = HexAttribute(file, element, "value", true);
        if (!parsed) return parsed.status();
        value = *parsed;
      }
      if (NameOf(element).empty()) return Status::Error(file + ": <vendor> without a name");
      map.vendors.emplace_back(NameOf(element), value);
    } else if (element.name == "model") {
      IdCpuModel model;
      model.name = NameOf(element);
      if (model.name.empty()) return Status::Error(file + ": <model> without a name");
      for (const XmlElement& child : element.children) {
        if (child.name == "vendor") model.vendor = NameOf(child);
        if (child.name != "pvr") continue;
        auto value = HexAttribute(file, child, "value", true);
        if (!value) return value.status();
        bool has_mask = child.Attribute("mask") != nullptr;
        auto mask = HexAttribute(file, child, "mask", false);
        if (!mask) return mask.status();
        model.ids.emplace_back(*value, has_mask ? *mask : 0xffffffffu);
      }
      map.models.push_back(std::move(model));
    }
    return Status();
  });
  if (!status.ok()) return status;
  return map;
}

}  // namespace virtcaps
