#include "virtcaps/probes.h"

#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include "virtcaps/files.h"
#include "virtcaps/strings.h"

namespace virtcaps {

Expected<CpuidTable> ParseCpuidDump(std::string_view text) {
  CpuidTable table;
  bool in_cpu0 = false;
  bool saw_cpu_header = false;
  int line_number = 0;
  for (std::string_view line : Split(text, '\n')) {
    ++line_number;
    std::string_view trimmed = Trim(line);
    if (trimmed.empty()) continue;
    if (trimmed.substr(0, 4) == "CPU ") {
      saw_cpu_header = true;
      in_cpu0 = Trim(trimmed.substr(4)) == "0:";
      continue;
    }
    if (!in_cpu0) continue;
    // "0x00000001 0x00: eax=0x00a10f11 ebx=0x00020800 ecx=0xfffa3203 edx=0x178bfbff"
    auto fields = SplitWhitespace(trimmed);
    auto bad = [&](const std::string& what) {
      return Status::Error("cpuid dump line " + std::to_string(line_number) + ": " + what);
    };
    if (fields.size() != 6 || fields[1].empty() || fields[1].back() != ':') {
      return bad("expected 'LEAF SUBLEAF: eax=.. ebx=.. ecx=.. edx=..'");
    }
    auto leaf = ParseHex(fields[0]);
    auto subleaf = ParseHex(fields[1].substr(0, fields[1].size() - 1));
    if (!leaf || !subleaf || *leaf > 0xffffffffu || *subleaf > 0xffffffffu) {
      return bad("bad leaf or subleaf");
    }
    CpuidRegisters registers;
    uint32_t* slots[] = {&registers.eax, &registers.ebx, &registers.ecx, &registers.edx};
    const char* names[] = {"eax=", "ebx=", "ecx=", "edx="};
    for (int i = 0; i < 4; ++i) {
      std::string_view field = fields[static_cast<size_t>(i) + 2];
      if (field.substr(0, 4) != names[i]) return bad(std::string("expected ") + names[i]);
      auto value = ParseHex(field.substr(4));
      if (!value || *value > 0xffffffffu) return bad(std::string("bad value for ") + names[i]);
      *slots[i] = static_cast<uint32_t>(*value);
    }
    table[{static_cast<uint32_t>(*leaf), static_cast<uint32_t>(*subleaf)}] = registers;
  }
  if (!saw_cpu_header || table.empty())
    return Status::Error("cpuid dump: no 'CPU 0:' leaves found");
  return table;
}

namespace {

class TableCpuid : public CpuidSource {
 public:
  explicit TableCpuid(CpuidTable table) : table_(std::move(table)) {}
  std::optional<CpuidRegisters> Query(uint32_t leaf, uint32_t subleaf) const override {
    auto found = table_.find({leaf, subleaf});
    if (found == table_.end()) return std::nullopt;
    return found->second;
  }

 private:
  CpuidTable table_;
};

// A dump file that could not be loaded: every query is unanswerable, with the reason.
class BrokenCpuid : public CpuidSource {
 public:
  explicit BrokenCpuid(Status status) : status_(std::move(status)) {}
  Status status() const override { return status_; }
  std::optional<CpuidRegisters> Query(uint32_t, uint32_t) const override { return std::nullopt; }

 private:
  Status status_;
};

#if defined(__x86_64__) || defined(__i386__)
class InstructionCpuid : public CpuidSource {
 public:
  std::optional<CpuidRegisters> Query(uint32_t leaf, uint32_t subleaf) const override {
    // Basic and extended leaves are bounded by their range's maximum. The hypervisor
    // range (0x40000000..) is answered only under a hypervisor, whose leaf 0x40000000
    // names its own maximum.
    bool hypervisor_range = (leaf & 0xf0000000u) == 0x40000000u;
    if (hypervisor_range) {
      unsigned eax, ebx, ecx, edx;
      __cpuid(1, eax, ebx, ecx, edx);
      if (!((ecx >> 31) & 1)) return std::nullopt;
      __cpuid(0x40000000u, eax, ebx, ecx, edx);
      if (leaf > std::max(eax, 0x40000000u)) return std::nullopt;
    } else {
      unsigned max_leaf = __get_cpuid_max(leaf & 0x80000000u, nullptr);
      if (max_leaf == 0 || leaf > max_leaf) return std::nullopt;
    }
    CpuidRegisters r;
    __cpuid_count(leaf, subleaf, r.eax, r.ebx, r.ecx, r.edx);
    return r;
  }
};
#endif

int64_t ChangeTimeNs(const struct stat& node) {
  return static_cast<int64_t>(node.st_ctim.tv_sec) * 1'000'000'000 + node.st_ctim.tv_nsec;
}

class IoctlKvmProbe : public KvmProbe {
 public:
  IoctlKvmProbe() = default;
  IoctlKvmProbe(HostProbeMemory& memory, Duration recheck) : memory_(&memory), recheck_(recheck) {}

  KvmIoctlResult Probe(const std::string& device_path) const override {
    KvmIoctlResult result;
    int fd = ::open(device_path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) {
      result.open_error = device_path + ": " + std::strerror(errno);
      return result;
    }
    result.opened = true;
    int version = ::ioctl(fd, KVM_GET_API_VERSION, 0);
    if (version >= 0) result.api_version = version;
    int max_vcpus = ::ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
    if (max_vcpus > 0) result.max_vcpus = max_vcpus;
    if (!Remembered(fd, device_path, result)) CreateScratchVm(fd, device_path, result);
    if (result.vm_creatable.value_or(false)) {
      int scaling = ::ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_CONTROL);
      if (scaling >= 0) result.tsc_scaling = scaling > 0;
    }
    ::close(fd);
    return result;
  }

 private:
  // Creating and destroying a VM and a vCPU costs more CPU (in the kernel) than the
  // rest of a warm refresh, so a success is taken over from memory while the device
  // node is the same one and the answer is younger than recheck_.
  bool Remembered(int fd, const std::string& device_path, KvmIoctlResult& result) const {
    if (memory_ == nullptr || recheck_.count() == 0) return false;
    struct stat node;
    if (::fstat(fd, &node) != 0) return false;
    std::lock_guard<std::mutex> lock(memory_->mutex);
    auto found = memory_->kvm_vms.find(device_path);
    if (found == memory_->kvm_vms.end()) return false;
    const HostProbeMemory::KvmVm& vm = found->second;
    if (vm.device != node.st_dev || vm.inode != node.st_ino || vm.rdev != node.st_rdev ||
        vm.changed_ns != ChangeTimeNs(node) ||
        std::chrono::steady_clock::now() - vm.checked_at >= recheck_) {
      return false;
    }
    result.vm_creatable = true;
    result.tsc_khz = vm.tsc_khz;
    result.vm_answer_remembered = true;
    return true;
  }

  void CreateScratchVm(int fd, const std::string& device_path, KvmIoctlResult& result) const {
    // A VM file descriptor is the proof that KVM works; it is closed straight away.
    int vm = ::ioctl(fd, KVM_CREATE_VM, 0);
    if (vm < 0) {
      result.vm_creatable = false;
      result.create_vm_error = std::string("KVM_CREATE_VM: ") + std::strerror(errno);
      if (memory_ != nullptr) {
        std::lock_guard<std::mutex> lock(memory_->mutex);
        memory_->kvm_vms.erase(device_path);
      }
      return;
    }
    result.vm_creatable = true;
    // libvirt's <counter name='tsc'>: the TSC frequency a scratch vCPU gets.
    int vcpu = ::ioctl(vm, KVM_CREATE_VCPU, 0);
    if (vcpu >= 0) {
      int khz = ::ioctl(vcpu, KVM_GET_TSC_KHZ, 0);
      if (khz > 0) result.tsc_khz = static_cast<uint64_t>(khz);
      ::close(vcpu);
    }
    ::close(vm);
    struct stat node;
    if (memory_ == nullptr || ::fstat(fd, &node) != 0) return;
    std::lock_guard<std::mutex> lock(memory_->mutex);
    memory_->kvm_vms[device_path] = {
        static_cast<uint64_t>(node.st_dev),  static_cast<uint64_t>(node.st_ino),
        static_cast<uint64_t>(node.st_rdev), ChangeTimeNs(node),
        std::chrono::steady_clock::now(),    result.tsc_khz};
  }

  HostProbeMemory* memory_ = nullptr;
  Duration recheck_{0};
};

// Each CPUID instruction traps to the hypervisor when the agent runs in a VM (several
// microseconds each; the host CPU's decode asks ~100 leaves), and the answers do not
// change while the microcode revision stays the same.
class RememberingCpuid : public CpuidSource {
 public:
  RememberingCpuid(std::unique_ptr<CpuidSource> live, HostProbeMemory& memory, std::string key)
      : live_(std::move(live)), memory_(memory) {
    std::lock_guard<std::mutex> lock(memory_.mutex);
    if (!memory_.cpuid || memory_.cpuid->key != key) {
      memory_.cpuid = HostProbeMemory::Cpuid{std::move(key), {}};
    }
  }
  Status status() const override { return live_->status(); }
  std::optional<CpuidRegisters> Query(uint32_t leaf, uint32_t subleaf) const override {
    std::lock_guard<std::mutex> lock(memory_.mutex);
    auto& answers = memory_.cpuid->answers;
    auto found = answers.find({leaf, subleaf});
    if (found == answers.end()) {
      found = answers.emplace(std::make_pair(leaf, subleaf), live_->Query(leaf, subleaf)).first;
    }
    return found->second;
  }

 private:
  std::unique_ptr<CpuidSource> live_;
  HostProbeMemory& memory_;
};

// One refresh asks /dev/kvm twice (the kvm collector, and the cpu collector for the
// TSC of a scratch vCPU); each asking creates and destroys a VM and a vCPU, which
// costs more CPU in the kernel than the rest of a warm refresh. The Probes of one
// refresh (MakeProbes) keep the first answer per device, so the two agree and the
// kernel is asked once; the next refresh makes new Probes and asks again.
class OncePerRefreshKvmProbe : public KvmProbe {
 public:
  explicit OncePerRefreshKvmProbe(std::unique_ptr<KvmProbe> probe) : probe_(std::move(probe)) {}
  KvmIoctlResult Probe(const std::string& device_path) const override {
    std::lock_guard<std::mutex> lock(mutex_);
    auto found = answers_.find(device_path);
    if (found == answers_.end()) {
      found = answers_.emplace(device_path, probe_->Probe(device_path)).first;
    }
    return found->second;
  }

 private:
  std::unique_ptr<KvmProbe> probe_;
  mutable std::mutex mutex_;
  mutable std::map<std::string, KvmIoctlResult> answers_;
};

class FixedKvmProbe : public KvmProbe {
 public:
  explicit FixedKvmProbe(const KvmProbeConfig& config) : config_(config) {}
  KvmIoctlResult Probe(const std::string&) const override {
    KvmIoctlResult result;
    result.opened = true;
    result.api_version = config_.api_version;
    result.vm_creatable = config_.vm_creatable;
    if (!config_.vm_creatable) result.create_vm_error = "KVM_CREATE_VM failed (recorded)";
    if (config_.max_vcpus > 0) result.max_vcpus = config_.max_vcpus;
    if (config_.tsc_khz > 0) {
      result.tsc_khz = config_.tsc_khz;
      result.tsc_scaling = config_.tsc_scaling;
    }
    return result;
  }

 private:
  KvmProbeConfig config_;
};

class DeviceMsrReader : public MsrReader {
 public:
  explicit DeviceMsrReader(std::string device) : device_(std::move(device)) {}
  std::optional<uint64_t> Read(uint32_t index) const override {
    int fd = ::open(device_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return std::nullopt;  // no msr module or not root: unknown, not an error
    uint64_t value = 0;
    ssize_t n = ::pread(fd, &value, sizeof(value), static_cast<off_t>(index));
    ::close(fd);
    if (n != static_cast<ssize_t>(sizeof(value))) return std::nullopt;
    return value;
  }

 private:
  std::string device_;
};

// What libvirt falls back to without the msr device: KVM_GET_MSRS on the KVM system
// file descriptor answers the feature MSRs KVM offers its guests (IA32_ARCH_CAPABILITIES
// among them), with the value KVM would give a vCPU. That is never the hardware's
// register (KVM answers IA32_FEATURE_CONTROL too, with its own view), so Read() says
// nothing and only ReadFeature() asks KVM.
class KvmMsrReader : public MsrReader {
 public:
  explicit KvmMsrReader(std::string device) : device_(std::move(device)) {}
  std::optional<uint64_t> Read(uint32_t) const override { return std::nullopt; }
  std::optional<uint64_t> ReadFeature(uint32_t index) const override {
    int fd = ::open(device_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return std::nullopt;
    // struct kvm_msrs with room for its one entry, spelled out: the header's flexible
    // array is wrapped for C and has a different offset as C++.
    struct {
      uint32_t nmsrs;
      uint32_t pad;
      kvm_msr_entry entry;
    } request;
    // The kernel's (C) layout: two 32-bit counts, then 16-byte entries.
    static_assert(offsetof(decltype(request), entry) == 8 && sizeof(kvm_msr_entry) == 16);
    std::memset(&request, 0, sizeof(request));
    request.nmsrs = 1;
    request.entry.index = index;
    // The ioctl returns how many MSRs it read: 0 for one KVM does not offer.
    // KVM_GET_MSRS is _IOWR(KVMIO, 0x88, struct kvm_msrs) with the C size of the
    // header (8); the C++ size of the header's type is larger, so the macro is not used.
    int read = ::ioctl(fd, _IOC(_IOC_READ | _IOC_WRITE, KVMIO, 0x88, 8), &request);
    ::close(fd);
    if (read != 1) return std::nullopt;
    return static_cast<uint64_t>(request.entry.data);
  }

 private:
  std::string device_;
};

// The hardware reader for registers; for feature MSRs the hardware first, then the
// fallback (libvirt's virHostCPUGetMSR order).
class FallbackMsrReader : public MsrReader {
 public:
  FallbackMsrReader(std::unique_ptr<MsrReader> hardware, std::unique_ptr<MsrReader> fallback)
      : hardware_(std::move(hardware)), fallback_(std::move(fallback)) {}
  std::optional<uint64_t> Read(uint32_t index) const override {
    return hardware_ ? hardware_->Read(index) : std::nullopt;
  }
  std::optional<uint64_t> ReadFeature(uint32_t index) const override {
    if (hardware_) {
      if (auto value = hardware_->ReadFeature(index)) return value;
    }
    return fallback_ ? fallback_->ReadFeature(index) : std::nullopt;
  }

 private:
  std::unique_ptr<MsrReader> hardware_, fallback_;
};

class FixedMsrReader : public MsrReader {
 public:
  explicit FixedMsrReader(std::map<uint32_t, uint64_t> values) : values_(std::move(values)) {}
  std::optional<uint64_t> Read(uint32_t index) const override {
    auto found = values_.find(index);
    if (found == values_.end()) return std::nullopt;
    return found->second;
  }

 private:
  std::map<uint32_t, uint64_t> values_;
};

}  // namespace

std::unique_ptr<CpuidSource> MakeInstructionCpuid() {
#if defined(__x86_64__) || defined(__i386__)
  return std::make_unique<InstructionCpuid>();
#else
  return nullptr;
#endif
}

std::unique_ptr<CpuidSource> MakeDumpCpuid(const std::string& dump_file) {
  auto text = ReadFile(dump_file, 4u << 20);
  if (!text) return std::make_unique<BrokenCpuid>(text.status());
  auto table = ParseCpuidDump(*text);
  if (!table) return std::make_unique<BrokenCpuid>(Status::Error(dump_file + ": " + table.error()));
  return std::make_unique<TableCpuid>(std::move(*table));
}

std::unique_ptr<CpuidSource> MakeTableCpuid(CpuidTable table) {
  return std::make_unique<TableCpuid>(std::move(table));
}

std::unique_ptr<KvmProbe> MakeIoctlKvmProbe() { return std::make_unique<IoctlKvmProbe>(); }

std::unique_ptr<KvmProbe> MakeRememberingIoctlKvmProbe(HostProbeMemory& memory, Duration recheck) {
  return std::make_unique<IoctlKvmProbe>(memory, recheck);
}

std::unique_ptr<CpuidSource> MakeRememberingCpuid(std::unique_ptr<CpuidSource> live,
                                                  HostProbeMemory& memory, std::string key) {
  return std::make_unique<RememberingCpuid>(std::move(live), memory, std::move(key));
}

std::unique_ptr<KvmProbe> MakeFixedKvmProbe(const KvmProbeConfig& config) {
  return std::make_unique<FixedKvmProbe>(config);
}

std::unique_ptr<MsrReader> MakeDeviceMsrReader(const std::string& msr_device) {
  return std::make_unique<DeviceMsrReader>(msr_device);
}

std::unique_ptr<MsrReader> MakeKvmMsrReader(const std::string& kvm_device) {
  return std::make_unique<KvmMsrReader>(kvm_device);
}

std::unique_ptr<MsrReader> MakeFallbackMsrReader(std::unique_ptr<MsrReader> hardware,
                                                 std::unique_ptr<MsrReader> fallback) {
  return std::make_unique<FallbackMsrReader>(std::move(hardware), std::move(fallback));
}

std::unique_ptr<MsrReader> MakeFixedMsrReader(std::map<uint32_t, uint64_t> values) {
  return std::make_unique<FixedMsrReader>(std::move(values));
}

Probes MakeProbes(const ProbesConfig& config, const HostPaths& paths, HostProbeMemory* memory) {
  Probes probes;
  if (memory != nullptr) {
    if (auto revision = ReadValue(paths.Sys("devices/system/cpu/cpu0/microcode/version")))
      probes.microcode_revision = std::move(*revision);
  }
  switch (config.cpuid.source) {
    case CpuidProbeConfig::Source::kAuto:
    case CpuidProbeConfig::Source::kInstruction:
      probes.cpuid = MakeInstructionCpuid();
      if (probes.cpuid && memory != nullptr) {
        // Absent in VMs and without the microcode driver: then nothing can load new
        // microcode either, and the answers hold for the agent's life.
        probes.cpuid = MakeRememberingCpuid(std::move(probes.cpuid), *memory,
                                            probes.microcode_revision.value_or(""));
      }
      break;
    case CpuidProbeConfig::Source::kDump:
      probes.cpuid = MakeDumpCpuid(config.cpuid.dump_file);
      break;
    case CpuidProbeConfig::Source::kNone:
      break;
  }
  switch (config.kvm.source) {
    case KvmProbeConfig::Source::kAuto:
    case KvmProbeConfig::Source::kIoctl:
      probes.kvm = std::make_unique<OncePerRefreshKvmProbe>(
          memory ? MakeRememberingIoctlKvmProbe(*memory, config.kvm.recheck_interval)
                 : MakeIoctlKvmProbe());
      break;
    case KvmProbeConfig::Source::kFixed:
      probes.kvm = MakeFixedKvmProbe(config.kvm);
      break;
    case KvmProbeConfig::Source::kNone:
      break;
  }
  switch (config.msr.source) {
    case MsrProbeConfig::Source::kAuto:
      // libvirt's order (virHostCPUGetMSR): the msr device, then KVM's feature MSRs.
      probes.msr = MakeFallbackMsrReader(MakeDeviceMsrReader(paths.Dev("cpu/0/msr")),
                                         MakeKvmMsrReader(paths.Dev("kvm")));
      break;
    case MsrProbeConfig::Source::kDevice:
      probes.msr = MakeDeviceMsrReader(paths.Dev("cpu/0/msr"));
      break;
    case MsrProbeConfig::Source::kKvm:
      probes.msr = MakeKvmMsrReader(paths.Dev("kvm"));
      break;
    case MsrProbeConfig::Source::kFixed:
      probes.msr = MakeFixedMsrReader(config.msr.values);
      break;
    case MsrProbeConfig::Source::kNone:
      break;
  }
  return probes;
}

}  // namespace virtcaps
