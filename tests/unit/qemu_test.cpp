#include "virtcaps/qemu.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdio>
#include <functional>
#include <map>
#include <set>
#include <thread>

#include "test_support.h"
#include "virtcaps/collector.h"
#include "virtcaps/files.h"
#include "virtcaps/hypervisors.h"
#include "virtcaps/probes.h"
#include "virtcaps/strings.h"
#include "virtcaps/xml.h"

namespace virtcaps {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

const char kRealX86_64[] = "/usr/bin/qemu-system-x86_64";
const char kRealI386[] = "/usr/bin/qemu-system-i386";  // Debian: a shell wrapper

std::string Fixture(const std::string& name) {
  return testing::SourceDir() + "/tests/fixtures/emulators/" + name;
}

// Copies a fake emulator script to `path` (made executable); returns `path`.
std::string InstallFake(const std::string& fixture, const std::string& path) {
  auto script = ReadFile(Fixture(fixture));
  EXPECT_TRUE(script) << script.error();
  testing::WriteTestFile(path, script ? *script : "");
  EXPECT_EQ(::chmod(path.c_str(), 0755), 0);
  return path;
}

// How many times the fake-qmp script at `path` has been started.
size_t Runs(const std::string& path) {
  auto text = ReadFile(path + ".runs");
  if (!text) return 0;
  size_t count = 0;
  for (char c : *text) count += c == '\n';
  return count;
}

std::string Describe(const GuestMachine& m) {
  return m.name + (m.canonical.empty() ? "" : "=>" + m.canonical) +
         " max=" + (m.max_cpus ? std::to_string(*m.max_cpus) : "-") +
         (m.deprecated ? " deprecated" : "") + (m.is_default ? " default" : "");
}

std::vector<std::string> Describe(const std::vector<GuestMachine>& machines) {
  std::vector<std::string> out;
  for (const GuestMachine& m : machines) out.push_back(Describe(m));
  return out;
}

std::vector<std::string> DomainTypes(const Guest& guest) {
  std::vector<std::string> out;
  for (const GuestDomain& d : guest.domains) out.push_back(d.type);
  return out;
}

std::vector<std::string> Features(const Guest& guest) {
  std::vector<std::string> out;
  for (const GuestFeature& f : guest.features) {
    std::string text = f.name;
    if (f.default_on) text += *f.default_on ? " default=on" : " default=off";
    if (f.toggle) text += *f.toggle ? " toggle=yes" : " toggle=no";
    out.push_back(text);
  }
  return out;
}

// Everything in a Guest, for equality checks.
std::string Describe(const Guest& g) {
  std::string out = g.hypervisor + "|" + g.os_type + "|" + g.arch + "|" +
                    std::to_string(g.wordsize) + "|" + g.emulator + "|" + g.loader + "|";
  for (const std::string& m : Describe(g.machines)) out += m + ";";
  for (const GuestDomain& d : g.domains) {
    out += "|domain " + d.type + " " + d.emulator;
    for (const std::string& m : Describe(d.machines)) out += m + ";";
  }
  for (const std::string& f : Features(g)) out += "|" + f;
  return out;
}

const std::vector<std::string> kX86Features = {"acpi default=on toggle=yes",
                                               "apic default=on toggle=no", "cpuselection",
                                               "deviceboot", "disksnapshot default=on toggle=no"};

// The first line a command prints (tests only run fixed, trusted commands).
std::string CommandOutput(const std::string& command) {
  std::string output;
  if (FILE* pipe = ::popen(command.c_str(), "r")) {
    char line[256];
    if (std::fgets(line, sizeof(line), pipe)) output = line;
    ::pclose(pipe);
  }
  return output;
}

QemuOptions OptionsFor(std::vector<std::string> emulators, std::string cache_dir = "") {
  QemuOptions options;
  options.emulator_dirs = {};
  options.emulators = std::move(emulators);
  options.probe_timeout = milliseconds(20000);
  options.parallel_probes = 2;
  options.cache_dir = std::move(cache_dir);
  return options;
}

QemuHostFacts SomeFacts() {
  QemuHostFacts facts;
  facts.kvm_usable = true;
  facts.kernel_release = "6.1.0-18-amd64";
  facts.microcode = "0xde";
  facts.cpu_signature = "family=6,model=85,stepping=7";
  facts.nested = "yes";
  facts.sev = "";
  return facts;
}

std::vector<QemuEmulatorResult> Probe(const QemuOptions& options,
                                      const QemuHostFacts& facts = SomeFacts()) {
  HostPaths paths;  // rootfs "/"
  return ProbeQemuEmulators(options, paths, facts);
}

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// ---------------------------------------------------------------------------
// Target names

TEST(QemuTargetArchTest, MapsQemuTargetsToLibvirtArches) {
  struct Case {
    const char* target;
    const char* arch;
    unsigned wordsize;
  };
  for (const Case& c : std::vector<Case>{{"i386", "i686", 32},
                                         {"x86_64", "x86_64", 64},
                                         {"aarch64", "aarch64", 64},
                                         {"arm", "armv7l", 32},
                                         {"ppc", "ppc", 32},
                                         {"ppc64", "ppc64", 64},
                                         {"ppc64le", "ppc64le", 64},
                                         {"s390x", "s390x", 64},
                                         {"riscv32", "riscv32", 32},
                                         {"riscv64", "riscv64", 64},
                                         {"mips64el", "mips64el", 64},
                                         {"mipsel", "mipsel", 32},
                                         {"sparc", "sparc", 32},
                                         {"sparc64", "sparc64", 64},
                                         {"alpha", "alpha", 64},
                                         {"or1k", "openrisc", 32},
                                         {"hppa", "parisc", 32},
                                         {"xtensaeb", "xtensaeb", 32},
                                         {"cris", "cris", 32}}) {
    auto info = QemuTargetArch(c.target);
    ASSERT_TRUE(info.has_value()) << c.target;
    EXPECT_EQ(info->arch, c.arch) << c.target;
    EXPECT_EQ(info->wordsize, c.wordsize) << c.target;
  }
  for (const char* unknown : {"x86_64-microvm", "", "i686", "loongarch64", "avr", "tricore"}) {
    EXPECT_FALSE(QemuTargetArch(unknown).has_value()) << unknown;
  }
}

// Every arch we can report is one libvirt's schema accepts (its archnames list).
TEST(QemuTargetArchTest, EveryMappedArchIsInLibvirtsSchema) {
  auto schema = ReadFile("/usr/share/libvirt/schemas/basictypes.rng");
  ASSERT_TRUE(schema) << schema.error() << " (install libvirt0)";
  auto document = ParseXml(*schema);
  ASSERT_TRUE(document) << document.error();
  std::set<std::string> archnames;
  for (const XmlElement* define : document->ChildrenNamed("define")) {
    const std::string* name = define->Attribute("name");
    if (name == nullptr || *name != "archnames") continue;
    for (const XmlElement* value : define->Child("choice")->ChildrenNamed("value")) {
      archnames.insert(value->text);
    }
  }
  ASSERT_GT(archnames.size(), 20u);
  // QEMU 7.2/8.x system emulator targets.
  size_t mapped = 0;
  for (const char* target :
       {"aarch64",     "alpha",  "arm",        "avr",          "cris",  "hppa",    "i386",
        "loongarch64", "m68k",   "microblaze", "microblazeel", "mips",  "mips64",  "mips64el",
        "mipsel",      "nios2",  "or1k",       "ppc",          "ppc64", "riscv32", "riscv64",
        "rx",          "s390x",  "sh4",        "sh4eb",        "sparc", "sparc64", "tricore",
        "x86_64",      "xtensa", "xtensaeb"}) {
    auto info = QemuTargetArch(target);
    if (!info) continue;
    ++mapped;
    EXPECT_EQ(archnames.count(info->arch), 1u) << target << " -> " << info->arch;
  }
  EXPECT_EQ(mapped, 26u);
}

// ---------------------------------------------------------------------------
// The real Debian emulators

struct HelpMachine {
  std::string canonical;
  bool is_default = false;
  bool deprecated = false;
};

// The test's own reading of `<binary> -machine help`: "name  description [markers]".
std::map<std::string, HelpMachine> MachineHelp(const std::string& binary) {
  testing::ProcessResult help = testing::RunProcess({binary, "-machine", "help"});
  EXPECT_EQ(help.exit_code, 0) << help.err;
  std::map<std::string, HelpMachine> machines;
  std::vector<std::string_view> lines = Split(help.out, '\n');
  for (size_t i = 1; i < lines.size(); ++i) {  // line 0: "Supported machines are:"
    std::string_view line = lines[i];
    if (Trim(line).empty()) continue;
    std::string name(SplitWhitespace(line).front());
    HelpMachine machine;
    size_t alias = line.find("(alias of ");
    if (alias != std::string_view::npos) {
      size_t start = alias + 10;
      machine.canonical = std::string(line.substr(start, line.find(')', start) - start));
    }
    machine.is_default = line.find("(default)") != std::string_view::npos;
    machine.deprecated = line.find("(deprecated)") != std::string_view::npos;
    machines[name] = machine;
  }
  return machines;
}

// Checks the Guest's machines against `-machine help`, and two maxCpus values against
// the limit QEMU itself enforces for `-smp`.
void ExpectMachinesMatchHelp(const Guest& guest, const std::string& binary) {
  std::map<std::string, HelpMachine> help = MachineHelp(binary);
  ASSERT_EQ(help.count("none"), 1u);
  help.erase("none");  // libvirt leaves it out
  ASSERT_GT(help.size(), 10u);

  std::map<std::string, const GuestMachine*> ours;
  for (const GuestMachine& m : guest.machines) {
    EXPECT_TRUE(ours.emplace(m.name, &m).second) << "listed twice: " << m.name;
  }
  std::set<std::string> help_names, our_names;
  for (const auto& entry : help) help_names.insert(entry.first);
  for (const auto& entry : ours) our_names.insert(entry.first);
  EXPECT_EQ(our_names, help_names);

  for (const auto& [name, expected] : help) {
    auto found = ours.find(name);
    if (found == ours.end()) continue;
    const GuestMachine& m = *found->second;
    EXPECT_EQ(m.canonical, expected.canonical) << name;
    EXPECT_EQ(m.is_default, expected.is_default) << name;
    // -machine help marks deprecation on the machine's own line only.
    auto real = expected.canonical.empty() ? help.find(name) : help.find(expected.canonical);
    ASSERT_NE(real, help.end()) << name;
    EXPECT_EQ(m.deprecated, real->second.deprecated) << name;
  }

  // Order: the default machine first, then its alias entry; the rest keep QEMU's
  // query-machines order (QemuFakeTest checks that order exactly).
  ASSERT_GE(guest.machines.size(), 2u);
  EXPECT_TRUE(guest.machines[0].is_default);
  EXPECT_TRUE(guest.machines[0].canonical.empty());
  EXPECT_EQ(guest.machines[1].canonical, guest.machines[0].name);

  // The whole order, against libvirt 9.0's own <guest> for this Debian 12 QEMU 7.2
  // (tests/fixtures/emulators/README.md): default first, then QEMU's order.
  std::string version = CommandOutput(std::string(kRealX86_64) + " --version");
  if (version.find("version 7.2.") != std::string::npos) {
    auto libvirt =
        ReadFile(testing::SourceDir() + "/tests/fixtures/emulators/libvirt-9.0-qemu-7.2-" +
                 guest.arch + "-machines.txt");
    ASSERT_TRUE(libvirt) << libvirt.error();
    std::vector<std::string> libvirt_order, our_order;
    for (std::string_view line : Split(*libvirt, '\n'))
      if (!line.empty()) libvirt_order.emplace_back(line);
    for (const GuestMachine& m : guest.machines) our_order.push_back(m.name);
    EXPECT_EQ(our_order, libvirt_order);
  } else {
    ADD_FAILURE() << "the libvirt order on file is for QEMU 7.2 (Debian 12), not " << version;
  }

  // maxCpus: QEMU refuses one CPU more than the machine's maximum and names it.
  std::vector<const GuestMachine*> spot = {&guest.machines[0]};
  if (ours.count("q35")) spot.push_back(ours["q35"]);
  for (const GuestMachine* m : spot) {
    ASSERT_TRUE(m->max_cpus.has_value()) << m->name;
    const std::string& real = m->canonical.empty() ? m->name : m->canonical;
    testing::ProcessResult run = testing::RunProcess(
        {binary, "-machine", m->name + ",accel=tcg", "-smp", std::to_string(*m->max_cpus + 1), "-S",
         "-no-user-config", "-nodefaults", "-display", "none"},
        30);
    EXPECT_NE(run.exit_code, 0) << m->name;
    EXPECT_TRUE(
        Contains(run.err, "supported by machine '" + real + "' is " + std::to_string(*m->max_cpus)))
        << m->name << ": " << run.err;
  }
}

// Whether QEMU can use KVM here, decided independently of the QMP code under test:
// QEMU's accel=kvm comes up when /dev/kvm opens read-write and KVM_CREATE_VM works,
// which is what the project's ioctl probe checks (0.5 ms, no emulator involved).
std::vector<std::string> ExpectedDomains() {
  KvmIoctlResult kvm = MakeIoctlKvmProbe()->Probe("/dev/kvm");
  if (kvm.opened && kvm.vm_creatable.value_or(false)) return {"qemu", "kvm"};
  return {"qemu"};
}

class QemuRealEmulatorTest : public ::testing::Test {
 protected:
  // Both Debian emulators, probed once for the suite (cold, with a fresh cache).
  static void SetUpTestSuite() {
    cache_dir_ = new std::string(testing::TempDir() + "/cache");
    auto start = Clock::now();
    results_ = new std::vector<QemuEmulatorResult>(
        Probe(OptionsFor({kRealX86_64, kRealI386}, *cache_dir_)));
    cold_seconds_ = std::chrono::duration<double>(Clock::now() - start).count();
  }
  static void TearDownTestSuite() {
    delete results_;
    delete cache_dir_;
  }
  void SetUp() override {
    ASSERT_EQ(::access(kRealX86_64, X_OK), 0)
        << kRealX86_64 << " is missing: scripts/install-deps.sh test installs qemu-system-x86";
    ASSERT_EQ(results_->size(), 2u);
  }
  // Results are in path order: i386 before x86_64.
  static const QemuEmulatorResult& I386() { return (*results_)[0]; }
  static const QemuEmulatorResult& X86_64() { return (*results_)[1]; }

  static std::string* cache_dir_;
  static std::vector<QemuEmulatorResult>* results_;
  static double cold_seconds_;
};
std::string* QemuRealEmulatorTest::cache_dir_ = nullptr;
std::vector<QemuEmulatorResult>* QemuRealEmulatorTest::results_ = nullptr;
double QemuRealEmulatorTest::cold_seconds_ = 0;

TEST_F(QemuRealEmulatorTest, X86_64MachinesMatchMachineHelpAndKvmMatchesTheHost) {
  const QemuEmulatorResult& result = X86_64();
  ASSERT_TRUE(result.status.ok()) << result.status.message();
  EXPECT_EQ(result.emulator, kRealX86_64);
  EXPECT_FALSE(result.from_cache);
  const Guest& guest = result.guest;
  EXPECT_EQ(guest.hypervisor, "qemu");
  EXPECT_EQ(guest.os_type, "hvm");
  EXPECT_EQ(guest.arch, "x86_64");
  EXPECT_EQ(guest.wordsize, 64u);
  EXPECT_EQ(guest.emulator, kRealX86_64);
  EXPECT_EQ(Features(guest), kX86Features);
  EXPECT_EQ(DomainTypes(guest), ExpectedDomains());
  ExpectMachinesMatchHelp(guest, kRealX86_64);
}

TEST_F(QemuRealEmulatorTest, DebianI386WrapperGivesAnI686GuestWithPae) {
  const QemuEmulatorResult& result = I386();
  ASSERT_TRUE(result.status.ok()) << result.status.message();
  EXPECT_EQ(result.emulator, kRealI386);
  const Guest& guest = result.guest;
  EXPECT_EQ(guest.arch, "i686");
  EXPECT_EQ(guest.wordsize, 32u);
  EXPECT_EQ(guest.emulator, kRealI386);
  std::vector<std::string> features = {"pae", "nonpae"};
  features.insert(features.end(), kX86Features.begin(), kX86Features.end());
  EXPECT_EQ(Features(guest), features);
  EXPECT_EQ(DomainTypes(guest), ExpectedDomains());
  ExpectMachinesMatchHelp(guest, kRealI386);
}

TEST_F(QemuRealEmulatorTest, SecondCallIsAnsweredFromTheCache) {
  ASSERT_TRUE(X86_64().status.ok() && I386().status.ok());
  auto start = Clock::now();
  auto warm = Probe(OptionsFor({kRealX86_64, kRealI386}, *cache_dir_));
  double warm_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  ASSERT_EQ(warm.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    ASSERT_TRUE(warm[i].status.ok()) << warm[i].status.message();
    EXPECT_TRUE(warm[i].from_cache) << warm[i].emulator;
    EXPECT_EQ(Describe(warm[i].guest), Describe((*results_)[i].guest));
  }
  std::printf(
      "[ timing   ] cold probe of %s and %s: %.3f s (%.3f s and %.3f s each); "
      "warm (cached): %.4f s\n",
      kRealX86_64, kRealI386, cold_seconds_, X86_64().seconds, I386().seconds, warm_seconds);
  RecordProperty("cold_seconds", std::to_string(cold_seconds_));
  RecordProperty("warm_seconds", std::to_string(warm_seconds));
}

// ---------------------------------------------------------------------------
// Fake emulators: discovery, the Guest, the cache, errors

class QemuFakeTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing::TempDir(); }
  std::string dir_;
};

TEST_F(QemuFakeTest, BuildsTheGuestLikeLibvirt) {
  std::string fake = InstallFake("fake-qmp", dir_ + "/qemu-system-x86_64");
  auto results = Probe(OptionsFor({fake}));
  ASSERT_EQ(results.size(), 1u);
  ASSERT_TRUE(results[0].status.ok()) << results[0].status.message();
  const Guest& guest = results[0].guest;
  EXPECT_EQ(guest.arch, "x86_64");
  EXPECT_EQ(guest.wordsize, 64u);
  EXPECT_EQ(guest.emulator, fake);
  // Default first with its alias, then QEMU's order (zeta, alpha, beta as the fake
  // lists them), as libvirt keeps it; each alias after its machine; no none.
  EXPECT_EQ(Describe(guest.machines),
            (std::vector<std::string>{"mid-7.2 max=255 default", "std=>mid-7.2 max=255",
                                      "zeta-2.0 max=8 deprecated", "alpha-1.0 max=4",
                                      "alpha=>alpha-1.0 max=4", "beta-\xC3\xA9 max=-"}));
  // query-kvm said present but not enabled (after an event line that was skipped).
  EXPECT_EQ(DomainTypes(guest), std::vector<std::string>{"qemu"});
  EXPECT_EQ(Features(guest), kX86Features);
  EXPECT_EQ(Runs(fake), 1u);
}

// libvirt's virQEMUCapsInitGuestFromBinary: ACPI for x86 and aarch64 only, APIC for
// x86 only; other arches get the common features.
TEST_F(QemuFakeTest, GuestFeaturesFollowTheArchAsLibvirtDoes) {
  std::string aarch64 = InstallFake("fake-qmp", dir_ + "/qemu-system-aarch64");
  std::string ppc64 = InstallFake("fake-qmp", dir_ + "/qemu-system-ppc64");
  auto results = Probe(OptionsFor({aarch64, ppc64}));
  ASSERT_EQ(results.size(), 2u);
  for (const auto& result : results) ASSERT_TRUE(result.status.ok()) << result.status.message();
  const Guest& arm = results[0].guest.arch == "aarch64" ? results[0].guest : results[1].guest;
  const Guest& power = results[0].guest.arch == "aarch64" ? results[1].guest : results[0].guest;
  EXPECT_EQ(arm.arch, "aarch64");
  EXPECT_EQ(Features(arm),
            (std::vector<std::string>{"acpi default=on toggle=yes", "cpuselection", "deviceboot",
                                      "disksnapshot default=on toggle=no"}));
  EXPECT_EQ(power.arch, "ppc64");
  EXPECT_EQ(Features(power), (std::vector<std::string>{"cpuselection", "deviceboot",
                                                       "disksnapshot default=on toggle=no"}));
}

std::vector<std::string> Arches(const std::vector<Guest>& guests) {
  std::vector<std::string> arches;
  for (const Guest& guest : guests) arches.push_back(guest.arch + " " + guest.emulator);
  return arches;
}

std::vector<Guest> Guests(const std::vector<QemuEmulatorResult>& results) {
  std::vector<Guest> guests;
  for (const QemuEmulatorResult& result : results) {
    EXPECT_TRUE(result.status.ok()) << result.status.message();
    if (result.status.ok()) guests.push_back(result.guest);
  }
  return guests;
}

// virQEMUCapsFindBinaryForArch: on an x86_64 host a lone qemu-system-x86_64 also runs
// i686 guests (with pae/nonpae); qemu-system-ppc64 runs ppc64le guests on any host.
TEST_F(QemuFakeTest, DerivesI686AndPpc64leGuestsAsLibvirtDoes) {
  std::string x86 = InstallFake("fake-qmp", dir_ + "/qemu-system-x86_64");
  std::string ppc = InstallFake("fake-qmp", dir_ + "/qemu-system-ppc64");
  std::vector<Guest> guests = LibvirtQemuGuests(Guests(Probe(OptionsFor({x86, ppc}))), "x86_64");
  EXPECT_EQ(Arches(guests), (std::vector<std::string>{"ppc64 " + ppc, "ppc64le " + ppc,
                                                      "x86_64 " + x86, "i686 " + x86}));
  EXPECT_EQ(guests[3].wordsize, 32u);
  EXPECT_EQ(Features(guests[3]).front(), "pae");
  // Not on another host arch: i686 there needs its own qemu-system-i386.
  EXPECT_EQ(LibvirtQemuGuests(Guests(Probe(OptionsFor({x86}))), "aarch64").size(), 1u);
}

// On an aarch64 host armv7l guests use qemu-system-aarch64 (KVM), not qemu-system-arm.
TEST_F(QemuFakeTest, Armv7lGuestsComeFromTheAarch64EmulatorOnAarch64Hosts) {
  std::string aarch64 = InstallFake("fake-qmp", dir_ + "/qemu-system-aarch64");
  std::string arm = InstallFake("fake-qmp", dir_ + "/qemu-system-arm");
  auto probed = Guests(Probe(OptionsFor({aarch64, arm})));
  EXPECT_EQ(Arches(LibvirtQemuGuests(probed, "aarch64")),
            (std::vector<std::string>{"aarch64 " + aarch64, "armv7l " + aarch64}));
  // On an x86_64 host each binary keeps its own arch.
  EXPECT_EQ(Arches(LibvirtQemuGuests(probed, "x86_64")),
            (std::vector<std::string>{"aarch64 " + aarch64, "armv7l " + arm}));
}

// RHEL, CentOS, Rocky: no qemu-system-* at all, the host emulator is /usr/libexec/qemu-kvm.
TEST_F(QemuFakeTest, FindsQemuKvmInLibexecWhenNoNativeEmulatorExists) {
  std::string root = dir_ + "/root";
  testing::WriteTestFile(root + "/proc/sys/kernel/arch", "x86_64\n");
  InstallFake("fake-qmp", root + "/usr/libexec/qemu-kvm");
  QemuOptions options = OptionsFor({});
  options.emulator_dirs = {"/usr/bin"};
  HostPaths paths;
  paths.rootfs = root;
  auto results = ProbeQemuEmulators(options, paths, SomeFacts());
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].emulator, "/usr/libexec/qemu-kvm");
  EXPECT_EQ(
      Arches(LibvirtQemuGuests(Guests(results), "x86_64")),
      (std::vector<std::string>{"x86_64 /usr/libexec/qemu-kvm", "i686 /usr/libexec/qemu-kvm"}));
  // With a native qemu-system-x86_64 in $PATH, qemu-kvm is not probed (libvirt never
  // reaches its fallback).
  InstallFake("fake-qmp", root + "/usr/bin/qemu-system-x86_64");
  results = ProbeQemuEmulators(options, paths, SomeFacts());
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].emulator, "/usr/bin/qemu-system-x86_64");
}

TEST_F(QemuFakeTest, FindsEmulatorsUnderRootfsSkipsOthersAndDeduplicates) {
  std::string root = dir_ + "/root";
  InstallFake("fake-qmp", root + "/usr/bin/qemu-system-x86_64");
  InstallFake("fake-qmp", root + "/usr/bin/qemu-system-aarch64");
  InstallFake("fake-qmp", root + "/usr/bin/qemu-system-x86_64-microvm");  // not a target
  InstallFake("fake-qmp", root + "/usr/bin/qemu-system-sparc64");
  ASSERT_EQ(::chmod((root + "/usr/bin/qemu-system-sparc64").c_str(), 0644), 0);  // not executable
  InstallFake("fake-qmp", root + "/usr/bin/qemu-img");
  InstallFake("fake-qmp", root + "/opt/emu/my-emulator");
  ::mkdir((root + "/usr/local").c_str(), 0755);
  ::mkdir((root + "/usr/local/bin").c_str(), 0755);
  // Another name of the same binary, the way packages link them.
  ASSERT_EQ(::symlink("../../bin/qemu-system-x86_64",
                      (root + "/usr/local/bin/qemu-system-x86_64").c_str()),
            0);

  QemuOptions options = OptionsFor({"/usr/bin/qemu-system-x86_64", "/opt/emu/my-emulator",
                                    "/opt/emu/missing", "/usr/bin/qemu-system-sparc64"});
  options.emulator_dirs = {"/usr/local/bin", "/usr/bin", "/no/such/dir"};
  HostPaths paths;
  paths.rootfs = root;
  auto results = ProbeQemuEmulators(options, paths, SomeFacts());

  std::vector<std::string> emulators;
  for (const auto& r : results) emulators.push_back(r.emulator);
  EXPECT_EQ(emulators,
            (std::vector<std::string>{
                "/opt/emu/missing", "/opt/emu/my-emulator", "/usr/bin/qemu-system-aarch64",
                "/usr/bin/qemu-system-sparc64", "/usr/bin/qemu-system-x86_64"}));
  ASSERT_EQ(results.size(), 5u);
  EXPECT_FALSE(results[0].status.ok());
  EXPECT_EQ(results[0].status.message(), "/opt/emu/missing: not found");
  ASSERT_TRUE(results[1].status.ok()) << results[1].status.message();
  EXPECT_EQ(results[1].guest.emulator, "/opt/emu/my-emulator");  // as the host sees it
  EXPECT_EQ(results[1].guest.arch, "x86_64");  // any name: the arch is query-target's
  EXPECT_EQ(results[2].guest.arch, "aarch64");
  EXPECT_EQ(results[3].status.message(), "/usr/bin/qemu-system-sparc64: not an executable file");
  EXPECT_EQ(results[4].guest.emulator, "/usr/bin/qemu-system-x86_64");
  EXPECT_EQ(Runs(root + "/usr/bin/qemu-system-x86_64"), 1u);  // once, not per name
  EXPECT_EQ(Runs(root + "/usr/bin/qemu-system-x86_64-microvm"), 0u);
  EXPECT_EQ(Runs(root + "/usr/bin/qemu-img"), 0u);
}

TEST_F(QemuFakeTest, NothingFoundIsAnEmptyResult) {
  QemuOptions options = OptionsFor({});
  options.emulator_dirs = {"/usr/bin"};
  HostPaths paths;
  paths.rootfs = dir_;  // an empty tree
  EXPECT_TRUE(ProbeQemuEmulators(options, paths, SomeFacts()).empty());
}

TEST_F(QemuFakeTest, SecondProbeWithTheSameKeySpawnsNothing) {
  std::string fake = InstallFake("fake-qmp", dir_ + "/qemu-system-x86_64");
  std::string cache = dir_ + "/var/cache/virtcaps";  // created on demand
  auto first = Probe(OptionsFor({fake}, cache));
  ASSERT_TRUE(first[0].status.ok()) << first[0].status.message();
  EXPECT_FALSE(first[0].from_cache);
  EXPECT_EQ(Runs(fake), 1u);
  std::string file = QemuCachePath(cache, fake);
  EXPECT_TRUE(Contains(file, "/qemu-")) << file;
  ASSERT_TRUE(PathExists(file));

  auto second = Probe(OptionsFor({fake}, cache));
  ASSERT_TRUE(second[0].status.ok()) << second[0].status.message();
  EXPECT_TRUE(second[0].from_cache);
  EXPECT_EQ(Runs(fake), 1u);  // nothing was spawned
  EXPECT_EQ(Describe(second[0].guest), Describe(first[0].guest));
}

TEST_F(QemuFakeTest, ChangedHostFactsReprobe) {
  std::string fake = InstallFake("fake-qmp", dir_ + "/qemu-system-x86_64");
  std::string cache = dir_ + "/cache";
  QemuHostFacts facts = SomeFacts();
  ASSERT_TRUE(Probe(OptionsFor({fake}, cache), facts)[0].status.ok());
  size_t runs = Runs(fake);
  ASSERT_EQ(runs, 1u);
  std::vector<void (*)(QemuHostFacts&)> changes = {
      [](QemuHostFacts& f) { f.kvm_usable = !f.kvm_usable; },
      [](QemuHostFacts& f) { f.kernel_release += "+1"; },
      [](QemuHostFacts& f) { f.microcode = "0xdf"; },
      [](QemuHostFacts& f) { f.cpu_signature = "family=6,model=85,stepping=8"; },
      [](QemuHostFacts& f) { f.nested = "no"; },
      [](QemuHostFacts& f) { f.sev = "Y"; },
  };
  for (size_t i = 0; i < changes.size(); ++i) {
    changes[i](facts);
    auto changed = Probe(OptionsFor({fake}, cache), facts);
    ASSERT_TRUE(changed[0].status.ok());
    EXPECT_FALSE(changed[0].from_cache) << "change " << i;
    EXPECT_EQ(Runs(fake), ++runs) << "change " << i;
    // ...and the new facts are cached in turn.
    EXPECT_TRUE(Probe(OptionsFor({fake}, cache), facts)[0].from_cache) << "change " << i;
    EXPECT_EQ(Runs(fake), runs);
  }
}

TEST_F(QemuFakeTest, TouchedBinaryReprobes) {
  std::string fake = InstallFake("fake-qmp", dir_ + "/qemu-system-x86_64");
  std::string cache = dir_ + "/cache";
  ASSERT_TRUE(Probe(OptionsFor({fake}, cache))[0].status.ok());
  ASSERT_TRUE(Probe(OptionsFor({fake}, cache))[0].from_cache);
  ASSERT_EQ(Runs(fake), 1u);
  struct timespec times[2] = {{1000000000, 5}, {1000000000, 5}};  // a new atime and mtime
  ASSERT_EQ(::utimensat(AT_FDCWD, fake.c_str(), times, 0), 0);
  auto touched = Probe(OptionsFor({fake}, cache));
  ASSERT_TRUE(touched[0].status.ok());
  EXPECT_FALSE(touched[0].from_cache);
  EXPECT_EQ(Runs(fake), 2u);
}

TEST_F(QemuFakeTest, CorruptTruncatedOrForeignCacheFilesAreIgnoredAndRebuilt) {
  std::string fake = InstallFake("fake-qmp", dir_ + "/qemu-system-x86_64");
  std::string cache = dir_ + "/cache";
  auto first = Probe(OptionsFor({fake}, cache));
  ASSERT_TRUE(first[0].status.ok());
  std::string file = QemuCachePath(cache, fake);
  auto good = ReadFile(file);
  ASSERT_TRUE(good);
  ASSERT_TRUE(Contains(*good, "version='5'"));

  auto replace = [](std::string text, const std::string& from, const std::string& to) {
    size_t at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    if (at != std::string::npos) text.replace(at, from.size(), to);
    return text;
  };
  std::vector<std::pair<std::string, std::string>> bad = {
      {"truncated", good->substr(0, good->size() / 2)},
      {"empty", ""},
      {"binary junk", std::string("\x00\xff\x13garbage", 10)},
      {"foreign document", "<capabilities><host/></capabilities>\n"},
      {"other version", replace(*good, "version='5'", "version='999'")},
      {"other emulator's key", replace(*good, "emulator='" + fake + "'", "emulator='/x'")},
      {"damaged guest", replace(*good, "wordsize='64'", "wordsize='sixty-four'")},
      {"no guest", replace(replace(*good, "<guest ", "<other "), "</guest>", "</other>")},
  };
  size_t runs = Runs(fake);
  for (const auto& [what, content] : bad) {
    testing::WriteTestFile(file, content);
    auto result = Probe(OptionsFor({fake}, cache));
    ASSERT_TRUE(result[0].status.ok()) << what << ": " << result[0].status.message();
    EXPECT_FALSE(result[0].from_cache) << what;
    EXPECT_EQ(Runs(fake), ++runs) << what;
    EXPECT_EQ(Describe(result[0].guest), Describe(first[0].guest)) << what;
    // Rebuilt: the next call is a hit again.
    EXPECT_TRUE(Probe(OptionsFor({fake}, cache))[0].from_cache) << what;
    EXPECT_EQ(Runs(fake), runs) << what;
  }
}

// Issue 15.2: whatever is planted where the cache file goes (a symlink to a root-owned
// file, a FIFO, a file someone else owns, a valid-looking entry) is refused, never
// followed or read, and the probe rebuilds a real entry in its place.
TEST_F(QemuFakeTest, PlantedCacheFilesAreRefusedAndRebuilt) {
  std::string fake = InstallFake("fake-qmp", dir_ + "/qemu-system-x86_64");
  std::string cache = dir_ + "/cache";
  ASSERT_TRUE(Probe(OptionsFor({fake}, cache))[0].status.ok());
  std::string file = QemuCachePath(cache, fake);
  std::string good = *ReadFile(file);
  std::string victim = dir_ + "/victim";  // stands for /etc/shadow
  size_t runs = Runs(fake);

  struct Plant {
    const char* what;
    std::function<void()> plant;
  };
  std::vector<Plant> plants = {
      {"symlink to a valid entry elsewhere",
       [&] {
         testing::WriteTestFile(victim, good);
         ::unlink(file.c_str());
         ASSERT_EQ(::symlink(victim.c_str(), file.c_str()), 0);
       }},
      {"FIFO",
       [&] {
         ::unlink(file.c_str());
         ASSERT_EQ(::mkfifo(file.c_str(), 0644), 0);
       }},
      {"file owned by nobody",
       [&] {
         testing::WriteTestFile(file, good);
         ASSERT_EQ(::chown(file.c_str(), 65534, 65534), 0);
       }},
      {"group-writable file", [&] { ASSERT_EQ(::chmod(file.c_str(), 0664), 0); }},
  };
  for (const Plant& plant : plants) {
    plant.plant();
    auto result = Probe(OptionsFor({fake}, cache));
    ASSERT_TRUE(result[0].status.ok()) << plant.what << ": " << result[0].status.message();
    EXPECT_FALSE(result[0].from_cache) << plant.what;
    EXPECT_EQ(Runs(fake), ++runs) << plant.what;
    struct stat st;
    ASSERT_EQ(::lstat(file.c_str(), &st), 0) << plant.what;
    EXPECT_TRUE(S_ISREG(st.st_mode)) << plant.what;
    EXPECT_EQ(st.st_uid, ::geteuid()) << plant.what;
    EXPECT_EQ(st.st_mode & 0777, 0644u) << plant.what;
    EXPECT_TRUE(Probe(OptionsFor({fake}, cache))[0].from_cache) << plant.what;
    EXPECT_EQ(Runs(fake), runs) << plant.what;
  }
  EXPECT_EQ(*ReadFile(victim), good);  // the symlink's target was never written
}

// A cache directory others can write (or own) is not used at all: no read, no write.
TEST_F(QemuFakeTest, CacheDirectoryOthersCanWriteIsNotUsed) {
  std::string fake = InstallFake("fake-qmp", dir_ + "/qemu-system-x86_64");
  for (const char* how : {"world-writable", "owned by nobody"}) {
    std::string cache = dir_ + "/cache-" + std::string(how).substr(0, 5);
    ASSERT_TRUE(Probe(OptionsFor({fake}, cache))[0].status.ok());
    ASSERT_TRUE(Probe(OptionsFor({fake}, cache))[0].from_cache);
    std::string file = QemuCachePath(cache, fake);
    struct stat before;
    ASSERT_EQ(::stat(file.c_str(), &before), 0);
    if (std::string(how) == "world-writable") {
      ASSERT_EQ(::chmod(cache.c_str(), 0777), 0);
    } else {
      ASSERT_EQ(::chown(cache.c_str(), 65534, 65534), 0);
    }
    size_t runs = Runs(fake);
    for (int i = 0; i < 2; ++i) {
      auto result = Probe(OptionsFor({fake}, cache));
      ASSERT_TRUE(result[0].status.ok()) << how;
      EXPECT_FALSE(result[0].from_cache) << how;
    }
    EXPECT_EQ(Runs(fake), runs + 2) << how;
    struct stat after;
    ASSERT_EQ(::stat(file.c_str(), &after), 0);
    EXPECT_EQ(after.st_ino, before.st_ino) << how << ": the cache file was rewritten";

    // The collector says why the cache is not used.
    Config config;
    HypervisorConfig hypervisor;
    hypervisor.qemu = OptionsFor({fake}, cache);
    HostPaths paths;
    Probes probes;
    CollectContext context{paths, probes, config};
    HostCapabilities caps;
    ASSERT_TRUE(MakeHypervisorCollector(hypervisor)->Collect(context, caps).ok());
    ASSERT_EQ(caps.hypervisors.size(), 1u);
    EXPECT_TRUE(Contains(caps.hypervisors[0].detail, "probe cache not used: " + cache))
        << caps.hypervisors[0].detail;
  }
}

TEST_F(QemuFakeTest, UnwritableCacheDirectoryOnlyMeansNoCaching) {
  std::string fake = InstallFake("fake-qmp", dir_ + "/qemu-system-x86_64");
  testing::WriteTestFile(dir_ + "/a-file", "not a directory");
  std::string cache = dir_ + "/a-file/cache";  // cannot be created, even by root
  for (size_t run = 1; run <= 2; ++run) {
    auto results = Probe(OptionsFor({fake}, cache));
    ASSERT_TRUE(results[0].status.ok()) << results[0].status.message();
    EXPECT_FALSE(results[0].from_cache);
    EXPECT_EQ(Runs(fake), run);
  }
}

TEST_F(QemuFakeTest, FailedProbesAreNotCached) {
  std::string fake = InstallFake("fake-qmp", dir_ + "/qmp-error");
  std::string cache = dir_ + "/cache";
  for (size_t run = 1; run <= 2; ++run) {
    auto results = Probe(OptionsFor({fake}, cache));
    ASSERT_FALSE(results[0].status.ok());
    EXPECT_EQ(results[0].status.message(),
              fake + ": query-machines failed: GenericError: machines are out of stock");
    EXPECT_EQ(Runs(fake), run);
  }
  EXPECT_FALSE(PathExists(QemuCachePath(cache, fake)));
}

TEST_F(QemuFakeTest, HangingEmulatorIsKilledAtTheTimeoutWhileOthersSucceed) {
  std::string hang = InstallFake("hang", dir_ + "/hang");
  std::string fake = InstallFake("fake-qmp", dir_ + "/qemu-system-x86_64");
  QemuOptions options = OptionsFor({hang, fake});
  options.probe_timeout = milliseconds(300);
  auto results = Probe(options);
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].emulator, hang);
  ASSERT_FALSE(results[0].status.ok());
  EXPECT_EQ(results[0].status.message(),
            hang + ": timed out after 300 ms waiting for the reply to qmp_capabilities; killed");
  EXPECT_GE(results[0].seconds, 0.3);
  EXPECT_LT(results[0].seconds, 5.0);
  ASSERT_TRUE(results[1].status.ok()) << results[1].status.message();
  EXPECT_EQ(results[1].guest.arch, "x86_64");

  // The script wrote its pid before greeting (and the greeting came): it was killed
  // and reaped, so not even a zombie is left.
  auto pids = ReadFile(hang + ".pids");
  ASSERT_TRUE(pids) << pids.error();
  auto leader = ParseInt(SplitWhitespace(*pids).front());
  ASSERT_TRUE(leader.has_value());
  EXPECT_NE(::kill(static_cast<pid_t>(*leader), 0), 0);
  EXPECT_EQ(errno, ESRCH);
}

// libvirt's second, TCG-only probe: run when the first came up under KVM, and under
// the same bounds (its own timeout; killed and reaped when it hangs).
TEST_F(QemuFakeTest, KvmEmulatorIsProbedAgainUnderTcgAlone) {
  std::string fake = InstallFake("fake-qmp", dir_ + "/withkvm-cpus");
  auto results = Probe(OptionsFor({fake}));
  ASSERT_TRUE(results[0].status.ok()) << results[0].status.message();
  EXPECT_EQ(Runs(fake), 2u);  // two sessions, two processes
  const Guest& guest = results[0].guest;
  ASSERT_EQ(guest.domains.back().type, "kvm");
  ASSERT_EQ(guest.cpu_modes.size(), 2u);
  EXPECT_EQ(guest.cpu_modes[0].virttype, "kvm");
  EXPECT_EQ(guest.cpu_modes[1].virttype, "qemu");
  EXPECT_EQ(guest.cpu_modes[1].models.size(), 2u);
}

TEST_F(QemuFakeTest, HangingTcgSessionIsKilledAndFailsTheProbe) {
  std::string fake = InstallFake("fake-qmp", dir_ + "/withkvm-tcghang");
  QemuOptions options = OptionsFor({fake}, dir_ + "/cache");
  options.probe_timeout = milliseconds(300);
  auto results = Probe(options);
  ASSERT_FALSE(results[0].status.ok());
  EXPECT_EQ(results[0].status.message(),
            fake +
                ": TCG probe: timed out after 300 ms waiting for the reply to qmp_capabilities; "
                "killed");
  EXPECT_LT(results[0].seconds, 5.0);
  // Nothing half-known is cached: the next refresh probes again.
  EXPECT_FALSE(PathExists(QemuCachePath(dir_ + "/cache", fake)));
}

TEST_F(QemuFakeTest, GarbageOutputIsAClearError) {
  std::string garbage = InstallFake("garbage", dir_ + "/qemu-system-x86_64");
  auto results = Probe(OptionsFor({garbage}));
  ASSERT_FALSE(results[0].status.ok());
  const std::string& message = results[0].status.message();
  EXPECT_EQ(
      message.rfind(garbage + ": answered the QMP greeting with something that is not JSON", 0), 0u)
      << message;
  EXPECT_TRUE(Contains(message, "'Hello! Type HELP for help.'")) << message;
  EXPECT_TRUE(Contains(message, "; stderr: garbage: this is not an emulator")) << message;
}

TEST_F(QemuFakeTest, EarlyExitIsAClearErrorWithStderr) {
  std::string quitter = InstallFake("exit-at-once", dir_ + "/qemu-system-x86_64");
  auto results = Probe(OptionsFor({quitter}));
  ASSERT_FALSE(results[0].status.ok());
  EXPECT_EQ(results[0].status.message(),
            quitter +
                ": exited with status 1 before the QMP greeting (it closed its output); stderr: "
                "qemu-system-x86_64: -machine none,accel=kvm:tcg: unsupported machine type");
}

TEST_F(QemuFakeTest, TruncatedReplyIsAClearError) {
  std::string cut = InstallFake("truncated-qmp", dir_ + "/qemu-system-x86_64");
  auto results = Probe(OptionsFor({cut}));
  ASSERT_FALSE(results[0].status.ok());
  const std::string& message = results[0].status.message();
  EXPECT_EQ(message.rfind(cut + ": answered the reply to query-target with something that is "
                                "not JSON (offset 20: unterminated string)",
                          0),
            0u)
      << message;
}

TEST_F(QemuFakeTest, MissingProgramIsAnErrorForThatEmulatorOnly) {
  std::string fake = InstallFake("fake-qmp", dir_ + "/qemu-system-x86_64");
  // A script whose interpreter does not exist cannot be started.
  testing::WriteTestFile(dir_ + "/broken", "#!/nonexistent/interpreter\n");
  ASSERT_EQ(::chmod((dir_ + "/broken").c_str(), 0755), 0);
  auto results = Probe(OptionsFor({dir_ + "/broken", fake}));
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].status.message(), dir_ + "/broken: cannot start: No such file or directory");
  EXPECT_TRUE(results[1].status.ok());
}

// Probes run in parallel up to parallel_probes: two emulators that each hang for the
// whole timeout take one timeout together, and two timeouts one after the other.
// Issue 14: an emulator that floods the agent fails with an error naming it and the
// cap; the child is killed and reaped; the other emulator is probed as usual. (Peak
// memory is asserted on the real agent in the end-to-end tests.)
struct FloodCase {
  const char* mode;
  const char* error;       // the message after "<emulator>: "
  int timeout_ms = 20000;  // generous where a cap, not the clock, must end the probe
};

class QemuFloodTest : public QemuFakeTest, public ::testing::WithParamInterface<FloodCase> {};

TEST_P(QemuFloodTest, FloodingEmulatorFailsClearlyAndTheOtherIsProbed) {
  std::string flood = InstallFake("flood", dir_ + "/flood-" + GetParam().mode);
  std::string fake = InstallFake("fake-qmp", dir_ + "/qemu-system-x86_64");
  QemuOptions options = OptionsFor({flood, fake});
  options.probe_timeout = milliseconds(GetParam().timeout_ms);
  auto results = Probe(options);
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].emulator, flood);
  ASSERT_FALSE(results[0].status.ok());
  EXPECT_EQ(results[0].status.message().rfind(flood + ": " + GetParam().error, 0), 0u)
      << results[0].status.message();
  ASSERT_TRUE(results[1].status.ok()) << results[1].status.message();
  EXPECT_EQ(results[1].guest.machines.size(), 6u);
}

INSTANTIATE_TEST_SUITE_P(
    Floods, QemuFloodTest,
    ::testing::Values(
        // Issue 15.1: greets, then `yes ''`: the deadline holds whatever it writes.
        FloodCase{"lines",
                  "it wrote more than 4194304 bytes of output (qemu max_output_bytes) waiting "
                  "for the reply to qmp_capabilities; killed"},
        FloodCase{"nonewline",
                  "it wrote a line longer than 1048576 bytes (qemu max_reply_bytes) waiting for "
                  "the reply to query-kvm; killed"},
        FloodCase{"hugeline",
                  "it wrote a line longer than 1048576 bytes (qemu max_reply_bytes) waiting for "
                  "the reply to query-machines; killed"},
        FloodCase{"hugereply",
                  "it wrote a line longer than 1048576 bytes (qemu max_reply_bytes) waiting for "
                  "the reply to query-machines; killed"},
        FloodCase{"machines",
                  "query-machines listed 5000 machine types and aliases, more than qemu "
                  "max_machines (1024)"},
        FloodCase{"stderr",
                  "timed out after 1500 ms waiting for the reply to qmp_capabilities; killed; "
                  "stderr: qemu-system-x86_64: warning: flooding stderr",
                  1500}),
    [](const ::testing::TestParamInfo<FloodCase>& param) { return std::string(param.param.mode); });

// The deadline alone ends `yes ''` when the output cap is out of reach.
TEST_F(QemuFakeTest, StreamingLinesHitTheTimeoutWhenTheOutputCapIsHigh) {
  std::string flood = InstallFake("flood", dir_ + "/flood-lines");
  QemuOptions options = OptionsFor({flood});
  options.probe_timeout = milliseconds(500);
  options.max_output_bytes = int64_t{1} << 30;
  auto results = Probe(options);
  ASSERT_FALSE(results[0].status.ok());
  EXPECT_EQ(results[0].status.message(),
            flood + ": timed out after 500 ms waiting for the reply to qmp_capabilities; killed");
}

TEST_F(QemuFakeTest, RaisedCapsAdmitALargeValidReply) {
  std::string flood = InstallFake("flood", dir_ + "/flood-machines");
  QemuOptions options = OptionsFor({flood});
  options.max_machines = 5000;
  auto results = Probe(options);
  ASSERT_TRUE(results[0].status.ok()) << results[0].status.message();
  EXPECT_EQ(results[0].guest.machines.size(), 5000u);
}

// Issue 15.7: U+FFFF/U+FFFE in a machine name from QMP are replaced before the name is
// used or cached, so the cache entry parses again (no re-spawn on every refresh).
TEST_F(QemuFakeTest, MachineNamesWithNoncharactersAreCleanedAndStayCacheable) {
  std::string flood = InstallFake("flood", dir_ + "/flood-badname");
  std::string cache = dir_ + "/cache";
  auto first = Probe(OptionsFor({flood}, cache));
  ASSERT_TRUE(first[0].status.ok()) << first[0].status.message();
  ASSERT_EQ(first[0].guest.machines.size(), 1u);
  EXPECT_EQ(first[0].guest.machines[0].name, "pc-\xEF\xBF\xBD-\xEF\xBF\xBD");
  auto second = Probe(OptionsFor({flood}, cache));
  ASSERT_TRUE(second[0].status.ok());
  EXPECT_TRUE(second[0].from_cache);
  EXPECT_EQ(Describe(second[0].guest), Describe(first[0].guest));
}

// Issue 13: a warm refresh, with the probe memory the refresh loop keeps, opens no
// file in the cache or emulator directory (inotify sees every open, including the
// directory listing and the exec of an emulator) and spawns nothing. A changed
// directory is listed again; a touched binary is probed again.
class OpenWatch {
 public:
  explicit OpenWatch(const std::vector<std::string>& dirs)
      : fd_(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) {
    for (const std::string& dir : dirs) {
      EXPECT_GE(::inotify_add_watch(fd_, dir.c_str(), IN_OPEN | IN_CREATE | IN_MODIFY), 0) << dir;
    }
  }
  ~OpenWatch() { ::close(fd_); }
  // Names of what was opened/created/modified since the last call ("" for a directory
  // itself).
  std::vector<std::string> Events() {
    std::vector<std::string> names;
    alignas(inotify_event) char buffer[8192];
    ssize_t n;
    while ((n = ::read(fd_, buffer, sizeof(buffer))) > 0) {
      for (char* at = buffer; at < buffer + n;) {
        auto* event = reinterpret_cast<inotify_event*>(at);
        names.push_back(event->len > 0 ? event->name : "");
        at += sizeof(inotify_event) + event->len;
      }
    }
    return names;
  }

 private:
  int fd_;
};

TEST_F(QemuFakeTest, WarmRefreshOpensNoFileAndSpawnsNothing) {
  std::string root = dir_ + "/root";
  std::string bin = root + "/usr/bin";
  std::string fake = InstallFake("fake-qmp", bin + "/qemu-system-x86_64");
  std::string cache = dir_ + "/cache";
  QemuOptions options = OptionsFor({}, cache);
  options.emulator_dirs = {"/usr/bin"};
  HostPaths paths;
  paths.rootfs = root;
  QemuProbeMemory memory;
  auto cold = ProbeQemuEmulators(options, paths, SomeFacts(), nullptr, &memory);
  ASSERT_EQ(cold.size(), 1u);
  ASSERT_TRUE(cold[0].status.ok()) << cold[0].status.message();
  ASSERT_EQ(Runs(fake), 1u);
  // The fake wrote its ".runs" file beside itself after the listing: the directory's
  // mtime moved, so the next refresh lists it once more (and spawns nothing).
  ASSERT_TRUE(ProbeQemuEmulators(options, paths, SomeFacts(), nullptr, &memory)[0].from_cache);

  OpenWatch watch({bin, cache});
  for (int i = 0; i < 3; ++i) {
    auto warm = ProbeQemuEmulators(options, paths, SomeFacts(), nullptr, &memory);
    ASSERT_EQ(warm.size(), 1u);
    ASSERT_TRUE(warm[0].status.ok());
    EXPECT_TRUE(warm[0].from_cache);
    EXPECT_EQ(Describe(warm[0].guest), Describe(cold[0].guest));
  }
  EXPECT_EQ(watch.Events(), std::vector<std::string>{});
  EXPECT_EQ(Runs(fake), 1u);

  // A new emulator changes the directory's mtime: listed again, and probed.
  InstallFake("fake-qmp", bin + "/qemu-system-aarch64");
  watch.Events();
  auto grown = ProbeQemuEmulators(options, paths, SomeFacts(), nullptr, &memory);
  ASSERT_EQ(grown.size(), 2u);
  EXPECT_TRUE(grown[0].status.ok() && !grown[0].from_cache) << grown[0].status.message();
  EXPECT_TRUE(grown[1].status.ok() && grown[1].from_cache);
  EXPECT_EQ(Runs(fake), 1u);

  // Changed host facts (a new kernel): probed again, not served from memory.
  QemuHostFacts facts = SomeFacts();
  facts.kernel_release = "6.1.0-99-amd64";
  auto rebooted = ProbeQemuEmulators(options, paths, facts, nullptr, &memory);
  EXPECT_FALSE(rebooted[1].from_cache);
  EXPECT_EQ(Runs(fake), 2u);
}

// Shutdown cancels a hung probe at once instead of waiting out probe_timeout.
TEST_F(QemuFakeTest, CancellationStopsAHungProbe) {
  std::string hang = InstallFake("hang", dir_ + "/hang");
  QemuOptions options = OptionsFor({hang});
  options.probe_timeout = std::chrono::minutes(10);
  Cancellation cancel;
  std::thread canceller([&] {
    // Cancel once the probe is under way: the script writes its pid before greeting.
    while (!PathExists(hang + ".pids")) std::this_thread::yield();
    cancel.Cancel();
  });
  HostPaths paths;
  auto results = ProbeQemuEmulators(options, paths, SomeFacts(), &cancel);
  canceller.join();
  ASSERT_EQ(results.size(), 1u);
  ASSERT_FALSE(results[0].status.ok());
  EXPECT_TRUE(Contains(results[0].status.message(), "(the agent is stopping); killed"))
      << results[0].status.message();
}

TEST_F(QemuFakeTest, ProbesRunInParallelUpToTheLimit) {
  std::string a = InstallFake("hang", dir_ + "/a/hang");
  std::string b = InstallFake("hang", dir_ + "/b/hang");
  QemuOptions options = OptionsFor({b, a});
  options.probe_timeout = milliseconds(1000);
  for (int parallel : {2, 1}) {
    options.parallel_probes = parallel;
    auto start = Clock::now();
    auto results = Probe(options);
    auto elapsed = Clock::now() - start;
    ASSERT_EQ(results.size(), 2u);
    EXPECT_EQ(results[0].emulator, a);  // path order, whatever finished first
    EXPECT_EQ(results[1].emulator, b);
    if (parallel == 2) {
      EXPECT_LT(elapsed, milliseconds(2000));
    } else {
      EXPECT_GE(elapsed, milliseconds(2000));
    }
  }
}

TEST(QemuHostFactsTest, ReadsKernelSevAndFormatsCpuIdentity) {
  std::string root = testing::TempDir();
  testing::WriteTestFile(root + "/proc/sys/kernel/osrelease", "6.1.0-18-amd64\n");
  testing::WriteTestFile(root + "/sys/module/kvm_amd/parameters/sev", "Y\n");
  PathsConfig config;
  config.rootfs = root;
  HostPaths paths = HostPaths::FromConfig(config);
  HostCapabilities caps;
  caps.kvm.device_present = true;
  caps.kvm.device_accessible = true;
  caps.kvm.vm_creatable = true;
  caps.kvm.nested = true;
  caps.cpu.microcode = 0xde;
  caps.cpu.signature = CpuSignature{25, 1, 1};
  QemuHostFacts facts = CurrentQemuHostFacts(paths, caps);
  EXPECT_TRUE(facts.kvm_usable);
  EXPECT_EQ(facts.kernel_release, "6.1.0-18-amd64");
  EXPECT_EQ(facts.microcode, "0xde");
  EXPECT_EQ(facts.cpu_signature, "family=25,model=1,stepping=1");
  EXPECT_EQ(facts.nested, "yes");
  EXPECT_EQ(facts.sev, "Y");

  // Unknowns stay empty rather than guessed.
  HostCapabilities bare;
  bare.kvm.vm_creatable = false;
  PathsConfig empty_config;
  empty_config.rootfs = testing::TempDir();
  QemuHostFacts unknown = CurrentQemuHostFacts(HostPaths::FromConfig(empty_config), bare);
  EXPECT_FALSE(unknown.kvm_usable);
  EXPECT_EQ(unknown.kernel_release, "");
  EXPECT_EQ(unknown.microcode, "");
  EXPECT_EQ(unknown.cpu_signature, "");
  EXPECT_EQ(unknown.nested, "");
  EXPECT_EQ(unknown.sev, "");
}

}  // namespace
}  // namespace virtcaps
