#include "virtcaps/cpu_vocabulary.h"

#include <algorithm>
#include <list>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "virtcaps/cpu_decode.h"
#include "virtcaps/cpu_map.h"
#include "virtcaps/qemu.h"
#include "virtcaps/strings.h"

namespace virtcaps {

namespace {

bool IsX86(const std::string& arch) { return arch == "x86_64" || arch == "i686"; }

// The invariant TSC's frequency the way libvirt finds it (KVM_GET_TSC_KHZ on a
// scratch vCPU), else what CPUID says: the hypervisor's TSC leaf 0x40000010 (kHz)
// or leaf 0x15 (crystal clock times the TSC/crystal ratio).
std::optional<TscCounter> FindTsc(const CollectContext& context, const CpuidSource& cpuid) {
  auto power = cpuid.Query(0x80000007, 0);
  auto top = cpuid.Query(0x80000000, 0);
  bool invariant = top && top->eax >= 0x80000007 && power && ((power->edx >> 8) & 1);
  if (!invariant) return std::nullopt;  // libvirt only asks with invariant TSC
  TscCounter tsc;
  if (context.probes.kvm) {
    KvmIoctlResult kvm = context.probes.kvm->Probe(context.paths.Dev("kvm"));
    if (kvm.tsc_khz) {
      tsc.frequency_hz = *kvm.tsc_khz * 1000;
      tsc.scaling = kvm.tsc_scaling;
      tsc.source = "kvm";
      return tsc;
    }
  }
  auto hypervisor = cpuid.Query(0x40000000, 0);
  if (hypervisor && hypervisor->eax >= 0x40000010) {
    if (auto timing = cpuid.Query(0x40000010, 0); timing && timing->eax > 0) {
      tsc.frequency_hz = static_cast<uint64_t>(timing->eax) * 1000;
      tsc.source = "cpuid-0x40000010";
      return tsc;
    }
  }
  auto basic = cpuid.Query(0, 0);
  if (basic && basic->eax >= 0x15) {
    auto ratio = cpuid.Query(0x15, 0);
    if (ratio && ratio->eax && ratio->ebx && ratio->ecx) {
      tsc.frequency_hz = static_cast<uint64_t>(ratio->ecx) * ratio->ebx / ratio->eax;
      tsc.source = "cpuid-0x15";
      return tsc;
    }
  }
  return std::nullopt;
}

// "revision : 2.2 (pvr 004e 1202)" -> 0x004e1202
std::optional<uint32_t> PvrFromCpuinfo(const Cpuinfo& cpuinfo) {
  std::string revision = cpuinfo.Get("revision");
  size_t at = revision.find("(pvr ");
  if (at == std::string::npos) return std::nullopt;
  size_t end = revision.find(')', at);
  if (end == std::string::npos) return std::nullopt;
  std::string digits;
  std::string inside = revision.substr(at + 5, end - at - 5);  // the views below point into it
  for (std::string_view word : SplitWhitespace(inside)) {
    digits += word;
  }
  auto value = ParseHex(digits);
  if (!value || *value > 0xffffffffu) return std::nullopt;
  return static_cast<uint32_t>(*value);
}

Status DescribeX86(const CollectContext& context, const std::string& map_dir, HostCpu& cpu) {
  const CpuidSource* cpuid = context.probes.cpuid.get();
  if (cpuid == nullptr || !cpuid->status().ok()) return Status();  // nothing to decode
  cpu.tsc = FindTsc(context, *cpuid);
  LazyX86CpuMap own_map(map_dir);
  const auto& map = (context.x86_cpu_map ? *context.x86_cpu_map : own_map).Get();
  if (!map) return Status::Error("CPU model unknown: " + map.error());
  X86Data data = ReadX86HostData(*cpuid, context.probes.msr.get(), **map);
  auto decoded = DecodeX86HostCpuRemembered(*map, std::move(data));
  if (!decoded) return Status::Error("CPU model unknown: " + decoded.error());
  cpu.libvirt_model = decoded->model;
  cpu.libvirt_features = decoded->features;
  if (!decoded->vendor.empty()) cpu.vendor = decoded->vendor;
  return Status();
}

Status DescribeByIds(const std::string& map_dir, const Cpuinfo& cpuinfo, HostCpu& cpu) {
  std::string map_arch = CpuMapArchFor(cpu.arch);
  Expected<DecodedCpu> decoded = Status::Error("no identification in /proc/cpuinfo");
  if (map_arch == "arm") {
    auto implementer = ParseHex(cpuinfo.Get("CPU implementer"));
    auto part = ParseHex(cpuinfo.Get("CPU part"));
    if (!implementer || !part) return Status();  // nothing libvirt could decode either
    auto map = LoadIdCpuMap(map_dir, map_arch);
    if (!map) return Status::Error("CPU model unknown: " + map.error());
    decoded = DecodeArmHostCpu(*map, static_cast<uint32_t>(*implementer & 0xff),
                               static_cast<uint32_t>(*part & 0xfff));
  } else {
    auto pvr = PvrFromCpuinfo(cpuinfo);
    if (!pvr) return Status();
    auto map = LoadIdCpuMap(map_dir, map_arch);
    if (!map) return Status::Error("CPU model unknown: " + map.error());
    decoded = DecodePowerHostCpu(*map, *pvr);
  }
  // A CPU the map does not know gets no model, as in libvirt; that is not a failure.
  if (!decoded) return Status();
  cpu.libvirt_model = decoded->model;
  if (!decoded->vendor.empty()) cpu.vendor = decoded->vendor;
  return Status();
}

}  // namespace

namespace {

// The vendor of each model of a map, by name ("unknown" for generic models), made once
// per remembered map (held here, so its address stands for its contents): naming a
// guest's ~100 models searched the map's ~100 models for each, every refresh.
std::shared_ptr<const std::unordered_map<std::string, std::string>> ModelVendors(
    const std::shared_ptr<const X86CpuMap>& map) {
  static std::mutex mutex;
  static auto* held = new std::shared_ptr<const X86CpuMap>();  // never destroyed
  static auto* vendors = new std::shared_ptr<const std::unordered_map<std::string, std::string>>();
  std::lock_guard<std::mutex> lock(mutex);
  if (*held != map || *vendors == nullptr) {
    auto made = std::make_shared<std::unordered_map<std::string, std::string>>();
    for (const X86Model& model : map->models) {
      // The first model of a name, as the search over the map's models found it.
      made->emplace(model.name, model.vendor.empty() ? "unknown" : model.vendor);
    }
    *held = map;
    *vendors = std::move(made);
  }
  return *vendors;
}

}  // namespace

Status NameGuestCpuModels(const std::string& cpu_map_dir, std::vector<Guest>& guests) {
  LazyX86CpuMap map(cpu_map_dir);
  return NameGuestCpuModels(map, guests);
}

Status NameGuestCpuModels(LazyX86CpuMap& lazy_map, std::vector<Guest>& guests) {
  const Expected<std::shared_ptr<const X86CpuMap>>* map = nullptr;
  std::shared_ptr<const std::unordered_map<std::string, std::string>> vendors;
  for (Guest& guest : guests) {
    if (CpuMapArchFor(guest.arch) != "x86") continue;
    for (GuestCpuModes& modes : guest.cpu_modes) {
      if (modes.models.empty()) continue;
      if (!map) map = &lazy_map.Get();
      if (!map->ok()) continue;
      if (!vendors) vendors = ModelVendors(**map);
      std::vector<GuestCpuModel> known;
      known.reserve(modes.models.size());
      for (GuestCpuModel& model : modes.models) {
        auto vendor = vendors->find(model.name);
        if (vendor == vendors->end()) continue;  // libvirt names only the map's models
        model.vendor = vendor->second;
        known.push_back(std::move(model));
      }
      modes.models = std::move(known);
    }
  }
  if (map && !map->ok()) return Status::Error("guest CPU models not named: " + map->error());
  return Status();
}

namespace {

// libvirt's host-model for one virt type of a native x86 guest, from its expansion.
Expected<GuestHostModel> DecodeHostModel(const X86CpuMap& map, const GuestCpuModes& modes) {
  std::vector<HypervisorCpuModel> offered;
  for (const GuestCpuModel& model : modes.models) {
    HypervisorCpuModel entry{model.name, {}};
    for (const std::string& blocker : model.blockers) {
      entry.blockers.push_back(LibvirtX86FeatureName(blocker));
    }
    offered.push_back(std::move(entry));
  }
  // libvirt reports the non-migratable variant (invtsc and the like included).
  X86Data data = X86DataFromExpansion(map, *modes.expansion, /*migratable_only=*/false);
  auto decoded = DecodeX86HypervisorCpu(map, std::move(data), offered);
  // With a full expansion libvirt drops MSR features from the host-model.
  if (decoded && modes.expansion_type == "full") {
    auto& features = decoded->features;
    features.erase(std::remove_if(features.begin(), features.end(),
                                  [&](const CpuFeaturePolicy& feature) {
                                    const X86Feature* known = map.FindFeature(feature.name);
                                    return known != nullptr && !known->data.msr.empty();
                                  }),
                   features.end());
  }
  return decoded;
}

// DecodeHostModel, remembered: its answer depends only on the mode's expansion, the
// models it offers (with their blockers), the expansion type and the map. The map is
// the remembered one (LoadSharedX86CpuMap), held here so that its address stands for
// its contents. A warm refresh decodes the same few modes again (each ~2.5 M
// instructions), so a few entries, the oldest dropped first.
class HostModelMemory {
 public:
  Expected<GuestHostModel> Decode(const std::shared_ptr<const X86CpuMap>& map,
                                  const GuestCpuModes& modes) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (auto entry = entries_.begin(); entry != entries_.end(); ++entry) {
        if (entry->map == map && entry->expansion_type == modes.expansion_type &&
            entry->expansion == *modes.expansion && entry->models == modes.models) {
          entries_.splice(entries_.begin(), entries_, entry);  // most recent first
          return entries_.front().decoded;
        }
      }
    }
    Expected<GuestHostModel> decoded = DecodeHostModel(*map, modes);
    std::lock_guard<std::mutex> lock(mutex_);
    entries_.push_front({map, *modes.expansion, modes.models, modes.expansion_type, decoded});
    if (entries_.size() > kEntries) entries_.pop_back();
    return decoded;
  }

 private:
  static constexpr size_t kEntries = 8;
  struct Entry {
    std::shared_ptr<const X86CpuMap> map;
    std::vector<CpuModelProperty> expansion;
    std::vector<GuestCpuModel> models;
    std::string expansion_type;
    Expected<GuestHostModel> decoded;
  };
  std::mutex mutex_;
  std::list<Entry> entries_;
};

}  // namespace

Status DescribeGuestHostModels(const std::string& cpu_map_dir, const std::string& host_arch,
                               std::vector<Guest>& guests) {
  LazyX86CpuMap map(cpu_map_dir);
  return DescribeGuestHostModels(map, host_arch, guests);
}

Status DescribeGuestHostModels(LazyX86CpuMap& lazy_map, const std::string& host_arch,
                               std::vector<Guest>& guests) {
  static auto* memory = new HostModelMemory();  // never destroyed: used until exit
  const Expected<std::shared_ptr<const X86CpuMap>>* map = nullptr;
  std::string problems;
  for (Guest& guest : guests) {
    if (!IsX86(guest.arch) || !QemuGuestIsNative(host_arch, guest.arch)) continue;
    for (GuestCpuModes& modes : guest.cpu_modes) {
      modes.host_model.reset();
      if (!modes.expansion) continue;
      if (!map) map = &lazy_map.Get();
      if (!map->ok()) break;
      auto decoded = memory->Decode(**map, modes);
      if (decoded) {
        modes.host_model = std::move(decoded).value();
      } else {
        problems += (problems.empty() ? "" : "; ") + guest.emulator + " (" + modes.virttype +
                    "): " + decoded.error();
      }
    }
  }
  if (map && !map->ok()) return Status::Error("host-model not decoded: " + map->error());
  if (!problems.empty()) return Status::Error("host-model not decoded: " + problems);
  return Status();
}

Status DescribeCpuInLibvirtTerms(const CollectContext& context, const Cpuinfo& cpuinfo,
                                 HostCpu& cpu) {
  std::string map_dir = context.paths.Root(context.config.host.cpu_map_dir);
  if (IsX86(cpu.arch)) return DescribeX86(context, map_dir, cpu);
  std::string map_arch = CpuMapArchFor(cpu.arch);
  if (map_arch.empty()) return Status();  // s390x and others: libvirt's map has no models
  return DescribeByIds(map_dir, cpuinfo, cpu);
}

}  // namespace virtcaps
