// The refresh loop: probe the host every refresh_interval, publish a snapshot.
#pragma once

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "virtcaps/collector.h"
#include "virtcaps/config.h"
#include "virtcaps/firmware.h"
#include "virtcaps/heap_trim.h"
#include "virtcaps/probes.h"
#include "virtcaps/qemu.h"
#include "virtcaps/snapshot.h"
#include "virtcaps/subprocess.h"

namespace virtcaps {

// Probes the host once with this configuration (what --once and each loop turn do).
// A cancelled `cancel` ends emulator probes in flight.
// `memory`, when given, keeps what a later call may take over unread (see RefreshMemory).
HostCapabilities ProbeHost(const Config& config, const Cancellation* cancel = nullptr,
                           RefreshMemory* memory = nullptr);
// Logs what went wrong in one probe: each failed collector, the emulators whose
// probe failed while their hypervisor driver as a whole succeeded (with their reasons),
// and the firmware descriptors skipped, when they were read again (once per change).
void LogProbeProblems(const HostCapabilities& caps);
// How metrics pages are rendered under this configuration (collectors.cpu.flags_include).
MetricsOptions MetricsOptionsFor(const Config& config);

class Refresher {
 public:
  Refresher(Config config, SnapshotStore& store);
  ~Refresher();
  Refresher(const Refresher&) = delete;
  Refresher& operator=(const Refresher&) = delete;

  // Called once, from the refresh thread, when the first snapshot is published (the
  // agent then answers every path). Set before Start().
  void OnFirstSnapshot(std::function<void()> callback) { on_first_snapshot_ = std::move(callback); }
  void Start();
  void Stop();
  // Swaps in a new configuration (after a reload) and refreshes at once.
  void Reconfigure(Config config);
  // Records a rejected reload (the running configuration stays) and refreshes so
  // the metrics say so.
  void ReloadFailed();
  // Records the outcome of a web config re-read and refreshes so the metrics say so.
  void WebConfigReloaded(bool ok);

 private:
  void Run();
  void RefreshOnce(const Config& config, bool reload_ok, double loaded_at, bool web_reload_ok);

  SnapshotStore& store_;
  std::mutex mutex_;
  std::condition_variable wake_;
  // Shared with the refresh in flight: a refresh takes a reference, not a copy.
  std::shared_ptr<const Config> config_;
  bool stopping_ = false;
  bool config_changed_ = false;
  bool reload_ok_ = true;
  bool web_reload_ok_ = true;
  double config_loaded_at_ = 0;
  uint64_t refreshes_ = 0;
  RefreshFacts probe_totals_;  // only the qemu_*_total counters are used
  Cancellation cancel_;        // Stop() cancels a refresh in flight
  RefreshMemory memory_;
  HeapTrimmer heap_trimmer_;
  std::function<void()> on_first_snapshot_;
  std::optional<MetricsOptions> metrics_options_;  // for metrics_options_pattern_
  std::string metrics_options_pattern_;
  std::thread thread_;
};

}  // namespace virtcaps
