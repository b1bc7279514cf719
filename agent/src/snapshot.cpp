#include "virtcaps/snapshot.h"

#include <zlib.h>

#include <stdexcept>

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

PreparedResponse PrepareResponse(std::string_view content_type, std::string_view content_encoding,
                                 std::string body) {
  PreparedResponse response;
  response.bytes = "HTTP/1.1 200 OK\r\nContent-Type: " + std::string(content_type) +
                   "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  if (!content_encoding.empty())
    response.bytes += "Content-Encoding: " + std::string(content_encoding) + "\r\n";
  response.bytes += "Vary: Accept-Encoding\r\n\r\n";
  response.head_size = response.bytes.size();
  response.bytes += body;
  return response;
}

std::shared_ptr<const Snapshot> MakeSnapshot(HostCapabilities caps, RefreshFacts refresh,
                                             const Snapshot* previous) {
  auto snapshot = std::make_shared<Snapshot>();
  std::string metrics = RenderPrometheus(caps, refresh, CurrentBuildInfo());
  std::string xml = RenderCapabilitiesXml(caps);
  // Compressing is most of a warm refresh's work; the XML rarely changes at all.
  if (previous != nullptr && previous->metrics.body() == metrics) {
    snapshot->metrics_gzip = previous->metrics_gzip;
  } else {
    snapshot->metrics_gzip = PrepareResponse(kMetricsContentType, "gzip", Gzip(metrics));
    ++snapshot->bodies_compressed;
  }
  if (previous != nullptr && previous->xml.body() == xml) {
    snapshot->xml_gzip = previous->xml_gzip;
  } else {
    snapshot->xml_gzip = PrepareResponse(kXmlContentType, "gzip", Gzip(xml));
    ++snapshot->bodies_compressed;
  }
  snapshot->metrics = PrepareResponse(kMetricsContentType, "", std::move(metrics));
  snapshot->xml = PrepareResponse(kXmlContentType, "", std::move(xml));
  snapshot->caps = std::move(caps);
  snapshot->refresh = refresh;
  return snapshot;
}

}  // namespace virtcaps
