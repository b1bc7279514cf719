#include <gtest/gtest.h>

#include "test_support.h"
#include "virtcaps/files.h"
#include "virtcaps/http_server.h"
#include "virtcaps/refresher.h"

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
  // The live families compressed into this thread's scratch memory, not onto the heap.
  ASSERT_FALSE(gzip.compressed_tail.empty());
  EXPECT_FALSE(gzip.owned_tail);
  EXPECT_EQ(gzip.tail_text().data(), gzip.compressed_tail.data());
  std::string unzipped = testing::Gunzip(std::string(gzip.body) + std::string(gzip.tail_text()));
  EXPECT_EQ(unzipped.substr(0, snapshot->metrics_text().size()), snapshot->metrics_text());
  EXPECT_NE(unzipped.find("\nvirtcaps_http_requests_total{"), std::string::npos);
  EXPECT_TRUE(gzip.vary_accept_encoding);
  EXPECT_TRUE(gzip.vary_accept);
  EXPECT_EQ(server.Handle("GET", "/capabilities", "gzip;q=0").content_encoding, "");
  EXPECT_EQ(server.Handle("GET", "/capabilities", "br").content_encoding, "");
  // The first gzip or * coding decides; other codings and empty fields are skipped.
  EXPECT_EQ(server.Handle("GET", "/capabilities", "gzip;q=0, *").content_encoding, "");
  EXPECT_EQ(server.Handle("GET", "/capabilities", "identity, *;q=0.5").content_encoding, "gzip");
  EXPECT_EQ(server.Handle("GET", "/capabilities", " , ,gzip").content_encoding, "gzip");
  EXPECT_EQ(server.Handle("GET", "/capabilities", "br;q=1, gzip ; q=0.0").content_encoding, "");
  EXPECT_EQ(server.Handle("GET", "/capabilities", "*").body, snapshot->xml_gzip->body());
  // The prepared response is the head the server would format, then the body.
  EXPECT_EQ(snapshot->xml->head(),
            "HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nContent-Length: " +
                std::to_string(snapshot->xml_text().size()) + "\r\nVary: Accept-Encoding\r\n\r\n");
  EXPECT_EQ(snapshot->xml->body(), RenderCapabilitiesXml(caps));
  EXPECT_NE(snapshot->xml_gzip->head().find("Content-Encoding: gzip\r\n"), std::string::npos);
  // gzip magic bytes
  ASSERT_GE(snapshot->xml_gzip->body().size(), 2u);
  EXPECT_EQ(static_cast<unsigned char>(snapshot->xml_gzip->body()[0]), 0x1f);
  EXPECT_EQ(static_cast<unsigned char>(snapshot->xml_gzip->body()[1]), 0x8b);
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
  EXPECT_EQ(same->xml_gzip->bytes, first->xml_gzip->bytes);
  facts.refreshes_total = 2;  // the metrics change, the XML does not
  auto next = MakeSnapshot(caps, facts, same.get());
  EXPECT_EQ(next->bodies_compressed, 0);
  EXPECT_EQ(next->xml_gzip->bytes, first->xml_gzip->bytes);
  // Shared, not copied: a refresh of an unchanged host allocates no XML body.
  EXPECT_EQ(next->xml.get(), first->xml.get());
  EXPECT_EQ(next->xml_gzip.get(), first->xml_gzip.get());
  EXPECT_EQ(next->metrics_gzip.IfMade(), nullptr);
  EXPECT_NE(next->metrics_gzip_open().bytes, made.bytes);
  EXPECT_EQ(
      testing::Gunzip(next->metrics_gzip_open().bytes + GzipClose(next->metrics_gzip_open(), "")),
      next->metrics_text());
  EXPECT_EQ(testing::Gunzip(next->openmetrics_gzip_open().bytes +
                            GzipClose(next->openmetrics_gzip_open(), "# EOF\n")),
            std::string(next->openmetrics) + "# EOF\n");
}

// Issue 13: a snapshot whose model equals the previous one's but for durations and
// probe counts takes over the XML and the capability parts of the metrics texts and
// renders only the refresh facts; the bodies are byte for byte a full rendering.
TEST(HttpHandlerTest, AnUnchangedModelReusesTheCapabilityBodies) {
  HostCapabilities caps;
  caps.cpu.arch = "x86_64";
  caps.kernel_release = "6.1.0";
  caps.collectors = {{"cpu", true, 0.001, ""}, {"qemu", true, 0.002, ""}};
  caps.hypervisors.push_back(HypervisorStatus{"qemu", true, "", "", 1, 0, 1, 0});
  RefreshFacts facts;
  facts.refreshes_total = 1;
  auto first = MakeSnapshot(caps, facts);
  EXPECT_FALSE(first->capability_bodies_reused);
  // The next refresh: other durations, probe counts and facts; the same capabilities.
  HostCapabilities again = caps;
  again.collectors[0].duration_seconds = 0.5;
  again.hypervisors[0].cache_hits = 0;
  again.hypervisors[0].probes_spawned = 1;
  facts.refreshes_total = 2;
  facts.duration_seconds = 0.25;
  facts.qemu_probes_spawned_total = 1;
  auto second = MakeSnapshot(again, facts, first.get());
  EXPECT_TRUE(second->capability_bodies_reused);
  EXPECT_EQ(second->bodies_compressed, 0);
  EXPECT_EQ(second->metrics_text(), RenderPrometheus(again, facts, CurrentBuildInfo()));
  EXPECT_EQ(second->openmetrics,
            RenderOpenMetrics(again, facts, CurrentBuildInfo(), {}, /*terminate=*/false));
  EXPECT_EQ(second->xml_text(), RenderCapabilitiesXml(again));
  EXPECT_NE(second->metrics_text().find(
                "virtcaps_scrape_collector_duration_seconds{collector=\"cpu\"} 0.5\n"),
            std::string::npos);
  EXPECT_NE(second->metrics_text().find("virtcaps_refreshes_total 2\n"), std::string::npos);
  // The restored durations are this refresh's, not the previous one's.
  EXPECT_EQ(second->caps.collectors[0].duration_seconds, 0.5);
  EXPECT_EQ(second->caps.hypervisors[0].probes_spawned, 1u);
  // A changed capability renders everything again.
  HostCapabilities changed = again;
  changed.kernel_release = "6.2.0";
  auto third = MakeSnapshot(changed, facts, second.get());
  EXPECT_FALSE(third->capability_bodies_reused);
  EXPECT_EQ(third->metrics_text(), RenderPrometheus(changed, facts, CurrentBuildInfo()));
  EXPECT_NE(third->metrics_text().find("release=\"6.2.0\""), std::string::npos);
  // A collector that now fails is a change too (its success is a capability part).
  HostCapabilities failing = changed;
  failing.collectors[0].success = false;
  auto fourth = MakeSnapshot(failing, facts, third.get());
  EXPECT_FALSE(fourth->capability_bodies_reused);
  EXPECT_NE(fourth->metrics_text().find("virtcaps_scrape_collector_success{collector=\"cpu\"} 0\n"),
            std::string::npos);
  // Other metrics options (a flags filter): rendered again, filtered.
  MetricsOptions options;
  options.cpu_features_include = std::make_shared<const FeatureFilter>("^$");
  auto filtered = MakeSnapshot(failing, facts, fourth.get(), options);
  EXPECT_FALSE(filtered->capability_bodies_reused);
}

// The same through the collectors on a fixture host: an unchanged host reuses the
// capability bodies on the next refresh; a changed host file (the CPU's model name in
// /proc/cpuinfo) is in the very next snapshot, which renders everything again.
TEST(HttpHandlerTest, AChangedHostFileIsInTheNextSnapshot) {
  std::string root = testing::TempDir() + "/host";
  auto copied =
      testing::RunProcess({"/bin/cp", "-rL", testing::FixtureHost("amd-epyc-pvm-guest"), root});
  ASSERT_EQ(copied.exit_code, 0) << copied.err;
  Config config = testing::FixtureConfig("amd-epyc-pvm-guest");
  config.paths.rootfs = root;
  RefreshFacts facts;
  auto first = MakeSnapshot(ProbeHost(config), facts);
  EXPECT_FALSE(first->capability_bodies_reused);
  auto second = MakeSnapshot(ProbeHost(config), facts, first.get());
  EXPECT_TRUE(second->capability_bodies_reused);
  // The fixture's collectors all work from the copy (so every part is in the bodies).
  for (const CollectorOutcome& outcome : second->caps.collectors) {
    EXPECT_TRUE(outcome.success) << outcome.name << ": " << outcome.error;
  }
  EXPECT_NE(second->metrics_text().find("virtcaps_hypervisor_available{hypervisor=\"qemu\"} 1\n"),
            std::string::npos);
  EXPECT_TRUE(second->xml_text() == first->xml_text());
  EXPECT_TRUE(second->metrics_text() == RenderPrometheus(second->caps, facts, CurrentBuildInfo()));
  EXPECT_NE(second->metrics_text().find("model_name=\"AMD EPYC\""), std::string::npos);

  std::string cpuinfo = *ReadFile(root + "/proc/cpuinfo");
  for (size_t at = cpuinfo.find("AMD EPYC\n"); at != std::string::npos;
       at = cpuinfo.find("AMD EPYC\n", at)) {
    cpuinfo.replace(at, 9, "AMD EPYC Changed\n");
  }
  testing::WriteTestFile(root + "/proc/cpuinfo", cpuinfo);
  auto third = MakeSnapshot(ProbeHost(config), facts, second.get());
  EXPECT_FALSE(third->capability_bodies_reused);
  EXPECT_NE(third->metrics_text().find("model_name=\"AMD EPYC Changed\""), std::string::npos);
  EXPECT_EQ(third->metrics_text().find("model_name=\"AMD EPYC\""), std::string::npos);
  EXPECT_TRUE(third->xml_text() == RenderCapabilitiesXml(third->caps));
  auto fourth = MakeSnapshot(ProbeHost(config), facts, third.get());
  EXPECT_TRUE(fourth->capability_bodies_reused);
  EXPECT_TRUE(fourth->metrics_text() == RenderPrometheus(fourth->caps, facts, CurrentBuildInfo()));
  EXPECT_TRUE(fourth->xml_text() == third->xml_text());
}

}  // namespace
}  // namespace virtcaps
