// The two formats the agent publishes: libvirt's capabilities XML and the
// Prometheus text exposition. Both are pure functions of a snapshot.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>

#include "virtcaps/model.h"
#include "virtcaps/xml.h"

namespace virtcaps {

struct BuildInfo {
  std::string version;
  std::string revision;
  std::string compiler;
};
const BuildInfo& CurrentBuildInfo();

// What a refresh produced, plus the facts about the refresh itself.
struct RefreshFacts {
  double finished_at_seconds = 0;  // Unix time
  double duration_seconds = 0;
  uint64_t refreshes_total = 0;
  double interval_seconds = 0;  // the configured refresh_interval
  // The latest SIGHUP reload: whether it was applied, and when the config in force was loaded.
  bool config_reload_ok = true;
  double config_loaded_at_seconds = 0;
  // QEMU probe work summed over every refresh since the agent started (--once: this one).
  uint64_t qemu_cache_hits_total = 0;
  uint64_t qemu_probe_failures_total = 0;
  uint64_t qemu_probes_spawned_total = 0;
  // The latest re-read of --web.config.file: false when it was refused (a broken file,
  // or one that would turn TLS or basic auth off) and the previous settings stay.
  bool web_config_reload_ok = true;
};

// Adds this refresh's QEMU probe counts (from caps.hypervisors) to the running totals.
void AddQemuProbeCounts(const HostCapabilities& caps, RefreshFacts& facts);

// libvirt's <capabilities> document (element order as capability.rng requires).
// The capabilities document targets the schema of libvirt 9.0 (Debian 12's), with one
// exception: an architecture that schema does not name (loongarch64) is still written
// under libvirt's own name for it, as the later libvirt releases that run there do;
// this says whether `arch` is one the 9.0 schema accepts (exported as a metric).
bool ArchInTargetSchema(std::string_view arch);
// `driver` (qemu, lxc, xen) gives the document of that libvirt driver alone, as
// `virsh -c lxc:/// capabilities` would: its guests, and the host parts it prints
// (migration_features and the DAC secmodel are the QEMU driver's). Empty: every driver.
XmlElement CapabilitiesXml(const HostCapabilities& caps, std::string_view driver = {});
std::string RenderCapabilitiesXml(const HostCapabilities& caps, std::string_view driver = {});

// libvirt's <domainCapabilities> for one emulator, arch, virt type and machine, as
// `virsh domcapabilities` picks them: every field may be empty (host arch, kvm when
// the guest has it else qemu, that arch's emulator, its default machine). An
// unknown arch, emulator, virt type or machine is an error saying which.
struct DomainCapabilitiesQuery {
  std::string arch, virttype, machine, emulator;
};
Expected<std::string> RenderDomainCapabilitiesXml(const HostCapabilities& caps,
                                                  const DomainCapabilitiesQuery& query);

// What a metrics page holds beyond the snapshot itself.
// collectors.cpu.flags_include, compiled once: which CPU flags get a series. std::regex
// is a backtracking matcher and the pattern a long alternation, so each flag's answer is
// remembered (a host has a few hundred flags; the table is capped all the same).
class FeatureFilter {
 public:
  explicit FeatureFilter(const std::string& pattern);
  bool Matches(const std::string& flag) const;  // the whole flag matches the pattern

 private:
  std::regex regex_;
  mutable std::mutex mutex_;
  mutable std::unordered_map<std::string, bool> answers_;
};

struct MetricsOptions {
  // Collectors (and hypervisor drivers) whose families are rendered; nullopt: every one
  // that ran. Agent-level families (build, refresh, checks) are always rendered.
  std::optional<std::set<std::string>> collectors;
  // virtcaps_cpu_feature_info series only for flags this regex matches whole
  // (collectors.cpu.flags_include); null: every flag.
  std::shared_ptr<const FeatureFilter> cpu_features_include;
};

// The /metrics body in the Prometheus text format 0.0.4.
std::string RenderPrometheus(const HostCapabilities& caps, const RefreshFacts& refresh,
                             const BuildInfo& build, const MetricsOptions& options = {});
// The same families in the OpenMetrics 1.0 text format. Without the closing "# EOF" line
// when `terminate` is false, so a server can append its live families first.
std::string RenderOpenMetrics(const HostCapabilities& caps, const RefreshFacts& refresh,
                              const BuildInfo& build, const MetricsOptions& options = {},
                              bool terminate = true);
// The parts of both texts that depend only on the capability model, the build and the
// options (everything but the QEMU probe counters and the refresh facts: collector
// durations, refresh time and count, reload results), as one rendering wrote them:
// [0] what comes before the probe counters, [1] what comes between them and the
// refresh facts.
struct CapabilityTexts {
  std::string prometheus[2];
  std::string openmetrics[2];
};
// Both of the above (OpenMetrics unterminated) from one building of the families, as
// each snapshot needs them, and the capability parts they were made of.
struct Expositions {
  std::string prometheus;
  std::string openmetrics;
  std::shared_ptr<const CapabilityTexts> capability_texts;
};
// With `reuse` (the capability_texts of an earlier rendering of a model the caller
// knows to be the same in everything but durations and probe counts, with the same
// build and options), only the refresh parts are rendered and the capability parts are
// taken from it: the texts are byte for byte what a full rendering would give.
Expositions RenderExpositions(const HostCapabilities& caps, const RefreshFacts& refresh,
                              const BuildInfo& build, const MetricsOptions& options = {},
                              std::shared_ptr<const CapabilityTexts> reuse = nullptr);

}  // namespace virtcaps
