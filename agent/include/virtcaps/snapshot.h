// An immutable, pre-rendered view of the host; handlers serve the latest one.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "virtcaps/model.h"
#include "virtcaps/renderers.h"

namespace virtcaps {

struct Snapshot {
  HostCapabilities caps;
  RefreshFacts refresh;
  std::string metrics_text;  // the /metrics body
  std::string xml;           // the /capabilities body
  // The same bodies gzip-compressed, for clients that send Accept-Encoding: gzip.
  std::string metrics_gzip;
  std::string xml_gzip;
};

// gzip (RFC 1952) of `data` at the default level.
std::string Gzip(std::string_view data);

// Builds a snapshot and renders both bodies once, so requests only pick one.
std::shared_ptr<const Snapshot> MakeSnapshot(HostCapabilities caps, RefreshFacts refresh);

// Holds the current snapshot. Readers take a reference without blocking writers.
class SnapshotStore {
 public:
  std::shared_ptr<const Snapshot> Current() const { return current_.load(); }
  void Publish(std::shared_ptr<const Snapshot> snapshot) { current_.store(std::move(snapshot)); }

 private:
  std::atomic<std::shared_ptr<const Snapshot>> current_;
};

}  // namespace virtcaps
