#include "virtcaps/snapshot.h"

#include <zlib.h>

#include <cstddef>
#include <stdexcept>
#include <vector>

#include "virtcaps/exposition.h"

namespace virtcaps {

std::string Gzip(std::string_view data) {
  z_stream stream{};
  // windowBits 15 + 16 asks zlib for a gzip header and trailer.
  if (deflateInit2(&stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
      Z_OK) {
    throw std::runtime_error("deflateInit2 failed");
  }
  std::string out(deflateBound(&stream, static_cast<uLong>(data.size())) + 32, '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  stream.avail_in = static_cast<uInt>(data.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  int result = deflate(&stream, Z_FINISH);
  deflateEnd(&stream);
  if (result != Z_STREAM_END) throw std::runtime_error("deflate did not finish");
  out.resize(stream.total_out);
  return out;
}

namespace {

// How hard RawDeflate works: the bodies of each refresh, or a request's small tail.
struct DeflateEffort {
  int level;
  int window_bits;  // log2 of the window; the state zlib allocates grows with it
  int mem_level;    // 1-9: the size of its hash tables
};
// The metrics texts change every refresh (durations, counters) and are compressed each
// time: level 1 costs about a third of the default's instructions for a few more bytes.
constexpr DeflateEffort kRefreshBody{Z_BEST_SPEED, 15, 8};
// A request's live families (~1 kB): a 1 kB window and the smallest tables, so zlib's
// state for them is ~11 kB and fits the request's scratch (kGzipCloseScratchBytes).
constexpr DeflateEffort kRequestTail{Z_BEST_SPEED, 10, 1};

// zlib's allocations served from a caller's buffer, front to back; freeing is a no-op
// (the whole buffer is dropped after one stream). Z_NULL when it is used up.
struct ScratchArena {
  char* base;
  size_t size;
  size_t used = 0;
  static voidpf Allocate(voidpf opaque, uInt items, uInt item_size) {
    auto* arena = static_cast<ScratchArena*>(opaque);
    size_t bytes = static_cast<size_t>(items) * item_size;
    size_t start = (arena->used + alignof(std::max_align_t) - 1) & ~(alignof(std::max_align_t) - 1);
    if (start > arena->size || bytes > arena->size - start) return Z_NULL;
    arena->used = start + bytes;
    return arena->base + start;
  }
  static void Free(voidpf, voidpf) {}
};

// Raw deflate (no header) of `data` appended to `out`, ending with `flush`.
void RawDeflate(std::string_view data, int flush, std::string& out, DeflateEffort effort) {
  z_stream stream{};
  if (deflateInit2(&stream, effort.level, Z_DEFLATED, -effort.window_bits, effort.mem_level,
                   Z_DEFAULT_STRATEGY) != Z_OK) {
    throw std::runtime_error("deflateInit2 failed");
  }
  size_t start = out.size();
  out.resize(start + deflateBound(&stream, static_cast<uLong>(data.size())) + 64);
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  stream.avail_in = static_cast<uInt>(data.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data() + start);
  stream.avail_out = static_cast<uInt>(out.size() - start);
  int result = deflate(&stream, flush);
  deflateEnd(&stream);
  if (result != (flush == Z_FINISH ? Z_STREAM_END : Z_OK) || stream.avail_in != 0) {
    throw std::runtime_error("deflate did not finish");
  }
  out.resize(start + stream.total_out);
}

}  // namespace

OpenGzip GzipOpen(std::string_view data) {
  OpenGzip open;
  // RFC 1952 header: magic, deflate, no flags, no mtime, no extra flags, OS unix.
  open.bytes = std::string("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03", 10);
  // A full flush ends on a byte boundary with no block marked final and no reference
  // back into this data, so further deflate blocks may follow directly.
  RawDeflate(data, Z_FULL_FLUSH, open.bytes, kRefreshBody);
  open.crc = static_cast<uint32_t>(
      crc32(0, reinterpret_cast<const Bytef*>(data.data()), static_cast<uInt>(data.size())));
  open.size = data.size();
  return open;
}

std::string GzipClose(const OpenGzip& open, std::string_view tail) {
  // deflateBound's conservative bound for any settings, plus the trailer.
  std::string out(tail.size() + (tail.size() + 7) / 8 + (tail.size() + 63) / 64 + 64, '\0');
  std::vector<char> scratch(kGzipCloseScratchBytes);
  size_t written =
      GzipCloseInto(open, tail, out.data(), out.size(), scratch.data(), scratch.size());
  if (written == 0) throw std::runtime_error("deflate did not finish");
  out.resize(written);
  return out;
}

size_t GzipCloseInto(const OpenGzip& open, std::string_view tail, char* out, size_t capacity,
                     char* scratch, size_t scratch_bytes) {
  constexpr size_t kTrailer = 8;
  if (capacity < kTrailer) return 0;
  ScratchArena arena{scratch, scratch_bytes};
  z_stream stream{};
  stream.zalloc = ScratchArena::Allocate;
  stream.zfree = ScratchArena::Free;
  stream.opaque = &arena;
  if (deflateInit2(&stream, kRequestTail.level, Z_DEFLATED, -kRequestTail.window_bits,
                   kRequestTail.mem_level, Z_DEFAULT_STRATEGY) != Z_OK) {
    return 0;
  }
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(tail.data()));
  stream.avail_in = static_cast<uInt>(tail.size());
  stream.next_out = reinterpret_cast<Bytef*>(out);
  stream.avail_out = static_cast<uInt>(capacity - kTrailer);
  int result = deflate(&stream, Z_FINISH);
  size_t written = stream.total_out;
  deflateEnd(&stream);
  if (result != Z_STREAM_END) return 0;  // `out` too small for the compressed tail
  uLong tail_crc =
      crc32(0, reinterpret_cast<const Bytef*>(tail.data()), static_cast<uInt>(tail.size()));
  uint32_t trailer[2] = {
      static_cast<uint32_t>(crc32_combine(open.crc, tail_crc, static_cast<z_off_t>(tail.size()))),
      static_cast<uint32_t>((open.size + tail.size()) & 0xffffffffu)};
  for (uint32_t value : trailer) {
    for (int i = 0; i < 4; ++i) out[written++] = static_cast<char>((value >> (8 * i)) & 0xff);
  }
  return written;
}

const OpenGzip& LazyGzip::Get(std::string_view data) const {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!made_) made_ = std::make_shared<const OpenGzip>(GzipOpen(data));
  return *made_;
}

std::shared_ptr<const OpenGzip> LazyGzip::IfMade() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return made_;
}

void LazyGzip::Adopt(std::shared_ptr<const OpenGzip> made) {
  std::lock_guard<std::mutex> lock(mutex_);
  made_ = std::move(made);
}

PreparedResponse PrepareResponse(std::string_view content_type, std::string_view content_encoding,
                                 std::string_view body) {
  std::string length = std::to_string(body.size());
  constexpr std::string_view kStatus = "HTTP/1.1 200 OK\r\nContent-Type: ";
  constexpr std::string_view kLength = "\r\nContent-Length: ";
  constexpr std::string_view kEncoding = "\r\nContent-Encoding: ";
  constexpr std::string_view kEnd = "\r\nVary: Accept-Encoding\r\n\r\n";
  PreparedResponse response;
  // One buffer of the final size: the body is copied once.
  response.bytes.reserve(kStatus.size() + content_type.size() + kLength.size() + length.size() +
                         kEncoding.size() + content_encoding.size() + kEnd.size() + body.size());
  response.bytes.append(kStatus).append(content_type).append(kLength).append(length);
  if (!content_encoding.empty()) response.bytes.append(kEncoding).append(content_encoding);
  response.bytes.append(kEnd);
  response.head_size = response.bytes.size();
  response.bytes.append(body);
  return response;
}

namespace {

// Whether `current` renders the same capability bodies as `previous`: equal in every
// field (the model's defaulted ==) but those that change every refresh and are rendered
// only among the refresh facts: the collectors' durations and this refresh's QEMU probe
// counts (cache hits, probes spawned and failed; their running totals are RefreshFacts).
// Those are set to the previous values for the comparison and put back afterwards.
bool SameCapabilities(const HostCapabilities& previous, HostCapabilities& current) {
  if (previous.collectors.size() != current.collectors.size() ||
      previous.hypervisors.size() != current.hypervisors.size()) {
    return false;
  }
  std::vector<CollectorOutcome> collectors = current.collectors;
  std::vector<HypervisorStatus> hypervisors = current.hypervisors;
  for (size_t i = 0; i < collectors.size(); ++i) {
    current.collectors[i].duration_seconds = previous.collectors[i].duration_seconds;
  }
  for (size_t i = 0; i < hypervisors.size(); ++i) {
    current.hypervisors[i].cache_hits = previous.hypervisors[i].cache_hits;
    current.hypervisors[i].probes_spawned = previous.hypervisors[i].probes_spawned;
    current.hypervisors[i].probes_failed = previous.hypervisors[i].probes_failed;
  }
  bool same = previous == current;
  current.collectors = std::move(collectors);
  current.hypervisors = std::move(hypervisors);
  return same;
}

bool SameOptions(const MetricsOptions& a, const MetricsOptions& b) {
  // The filter is compiled once per pattern and held by both snapshots: the same object.
  return a.collectors == b.collectors && a.cpu_features_include == b.cpu_features_include;
}

}  // namespace

std::shared_ptr<const Snapshot> MakeSnapshot(HostCapabilities caps, RefreshFacts refresh,
                                             const Snapshot* previous,
                                             MetricsOptions metrics_options) {
  auto snapshot = std::make_shared<Snapshot>();
  // A model that equals the previous one in everything but durations and probe counts
  // renders the same XML and the same capability parts of the metrics texts: those are
  // taken over, and only the refresh facts are rendered.
  bool reuse = previous != nullptr && previous->capability_texts != nullptr &&
               SameOptions(previous->metrics_options, metrics_options) &&
               SameCapabilities(previous->caps, caps);
  snapshot->capability_bodies_reused = reuse;
  // One building of the families for both texts.
  Expositions texts = RenderExpositions(caps, refresh, CurrentBuildInfo(), metrics_options,
                                        reuse ? previous->capability_texts : nullptr);
  snapshot->capability_texts = std::move(texts.capability_texts);
  // A body whose bytes equal the previous snapshot's keeps its compressed bytes (the XML
  // changes only when the host does). The metrics texts carry each refresh's durations:
  // they are compressed when a request first asks for them (LazyGzip).
  if (previous != nullptr && previous->metrics == texts.prometheus) {
    snapshot->metrics_gzip.Adopt(previous->metrics_gzip.IfMade());
  }
  if (previous != nullptr && previous->openmetrics == texts.openmetrics) {
    snapshot->openmetrics_gzip.Adopt(previous->openmetrics_gzip.IfMade());
  }
  snapshot->openmetrics = std::move(texts.openmetrics);
  snapshot->metrics = std::move(texts.prometheus);
  snapshot->metrics_options = std::move(metrics_options);
  if (reuse) {
    snapshot->xml = previous->xml;
    snapshot->xml_gzip = previous->xml_gzip;
  } else {
    std::string xml = RenderCapabilitiesXml(caps);
    if (previous != nullptr && previous->xml->body() == xml) {
      snapshot->xml = previous->xml;
      snapshot->xml_gzip = previous->xml_gzip;
    } else {
      snapshot->xml_gzip = std::make_shared<const PreparedResponse>(
          PrepareResponse(kXmlContentType, "gzip", Gzip(xml)));
      ++snapshot->bodies_compressed;
      snapshot->xml =
          std::make_shared<const PreparedResponse>(PrepareResponse(kXmlContentType, "", xml));
    }
  }
  snapshot->caps = std::move(caps);
  snapshot->refresh = refresh;
  return snapshot;
}

}  // namespace virtcaps
