#include "virtcaps/heap_trim.h"

#ifdef __GLIBC__
#include <malloc.h>
#endif

namespace virtcaps {

bool HeapTrimmer::AfterRefresh() {
#ifdef __GLIBC__
  free_bytes_ = mallinfo2().fordblks;
  if (trimmed_ && free_bytes_ <= low_point_ + threshold_) {
    if (free_bytes_ < low_point_) low_point_ = free_bytes_;
    return false;
  }
  malloc_trim(0);
  trimmed_ = true;
  // Trimming the top lowers the count; what it madvised in the middle stays counted.
  free_bytes_ = mallinfo2().fordblks;
  low_point_ = free_bytes_;
  return true;
#else
  return false;
#endif
}

}  // namespace virtcaps
