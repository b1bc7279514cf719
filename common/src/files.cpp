#include "virtcaps/files.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "virtcaps/strings.h"

namespace virtcaps {

namespace {
Status ErrnoStatus(const std::string& path, int error) {
  return Status::Error(path + ": " + std::strerror(error));
}
}  // namespace

namespace {
thread_local ReadBudget* current_budget = nullptr;

Status ChargeCurrentBudget(const std::string& path, size_t bytes) {
  ReadBudget* budget = ReadBudget::Current();
  return budget ? budget->Charge(path, bytes) : Status();
}
}  // namespace

ReadBudget::ReadBudget(size_t limit_bytes) : limit_(limit_bytes), outer_(current_budget) {
  current_budget = this;
}

ReadBudget::~ReadBudget() { current_budget = outer_; }

ReadBudget* ReadBudget::Current() { return current_budget; }

Status ReadBudget::Charge(const std::string& path, size_t bytes) {
  size_t used = used_.load(std::memory_order_relaxed);
  do {
    if (bytes > limit_ - used) {
      used_.store(limit_, std::memory_order_relaxed);  // spent: every later read fails too
      return Status::Error(path + ": the read budget of " + std::to_string(limit_) +
                           " bytes for one refresh is used up (host.read_budget_bytes)");
    }
  } while (!used_.compare_exchange_weak(used, used + bytes, std::memory_order_relaxed));
  return Status();
}

ReadBudget::Join::Join(ReadBudget* budget) : outer_(current_budget) { current_budget = budget; }

ReadBudget::Join::~Join() { current_budget = outer_; }

namespace {

const char* FileKind(mode_t mode) {
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISDIR(mode)) return "a directory";
  return "not a regular file";
}

// Opens without blocking (a FIFO with no writer would hold open() forever) and
// refuses anything but a regular file. `private_file`: also no symlink, our own file.
Expected<int> OpenRegularFile(const std::string& path, size_t max_bytes, bool private_file) {
  int flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY | (private_file ? O_NOFOLLOW : 0);
  int fd = ::open(path.c_str(), flags);
  if (fd < 0) {
    if (private_file && errno == ELOOP) return Status::Error(path + ": a symlink: refused");
    return ErrnoStatus(path, errno);
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int error = errno;
    ::close(fd);
    return ErrnoStatus(path, error);
  }
  std::string problem;
  if (!S_ISREG(st.st_mode)) {
    problem = std::string(FileKind(st.st_mode)) + ", not a regular file: refused";
  } else if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    problem = "larger than " + std::to_string(max_bytes) + " bytes";
  } else if (private_file && st.st_uid != ::geteuid()) {
    problem = "owned by uid " + std::to_string(st.st_uid) + ", not by this agent's user: refused";
  } else if (private_file && (st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    problem = "writable by group or others: refused";
  }
  if (!problem.empty()) {
    ::close(fd);
    return Status::Error(path + ": " + problem);
  }
  return fd;
}

Expected<std::string> ReadOpenFile(const std::string& path, int fd, size_t max_bytes) {
  std::string content;
  char buffer[8192];
  while (true) {
    ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0) {
      if (errno == EINTR) continue;
      int error = errno;
      ::close(fd);
      return ErrnoStatus(path, error);
    }
    if (n == 0) break;
    if (content.size() + static_cast<size_t>(n) > max_bytes) {
      ::close(fd);
      return Status::Error(path + ": larger than " + std::to_string(max_bytes) + " bytes");
    }
    if (Status charged = ChargeCurrentBudget(path, static_cast<size_t>(n)); !charged.ok()) {
      ::close(fd);
      return charged;
    }
    content.append(buffer, static_cast<size_t>(n));
  }
  ::close(fd);
  return content;
}

}  // namespace

Expected<std::string> ReadFile(const std::string& path, size_t max_bytes) {
  auto fd = OpenRegularFile(path, max_bytes, false);
  if (!fd) return fd.status();
  return ReadOpenFile(path, *fd, max_bytes);
}

Expected<std::string> ReadPrivateFile(const std::string& path, size_t max_bytes) {
  auto fd = OpenRegularFile(path, max_bytes, true);
  if (!fd) return fd.status();
  return ReadOpenFile(path, *fd, max_bytes);
}

Expected<std::string> ReadFileHead(const std::string& path, size_t bytes) {
  auto opened = OpenRegularFile(path, SIZE_MAX, false);
  if (!opened) return opened.status();
  int fd = *opened;
  std::string content(bytes, '\0');
  size_t filled = 0;
  while (filled < bytes) {
    ssize_t n = ::read(fd, content.data() + filled, bytes - filled);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int error = errno;
      ::close(fd);
      return ErrnoStatus(path, error);
    }
    if (n == 0) break;
    if (Status charged = ChargeCurrentBudget(path, static_cast<size_t>(n)); !charged.ok()) {
      ::close(fd);
      return charged;
    }
    filled += static_cast<size_t>(n);
  }
  ::close(fd);
  content.resize(filled);
  return content;
}

Expected<std::string> ReadValue(const std::string& path) {
  auto content = ReadFile(path, kMaxValueFileBytes);
  if (!content) return content.status();
  return std::string(Trim(*content));
}

Expected<uint64_t> ReadUint(const std::string& path) {
  auto text = ReadValue(path);
  if (!text) return text.status();
  auto value = ParseUint(*text);
  if (!value)
    return Status::Error(path + ": not an unsigned integer: '" + text->substr(0, 40) + "'");
  return *value;
}

Expected<std::vector<unsigned>> ReadCpuList(const std::string& path) {
  auto text = ReadValue(path);
  if (!text) return text.status();
  auto list = ParseCpuList(*text);
  if (!list) return Status::Error(path + ": bad cpu list '" + text->substr(0, 40) + "'");
  return *list;
}

bool PathExists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

bool IsDirectory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

Expected<std::vector<std::string>> ListDirectory(const std::string& path) {
  // getdents64 into a buffer on the stack: opendir() would allocate (and free) 32 kB
  // of heap per listing, a few times each refresh, and fstat the directory first.
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return ErrnoStatus(path, errno);
  std::vector<std::string> names;
  alignas(8) char buffer[8192];
  while (true) {
    long filled = ::syscall(SYS_getdents64, fd, buffer, sizeof(buffer));
    if (filled < 0 && errno == EINTR) continue;
    if (filled < 0) {
      int error = errno;
      ::close(fd);
      return ErrnoStatus(path, error);
    }
    if (filled == 0) break;
    for (long at = 0; at < filled;) {
      // struct linux_dirent64: inode, offset, record length, type, then the name.
      const char* record = buffer + at;
      unsigned short length;
      std::memcpy(&length, record + 16, sizeof(length));
      std::string_view name(record + 19);
      at += length;
      if (name == "." || name == "..") continue;
      if (names.size() == kMaxDirectoryEntries) {
        ::close(fd);
        return Status::Error(path + ": more than " + std::to_string(kMaxDirectoryEntries) +
                             " entries");
      }
      // What the listing holds: the name and the string around it.
      if (Status charged = ChargeCurrentBudget(path, name.size() + sizeof(std::string));
          !charged.ok()) {
        ::close(fd);
        return charged;
      }
      names.emplace_back(name);
    }
  }
  ::close(fd);
  std::sort(names.begin(), names.end());
  return names;
}

namespace {
void AppendIdentity(std::string& out, std::string_view name, const struct stat& info) {
  // The fields' bytes as they are: only compared, never shown.
  const uint64_t fields[] = {
      static_cast<uint64_t>(info.st_dev), static_cast<uint64_t>(info.st_ino),
      static_cast<uint64_t>(info.st_size), static_cast<uint64_t>(info.st_mtim.tv_sec),
      static_cast<uint64_t>(info.st_mtim.tv_nsec),
      // a chmod that makes a file unreadable changes only this
      static_cast<uint64_t>(info.st_ctim.tv_sec), static_cast<uint64_t>(info.st_ctim.tv_nsec)};
  out.append(name);
  out += '\0';
  out.append(reinterpret_cast<const char*>(fields), sizeof(fields));
}
}  // namespace

std::string DirectoryIdentity(const std::string& path) {
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) return "";
  std::string identity;
  struct stat info;
  if (::fstat(::dirfd(dir), &info) == 0) AppendIdentity(identity, ".", info);
  std::vector<std::string> entries;
  while (struct dirent* entry = ::readdir(dir)) {
    std::string_view name = entry->d_name;
    if (name == "." || name == "..") continue;
    std::string one;
    one.reserve(name.size() + 48);
    if (::fstatat(::dirfd(dir), entry->d_name, &info, 0) == 0) {
      AppendIdentity(one, name, info);
    } else {
      one.append(name).append(1, '\0').append("?");
    }
    entries.push_back(std::move(one));
  }
  ::closedir(dir);
  std::sort(entries.begin(), entries.end());  // readdir's order is not stable across renames
  for (const std::string& entry : entries) identity += entry;
  return identity;
}

std::string FileIdentity(const std::string& path) {
  struct stat info;
  if (::stat(path.c_str(), &info) != 0) return "";
  std::string identity;
  AppendIdentity(identity, ".", info);
  return identity;
}

namespace {
// The directory's own (dev, inode, mtime), following symlinks: a different directory
// under the path, or one whose entries changed.
std::string OwnIdentity(const std::string& path) {
  struct stat info;
  if (::stat(path.c_str(), &info) != 0 || !S_ISDIR(info.st_mode)) return "";
  std::string identity;
  AppendIdentity(identity, ".", info);
  return identity;
}
}  // namespace

DirectoryChanges::DirectoryChanges(std::string path, bool use_inotify) : path_(std::move(path)) {
  if (use_inotify) inotify_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (inotify_ >= 0) {
    constexpr uint32_t kEvents = IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM |
                                 IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_DELETE_SELF |
                                 IN_MOVE_SELF;
    if (::inotify_add_watch(inotify_, path_.c_str(), kEvents | IN_ONLYDIR) < 0) {
      ::close(inotify_);
      inotify_ = -1;
    }
  }
  identity_ = inotify_ >= 0 ? OwnIdentity(path_) : DirectoryIdentity(path_);
  valid_ = !identity_.empty();
}

DirectoryChanges::~DirectoryChanges() {
  if (inotify_ >= 0) ::close(inotify_);
}

bool DirectoryChanges::Changed() {
  if (changed_ || !valid_) return true;
  if (inotify_ >= 0) {
    // Any event at all (IN_Q_OVERFLOW and IN_IGNORED included) is a change; a read
    // that finds none fails with EAGAIN.
    alignas(struct inotify_event) char events[4096];
    ssize_t n = ::read(inotify_, events, sizeof(events));
    changed_ = n > 0 || (n < 0 && errno != EAGAIN) || OwnIdentity(path_) != identity_;
  } else {
    changed_ = DirectoryIdentity(path_) != identity_;
  }
  return changed_;
}

Status WriteFileAtomically(const std::string& path, const std::string& content) {
  // A name no one can have planted: O_EXCL fails on anything already there, and
  // O_NOFOLLOW refuses to follow a symlink planted under the name.
  std::string temp;
  int fd = -1;
  for (int attempt = 0; fd < 0 && attempt < 16; ++attempt) {
    struct timespec now;
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    temp = path + ".tmp." + std::to_string(::getpid()) + "." +
           std::to_string(static_cast<unsigned long>(now.tv_nsec) ^
                          static_cast<unsigned long>(attempt) << 20);
    fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0 && errno != EEXIST) return ErrnoStatus(temp, errno);
  }
  if (fd < 0) return ErrnoStatus(temp, EEXIST);
  size_t written = 0;
  while (written < content.size()) {
    ssize_t n = ::write(fd, content.data() + written, content.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      int error = errno;
      ::close(fd);
      ::unlink(temp.c_str());
      return ErrnoStatus(temp, error);
    }
    written += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    int error = errno;
    ::unlink(temp.c_str());
    return ErrnoStatus(temp, error);
  }
  // rename() replaces the name itself: a symlink or FIFO planted as `path` is
  // replaced, never followed.
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    int error = errno;
    ::unlink(temp.c_str());
    return ErrnoStatus(path, error);
  }
  return Status();
}

Status CheckPrivateDirectory(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return ErrnoStatus(path, errno);
  if (S_ISLNK(st.st_mode)) return Status::Error(path + ": a symlink: refused");
  if (!S_ISDIR(st.st_mode)) return Status::Error(path + ": not a directory");
  uid_t self = ::geteuid();
  if (st.st_uid != self) {
    return Status::Error(path + ": owned by uid " + std::to_string(st.st_uid) +
                         ", not by this agent's user (uid " + std::to_string(self) + "): refused");
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return Status::Error(path + ": writable by group or others: refused");
  }
  // Whoever can replace an ancestor can replace the directory.
  std::string ancestor = path;
  while (true) {
    size_t slash = ancestor.find_last_of('/');
    if (slash == std::string::npos) break;
    ancestor = slash == 0 ? "/" : ancestor.substr(0, slash);
    struct stat parent;
    if (::stat(ancestor.c_str(), &parent) != 0) return ErrnoStatus(ancestor, errno);
    bool trusted_owner = parent.st_uid == 0 || parent.st_uid == self;
    bool others_write = (parent.st_mode & (S_IWGRP | S_IWOTH)) != 0;
    if (!trusted_owner || (others_write && (parent.st_mode & S_ISVTX) == 0)) {
      return Status::Error(path + ": its parent " + ancestor +
                           " can be changed by another user: refused");
    }
    if (ancestor == "/") break;
  }
  return Status();
}

std::string JoinPath(const std::string& base, const std::string& rest) {
  if (base.empty()) return rest;
  if (rest.empty()) return base;
  bool base_slash = base.back() == '/';
  bool rest_slash = rest.front() == '/';
  if (base_slash && rest_slash) return base + rest.substr(1);
  if (base_slash || rest_slash) return base + rest;
  return base + "/" + rest;
}

}  // namespace virtcaps
