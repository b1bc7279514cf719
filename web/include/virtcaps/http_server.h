// The agent's web server (our own CivetServer): landing page, metrics,
// capabilities XML and health, all served from the current snapshot.
#pragma once

#include <array>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "virtcaps/snapshot.h"
#include "virtcaps/status.h"

class CivetServer;

namespace virtcaps {

class ConnectionGate;
class WebSettingsWatcher;
class RequestCounters;
class ProcessStats;

struct HttpServerOptions {
  std::vector<std::string> listen_addresses;  // host:port; port 0 picks a free port
  // Listening IPv4 sockets to serve instead of listen_addresses (--web.systemd-socket:
  // the ones systemd passed). The server takes them over: Stop() closes them.
  std::vector<int> inherited_listeners;
  std::string telemetry_path = "/metrics";
  int worker_threads = 64;
  // Open connections one source address may have; more are closed on accept.
  int max_connections_per_client = 8;
  // IPv4 networks ("10.0.0.0/8") served; empty: all. Others are closed on accept.
  std::vector<std::string> allowed_networks;
  // With basic auth: /healthz is served without credentials (Kubernetes probes).
  bool health_without_auth = false;
  int request_timeout_ms = 10000;
  int max_request_header_bytes = 16384;
  // --web.config.file (exporter-toolkit format): TLS, basic auth, response headers.
  // Empty: plain HTTP, no auth. Re-read when it (or a file it names) changes.
  std::string web_config_file;
  // Told the outcome of each re-read of the web config (from the watcher's thread).
  std::function<void(bool ok)> on_web_config_reload;
};

// /domcapabilities' query string: arch, virttype, machine, emulator (percent-encoded);
// anything else, a repeated key or a bad escape is an error naming it.
Expected<DomainCapabilitiesQuery> ParseDomainCapabilitiesQuery(std::string_view query);

class HttpServer {
 public:
  HttpServer(HttpServerOptions options, const SnapshotStore& store);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  Status Start();
  void Stop();
  // "127.0.0.1:41234" for each listening socket, with the port actually bound.
  std::vector<std::string> BoundAddresses() const;
  // True once started with a web config that has tls_server_config: HTTPS only.
  bool tls() const { return tls_; }

  // Routing and response, separate from CivetWeb so it can be tested directly.
  // Bodies are views into the snapshot (kept alive by `snapshot`) or into constants:
  // answering a request copies nothing.
  struct Response {
    int status = 200;
    std::string_view content_type;
    std::string_view body;
    std::string_view content_encoding;  // "gzip" or empty
    std::string_view allow;             // for 405
    bool vary_accept_encoding = false;
    bool vary_accept = false;  // /metrics: the format follows the Accept header
    bool retry_after = false;  // 503 while starting
    bool challenge = false;    // 401: WWW-Authenticate for basic auth
    std::shared_ptr<const Snapshot> snapshot;
    // For snapshot bodies: the whole response, head included, ready to write.
    const PreparedResponse* prepared = nullptr;
    // A body made for this request (a filtered page, an error naming the collectors,
    // /domcapabilities): `body` views this.
    std::shared_ptr<const std::string> owned_body;
    // Sent after `body` and counted in Content-Length: the live /metrics families, as
    // text in `live` (tail_is_live: its first live_size bytes), or compressed: into
    // this thread's scratch memory (compressed_tail, valid until the thread's next
    // request), or onto the heap where that cannot be had (owned_tail).
    std::string_view compressed_tail;
    std::shared_ptr<const std::string> owned_tail;
    bool tail_is_live = false;
    size_t live_size = 0;
    // ~1.8 kB with every request counter in use; only the first live_size bytes are
    // ever read, so it is not cleared (4 kB of stores per request).
    std::array<char, 4096> live;
    std::string_view tail_text() const {
      if (!compressed_tail.empty()) return compressed_tail;
      if (owned_tail) return *owned_tail;
      return tail_is_live ? std::string_view(live.data(), live_size) : std::string_view();
    }
  };
  struct Request {
    std::string_view method;
    std::string_view path;
    std::string_view query;  // without the '?'
    std::string_view accept;
    std::string_view accept_encoding;
  };
  Response Handle(const Request& request) const;
  Response Handle(std::string_view method, std::string_view path,
                  std::string_view accept_encoding = {}, std::string_view query = {}) const {
    return Handle(Request{method, path, query, {}, accept_encoding});
  }
  // Counts an answered request for virtcaps_http_requests_total (lock-free).
  void CountRequest(std::string_view path, int status) const;
  // The answer to a request without valid basic-auth credentials.
  static Response Unauthorized();

  // /domcapabilities for one request, into `response`.
  static void DomainCapabilities(const Snapshot& snapshot, std::string_view query,
                                 Response& response);

  // The web config in force (null without --web.config.file).
  const WebSettingsWatcher* web_settings() const { return web_.get(); }
  const HttpServerOptions& options() const { return options_; }
  // The per-client limit and allow list (null before Start).
  ConnectionGate* gate() const { return gate_.get(); }

 private:
  HttpServerOptions options_;
  const SnapshotStore& store_;
  std::string landing_page_;
  // The /metrics answer for this snapshot: format, collector filter, live families.
  void AnswerMetrics(const Request& request, bool gzip, Response& response) const;
  std::unique_ptr<RequestCounters> requests_;
  std::unique_ptr<ProcessStats> process_;
  std::unique_ptr<WebSettingsWatcher> web_;  // outlives server_, whose TLS hook uses it
  bool tls_ = false;
  std::unique_ptr<ConnectionGate> gate_;  // outlives server_, whose accept() consults it
  std::unique_ptr<CivetServer> server_;
  // With inherited listeners: "address:port" of each, as getsockname() says.
  std::vector<std::string> inherited_addresses_;
  // Puts each inherited listener in place of the loopback socket CivetWeb bound for it.
  Status AdoptInheritedListeners();
};

}  // namespace virtcaps
