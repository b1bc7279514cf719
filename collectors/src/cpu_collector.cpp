// The cpu collector: architecture, vendor, model, microcode, signature, topology,
// physical address bits, features, page sizes and hardware virtualization.
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <set>

#include "cpu_topology.h"
#include "sysfs_values.h"
#include "virtcaps/boot_constants.h"
#include "virtcaps/collector.h"
#include "virtcaps/cpu_vocabulary.h"
#include "virtcaps/cpuinfo.h"
#include "virtcaps/files.h"
#include "virtcaps/strings.h"

namespace virtcaps {

std::string LibvirtArchName(std::string_view machine) {
  if (machine.size() == 4 && machine[0] == 'i' && machine.substr(2) == "86") return "i686";
  if (machine == "arm64") return "aarch64";
  if (machine == "armv8l" || machine == "armv7a") return "armv7l";
  if (machine == "amd64") return "x86_64";
  if (machine == "ppc64el") return "ppc64le";
  return std::string(machine);
}

std::string HostArch(const HostPaths& paths) {
  // A fixture root names its architecture in the kernel.arch sysctl; the live host
  // has the same file, and uname is the fallback for kernels without it.
  auto arch = ReadKernelConstant(paths, "sys/kernel/arch");
  if (arch && !arch->empty()) return LibvirtArchName(*arch);
  struct utsname name;
  if (::uname(&name) == 0) return LibvirtArchName(name.machine);
  return "x86_64";
}

namespace {

bool IsX86(const std::string& arch) { return arch == "x86_64" || arch == "i686"; }

std::string X86VendorName(const std::string& vendor_id) {
  static const std::map<std::string, std::string> kVendors = {{"GenuineIntel", "Intel"},
                                                              {"AuthenticAMD", "AMD"},
                                                              {"HygonGenuine", "Hygon"},
                                                              {"CentaurHauls", "VIA"},
                                                              {"  Shanghai  ", "Zhaoxin"}};
  auto found = kVendors.find(vendor_id);
  return found == kVendors.end() ? vendor_id : found->second;
}

// MIDR implementer codes, named as libvirt's cpu_map/arm_vendors.xml names them.
std::string ArmVendorName(uint64_t implementer) {
  static const std::map<uint64_t, std::string> kVendors = {
      {0x41, "ARM"}, {0x42, "Broadcom"}, {0x43, "Cavium"},  {0x46, "Fujitsu"}, {0x48, "HiSilicon"},
      {0x50, "APM"}, {0x51, "Qualcomm"}, {0x70, "Phytium"}, {0xc0, "Ampere"}};
  auto found = kVendors.find(implementer);
  return found == kVendors.end() ? "" : found->second;
}

// A few common server cores; others are named by their MIDR numbers.
std::string ArmPartName(uint64_t implementer, uint64_t part) {
  static const std::map<std::pair<uint64_t, uint64_t>, std::string> kParts = {
      {{0x41, 0xd03}, "Cortex-A53"},  {{0x41, 0xd07}, "Cortex-A57"},
      {{0x41, 0xd08}, "Cortex-A72"},  {{0x41, 0xd0b}, "Cortex-A76"},
      {{0x41, 0xd0c}, "Neoverse-N1"}, {{0x41, 0xd40}, "Neoverse-V1"},
      {{0x41, 0xd49}, "Neoverse-N2"}, {{0x41, 0xd4f}, "Neoverse-V2"},
      {{0x43, 0x0af}, "ThunderX2"},   {{0x46, 0x001}, "A64FX"},
      {{0x48, 0xd01}, "Kunpeng-920"}, {{0xc0, 0xac3}, "AmpereOne"}};
  auto found = kParts.find({implementer, part});
  if (found != kParts.end()) return found->second;
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "implementer 0x%02llx part 0x%03llx",
                static_cast<unsigned long long>(implementer),
                static_cast<unsigned long long>(part));
  return buffer;
}

// libvirt's feature-name pattern; the kernel's names always match it.
bool IsValidFeatureName(std::string_view name) {
  if (name.empty()) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
  });
}

std::vector<std::string> FeatureList(std::string_view text) {
  // Sorted and de-duplicated as views, so each name is allocated once (not a set node
  // and a string per flag, every refresh).
  std::vector<std::string_view> words = SplitWhitespace(text);
  std::erase_if(words, [](std::string_view word) { return !IsValidFeatureName(word); });
  std::sort(words.begin(), words.end());
  words.erase(std::unique(words.begin(), words.end()), words.end());
  return {words.begin(), words.end()};
}

CpuSignature SignatureFromLeaf1(uint32_t eax) {
  unsigned stepping = eax & 0xf;
  unsigned model = (eax >> 4) & 0xf;
  unsigned family = (eax >> 8) & 0xf;
  unsigned extended_model = (eax >> 16) & 0xf;
  unsigned extended_family = (eax >> 20) & 0xff;
  CpuSignature signature;
  signature.stepping = stepping;
  signature.family = family == 0xf ? family + extended_family : family;
  signature.model = (family == 0x6 || family == 0xf) ? (extended_model << 4) + model : model;
  return signature;
}

// "address sizes	: 48 bits physical, 48 bits virtual" (x86; "Address Sizes" on LoongArch).
Status ReadAddressSizes(const Cpuinfo& cpuinfo, HostCpu& cpu) {
  if (std::string sizes = cpuinfo.Get("address sizes"); !sizes.empty()) {
    auto words = SplitWhitespace(sizes);
    auto bits = words.empty() ? std::nullopt : ParseUint(words[0]);
    if (!bits || bits > 64)
      return Status::Error("/proc/cpuinfo: bad address sizes '" + sizes + "'");
    cpu.max_phys_addr_bits = static_cast<unsigned>(*bits);
  }
  return Status();
}

Status ReadX86Identity(const Cpuinfo& cpuinfo, const std::vector<std::string>& features,
                       const CpuidSource* cpuid, HostCpu& cpu) {
  cpu.vendor_id = cpuinfo.Get("vendor_id");
  cpu.vendor = X86VendorName(cpu.vendor_id);
  cpu.model_name = cpuinfo.Get("model name");
  if (std::string microcode = cpuinfo.Get("microcode"); !microcode.empty()) {
    auto value = ParseHex(microcode);
    if (!value) return Status::Error("/proc/cpuinfo: bad microcode '" + microcode + "'");
    cpu.microcode = *value;
  }
  std::optional<CpuidRegisters> leaf1 = cpuid ? cpuid->Query(1, 0) : std::nullopt;
  if (leaf1) {
    cpu.signature = SignatureFromLeaf1(leaf1->eax);
  } else if (!cpuinfo.Get("cpu family").empty()) {
    auto family = ParseUint(cpuinfo.Get("cpu family"));
    auto model = ParseUint(cpuinfo.Get("model"));
    auto stepping = ParseUint(cpuinfo.Get("stepping"));
    if (!family || !model || !stepping)
      return Status::Error("/proc/cpuinfo: bad cpu family/model/stepping");
    cpu.signature = CpuSignature{static_cast<unsigned>(*family), static_cast<unsigned>(*model),
                                 static_cast<unsigned>(*stepping)};
  }
  cpu.features = features;
  return ReadAddressSizes(cpuinfo, cpu);
}

Status ReadArmIdentity(const Cpuinfo& cpuinfo, const std::vector<std::string>& features,
                       HostCpu& cpu) {
  std::string implementer_text = cpuinfo.Get("CPU implementer");
  std::string part_text = cpuinfo.Get("CPU part");
  if (!implementer_text.empty()) {
    auto implementer = ParseHex(implementer_text);
    auto part = ParseHex(part_text);
    if (!implementer || !part) return Status::Error("/proc/cpuinfo: bad CPU implementer/part");
    cpu.vendor_id = implementer_text;
    cpu.vendor = ArmVendorName(*implementer);
    cpu.model_name = ArmPartName(*implementer, *part);
  }
  cpu.features = features;
  return Status();
}

void ReadPowerIdentity(const Cpuinfo& cpuinfo, HostCpu& cpu) {
  // "cpu : POWER9 (architected), altivec supported"
  std::string description = cpuinfo.Get("cpu");
  auto words = SplitWhitespace(description);
  cpu.model_name = words.empty() ? description : std::string(words[0]);
  cpu.vendor = "IBM";
  cpu.vendor_id = "IBM";
}

void ReadS390Identity(const Cpuinfo& cpuinfo, const std::vector<std::string>& features,
                      HostCpu& cpu) {
  cpu.vendor_id = cpuinfo.Get("vendor_id");  // "IBM/S390"
  cpu.vendor = "IBM";
  // "processor 0: version = FF,  identification = 0133E8,  machine = 8561"
  std::string processor0 = cpuinfo.Get("processor 0");
  size_t machine = processor0.find("machine = ");
  cpu.model_name =
      machine == std::string::npos ? "" : std::string(Trim(processor0.substr(machine + 10)));
  cpu.features = features;
}

bool HasFeature(const HostCpu& cpu, std::string_view name) {
  return std::binary_search(cpu.features.begin(), cpu.features.end(), name);
}

void DetectX86Virtualization(const CpuidSource* cpuid, const MsrReader* msr, HostCpu& cpu) {
  HardwareVirtualization& virt = cpu.virtualization;
  std::optional<bool> vmx_bit, svm_bit;
  if (cpuid) {
    if (auto leaf1 = cpuid->Query(1, 0)) {
      vmx_bit = (leaf1->ecx >> 5) & 1;
      cpu.running_under_hypervisor = ((leaf1->ecx >> 31) & 1) != 0;
    }
    auto max_extended = cpuid->Query(0x80000000, 0);
    if (max_extended && max_extended->eax >= 0x80000001) {
      if (auto leaf = cpuid->Query(0x80000001, 0)) svm_bit = (leaf->ecx >> 2) & 1;
    } else if (max_extended) {
      svm_bit = false;
    }
  }
  if (!cpu.running_under_hypervisor) cpu.running_under_hypervisor = HasFeature(cpu, "hypervisor");

  bool amd_like = cpu.vendor == "AMD" || cpu.vendor == "Hygon";
  if (amd_like || (!vmx_bit.value_or(false) && svm_bit.value_or(false))) {
    virt.extension = "svm";
  } else {
    virt.extension = "vmx";
  }
  bool is_vmx = virt.extension == "vmx";
  virt.cpu_supported = is_vmx ? vmx_bit : svm_bit;
  virt.kernel_enabled = HasFeature(cpu, virt.extension);

  // The MSR, when readable, says exactly what firmware did.
  std::optional<uint64_t> control = msr ? msr->Read(is_vmx ? 0x3a : 0xc0010114) : std::nullopt;
  char hex[32];
  if (control && virt.cpu_supported.value_or(true)) {
    std::snprintf(hex, sizeof(hex), "0x%llx", static_cast<unsigned long long>(*control));
    if (is_vmx) {
      bool locked = *control & 1;
      bool vmx_outside_smx = (*control >> 2) & 1;
      virt.firmware_disabled = locked && !vmx_outside_smx;
      virt.firmware_evidence = std::string("IA32_FEATURE_CONTROL=") + hex +
                               (locked ? " (locked" : " (unlocked") +
                               (vmx_outside_smx ? ", VMX enabled)" : ", VMX off)");
    } else {
      bool svm_disabled = (*control >> 4) & 1;
      virt.firmware_disabled = svm_disabled;
      virt.firmware_evidence =
          std::string("VM_CR=") + hex + (svm_disabled ? " (SVMDIS set)" : " (SVMDIS clear)");
    }
    return;
  }
  if (virt.cpu_supported == false) {
    virt.firmware_disabled = false;
    virt.firmware_evidence = "CPUID does not report " + virt.extension;
  } else if (virt.kernel_enabled == true) {
    virt.firmware_disabled = false;
    virt.firmware_evidence = "the kernel lists " + virt.extension;
  } else if (virt.cpu_supported == true) {
    // The kernel drops the flag when firmware locked the feature off.
    virt.firmware_disabled = true;
    virt.firmware_evidence = "CPUID reports " + virt.extension + " but the kernel does not list it";
  }
}

void DetectOtherVirtualization(HostCpu& cpu) {
  HardwareVirtualization& virt = cpu.virtualization;
  if (cpu.arch == "s390x" || cpu.arch == "s390") {
    virt.extension = "sie";
    virt.kernel_enabled = HasFeature(cpu, "sie");
    if (*virt.kernel_enabled) virt.cpu_supported = true;
  }
  // aarch64 and POWER expose no such flag; KVM's presence is their signal.
}

// The per-CPU topology and the nodes' CPUs: kept from an earlier refresh while no CPU
// or node was plugged (`memory`), else read from sysfs.
Expected<CpuLayoutMemory::Topology> ReadCpuTopology(const HostPaths& paths,
                                                    unsigned cpuinfo_processors,
                                                    CpuLayoutMemory* memory) {
  std::string key;
  if (memory) {
    // Without cpu/present and cpu/online the CPU count comes from /proc/cpuinfo.
    key = memory->Key(paths);
    key.append(" cpuinfo ").append(std::to_string(cpuinfo_processors));
    if (auto kept = memory->FindTopology(key)) return std::move(*kept);
  }
  CpuLayoutMemory::Topology topology;
  auto cpus = ReadLogicalCpus(paths, cpuinfo_processors);
  if (!cpus) return cpus.status();
  topology.cpus = std::move(*cpus);
  auto nodes = ReadNodeCpus(paths);
  if (!nodes) return nodes.status();
  topology.node_cpus = std::move(*nodes);
  if (memory) memory->RememberTopology(key, topology);
  return topology;
}

// libvirt's topology from the one sysfs read of this refresh; the per-CPU data stays
// in the model for the numa collector.
Status ReadTopology(const HostPaths& paths, unsigned cpuinfo_processors, CpuLayoutMemory* memory,
                    HostCpu& cpu) {
  auto topology = ReadCpuTopology(paths, cpuinfo_processors, memory);
  if (!topology) return topology.status();
  cpu.logical_cpus = std::move(topology->cpus);
  cpu.logical_cpus_read = true;
  cpu.present_cpus = static_cast<unsigned>(cpu.logical_cpus.size());
  cpu.online_cpus = static_cast<unsigned>(
      std::count_if(cpu.logical_cpus.begin(), cpu.logical_cpus.end(),
                    [](const LogicalCpu& logical) { return logical.online; }));
  cpu.topology =
      ComputeTopology(cpu.logical_cpus, topology->node_cpus, cpu.arch.rfind("s390", 0) == 0);
  return Status();
}

Status ReadPageSizes(const HostPaths& paths, HostCpu& cpu) {
  uint64_t base_kib = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE)) / 1024;
  if (!paths.IsLiveRoot()) {
    // Another machine's tree: its own record of the kernel page size wins.
    if (auto smaps = ReadFileHead(paths.Proc("self/smaps"), 4096)) {
      size_t at = smaps->find("KernelPageSize:");
      if (at != std::string::npos) {
        auto words = SplitWhitespace(std::string_view(*smaps).substr(at + 15, 32));
        if (!words.empty()) base_kib = ParseUint(words[0]).value_or(base_kib);
      }
    }
  }
  cpu.page_sizes_kib.push_back(base_kib);
  auto huge = ListHugePageDirs(paths.Sys("kernel/mm/hugepages"));
  if (!huge) return huge.status();
  for (const auto& [size_kib, dir] : *huge) cpu.page_sizes_kib.push_back(size_kib);
  cpu.huge_page_sizes_listed = true;  // the numa collector reads the pools without listing again
  return Status();
}

class CpuCollector : public Collector {
 public:
  std::string_view name() const override { return "cpu"; }

  Status Collect(const CollectContext& context, HostCapabilities& caps) override {
    HostCpu& cpu = caps.cpu;
    if (cpu.arch.empty()) cpu.arch = HostArch(context.paths);
    // Each source is read even when another fails: one odd /proc/cpuinfo must not
    // lose the topology or the page sizes. The first problem is the collector's error.
    Status first_problem;
    auto note = [&first_problem](Status status) {
      if (!status.ok() && first_problem.ok()) first_problem = std::move(status);
    };
    std::shared_ptr<const CpuLayoutMemory::KeptCpuinfo> kept = ReadCpuinfo(context, cpu.arch, note);
    const Cpuinfo* cpuinfo = kept ? &kept->first : nullptr;

    const CpuidSource* cpuid = IsX86(cpu.arch) ? context.probes.cpuid.get() : nullptr;
    if (kept) note(ReadIdentity(*kept, cpuid, context.probes.msr.get(), cpu));
    if (kept && kept->processors == 0)
      cpu.cpuinfo_problem = "no 'processor : N' entries; CPUs counted from sysfs";
    note(ReadTopology(context.paths, kept ? kept->processors : 0, context.cpu_layout_memory, cpu));
    note(ReadPageSizes(context.paths, cpu));
    // libvirt's names (cpu_vocabulary.cpp); an unreadable map leaves only those unknown.
    if (cpuinfo) note(DescribeCpuInLibvirtTerms(context, *cpuinfo, cpu));
    // A configured CPUID dump that cannot be read fails the collector, after
    // everything the files could tell has been recorded.
    if (cpuid) note(cpuid->status());
    return first_problem;
  }

 private:
  // /proc/cpuinfo, from the refresh loop's memory when the CPU layout, CPU 0's
  // microcode revision and the architecture read as they did when it was kept; null
  // when unreadable or garbled (noted).
  template <typename Note>
  static std::shared_ptr<const CpuLayoutMemory::KeptCpuinfo> ReadCpuinfo(
      const CollectContext& context, const std::string& arch, Note& note) {
    CpuLayoutMemory* memory = context.cpu_layout_memory;
    std::string key;
    if (memory) {
      key = memory->Key(context.paths);
      key.append(" microcode ").append(context.probes.microcode_revision.value_or("-"));
      key.append(" arch ").append(arch);
      if (auto kept = memory->FindCpuinfo(key)) return kept;
    }
    std::string path = context.paths.Proc("cpuinfo");
    auto text = ReadFile(path);
    if (!text) {
      note(text.status());
      return nullptr;
    }
    auto parsed = ParseCpuinfo(*text);
    if (!parsed) {
      note(Status::Error(path + ": " + parsed.error()));
      return nullptr;
    }
    auto read = std::make_shared<CpuLayoutMemory::KeptCpuinfo>();
    read->processors = static_cast<unsigned>(parsed->processors.size());
    parsed->processors.resize(std::min<size_t>(parsed->processors.size(), 1));
    read->first = std::move(*parsed);
    read->features = FeatureList(FlagsText(read->first, arch));
    if (memory) memory->RememberCpuinfo(key, read);
    return read;
  }

  // The cpuinfo key that lists the features, as each architecture names it.
  static std::string FlagsText(const Cpuinfo& cpuinfo, const std::string& arch) {
    if (IsX86(arch)) return cpuinfo.Get("flags");
    if (arch == "aarch64" || arch == "armv7l") return cpuinfo.Get("Features");
    if (arch.rfind("ppc", 0) == 0) return "";
    if (arch.rfind("s390", 0) == 0) return cpuinfo.Get("features");
    return cpuinfo.Get("flags") + " " + cpuinfo.Get("Features");
  }

  static Status ReadIdentity(const CpuLayoutMemory::KeptCpuinfo& kept, const CpuidSource* cpuid,
                             const MsrReader* msr, HostCpu& cpu) {
    const Cpuinfo& cpuinfo = kept.first;
    if (IsX86(cpu.arch)) {
      if (Status s = ReadX86Identity(cpuinfo, kept.features, cpuid, cpu); !s.ok()) return s;
      DetectX86Virtualization(cpuid, msr, cpu);
    } else if (cpu.arch == "aarch64" || cpu.arch == "armv7l") {
      if (Status s = ReadArmIdentity(cpuinfo, kept.features, cpu); !s.ok()) return s;
      DetectOtherVirtualization(cpu);
    } else if (cpu.arch.rfind("ppc", 0) == 0) {
      ReadPowerIdentity(cpuinfo, cpu);
      DetectOtherVirtualization(cpu);
    } else if (cpu.arch.rfind("s390", 0) == 0) {
      ReadS390Identity(cpuinfo, kept.features, cpu);
      DetectOtherVirtualization(cpu);
    } else {
      // RISC-V, LoongArch, SPARC, MIPS...: the common keys, whatever their case.
      cpu.model_name = cpuinfo.Get("model name");
      if (cpu.model_name.empty()) cpu.model_name = cpuinfo.Get("cpu");
      cpu.features = kept.features;
      return ReadAddressSizes(cpuinfo, cpu);
    }
    return Status();
  }
};

}  // namespace

std::unique_ptr<Collector> MakeCpuCollector() { return std::make_unique<CpuCollector>(); }

}  // namespace virtcaps
