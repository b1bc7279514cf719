#include <gtest/gtest.h>

#include "test_support.h"
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
  EXPECT_EQ(post.allow, "GET, HEAD");
  EXPECT_EQ(server.Handle("GET", "/../etc/passwd").status, 404);
}

TEST(HttpHandlerTest, ServesThePreCompressedBodyWhenGzipIsAccepted) {
  SnapshotStore store;
  HttpServer server(HttpServerOptions{}, store);
  HostCapabilities caps;
  caps.cpu.arch = "x86_64";
  store.Publish(MakeSnapshot(caps, RefreshFacts{}));
  auto snapshot = store.Current();
  auto plain = server.Handle("GET", "/metrics", "");
  EXPECT_EQ(plain.content_encoding, "");
  EXPECT_EQ(plain.body, snapshot->metrics_text());
  // The body is the snapshot's own bytes, not a copy; the live families follow it.
  EXPECT_EQ(plain.body.data(), snapshot->metrics_text().data());
  ASSERT_TRUE(plain.tail_is_live);  // written into the response, not allocated
  EXPECT_EQ(plain.tail_text().rfind("# HELP process_cpu_seconds_total ", 0), 0u);
  auto gzip = server.Handle("GET", "/metrics", "deflate, gzip;q=0.8");
  EXPECT_EQ(gzip.content_encoding, "gzip");
  EXPECT_EQ(gzip.body.data(), snapshot->metrics_gzip_open().bytes.data());
  ASSERT_TRUE(gzip.tail);
  std::string unzipped = testing::Gunzip(std::string(gzip.body) + *gzip.tail);
  EXPECT_EQ(unzipped.substr(0, snapshot->metrics_text().size()), snapshot->metrics_text());
  EXPECT_NE(unzipped.find("\nvirtcaps_http_requests_total{"), std::string::npos);
  EXPECT_TRUE(gzip.vary_accept_encoding);
  EXPECT_TRUE(gzip.vary_accept);
  EXPECT_EQ(server.Handle("GET", "/capabilities", "gzip;q=0").content_encoding, "");
  EXPECT_EQ(server.Handle("GET", "/capabilities", "br").content_encoding, "");
  EXPECT_EQ(server.Handle("GET", "/capabilities", "*").body, snapshot->xml_gzip.body());
  // The prepared response is the head the server would format, then the body.
  EXPECT_EQ(snapshot->metrics.head(),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
            "Content-Length: " +
                std::to_string(snapshot->metrics_text().size()) +
                "\r\nVary: Accept-Encoding\r\n\r\n");
  EXPECT_NE(snapshot->xml_gzip.head().find("Content-Encoding: gzip\r\n"), std::string::npos);
  // gzip magic bytes
  ASSERT_GE(snapshot->xml_gzip.body().size(), 2u);
  EXPECT_EQ(static_cast<unsigned char>(snapshot->xml_gzip.body()[0]), 0x1f);
  EXPECT_EQ(static_cast<unsigned char>(snapshot->xml_gzip.body()[1]), 0x8b);
}

// Issue 13: a refresh compresses only the bodies whose bytes changed.
TEST(HttpHandlerTest, SnapshotsReuseTheCompressedBodiesThatDidNotChange) {
  HostCapabilities caps;
  caps.cpu.arch = "x86_64";
  RefreshFacts facts;
  facts.refreshes_total = 1;
  auto first = MakeSnapshot(caps, facts);
  EXPECT_EQ(first->bodies_compressed, 1);  // the XML; the metrics texts wait for a request
  EXPECT_EQ(first->metrics_gzip.IfMade(), nullptr);
  const OpenGzip& made = first->metrics_gzip_open();  // the first gzip request makes it
  EXPECT_EQ(first->metrics_gzip.IfMade().get(), &made);
  EXPECT_EQ(&first->metrics_gzip_open(), &made);  // once
  auto same = MakeSnapshot(caps, facts, first.get());
  EXPECT_EQ(same->bodies_compressed, 0);
  EXPECT_EQ(same->metrics_gzip.IfMade().get(), &made);  // taken over, not compressed again
  EXPECT_EQ(same->openmetrics_gzip.IfMade(), nullptr);  // never asked for: still not made
  EXPECT_EQ(same->xml_gzip.bytes, first->xml_gzip.bytes);
  facts.refreshes_total = 2;  // the metrics change, the XML does not
  auto next = MakeSnapshot(caps, facts, same.get());
  EXPECT_EQ(next->bodies_compressed, 0);
  EXPECT_EQ(next->xml_gzip.bytes, first->xml_gzip.bytes);
  EXPECT_EQ(next->metrics_gzip.IfMade(), nullptr);
  EXPECT_NE(next->metrics_gzip_open().bytes, made.bytes);
  EXPECT_EQ(
      testing::Gunzip(next->metrics_gzip_open().bytes + GzipClose(next->metrics_gzip_open(), "")),
      next->metrics_text());
  EXPECT_EQ(testing::Gunzip(next->openmetrics_gzip_open().bytes +
                            GzipClose(next->openmetrics_gzip_open(), "# EOF\n")),
            std::string(next->openmetrics.body()) + "# EOF\n");
}

}  // namespace
}  // namespace virtcaps
