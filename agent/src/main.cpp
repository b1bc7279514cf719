// virtcaps-agent: probes what this host can run and serves it over HTTP.
#include <malloc.h>
#include <signal.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <string>
#include <vector>

#include "virtcaps/cli.h"
#include "virtcaps/collector.h"
#include "virtcaps/host_checks.h"
#include "virtcaps/http_server.h"
#include "virtcaps/log.h"
#include "virtcaps/refresher.h"
#include "virtcaps/renderers.h"
#include "virtcaps/systemd.h"
#include "virtcaps/web_settings.h"

namespace virtcaps {
namespace {

int RunOnce(const Config& config, const CommandLine& cli) {
  CommandLine::Format format = cli.once_format;
  auto start = std::chrono::steady_clock::now();
  HostCapabilities caps = ProbeHost(config);
  LogProbeProblems(caps);
  if (format == CommandLine::Format::kXml) {
    std::cout << RenderCapabilitiesXml(caps, cli.once_driver);
  } else if (format == CommandLine::Format::kDomainCapabilities) {
    auto document = RenderDomainCapabilitiesXml(
        caps, {cli.domcaps_arch, cli.domcaps_virttype, cli.domcaps_machine, cli.domcaps_emulator});
    if (!document) {
      std::cerr << "virtcaps-agent: domain capabilities: " << document.error() << "\n";
      return 1;
    }
    std::cout << *document;
  } else {
    RefreshFacts facts;
    facts.duration_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    facts.finished_at_seconds =
        std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    facts.refreshes_total = 1;
    facts.interval_seconds = std::chrono::duration<double>(config.refresh_interval).count();
    AddQemuProbeCounts(caps, facts);
    MetricsOptions options = MetricsOptionsFor(config);
    std::cout << (format == CommandLine::Format::kOpenMetrics
                      ? RenderOpenMetrics(caps, facts, CurrentBuildInfo(), options)
                      : RenderPrometheus(caps, facts, CurrentBuildInfo(), options));
  }
  std::cout.flush();
  return std::cout.good() ? 0 : 1;
}

int Serve(const CommandLine& cli, Config config) {
#ifdef M_ARENA_MAX
  // One malloc arena for every thread. glibc gives each thread that allocates an arena
  // of its own (up to 8 per CPU); with 64 CivetWeb workers taking connections in turn,
  // each new worker's first requests grew a fresh arena, so RSS kept creeping up as
  // connections came and went (+160 kB from scrape 10 000 to 100 000). A request
  // allocates little and briefly, so one arena costs no measurable throughput.
  mallopt(M_ARENA_MAX, 1);
#endif
  // Signals are taken synchronously by this thread; every other thread blocks them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  SystemdNotifier systemd;
  SnapshotStore store;
  HttpServerOptions options;
  options.listen_addresses = config.web.listen_addresses;
  if (cli.systemd_socket) {
    auto sockets = SystemdListeningSockets();
    if (!sockets) {
      LogError("--web.systemd-socket", {{"error", sockets.error()}});
      return 1;
    }
    options.inherited_listeners = *sockets;
  }
  options.telemetry_path = config.web.telemetry_path;
  options.worker_threads = config.web.max_connections;
  options.max_connections_per_client = config.web.max_connections_per_client;
  options.allowed_networks = config.web.allowed_networks;
  options.health_without_auth = config.web.health_without_auth;
  options.request_timeout_ms = static_cast<int>(config.web.request_timeout.count());
  options.max_request_header_bytes = config.web.max_request_header_bytes;
  options.web_config_file = cli.web_config_file;
  Refresher refresher(config, store);
  options.on_web_config_reload = [&refresher](bool ok) { refresher.WebConfigReloaded(ok); };
  HttpServer server(options, store);
  if (Status status = server.Start(); !status.ok()) {
    LogError("cannot start web server", {{"error", status.message()}});
    return 1;
  }
  for (const std::string& address : server.BoundAddresses()) {
    LogInfo("listening", {{"address", address},
                          {"telemetry_path", config.web.telemetry_path},
                          {"tls", server.tls() ? "true" : "false"}});
  }
  LogInfo("starting", {{"version", CurrentBuildInfo().version},
                       {"config", config.source},
                       {"rootfs", config.paths.rootfs},
                       {"refresh_interval", FormatDuration(config.refresh_interval)}});
  // Type=notify: ready once every path answers (the first snapshot), not when the
  // port opens; systemd orders the units that need the agent after that.
  std::atomic<bool> serving{false};
  refresher.OnFirstSnapshot([&systemd, &serving] {
    serving = true;
    systemd.Ready("serving");
  });
  refresher.Start();

  // With WatchdogSec= the service manager wants a ping every watchdog_interval: the
  // signal wait times out that often. The ping says this thread still runs its loop.
  const std::chrono::microseconds watchdog = systemd.watchdog_interval();
  struct timespec wait_for;
  wait_for.tv_sec = static_cast<time_t>(watchdog.count() / 1000000);
  wait_for.tv_nsec = static_cast<long>(watchdog.count() % 1000000 * 1000);
  if (watchdog.count() > 0) systemd.Watchdog();
  while (true) {
    int signal_number = 0;
    if (watchdog.count() > 0) {
      signal_number = sigtimedwait(&signals, nullptr, &wait_for);
      if (signal_number < 0) {
        if (errno == EAGAIN) systemd.Watchdog();
        continue;
      }
    } else if (sigwait(&signals, &signal_number) != 0) {
      continue;
    }
    if (signal_number == SIGHUP) {
      systemd.Reloading();
      auto reloaded = ResolveConfig(cli, CollectorDefaults());
      if (!reloaded) {
        LogError("reload failed; keeping the running configuration", {{"error", reloaded.error()}});
        refresher.ReloadFailed();
        // Before the first snapshot, its READY=1 ends the reload too.
        if (serving) systemd.Ready("serving; the last reload failed");
        continue;
      }
      if (reloaded->web.listen_addresses != config.web.listen_addresses ||
          reloaded->web.telemetry_path != config.web.telemetry_path) {
        LogWarn("web settings changed; they take effect after a restart");
      }
      SetLogLevel(reloaded->log.level);
      SetLogFormat(reloaded->log.format);
      config = *reloaded;
      refresher.Reconfigure(config);
      LogInfo("configuration reloaded", {{"config", config.source}});
      if (serving) systemd.Ready("serving");
      continue;
    }
    systemd.Stopping();
    LogInfo("shutting down", {{"signal", std::to_string(signal_number)}});
    break;
  }
  server.Stop();  // finishes requests in flight
  refresher.Stop();
  return 0;
}

int Main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  std::vector<std::string> args(argv + 1, argv + argc);
  std::vector<CollectorDefault> collectors = CollectorDefaults();
  auto cli = ParseCommandLine(args, collectors);
  if (!cli) {
    std::cerr << "virtcaps-agent: " << cli.error() << "\n";
    return 2;
  }
  if (cli->mode == CommandLine::Mode::kHelp) {
    std::cout << UsageText(collectors);
    return 0;
  }
  if (cli->mode == CommandLine::Mode::kVersion) {
    const BuildInfo& build = CurrentBuildInfo();
    std::cout << "virtcaps-agent " << build.version << " (revision " << build.revision << ", "
              << build.compiler << ")\n";
    return 0;
  }
  auto config = ResolveConfig(*cli, collectors);
  if (!config) {
    std::cerr << "virtcaps-agent: invalid configuration: " << config.error() << "\n";
    return 1;
  }
  SetLogLevel(config->log.level);
  SetLogFormat(config->log.format);
  switch (cli->mode) {
    case CommandLine::Mode::kCheckConfig:
      if (!cli->web_config_file.empty()) {
        auto web = LoadWebSettings(cli->web_config_file);
        if (!web) {
          std::cerr << "virtcaps-agent: invalid web configuration: " << web.error() << "\n";
          return 1;
        }
        if (Status tls = (*web)->tls ? CheckCivetwebTlsLookup() : Status(); !tls.ok()) {
          std::cerr << "virtcaps-agent: cannot serve HTTPS: " << tls.message() << "\n";
          return 1;
        }
        std::cout << "web configuration OK: " << cli->web_config_file << "\n";
      }
      std::cout << "configuration OK: " << config->source << "\n";
      return 0;
    case CommandLine::Mode::kOnce:
      return RunOnce(*config, *cli);
    case CommandLine::Mode::kValidate: {
      HostCapabilities caps = ProbeHost(*config);
      std::cout << FormatHostChecks(caps.checks);
      return AnyCheckFailed(caps.checks) ? 1 : 0;
    }
    default:
      return Serve(*cli, std::move(*config));
  }
}

}  // namespace
}  // namespace virtcaps

int main(int argc, char** argv) { return virtcaps::Main(argc, argv); }
