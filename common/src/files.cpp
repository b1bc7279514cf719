#include "virtcaps/files.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "virtcaps/strings.h"

namespace virtcaps {

namespace {
Status ErrnoStatus(const std::string& path, int error) {
  return Status::Error(path + ": " + std::strerror(error));
}
}  // namespace

Expected<std::string> ReadFile(const std::string& path, size_t max_bytes) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(path, errno);
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
    content.append(buffer, static_cast<size_t>(n));
    if (content.size() > max_bytes) {
      ::close(fd);
      return Status::Error(path + ": larger than " + std::to_string(max_bytes) + " bytes");
    }
  }
  ::close(fd);
  return content;
}

Expected<std::string> ReadFileHead(const std::string& path, size_t bytes) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(path, errno);
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
    filled += static_cast<size_t>(n);
  }
  ::close(fd);
  content.resize(filled);
  return content;
}

Expected<std::string> ReadValue(const std::string& path) {
  auto content = ReadFile(path, 1u << 20);
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
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) return ErrnoStatus(path, errno);
  std::vector<std::string> names;
  while (struct dirent* entry = ::readdir(dir)) {
    std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(std::move(name));
  }
  ::closedir(dir);
  std::sort(names.begin(), names.end());
  return names;
}

Status WriteFileAtomically(const std::string& path, const std::string& content) {
  std::string temp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus(temp, errno);
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
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    int error = errno;
    ::unlink(temp.c_str());
    return ErrnoStatus(path, error);
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
