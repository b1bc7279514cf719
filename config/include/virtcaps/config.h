// The agent's configuration: plain structs whose defaults are the documented
// defaults of config/virtcaps.yaml, filled from YAML and validated strictly.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "virtcaps/status.h"

namespace virtcaps {

using Duration = std::chrono::milliseconds;

struct WebConfig {
  // host:port pairs to listen on; ":9977" means every IPv4 address.
  std::vector<std::string> listen_addresses = {"127.0.0.1:9977"};
  // Where the Prometheus exposition is served. Must start with '/'.
  std::string telemetry_path = "/metrics";
  // Connections served at once (CivetWeb worker threads, 1..4096, all started with the
  // server). Each open connection holds one while it sends its request.
  int max_connections = 64;
  // Connections one source address may have open at once (1..max_connections); more
  // are closed as soon as they are accepted, before they hold a worker. This is what
  // keeps one idle, slow or half-open client from denying everyone else's scrapes.
  int max_connections_per_client = 8;
  // When non-empty, only clients in these IPv4 networks ("10.0.0.0/8", "192.0.2.7")
  // are served; others are closed on accept.
  std::vector<std::string> allowed_networks;
  // Serve /healthz without basic auth (for Kubernetes probes), everything else with it.
  bool health_without_auth = false;
  // How long a client may take to send its request head, finish a TLS handshake, or
  // take a response (100ms..5m). CivetWeb 1.15 has this one deadline for all three.
  Duration request_timeout = std::chrono::seconds(10);
  // Largest request head (request line and headers) accepted, in bytes (1 KiB..1 MiB);
  // larger ones get 431. CivetWeb's buffer per worker is twice this.
  int max_request_header_bytes = 16384;
};

// Where the host is read from. Empty procfs/sysfs/devfs mean <rootfs>/proc, /sys, /dev.
struct PathsConfig {
  std::string rootfs = "/";
  std::string procfs;
  std::string sysfs;
  std::string devfs;
};

// Stand-ins for what a file tree cannot hold. "auto" means: ask the real host.
struct CpuidProbeConfig {
  enum class Source { kAuto, kInstruction, kDump, kNone };
  Source source = Source::kAuto;
  std::string dump_file;  // `cpuid -r` output; required with source dump
};

struct KvmProbeConfig {
  enum class Source { kAuto, kIoctl, kFixed, kNone };
  Source source = Source::kAuto;
  // With source fixed: what the KVM ioctls answer.
  int api_version = 12;
  bool vm_creatable = true;
  int max_vcpus = 0;
  // KVM_GET_TSC_KHZ on a scratch vCPU, in kHz (0: not recorded), and whether KVM
  // can scale a guest's TSC (KVM_CAP_TSC_CONTROL).
  uint64_t tsc_khz = 0;
  bool tsc_scaling = false;
  // With source ioctl: how long a successful scratch VM (KVM_CREATE_VM, and the TSC
  // its vCPU reports) is taken as still true while /dev/kvm stays the same device
  // node. A failure is asked again every refresh. 0: a scratch VM every refresh.
  Duration recheck_interval = std::chrono::minutes(5);
};

struct MsrProbeConfig {
  // auto: the msr device, then KVM_GET_MSRS on the KVM device (libvirt's order);
  // device / kvm: only that one.
  enum class Source { kAuto, kDevice, kKvm, kFixed, kNone };
  Source source = Source::kAuto;
  std::map<uint32_t, uint64_t> values;  // with source fixed: MSR index -> value
};

struct ProbesConfig {
  CpuidProbeConfig cpuid;
  KvmProbeConfig kvm;
  MsrProbeConfig msr;
};

struct HostConfig {
  // Where <uuid> comes from: DMI product_uuid first, or /etc/machine-id only
  // (vendors ship boards with duplicate DMI UUIDs).
  enum class UuidSource { kDmi, kMachineId };
  UuidSource uuid_source = UuidSource::kDmi;
  // libvirt's CPU map (index.xml and the files it includes), under paths.rootfs so
  // that the host's own libvirt names its CPU. Unreadable: the CPU model is unknown.
  std::string cpu_map_dir = "/usr/share/libvirt/cpu_map";
  // What one refresh may read in all, files and directory listings (1 MiB .. 4 GiB):
  // each file has its own cap; this bounds their sum. A large host reads ~3 MB.
  int64_t read_budget_bytes = int64_t{64} << 20;
};

enum class HypervisorType { kQemu, kXen, kLxc };

struct QemuOptions {
  // Directories searched for qemu-system-* (under --path.rootfs).
  std::vector<std::string> emulator_dirs = {"/usr/bin", "/usr/local/bin"};
  std::vector<std::string> emulators;                 // explicit emulator paths, probed in addition
  Duration probe_timeout = std::chrono::seconds(10);  // a probe still running then is killed
  int parallel_probes = 2;                            // 1..64 emulators probed at once
  std::string cache_dir = "/var/cache/virtcaps";      // empty disables the on-disk cache
  // The user and group QEMU runs as (qemu.conf user/group; Debian's defaults), for the DAC
  // <secmodel> baselabels. Names are looked up in <rootfs>/etc/passwd and etc/group;
  // "+N" is a numeric id.
  std::string user = "libvirt-qemu";
  std::string group = "libvirt-qemu";
  // Print <migration_features> (live, tcp and rdma transports) as libvirt's QEMU driver does.
  bool migration_features = true;
  // Caps on what one probe may make the agent hold (Debian's qemu-system-x86_64 answers
  // query-machines in one ~20 kB line); past one the probe fails and the child is killed.
  int64_t max_reply_bytes = 1 << 20;   // one QMP line, 4 KiB .. 256 MiB
  int64_t max_output_bytes = 4 << 20;  // all stdout of one probe, 4 KiB .. 1 GiB
  int max_machines = 1024;             // machine types per emulator, 1 .. 65536
  // QEMU firmware descriptor directories (QEMU's docs/interop/firmware.json), lowest
  // priority first, under --path.rootfs: a file overrides one of the same name in an
  // earlier directory, and an empty file masks it (libvirt's system daemon reads these
  // two; its session daemon adds $XDG_CONFIG_HOME/qemu/firmware last). At most
  // kMaxFirmwareDescriptors files are read.
  std::vector<std::string> firmware_dirs = {"/usr/share/qemu/firmware", "/etc/qemu/firmware"};
  // qemu.conf's `nvram` list, "LOADER:NVRAM_TEMPLATE" pairs: the loaders libvirt lists
  // (those that exist) when no descriptor matches. The default is Debian's libvirt 9.0
  // build default.
  std::vector<std::string> nvram = {
      "/usr/share/OVMF/OVMF_CODE.fd:/usr/share/OVMF/OVMF_VARS.fd",
      "/usr/share/OVMF/OVMF_CODE.secboot.fd:/usr/share/OVMF/OVMF_VARS.fd",
      "/usr/share/AAVMF/AAVMF_CODE.fd:/usr/share/AAVMF/AAVMF_VARS.fd",
      "/usr/share/AAVMF/AAVMF32_CODE.fd:/usr/share/AAVMF/AAVMF32_VARS.fd"};
};

struct XenOptions {
  std::string emulator = "/usr/lib/xen-4.17/bin/qemu-system-i386";
  std::map<std::string, std::string> emulator_by_arch;  // libvirt arch -> emulator
  std::string loader = "/usr/lib/xen-4.17/boot/hvmloader";
  std::vector<std::string> hvm_machines = {"xenfv"};
  std::vector<std::string> pv_machines = {"xenpv"};
  // List the guest features libvirt derives (pae, nonpae, acpi, apic, ...). The first
  // published example of the format listed none; a config can reproduce it.
  bool report_features = true;
};

struct LxcOptions {
  std::string emulator = "/usr/lib/libvirt/libvirt_lxc";
};

struct HypervisorConfig {
  HypervisorType type = HypervisorType::kQemu;
  bool enabled = true;
  QemuOptions qemu;  // meaningful for type qemu
  XenOptions xen;    // for type xen
  LxcOptions lxc;    // for type lxc
};

struct LogConfig {
  enum class Level { kDebug, kInfo, kWarn, kError };
  Level level = Level::kInfo;
  enum class Format { kLogfmt, kJson };
  Format format = Format::kLogfmt;  // one line per record on stderr either way
};

// The CPU flags whose virtcaps_cpu_feature_info series are kept by default: what fleets
// alert and place guests on (virtualization and its helpers, speculative-execution
// mitigations, vector and crypto families incl. AVX-512/AMX, confidential computing,
// the x86-64-v2..v4 levels; on Arm: SVE, crypto, atomics, pointer authentication). ECMAScript
// syntax, matched against the whole flag name.
inline constexpr std::string_view kDefaultCpuFlagsInclude =
    "vmx|svm|sie|hypervisor|ept|ept_ad|vpid|npt|nrip_save|flexpriority|tpr_shadow|vnmi|avic|"
    "x2avic|vgif|v_vmsave_vmload|vmcb_clean|lbrv|tsc_scale|pausefilter|pfthreshold|"
    ".*(ibrs|ibpb|stibp|ssbd).*|md_clear|flush_l1d|arch_capabilities|spec_ctrl|pti|"
    "lm|nx|pae|pdpe1gb|la57|x2apic|pcid|invpcid|smep|smap|umip|pku|ospke|"
    "constant_tsc|nonstop_tsc|tsc_deadline_timer|rdtscp|"
    "ssse3|sse4_1|sse4_2|popcnt|cx16|avx|avx2|fma|f16c|bmi1|bmi2|movbe|abm|"
    "avx512.*|amx.*|avx_vnni.*|aes|vaes|pclmulqdq|vpclmulqdq|sha_ni|gfni|rdrand|rdseed|"
    "rtm|hle|serialize|waitpkg|movdiri|movdir64b|"
    "sev.*|sme|tdx.*|sgx.*|"
    "sve.*|sha[0-9]+|sha512|pmull|crc32|atomics|ssbs|bf16|i8mm|mte.*|paca|pacg|bti";

struct CollectorOptions {
  // collectors.cpu.flags_include: virtcaps_cpu_feature_info only for the flags this
  // regex matches whole (".*" keeps all). The XML document always lists every flag.
  std::string cpu_flags_include = std::string(kDefaultCpuFlagsInclude);
};

struct Config {
  WebConfig web;
  Duration refresh_interval = std::chrono::seconds(60);  // 1s .. 24h
  PathsConfig paths;
  std::map<std::string, bool> collectors;  // collector name -> enabled
  CollectorOptions collector_options;
  ProbesConfig probes;
  HostConfig host;
  std::vector<HypervisorConfig> hypervisors;
  LogConfig log;
  std::string source;  // the file it came from, or "<embedded default>"
};

// The collectors the config may name, with their default state. The agent passes
// its collector list so the config layer knows names without depending on collectors.
struct CollectorDefault {
  std::string name;
  bool enabled_by_default;
};

// Parses YAML text. `source_name` is used in errors ("file:line:column: key.path: what").
// Relative file paths inside (probe dump files) resolve against `base_dir`.
Expected<Config> ParseConfig(std::string_view yaml_text, const std::string& source_name,
                             const std::string& base_dir,
                             const std::vector<CollectorDefault>& collectors);
// Reads and parses a file.
Expected<Config> LoadConfigFile(const std::string& path,
                                const std::vector<CollectorDefault>& collectors);
// The embedded default configuration (config/virtcaps.yaml, built in).
std::string_view DefaultConfigText();
Expected<Config> DefaultConfig(const std::vector<CollectorDefault>& collectors);

// "90s", "5m", "1h30m", "250ms". Bare numbers are refused (units must be explicit).
std::optional<Duration> ParseDuration(std::string_view text);
std::string FormatDuration(Duration duration);

std::string_view HypervisorTypeName(HypervisorType type);

// Empty when `address` is a usable host:port for the web server, else why not.
std::string ValidateListenAddress(const std::string& address);
// Empty when `path` can be the telemetry path (a plain path not taken by another
// endpoint), else why not.
std::string ValidateTelemetryPath(const std::string& path);
// Empty when `network` is an IPv4 network ("10.0.0.0/8") or address, else why not.
std::string ValidateIpv4Network(const std::string& network);

// Empty when `pattern` is a valid collectors.cpu.flags_include regex, else why not.
std::string ValidateFlagsRegex(const std::string& pattern);

}  // namespace virtcaps
