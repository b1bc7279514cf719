#include "virtcaps/refresher.h"

#include <chrono>

#include "virtcaps/collector.h"
#include "virtcaps/log.h"

namespace virtcaps {

HostCapabilities ProbeHost(const Config& config, const Cancellation* cancel,
                           RefreshMemory* memory) {
  HostPaths paths = HostPaths::FromConfig(config.paths);
  Probes probes = MakeProbes(config.probes, paths, memory ? &memory->probes : nullptr);
  CollectContext context{paths, probes, config, cancel};
  if (memory) {
    context.qemu_memory = &memory->qemu;
    context.firmware_memory = &memory->firmware;
    context.cpu_layout_memory = &memory->cpu_layout;
  }
  return CollectHost(context);
}

MetricsOptions MetricsOptionsFor(const Config& config) {
  MetricsOptions options;
  // The configuration was validated, so the pattern compiles.
  options.cpu_features_include =
      std::make_shared<const FeatureFilter>(config.collector_options.cpu_flags_include);
  return options;
}

namespace {
double Now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}
}  // namespace

Refresher::Refresher(Config config, SnapshotStore& store)
    : store_(store),
      config_(std::make_shared<const Config>(std::move(config))),
      config_loaded_at_(Now()) {}

Refresher::~Refresher() { Stop(); }

void Refresher::Start() {
  thread_ = std::thread([this] { Run(); });
}

void Refresher::Stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  cancel_.Cancel();  // a hung probe must not hold shutdown for probe_timeout
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Refresher::Reconfigure(Config config) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    config_ = std::make_shared<const Config>(std::move(config));
    config_changed_ = true;
    reload_ok_ = true;
    config_loaded_at_ = Now();
  }
  wake_.notify_all();
}

void Refresher::ReloadFailed() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    reload_ok_ = false;
    config_changed_ = true;  // refresh now so the metric reports the failure
  }
  wake_.notify_all();
}

void Refresher::WebConfigReloaded(bool ok) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    web_reload_ok_ = ok;
    config_changed_ = true;  // refresh now so the metric reports it
  }
  wake_.notify_all();
}

void LogProbeProblems(const HostCapabilities& caps) {
  for (const CollectorOutcome& outcome : caps.collectors) {
    if (!outcome.success) {
      LogWarn("collector failed", {{"collector", outcome.name}, {"error", outcome.error}});
    }
  }
  // A driver fails only when every emulator failed (its error says why, above); the
  // reasons of a few failing emulators are in its detail and would be seen nowhere else.
  for (const HypervisorStatus& status : caps.hypervisors) {
    if (status.probes_failed == 0 || !status.available) continue;
    LogWarn("emulator probes failed", {{"hypervisor", status.name},
                                       {"failed", std::to_string(status.probes_failed)},
                                       {"error", status.detail}});
  }
  if (caps.qemu_firmware && caps.qemu_firmware->reread) {
    for (const FirmwareDescriptorProblem& problem : caps.qemu_firmware->invalid) {
      LogWarn("firmware descriptor skipped", {{"path", problem.path}, {"reason", problem.reason}});
    }
    for (const FirmwareDescriptorProblem& problem : caps.qemu_firmware->ignored) {
      LogInfo("firmware descriptor ignored", {{"path", problem.path}, {"reason", problem.reason}});
    }
  }
}

void Refresher::RefreshOnce(const Config& config, bool reload_ok, double loaded_at,
                            bool web_reload_ok) {
  auto start = std::chrono::steady_clock::now();
  HostCapabilities caps = ProbeHost(config, &cancel_, &memory_);
  std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
  LogProbeProblems(caps);
  RefreshFacts facts;
  facts.duration_seconds = elapsed.count();
  facts.finished_at_seconds = Now();
  facts.refreshes_total = ++refreshes_;
  facts.interval_seconds = std::chrono::duration<double>(config.refresh_interval).count();
  facts.config_reload_ok = reload_ok;
  facts.config_loaded_at_seconds = loaded_at;
  facts.web_config_reload_ok = web_reload_ok;
  AddQemuProbeCounts(caps, probe_totals_);
  facts.qemu_cache_hits_total = probe_totals_.qemu_cache_hits_total;
  facts.qemu_probe_failures_total = probe_totals_.qemu_probe_failures_total;
  facts.qemu_probes_spawned_total = probe_totals_.qemu_probes_spawned_total;
  std::shared_ptr<const Snapshot> previous = store_.Current();
  // Compiled once per pattern, not per refresh (its answers are remembered with it).
  if (!metrics_options_ || metrics_options_pattern_ != config.collector_options.cpu_flags_include) {
    metrics_options_ = MetricsOptionsFor(config);
    metrics_options_pattern_ = config.collector_options.cpu_flags_include;
  }
  store_.Publish(MakeSnapshot(std::move(caps), facts, previous.get(), *metrics_options_));
  previous.reset();
  // The refresh's temporaries are freed by now; give their pages back if they add up.
  bool trimmed = heap_trimmer_.AfterRefresh();
  // The first snapshot is worth an info line: from here on the agent is healthy.
  LogFields fields = {{"duration_seconds", std::to_string(facts.duration_seconds)}};
  if (facts.refreshes_total == 1) {
    LogInfo("first snapshot ready", fields);
    if (on_first_snapshot_) on_first_snapshot_();
  } else if (LogDebugEnabled()) {  // a warm refresh at info level formats no fields
    fields.push_back({"heap_free_bytes", std::to_string(heap_trimmer_.free_bytes())});
    fields.push_back({"heap_trimmed", trimmed ? "true" : "false"});
    LogDebug("refreshed", fields);
  }
}

void Refresher::Run() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stopping_) {
    std::shared_ptr<const Config> config = config_;
    bool reload_ok = reload_ok_;
    double loaded_at = config_loaded_at_;
    bool web_reload_ok = web_reload_ok_;
    config_changed_ = false;
    lock.unlock();
    RefreshOnce(*config, reload_ok, loaded_at, web_reload_ok);
    lock.lock();
    wake_.wait_for(lock, config->refresh_interval, [this] { return stopping_ || config_changed_; });
  }
}

}  // namespace virtcaps
