#include <gtest/gtest.h>

#include "virtcaps/http_server.h"

namespace virtcaps {
namespace {

TEST(HttpHandlerTest, RoutesAndStatusCodes) {
  SnapshotStore store;
  HttpServerOptions options;
  options.telemetry_path = "/custom-metrics";
  HttpServer server(options, store);
  EXPECT_EQ(server.Handle("GET", "/healthz").status, 503);  // no snapshot yet
  EXPECT_EQ(server.Handle("GET", "/custom-metrics").status, 503);
  EXPECT_EQ(server.Handle("GET", "/").status, 200);
  EXPECT_NE(server.Handle("GET", "/").body.find("href=\"/custom-metrics\""), std::string::npos);

  HostCapabilities caps;
  caps.cpu.arch = "x86_64";
  store.Publish(MakeSnapshot(caps, RefreshFacts{}));
  auto metrics = server.Handle("GET", "/custom-metrics");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_EQ(metrics.content_type, "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(server.Handle("HEAD", "/capabilities").content_type, "application/xml");
  EXPECT_EQ(server.Handle("GET", "/healthz").status, 200);
  EXPECT_EQ(server.Handle("GET", "/metrics").status, 404);  // the path was moved
  auto post = server.Handle("POST", "/capabilities");
  EXPECT_EQ(post.status, 405);
  ASSERT_EQ(post.headers.size(), 1u);
  EXPECT_EQ(post.headers[0].second, "GET, HEAD");
  EXPECT_EQ(server.Handle("GET", "/../etc/passwd").status, 404);
}

}  // namespace
}  // namespace virtcaps
