// Command-line flags in node_exporter's style (--flag=value or --flag value).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "virtcaps/config.h"
#include "virtcaps/status.h"

namespace virtcaps {

struct CommandLine {
  enum class Mode { kServe, kOnce, kValidate, kCheckConfig, kVersion, kHelp };
  Mode mode = Mode::kServe;
  enum class Format { kXml, kPrometheus, kOpenMetrics, kDomainCapabilities };
  Format once_format = Format::kXml;
  std::string once_driver;  // --driver=qemu|lxc|xen: that driver's document; empty: all
  // --arch/--virttype/--machine/--emulator for --format domcapabilities (empty: virsh's defaults).
  std::string domcaps_arch, domcaps_virttype, domcaps_machine, domcaps_emulator;

  std::string config_file;                    // empty: the embedded default
  std::string web_config_file;                // --web.config.file; empty: plain HTTP, no auth
  std::vector<std::string> listen_addresses;  // non-empty replaces the config's list
  bool systemd_socket = false;  // --web.systemd-socket: serve the sockets systemd passed
  std::optional<std::string> telemetry_path;
  std::optional<std::string> rootfs, procfs, sysfs, devfs;
  std::map<std::string, bool> collectors;        // --collector.NAME / --no-collector.NAME
  bool collectors_disable_defaults = false;      // --collector.disable-defaults
  std::optional<std::string> cpu_flags_include;  // --collector.cpu.flags-include
  std::optional<LogConfig::Level> log_level;
  std::optional<LogConfig::Format> log_format;
};

Expected<CommandLine> ParseCommandLine(const std::vector<std::string>& args,
                                       const std::vector<CollectorDefault>& collectors);
std::string UsageText(const std::vector<CollectorDefault>& collectors);

// Loads the configuration the command line names and applies flag overrides.
Expected<Config> ResolveConfig(const CommandLine& command_line,
                               const std::vector<CollectorDefault>& collectors);

}  // namespace virtcaps
