// HeapTrimmer against glibc's real allocator.
#include "virtcaps/heap_trim.h"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

namespace virtcaps {
namespace {

TEST(HeapTrimmerTest, TrimsFirstThenOnlyWhenFreedMemoryAddsUp) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "ASan replaces glibc's malloc: mallinfo2 does not see the heap it trims";
#else
  HeapTrimmer trimmer(256u << 10);
  EXPECT_TRUE(trimmer.AfterRefresh());   // the first refresh leaves the most behind
  EXPECT_FALSE(trimmer.AfterRefresh());  // nothing freed since
  // A refresh that frees 4 MB in the middle of the heap: 2 kB blocks (under the mmap
  // threshold), each followed by one that stays, so free() cannot give them back.
  std::vector<std::unique_ptr<char[]> > freed, kept;
  for (int i = 0; i < 2048; ++i) {
    freed.emplace_back(new char[2048]);
    kept.emplace_back(new char[64]);
    freed.back()[0] = kept.back()[0] = 1;
  }
  EXPECT_FALSE(trimmer.AfterRefresh());  // taking memory is no reason to trim
  size_t before = trimmer.free_bytes();
  freed.clear();
  EXPECT_TRUE(trimmer.AfterRefresh());
  EXPECT_GT(trimmer.free_bytes(), before + (256u << 10));  // still free, but given back
  EXPECT_FALSE(trimmer.AfterRefresh());
  // The steady state: each refresh takes that memory again and frees it before the
  // check, so the heap's free bytes come back to the same level: no trim.
  for (int refresh = 0; refresh < 3; ++refresh) {
    for (int i = 0; i < 2048; ++i) freed.emplace_back(new char[2048]);
    freed.clear();
    EXPECT_FALSE(trimmer.AfterRefresh()) << "refresh " << refresh;
  }
#endif
}

}  // namespace
}  // namespace virtcaps
