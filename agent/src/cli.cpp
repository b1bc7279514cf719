#include "virtcaps/cli.h"

#include <unistd.h>

#include <set>

namespace virtcaps {

namespace {

Expected<LogConfig::Level> ParseLevel(const std::string& text) {
  if (text == "debug") return LogConfig::Level::kDebug;
  if (text == "info") return LogConfig::Level::kInfo;
  if (text == "warn") return LogConfig::Level::kWarn;
  if (text == "error") return LogConfig::Level::kError;
  return Status::Error("--log.level: expected debug, info, warn or error, got '" + text + "'");
}

Expected<std::string> AbsoluteFlagPath(const std::string& flag, const std::string& value) {
  if (value.empty()) return Status::Error(flag + ": needs a path");
  // Relative paths are allowed on the command line; they resolve against the working directory.
  if (value.front() == '/') return value;
  char cwd[4096];
  if (::getcwd(cwd, sizeof(cwd)) == nullptr)
    return Status::Error(flag + ": cannot resolve '" + value + "'");
  return std::string(cwd) + "/" + value;
}

}  // namespace

Expected<CommandLine> ParseCommandLine(const std::vector<std::string>& args,
                                       const std::vector<CollectorDefault>& collectors) {
  CommandLine cli;
  std::set<std::string> collector_names;
  for (const CollectorDefault& collector : collectors) collector_names.insert(collector.name);
  static const std::set<std::string> kValueFlags = {"--config.file",
                                                    "--web.listen-address",
                                                    "--web.telemetry-path",
                                                    "--web.config.file",
                                                    "--path.rootfs",
                                                    "--path.procfs",
                                                    "--path.sysfs",
                                                    "--path.devfs",
                                                    "--log.level",
                                                    "--format",
                                                    "--log.format",
                                                    "--collector.cpu.flags-include",
                                                    "--driver",
                                                    "--arch",
                                                    "--virttype",
                                                    "--machine",
                                                    "--emulator"};
  for (size_t i = 0; i < args.size(); ++i) {
    std::string arg = args[i];
    std::string name = arg;
    std::optional<std::string> value;
    size_t equals = arg.find('=');
    if (arg.rfind("--", 0) == 0 && equals != std::string::npos) {
      name = arg.substr(0, equals);
      value = arg.substr(equals + 1);
    }
    if (kValueFlags.count(name) && !value) {
      if (i + 1 >= args.size()) return Status::Error(name + ": needs a value");
      value = args[++i];
    }
    if (name == "--config.file") {
      if (value->empty()) return Status::Error("--config.file: needs a path");
      cli.config_file = *value;
    } else if (name == "--web.config.file") {
      auto path = AbsoluteFlagPath(name, *value);
      if (!path) return path.status();
      cli.web_config_file = *path;
    } else if (name == "--web.listen-address") {
      cli.listen_addresses.push_back(*value);
    } else if (name == "--web.telemetry-path") {
      cli.telemetry_path = *value;
    } else if (name == "--path.rootfs" || name == "--path.procfs" || name == "--path.sysfs" ||
               name == "--path.devfs") {
      auto path = AbsoluteFlagPath(name, *value);
      if (!path) return path.status();
      if (name == "--path.rootfs") cli.rootfs = *path;
      if (name == "--path.procfs") cli.procfs = *path;
      if (name == "--path.sysfs") cli.sysfs = *path;
      if (name == "--path.devfs") cli.devfs = *path;
    } else if (name == "--log.level") {
      auto level = ParseLevel(*value);
      if (!level) return level.status();
      cli.log_level = *level;
    } else if (name == "--driver") {
      if (*value != "qemu" && *value != "lxc" && *value != "xen") {
        return Status::Error("--driver: expected qemu, lxc or xen, got '" + *value + "'");
      }
      cli.once_driver = *value;
    } else if (name == "--log.format") {
      if (*value == "logfmt") {
        cli.log_format = LogConfig::Format::kLogfmt;
      } else if (*value == "json") {
        cli.log_format = LogConfig::Format::kJson;
      } else {
        return Status::Error("--log.format: expected logfmt or json, got '" + *value + "'");
      }
    } else if (name == "--collector.cpu.flags-include") {
      if (std::string error = ValidateFlagsRegex(*value); !error.empty()) {
        return Status::Error(name + ": " + error);
      }
      cli.cpu_flags_include = *value;
    } else if (arg == "--web.systemd-socket") {
      cli.systemd_socket = true;
    } else if (arg == "--collector.disable-defaults") {
      cli.collectors_disable_defaults = true;
    } else if (name == "--format") {
      if (*value == "xml") {
        cli.once_format = CommandLine::Format::kXml;
      } else if (*value == "prometheus") {
        cli.once_format = CommandLine::Format::kPrometheus;
      } else if (*value == "openmetrics") {
        cli.once_format = CommandLine::Format::kOpenMetrics;
      } else if (*value == "domcapabilities") {
        cli.once_format = CommandLine::Format::kDomainCapabilities;
      } else {
        return Status::Error(
            "--format: expected xml, prometheus, openmetrics or domcapabilities, got '" + *value +
            "'");
      }
    } else if (name == "--arch") {
      cli.domcaps_arch = *value;
    } else if (name == "--virttype") {
      cli.domcaps_virttype = *value;
    } else if (name == "--machine") {
      cli.domcaps_machine = *value;
    } else if (name == "--emulator") {
      cli.domcaps_emulator = *value;
    } else if (arg == "--once") {
      cli.mode = CommandLine::Mode::kOnce;
    } else if (arg == "--validate") {
      cli.mode = CommandLine::Mode::kValidate;
    } else if (arg == "--check-config") {
      cli.mode = CommandLine::Mode::kCheckConfig;
    } else if (arg == "--version") {
      cli.mode = CommandLine::Mode::kVersion;
    } else if (arg == "--help" || arg == "-h") {
      cli.mode = CommandLine::Mode::kHelp;
    } else if (arg.rfind("--collector.", 0) == 0 || arg.rfind("--no-collector.", 0) == 0) {
      bool enable = arg.rfind("--collector.", 0) == 0;
      std::string collector = arg.substr(enable ? 12 : 15);
      if (!collector_names.count(collector)) {
        return Status::Error(arg + ": unknown collector '" + collector + "'");
      }
      cli.collectors[collector] = enable;
    } else {
      return Status::Error("unknown flag '" + arg + "' (see --help)");
    }
  }
  return cli;
}

std::string UsageText(const std::vector<CollectorDefault>& collectors) {
  std::string text =
      "usage: virtcaps-agent [flags]\n\n"
      "Probes this host's virtualization capabilities and serves them as a libvirt\n"
      "capabilities document (/capabilities) and Prometheus metrics (/metrics).\n\n"
      "Flags:\n"
      "  --config.file=FILE          YAML configuration (default: the embedded defaults)\n"
      "  --web.listen-address=ADDR   host:port to listen on; repeatable (default 127.0.0.1:9977)\n"
      "  --web.systemd-socket        serve the listening sockets systemd passes (socket\n"
      "                              activation, a .socket unit) instead of binding\n"
      "                              --web.listen-address; IPv4 sockets only\n"
      "  --web.telemetry-path=PATH   path of the metrics (default /metrics)\n"
      "  --web.config.file=FILE      TLS, basic auth and response headers, in the Prometheus\n"
      "                              exporter-toolkit's web config format; re-read when it\n"
      "                              or a certificate changes (default: plain HTTP, no auth)\n"
      "  --path.rootfs=DIR           read the host under DIR (default /)\n"
      "  --path.procfs=DIR           procfs mount (default <rootfs>/proc)\n"
      "  --path.sysfs=DIR            sysfs mount (default <rootfs>/sys)\n"
      "  --path.devfs=DIR            devfs mount (default <rootfs>/dev)\n"
      "  --collector.NAME            enable collector NAME\n"
      "  --no-collector.NAME         disable collector NAME\n"
      "  --collector.disable-defaults  disable every collector except those enabled with\n"
      "                              --collector.NAME (hypervisor drivers are not collectors)\n"
      "  --collector.cpu.flags-include=REGEX  virtcaps_cpu_feature_info only for the flags\n"
      "                              REGEX matches whole (default: collectors.cpu.flags_include)\n"
      "  --log.level=LEVEL           debug, info, warn or error (default info)\n"
      "  --log.format=FORMAT         logfmt or json (default logfmt)\n"
      "  --once                      probe once, print the document to stdout and exit\n"
      "  --format=FORMAT             what --once prints: xml, prometheus, openmetrics or\n"
      "                              domcapabilities (default xml); domcapabilities is\n"
      "                              libvirt's domain capabilities of one emulator\n"
      "  --driver=DRIVER             with --once --format=xml: only the qemu, lxc or xen\n"
      "                              driver's document, as virsh -c DRIVER:/// capabilities\n"
      "  --arch, --virttype, --machine, --emulator\n"
      "                              pick it, as virsh domcapabilities does (defaults: host\n"
      "                              arch, kvm if usable else qemu, the default machine)\n"
      "  --validate                  run libvirt's virt-host-validate checks (QEMU, LXC), print\n"
      "                              PASS/WARN/FAIL per check; exit 1 if any FAIL\n"
      "  --check-config              validate the configuration and exit\n"
      "  --version                   print the version and exit\n"
      "  --help                      print this help and exit\n\n"
      "Collectors:\n";
  for (const CollectorDefault& collector : collectors) {
    text += "  " + collector.name +
            (collector.enabled_by_default ? " (default on)\n" : " (default off)\n");
  }
  return text;
}

Expected<Config> ResolveConfig(const CommandLine& cli,
                               const std::vector<CollectorDefault>& collectors) {
  Expected<Config> loaded = cli.config_file.empty() ? DefaultConfig(collectors)
                                                    : LoadConfigFile(cli.config_file, collectors);
  if (!loaded) return loaded;
  Config config = std::move(*loaded);
  for (const std::string& address : cli.listen_addresses) {
    std::string error = ValidateListenAddress(address);
    if (!error.empty()) return Status::Error("--web.listen-address: " + error);
  }
  if (!cli.listen_addresses.empty()) config.web.listen_addresses = cli.listen_addresses;
  if (cli.telemetry_path) {
    std::string error = ValidateTelemetryPath(*cli.telemetry_path);
    if (!error.empty()) return Status::Error("--web.telemetry-path: " + error);
    config.web.telemetry_path = *cli.telemetry_path;
  }
  if (cli.rootfs) config.paths.rootfs = *cli.rootfs;
  if (cli.procfs) config.paths.procfs = *cli.procfs;
  if (cli.sysfs) config.paths.sysfs = *cli.sysfs;
  if (cli.devfs) config.paths.devfs = *cli.devfs;
  if (cli.collectors_disable_defaults) {
    for (auto& [name, enabled] : config.collectors) enabled = false;
  }
  for (const auto& [name, enabled] : cli.collectors) config.collectors[name] = enabled;
  if (cli.cpu_flags_include) config.collector_options.cpu_flags_include = *cli.cpu_flags_include;
  if (cli.log_level) config.log.level = *cli.log_level;
  if (cli.log_format) config.log.format = *cli.log_format;
  return config;
}

}  // namespace virtcaps
