// The two formats the agent publishes: libvirt's capabilities XML and the
// Prometheus text exposition. Both are pure functions of a snapshot.
#pragma once

#include <string>
#include <string_view>

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
  // The latest re-read of --web.config.file: false when it was refused (a broken file,
  // or one that would turn TLS or basic auth off) and the previous settings stay.
  bool web_config_reload_ok = true;
};

// libvirt's <capabilities> document (element order as capability.rng requires).
// The capabilities document targets the schema of libvirt 9.0 (Debian 12's), with one
// exception: an architecture that schema does not name (loongarch64) is still written
// under libvirt's own name for it, as the later libvirt releases that run there do;
// this says whether `arch` is one the 9.0 schema accepts (exported as a metric).
bool ArchInTargetSchema(std::string_view arch);
XmlElement CapabilitiesXml(const HostCapabilities& caps);
std::string RenderCapabilitiesXml(const HostCapabilities& caps);

// libvirt's <domainCapabilities> for one emulator, arch, virt type and machine, as
// `virsh domcapabilities` picks them: every field may be empty (host arch, kvm when
// the guest has it else qemu, that arch's emulator, its default machine). An
// unknown arch, emulator, virt type or machine is an error saying which.
struct DomainCapabilitiesQuery {
  std::string arch, virttype, machine, emulator;
};
Expected<std::string> RenderDomainCapabilitiesXml(const HostCapabilities& caps,
                                                  const DomainCapabilitiesQuery& query);

// The whole /metrics body.
std::string RenderPrometheus(const HostCapabilities& caps, const RefreshFacts& refresh,
                             const BuildInfo& build);

}  // namespace virtcaps
