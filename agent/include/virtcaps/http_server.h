// The agent's web server (our own CivetServer): landing page, metrics,
// capabilities XML and health, all served from the current snapshot.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "virtcaps/snapshot.h"
#include "virtcaps/status.h"

class CivetServer;

namespace virtcaps {

struct HttpServerOptions {
  std::vector<std::string> listen_addresses;  // host:port; port 0 picks a free port
  std::string telemetry_path = "/metrics";
  int worker_threads = 8;
};

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

  // Routing and response, separate from CivetWeb so it can be tested directly.
  struct Response {
    int status = 200;
    std::string content_type;
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
  };
  Response Handle(const std::string& method, const std::string& path) const;

 private:
  HttpServerOptions options_;
  const SnapshotStore& store_;
  std::unique_ptr<CivetServer> server_;
};

}  // namespace virtcaps
