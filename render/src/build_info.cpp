#include "virtcaps/renderers.h"

namespace virtcaps {

const BuildInfo& CurrentBuildInfo() {
  static const BuildInfo kBuild = {
    VIRTCAPS_VERSION,
    VIRTCAPS_REVISION,
#if defined(__clang__)
    "clang-" __clang_version__
#else
    "gcc-" __VERSION__
#endif
  };
  return kBuild;
}

}  // namespace virtcaps
