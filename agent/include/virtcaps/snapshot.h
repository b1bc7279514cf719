// An immutable, pre-rendered view of the host; handlers serve the latest one.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "virtcaps/model.h"
#include "virtcaps/renderers.h"

namespace virtcaps {

// A complete 200 response, head and body, rendered once per snapshot so that a
// request is answered with a single write and no formatting.
struct PreparedResponse {
  std::string bytes;
  size_t head_size = 0;
  std::string_view head() const { return std::string_view(bytes).substr(0, head_size); }
  std::string_view body() const { return std::string_view(bytes).substr(head_size); }
};

// A gzip member left open: header and deflate blocks of `data`, byte-aligned and not
// final, so a request can append its own bytes and close the member (GzipClose). One
// member, because curl and others stop reading after the first one.
struct OpenGzip {
  std::string bytes;
  uint32_t crc = 0;   // CRC-32 of the data so far
  uint64_t size = 0;  // its length
};
OpenGzip GzipOpen(std::string_view data);
// What follows `open.bytes` to make one complete gzip member of data + `tail`.
std::string GzipClose(const OpenGzip& open, std::string_view tail);

struct Snapshot {
  HostCapabilities caps;
  RefreshFacts refresh;
  PreparedResponse metrics;   // /metrics
  PreparedResponse xml;       // /capabilities
  PreparedResponse xml_gzip;  // /capabilities for Accept-Encoding: gzip
  // OpenMetrics bodies for Accept: application/openmetrics-text, without the closing
  // "# EOF": the server appends its live families (process, requests) and then "# EOF".
  PreparedResponse openmetrics;
  // Both metrics bodies compressed but left open for the live families (GzipClose);
  // reused from the previous snapshot like the gzip responses when the text is the same.
  OpenGzip metrics_gzip_open;
  OpenGzip openmetrics_gzip_open;
  // How the bodies were rendered (collectors.cpu.flags_include), for filtered pages.
  MetricsOptions metrics_options;
  // Bodies this snapshot compressed (0 to 3: both metrics texts, the XML); the others
  // are the previous snapshot's bytes.
  int bodies_compressed = 0;

  std::string_view metrics_text() const { return metrics.body(); }
  std::string_view xml_text() const { return xml.body(); }
};

// The head of a 200 response with this body (Content-Type, Content-Length, encoding).
PreparedResponse PrepareResponse(std::string_view content_type, std::string_view content_encoding,
                                 std::string body);

inline constexpr std::string_view kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";
inline constexpr std::string_view kXmlContentType = "application/xml";

// gzip (RFC 1952) of `data` at the default level.
std::string Gzip(std::string_view data);

// Builds a snapshot and renders its bodies once, so requests only pick one. A body
// whose bytes equal `previous`'s is not compressed again: its gzip bytes are reused.
std::shared_ptr<const Snapshot> MakeSnapshot(HostCapabilities caps, RefreshFacts refresh,
                                             const Snapshot* previous = nullptr,
                                             MetricsOptions metrics_options = {});

// Holds the current snapshot. Readers take a reference without blocking writers.
class SnapshotStore {
 public:
  std::shared_ptr<const Snapshot> Current() const { return current_.load(); }
  void Publish(std::shared_ptr<const Snapshot> snapshot) { current_.store(std::move(snapshot)); }

 private:
  std::atomic<std::shared_ptr<const Snapshot>> current_;
};

}  // namespace virtcaps
