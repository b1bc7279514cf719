#include "virtcaps/config.h"

#include <arpa/inet.h>

#include "virtcaps/yaml_checks.h"

#include <regex>
#include <set>
#include <utility>

#include "virtcaps/files.h"
#include "virtcaps/strings.h"

namespace virtcaps {

namespace {

class Parser : public YamlChecks {
 public:
  Parser(std::string source, std::string base_dir, const std::vector<CollectorDefault>& collectors)
      : YamlChecks(std::move(source), std::move(base_dir)), collectors_(collectors) {}

  Config Parse(const YAML::Node& root) {
    Config config;
    config.source = source();
    for (const CollectorDefault& collector : collectors_) {
      config.collectors[collector.name] = collector.enabled_by_default;
    }
    config.hypervisors = DefaultHypervisors();
    if (!root || root.IsNull()) return config;  // an empty file means all defaults
    ExpectMap(root, "");
    CheckKeys(
        root, "",
        {"web", "refresh_interval", "paths", "collectors", "probes", "host", "hypervisors", "log"});
    if (auto node = root["web"]) ParseWeb(node, config.web);
    if (auto node = root["refresh_interval"]) {
      config.refresh_interval =
          DurationValue(node, "refresh_interval", std::chrono::seconds(1), std::chrono::hours(24));
    }
    if (auto node = root["paths"]) ParsePaths(node, config.paths);
    if (auto node = root["collectors"]) ParseCollectors(node, config);
    if (auto node = root["probes"]) ParseProbes(node, config.probes);
    if (auto node = root["host"]) ParseHost(node, config.host);
    if (auto node = root["hypervisors"]) config.hypervisors = ParseHypervisors(node);
    if (auto node = root["log"]) ParseLog(node, config.log);
    return config;
  }

 private:
  void ParseWeb(const YAML::Node& node, WebConfig& web) const {
    ExpectMap(node, "web");
    CheckKeys(
        node, "web",
        {"listen_addresses", "telemetry_path", "max_connections", "max_connections_per_client",
         "allowed_networks", "health_without_auth", "request_timeout", "max_request_header_bytes"});
    if (auto value = node["max_connections"]) {
      web.max_connections = static_cast<int>(IntValue(value, "web.max_connections", 1, 4096));
    }
    if (auto value = node["request_timeout"]) {
      web.request_timeout = DurationValue(value, "web.request_timeout",
                                          std::chrono::milliseconds(100), std::chrono::minutes(5));
    }
    if (auto value = node["max_request_header_bytes"]) {
      web.max_request_header_bytes =
          static_cast<int>(IntValue(value, "web.max_request_header_bytes", 1024, 1 << 20));
    }
    if (auto addresses = node["listen_addresses"]) {
      web.listen_addresses = StringList(addresses, "web.listen_addresses");
      if (web.listen_addresses.empty()) {
        Fail(addresses, "web.listen_addresses", "needs at least one address");
      }
      for (size_t i = 0; i < web.listen_addresses.size(); ++i) {
        std::string error = ValidateListenAddress(web.listen_addresses[i]);
        if (!error.empty()) {
          Fail(addresses[i], "web.listen_addresses[" + std::to_string(i) + "]", error);
        }
      }
    }
    if (auto value = node["max_connections_per_client"]) {
      web.max_connections_per_client =
          static_cast<int>(IntValue(value, "web.max_connections_per_client", 1, 4096));
    }
    if (web.max_connections_per_client > web.max_connections) {
      if (node["max_connections_per_client"]) {
        Fail(node["max_connections_per_client"], "web.max_connections_per_client",
             "is above max_connections (" + std::to_string(web.max_connections) +
                 "): one client could hold every worker");
      }
      web.max_connections_per_client = web.max_connections;  // the default, for a tiny pool
    }
    if (auto networks = node["allowed_networks"]) {
      web.allowed_networks = StringList(networks, "web.allowed_networks");
      for (size_t i = 0; i < web.allowed_networks.size(); ++i) {
        std::string error = ValidateIpv4Network(web.allowed_networks[i]);
        if (!error.empty()) {
          Fail(networks[i], "web.allowed_networks[" + std::to_string(i) + "]", error);
        }
      }
    }
    if (auto value = node["health_without_auth"]) {
      web.health_without_auth = BoolValue(value, "web.health_without_auth");
    }
    if (auto path = node["telemetry_path"]) {
      web.telemetry_path = StringValue(path, "web.telemetry_path");
      std::string error = ValidateTelemetryPath(web.telemetry_path);
      if (!error.empty()) Fail(path, "web.telemetry_path", error);
    }
  }

  void ParsePaths(const YAML::Node& node, PathsConfig& paths) const {
    ExpectMap(node, "paths");
    CheckKeys(node, "paths", {"rootfs", "procfs", "sysfs", "devfs"});
    if (auto value = node["rootfs"]) paths.rootfs = AbsolutePath(value, "paths.rootfs");
    if (auto value = node["procfs"]) paths.procfs = AbsolutePath(value, "paths.procfs");
    if (auto value = node["sysfs"]) paths.sysfs = AbsolutePath(value, "paths.sysfs");
    if (auto value = node["devfs"]) paths.devfs = AbsolutePath(value, "paths.devfs");
  }

  void ParseCollectors(const YAML::Node& node, Config& config) const {
    std::map<std::string, bool>& collectors = config.collectors;
    ExpectMap(node, "collectors");
    std::set<std::string> names;
    for (const CollectorDefault& collector : collectors_) names.insert(collector.name);
    CheckKeys(node, "collectors", names);
    for (const auto& entry : node) {
      std::string path = "collectors." + entry.first.Scalar();
      ExpectMap(entry.second, path);
      bool cpu = entry.first.Scalar() == "cpu";
      CheckKeys(entry.second, path,
                cpu ? std::set<std::string>{"enabled", "flags_include"}
                    : std::set<std::string>{"enabled"});
      if (auto enabled = entry.second["enabled"]) {
        collectors[entry.first.Scalar()] = BoolValue(enabled, path + ".enabled");
      }
      if (auto include = entry.second["flags_include"]; cpu && include) {
        std::string pattern = StringValue(include, path + ".flags_include");
        if (std::string error = ValidateFlagsRegex(pattern); !error.empty()) {
          Fail(include, path + ".flags_include", error);
        }
        config.collector_options.cpu_flags_include = pattern;
      }
    }
  }

  void ParseProbes(const YAML::Node& node, ProbesConfig& probes) const {
    ExpectMap(node, "probes");
    CheckKeys(node, "probes", {"cpuid", "kvm", "msr"});
    if (auto cpuid = node["cpuid"]) {
      using Source = CpuidProbeConfig::Source;
      ExpectMap(cpuid, "probes.cpuid");
      CheckKeys(cpuid, "probes.cpuid", {"source", "dump_file"});
      if (auto source = cpuid["source"]) {
        probes.cpuid.source = EnumValue<Source>(source, "probes.cpuid.source",
                                                {{"auto", Source::kAuto},
                                                 {"instruction", Source::kInstruction},
                                                 {"dump", Source::kDump},
                                                 {"none", Source::kNone}});
      }
      if (auto file = cpuid["dump_file"]) {
        probes.cpuid.dump_file = FilePath(file, "probes.cpuid.dump_file");
      }
      if (probes.cpuid.source == Source::kDump && probes.cpuid.dump_file.empty()) {
        Fail(cpuid, "probes.cpuid.dump_file", "required when source is dump");
      }
    }
    if (auto kvm = node["kvm"]) {
      using Source = KvmProbeConfig::Source;
      ExpectMap(kvm, "probes.kvm");
      CheckKeys(kvm, "probes.kvm",
                {"source", "api_version", "vm_creatable", "max_vcpus", "tsc_khz", "tsc_scaling",
                 "recheck_interval"});
      if (auto source = kvm["source"]) {
        probes.kvm.source = EnumValue<Source>(source, "probes.kvm.source",
                                              {{"auto", Source::kAuto},
                                               {"ioctl", Source::kIoctl},
                                               {"fixed", Source::kFixed},
                                               {"none", Source::kNone}});
      }
      if (auto value = kvm["api_version"]) {
        probes.kvm.api_version =
            static_cast<int>(IntValue(value, "probes.kvm.api_version", 0, 1000));
      }
      if (auto value = kvm["vm_creatable"]) {
        probes.kvm.vm_creatable = BoolValue(value, "probes.kvm.vm_creatable");
      }
      if (auto value = kvm["max_vcpus"]) {
        probes.kvm.max_vcpus =
            static_cast<int>(IntValue(value, "probes.kvm.max_vcpus", 0, 1 << 20));
      }
      if (auto value = kvm["tsc_khz"]) {
        probes.kvm.tsc_khz =
            static_cast<uint64_t>(IntValue(value, "probes.kvm.tsc_khz", 0, 100'000'000));
      }
      if (auto value = kvm["tsc_scaling"]) {
        probes.kvm.tsc_scaling = BoolValue(value, "probes.kvm.tsc_scaling");
      }
      if (auto value = kvm["recheck_interval"]) {
        probes.kvm.recheck_interval = DurationValue(value, "probes.kvm.recheck_interval",
                                                    Duration(0), std::chrono::hours(24));
      }
    }
    if (auto msr = node["msr"]) {
      using Source = MsrProbeConfig::Source;
      ExpectMap(msr, "probes.msr");
      CheckKeys(msr, "probes.msr", {"source", "values"});
      if (auto source = msr["source"]) {
        probes.msr.source = EnumValue<Source>(source, "probes.msr.source",
                                              {{"auto", Source::kAuto},
                                               {"device", Source::kDevice},
                                               {"kvm", Source::kKvm},
                                               {"fixed", Source::kFixed},
                                               {"none", Source::kNone}});
      }
      if (auto values = msr["values"]) {
        ExpectMap(values, "probes.msr.values");
        for (const auto& entry : values) {
          std::string path = "probes.msr.values." + entry.first.Scalar();
          auto index = entry.first.IsScalar() ? ParseHex(entry.first.Scalar()) : std::nullopt;
          if (!index || *index > 0xffffffffu)
            Fail(entry.first, path, "expected an MSR index such as 0x3a");
          auto value = entry.second.IsScalar() ? ParseHex(entry.second.Scalar()) : std::nullopt;
          if (!value) Fail(entry.second, path, "expected a hexadecimal value such as 0x5");
          probes.msr.values[static_cast<uint32_t>(*index)] = *value;
        }
      }
    }
  }

  void ParseHost(const YAML::Node& node, HostConfig& host) const {
    ExpectMap(node, "host");
    CheckKeys(node, "host", {"uuid_source", "cpu_map_dir", "read_budget_bytes"});
    if (auto value = node["cpu_map_dir"]) {
      host.cpu_map_dir = AbsolutePath(value, "host.cpu_map_dir");
    }
    if (auto value = node["read_budget_bytes"]) {
      host.read_budget_bytes =
          IntValue(value, "host.read_budget_bytes", int64_t{1} << 20, int64_t{4} << 30);
    }
    if (auto source = node["uuid_source"]) {
      using UuidSource = HostConfig::UuidSource;
      host.uuid_source = EnumValue<UuidSource>(
          source, "host.uuid_source",
          {{"dmi", UuidSource::kDmi}, {"machine_id", UuidSource::kMachineId}});
    }
  }

  static std::vector<HypervisorConfig> DefaultHypervisors() {
    std::vector<HypervisorConfig> hypervisors(3);
    hypervisors[0].type = HypervisorType::kQemu;
    hypervisors[1].type = HypervisorType::kXen;
    hypervisors[2].type = HypervisorType::kLxc;
    return hypervisors;
  }

  std::vector<HypervisorConfig> ParseHypervisors(const YAML::Node& node) const {
    if (!node.IsSequence()) {
      Fail(node, "hypervisors", "expected a list of hypervisors, got " + Describe(node));
    }
    std::vector<HypervisorConfig> hypervisors;
    std::set<HypervisorType> seen;
    for (size_t i = 0; i < node.size(); ++i) {
      const YAML::Node& entry = node[i];
      std::string path = "hypervisors[" + std::to_string(i) + "]";
      ExpectMap(entry, path);
      if (!entry["type"]) Fail(entry, path + ".type", "required (qemu, xen or lxc)");
      HypervisorConfig hypervisor;
      hypervisor.type = EnumValue<HypervisorType>(entry["type"], path + ".type",
                                                  {{"qemu", HypervisorType::kQemu},
                                                   {"xen", HypervisorType::kXen},
                                                   {"lxc", HypervisorType::kLxc}});
      if (!seen.insert(hypervisor.type).second) {
        Fail(entry["type"], path + ".type", "this hypervisor is listed twice");
      }
      switch (hypervisor.type) {
        case HypervisorType::kQemu:
          CheckKeys(
              entry, path,
              {"type", "enabled", "emulator_dirs", "emulators", "probe_timeout", "parallel_probes",
               "cache_dir", "max_reply_bytes", "max_output_bytes", "max_machines", "user", "group",
               "migration_features", "firmware_dirs", "nvram"});
          ParseQemu(entry, path, hypervisor.qemu);
          break;
        case HypervisorType::kXen:
          CheckKeys(entry, path,
                    {"type", "enabled", "emulator", "emulator_by_arch", "loader", "hvm_machines",
                     "pv_machines", "report_features"});
          ParseXen(entry, path, hypervisor.xen);
          break;
        case HypervisorType::kLxc:
          CheckKeys(entry, path, {"type", "enabled", "emulator"});
          if (auto value = entry["emulator"]) {
            hypervisor.lxc.emulator = AbsolutePath(value, path + ".emulator");
          }
          break;
      }
      if (auto enabled = entry["enabled"])
        hypervisor.enabled = BoolValue(enabled, path + ".enabled");
      hypervisors.push_back(std::move(hypervisor));
    }
    return hypervisors;
  }

  void ParseQemu(const YAML::Node& entry, const std::string& path, QemuOptions& qemu) const {
    if (auto value = entry["emulator_dirs"]) {
      if (!value.IsSequence())
        Fail(value, path + ".emulator_dirs", "expected a list of directories");
      qemu.emulator_dirs.clear();
      for (size_t i = 0; i < value.size(); ++i) {
        qemu.emulator_dirs.push_back(
            AbsolutePath(value[i], path + ".emulator_dirs[" + std::to_string(i) + "]"));
      }
    }
    if (auto value = entry["emulators"]) {
      if (!value.IsSequence()) Fail(value, path + ".emulators", "expected a list of paths");
      qemu.emulators.clear();
      for (size_t i = 0; i < value.size(); ++i) {
        qemu.emulators.push_back(
            AbsolutePath(value[i], path + ".emulators[" + std::to_string(i) + "]"));
      }
    }
    if (auto value = entry["probe_timeout"]) {
      qemu.probe_timeout = DurationValue(value, path + ".probe_timeout",
                                         std::chrono::milliseconds(100), std::chrono::minutes(10));
    }
    if (auto value = entry["parallel_probes"]) {
      qemu.parallel_probes = static_cast<int>(IntValue(value, path + ".parallel_probes", 1, 64));
    }
    if (auto value = entry["cache_dir"]) {
      std::string dir = StringValue(value, path + ".cache_dir");
      qemu.cache_dir = dir.empty() ? dir : AbsolutePath(value, path + ".cache_dir");
    }
    if (auto value = entry["max_reply_bytes"]) {
      qemu.max_reply_bytes = IntValue(value, path + ".max_reply_bytes", 4096, int64_t{256} << 20);
    }
    if (auto value = entry["max_output_bytes"]) {
      qemu.max_output_bytes = IntValue(value, path + ".max_output_bytes", 4096, int64_t{1} << 30);
    }
    if (auto value = entry["max_machines"]) {
      qemu.max_machines = static_cast<int>(IntValue(value, path + ".max_machines", 1, 65536));
    }
    if (auto value = entry["user"]) qemu.user = StringValue(value, path + ".user");
    if (auto value = entry["group"]) qemu.group = StringValue(value, path + ".group");
    if (qemu.user.empty()) Fail(entry["user"], path + ".user", "needs a user name or +uid");
    if (qemu.group.empty()) Fail(entry["group"], path + ".group", "needs a group name or +gid");
    if (auto value = entry["migration_features"]) {
      qemu.migration_features = BoolValue(value, path + ".migration_features");
    }
    if (auto value = entry["firmware_dirs"]) {
      if (!value.IsSequence())
        Fail(value, path + ".firmware_dirs", "expected a list of directories");
      qemu.firmware_dirs.clear();
      for (size_t i = 0; i < value.size(); ++i) {
        qemu.firmware_dirs.push_back(
            AbsolutePath(value[i], path + ".firmware_dirs[" + std::to_string(i) + "]"));
      }
    }
    if (auto value = entry["nvram"]) {
      if (!value.IsSequence()) Fail(value, path + ".nvram", "expected a list of LOADER:NVRAM");
      qemu.nvram.clear();
      for (size_t i = 0; i < value.size(); ++i) {
        std::string item_path = path + ".nvram[" + std::to_string(i) + "]";
        std::string pair = StringValue(value[i], item_path);
        size_t colon = pair.find(':');
        if (colon == std::string::npos || pair.front() != '/' || colon + 1 >= pair.size() ||
            pair[colon + 1] != '/' || pair.find(':', colon + 1) != std::string::npos) {
          Fail(value[i], item_path, "expected LOADER:NVRAM, two absolute paths");
        }
        qemu.nvram.push_back(pair);
      }
    }
  }

  void ParseXen(const YAML::Node& entry, const std::string& path, XenOptions& xen) const {
    if (auto value = entry["emulator"]) xen.emulator = AbsolutePath(value, path + ".emulator");
    if (auto value = entry["emulator_by_arch"]) {
      ExpectMap(value, path + ".emulator_by_arch");
      for (const auto& item : value) {
        std::string key = StringValue(item.first, path + ".emulator_by_arch");
        xen.emulator_by_arch[key] = AbsolutePath(item.second, path + ".emulator_by_arch." + key);
      }
    }
    if (auto value = entry["loader"]) xen.loader = AbsolutePath(value, path + ".loader");
    if (auto value = entry["hvm_machines"])
      xen.hvm_machines = StringList(value, path + ".hvm_machines");
    if (auto value = entry["pv_machines"])
      xen.pv_machines = StringList(value, path + ".pv_machines");
    if (auto value = entry["report_features"]) {
      xen.report_features = BoolValue(value, path + ".report_features");
    }
  }

  void ParseLog(const YAML::Node& node, LogConfig& log) const {
    ExpectMap(node, "log");
    CheckKeys(node, "log", {"level", "format"});
    if (auto format = node["format"]) {
      using Format = LogConfig::Format;
      log.format = EnumValue<Format>(format, "log.format",
                                     {{"logfmt", Format::kLogfmt}, {"json", Format::kJson}});
    }
    if (auto level = node["level"]) {
      using Level = LogConfig::Level;
      log.level = EnumValue<Level>(level, "log.level",
                                   {{"debug", Level::kDebug},
                                    {"info", Level::kInfo},
                                    {"warn", Level::kWarn},
                                    {"error", Level::kError}});
    }
  }

  const std::vector<CollectorDefault>& collectors_;
};

}  // namespace

std::string ValidateFlagsRegex(const std::string& pattern) {
  try {
    std::regex compiled(pattern);
  } catch (const std::regex_error& error) {
    return "not a valid regular expression: " + std::string(error.what());
  }
  return "";
}

std::string ValidateTelemetryPath(const std::string& path) {
  if (path.size() < 2 || path.front() != '/') return "expected a path such as /metrics";
  for (char c : path) {
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f || c == '?' || c == '#' || c == '%') {
      return "cannot contain spaces, control characters, '?', '#' or '%' (it is matched "
             "against the request path as sent)";
    }
  }
  for (const char* taken : {"/capabilities", "/domcapabilities", "/healthz"}) {
    if (path == taken) return std::string("collides with the ") + taken + " endpoint";
  }
  return "";
}

std::string ValidateIpv4Network(const std::string& network) {
  std::string address = network;
  uint64_t prefix = 32;
  if (size_t slash = network.find('/'); slash != std::string::npos) {
    address = network.substr(0, slash);
    auto bits = ParseUint(std::string_view(network).substr(slash + 1));
    if (!bits || *bits > 32) return "expected a prefix length from 0 to 32 after '/'";
    prefix = *bits;
  }
  struct in_addr parsed;
  if (inet_pton(AF_INET, address.c_str(), &parsed) != 1) {
    return "expected an IPv4 network such as 10.0.0.0/8 or an address such as 192.0.2.7";
  }
  uint32_t mask = prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix);
  if ((ntohl(parsed.s_addr) & ~mask) != 0) return "has host bits set after the prefix";
  return "";
}

std::string ValidateListenAddress(const std::string& address) {
  size_t colon = address.rfind(':');
  if (colon == std::string::npos) return "expected host:port, such as 127.0.0.1:9977 or :9977";
  auto port = ParseUint(std::string_view(address).substr(colon + 1));
  if (!port || *port > 65535) return "invalid port in '" + address + "'";
  std::string host = address.substr(0, colon);
  if (!host.empty() && host.front() == '[') {
    return "IPv6 addresses are not supported by this build of CivetWeb";
  }
  if (!host.empty()) {
    auto parts = Split(host, '.');
    bool ipv4 = parts.size() == 4;
    for (std::string_view part : parts) {
      auto octet = ParseUint(part);
      ipv4 = ipv4 && octet && *octet <= 255;
    }
    if (!ipv4 && host != "localhost") return "expected an IPv4 address in '" + address + "'";
  }
  return "";
}

std::string_view HypervisorTypeName(HypervisorType type) {
  switch (type) {
    case HypervisorType::kQemu:
      return "qemu";
    case HypervisorType::kXen:
      return "xen";
    case HypervisorType::kLxc:
      return "lxc";
  }
  return "unknown";
}

Expected<Config> ParseConfig(std::string_view yaml_text, const std::string& source_name,
                             const std::string& base_dir,
                             const std::vector<CollectorDefault>& collectors) {
  Parser parser(source_name, base_dir, collectors);
  return ParseYamlDocument<Config>(parser, yaml_text);
}

Expected<Config> LoadConfigFile(const std::string& path,
                                const std::vector<CollectorDefault>& collectors) {
  auto text = ReadFile(path, 1u << 20);
  if (!text) return text.status();
  size_t slash = path.rfind('/');
  std::string base_dir = slash == std::string::npos ? "." : path.substr(0, slash == 0 ? 1 : slash);
  return ParseConfig(*text, path, base_dir, collectors);
}

Expected<Config> DefaultConfig(const std::vector<CollectorDefault>& collectors) {
  return ParseConfig(DefaultConfigText(), "<embedded default>", "", collectors);
}

}  // namespace virtcaps
