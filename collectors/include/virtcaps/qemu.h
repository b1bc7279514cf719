// QEMU/KVM guests, probed as libvirt probes them: each qemu-system-* binary is started
// with QMP on a pipe, asked query-target / query-machines / query-kvm, its CPU models
// and expansions, and what the domain capabilities' devices and features depend on
// (qom-list-types, query-qmp-schema, ...: GuestDeviceFacts), and stopped.
// Results are cached on disk per binary and host state.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "virtcaps/config.h"
#include "virtcaps/host_paths.h"
#include "virtcaps/model.h"
#include "virtcaps/status.h"
#include "virtcaps/subprocess.h"

struct stat;

namespace virtcaps {

// What, besides the binary itself, decides whether a cached probe is still true
// (libvirt's rules): /dev/kvm usability, kernel release, microcode, CPU signature,
// nested and SEV settings. Rendered into the cache key.
struct QemuHostFacts {
  bool kvm_usable = false;
  std::string kernel_release;
  std::string microcode;
  std::string cpu_signature;
  std::string nested;
  std::string sev;
};
QemuHostFacts CurrentQemuHostFacts(const HostPaths& paths, const HostCapabilities& caps);

// What a refresh loop keeps between refreshes so that a warm refresh re-reads nothing:
// each emulator's Guest under its full cache key (binary identity + host facts), and
// each emulator directory's listing under the directory's mtime. Thread-safe.
class QemuProbeMemory {
 public:
  std::optional<Guest> Find(const std::string& emulator, const std::string& key) const;
  void Remember(const std::string& emulator, const std::string& key, const Guest& guest);
  // The emulator names listed when the directory had this mtime, if that is the last
  // listing.
  std::optional<std::vector<std::string>> Listing(const std::string& dir, int64_t mtime_ns) const;
  void RememberListing(const std::string& dir, int64_t mtime_ns, std::vector<std::string> names);
  // Forgets emulators and directories not in these sets (removed or reconfigured).
  void Retain(const std::set<std::string>& emulators, const std::set<std::string>& dirs);

  // The qemu collector's guests as it last finished them (libvirt's derived arches,
  // the CPU map's model names, host-models), found when made from equal probed
  // guests, the same CPU map (`cpu_map`: its identity) and host arch.
  std::optional<std::vector<Guest>> FindFinished(const std::vector<Guest>& probed,
                                                 const std::shared_ptr<const void>& cpu_map,
                                                 const std::string& host_arch) const;
  void RememberFinished(std::vector<Guest> probed, std::shared_ptr<const void> cpu_map,
                        std::string host_arch, std::vector<Guest> finished);

 private:
  struct Finished {
    std::vector<Guest> probed;
    std::shared_ptr<const void> cpu_map;
    std::string host_arch;
    std::vector<Guest> guests;
  };
  mutable std::mutex mutex_;
  std::optional<Finished> finished_;
  std::map<std::string, std::pair<std::string, Guest>> guests_;  // emulator -> (key, guest)
  std::map<std::string, std::pair<int64_t, std::vector<std::string>>> listings_;
};

// The outcome for one emulator.
struct QemuEmulatorResult {
  std::string emulator;  // path as the host sees it (without the rootfs prefix)
  Status status;         // why this emulator could not be probed
  Guest guest;           // valid when status is ok
  bool from_cache = false;
  double seconds = 0;
};

// Finds emulators (qemu-system-* in the configured directories, plus the explicit
// list, plus /usr/libexec/qemu-kvm when no emulator is native to the host; all under
// paths.rootfs), probes them in parallel (bounded), and uses the cache.
// A cancelled `cancel` stops probes in flight at once (their emulators are killed).
std::vector<QemuEmulatorResult> ProbeQemuEmulators(const QemuOptions& options,
                                                   const HostPaths& paths,
                                                   const QemuHostFacts& facts,
                                                   const Cancellation* cancel = nullptr,
                                                   QemuProbeMemory* memory = nullptr);

// Maps QEMU's target name (query-target "arch", or the binary suffix) to libvirt's
// arch name and word size: i386 -> i686/32, x86_64 -> x86_64/64, ppc64 -> ppc64/64, ...
struct ArchInfo {
  std::string arch;
  unsigned wordsize = 0;
};
std::optional<ArchInfo> QemuTargetArch(std::string_view target);

// libvirt's virQEMUCapsGuestIsNative: the same arch, i686 on x86_64, armv7l on aarch64,
// or both ppc64/ppc64le.
bool QemuGuestIsNative(std::string_view host_arch, std::string_view guest_arch);

// The guests libvirt lists from the probed emulators (virQEMUCapsFindBinaryForArch):
// i686 from a lone qemu-system-x86_64 (or qemu-kvm) on an x86_64 host, ppc64le from
// qemu-system-ppc64, and on an aarch64 host armv7l from qemu-system-aarch64 rather
// than qemu-system-arm. Each derived guest follows the one it comes from.
std::vector<Guest> LibvirtQemuGuests(std::vector<Guest> probed, std::string_view host_arch);

// Starts one emulator (`exec_path`, the file to run) and asks it over QMP; the Guest
// names `emulator` (the path as the host sees it). The binary's name suffix
// ("qemu-system-<target>") is the fallback when query-target names no arch we know.
// Errors read "<emulator>: what" and end with a stderr line, if any. The options give
// the timeout and the caps (max_reply_bytes, max_output_bytes, max_machines).
Expected<Guest> ProbeQemuEmulator(const std::string& emulator, const std::string& exec_path,
                                  const QemuOptions& options, const Cancellation* cancel = nullptr);

// The on-disk cache (qemu_cache.cpp). An entry is valid for one binary identity and
// one set of host facts; anything else found in the file counts as a miss.
struct QemuBinaryIdentity {
  uint64_t device = 0;
  uint64_t inode = 0;
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
};
Expected<QemuBinaryIdentity> StatQemuBinary(const std::string& exec_path);
// The same from a stat() already made (the emulator search's own).
QemuBinaryIdentity QemuBinaryIdentityOf(const struct stat& st);
// The whole cache key as one string (what QemuProbeMemory compares).
std::string QemuCacheKey(const std::string& emulator, const QemuBinaryIdentity& binary,
                         const QemuHostFacts& facts);
// "<cache_dir>/qemu-<16 hex digits of a hash of emulator>.xml"
std::string QemuCachePath(const std::string& cache_dir, const std::string& emulator);
// The cached Guest when the file holds exactly this key; nullopt otherwise, and also
// when cache_dir or the file fails CheckPrivateDirectory / ReadPrivateFile (someone
// else could have planted or forged it).
std::optional<Guest> ReadQemuCache(const std::string& cache_dir, const std::string& emulator,
                                   const QemuBinaryIdentity& binary, const QemuHostFacts& facts);
// Best effort: creates cache_dir if needed and replaces the file atomically; a
// directory that cannot be written, or is not private, only means no caching (false).
bool WriteQemuCache(const std::string& cache_dir, const std::string& emulator,
                    const QemuBinaryIdentity& binary, const QemuHostFacts& facts,
                    const Guest& guest);

}  // namespace virtcaps
