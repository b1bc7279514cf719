// When to give the heap's freed pages back to the kernel after a refresh.
#pragma once

#include <cstddef>

namespace virtcaps {

// free() hands back only the top of the heap; what a refresh frees in the middle stays
// resident until malloc_trim walks the free chunks and releases their pages. Trimming
// after every refresh cost a warm refresh a sixth of its CPU (the walk, its madvise
// calls, and faulting the same pages back in and refilling malloc's caches next time)
// to release the few hundred kB that the next refresh takes again. So trim only when
// the heap's free bytes have grown by `threshold` over their low point since the last
// trim: after the first refreshes (the CPU map, the QEMU results), a config reload or a
// re-probe, not in the steady state where each refresh reuses what the previous freed.
class HeapTrimmer {
 public:
  explicit HeapTrimmer(size_t threshold_bytes = 256u << 10) : threshold_(threshold_bytes) {}
  // Trims if worth it; true when it did.
  bool AfterRefresh();
  // The heap's free bytes at the last check (glibc's mallinfo2 fordblks).
  size_t free_bytes() const { return free_bytes_; }

 private:
  size_t threshold_;
  size_t low_point_ = 0;  // free bytes: the least seen since the last trim
  size_t free_bytes_ = 0;
  bool trimmed_ = false;  // the first check always trims
};

}  // namespace virtcaps
