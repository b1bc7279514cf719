// File-system reads used by collectors. Every error names the path.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "virtcaps/status.h"

namespace virtcaps {

// Caps on what one read may hold, per kind of file, sized to the largest real file of
// the kind with a wide margin.
// Any text file: /proc/cpuinfo of a 512-CPU host is ~1 MB, a device tree's
// compatible string or /proc/sysinfo a few kB.
constexpr size_t kMaxTextFileBytes = 8u << 20;
// One sysfs/procfs value (ReadValue, ReadUint, ReadCpuList): a NUMA distance row of
// 1024 nodes is ~4 kB, a cpu list of 8192 CPUs with holes ~40 kB.
constexpr size_t kMaxValueFileBytes = 64u << 10;

// Directory listings stop past this many entries (an error, not a cut): /sys/devices/
// system/cpu of an 8192-CPU host has ~8200, /usr/bin of a full desktop ~5000.
constexpr size_t kMaxDirectoryEntries = 1u << 16;

// The bytes that all file reads and directory listings on this thread may take while
// the budget lives: one refresh. Each file has its own cap, but a host tree of many
// large files (or a rootfs planted with them) must not add up to an unbounded refresh.
// Past the limit every read fails with an error naming the path and the budget, so the
// collector that hit it reports failure. Budgets nest; the innermost one counts. A
// thread working for the refresh (a parallel probe) shares it through ReadBudget::Join.
class ReadBudget {
 public:
  // Makes `budget` (may be nullptr) this thread's budget while the Join lives.
  class Join {
   public:
    explicit Join(ReadBudget* budget);
    ~Join();
    Join(const Join&) = delete;
    Join& operator=(const Join&) = delete;

   private:
    ReadBudget* outer_;
  };

  explicit ReadBudget(size_t limit_bytes);
  ~ReadBudget();
  ReadBudget(const ReadBudget&) = delete;
  ReadBudget& operator=(const ReadBudget&) = delete;

  size_t limit() const { return limit_; }
  size_t used() const { return used_.load(std::memory_order_relaxed); }
  // Takes `bytes` for `path`; an error once the total would pass the limit.
  Status Charge(const std::string& path, size_t bytes);
  // The budget of this thread, or nullptr when none is set (reads are then capped per
  // file only).
  static ReadBudget* Current();

 private:
  size_t limit_;
  std::atomic<size_t> used_{0};
  ReadBudget* outer_;
};

// Reads a whole file (sysfs/procfs files report size 0, so this reads until EOF).
// Reads at most max_bytes; a larger file is an error rather than a silent cut (a
// regular file whose size says so is refused before reading). The open never blocks
// and only regular files are read: a FIFO, a device node (/dev/zero) or a symlink to
// one is refused. The kernel's /proc and /sys files are regular files.
Expected<std::string> ReadFile(const std::string& path, size_t max_bytes = kMaxTextFileBytes);
// The first `bytes` bytes of a file (or all of it, if shorter).
Expected<std::string> ReadFileHead(const std::string& path, size_t bytes);
// ReadFile, trimmed of surrounding white space.
Expected<std::string> ReadValue(const std::string& path);
// A trimmed file parsed as an unsigned decimal integer.
Expected<uint64_t> ReadUint(const std::string& path);
// A kernel cpu/node list file ("0-3,8"); errors name the path.
Expected<std::vector<unsigned>> ReadCpuList(const std::string& path);

bool PathExists(const std::string& path);
bool IsDirectory(const std::string& path);
// Entry names of a directory, sorted, without "." and "..".
Expected<std::vector<std::string>> ListDirectory(const std::string& path);
// What a directory and the files in it are now, as one comparable string: the name,
// device, inode, size and modification time (ns) of the directory and of every entry
// (symlinks followed). Equal identities mean nothing there was replaced, grown or
// written since (a write updates the mtime), so what was read from it can be reused.
// Empty when the directory cannot be listed.
std::string DirectoryIdentity(const std::string& path);
// The same for one file (symlinks followed): empty when it cannot be stat'ed.
std::string FileIdentity(const std::string& path);

// Whether anything in a directory may have changed since it started being watched:
// an entry added, removed, renamed, written or its metadata changed, or the directory
// itself replaced (a symlink on the way retargeted). With inotify a check is one read()
// and one stat() however many files there are; where inotify cannot be had (limits)
// it compares DirectoryIdentity, a stat per file. Construct it before reading what it
// guards: a change during the read then counts as a change.
class DirectoryChanges {
 public:
  // use_inotify false: always the stat per file (how it runs without inotify).
  explicit DirectoryChanges(std::string path, bool use_inotify = true);
  ~DirectoryChanges();
  DirectoryChanges(const DirectoryChanges&) = delete;
  DirectoryChanges& operator=(const DirectoryChanges&) = delete;
  // False only when nothing changed since construction; once true, stays true.
  bool Changed();
  // The directory could be listed or watched when the watch began.
  bool valid() const { return valid_; }

 private:
  std::string path_;
  int inotify_ = -1;
  bool valid_ = false;
  bool changed_ = false;
  std::string identity_;  // DirectoryIdentity without inotify; the directory's stat with it
};

// Writes a file so readers see either the old or the new content, never a part. The
// temporary file is created with O_EXCL|O_NOFOLLOW, so nothing planted under its name
// (a symlink to a root-owned file) is followed or reused.
Status WriteFileAtomically(const std::string& path, const std::string& content);

// For state the agent keeps itself (the probe cache), which someone else must not be
// able to plant or forge. A private directory is a real directory (not a symlink),
// owned by this process's user and writable by no one else (as ssh demands of ~/.ssh);
// its ancestors are owned by root or by this user and writable by no one else, unless
// sticky (/tmp).
Status CheckPrivateDirectory(const std::string& path);
// ReadFile for a file in a private directory: not a symlink (O_NOFOLLOW), a regular
// file, owned by this process's user and writable by no one else.
Expected<std::string> ReadPrivateFile(const std::string& path, size_t max_bytes);

// Joins path pieces with exactly one '/' between them.
std::string JoinPath(const std::string& base, const std::string& rest);

}  // namespace virtcaps
