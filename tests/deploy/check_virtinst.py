"""virtinst's own capabilities parser over the agent's /capabilities documents.

Usage: check_virtinst.py LIVE.xml LIVE_QEMU.xml REFERENCE.xml|- GOLDEN.xml...

virtinst (Debian's `virtinst`, the library behind virt-install and virt-manager) reads
libvirt's capabilities with virtinst.capabilities.Capabilities and derives from it what
a new guest gets: the host CPU (arch, model: `--cpu host-model` fallbacks, "is this guest
native"), the security models (the default <seclabel> model) and, from the DAC
<baselabel>, the uid/gid QEMU runs as (disk permission checks), and through guest_lookup()
the guest's os_type, arch, domain type (kvm over xen over qemu), emulator and machine
types (the first one is the default machine; canonical aliases let it map pc -> pc-i440fx-X).

Every document, live host and fixture goldens, must parse and give virtinst a consistent
answer. The live qemu driver's document (LIVE_QEMU.xml, --driver qemu) is also compared with
what the real libvirt's qemu:///system answers on this machine (REFERENCE.xml, from
tests/support/libvirt-reference.sh; "-" when libvirt cannot run here): every lookup virtinst would make must resolve to the same thing in both.
Prints one line per document and exits non-zero on the first document that fails.
"""

import os
import re
import sys

sys.path.insert(0, "/usr/share/virt-manager")  # where Debian installs the virtinst package

from lxml import etree  # noqa: E402
from virtinst.capabilities import Capabilities  # noqa: E402

failures = []
notes = []


def check(condition, document, message):
    if not condition:
        failures.append(f"{document}: {message}")
    return condition


def parse(path):
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    # conn is only used for lookups of the connection's driver; parsing needs none.
    return Capabilities(None, parsexml=text), etree.fromstring(text.encode())


def baselabel_ids(label):
    """'+64055:+64055' -> (64055, 64055), or None when it is not libvirt's DAC form."""
    match = re.fullmatch(r"\+(\d+):\+(\d+)", label or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def check_document(name, caps, tree):
    """What virtinst needs from any capabilities document."""
    host_arch = caps.host.cpu.arch
    check(bool(host_arch), name, "virtinst finds no host/cpu/arch")
    if host_arch in ("x86_64", "i686") and not caps.host.cpu.model:
        # virtinst's `--cpu host-model-only` copies host/cpu/model into the guest; libvirt
        # names one on every x86 host it can read CPUID on. Fixture hosts without a CPUID
        # dump have none (the CPU model is the CPU-vocabulary work's); the live host's
        # model is compared with libvirt's below.
        notes.append(f"{name}: no host/cpu/model on x86 (virtinst's host-model-only "
                     "does nothing)")
    models = [secmodel.model for secmodel in caps.host.secmodels]
    qemu = any(d.hypervisor_type in ("kvm", "qemu") for g in caps.guests for d in g.domains)
    if qemu and caps.host.get_qemu_baselabel() == (None, None) and "dac" not in models:
        # libvirt's QEMU driver always prints it; the agent does when the configured QEMU
        # user and group are in the host's etc/passwd and etc/group (fixtures lack them).
        notes.append(f"{name}: QEMU guests but no DAC secmodel: virtinst finds no qemu user")
    check(all(models), name, f"a <secmodel> without <model>: {models}")
    for secmodel in caps.host.secmodels:
        if secmodel.model != "dac":
            continue
        for label in secmodel.baselabels:
            check(label.type in ("kvm", "qemu", "lxc", "xen"), name,
                  f"DAC baselabel of unexpected type {label.type!r}")
            check(baselabel_ids(label.content) is not None, name,
                  f"DAC baselabel {label.content!r} is not +UID:+GID as virtinst parses it")
    for guest in caps.guests:
        where = f"guest {guest.os_type}/{guest.arch}"
        check(guest.os_type in ("hvm", "xen", "exe", "linux", "uml"), name,
              f"{where}: unknown os_type {guest.os_type!r}")
        check(bool(guest.arch), name, f"{where}: no arch name")
        check(bool(guest.domains), name, f"{where}: no <domain>")
        wordsize = tree.xpath(f"/capabilities/guest[os_type='{guest.os_type}']"
                              f"/arch[@name='{guest.arch}']/wordsize/text()")
        # virtinst does not read wordsize; nova, libvirt's own schema and virsh do.
        check(wordsize and wordsize[0] in ("32", "64"), name, f"{where}: wordsize {wordsize}")
        for domain in guest.domains:
            emulator = domain.emulator or guest.emulator
            check(bool(emulator), name, f"{where} domain {domain.hypervisor_type}: no emulator")
            check(domain.hypervisor_type in ("kvm", "qemu", "xen", "lxc", "hvf"), name,
                  f"{where}: unknown domain type {domain.hypervisor_type!r}")
            info = caps.guest_lookup(os_type=guest.os_type, arch=guest.arch,
                                     typ=domain.hypervisor_type)
            check(info.emulator == emulator, name,
                  f"{where}/{domain.hypervisor_type}: guest_lookup gives emulator {info.emulator}")
            if guest.os_type == "hvm" and domain.hypervisor_type in ("kvm", "qemu"):
                # virtinst picks machines[0] as the default machine type.
                check(bool(info.machines), name,
                      f"{where}/{domain.hypervisor_type}: no machine types for virtinst")
            for machine in guest.domains[0].machines or guest.machines:
                if machine.canonical:
                    check(machine.canonical in info.machines, name,
                          f"{where}: alias {machine.name} -> {machine.canonical} not a machine")
        # The best domain type for this guest, as virtinst ranks them.
        kinds = [domain.hypervisor_type for domain in guest.domains]
        best = caps.guest_lookup(os_type=guest.os_type, arch=guest.arch).hypervisor_type
        expected = next((kind for kind in ("kvm", "xen", "qemu") if kind in kinds), kinds[-1])
        check(best == expected, name, f"{where}: best domain type {best}, expected {expected}")
    if caps.guests:
        check(caps.has_install_options(), name, "guests but no install options")
        info = caps.guest_lookup()
        check(info.os_type and info.arch and info.hypervisor_type, name,
              "guest_lookup() with no arguments finds no guest")


def lookups(caps):
    """Every answer virtinst derives from a document, for comparing two of them."""
    answers = {
        "host cpu arch": caps.host.cpu.arch,
        "host cpu model (host-model-only)": caps.host.cpu.model,
        "secmodels (the first is virtinst's default)": [s.model for s in caps.host.secmodels],
        "qemu DAC user": caps.host.get_qemu_baselabel(),
        "install options": caps.has_install_options(),
    }
    if caps.guests:
        info = caps.guest_lookup()
        answers["default guest"] = (info.os_type, info.arch, info.hypervisor_type, info.emulator)
    for guest in caps.guests:
        key = f"guest {guest.os_type}/{guest.arch}"
        answers[key + " domain types"] = sorted(d.hypervisor_type for d in guest.domains)
        answers[key + " pae/acpi/apic"] = (guest.supports_pae(), guest.supports_acpi(),
                                           guest.supports_apic())
        answers[key + " kvm available"] = guest.is_kvm_available()
        for domain in guest.domains:
            info = caps.guest_lookup(os_type=guest.os_type, arch=guest.arch,
                                     typ=domain.hypervisor_type)
            sub = f"{key}/{domain.hypervisor_type}"
            answers[sub + " emulator"] = info.emulator
            answers[sub + " default machine"] = info.machines[0] if info.machines else None
            answers[sub + " machines"] = sorted(info.machines)
            aliases = sorted((m.name, m.canonical)
                             for m in ((info.domain and info.domain.machines) or info.guest.machines)
                             if m.canonical)
            answers[sub + " aliases"] = aliases
    return answers


def compare(live, reference):
    ours, theirs = lookups(live), lookups(reference)
    for key, value in theirs.items():
        if key not in ours:
            failures.append(f"live qemu: libvirt answers {key!r} = {value!r}; ours has no such guest")
        elif ours[key] != value:
            failures.append(f"live qemu: {key}: ours {ours[key]!r}, libvirt {value!r}")
    for key in ours:
        if key not in theirs:
            failures.append(f"live qemu: ours answers {key!r} = {ours[key]!r}; libvirt has none")
    return len(theirs)


def main():
    live_path, live_qemu_path, reference_path, goldens = sys.argv[1], sys.argv[2], \
        sys.argv[3], sys.argv[4:]
    documents = [("live", live_path), ("live qemu", live_qemu_path)] + \
        [(os.path.basename(p), p) for p in goldens]
    parsed = {}
    for name, path in documents:
        before = len(failures)
        caps, tree = parse(path)
        parsed[name] = caps
        check_document(name, caps, tree)
        state = "ok" if len(failures) == before else "FAILED"
        print(f"virtinst: {name}: {len(caps.guests)} guests, host {caps.host.cpu.arch} "
              f"{caps.host.cpu.model or '-'}, secmodels "
              f"{[s.model for s in caps.host.secmodels]}: {state}")
    if reference_path != "-":
        reference, _ = parse(reference_path)
        before = len(failures)
        # libvirt's qemu:///system document: the agent's qemu driver's (?driver=qemu).
        count = compare(parsed["live qemu"], reference)
        state = "ok" if len(failures) == before else "FAILED"
        print(f"virtinst: live vs libvirt: {count} answers compared: {state}")
    else:
        print("virtinst: libvirt cannot run here: live document not compared with libvirt's")
    for note in notes:
        print("note: " + note)
    for failure in failures:
        print("FAIL: " + failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
