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

std::shared_ptr<const Snapshot> MakeSnapshot(HostCapabilities caps, RefreshFacts refresh) {
  auto snapshot = std::make_shared<Snapshot>();
  snapshot->metrics_text = RenderPrometheus(caps, refresh, CurrentBuildInfo());
  snapshot->xml = RenderCapabilitiesXml(caps);
  snapshot->metrics_gzip = Gzip(snapshot->metrics_text);
  snapshot->xml_gzip = Gzip(snapshot->xml);
  snapshot->caps = std::move(caps);
  snapshot->refresh = refresh;
  return snapshot;
}

}  // namespace virtcaps
