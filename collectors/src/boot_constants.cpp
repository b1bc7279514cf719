#include "virtcaps/boot_constants.h"

#include <map>
#include <mutex>
#include <optional>

#include "virtcaps/files.h"

namespace virtcaps {

namespace {

// Answers kept for the life of the process, by full path. Only successes are kept.
class KeptAnswers {
 public:
  template <typename Read>
  auto Find(const std::string& path, Read read) -> decltype(read()) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto found = values_.find(path);
      if (found != values_.end()) return found->second;
    }
    auto value = read();
    if (!value) return value;
    std::lock_guard<std::mutex> lock(mutex_);
    values_.emplace(path, *value);
    return value;
  }

 private:
  std::mutex mutex_;
  std::map<std::string, std::string> values_;
};

KeptAnswers& Kept() {
  static KeptAnswers kept;
  return kept;
}

}  // namespace

Expected<std::string> ReadKernelConstant(const HostPaths& paths, const std::string& relative) {
  std::string path = paths.Proc(relative);
  if (paths.procfs != "/proc") return ReadValue(path);
  return Kept().Find(path, [&] { return ReadValue(path); });
}

Expected<std::string> KernelRelease(const HostPaths& paths) {
  return ReadKernelConstant(paths, "sys/kernel/osrelease");
}

Expected<std::string> ReadBootSysfsValue(const HostPaths& paths, const std::string& relative) {
  std::string path = paths.Sys(relative);
  if (paths.sysfs != "/sys") return ReadValue(path);
  return Kept().Find(path, [&] { return ReadValue(path); });
}

bool BootSysfsPathExists(const HostPaths& paths, const std::string& relative) {
  std::string path = paths.Sys(relative);
  if (paths.sysfs != "/sys") return PathExists(path);
  // Kept as text, "1" or "0"; the answer either way is final.
  auto answer = Kept().Find(
      path, [&]() -> std::optional<std::string> { return PathExists(path) ? "1" : "0"; });
  return *answer == "1";
}

}  // namespace virtcaps
