// QEMU emulators probed as libvirt probes them: find qemu-system-* binaries, start
// each with QMP on stdio, ask query-target / query-kvm / query-machines, the CPU
// models and expansions, and what the domain capabilities' devices and features are
// decided by (DeviceFactsFromSession), quit, and turn the answers into one Guest per
// binary.
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <exception>
#include <iterator>
#include <map>
#include <set>
#include <system_error>
#include <thread>
#include <utility>

#include "virtcaps/boot_constants.h"
#include "virtcaps/collector.h"
#include "virtcaps/files.h"
#include "virtcaps/json.h"
#include "virtcaps/qemu.h"
#include "virtcaps/strings.h"
#include "virtcaps/subprocess.h"

namespace virtcaps {

namespace {

constexpr std::string_view kBinaryPrefix = "qemu-system-";

struct TargetArch {
  const char* target;  // QEMU's name (query-target, binary suffix)
  const char* arch;    // libvirt's name, one its schema (basictypes.rng archnames) accepts
  unsigned wordsize;
};

// loongarch64 is left out: Debian 12's libvirt schema has no such arch name.
constexpr TargetArch kTargets[] = {
    {"aarch64", "aarch64", 64},
    {"alpha", "alpha", 64},
    {"arm", "armv7l", 32},
    {"cris", "cris", 32},
    {"hppa", "parisc", 32},
    {"i386", "i686", 32},
    {"m68k", "m68k", 32},
    {"microblaze", "microblaze", 32},
    {"microblazeel", "microblazeel", 32},
    {"mips", "mips", 32},
    {"mips64", "mips64", 64},
    {"mips64el", "mips64el", 64},
    {"mipsel", "mipsel", 32},
    {"or1k", "openrisc", 32},
    {"ppc", "ppc", 32},
    {"ppc64", "ppc64", 64},
    {"ppc64le", "ppc64le", 64},
    {"riscv32", "riscv32", 32},
    {"riscv64", "riscv64", 64},
    {"s390x", "s390x", 64},
    {"sh4", "sh4", 32},
    {"sh4eb", "sh4eb", 32},
    {"sparc", "sparc", 32},
    {"sparc64", "sparc64", 64},
    {"x86_64", "x86_64", 64},
    {"xtensa", "xtensa", 32},
    {"xtensaeb", "xtensaeb", 32},
};

std::string Quoted(std::string_view text, size_t limit = 80) {
  std::string out = "'";
  for (char c : text.substr(0, limit)) {
    auto byte = static_cast<unsigned char>(c);
    out += (byte < 0x20 || byte == 0x7F) ? '?' : c;
  }
  if (text.size() > limit) out += "...";
  return out + "'";
}

// One QMP conversation with a started emulator. Every failure is a message without
// the emulator's name (the caller adds it) and leaves the process killed and reaped.
class QmpSession {
 public:
  QmpSession(Subprocess& process, Deadline deadline, std::chrono::milliseconds timeout)
      : process_(process), deadline_(deadline), timeout_(timeout) {}

  Status ReadGreeting() {
    auto message = ReadMessage("the QMP greeting");
    if (!message) return message.status();
    if (message->Find("QMP") == nullptr || !message->Find("QMP")->is_object()) {
      process_.Kill();
      return Status::Error("not a QMP greeting: " + Quoted(last_line_));
    }
    return Status();
  }

  // Sends one command and returns its "return" value.
  // With tolerate_error, a QMP error reply (an unknown command) is returned as an
  // error with qmp_error() set, and the emulator keeps running.
  // `arguments`, when given, is the command's arguments object as JSON text.
  Expected<JsonValue> Execute(const std::string& command, bool tolerate_error = false,
                              const std::string& arguments = "") {
    qmp_error_ = false;
    std::string id = "virtcaps-" + std::to_string(++sequence_);
    std::string line = "{\"execute\": " + QuoteJson(command);
    if (!arguments.empty()) line += ", \"arguments\": " + arguments;
    line += ", \"id\": " + QuoteJson(id) + "}";
    Status written = process_.WriteLine(line, deadline_);
    if (!written.ok()) {
      if (process_.timed_out()) return TimedOut("sending " + command);  // input never drained
      if (process_.cancelled()) return Cancelled("sending " + command);
      return Ended("sending " + command, written.message());
    }
    std::string step = "the reply to " + command;
    while (true) {
      auto message = ReadMessage(step);
      if (!message) return message.status();
      if (message->Find("event") != nullptr) continue;  // asynchronous, not ours
      // QEMU echoes the id; a reply without one (a QMP-level error) is still ours,
      // since commands go one at a time.
      const JsonValue* reply_id = message->Find("id");
      if (reply_id != nullptr && (!reply_id->is_string() || reply_id->string() != id)) {
        process_.Kill();
        return Status::Error(step + " carries another command's id: " + Quoted(last_line_));
      }
      if (const JsonValue* error = message->Find("error")) {
        // A command this emulator does not have: the session goes on.
        if (tolerate_error) {
          qmp_error_ = true;
          return Status::Error(command + " failed");
        }
        process_.Kill();
        std::string what = command + " failed";
        if (const JsonValue* error_class = error->Find("class")) {
          what += ": " + error_class->string();
        }
        if (const JsonValue* description = error->Find("desc")) {
          what += ": " + description->string();
        }
        return Status::Error(what);
      }
      const JsonValue* result = message->Find("return");
      if (result == nullptr) {
        process_.Kill();
        return Status::Error(step + " has neither return nor error: " + Quoted(last_line_));
      }
      return *result;
    }
  }

  bool qmp_error() const { return qmp_error_; }

  // Asks the emulator to quit and waits (until the deadline) for it to exit. The
  // answers are complete by now, so nothing here is an error: an emulator that
  // lingers is killed and reaped.
  void Quit() {
    std::string id = "virtcaps-" + std::to_string(++sequence_);
    if (process_.WriteLine("{\"execute\": \"quit\", \"id\": " + QuoteJson(id) + "}", deadline_)
            .ok()) {
      while (true) {
        auto line = process_.ReadLine(deadline_);
        if (!line) break;
        auto message = ParseJson(*line);
        if (message && message->Find("id") && message->Find("id")->string() == id) break;
      }
    }
    process_.Finish(deadline_);
  }

 private:
  // The next non-empty line, parsed as a JSON object.
  Expected<JsonValue> ReadMessage(const std::string& step) {
    while (true) {
      auto line = process_.ReadLine(deadline_);
      if (!line) {
        if (process_.timed_out()) return TimedOut("waiting for " + step);
        if (process_.cancelled()) return Cancelled("waiting for " + step);
        if (process_.limit_passed() != Subprocess::Limit::kNone) {
          return OverLimit(line.error(), "waiting for " + step);
        }
        return Ended(step, line.error());
      }
      if (Trim(*line).empty()) continue;
      last_line_ = *line;
      auto message = ParseJson(*line);
      if (!message) {
        process_.Kill();
        return Status::Error("answered " + step + " with something that is not JSON (" +
                             message.error() + "): " + Quoted(*line));
      }
      if (!message->is_object()) {
        process_.Kill();
        return Status::Error("answered " + step +
                             " with something that is not a QMP message: " + Quoted(*line));
      }
      return std::move(message).value();
    }
  }

  // `doing`: "waiting for the reply to query-kvm", "sending quit", ...
  Status TimedOut(const std::string& doing) {
    return Status::Error("timed out after " + std::to_string(timeout_.count()) + " ms " + doing +
                         "; killed");
  }

  Status Cancelled(const std::string& doing) {
    return Status::Error("cancelled " + doing + " (the agent is stopping); killed");
  }

  // `what` is the subprocess's "it wrote ..." message; name the setting that caps it.
  Status OverLimit(const std::string& what, const std::string& doing) {
    const char* setting = process_.limit_passed() == Subprocess::Limit::kLine ? "max_reply_bytes"
                                                                              : "max_output_bytes";
    return Status::Error(what + " (qemu " + setting + ") " + doing + "; killed");
  }

  // The emulator stopped talking: say how it ended, if it did.
  Status Ended(const std::string& step, const std::string& what) {
    auto how = process_.Finish(deadline_);
    if (!how) {
      if (process_.cancelled()) return Cancelled("waiting for " + step);
      return TimedOut("waiting for " + step);
    }
    return Status::Error(*how + " before " + step + " (" + what + ")");
  }

  Subprocess& process_;
  Deadline deadline_;
  std::chrono::milliseconds timeout_;
  bool qmp_error_ = false;
  int sequence_ = 0;
  std::string last_line_;
};

Expected<std::vector<GuestMachine>> MachinesFromQmp(const JsonValue& reply, size_t max_machines) {
  if (!reply.is_array()) return Status::Error("query-machines did not return a list");
  // Aliases double entries in the list: the cap is on what the document would carry.
  size_t listed = reply.items().size();
  for (const JsonValue& item : reply.items()) listed += item.Find("alias") != nullptr;
  if (listed > max_machines) {
    return Status::Error("query-machines listed " + std::to_string(listed) +
                         " machine types and aliases, more than qemu max_machines (" +
                         std::to_string(max_machines) + ")");
  }
  struct Entry {
    GuestMachine machine;
    std::string alias;
  };
  std::vector<Entry> entries;
  for (size_t i = 0; i < reply.items().size(); ++i) {
    const JsonValue& item = reply.items()[i];
    const JsonValue* name = item.Find("name");
    if (name == nullptr || !name->is_string() || name->string().empty()) {
      return Status::Error("query-machines entry " + std::to_string(i) + " has no name");
    }
    if (name->string() == "none") continue;  // libvirt leaves the empty machine out
    Entry entry;
    // Clean before the name is cached: a U+FFFF from QMP must not make the entry
    // unparsable (and the emulator re-spawned every refresh).
    entry.machine.name = SanitizeText(name->string());
    if (const JsonValue* cpu_max = item.Find("cpu-max")) {
      auto value = cpu_max->integer();
      if (!value || *value < 0 || *value > 0xFFFFFFFFll) {
        return Status::Error("query-machines entry " + entry.machine.name +
                             " has an invalid cpu-max");
      }
      entry.machine.max_cpus = static_cast<unsigned>(*value);
    }
    if (const JsonValue* deprecated = item.Find("deprecated")) {
      entry.machine.deprecated = deprecated->bool_value();
    }
    if (const JsonValue* is_default = item.Find("is-default")) {
      entry.machine.is_default = is_default->bool_value();
    }
    if (const JsonValue* alias = item.Find("alias")) entry.alias = SanitizeText(alias->string());
    entries.push_back(std::move(entry));
  }
  // QEMU's order with the default machine moved to the front, as libvirt keeps them;
  // each aliased machine is followed by an entry named after its alias.
  std::stable_partition(entries.begin(), entries.end(),
                        [](const Entry& entry) { return entry.machine.is_default; });
  std::vector<GuestMachine> machines;
  for (const Entry& entry : entries) {
    machines.push_back(entry.machine);
    if (!entry.alias.empty()) {
      GuestMachine alias = entry.machine;
      alias.name = entry.alias;
      alias.canonical = entry.machine.name;
      alias.is_default = false;
      machines.push_back(std::move(alias));
    }
  }
  return machines;
}

std::vector<GuestFeature> FeaturesFor(const std::string& arch) {
  std::vector<GuestFeature> features;
  if (arch == "i686") {
    features.push_back({"pae", std::nullopt, std::nullopt});
    features.push_back({"nonpae", std::nullopt, std::nullopt});
  }
  // libvirt's virQEMUCapsInitGuestFromBinary: ACPI on x86 and aarch64, APIC on x86.
  bool x86 = arch == "i686" || arch == "x86_64";
  if (x86 || arch == "aarch64") features.push_back({"acpi", true, true});
  if (x86) features.push_back({"apic", true, false});
  features.push_back({"cpuselection", std::nullopt, std::nullopt});
  features.push_back({"deviceboot", std::nullopt, std::nullopt});
  features.push_back({"disksnapshot", true, false});
  return features;
}

// The target named by a binary's file name, if it is qemu-system-<target>.
std::string SuffixTarget(const std::string& path) {
  std::string_view name = path;
  size_t slash = name.rfind('/');
  if (slash != std::string_view::npos) name.remove_prefix(slash + 1);
  if (name.substr(0, kBinaryPrefix.size()) != kBinaryPrefix) return "";
  return std::string(name.substr(kBinaryPrefix.size()));
}

// query-cpu-definitions as libvirt lists it: QEMU's order, without the versioned
// names that unversioned ones alias ("EPYC-v1") and without host/max/base, which
// are CPU modes rather than models.
Expected<std::vector<GuestCpuModel>> CpuModelsFromQmp(const JsonValue& reply, size_t max_models) {
  if (!reply.is_array()) return Status::Error("query-cpu-definitions did not return a list");
  if (reply.items().size() > max_models * 4) {
    return Status::Error("query-cpu-definitions listed " + std::to_string(reply.items().size()) +
                         " models, more than the cap of " + std::to_string(max_models * 4));
  }
  std::set<std::string> aliased;
  for (const JsonValue& entry : reply.items()) {
    if (const JsonValue* target = entry.Find("alias-of"); target && target->is_string()) {
      aliased.insert(target->string());
    }
  }
  std::vector<GuestCpuModel> models;
  for (const JsonValue& entry : reply.items()) {
    const JsonValue* name = entry.Find("name");
    if (name == nullptr || !name->is_string() || name->string().empty()) {
      return Status::Error("query-cpu-definitions entry without a name");
    }
    const std::string& text = name->string();
    if (aliased.count(text) || text == "host" || text == "max" || text == "base") continue;
    GuestCpuModel model;
    model.name = text;
    if (const JsonValue* blockers = entry.Find("unavailable-features")) {
      for (const JsonValue& blocker : blockers->items()) {
        if (blocker.is_string()) model.blockers.push_back(blocker.string());
      }
      model.usable = model.blockers.empty();
    }
    models.push_back(std::move(model));
  }
  return models;
}

bool IsX86Target(const std::string& arch) { return arch == "x86_64" || arch == "i686"; }

// One query-cpu-model-expansion reply's properties, in QEMU's order.
Expected<std::vector<CpuModelProperty>> ExpansionFromQmp(const JsonValue& reply,
                                                         size_t max_properties) {
  const JsonValue* model = reply.Find("model");
  const JsonValue* props = model ? model->Find("props") : nullptr;
  if (props == nullptr || !props->is_object()) {
    return Status::Error("query-cpu-model-expansion returned no model properties");
  }
  if (props->members().size() > max_properties) {
    return Status::Error("query-cpu-model-expansion listed " +
                         std::to_string(props->members().size()) +
                         " properties, more than the cap of " + std::to_string(max_properties));
  }
  std::vector<CpuModelProperty> properties;
  for (const auto& [name, value] : props->members()) {
    CpuModelProperty property;
    property.name = SanitizeText(name);
    if (value.is_bool()) {
      property.kind = CpuModelProperty::Kind::kBoolean;
      property.enabled = value.bool_value();
    } else if (value.is_number() && value.integer()) {
      property.kind = CpuModelProperty::Kind::kNumber;
      property.number = *value.integer();
    } else if (value.is_string()) {
      property.kind = CpuModelProperty::Kind::kString;
      property.text = SanitizeText(value.string());
    } else {
      continue;  // a kind libvirt does not read either
    }
    properties.push_back(std::move(property));
  }
  return properties;
}

// libvirt's merge of the two expansions: what only the non-migratable one enables is
// enabled and marked not migratable; what only it lists is added the same way.
void MergeNonMigratable(std::vector<CpuModelProperty>& migratable,
                        const std::vector<CpuModelProperty>& all) {
  for (const CpuModelProperty& other : all) {
    auto found = std::find_if(migratable.begin(), migratable.end(),
                              [&](const CpuModelProperty& p) { return p.name == other.name; });
    if (found == migratable.end()) {
      CpuModelProperty added = other;
      added.migratable = false;
      migratable.push_back(std::move(added));
    } else if (found->kind == CpuModelProperty::Kind::kBoolean &&
               other.kind == CpuModelProperty::Kind::kBoolean && !found->enabled && other.enabled) {
      found->enabled = true;
      found->migratable = false;
    }
  }
}

// query-cpu-definitions and query-cpu-model-expansion under the session's accelerator
// (`virttype`), as libvirt asks them: the expansion of "host" under KVM and of "max"
// under TCG, static or full as below, migratable and not.
Expected<GuestCpuModes> CpuModesFromSession(QmpSession& session, const std::string& virttype,
                                            const std::string& arch, size_t max_models) {
  GuestCpuModes modes;
  modes.virttype = virttype;
  // Old QEMUs and some targets lack it: the guest stands without CPU models.
  auto cpu_definitions = session.Execute("query-cpu-definitions", /*tolerate_error=*/true);
  if (!cpu_definitions && !session.qmp_error()) return cpu_definitions.status();
  if (cpu_definitions) {
    auto models = CpuModelsFromQmp(*cpu_definitions, max_models);
    if (!models) return models.status();
    modes.models = std::move(models).value();
    modes.models_probed = true;
  }
  // The host-model is decoded for x86 only; elsewhere it is not asked for.
  if (!IsX86Target(arch)) return modes;
  // libvirt expands statically (QEMU's canonical feature names) only when QEMU's
  // max-x86_64-cpu type has an unavailable-features property; qemu-system-i386 (no
  // such type) and old QEMUs get a full expansion, every spelling of every feature.
  auto properties_reply =
      session.Execute("qom-list-properties", true, "{\"typename\": \"max-x86_64-cpu\"}");
  if (!properties_reply && !session.qmp_error()) return properties_reply.status();
  bool canonical = false;
  if (properties_reply) {
    for (const JsonValue& property : properties_reply->items()) {
      const JsonValue* name = property.Find("name");
      canonical = canonical || (name && name->string() == "unavailable-features");
    }
  }
  std::string model = virttype == "kvm" ? "host" : "max";
  std::string type = canonical ? "static" : "full";
  modes.expansion_type = type;
  std::string base = "{\"type\": \"" + type + "\", \"model\": {\"name\": \"" + model + "\"";
  auto expanded = session.Execute("query-cpu-model-expansion", true, base + "}}");
  if (!expanded) {
    if (!session.qmp_error()) return expanded.status();
    return modes;  // not implemented here: no host-model
  }
  auto all = session.Execute("query-cpu-model-expansion", true,
                             base + ", \"props\": {\"migratable\": false}}}");
  if (!all && !session.qmp_error()) return all.status();
  // QEMU's x86 models have about 330 properties; far more is not a CPU model.
  constexpr size_t kMaxProperties = 4096;
  auto properties = ExpansionFromQmp(*expanded, kMaxProperties);
  if (!properties) return properties.status();
  if (all) {
    auto non_migratable = ExpansionFromQmp(*all, kMaxProperties);
    if (!non_migratable) return non_migratable.status();
    MergeNonMigratable(*properties, *non_migratable);
  }
  modes.expansion = std::move(properties).value();
  return modes;
}

// "7.2.22" from query-version; empty when the reply does not say.
std::string VersionFromQmp(const JsonValue& reply) {
  const JsonValue* qemu = reply.Find("qemu");
  if (qemu == nullptr) return "";
  std::string version;
  for (const char* part : {"major", "minor", "micro"}) {
    const JsonValue* value = qemu->Find(part);
    if (value == nullptr || !value->integer() || *value->integer() < 0) return "";
    version += (version.empty() ? "" : ".") + std::to_string(*value->integer());
  }
  return version;
}

// The QOM types libvirt 9.0's virQEMUCapsObjectTypes maps to the flags its domain
// capabilities read (disk, video, hostdev, rng, filesystem, redirdev, memoryBacking,
// iothreads, vmcoreinfo, genid, sgx). Only these are kept of qom-list-types.
constexpr const char* kDeviceQomTypes[] = {
    "VGA",
    "bochs-display",
    "cirrus-vga",
    "ich9-ahci",
    "ich9-usb-ehci1",
    "iothread",
    "memory-backend-file",
    "memory-backend-memfd",
    "nec-usb-xhci",
    "pci-ohci",
    "piix3-usb-uhci",
    "piix4-usb-uhci",
    "qemu-xhci",
    "qxl",
    "ramfb",
    "rng-builtin",
    "rng-egd",
    "rng-random",
    "sgx-epc",
    "usb-ehci",
    "usb-redir",
    "usb-storage",
    "vfio-pci",
    "vhost-scsi-pci-non-transitional",
    "vhost-scsi-pci-transitional",
    "vhost-user-fs-device",
    "vhost-vsock-pci-non-transitional",
    "vhost-vsock-pci-transitional",
    "virtio-9p-pci-non-transitional",
    "virtio-9p-pci-transitional",
    "virtio-balloon-pci-non-transitional",
    "virtio-balloon-pci-transitional",
    "virtio-blk-pci-non-transitional",
    "virtio-blk-pci-transitional",
    "virtio-gpu-device",
    "virtio-gpu-pci",
    "virtio-net-pci-non-transitional",
    "virtio-net-pci-transitional",
    "virtio-rng-ccw",
    "virtio-rng-device",
    "virtio-rng-pci",
    "virtio-rng-pci-non-transitional",
    "virtio-rng-pci-transitional",
    "virtio-scsi-pci-non-transitional",
    "virtio-scsi-pci-transitional",
    "virtio-serial-pci-non-transitional",
    "virtio-serial-pci-transitional",
    "vmcoreinfo",
    "vmgenid",
    "vmware-svga",
    "vt82c686b-usb-uhci",
};

// The QMP commands libvirt's domain capabilities depend on (virQEMUCapsCommands).
constexpr const char* kDeviceCommands[] = {"blockdev-reopen", "query-vnc"};

// libvirt's QMP schema queries (virQEMUCapsQMPSchemaQueries) that decide graphics types
// and incremental backup, in its path syntax: COMMAND/arg-type|ret-type/MEMBER/...,
// "+NAME" a variant of a union.
struct SchemaQuery {
  const char* name;  // the fact recorded as "schema:NAME"
  const char* path;
};
constexpr SchemaQuery kSchemaQueries[] = {
    {"display-sdl", "query-display-options/ret-type/+sdl"},
    {"display-egl-headless", "query-display-options/ret-type/+egl-headless"},
    {"display-dbus", "query-display-options/ret-type/+dbus"},
    {"block-bitmap-mapping",
     "migrate-set-parameters/arg-type/block-bitmap-mapping/bitmaps/transform"},
};

// libvirt 9.0's Hyper-V enlightenments (virDomainHyperv), in its order; QEMU names
// them "hv-" + the name with '-' for '_'.
constexpr const char* kHypervFeatures[] = {
    "relaxed",         "vapic",    "spinlocks", "vpindex",   "runtime",
    "synic",           "stimer",   "reset",     "vendor_id", "frequencies",
    "reenlightenment", "tlbflush", "ipi",       "evmcs",     "avic",
};

// The introspected QMP schema (query-qmp-schema), indexed by entity name.
class QmpSchema {
 public:
  explicit QmpSchema(const JsonValue& reply) {
    for (const JsonValue& entity : reply.items()) {
      const JsonValue* name = entity.Find("name");
      if (name != nullptr && name->is_string()) entities_.emplace(name->string(), &entity);
    }
  }

  bool HasCommand(const std::string& name) const {
    const JsonValue* entity = Lookup(name);
    return entity != nullptr && MetaType(*entity) == "command";
  }

  // Whether `path` (libvirt's query syntax, without its ^/$ forms) leads somewhere.
  bool PathExists(std::string_view path) const {
    std::vector<std::string_view> parts = Split(path, '/');
    if (parts.empty()) return false;
    const JsonValue* entity = Lookup(std::string(parts[0]));
    if (entity == nullptr || MetaType(*entity) != "command") return false;
    return Walk(*entity, parts, 1, 0);
  }

 private:
  const JsonValue* Lookup(const std::string& name) const {
    auto found = entities_.find(name);
    return found == entities_.end() ? nullptr : found->second;
  }

  static std::string MetaType(const JsonValue& entity) {
    const JsonValue* meta = entity.Find("meta-type");
    return meta != nullptr ? meta->string() : "";
  }

  const JsonValue* TypeNamed(const JsonValue* name) const {
    return name != nullptr && name->is_string() ? Lookup(name->string()) : nullptr;
  }

  // `depth` bounds the walk through arrays and alternates (a schema could loop).
  bool Walk(const JsonValue& entity, const std::vector<std::string_view>& parts, size_t next,
            int depth) const {
    if (next == parts.size()) return true;
    if (depth > 32) return false;
    std::string meta = MetaType(entity);
    std::string_view part = parts[next];
    if (meta == "command") {
      if (part != "arg-type" && part != "ret-type") return false;
      const JsonValue* type = TypeNamed(entity.Find(std::string(part)));
      return type != nullptr && Walk(*type, parts, next + 1, depth + 1);
    }
    if (meta == "array") {
      const JsonValue* element = TypeNamed(entity.Find("element-type"));
      return element != nullptr && Walk(*element, parts, next, depth + 1);
    }
    if (meta == "alternate") {
      const JsonValue* members = entity.Find("members");
      if (members == nullptr) return false;
      for (const JsonValue& member : members->items()) {
        const JsonValue* type = TypeNamed(member.Find("type"));
        if (type != nullptr && Walk(*type, parts, next, depth + 1)) return true;
      }
      return false;
    }
    if (meta != "object") return false;
    bool variant = !part.empty() && part.front() == '+';
    std::string_view wanted = variant ? part.substr(1) : part;
    const JsonValue* list = entity.Find(variant ? "variants" : "members");
    if (list == nullptr) return false;
    for (const JsonValue& item : list->items()) {
      const JsonValue* key = item.Find(variant ? "case" : "name");
      if (key == nullptr || key->string() != wanted) continue;
      const JsonValue* type = TypeNamed(item.Find("type"));
      return type != nullptr && Walk(*type, parts, next + 1, depth + 1);
    }
    return false;
  }

  std::map<std::string, const JsonValue*> entities_;
};

// The strings of a QMP reply that is a list of strings (query-tpm-models/-types).
std::vector<std::string> StringItems(const JsonValue& reply) {
  std::vector<std::string> values;
  for (const JsonValue& item : reply.items()) {
    if (item.is_string()) values.push_back(item.string());
  }
  return values;
}

// What libvirt's domain capabilities need of this emulator beyond machines and CPUs,
// asked as libvirt 9.0 asks it. A command the emulator refuses leaves its facts
// unknown (the probe goes on); only a broken conversation fails the probe.
Expected<GuestDeviceFacts> DeviceFactsFromSession(QmpSession& session, const std::string& arch,
                                                  bool kvm) {
  std::set<std::string> answered, found;
  auto ask = [&](const std::string& command,
                 const std::string& arguments = "") -> Expected<std::optional<JsonValue>> {
    auto reply = session.Execute(command, /*tolerate_error=*/true, arguments);
    if (reply) return std::optional<JsonValue>(std::move(reply).value());
    if (!session.qmp_error()) return reply.status();
    return std::optional<JsonValue>();
  };

  auto types = ask("qom-list-types");
  if (!types) return types.status();
  if (*types && (*types)->is_array()) {
    answered.insert("qom-list-types");
    std::set<std::string_view> wanted(std::begin(kDeviceQomTypes), std::end(kDeviceQomTypes));
    for (const JsonValue& type : (*types)->items()) {
      const JsonValue* name = type.Find("name");
      if (name != nullptr && wanted.count(name->string())) found.insert("type:" + name->string());
    }
  }

  auto schema_reply = ask("query-qmp-schema");
  if (!schema_reply) return schema_reply.status();
  if (*schema_reply && (*schema_reply)->is_array()) {
    answered.insert("query-qmp-schema");
    QmpSchema schema(**schema_reply);
    for (const char* command : kDeviceCommands) {
      if (schema.HasCommand(command)) found.insert(std::string("command:") + command);
    }
    for (const SchemaQuery& query : kSchemaQueries) {
      if (schema.PathExists(query.path)) found.insert(std::string("schema:") + query.name);
    }
  }

  auto options = ask("query-command-line-options");
  if (!options) return options.status();
  if (*options && (*options)->is_array()) {
    answered.insert("command-line-options");
    for (const JsonValue& option : (*options)->items()) {
      const JsonValue* name = option.Find("option");
      if (name != nullptr && name->string() == "spice") found.insert("option:spice");
    }
  }

  // As libvirt: the backends only when the models answered.
  auto models = ask("query-tpm-models");
  if (!models) return models.status();
  if (*models && (*models)->is_array()) {
    answered.insert("query-tpm-models");
    for (const std::string& model : StringItems(**models)) {
      if (model == "tpm-tis" || model == "tpm-crb" || model == "tpm-spapr") {
        found.insert("tpm-model:" + model);
      }
    }
    auto tpm_types = ask("query-tpm-types");
    if (!tpm_types) return tpm_types.status();
    if (*tpm_types && (*tpm_types)->is_array()) {
      answered.insert("query-tpm-types");
      for (const std::string& type : StringItems(**tpm_types)) {
        if (type == "passthrough" || type == "emulator") found.insert("tpm-type:" + type);
      }
    }
  }

  // SGX is asked only of an emulator with the sgx-epc device; an error means the host
  // cannot run SGX guests, which is an answer too.
  if (found.count("type:sgx-epc")) {
    auto sgx = session.Execute("query-sgx-capabilities", /*tolerate_error=*/true);
    if (!sgx && !session.qmp_error()) return sgx.status();
    answered.insert("query-sgx-capabilities");
    if (sgx) found.insert("sgx");
  }

  // Hyper-V enlightenments: libvirt expands "host" fully, not migratable, with
  // hv-passthrough, under an accelerator (x86 and Arm) and keeps each hv-* property
  // that is true, a number above 0 or a string.
  GuestDeviceFacts facts;
  bool arm = arch == "aarch64" || arch == "armv7l";
  if (kvm && (IsX86Target(arch) || arm)) {
    auto expanded = ask("query-cpu-model-expansion",
                        "{\"type\": \"full\", \"model\": {\"name\": \"host\", \"props\": "
                        "{\"migratable\": false, \"hv-passthrough\": true}}}");
    if (!expanded) return expanded.status();
    const JsonValue* model = *expanded ? (*expanded)->Find("model") : nullptr;
    const JsonValue* props = model != nullptr ? model->Find("props") : nullptr;
    if (props != nullptr && props->is_object()) {
      answered.insert("hyperv");
      for (const char* feature : kHypervFeatures) {
        std::string qemu_name = "hv-" + std::string(feature);
        std::replace(qemu_name.begin(), qemu_name.end(), '_', '-');
        const JsonValue* value = props->Find(qemu_name);
        if (value == nullptr) continue;
        bool on = (value->is_bool() && value->bool_value()) ||
                  (value->is_number() && value->number() > 0) || value->is_string();
        if (on) facts.hyperv.push_back(feature);
      }
    }
  }
  facts.answered =
      SharedVector<std::string>(std::vector<std::string>(answered.begin(), answered.end()));
  facts.found = SharedVector<std::string>(std::vector<std::string>(found.begin(), found.end()));
  return facts;
}

// The conversation, from greeting to quit; the answers become the Guest.
Expected<Guest> Converse(QmpSession& session, const std::string& emulator, size_t max_machines) {
  Status greeting = session.ReadGreeting();
  if (!greeting.ok()) return greeting;
  auto negotiated = session.Execute("qmp_capabilities");
  if (!negotiated) return negotiated.status();
  auto target = session.Execute("query-target");
  if (!target) return target.status();
  auto kvm = session.Execute("query-kvm");
  if (!kvm) return kvm.status();
  auto machines_reply = session.Execute("query-machines");
  if (!machines_reply) return machines_reply.status();
  // A bad machine list fails the probe before anything else is asked.
  auto machines = MachinesFromQmp(*machines_reply, max_machines);
  if (!machines) return machines.status();

  std::string target_name;
  if (const JsonValue* name = target->Find("arch")) target_name = name->string();
  std::optional<ArchInfo> arch = QemuTargetArch(target_name);
  if (!arch) arch = QemuTargetArch(SuffixTarget(emulator));
  if (!arch) {
    session.Quit();
    return Status::Error("unknown target architecture " + Quoted(target_name));
  }

  Guest guest;
  guest.hypervisor = "qemu";
  guest.os_type = "hvm";
  guest.arch = arch->arch;
  guest.wordsize = arch->wordsize;
  guest.emulator = emulator;
  guest.machines = std::move(machines).value();
  guest.domains.push_back({"qemu", "", {}});
  const JsonValue* present = kvm->Find("present");
  const JsonValue* enabled = kvm->Find("enabled");
  if (present && enabled && present->bool_value() && enabled->bool_value()) {
    guest.domains.push_back({"kvm", "", {}});
  }
  guest.features = FeaturesFor(guest.arch);

  // The accelerator that came up.
  auto modes = CpuModesFromSession(session, guest.domains.back().type, guest.arch, max_machines);
  if (!modes) return modes.status();
  if (modes->models_probed || modes->expansion) guest.cpu_modes.push_back(std::move(*modes));
  auto version = session.Execute("query-version", /*tolerate_error=*/true);
  if (!version && !session.qmp_error()) return version.status();
  if (version) guest.qemu_version = VersionFromQmp(*version);
  auto device_facts =
      DeviceFactsFromSession(session, guest.arch, guest.domains.back().type == "kvm");
  if (!device_facts) return device_facts.status();
  guest.device_facts = std::move(device_facts).value();
  session.Quit();
  return guest;
}

// libvirt's second probe of an emulator whose first one ran under KVM: TCG only, for
// the qemu virt type's named models and host-model.
Expected<GuestCpuModes> ConverseTcg(QmpSession& session, const std::string& arch,
                                    size_t max_machines) {
  Status greeting = session.ReadGreeting();
  if (!greeting.ok()) return greeting;
  auto negotiated = session.Execute("qmp_capabilities");
  if (!negotiated) return negotiated.status();
  auto modes = CpuModesFromSession(session, "qemu", arch, max_machines);
  if (!modes) return modes.status();
  session.Quit();
  return modes;
}

struct Candidate {
  std::string emulator;   // as the host sees it
  std::string exec_path;  // under rootfs
  Status problem;         // an explicitly listed path that cannot be probed
  // What the search's stat saw: which file it is (device, inode: duplicates are found by
  // it) and the cache key's binary identity (not stat'ed again).
  QemuBinaryIdentity identity;
};

bool IsExecutableFile(const struct stat& st) {
  return S_ISREG(st.st_mode) && (st.st_mode & (S_IXUSR | S_IXGRP | S_IXOTH)) != 0;
}

// The qemu-system-<known target> entries of a directory, listed again only when its
// mtime changed (creating, removing or renaming an entry changes it). Only those are
// kept: /usr/bin has a thousand other names.
std::optional<std::vector<std::string>> ListEmulatorDirectory(const std::string& path,
                                                              QemuProbeMemory* memory) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return std::nullopt;
  int64_t mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  if (memory != nullptr) {
    if (auto names = memory->Listing(path, mtime_ns)) return names;
  }
  auto entries = ListDirectory(path);
  if (!entries) return std::nullopt;
  std::vector<std::string> names;
  for (std::string& name : *entries) {
    if (name.compare(0, kBinaryPrefix.size(), kBinaryPrefix) != 0) continue;
    if (!QemuTargetArch(name.substr(kBinaryPrefix.size()))) continue;
    names.push_back(std::move(name));
  }
  if (memory != nullptr) memory->RememberListing(path, mtime_ns, names);
  return names;
}

std::vector<Candidate> FindEmulators(const QemuOptions& options, const HostPaths& paths,
                                     QemuProbeMemory* memory) {
  std::vector<Candidate> found;
  for (const std::string& dir : options.emulator_dirs) {
    auto names = ListEmulatorDirectory(JoinPath(paths.rootfs, dir), memory);
    if (!names) continue;  // a directory that is not there holds no emulators
    for (const std::string& name : *names) {
      Candidate candidate;
      candidate.emulator = JoinPath(dir, name);
      candidate.exec_path = JoinPath(paths.rootfs, candidate.emulator);
      struct stat st;
      if (::stat(candidate.exec_path.c_str(), &st) != 0 || !IsExecutableFile(st)) continue;
      candidate.identity = QemuBinaryIdentityOf(st);
      found.push_back(std::move(candidate));
    }
  }
  for (const std::string& emulator : options.emulators) {
    Candidate candidate;
    candidate.emulator = emulator;
    candidate.exec_path = JoinPath(paths.rootfs, emulator);
    struct stat st;
    if (::stat(candidate.exec_path.c_str(), &st) != 0) {
      candidate.problem = Status::Error(emulator + ": not found");
    } else if (!IsExecutableFile(st)) {
      candidate.problem = Status::Error(emulator + ": not an executable file");
    } else {
      candidate.identity = QemuBinaryIdentityOf(st);
    }
    found.push_back(std::move(candidate));
  }
  // RHEL-family hosts ship the host-arch emulator as /usr/libexec/qemu-kvm, outside
  // $PATH, and no qemu-system-<host arch>: libvirt falls back to it for native guests.
  std::string host_arch = HostArch(paths);
  bool have_native = std::any_of(found.begin(), found.end(), [&](const Candidate& candidate) {
    auto arch = QemuTargetArch(SuffixTarget(candidate.emulator));
    return arch && QemuGuestIsNative(host_arch, arch->arch);
  });
  if (!have_native) {
    Candidate candidate;
    candidate.emulator = "/usr/libexec/qemu-kvm";
    candidate.exec_path = JoinPath(paths.rootfs, candidate.emulator);
    struct stat st;
    if (::stat(candidate.exec_path.c_str(), &st) == 0 && IsExecutableFile(st)) {
      candidate.identity = QemuBinaryIdentityOf(st);
      found.push_back(std::move(candidate));
    }
  }
  std::stable_sort(found.begin(), found.end(),
                   [](const Candidate& a, const Candidate& b) { return a.emulator < b.emulator; });
  // One probe per binary: a path seen before, or another name (symlink, hard link)
  // of a file seen before, is dropped. The file identity is taken under rootfs, so a
  // symlink with an absolute target resolves the same way the probe will run it.
  std::vector<Candidate> unique;
  std::set<std::string> paths_seen;
  std::set<std::pair<uint64_t, uint64_t>> files_seen;
  for (Candidate& candidate : found) {
    if (!paths_seen.insert(candidate.emulator).second) continue;
    if (candidate.problem.ok() &&
        !files_seen.insert({candidate.identity.device, candidate.identity.inode}).second) {
      continue;
    }
    unique.push_back(std::move(candidate));
  }
  return unique;
}

QemuEmulatorResult ProbeCandidate(const Candidate& candidate, const QemuOptions& options,
                                  const QemuHostFacts& facts, const Cancellation* cancel,
                                  QemuProbeMemory* memory) {
  auto start = std::chrono::steady_clock::now();
  QemuEmulatorResult result;
  result.emulator = candidate.emulator;
  try {
    if (!candidate.problem.ok()) {
      result.status = candidate.problem;
    } else {
      std::optional<QemuBinaryIdentity> identity;
      if (!options.cache_dir.empty() || memory != nullptr) identity = candidate.identity;
      std::string key;
      std::optional<Guest> cached;
      // Memory first: a warm refresh opens no file and spawns nothing.
      if (identity && memory != nullptr) {
        key = QemuCacheKey(candidate.emulator, *identity, facts);
        cached = memory->Find(candidate.emulator, key);
      }
      if (!cached && identity && !options.cache_dir.empty()) {
        cached = ReadQemuCache(options.cache_dir, candidate.emulator, *identity, facts);
        if (cached && memory != nullptr) memory->Remember(candidate.emulator, key, *cached);
      }
      if (cached) {
        result.guest = std::move(*cached);
        result.from_cache = true;
      } else {
        auto guest = ProbeQemuEmulator(candidate.emulator, candidate.exec_path, options, cancel);
        if (guest) {
          result.guest = std::move(guest).value();
          if (identity && !options.cache_dir.empty()) {
            WriteQemuCache(options.cache_dir, candidate.emulator, *identity, facts, result.guest);
          }
          if (identity && memory != nullptr) {
            memory->Remember(candidate.emulator, key, result.guest);
          }
        } else {
          result.status = guest.status();
        }
      }
    }
  } catch (const std::exception& e) {
    result.status = Status::Error(candidate.emulator + ": " + e.what());
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

// A candidate's remembered probe, when its binary and the key's inputs are unchanged:
// looked up before any worker thread is started, so a warm refresh starts none.
std::optional<QemuEmulatorResult> RememberedCandidate(const Candidate& candidate,
                                                      const QemuHostFacts& facts,
                                                      QemuProbeMemory* memory) {
  if (memory == nullptr || !candidate.problem.ok()) return std::nullopt;
  auto start = std::chrono::steady_clock::now();
  try {
    auto guest = memory->Find(candidate.emulator,
                              QemuCacheKey(candidate.emulator, candidate.identity, facts));
    if (!guest) return std::nullopt;
    QemuEmulatorResult result;
    result.emulator = candidate.emulator;
    result.guest = std::move(*guest);
    result.from_cache = true;
    result.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return result;
  } catch (const std::exception&) {
    return std::nullopt;  // ProbeCandidate tries again and reports it
  }
}

std::string FormatUint(uint64_t value, bool hex) {
  char text[32];
  std::snprintf(text, sizeof(text), hex ? "0x%llx" : "%llu",
                static_cast<unsigned long long>(value));
  return text;
}

}  // namespace

std::optional<Guest> QemuProbeMemory::Find(const std::string& emulator,
                                           const std::string& key) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto found = guests_.find(emulator);
  if (found == guests_.end() || found->second.first != key) return std::nullopt;
  return found->second.second;
}

void QemuProbeMemory::Remember(const std::string& emulator, const std::string& key,
                               const Guest& guest) {
  std::lock_guard<std::mutex> lock(mutex_);
  guests_[emulator] = {key, guest};
}

std::optional<std::vector<std::string>> QemuProbeMemory::Listing(const std::string& dir,
                                                                 int64_t mtime_ns) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto found = listings_.find(dir);
  if (found == listings_.end() || found->second.first != mtime_ns) return std::nullopt;
  return found->second.second;
}

void QemuProbeMemory::RememberListing(const std::string& dir, int64_t mtime_ns,
                                      std::vector<std::string> names) {
  std::lock_guard<std::mutex> lock(mutex_);
  listings_[dir] = {mtime_ns, std::move(names)};
}

void QemuProbeMemory::Retain(const std::set<std::string>& emulators,
                             const std::set<std::string>& dirs) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto it = guests_.begin(); it != guests_.end();) {
    it = emulators.count(it->first) ? std::next(it) : guests_.erase(it);
  }
  for (auto it = listings_.begin(); it != listings_.end();) {
    it = dirs.count(it->first) ? std::next(it) : listings_.erase(it);
  }
}

std::optional<std::vector<Guest>> QemuProbeMemory::FindFinished(
    const std::vector<Guest>& probed, const std::shared_ptr<const void>& cpu_map,
    const std::string& host_arch) const {
  std::lock_guard<std::mutex> lock(mutex_);
  // The probed guests share their CPU models with what was remembered, so comparing
  // them costs little more than their machine lists.
  if (!finished_ || finished_->cpu_map != cpu_map || finished_->host_arch != host_arch ||
      finished_->probed != probed) {
    return std::nullopt;
  }
  return finished_->guests;
}

void QemuProbeMemory::RememberFinished(std::vector<Guest> probed,
                                       std::shared_ptr<const void> cpu_map, std::string host_arch,
                                       std::vector<Guest> finished) {
  std::lock_guard<std::mutex> lock(mutex_);
  finished_ =
      Finished{std::move(probed), std::move(cpu_map), std::move(host_arch), std::move(finished)};
}

bool QemuGuestIsNative(std::string_view host, std::string_view guest) {
  auto is_ppc64 = [](std::string_view arch) { return arch == "ppc64" || arch == "ppc64le"; };
  return host == guest || (host == "x86_64" && guest == "i686") ||
         (host == "aarch64" && guest == "armv7l") || (is_ppc64(host) && is_ppc64(guest));
}

std::vector<Guest> LibvirtQemuGuests(std::vector<Guest> probed, std::string_view host_arch) {
  auto has_arch = [&](std::string_view arch) {
    return std::any_of(probed.begin(), probed.end(),
                       [&](const Guest& guest) { return guest.arch == arch; });
  };
  // A second guest from a binary already probed, under another arch.
  auto derive = [](const Guest& from, const char* arch, unsigned wordsize) {
    Guest guest = from;
    guest.arch = arch;
    guest.wordsize = wordsize;
    guest.features = FeaturesFor(guest.arch);
    return guest;
  };
  // armv7l on an aarch64 host comes from qemu-system-aarch64 first (KVM can run it
  // there; qemu-system-arm would be TCG only), as virQEMUCapsFindBinaryForArch says.
  bool has_aarch64 = has_arch("aarch64");
  bool arm_from_aarch64 = host_arch == "aarch64" && has_aarch64;
  bool i686_from_x86_64 = host_arch == "x86_64" && !has_arch("i686");
  bool ppc64le_from_ppc64 = !has_arch("ppc64le");
  std::vector<Guest> guests;
  for (Guest& guest : probed) {
    if (host_arch == "aarch64" && has_aarch64 && guest.arch == "armv7l") continue;
    guests.push_back(std::move(guest));  // moved: a guest with its CPU models is large
    const Guest& from = guests.back();
    if (from.arch == "x86_64" && i686_from_x86_64) {
      guests.push_back(derive(from, "i686", 32));
      i686_from_x86_64 = false;
    } else if (from.arch == "aarch64" && arm_from_aarch64) {
      guests.push_back(derive(from, "armv7l", 32));
      arm_from_aarch64 = false;
    } else if (from.arch == "ppc64" && ppc64le_from_ppc64) {
      guests.push_back(derive(from, "ppc64le", 64));
      ppc64le_from_ppc64 = false;
    }
  }
  return guests;
}

std::optional<ArchInfo> QemuTargetArch(std::string_view target) {
  for (const TargetArch& entry : kTargets) {
    if (target == entry.target) return ArchInfo{entry.arch, entry.wordsize};
  }
  return std::nullopt;
}

namespace {

// Starts the emulator with `accel` and runs `converse` over its QMP; each session is
// bounded by its own probe_timeout and the caps. Errors read "<emulator>: what" (with
// `what_prefix`) and end with a stderr line, if any.
template <typename Result, typename Converser>
Expected<Result> RunQmpSession(const std::string& emulator, const std::string& exec_path,
                               const QemuOptions& options, const Cancellation* cancel,
                               const std::string& accel, const std::string& what_prefix,
                               Converser converse) {
  std::chrono::milliseconds timeout = options.probe_timeout;
  Deadline deadline = std::chrono::steady_clock::now() + timeout;
  SubprocessOptions limits;
  limits.max_line_bytes = static_cast<size_t>(options.max_reply_bytes);
  limits.max_output_bytes = static_cast<size_t>(options.max_output_bytes);
  limits.cancel = cancel;
  // Under a --path.rootfs other than "/" (a container seeing the host at /host) the
  // emulator runs inside that root, chrooted in the child: then it loads the host's
  // libraries, its accelerator and device modules, and opens the host's /dev/kvm, as
  // it would on the host. Only when its interpreter is there (RunnableInside): a test
  // tree of fake emulators has none, and those run as they are.
  std::string program = exec_path;
  if (exec_path.size() > emulator.size() && exec_path.ends_with(emulator)) {
    std::string root = exec_path.substr(0, exec_path.size() - emulator.size());
    if (RunnableInside(root, emulator)) {
      limits.root_directory = root;
      program = emulator;
    }
  }
  // Like libvirt: no user config, no default devices, no display, the empty machine,
  // the accelerator asked for, and QMP on stdin/stdout.
  auto started =
      Subprocess::Start({program, "-S", "-no-user-config", "-nodefaults", "-nographic", "-display",
                         "none", "-machine", "none,accel=" + accel, "-qmp", "stdio"},
                        limits);
  if (!started) {  // the error names the program; say which emulator that is, if it differs
    if (program == emulator && what_prefix.empty()) return started.status();
    return Status::Error(emulator + ": " + what_prefix + started.error());
  }
  Subprocess& process = **started;
  QmpSession session(process, deadline, timeout);
  Expected<Result> result = converse(session);
  if (result) return result;
  process.Kill();  // no-op when the session already stopped it; collects stderr
  std::string message = emulator + ": " + what_prefix + result.error();
  std::string stderr_line = process.StderrLine();
  if (!stderr_line.empty()) message += "; stderr: " + stderr_line;
  return Status::Error(message);
}

}  // namespace

Expected<Guest> ProbeQemuEmulator(const std::string& emulator, const std::string& exec_path,
                                  const QemuOptions& options, const Cancellation* cancel) {
  size_t max_machines = static_cast<size_t>(options.max_machines);
  // KVM if it comes up, else TCG.
  auto guest = RunQmpSession<Guest>(
      emulator, exec_path, options, cancel, "kvm:tcg", "",
      [&](QmpSession& session) { return Converse(session, emulator, max_machines); });
  if (!guest || guest->domains.back().type != "kvm") return guest;
  // As libvirt: when the first probe ran under KVM, a second one under TCG alone says
  // what the qemu virt type offers. Its failure fails the probe (nothing half-known
  // is cached).
  auto tcg = RunQmpSession<GuestCpuModes>(emulator, exec_path, options, cancel, "tcg",
                                          "TCG probe: ", [&](QmpSession& session) {
                                            return ConverseTcg(session, guest->arch, max_machines);
                                          });
  if (!tcg) return tcg.status();
  if (tcg->models_probed || tcg->expansion) guest->cpu_modes.push_back(std::move(*tcg));
  return guest;
}

std::vector<QemuEmulatorResult> ProbeQemuEmulators(const QemuOptions& options,
                                                   const HostPaths& paths,
                                                   const QemuHostFacts& facts,
                                                   const Cancellation* cancel,
                                                   QemuProbeMemory* memory) {
  std::vector<Candidate> candidates = FindEmulators(options, paths, memory);
  std::vector<QemuEmulatorResult> results(candidates.size());
  std::vector<size_t> pending;  // what memory does not answer
  for (size_t i = 0; i < candidates.size(); ++i) {
    if (auto remembered = RememberedCandidate(candidates[i], facts, memory)) {
      results[i] = std::move(*remembered);
    } else {
      pending.push_back(i);
    }
  }
  size_t workers = static_cast<size_t>(std::clamp(options.parallel_probes, 1, 64));
  workers = std::min(workers, pending.size());
  std::atomic<size_t> next{0};
  ReadBudget* budget = ReadBudget::Current();  // the refresh's, shared by every worker
  auto work = [&] {
    ReadBudget::Join join(budget);
    for (size_t k = next++; k < pending.size(); k = next++) {
      results[pending[k]] = ProbeCandidate(candidates[pending[k]], options, facts, cancel, memory);
    }
  };
  std::vector<std::thread> threads;
  for (size_t i = 1; i < workers; ++i) {
    try {
      threads.emplace_back(work);
    } catch (const std::system_error&) {
      break;  // no more threads to be had: fewer probes at once
    }
  }
  work();  // this thread is a worker too
  for (std::thread& thread : threads) thread.join();
  if (memory != nullptr) {
    std::set<std::string> emulators, dirs;
    for (const Candidate& candidate : candidates) emulators.insert(candidate.emulator);
    for (const std::string& dir : options.emulator_dirs) dirs.insert(JoinPath(paths.rootfs, dir));
    memory->Retain(emulators, dirs);
  }
  return results;
}

QemuHostFacts CurrentQemuHostFacts(const HostPaths& paths, const HostCapabilities& caps) {
  QemuHostFacts facts;
  facts.kvm_usable = caps.kvm.usable();
  if (auto release = KernelRelease(paths)) {
    facts.kernel_release = *release;
  }
  if (caps.cpu.microcode) facts.microcode = FormatUint(*caps.cpu.microcode, true);
  if (caps.cpu.signature) {
    const CpuSignature& signature = *caps.cpu.signature;
    facts.cpu_signature = "family=" + FormatUint(signature.family, false) +
                          ",model=" + FormatUint(signature.model, false) +
                          ",stepping=" + FormatUint(signature.stepping, false);
  }
  if (caps.kvm.nested) facts.nested = *caps.kvm.nested ? "yes" : "no";
  if (auto sev = ReadValue(paths.Sys("module/kvm_amd/parameters/sev"))) facts.sev = *sev;
  return facts;
}

}  // namespace virtcaps
