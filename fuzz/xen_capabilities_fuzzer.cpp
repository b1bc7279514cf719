// The Xen capability string (/sys/hypervisor/properties/capabilities): XenGuests on
// the whole string and ParseXenCapabilityToken on each word. Checks that every guest
// comes from a token that parses, once per (os type, arch), with consistent fields.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>
#include <utility>

#include "virtcaps/hypervisors.h"
#include "virtcaps/strings.h"

#include "fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::set<std::pair<std::string, std::string>> parsed;  // (os_type, arch) of good tokens
  for (std::string_view word : virtcaps::SplitWhitespace(text)) {
    auto token = virtcaps::ParseXenCapabilityToken(word);
    if (!token) continue;
    FUZZ_CHECK(token->os_type == "xen" || token->os_type == "hvm");
    FUZZ_CHECK(token->wordsize == 32 || token->wordsize == 64);
    FUZZ_CHECK(!(token->pae && token->nonpae));
    FUZZ_CHECK((token->pae || token->nonpae) == (token->arch == "i686"));
    FUZZ_CHECK(!token->ia64_be || token->arch == "ia64");
    parsed.emplace(token->os_type, token->arch);
  }

  virtcaps::XenOptions options;
  options.emulator_by_arch["x86_64"] = "/usr/lib/xen/bin/qemu-system-x86_64";
  auto guests = virtcaps::XenGuests(text, options);
  FUZZ_CHECK(guests.size() == parsed.size());
  std::set<std::pair<std::string, std::string>> seen;
  for (const virtcaps::Guest& guest : guests) {
    FUZZ_CHECK(seen.emplace(guest.os_type, guest.arch).second);
    FUZZ_CHECK(parsed.count({guest.os_type, guest.arch}) == 1);
    FUZZ_CHECK(guest.hypervisor == "xen");
    FUZZ_CHECK(!guest.emulator.empty());
    FUZZ_CHECK(guest.loader.empty() == (guest.os_type == "xen"));
    FUZZ_CHECK(guest.machines.size() ==
               (guest.os_type == "hvm" ? options.hvm_machines : options.pv_machines).size());
    FUZZ_CHECK(guest.domains.size() == 1);
  }
  return 0;
}
