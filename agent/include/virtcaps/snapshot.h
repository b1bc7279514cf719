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

struct Snapshot {
  HostCapabilities caps;
  RefreshFacts refresh;
  PreparedResponse metrics;       // /metrics
  PreparedResponse xml;           // /capabilities
  PreparedResponse metrics_gzip;  // the same, for Accept-Encoding: gzip
  PreparedResponse xml_gzip;
  // Bodies this snapshot compressed (0 to 2); the others were the previous one's bytes.
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

// Builds a snapshot and renders both bodies once, so requests only pick one. A body
// whose bytes equal `previous`'s is not compressed again: its gzip response is reused.
std::shared_ptr<const Snapshot> MakeSnapshot(HostCapabilities caps, RefreshFacts refresh,
                                             const Snapshot* previous = nullptr);

// Holds the current snapshot. Readers take a reference without blocking writers.
class SnapshotStore {
 public:
  std::shared_ptr<const Snapshot> Current() const { return current_.load(); }
  void Publish(std::shared_ptr<const Snapshot> snapshot) { current_.store(std::move(snapshot)); }

 private:
  std::atomic<std::shared_ptr<const Snapshot>> current_;
};

}  // namespace virtcaps
