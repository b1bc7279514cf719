// Finding, reading and parsing QEMU firmware descriptors, as libvirt 9.0's
// qemu_interop_config.c and qemu_firmware.c do, except that one bad file is skipped
// with its reason instead of failing them all.
#include <sys/stat.h>

#include <algorithm>
#include <map>

#include "virtcaps/files.h"
#include "virtcaps/firmware.h"
#include "virtcaps/json.h"
#include "virtcaps/qemu.h"

namespace virtcaps {

namespace {

const std::vector<std::string_view> kInterfaces = {"bios", "openfirmware", "uboot", "uefi"};
const std::vector<std::string_view> kDevices = {"flash", "kernel", "memory"};
const std::vector<std::string_view> kFlashModes = {"split", "combined", "stateless"};
// The features libvirt 9.0 knows; others are ignored, as it ignores them.
const std::vector<std::string_view> kFeatures = {
    "acpi-s3",      "acpi-s4",     "amd-sev",         "amd-sev-es",    "enrolled-keys",
    "requires-smm", "secure-boot", "verbose-dynamic", "verbose-static"};

bool Known(const std::vector<std::string_view>& names, std::string_view name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

std::string Quote(std::string_view text) { return QuoteJson(text); }

// The string member `key` of `object`, or an error naming it.
Expected<std::string> StringMember(const JsonValue& object, std::string_view key,
                                   std::string_view where) {
  const JsonValue* value = object.Find(key);
  if (value == nullptr || !value->is_string()) {
    return Status::Error("missing string '" + std::string(key) + "'" +
                         (where.empty() ? "" : " in " + std::string(where)));
  }
  return value->string();
}

const JsonValue* ArrayMember(const JsonValue& object, std::string_view key) {
  const JsonValue* value = object.Find(key);
  return value != nullptr && value->is_array() ? value : nullptr;
}

Status ParseMapping(const JsonValue& doc, FirmwareDescriptor& descriptor) {
  const JsonValue* mapping = doc.Find("mapping");
  if (mapping == nullptr || !mapping->is_object()) return Status::Error("missing 'mapping'");
  auto device = StringMember(*mapping, "device", "mapping");
  if (!device) return device.status();
  if (!Known(kDevices, *device)) return Status::Error("unknown mapping device " + Quote(*device));
  descriptor.device = *device;
  if (descriptor.device != "flash") {
    auto filename = StringMember(*mapping, "filename", "mapping");
    if (!filename) return filename.status();
    descriptor.executable = *filename;
    return Status();
  }
  descriptor.flash_mode = "split";  // the historical default
  if (const JsonValue* mode = mapping->Find("mode")) {
    if (!mode->is_string() || !Known(kFlashModes, mode->string())) {
      return Status::Error("unknown flash mode " + (mode->is_string()
                                                        ? Quote(mode->string())
                                                        : std::string("(not a string)")));
    }
    descriptor.flash_mode = mode->string();
  }
  const JsonValue* executable = mapping->Find("executable");
  if (executable == nullptr || !executable->is_object())
    return Status::Error("missing 'executable' in mapping");
  auto filename = StringMember(*executable, "filename", "mapping.executable");
  if (!filename) return filename.status();
  if (auto format = StringMember(*executable, "format", "mapping.executable"); !format) {
    return format.status();
  }
  descriptor.executable = *filename;
  if (descriptor.flash_mode == "split") {
    const JsonValue* nvram = mapping->Find("nvram-template");
    if (nvram == nullptr || !nvram->is_object())
      return Status::Error("missing 'nvram-template' in mapping");
    auto template_name = StringMember(*nvram, "filename", "mapping.nvram-template");
    if (!template_name) return template_name.status();
    if (auto format = StringMember(*nvram, "format", "mapping.nvram-template"); !format) {
      return format.status();
    }
    descriptor.nvram_template = *template_name;
  }
  return Status();
}

Status ParseTargets(const JsonValue& doc, FirmwareDescriptor& descriptor) {
  const JsonValue* targets = ArrayMember(doc, "targets");
  if (targets == nullptr) return Status::Error("missing array 'targets'");
  for (const JsonValue& item : targets->items()) {
    auto architecture = StringMember(item, "architecture", "targets");
    if (!architecture) return architecture.status();
    // QEMU's target names, as libvirt's virQEMUCapsArchFromString maps them.
    std::optional<ArchInfo> arch = QemuTargetArch(*architecture);
    if (!arch) return Status::Error("unknown architecture " + Quote(*architecture));
    const JsonValue* machines = ArrayMember(item, "machines");
    if (machines == nullptr) return Status::Error("missing array 'machines' in targets");
    FirmwareTarget target;
    target.arch = arch->arch;
    for (const JsonValue& machine : machines->items()) {
      if (!machine.is_string()) return Status::Error("a machine in targets is not a string");
      target.machines.push_back(machine.string());
    }
    descriptor.targets.push_back(std::move(target));
  }
  return Status();
}

}  // namespace

Expected<FirmwareDescriptor> ParseFirmwareDescriptor(std::string_view json,
                                                     const std::string& path) {
  JsonLimits limits;
  limits.max_bytes = kMaxFirmwareDescriptorBytes;
  limits.max_depth = 16;
  auto doc = ParseJson(json, limits);
  if (!doc) return Status::Error(path + ": not JSON: " + doc.error());
  if (!doc->is_object()) return Status::Error(path + ": not a JSON object");
  FirmwareDescriptor descriptor;
  descriptor.path = path;
  auto fail = [&](const Status& status) { return Status::Error(path + ": " + status.message()); };
  const JsonValue* interfaces = ArrayMember(*doc, "interface-types");
  if (interfaces == nullptr) return fail(Status::Error("missing array 'interface-types'"));
  for (const JsonValue& item : interfaces->items()) {
    if (!item.is_string() || !Known(kInterfaces, item.string())) {
      return fail(
          Status::Error("unknown interface type " +
                        (item.is_string() ? Quote(item.string()) : std::string("(not a string)"))));
    }
    descriptor.interfaces.push_back(item.string());
  }
  if (Status mapping = ParseMapping(*doc, descriptor); !mapping.ok()) return fail(mapping);
  if (Status targets = ParseTargets(*doc, descriptor); !targets.ok()) return fail(targets);
  const JsonValue* features = ArrayMember(*doc, "features");
  if (features == nullptr) return fail(Status::Error("missing array 'features'"));
  for (const JsonValue& item : features->items()) {
    if (item.is_string() && Known(kFeatures, item.string()))
      descriptor.features.push_back(item.string());
  }
  return descriptor;
}

namespace {

// The descriptor files and the problems met finding them (libvirt's qemuBuildFileList).
struct FoundFiles {
  std::map<std::string, std::string> by_name;  // name -> host path of the winning file
  std::vector<FirmwareDescriptorProblem> problems;
  std::vector<FirmwareDescriptorProblem> ignored;
};

// Keeps a list of problems bounded (a directory of thousands of FIFOs must not make
// as many log lines): past the cap, one last entry says how many more there were.
void CapProblems(std::vector<FirmwareDescriptorProblem>& problems) {
  if (problems.size() <= kMaxFirmwareDescriptors) return;
  size_t more = problems.size() - kMaxFirmwareDescriptors + 1;
  problems.resize(kMaxFirmwareDescriptors - 1);
  problems.push_back({"...", std::to_string(more) + " more not listed"});
}

void FindInDirectory(const HostPaths& paths, const std::string& dir, FoundFiles& found) {
  std::string real_dir = paths.Root(dir);
  if (!IsDirectory(real_dir)) return;  // a directory that is not there holds nothing
  auto names = ListDirectory(real_dir);
  if (!names) {
    found.problems.push_back({dir, names.error()});
    return;
  }
  for (const std::string& name : *names) {
    if (name.starts_with(".")) continue;
    std::string path = JoinPath(dir, name);
    struct stat info;
    if (::stat(JoinPath(real_dir, name).c_str(), &info) != 0) {
      found.problems.push_back({path, "cannot stat it (a dangling symlink?)"});
      continue;
    }
    // libvirt skips what is not a regular file; it does not replace a lower one.
    if (!S_ISREG(info.st_mode)) {
      found.ignored.push_back({path, "not a regular file: ignored, as libvirt does"});
      continue;
    }
    found.by_name[name] = path;
  }
}

bool LoaderExists(const HostPaths& paths, const std::string& path) {
  if (path.empty() || path.front() != '/') return false;
  struct stat info;
  return ::stat(paths.Root(path).c_str(), &info) == 0;
}

void CheckLoaders(const QemuOptions& options, const HostPaths& paths, QemuFirmware& firmware) {
  for (FirmwareDescriptor& descriptor : firmware.descriptors)
    descriptor.executable_exists = LoaderExists(paths, descriptor.executable);
  firmware.legacy_loaders.clear();
  for (const std::string& pair : options.nvram) {
    std::string loader = pair.substr(0, pair.find(':'));
    if (LoaderExists(paths, loader)) firmware.legacy_loaders.push_back(loader);
  }
}

}  // namespace

QemuFirmware ReadQemuFirmware(const QemuOptions& options, const HostPaths& paths) {
  QemuFirmware firmware;
  firmware.reread = true;
  FoundFiles found;
  for (const std::string& dir : options.firmware_dirs) FindInDirectory(paths, dir, found);
  firmware.invalid = std::move(found.problems);
  firmware.ignored = std::move(found.ignored);
  size_t files = 0;
  for (const auto& [name, path] : found.by_name) {
    if (++files > kMaxFirmwareDescriptors) {
      firmware.invalid.push_back({path, "more than " + std::to_string(kMaxFirmwareDescriptors) +
                                            " descriptors; not read"});
      continue;
    }
    std::string real = paths.Root(path);
    struct stat info;
    if (::stat(real.c_str(), &info) == 0 && info.st_size == 0) {
      firmware.masked.push_back(name);  // an empty file masks the name (libvirt's rule)
      continue;
    }
    auto text = ReadFile(real, kMaxFirmwareDescriptorBytes);
    if (!text) {
      firmware.invalid.push_back({path, text.error()});
      continue;
    }
    if (text->empty()) {
      firmware.masked.push_back(name);
      continue;
    }
    auto descriptor = ParseFirmwareDescriptor(*text, path);
    if (!descriptor) {
      // The message starts with the path; the problem keeps it apart.
      std::string reason =
          descriptor.error().substr(std::min(descriptor.error().size(), path.size() + 2));
      firmware.invalid.push_back({path, reason});
      continue;
    }
    firmware.descriptors.push_back(std::move(*descriptor));
  }
  std::sort(firmware.invalid.begin(), firmware.invalid.end(),
            [](const FirmwareDescriptorProblem& a, const FirmwareDescriptorProblem& b) {
              return a.path < b.path;
            });
  CapProblems(firmware.invalid);
  CapProblems(firmware.ignored);
  CheckLoaders(options, paths, firmware);
  return firmware;
}

QemuFirmwareMemory::QemuFirmwareMemory() = default;
QemuFirmwareMemory::~QemuFirmwareMemory() = default;

bool QemuFirmwareMemory::Unchanged(const std::vector<std::string>& dirs) {
  if (!valid_ || watches_.size() != dirs.size()) return false;
  for (size_t i = 0; i < dirs.size(); ++i) {
    Watch& watch = watches_[i];
    if (watch.dir != dirs[i]) return false;
    if (watch.changes ? watch.changes->Changed() : IsDirectory(watch.dir)) return false;
  }
  return true;
}

QemuFirmware QemuFirmwareMemory::Read(const QemuOptions& options, const HostPaths& paths) {
  std::vector<std::string> dirs;
  for (const std::string& dir : options.firmware_dirs) dirs.push_back(paths.Root(dir));
  std::lock_guard<std::mutex> lock(mutex_);
  if (Unchanged(dirs)) {
    QemuFirmware firmware = last_;
    firmware.reread = false;
    CheckLoaders(options, paths, firmware);
    return firmware;
  }
  // Watched before the read, so that a change during it shows at the next refresh.
  watches_.clear();
  for (std::string& dir : dirs) {
    auto changes = std::make_unique<DirectoryChanges>(dir);
    if (!changes->valid()) changes.reset();
    watches_.push_back({std::move(dir), std::move(changes)});
  }
  last_ = ReadQemuFirmware(options, paths);
  valid_ = true;
  return last_;
}

}  // namespace virtcaps
