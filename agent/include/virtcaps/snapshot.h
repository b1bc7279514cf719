// An immutable, pre-rendered view of the host; handlers serve the latest one.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
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
// The same bytes written into `out`, allocating nothing: zlib's state is laid out in
// `scratch` (kGzipCloseScratchBytes are enough). The size written, or 0 when `out`
// or `scratch` is too small.
inline constexpr size_t kGzipCloseScratchBytes = 24 * 1024;
size_t GzipCloseInto(const OpenGzip& open, std::string_view tail, char* out, size_t capacity,
                     char* scratch, size_t scratch_bytes);

// A metrics body's open gzip member, compressed on the first request that wants it:
// the metrics texts change every refresh (durations, counters), and a Prometheus server
// asks for one format only, so compressing all of them at refresh time was mostly
// wasted (and a quarter of a warm refresh's instructions). Taken over from the previous
// snapshot when the text is the same.
class LazyGzip {
 public:
  // The member of `data` (this snapshot's text), compressed by the first caller.
  const OpenGzip& Get(std::string_view data) const;
  // The member if some request has made it already, else null.
  std::shared_ptr<const OpenGzip> IfMade() const;
  void Adopt(std::shared_ptr<const OpenGzip> made);

 private:
  mutable std::mutex mutex_;
  mutable std::shared_ptr<const OpenGzip> made_;
};

struct Snapshot {
  HostCapabilities caps;
  RefreshFacts refresh;
  // The /metrics body; the server writes its own head (the live families it appends
  // change the length) and the live families after it.
  std::string metrics;
  // /capabilities, plain and for Accept-Encoding: gzip: shared with the snapshots before
  // and after while the host does not change (a refresh copies no body).
  std::shared_ptr<const PreparedResponse> xml;
  std::shared_ptr<const PreparedResponse> xml_gzip;
  // The body for Accept: application/openmetrics-text, without the closing "# EOF": the
  // server appends its live families (process, requests) and then "# EOF".
  std::string openmetrics;
  // Both metrics bodies compressed but left open for the live families (GzipClose),
  // on first use (metrics_gzip_open()).
  LazyGzip metrics_gzip;
  LazyGzip openmetrics_gzip;
  // How the bodies were rendered (collectors.cpu.flags_include), for filtered pages.
  MetricsOptions metrics_options;
  // Bodies this snapshot compressed when it was made (0 or 1: the XML); otherwise the
  // previous snapshot's bytes.
  int bodies_compressed = 0;
  // The capability parts of the metrics texts, for the next snapshot to reuse.
  std::shared_ptr<const CapabilityTexts> capability_texts;
  // Whether this snapshot took the previous one's XML and capability texts (its model
  // was the same but for durations and probe counts) and rendered only the refresh
  // facts, instead of rendering everything.
  bool capability_bodies_reused = false;

  const OpenGzip& metrics_gzip_open() const { return metrics_gzip.Get(metrics); }
  const OpenGzip& openmetrics_gzip_open() const { return openmetrics_gzip.Get(openmetrics); }
  std::string_view metrics_text() const { return metrics; }
  std::string_view xml_text() const { return xml->body(); }
};

// The head of a 200 response with this body (Content-Type, Content-Length, encoding).
PreparedResponse PrepareResponse(std::string_view content_type, std::string_view content_encoding,
                                 std::string_view body);

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
