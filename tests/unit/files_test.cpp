#include "virtcaps/files.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "test_support.h"

namespace virtcaps {
namespace {

TEST(FilesTest, ReadsAndNamesThePathOnError) {
  std::string dir = testing::TempDir();
  testing::WriteTestFile(dir + "/value", " 17\n");
  EXPECT_EQ(*ReadValue(dir + "/value"), "17");
  EXPECT_EQ(*ReadUint(dir + "/value"), 17u);
  auto missing = ReadFile(dir + "/absent");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().find(dir + "/absent"), std::string::npos);
  testing::WriteTestFile(dir + "/garbled", "1x7\n");
  auto garbled = ReadUint(dir + "/garbled");
  ASSERT_FALSE(garbled);
  EXPECT_NE(garbled.error().find("not an unsigned integer"), std::string::npos);
}

TEST(FilesTest, RefusesFilesOverTheLimit) {
  std::string dir = testing::TempDir();
  testing::WriteTestFile(dir + "/big", std::string(5000, 'x'));
  EXPECT_FALSE(ReadFile(dir + "/big", 4096));
  EXPECT_EQ(ReadFileHead(dir + "/big", 10)->size(), 10u);
}

TEST(FilesTest, AtomicWriteReplacesWholeFile) {
  std::string dir = testing::TempDir();
  ASSERT_TRUE(WriteFileAtomically(dir + "/state.xml", "first").ok());
  ASSERT_TRUE(WriteFileAtomically(dir + "/state.xml", "second").ok());
  EXPECT_EQ(*ReadFile(dir + "/state.xml"), "second");
  EXPECT_EQ(ListDirectory(dir)->size(), 1u);  // no temporary left behind
  EXPECT_FALSE(WriteFileAtomically(dir + "/no/such/dir/file", "x").ok());
}

TEST(FilesTest, JoinsPathsWithOneSlash) {
  EXPECT_EQ(JoinPath("/host/", "/proc"), "/host/proc");
  EXPECT_EQ(JoinPath("/", "proc"), "/proc");
  EXPECT_EQ(JoinPath("/host", "proc"), "/host/proc");
}

}  // namespace
}  // namespace virtcaps
