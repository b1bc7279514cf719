"""virtinst's own UEFI answers over our domain capabilities and libvirt's.

Usage: check_virtinst_domcaps.py OURS_DIR REFERENCE_DIR

Both directories hold domcaps-qemu.xml and, where KVM works, domcaps-kvm.xml (the
agent's, and the real libvirt's on this machine from tests/support/libvirt-reference.sh).
Debian's virtinst (virt-install, virt-manager) parses each with its DomainCapabilities
class and decides from <os> whether UEFI is possible (supports_uefi_loader,
supports_firmware_efi) and which loader file `--boot uefi` uses
(find_uefi_path_for_arch). Every answer must be libvirt's.
"""

import os
import sys

sys.path.insert(0, "/usr/share/virt-manager")  # where Debian installs the virtinst package

from virtinst.domcapabilities import DomainCapabilities  # noqa: E402


class _Connection:
    """What find_uefi_path_for_arch asks of a connection: not bhyve."""

    def is_bhyve(self):
        return False


def answers(path):
    with open(path, encoding="utf-8") as handle:
        caps = DomainCapabilities(_Connection(), parsexml=handle.read())
    return {
        "arch": caps.arch,
        "supports_uefi_loader": caps.supports_uefi_loader(),
        "supports_firmware_efi": caps.supports_firmware_efi(),
        "find_uefi_path_for_arch": caps.find_uefi_path_for_arch(),
        "loader values": [value.value for value in caps.os.loader.values],
    }


def main():
    ours_dir, reference_dir = sys.argv[1], sys.argv[2]
    failures, compared = [], 0
    for name in ("domcaps-qemu.xml", "domcaps-kvm.xml"):
        theirs_path = os.path.join(reference_dir, name)
        if not os.path.exists(theirs_path):
            continue
        ours, theirs = answers(os.path.join(ours_dir, name)), answers(theirs_path)
        compared += 1
        for key, value in theirs.items():
            if ours[key] != value:
                failures.append(f"{name}: {key}: ours {ours[key]!r}, libvirt {value!r}")
        print(f"virtinst domcaps: {name}: {ours}")
    if compared == 0:
        failures.append("no libvirt domain capabilities to compare with")
    for failure in failures:
        print("FAIL: " + failure)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
