// Seams for what a file tree cannot hold: the CPUID instruction, KVM ioctls and
// MSRs. Live implementations ask the hardware; fixture stand-ins replay recordings.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include "virtcaps/config.h"
#include "virtcaps/host_paths.h"
#include "virtcaps/status.h"

namespace virtcaps {

struct CpuidRegisters {
  uint32_t eax = 0, ebx = 0, ecx = 0, edx = 0;
  bool operator==(const CpuidRegisters&) const = default;
};

class CpuidSource {
 public:
  virtual ~CpuidSource() = default;
  // Why the source cannot answer at all (a missing dump file); ok when it can.
  virtual Status status() const { return Status(); }
  // nullopt when the leaf is beyond what the CPU (or the dump) reports.
  virtual std::optional<CpuidRegisters> Query(uint32_t leaf, uint32_t subleaf) const = 0;
};

// The raw dump format of Debian's `cpuid -r`: "CPU 0:" then lines of
// "   0x00000001 0x00: eax=0x... ebx=0x... ecx=0x... edx=0x...". Only CPU 0 is kept.
using CpuidTable = std::map<std::pair<uint32_t, uint32_t>, CpuidRegisters>;
Expected<CpuidTable> ParseCpuidDump(std::string_view text);

struct KvmIoctlResult {
  bool opened = false;  // open(O_RDWR) succeeded
  std::string open_error;
  std::optional<int> api_version;
  std::optional<bool> vm_creatable;
  std::string create_vm_error;
  std::optional<int> max_vcpus;
  std::optional<uint64_t> tsc_khz;  // KVM_GET_TSC_KHZ on a scratch vCPU, as libvirt asks
  std::optional<bool> tsc_scaling;  // KVM_CHECK_EXTENSION(KVM_CAP_TSC_CONTROL)
  // vm_creatable and tsc_khz come from an earlier refresh's scratch VM (HostProbeMemory).
  bool vm_answer_remembered = false;
};

class KvmProbe {
 public:
  virtual ~KvmProbe() = default;
  virtual KvmIoctlResult Probe(const std::string& device_path) const = 0;
};

class MsrReader {
 public:
  virtual ~MsrReader() = default;
  // The register as the hardware holds it; nullopt when it cannot be read (no msr
  // module, not root, not recorded).
  virtual std::optional<uint64_t> Read(uint32_t index) const = 0;
  // A feature MSR (IA32_ARCH_CAPABILITIES) the way libvirt reads one for the host CPU:
  // the hardware's value, else what KVM offers its guests.
  virtual std::optional<uint64_t> ReadFeature(uint32_t index) const { return Read(index); }
};

// What the live probes remember across the refreshes of one agent (the Refresher holds
// it): the answers that cost a trap to the hypervisor or a scratch VM each time, kept
// only while what would change them is unchanged. Safe to share between threads.
class HostProbeMemory {
 public:
  // CPUID answers by (leaf, subleaf), valid while `key` (CPU 0's microcode revision
  // file; a late microcode load can change CPUID bits) reads the same.
  struct Cpuid {
    std::string key;
    std::map<std::pair<uint32_t, uint32_t>, std::optional<CpuidRegisters>> answers;
  };
  // A KVM device's last successful scratch VM: which device node it was (a module
  // reload makes a new one, with a new change time even where the inode number is
  // reused) and when.
  struct KvmVm {
    uint64_t device = 0, inode = 0, rdev = 0;
    int64_t changed_ns = 0;
    std::chrono::steady_clock::time_point checked_at;
    std::optional<uint64_t> tsc_khz;
  };
  std::mutex mutex;
  std::optional<Cpuid> cpuid;
  std::map<std::string, KvmVm> kvm_vms;  // by device path
};

struct Probes {
  std::unique_ptr<CpuidSource> cpuid;  // null when there is no CPUID (non-x86, source none)
  std::unique_ptr<KvmProbe> kvm;       // null with source none
  std::unique_ptr<MsrReader> msr;      // null with source none
  // cpu0/microcode/version as MakeProbes read it when given memory (nullopt when it
  // could not be read: in VMs, without the microcode driver). What CPUID and
  // /proc/cpuinfo say is kept across refreshes while it reads the same.
  std::optional<std::string> microcode_revision;
};

// Builds the probes the configuration asks for, for one refresh: the ioctl KVM probe
// answers each device once per Probes (both collectors that ask get the same answer).
// With `memory`, the live CPUID answers and a KVM device's successful scratch VM are
// remembered there across calls (see HostProbeMemory and probes.kvm.recheck_interval).
Probes MakeProbes(const ProbesConfig& config, const HostPaths& paths,
                  HostProbeMemory* memory = nullptr);

// Individual implementations, exposed for tests.
std::unique_ptr<CpuidSource> MakeInstructionCpuid();  // null off x86
std::unique_ptr<CpuidSource> MakeDumpCpuid(const std::string& dump_file);
std::unique_ptr<CpuidSource> MakeTableCpuid(CpuidTable table);
std::unique_ptr<KvmProbe> MakeIoctlKvmProbe();
// The ioctl probe that creates a scratch VM only when `memory` holds no success for
// the same device node younger than `recheck` (a failure is never remembered).
std::unique_ptr<KvmProbe> MakeRememberingIoctlKvmProbe(HostProbeMemory& memory, Duration recheck);
// `live`'s answers, remembered in `memory` under `key` (forgotten when the key differs).
std::unique_ptr<CpuidSource> MakeRememberingCpuid(std::unique_ptr<CpuidSource> live,
                                                  HostProbeMemory& memory, std::string key);
std::unique_ptr<KvmProbe> MakeFixedKvmProbe(const KvmProbeConfig& config);
std::unique_ptr<MsrReader> MakeDeviceMsrReader(const std::string& msr_device);
// KVM_GET_MSRS on the KVM system device: ReadFeature() only (KVM's guest view).
std::unique_ptr<MsrReader> MakeKvmMsrReader(const std::string& kvm_device);
// Read() from `hardware`; ReadFeature() from `hardware`, else `fallback` (either may be
// null).
std::unique_ptr<MsrReader> MakeFallbackMsrReader(std::unique_ptr<MsrReader> hardware,
                                                 std::unique_ptr<MsrReader> fallback);
std::unique_ptr<MsrReader> MakeFixedMsrReader(std::map<uint32_t, uint64_t> values);

}  // namespace virtcaps
