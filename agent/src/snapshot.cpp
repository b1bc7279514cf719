#include "virtcaps/snapshot.h"

namespace virtcaps {

std::shared_ptr<const Snapshot> MakeSnapshot(HostCapabilities caps, RefreshFacts refresh) {
  auto snapshot = std::make_shared<Snapshot>();
  snapshot->metrics_text = RenderPrometheus(caps, refresh, CurrentBuildInfo());
  snapshot->xml = RenderCapabilitiesXml(caps);
  snapshot->caps = std::move(caps);
  snapshot->refresh = refresh;
  return snapshot;
}

}  // namespace virtcaps
