// The remembered CPU maps (collectors/src/cpu_map_memory.cpp): a warm refresh gets the
// map it read before, and a map changed on disk is read again.
#include <gtest/gtest.h>

#include <filesystem>

#include "test_support.h"
#include "virtcaps/cpu_map.h"
#include "virtcaps/files.h"

namespace virtcaps {
namespace {

std::string CopyOfFixtureMap() {
  std::string dir = testing::TempDir() + "/cpu_map";
  std::filesystem::copy(testing::SourceDir() + "/tests/fixtures/cpu_map/libvirt-9.0", dir);
  return dir;
}

TEST(CpuMapMemoryTest, RemembersAMapUntilItsFilesChange) {
  std::string dir = CopyOfFixtureMap();
  auto first = LoadX86CpuMap(dir);
  ASSERT_TRUE(first) << first.error();
  auto again = LoadX86CpuMap(dir);
  ASSERT_TRUE(again) << again.error();
  auto read = ReadX86CpuMap(dir);  // the same files read afresh
  ASSERT_TRUE(read);
  ASSERT_EQ(again->models.size(), read->models.size());
  ASSERT_EQ(again->features.size(), read->features.size());
  for (size_t i = 0; i < read->models.size(); ++i) {
    EXPECT_EQ(again->models[i].name, read->models[i].name);
  }

  // A model renamed on disk is seen by the next load, not the remembered one.
  std::string file = dir + "/x86_Skylake-Client.xml";
  auto text = ReadFile(file);
  ASSERT_TRUE(text) << text.error();
  std::string renamed = *text;
  size_t at = renamed.find("name='Skylake-Client'");
  ASSERT_NE(at, std::string::npos);
  renamed.replace(at, 21, "name='Skylake-Renamd'");  // the same size
  testing::WriteTestFile(file, renamed);
  auto changed = LoadX86CpuMap(dir);
  ASSERT_TRUE(changed) << changed.error();
  bool found = false;
  for (const X86Model& model : changed->models) found = found || model.name == "Skylake-Renamd";
  EXPECT_TRUE(found);

  // A map broken on disk is an error every time, never the last good map.
  testing::WriteTestFile(dir + "/index.xml", "<cpus>");
  EXPECT_FALSE(LoadX86CpuMap(dir));
  EXPECT_FALSE(LoadX86CpuMap(dir));
}

}  // namespace
}  // namespace virtcaps
