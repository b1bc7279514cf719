#include "virtcaps/boot_constants.h"

#include <functional>
#include <map>
#include <mutex>

#include "virtcaps/files.h"

namespace virtcaps {

namespace {

// Answers kept for the life of the process, by full path: file values, and whether
// paths exist.
class KeptAnswers {
 public:
  // read() once; what it gave is kept when keep(answer) says it is final.
  Expected<std::string> Value(const std::string& path,
                              const std::function<Expected<std::string>()>& read,
                              const std::function<bool(const Expected<std::string>&)>& keep) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto found = values_.find(path);
      if (found != values_.end()) return found->second;
    }
    Expected<std::string> value = read();
    if (!keep(value)) return value;
    std::lock_guard<std::mutex> lock(mutex_);
    values_.emplace(path, value);
    return value;
  }
  bool Exists(const std::string& path) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto found = exists_.find(path);
    if (found == exists_.end()) found = exists_.emplace(path, PathExists(path)).first;
    return found->second;
  }

 private:
  std::mutex mutex_;
  std::map<std::string, Expected<std::string>> values_;
  std::map<std::string, bool> exists_;
};

KeptAnswers& Kept() {
  static KeptAnswers kept;
  return kept;
}

}  // namespace

Expected<std::string> ReadKernelConstant(const HostPaths& paths, const std::string& relative) {
  std::string path = paths.Proc(relative);
  if (paths.procfs != "/proc") return ReadValue(path);
  // A failed read of a file procfs always has is never final.
  return Kept().Value(
      path, [&] { return ReadValue(path); },
      [](const Expected<std::string>& value) { return value.ok(); });
}

Expected<std::string> KernelRelease(const HostPaths& paths) {
  return ReadKernelConstant(paths, "sys/kernel/osrelease");
}

Expected<std::string> ReadBootSysfsValue(const HostPaths& paths, const std::string& relative) {
  std::string path = paths.Sys(relative);
  if (paths.sysfs != "/sys") return ReadValue(path);
  // A value read is final, and so is a file that is not there (no DMI table, a security
  // module not built in); any other failure is tried again next time.
  return Kept().Value(
      path, [&] { return ReadValue(path); },
      [&](const Expected<std::string>& value) { return value.ok() || !PathExists(path); });
}

bool BootSysfsPathExists(const HostPaths& paths, const std::string& relative) {
  std::string path = paths.Sys(relative);
  if (paths.sysfs != "/sys") return PathExists(path);
  return Kept().Exists(path);
}

}  // namespace virtcaps
