#include "virtcaps/config.h"

#include <gtest/gtest.h>

#include "test_support.h"
#include "virtcaps/collector.h"

namespace virtcaps {
namespace {

std::string ConfigFixture(const std::string& name) {
  return testing::SourceDir() + "/tests/fixtures/config/" + name;
}

std::string LoadError(const std::string& name) {
  auto config = LoadConfigFile(ConfigFixture(name), CollectorDefaults());
  EXPECT_FALSE(config) << name << " was accepted";
  return config ? "" : config.error();
}

TEST(ConfigTest, EmbeddedDefaultMatchesTheStructDefaults) {
  // config/virtcaps.yaml is the documented default; it must say what the code assumes.
  auto parsed = DefaultConfig(CollectorDefaults());
  ASSERT_TRUE(parsed) << parsed.error();
  Config defaults;
  EXPECT_EQ(parsed->web.listen_addresses, defaults.web.listen_addresses);
  EXPECT_EQ(parsed->web.telemetry_path, defaults.web.telemetry_path);
  EXPECT_EQ(parsed->web.max_connections, defaults.web.max_connections);
  EXPECT_EQ(parsed->web.max_connections_per_client, defaults.web.max_connections_per_client);
  EXPECT_EQ(parsed->web.allowed_networks, defaults.web.allowed_networks);
  EXPECT_EQ(parsed->web.health_without_auth, defaults.web.health_without_auth);
  EXPECT_EQ(parsed->web.request_timeout, defaults.web.request_timeout);
  EXPECT_EQ(parsed->web.max_request_header_bytes, defaults.web.max_request_header_bytes);
  EXPECT_EQ(parsed->refresh_interval, defaults.refresh_interval);
  EXPECT_EQ(parsed->paths.rootfs, defaults.paths.rootfs);
  EXPECT_EQ(parsed->probes.cpuid.source, defaults.probes.cpuid.source);
  EXPECT_EQ(parsed->probes.kvm.source, defaults.probes.kvm.source);
  EXPECT_EQ(parsed->probes.kvm.recheck_interval, defaults.probes.kvm.recheck_interval);
  EXPECT_EQ(parsed->probes.msr.source, defaults.probes.msr.source);
  EXPECT_EQ(parsed->host.uuid_source, defaults.host.uuid_source);
  EXPECT_EQ(parsed->host.cpu_map_dir, defaults.host.cpu_map_dir);
  EXPECT_EQ(parsed->log.level, defaults.log.level);
  EXPECT_EQ(parsed->log.format, defaults.log.format);
  EXPECT_EQ(parsed->collector_options.cpu_flags_include,
            defaults.collector_options.cpu_flags_include);
  for (const CollectorDefault& collector : CollectorDefaults()) {
    EXPECT_EQ(parsed->collectors.at(collector.name), collector.enabled_by_default)
        << collector.name;
  }
  ASSERT_EQ(parsed->hypervisors.size(), 3u);
  QemuOptions qemu;
  EXPECT_EQ(parsed->hypervisors[0].qemu.emulator_dirs, qemu.emulator_dirs);
  EXPECT_EQ(parsed->hypervisors[0].qemu.probe_timeout, qemu.probe_timeout);
  EXPECT_EQ(parsed->hypervisors[0].qemu.parallel_probes, qemu.parallel_probes);
  EXPECT_EQ(parsed->hypervisors[0].qemu.cache_dir, qemu.cache_dir);
  EXPECT_EQ(parsed->hypervisors[0].qemu.user, qemu.user);
  EXPECT_EQ(parsed->hypervisors[0].qemu.group, qemu.group);
  EXPECT_EQ(parsed->hypervisors[0].qemu.migration_features, qemu.migration_features);
  EXPECT_EQ(parsed->hypervisors[0].qemu.firmware_dirs, qemu.firmware_dirs);
  EXPECT_EQ(parsed->hypervisors[0].qemu.nvram, qemu.nvram);
  XenOptions xen;
  EXPECT_EQ(parsed->hypervisors[1].xen.emulator, xen.emulator);
  EXPECT_EQ(parsed->hypervisors[1].xen.loader, xen.loader);
  EXPECT_EQ(parsed->hypervisors[1].xen.hvm_machines, xen.hvm_machines);
  EXPECT_EQ(parsed->hypervisors[2].lxc.emulator, LxcOptions().emulator);
  // Every collector the agent has is documented in the file.
  for (const CollectorDefault& collector : CollectorDefaults()) {
    EXPECT_NE(DefaultConfigText().find("  " + collector.name + ":\n"), std::string::npos)
        << collector.name << " is missing from config/virtcaps.yaml";
  }
}

TEST(ConfigTest, EmptyFileMeansDefaults) {
  auto config = ParseConfig("", "empty.yaml", ".", CollectorDefaults());
  ASSERT_TRUE(config) << config.error();
  EXPECT_EQ(config->refresh_interval, std::chrono::seconds(60));
  EXPECT_EQ(config->hypervisors.size(), 3u);
}

TEST(ConfigTest, MsrSourceKvm) {
  auto config =
      ParseConfig("probes:\n  msr:\n    source: kvm\n", "msr.yaml", ".", CollectorDefaults());
  ASSERT_TRUE(config) << config.error();
  EXPECT_EQ(config->probes.msr.source, MsrProbeConfig::Source::kKvm);
  auto bad =
      ParseConfig("probes:\n  msr:\n    source: ioctl\n", "msr.yaml", ".", CollectorDefaults());
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().find("probes.msr.source"), std::string::npos) << bad.error();
}

TEST(ConfigTest, KvmRecheckInterval) {
  auto config = ParseConfig("probes:\n  kvm:\n    recheck_interval: 0s\n", "kvm.yaml", ".",
                            CollectorDefaults());
  ASSERT_TRUE(config) << config.error();
  EXPECT_EQ(config->probes.kvm.recheck_interval, Duration(0));
  auto bad = ParseConfig("probes:\n  kvm:\n    recheck_interval: 2d\n", "kvm.yaml", ".",
                         CollectorDefaults());
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().find("kvm.yaml:3:23: probes.kvm.recheck_interval"), std::string::npos)
      << bad.error();
}

TEST(ConfigTest, ReadsEveryValueOfACustomFile) {
  auto config = LoadConfigFile(ConfigFixture("custom.yaml"), CollectorDefaults());
  ASSERT_TRUE(config) << config.error();
  EXPECT_EQ(config->web.listen_addresses, (std::vector<std::string>{":9100", "127.0.0.1:9200"}));
  EXPECT_EQ(config->web.telemetry_path, "/custom");
  EXPECT_EQ(config->refresh_interval, std::chrono::seconds(90));
  EXPECT_EQ(config->paths.rootfs, "/host");
  EXPECT_FALSE(config->collectors.at("kvm"));
  EXPECT_TRUE(config->collectors.at("cpu"));
  EXPECT_EQ(config->probes.cpuid.source, CpuidProbeConfig::Source::kDump);
  // Relative dump paths resolve against the config file's directory.
  EXPECT_EQ(config->probes.cpuid.dump_file,
            testing::SourceDir() + "/tests/fixtures/config/dumps/cpuid.txt");
  EXPECT_EQ(config->probes.msr.values.at(0x3a), 0x5u);
  EXPECT_EQ(config->host.uuid_source, HostConfig::UuidSource::kMachineId);
  ASSERT_EQ(config->hypervisors.size(), 1u);
  EXPECT_EQ(config->hypervisors[0].type, HypervisorType::kLxc);
  EXPECT_FALSE(config->hypervisors[0].enabled);
  EXPECT_EQ(config->log.level, LogConfig::Level::kDebug);
}

TEST(ConfigTest, MalformedYamlNamesFileLineAndColumn) {
  std::string error = LoadError("bad-syntax.yaml");
  EXPECT_NE(error.find(ConfigFixture("bad-syntax.yaml") + ":4:"), std::string::npos) << error;
  EXPECT_NE(error.find("invalid YAML"), std::string::npos) << error;
}

TEST(ConfigTest, UnknownKeyNamesItsPath) {
  EXPECT_EQ(LoadError("unknown-key.yaml"),
            ConfigFixture("unknown-key.yaml") +
                ":4:5: collectors.cpu.enabeld: unknown key (expected one of: enabled, "
                "flags_include)");
}

TEST(ConfigTest, WrongTypeNamesItsPath) {
  EXPECT_EQ(LoadError("wrong-type.yaml"),
            ConfigFixture("wrong-type.yaml") +
                ":3:14: collectors.kvm.enabled: expected true or false, got 'yes please'");
}

TEST(ConfigTest, OutOfRangeValuesAreRejected) {
  EXPECT_EQ(LoadError("out-of-range.yaml"),
            ConfigFixture("out-of-range.yaml") +
                ":1:19: refresh_interval: out of range: 500ms (allowed 1s..24h)");
  EXPECT_EQ(LoadError("out-of-range-nested.yaml"),
            ConfigFixture("out-of-range-nested.yaml") +
                ":3:22: hypervisors[0].parallel_probes: out of range: 0 (allowed 1..64)");
  EXPECT_EQ(LoadError("out-of-range-read-budget.yaml"),
            ConfigFixture("out-of-range-read-budget.yaml") +
                ":2:22: host.read_budget_bytes: out of range: 4096 (allowed 1048576..4294967296)");
}

TEST(ConfigTest, UnknownHypervisorIsRejected) {
  std::string error = LoadError("unknown-hypervisor.yaml");
  EXPECT_NE(error.find(":2:11: hypervisors[0].type: expected one of qemu, xen, lxc, got 'vmware'"),
            std::string::npos)
      << error;
}

TEST(ConfigTest, RejectsOtherBadValues) {
  auto collectors = CollectorDefaults();
  auto expect_error = [&](const std::string& yaml, const std::string& fragment) {
    auto config = ParseConfig(yaml, "t.yaml", ".", collectors);
    ASSERT_FALSE(config) << yaml;
    EXPECT_NE(config.error().find(fragment), std::string::npos) << config.error();
  };
  expect_error("web:\n  listen_addresses: []\n",
               "web.listen_addresses: needs at least one address");
  expect_error("web:\n  listen_addresses: ['[::1]:9977']\n", "IPv6");
  expect_error("web:\n  listen_addresses: ['localhost:99999']\n", "invalid port");
  expect_error("web:\n  telemetry_path: metrics\n", "web.telemetry_path");
  expect_error("refresh_interval: 60\n", "expected a duration");
  expect_error("paths:\n  rootfs: relative/dir\n", "paths.rootfs: expected an absolute path");
  expect_error("collectors:\n  gpu:\n    enabled: true\n", "collectors.gpu: unknown key");
  expect_error("probes:\n  cpuid:\n    source: dump\n", "probes.cpuid.dump_file: required");
  expect_error("hypervisors:\n  - type: qemu\n  - type: qemu\n", "listed twice");
  expect_error("hypervisors:\n  - type: qemu\n    nvram: [/usr/share/OVMF/OVMF_CODE.fd]\n",
               "hypervisors[0].nvram[0]: expected LOADER:NVRAM");
  expect_error("hypervisors:\n  - type: qemu\n    firmware_dirs: [relative/dir]\n",
               "hypervisors[0].firmware_dirs[0]");
  expect_error("hypervisors:\n  - enabled: true\n", "hypervisors[0].type: required");
  expect_error("hypervisors:\n  - type: xen\n    emulator_dirs: [/usr/bin]\n", "unknown key");
  expect_error("web: [1, 2]\n", "web: expected a mapping");
  expect_error("web:\n  telemetry_path: /a\n  telemetry_path: /b\n", "duplicate key");
}

TEST(DurationTest, ParsesPrometheusStyle) {
  EXPECT_EQ(ParseDuration("90s"), std::chrono::seconds(90));
  EXPECT_EQ(ParseDuration("1h30m"), std::chrono::minutes(90));
  EXPECT_EQ(ParseDuration("250ms"), std::chrono::milliseconds(250));
  EXPECT_FALSE(ParseDuration("30"));
  EXPECT_FALSE(ParseDuration("5s1m"));  // units must go from large to small
  EXPECT_FALSE(ParseDuration("-5s"));
  EXPECT_EQ(FormatDuration(std::chrono::seconds(3690)), "1h1m30s");
}

TEST(DurationTest, EveryFormattedDurationParsesBack) {
  // Found by fuzz/duration_fuzzer: 924h9ms formats as 3326400009ms, which was refused
  // (numbers were capped at 10^9).
  auto duration = ParseDuration("924h09ms");
  ASSERT_TRUE(duration);
  EXPECT_EQ(FormatDuration(*duration), "3326400009ms");
  EXPECT_EQ(ParseDuration(FormatDuration(*duration)), duration);
  EXPECT_EQ(ParseDuration("31536000000ms"), std::chrono::hours(24 * 365));
  EXPECT_FALSE(ParseDuration("31536000001ms"));
  EXPECT_FALSE(ParseDuration("99999999999999999999d"));
}

}  // namespace
}  // namespace virtcaps

namespace virtcaps {
namespace {

std::string WebError(const std::string& yaml) {
  auto config = ParseConfig(yaml, "t.yaml", ".", CollectorDefaults());
  EXPECT_FALSE(config) << "accepted:\n" << yaml;
  return config ? "" : config.error();
}

// Issue 15.9: a telemetry path that another endpoint answers, or that no request line
// can carry, is refused at load time with file:line:column.
TEST(ConfigTest, TelemetryPathMustBeFreeAndPlain) {
  EXPECT_EQ(WebError("web:\n  telemetry_path: /healthz\n"),
            "t.yaml:2:19: web.telemetry_path: collides with the /healthz endpoint");
  EXPECT_EQ(WebError("web:\n  telemetry_path: /capabilities\n"),
            "t.yaml:2:19: web.telemetry_path: collides with the /capabilities endpoint");
  EXPECT_EQ(WebError("web:\n  telemetry_path: /my metrics\n"),
            "t.yaml:2:19: web.telemetry_path: cannot contain spaces, control characters, '?', "
            "'#' or '%' (it is matched against the request path as sent)");
  EXPECT_EQ(WebError("web:\n  telemetry_path: /\n"),
            "t.yaml:2:19: web.telemetry_path: expected a path such as /metrics");
  auto fine =
      ParseConfig("web:\n  telemetry_path: /probe/metrics\n", "t.yaml", ".", CollectorDefaults());
  ASSERT_TRUE(fine) << fine.error();
}

TEST(ConfigTest, ConnectionLimitsAndAllowedNetworks) {
  auto config = ParseConfig(
      "web:\n  max_connections: 16\n  max_connections_per_client: 4\n"
      "  allowed_networks: [10.0.0.0/8, 192.0.2.7]\n  health_without_auth: true\n",
      "t.yaml", ".", CollectorDefaults());
  ASSERT_TRUE(config) << config.error();
  EXPECT_EQ(config->web.max_connections_per_client, 4);
  EXPECT_EQ(config->web.allowed_networks, (std::vector<std::string>{"10.0.0.0/8", "192.0.2.7"}));
  EXPECT_TRUE(config->web.health_without_auth);
  EXPECT_EQ(WebError("web:\n  max_connections: 4\n  max_connections_per_client: 5\n"),
            "t.yaml:3:31: web.max_connections_per_client: is above max_connections (4): one "
            "client could hold every worker");
  // A small pool without an explicit per-client limit: the limit follows the pool.
  auto small = ParseConfig("web:\n  max_connections: 2\n", "t.yaml", ".", CollectorDefaults());
  ASSERT_TRUE(small) << small.error();
  EXPECT_EQ(small->web.max_connections_per_client, 2);
  EXPECT_EQ(
      WebError("web:\n  allowed_networks: [10.0.0.0/33]\n"),
      "t.yaml:2:22: web.allowed_networks[0]: expected a prefix length from 0 to 32 after '/'");
  EXPECT_EQ(WebError("web:\n  allowed_networks: [::1]\n"),
            "t.yaml:2:22: web.allowed_networks[0]: expected an IPv4 network such as 10.0.0.0/8 or "
            "an address such as 192.0.2.7");
}

}  // namespace
}  // namespace virtcaps
