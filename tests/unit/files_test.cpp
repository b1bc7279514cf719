#include "virtcaps/files.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "test_support.h"

namespace virtcaps {
namespace {

// ListDirectory reads the kernel's records itself: names across many reads of its
// buffer, long names, no "." or "..", sorted; what is not a directory is an error.
TEST(FilesTest, ListDirectoryReadsEveryEntryInOrder) {
  std::string dir = testing::TempDir() + "/many";
  ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
  auto empty = ListDirectory(dir);
  ASSERT_TRUE(empty) << empty.status().message();
  EXPECT_TRUE(empty->empty());
  std::vector<std::string> expected;
  for (int i = 0; i < 1500; ++i) {  // ~1500 records of ~90 bytes: many 8 kB reads
    std::string name =
        "entry-" + std::to_string(i) + "-" + std::string(static_cast<size_t>(i % 64), 'x');
    testing::WriteTestFile(dir + "/" + name, "");
    expected.push_back(name);
  }
  std::string longest(255, 'n');  // NAME_MAX
  testing::WriteTestFile(dir + "/" + longest, "");
  expected.push_back(longest);
  std::sort(expected.begin(), expected.end());
  auto names = ListDirectory(dir);
  ASSERT_TRUE(names) << names.status().message();
  EXPECT_EQ(*names, expected);
  auto file = ListDirectory(dir + "/" + longest);
  ASSERT_FALSE(file);
  EXPECT_NE(file.error().find("Not a directory"), std::string::npos) << file.error();
  EXPECT_FALSE(ListDirectory(dir + "/absent"));
}

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

// Issue 14: a total per refresh. Each file is under its own cap; together they are not.
TEST(FilesTest, ReadBudgetBoundsTheSumOfReadsAndNamesTheFileThatPassedIt) {
  std::string dir = testing::TempDir();
  for (const char* name : {"a", "b", "c"}) {
    testing::WriteTestFile(dir + "/" + name, std::string(400, 'x'));
  }
  EXPECT_EQ(ReadBudget::Current(), nullptr);
  {
    ReadBudget budget(1000);
    EXPECT_EQ(ReadBudget::Current(), &budget);
    EXPECT_TRUE(ReadFile(dir + "/a"));
    EXPECT_EQ(ReadFileHead(dir + "/b", 100)->size(), 100u);
    EXPECT_EQ(budget.used(), 500u);
    EXPECT_TRUE(ReadFile(dir + "/b"));
    auto third = ReadFile(dir + "/c");
    ASSERT_FALSE(third);
    EXPECT_EQ(third.error(), dir +
                                 "/c: the read budget of 1000 bytes for one refresh is used up "
                                 "(host.read_budget_bytes)");
    // Spent: even a small read fails now, and so does a listing.
    EXPECT_FALSE(ReadFileHead(dir + "/a", 1));
    EXPECT_FALSE(ListDirectory(dir));
  }
  EXPECT_EQ(ReadBudget::Current(), nullptr);  // the refresh is over: reads are free again
  EXPECT_TRUE(ReadFile(dir + "/c"));
}

TEST(FilesTest, ReadBudgetIsSharedWithTheRefreshsWorkerThreads) {
  std::string dir = testing::TempDir();
  testing::WriteTestFile(dir + "/f", std::string(300, 'x'));
  ReadBudget budget(1000);
  std::vector<std::thread> workers;
  std::atomic<int> failed{0};
  for (int i = 0; i < 4; ++i) {
    workers.emplace_back([&, shared = ReadBudget::Current()] {
      ReadBudget::Join join(shared);
      if (!ReadFile(dir + "/f")) ++failed;
    });
  }
  for (std::thread& worker : workers) worker.join();
  EXPECT_EQ(failed.load(), 1);  // 3 x 300 fit in 1000, the fourth does not
  EXPECT_EQ(budget.used(), 1000u);
}

TEST(FilesTest, ListingChargesTheBudget) {
  std::string dir = testing::TempDir();
  for (int i = 0; i < 50; ++i) testing::WriteTestFile(dir + "/entry" + std::to_string(i), "");
  ReadBudget budget(1 << 20);
  auto names = ListDirectory(dir);
  ASSERT_TRUE(names);
  EXPECT_EQ(names->size(), 50u);
  EXPECT_GE(budget.used(), 50 * sizeof(std::string));
}

TEST(FilesTest, AtomicWriteReplacesWholeFile) {
  std::string dir = testing::TempDir();
  ASSERT_TRUE(WriteFileAtomically(dir + "/state.xml", "first").ok());
  ASSERT_TRUE(WriteFileAtomically(dir + "/state.xml", "second").ok());
  EXPECT_EQ(*ReadFile(dir + "/state.xml"), "second");
  EXPECT_EQ(ListDirectory(dir)->size(), 1u);  // no temporary left behind
  EXPECT_FALSE(WriteFileAtomically(dir + "/no/such/dir/file", "x").ok());
}

// Issue 14/15.4: a FIFO (open would block for a writer), a device node and a symlink
// to one are refused, not read; the calls return at once.
TEST(FilesTest, RefusesFifosDevicesAndSymlinksToThemWithoutBlocking) {
  std::string dir = testing::TempDir();
  ASSERT_EQ(::mkfifo((dir + "/fifo").c_str(), 0644), 0);
  ASSERT_EQ(::symlink("/dev/zero", (dir + "/zero").c_str()), 0);
  ASSERT_EQ(::symlink((dir + "/fifo").c_str(), (dir + "/to-fifo").c_str()), 0);
  for (const char* name : {"/fifo", "/to-fifo"}) {
    auto read = ReadFile(dir + name);
    ASSERT_FALSE(read) << name;
    EXPECT_EQ(read.error(), dir + name + ": a FIFO, not a regular file: refused");
    EXPECT_FALSE(ReadValue(dir + name)) << name;
    EXPECT_FALSE(ReadFileHead(dir + name, 10)) << name;
  }
  auto zero = ReadFile(dir + "/zero");
  ASSERT_FALSE(zero);
  EXPECT_EQ(zero.error(), dir + "/zero: a character device, not a regular file: refused");
  EXPECT_FALSE(ReadFileHead(dir + "/zero", 4096));
  EXPECT_FALSE(ReadUint(dir + "/zero"));
}

TEST(FilesTest, SparseMultiGigabyteFileIsRefusedBeforeReading) {
  std::string dir = testing::TempDir();
  std::string path = dir + "/cpuinfo";
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, off_t{4} << 30), 0);  // 4 GiB of holes
  ::close(fd);
  auto text = ReadFile(path);
  ASSERT_FALSE(text);
  EXPECT_EQ(text.error(), path + ": larger than " + std::to_string(kMaxTextFileBytes) + " bytes");
  EXPECT_FALSE(ReadValue(path));
  EXPECT_EQ(ReadFileHead(path, 16)->size(), 16u);  // a head read stays possible
}

// Kernel pseudo-files are regular files (size 0 or 4096, content generated on read).
TEST(FilesTest, KernelPseudoFilesStillRead) {
  auto release = ReadValue("/proc/sys/kernel/osrelease");
  ASSERT_TRUE(release) << release.error();
  EXPECT_FALSE(release->empty());
  auto status = ReadFile("/proc/self/status");
  ASSERT_TRUE(status) << status.error();
  EXPECT_NE(status->find("VmRSS"), std::string::npos);
  auto online = ReadCpuList("/sys/devices/system/cpu/online");
  ASSERT_TRUE(online) << online.error();
  EXPECT_FALSE(online->empty());
}

TEST(FilesTest, AtomicWriteReplacesAPlantedSymlinkInsteadOfFollowingIt) {
  std::string dir = testing::TempDir();
  testing::WriteTestFile(dir + "/victim", "root-owned secret");
  ASSERT_EQ(::symlink((dir + "/victim").c_str(), (dir + "/state.xml").c_str()), 0);
  ASSERT_TRUE(WriteFileAtomically(dir + "/state.xml", "new").ok());
  EXPECT_EQ(*ReadFile(dir + "/victim"), "root-owned secret");
  struct stat st;
  ASSERT_EQ(::lstat((dir + "/state.xml").c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(*ReadFile(dir + "/state.xml"), "new");
}

// Issue 15.2: private state directories and files, as ssh demands of ~/.ssh.
TEST(FilesTest, PrivateDirectoryMustBeOursAndWritableByNoOneElse) {
  std::string base = testing::TempDir();
  std::string dir = base + "/cache";
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  EXPECT_TRUE(CheckPrivateDirectory(dir).ok()) << CheckPrivateDirectory(dir).message();

  ASSERT_EQ(::chmod(dir.c_str(), 0777), 0);
  EXPECT_EQ(CheckPrivateDirectory(dir).message(), dir + ": writable by group or others: refused");
  ASSERT_EQ(::chmod(dir.c_str(), 0755), 0);

  ASSERT_EQ(::chown(dir.c_str(), 65534, 65534), 0);  // nobody (the tests run as root)
  EXPECT_EQ(CheckPrivateDirectory(dir).message(),
            dir + ": owned by uid 65534, not by this agent's user (uid 0): refused");
  ASSERT_EQ(::chown(dir.c_str(), 0, 0), 0);

  ASSERT_EQ(::symlink(dir.c_str(), (base + "/link").c_str()), 0);
  EXPECT_EQ(CheckPrivateDirectory(base + "/link").message(), base + "/link: a symlink: refused");

  ASSERT_EQ(::chmod(base.c_str(), 0777), 0);  // a parent anyone can rename entries in
  EXPECT_EQ(CheckPrivateDirectory(dir).message(),
            dir + ": its parent " + base + " can be changed by another user: refused");
  ASSERT_EQ(::chmod(base.c_str(), 01777), 0);  // sticky, like /tmp: fine
  EXPECT_TRUE(CheckPrivateDirectory(dir).ok());
}

TEST(FilesTest, PrivateFileRefusesSymlinksFifosAndForeignFiles) {
  std::string dir = testing::TempDir();
  testing::WriteTestFile(dir + "/entry", "mine");
  ASSERT_EQ(::chmod((dir + "/entry").c_str(), 0644), 0);
  EXPECT_EQ(*ReadPrivateFile(dir + "/entry", 100), "mine");
  ASSERT_EQ(::symlink((dir + "/entry").c_str(), (dir + "/link").c_str()), 0);
  EXPECT_EQ(ReadPrivateFile(dir + "/link", 100).error(), dir + "/link: a symlink: refused");
  ASSERT_EQ(::mkfifo((dir + "/fifo").c_str(), 0644), 0);
  EXPECT_EQ(ReadPrivateFile(dir + "/fifo", 100).error(),
            dir + "/fifo: a FIFO, not a regular file: refused");
  ASSERT_EQ(::chmod((dir + "/entry").c_str(), 0664), 0);
  EXPECT_EQ(ReadPrivateFile(dir + "/entry", 100).error(),
            dir + "/entry: writable by group or others: refused");
  ASSERT_EQ(::chmod((dir + "/entry").c_str(), 0644), 0);
  ASSERT_EQ(::chown((dir + "/entry").c_str(), 65534, 65534), 0);
  EXPECT_EQ(ReadPrivateFile(dir + "/entry", 100).error(),
            dir + "/entry: owned by uid 65534, not by this agent's user: refused");
}

TEST(FilesTest, JoinsPathsWithOneSlash) {
  EXPECT_EQ(JoinPath("/host/", "/proc"), "/host/proc");
  EXPECT_EQ(JoinPath("/", "proc"), "/proc");
  EXPECT_EQ(JoinPath("/host", "proc"), "/host/proc");
}

// What the CPU map memory keys on: any replaced, added, grown or rewritten file shows.
TEST(FilesTest, DirectoryIdentityChangesWithWhatIsInTheDirectory) {
  std::string dir = testing::TempDir();
  testing::WriteTestFile(dir + "/a.xml", "<a/>");
  std::string first = DirectoryIdentity(dir);
  EXPECT_FALSE(first.empty());
  EXPECT_EQ(DirectoryIdentity(dir), first);
  testing::WriteTestFile(dir + "/b.xml", "<b/>");  // a new file
  std::string with_b = DirectoryIdentity(dir);
  EXPECT_NE(with_b, first);
  // Rewritten in place with the same size: only the modification time tells.
  struct timespec old_times[2] = {{1, 0}, {1, 0}};
  ASSERT_EQ(utimensat(AT_FDCWD, (dir + "/a.xml").c_str(), old_times, 0), 0);
  std::string aged = DirectoryIdentity(dir);
  EXPECT_NE(aged, with_b);
  testing::WriteTestFile(dir + "/a.xml", "<c/>");
  EXPECT_NE(DirectoryIdentity(dir), aged);
  EXPECT_EQ(DirectoryIdentity(dir + "/absent"), "");
}

// Each kind of change, seen by a watch begun before it, with inotify and without.
class DirectoryChangesTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    dir_ = testing::TempDir() + "/watched";
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    testing::WriteTestFile(dir_ + "/a.xml", "<a/>");
    // Coarse file system timestamps: make sure a rewrite gets another mtime.
    struct timespec old_times[2] = {{1, 0}, {1, 0}};
    ASSERT_EQ(utimensat(AT_FDCWD, (dir_ + "/a.xml").c_str(), old_times, 0), 0);
  }
  // A watch that has seen no change yet.
  std::unique_ptr<DirectoryChanges> Watch() {
    auto changes = std::make_unique<DirectoryChanges>(dir_, GetParam());
    EXPECT_TRUE(changes->valid());
    EXPECT_FALSE(changes->Changed());
    EXPECT_FALSE(changes->Changed());
    return changes;
  }
  std::string dir_;
};

TEST_P(DirectoryChangesTest, NothingChangedReadsAsUnchanged) {
  auto changes = Watch();
  ASSERT_TRUE(ReadFile(dir_ + "/a.xml"));  // reading is not a change
  EXPECT_FALSE(changes->Changed());
}

TEST_P(DirectoryChangesTest, EachKindOfChangeIsSeen) {
  std::vector<std::pair<std::string, std::function<void()>>> changes = {
      {"rewritten in place, same size", [&] { testing::WriteTestFile(dir_ + "/a.xml", "<b/>"); }},
      {"new file", [&] { testing::WriteTestFile(dir_ + "/c.xml", "<c/>"); }},
      {"removed", [&] { std::filesystem::remove(dir_ + "/a.xml"); }},
      {"renamed over",
       [&] {
         testing::WriteTestFile(dir_ + "/../a.xml.new", "<new/>");
         std::filesystem::rename(dir_ + "/../a.xml.new", dir_ + "/a.xml");
       }},
      {"mode changed", [&] { ASSERT_EQ(chmod((dir_ + "/a.xml").c_str(), 0600), 0); }},
      {"directory replaced",
       [&] {
         std::filesystem::rename(dir_, dir_ + ".old");
         std::filesystem::create_directories(dir_);
         std::filesystem::remove_all(dir_ + ".old");
       }},
  };
  for (auto& [what, change] : changes) {
    SetUp();
    auto watch = Watch();
    change();
    EXPECT_TRUE(watch->Changed()) << what;
    EXPECT_TRUE(watch->Changed()) << what << " (stays changed)";
  }
}

TEST_P(DirectoryChangesTest, AMissingDirectoryIsNeverUnchanged) {
  DirectoryChanges changes(dir_ + "/absent", GetParam());
  EXPECT_FALSE(changes.valid());
  EXPECT_TRUE(changes.Changed());
}

INSTANTIATE_TEST_SUITE_P(Inotify, DirectoryChangesTest, ::testing::Values(true, false),
                         [](const auto& test) { return test.param ? "inotify" : "stat"; });

}  // namespace
}  // namespace virtcaps
