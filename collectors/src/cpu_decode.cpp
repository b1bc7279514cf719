#include "virtcaps/cpu_decode.h"

#include <algorithm>
#include <cstdio>
#include <mutex>

namespace virtcaps {

namespace {

// Leaf counts beyond this are garbage (no CPU has them); they are not followed.
constexpr uint32_t kMaxLeavesPerRange = 0x100;
constexpr uint32_t kMaxSubleaves = 64;
constexpr uint32_t kArchCapabilitiesMsr = 0x10a;

void Put(X86Data& data, uint32_t leaf, uint32_t subleaf, const CpuidRegisters& registers) {
  data.cpuid[{leaf, subleaf}] = registers;
}

void QueryInto(const CpuidSource& cpuid, X86Data& data, uint32_t leaf, uint32_t subleaf) {
  if (auto registers = cpuid.Query(leaf, subleaf)) Put(data, leaf, subleaf, *registers);
}

void ReadRange(const CpuidSource& cpuid, uint32_t base, X86Data& data) {
  auto top = cpuid.Query(base, 0);
  if (!top || top->eax < base) return;
  uint32_t last = std::min(top->eax, base + kMaxLeavesPerRange);
  for (uint32_t leaf = base; leaf <= last; ++leaf) {
    auto sub0 = cpuid.Query(leaf, 0);
    if (!sub0) continue;
    switch (leaf) {
      case 0x7:
      case 0x14:
      case 0x17:
        // Subleaf 0 EAX is the last valid subleaf (leaf 0x17 only counts from 3 up).
        if (leaf == 0x17 && sub0->eax < 3) break;
        Put(data, leaf, 0, *sub0);
        for (uint32_t sub = 1; sub <= std::min(sub0->eax, kMaxSubleaves); ++sub) {
          QueryInto(cpuid, data, leaf, sub);
        }
        break;
      case 0xb:
        // Extended topology: subleaf 0 counts only when it describes a level.
        if (sub0->ecx & 0xff00) Put(data, leaf, 0, *sub0);
        break;
      case 0xd:
        Put(data, leaf, 0, *sub0);
        QueryInto(cpuid, data, leaf, 1);
        break;
      case 0xf:
      case 0x10: {
        // Resource ids: subleaf n exists when bit n of EDX (0xf) / EBX (0x10) is set.
        Put(data, leaf, 0, *sub0);
        uint32_t resources = leaf == 0xf ? sub0->edx : sub0->ebx;
        for (uint32_t sub = 1; sub < 32; ++sub) {
          if (resources & (1u << sub)) QueryInto(cpuid, data, leaf, sub);
        }
        break;
      }
      case 0x12: {
        // SGX leaves only when leaf 7 says SGX (EBX bit 2).
        auto leaf7 = data.cpuid.find({0x7, 0});
        if (leaf7 == data.cpuid.end() || !(leaf7->second.ebx & (1u << 2))) break;
        Put(data, leaf, 0, *sub0);
        QueryInto(cpuid, data, leaf, 1);
        break;
      }
      default:
        Put(data, leaf, 0, *sub0);
    }
  }
}

// Names of the map's features wholly contained in `data`, in map order; each match
// takes its bits away so that one bit is named once.
std::vector<std::string> FeaturesIn(const X86CpuMap& map, X86Data data) {
  std::vector<std::string> names;
  for (const X86Feature& feature : map.features) {
    if (data.Contains(feature.data)) {
      data.Subtract(feature.data);
      names.push_back(feature.name);
    }
  }
  return names;
}

// The vendor whose CPUID leaf 0 string the host reports; its bits are cleared so no
// feature can claim them.
const X86Vendor* TakeVendor(const X86CpuMap& map, X86Data& data) {
  auto leaf0 = data.cpuid.find({0, 0});
  if (leaf0 == data.cpuid.end()) return nullptr;
  for (const X86Vendor& vendor : map.vendors) {
    uint32_t words[3] = {0, 0, 0};  // EBX, EDX, ECX: "Genu" "ineI" "ntel"
    for (int i = 0; i < 12; ++i) {
      words[i / 4] |= static_cast<uint32_t>(static_cast<unsigned char>(vendor.id_string[i]))
                      << (8 * (i % 4));
    }
    CpuidRegisters& registers = leaf0->second;
    if (registers.ebx == words[0] && registers.edx == words[1] && registers.ecx == words[2]) {
      registers.ebx = registers.ecx = registers.edx = 0;
      return &vendor;
    }
  }
  return nullptr;
}

bool SignatureMatches(const X86Model& model, const X86SignatureFields& host) {
  return std::any_of(model.signatures.begin(), model.signatures.end(),
                     [&](const X86Signature& signature) {
                       return signature.family == host.family && signature.model == host.model &&
                              (!signature.steppings ||
                               (host.stepping < 32 && (*signature.steppings >> host.stepping) & 1));
                     });
}

// libvirt's choice between the candidate models that fit: a model whose signature
// matches the CPU's beats one whose does not; otherwise the one that needs fewer
// features listed beside it. `chosen` is the best so far (nullptr: none yet).
bool IsBetterCandidate(const X86Model& candidate, size_t candidate_features, const X86Model* chosen,
                       size_t chosen_features, const X86SignatureFields* signature) {
  if (chosen == nullptr) return true;
  if (signature != nullptr &&
      SignatureMatches(*chosen, *signature) != SignatureMatches(candidate, *signature)) {
    return SignatureMatches(candidate, *signature);
  }
  return candidate_features < chosen_features;
}

// Haswell and early Haswell-EP/Broadwell parts whose TSX microcode disabled: libvirt
// ignores hle/rtm there, so the noTSX models fit.
void DropBrokenTsx(const X86CpuMap& map, const X86Vendor* vendor,
                   const X86SignatureFields& signature, X86Data& data) {
  if (vendor == nullptr || vendor->name != "Intel" || signature.family != 6) return;
  unsigned model = signature.model;
  if (!((model == 63 && signature.stepping < 4) || model == 60 || model == 69 || model == 70)) {
    return;
  }
  for (const char* name : {"hle", "rtm"}) {
    if (const X86Feature* feature = map.FindFeature(name)) data.Subtract(feature->data);
  }
}

std::string Hex(uint32_t value, int digits) {
  char buffer[16];
  std::snprintf(buffer, sizeof(buffer), "0x%0*x", digits, value);
  return buffer;
}

}  // namespace

X86SignatureFields X86SignatureFromLeaf1(uint32_t eax) {
  // libvirt adds the extended fields unconditionally (they are zero where unused).
  X86SignatureFields fields;
  fields.family = ((eax >> 20) & 0xff) + ((eax >> 8) & 0xf);
  fields.model = ((eax >> 12) & 0xf0) + ((eax >> 4) & 0xf);
  fields.stepping = eax & 0xf;
  return fields;
}

X86Data ReadX86HostData(const CpuidSource& cpuid, const MsrReader* msr, const X86CpuMap& map) {
  X86Data data;
  ReadRange(cpuid, 0x0, data);
  ReadRange(cpuid, 0x80000000u, data);
  const X86Feature* arch_capabilities = map.FindFeature("arch-capabilities");
  if (msr && arch_capabilities && data.Contains(arch_capabilities->data)) {
    if (auto value = msr->ReadFeature(kArchCapabilitiesMsr))
      data.msr[kArchCapabilitiesMsr] = *value;
  }
  return data;
}

Expected<DecodedCpu> DecodeX86HostCpu(const X86CpuMap& map, X86Data data) {
  const X86Vendor* vendor = TakeVendor(map, data);
  X86SignatureFields signature;
  bool have_signature = false;
  if (auto leaf1 = data.cpuid.find({1, 0}); leaf1 != data.cpuid.end()) {
    signature = X86SignatureFromLeaf1(leaf1->second.eax);
    have_signature = (leaf1->second.eax & 0x0fff3fff) != 0;
  }
  DropBrokenTsx(map, vendor, signature, data);

  const X86Model* chosen = nullptr;
  std::vector<std::string> chosen_features;
  for (auto model = map.models.rbegin(); model != map.models.rend(); ++model) {
    if (!model->decode_host) continue;
    if (vendor && !model->vendor.empty() && model->vendor != vendor->name) continue;
    // A host CPU lists only what it adds to the model: a model the host cannot
    // fully provide is never its name.
    X86Data missing = model->data;
    missing.Subtract(data);
    if (!FeaturesIn(map, missing).empty()) continue;
    X86Data extra = data;
    extra.Subtract(model->data);
    std::vector<std::string> features = FeaturesIn(map, extra);

    if (IsBetterCandidate(*model, features.size(), chosen, chosen_features.size(),
                          have_signature ? &signature : nullptr)) {
      chosen = &*model;
      chosen_features = std::move(features);
    }
  }
  if (chosen == nullptr) {
    return Status::Error("no CPU model of the map fits this CPU (vendor " +
                         (vendor ? vendor->name : std::string("unknown")) + ")");
  }
  DecodedCpu decoded;
  decoded.model = chosen->name;
  decoded.vendor = vendor ? vendor->name : std::string();
  decoded.features = std::move(chosen_features);
  return decoded;
}

Expected<DecodedCpu> DecodeX86HostCpuRemembered(const std::shared_ptr<const X86CpuMap>& map,
                                                X86Data data, bool* reused) {
  struct Memory {
    std::mutex mutex;
    std::shared_ptr<const X86CpuMap> map;  // held, so its address is not reused
    X86Data data;
    std::optional<Expected<DecodedCpu>> decoded;
  };
  static auto* memory = new Memory();  // never destroyed: used until exit
  {
    std::lock_guard<std::mutex> lock(memory->mutex);
    if (memory->decoded && memory->map == map && memory->data == data) {
      if (reused) *reused = true;
      return *memory->decoded;
    }
  }
  if (reused) *reused = false;
  Expected<DecodedCpu> decoded = DecodeX86HostCpu(*map, data);
  std::lock_guard<std::mutex> lock(memory->mutex);
  memory->map = map;
  memory->data = std::move(data);
  memory->decoded = decoded;
  return decoded;
}

Expected<DecodedCpu> DecodeArmHostCpu(const IdCpuMap& map, uint32_t implementer, uint32_t part) {
  DecodedCpu decoded;
  for (const IdCpuModel& model : map.models) {
    bool matches = std::any_of(model.ids.begin(), model.ids.end(), [&](const auto& id) {
      return (part & id.second) == (id.first & id.second);
    });
    if (matches) {
      decoded.model = model.name;
      break;
    }
  }
  if (decoded.model.empty()) {
    return Status::Error("the CPU map has no model with part number " + Hex(part, 3));
  }
  for (const auto& [name, value] : map.vendors) {
    if (value && *value == implementer) decoded.vendor = name;
  }
  if (decoded.vendor.empty()) {
    return Status::Error("the CPU map has no vendor with implementer code " + Hex(implementer, 2));
  }
  return decoded;
}

Expected<DecodedCpu> DecodePowerHostCpu(const IdCpuMap& map, uint32_t pvr) {
  for (const IdCpuModel& model : map.models) {
    for (const auto& [value, mask] : model.ids) {
      if ((pvr & mask) == value) return DecodedCpu{model.name, model.vendor, {}};
    }
  }
  return Status::Error("the CPU map has no model with PVR " + Hex(pvr, 8));
}

}  // namespace virtcaps

namespace virtcaps {

namespace {

// (libvirt's map name, QEMU's property name) where the two differ. Found by comparing
// Debian 12's cpu_map/x86_features.xml with QEMU 7.2's expansion properties.
constexpr std::pair<std::string_view, std::string_view> kQemuFeatureNames[] = {
    {"cmp_legacy", "cmp-legacy"},       {"ds_cpl", "ds-cpl"},
    {"fxsr_opt", "fxsr-opt"},           {"kvm_pv_eoi", "kvm-pv-eoi"},
    {"kvm_pv_unhalt", "kvm-pv-unhalt"}, {"lahf_lm", "lahf-lm"},
    {"nodeid_msr", "nodeid-msr"},       {"pclmuldq", "pclmulqdq"},
    {"perfctr_core", "perfctr-core"},   {"perfctr_nb", "perfctr-nb"},
    {"tsc_adjust", "tsc-adjust"},
};

// CPUID leaf 1 EAX for a family/model/stepping (the inverse of X86SignatureFromLeaf1).
uint32_t Leaf1Signature(int64_t family, int64_t model, int64_t stepping) {
  auto f = static_cast<uint32_t>(std::clamp<int64_t>(family, 0, 0xff + 0xf));
  auto m = static_cast<uint32_t>(std::clamp<int64_t>(model, 0, 0xff));
  auto s = static_cast<uint32_t>(std::clamp<int64_t>(stepping, 0, 0xf));
  uint32_t eax = 0;
  if (f > 0xf) {
    eax |= (f - 0xf) << 20;
    f = 0xf;
  }
  return eax | (f << 8) | ((m & 0xf) << 4) | ((m & 0xf0) << 12) | s;
}

}  // namespace

std::string LibvirtX86FeatureName(std::string_view qemu_name) {
  for (const auto& [libvirt, qemu] : kQemuFeatureNames) {
    if (qemu == qemu_name) return std::string(libvirt);
  }
  return std::string(qemu_name);
}

X86Data X86DataFromExpansion(const X86CpuMap& map, const std::vector<CpuModelProperty>& expansion,
                             bool migratable_only) {
  X86Data data;
  int64_t family = 0, model = 0, stepping = 0;
  for (const CpuModelProperty& property : expansion) {
    switch (property.kind) {
      case CpuModelProperty::Kind::kBoolean: {
        if (!property.enabled || (migratable_only && !property.migratable)) break;
        if (const X86Feature* feature = map.FindFeature(LibvirtX86FeatureName(property.name))) {
          data.Add(feature->data);
        }
        break;
      }
      case CpuModelProperty::Kind::kString:
        if (property.name == "vendor" && property.text.size() == 12) {
          uint32_t words[3] = {0, 0, 0};  // EBX, EDX, ECX
          for (int i = 0; i < 12; ++i) {
            words[i / 4] |= static_cast<uint32_t>(static_cast<unsigned char>(property.text[i]))
                            << (8 * (i % 4));
          }
          CpuidRegisters& leaf0 = data.cpuid[{0, 0}];
          leaf0.ebx = words[0];
          leaf0.edx = words[1];
          leaf0.ecx = words[2];
        }
        break;
      case CpuModelProperty::Kind::kNumber:
        if (property.name == "family") family = property.number;
        if (property.name == "model") model = property.number;
        if (property.name == "stepping") stepping = property.number;
        break;
    }
  }
  data.cpuid[{1, 0}].eax |= Leaf1Signature(family, model, stepping);
  return data;
}

Expected<GuestHostModel> DecodeX86HypervisorCpu(const X86CpuMap& map, X86Data data,
                                                const std::vector<HypervisorCpuModel>& models) {
  const X86Vendor* vendor = TakeVendor(map, data);
  X86SignatureFields signature;
  bool have_signature = false;
  if (auto leaf1 = data.cpuid.find({1, 0}); leaf1 != data.cpuid.end()) {
    signature = X86SignatureFromLeaf1(leaf1->second.eax);
    have_signature = (leaf1->second.eax & 0x0fff3fff) != 0;
  }
  DropBrokenTsx(map, vendor, signature, data);

  const X86Model* chosen = nullptr;
  std::vector<CpuFeaturePolicy> chosen_features;
  for (auto model = map.models.rbegin(); model != map.models.rend(); ++model) {
    auto offered = std::find_if(models.begin(), models.end(),
                                [&](const HypervisorCpuModel& m) { return m.name == model->name; });
    if (offered == models.end()) continue;  // the hypervisor does not know it
    if (vendor && !model->vendor.empty() && model->vendor != vendor->name) continue;
    X86Data extra = data;
    extra.Subtract(model->data);
    X86Data missing = model->data;
    missing.Subtract(data);
    // A blocker the data does not provide beyond the model is disabled too.
    for (const std::string& blocker : offered->blockers) {
      const X86Feature* feature = map.FindFeature(blocker);
      if (feature != nullptr && !extra.Contains(feature->data)) missing.Add(feature->data);
    }
    if (!model->decode_guest) continue;
    std::vector<CpuFeaturePolicy> features;
    for (std::string& name : FeaturesIn(map, extra)) features.push_back({"require", name});
    for (std::string& name : FeaturesIn(map, missing)) features.push_back({"disable", name});
    // The model's removed features are not in its data: a present one is already
    // required above; one not yet listed is disabled after the others, in the model's
    // order (libvirt always names them for a guest CPU, so they count as listed).
    for (const std::string& name : model->removed_features) {
      bool listed = std::any_of(features.begin(), features.end(),
                                [&](const CpuFeaturePolicy& f) { return f.name == name; });
      if (!listed && map.FindFeature(name) != nullptr) features.push_back({"disable", name});
    }

    if (IsBetterCandidate(*model, features.size(), chosen, chosen_features.size(),
                          have_signature ? &signature : nullptr)) {
      chosen = &*model;
      chosen_features = std::move(features);
    }
  }
  if (chosen == nullptr) {
    return Status::Error("no CPU model the hypervisor offers fits its CPU (vendor " +
                         (vendor ? vendor->name : std::string("unknown")) + ")");
  }
  GuestHostModel decoded;
  decoded.model = chosen->name;
  decoded.vendor = vendor ? vendor->name : std::string();
  decoded.features = std::move(chosen_features);
  return decoded;
}

}  // namespace virtcaps
