#include "virtcaps/boot_constants.h"

#include <map>
#include <mutex>

#include "virtcaps/files.h"

namespace virtcaps {

Expected<std::string> ReadKernelConstant(const HostPaths& paths, const std::string& relative) {
  if (paths.procfs != "/proc") return ReadValue(paths.Proc(relative));
  static std::mutex mutex;
  static std::map<std::string, std::string> kept;
  {
    std::lock_guard<std::mutex> lock(mutex);
    auto found = kept.find(relative);
    if (found != kept.end()) return found->second;
  }
  auto value = ReadValue(paths.Proc(relative));
  if (!value) return value;
  std::lock_guard<std::mutex> lock(mutex);
  kept.emplace(relative, *value);
  return value;
}

Expected<std::string> KernelRelease(const HostPaths& paths) {
  return ReadKernelConstant(paths, "sys/kernel/osrelease");
}

}  // namespace virtcaps
