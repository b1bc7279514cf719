// libvirt's CPU map (cpu_map/index.xml and the files it includes), read with the
// project's expat reader: the vocabulary libvirt names host and guest CPUs in.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "virtcaps/probes.h"
#include "virtcaps/status.h"

namespace virtcaps {

// A set of CPUID output bits (per leaf/subleaf) and MSR bits (per index): what a
// feature or model stands for, or what a host reports. Absent entries are all-zero.
struct X86Data {
  std::map<std::pair<uint32_t, uint32_t>, CpuidRegisters> cpuid;  // (leaf, subleaf)
  std::map<uint32_t, uint64_t> msr;                               // index -> value

  void Add(const X86Data& other);              // bitwise or
  void Subtract(const X86Data& other);         // clears other's bits
  bool Contains(const X86Data& subset) const;  // every bit of subset is set here
  bool Empty() const;                          // no bit set anywhere
  bool operator==(const X86Data&) const = default;
};

struct X86Feature {
  std::string name;
  X86Data data;
  bool migratable = true;  // libvirt's migratable='no' marks host-only features (invtsc)
};

struct X86Vendor {
  std::string name;       // Intel, AMD, Hygon
  std::string id_string;  // CPUID leaf 0: GenuineIntel
};

// family/model, and the steppings it covers (bit n = stepping n; nullopt = any).
struct X86Signature {
  unsigned family = 0;
  unsigned model = 0;
  std::optional<uint32_t> steppings;
};

struct X86Model {
  std::string name;
  std::string vendor;  // empty: any vendor (qemu64, kvm64, ...)
  bool decode_host = true;
  bool decode_guest = true;
  std::vector<X86Signature> signatures;
  X86Data data;  // the union of its features, inherited ones included
  // Its own features marked removed='yes' (not in `data`), in map order.
  std::vector<std::string> removed_features;
};

struct X86CpuMap {
  std::vector<X86Vendor> vendors;
  std::vector<X86Feature> features;  // in map order, the order libvirt lists features in
  std::vector<X86Model> models;      // in map order, oldest first
  const X86Feature* FindFeature(std::string_view name) const;
};

// Arm: MIDR implementer codes and part numbers; POWER: PVR value/mask pairs.
struct IdCpuModel {
  std::string name;
  std::string vendor;
  std::vector<std::pair<uint32_t, uint32_t>> ids;  // (value, mask); Arm parts use mask 0xfff
};

struct IdCpuMap {
  std::vector<std::pair<std::string, std::optional<uint32_t>>> vendors;  // name, Arm implementer
  std::vector<IdCpuModel> models;
};

// The map's architecture sections: "x86", "arm", "ppc64" (as index.xml names them).
std::string CpuMapArchFor(const std::string& libvirt_arch);

// Reads <dir>/index.xml and the files included under <arch name=ARCH>. Errors name
// the file and what is wrong; nothing partial is returned.
Expected<X86CpuMap> ReadX86CpuMap(const std::string& dir);
Expected<IdCpuMap> ReadIdCpuMap(const std::string& dir, const std::string& map_arch);
// The same, remembered (cpu_map_memory.cpp): a map read before is returned again while
// its directory and files are unchanged (DirectoryIdentity), so a warm refresh does not
// parse the ~80 files of libvirt's map (twice: host CPU and guest models) every time.
Expected<X86CpuMap> LoadX86CpuMap(const std::string& dir);
// The remembered x86 map itself, not a copy: the same object (same address) while the
// directory is unchanged, so what is derived from it can be remembered under it.
Expected<std::shared_ptr<const X86CpuMap>> LoadSharedX86CpuMap(const std::string& dir);
Expected<IdCpuMap> LoadIdCpuMap(const std::string& dir, const std::string& map_arch);

}  // namespace virtcaps
