"""What nova, KubeVirt, VDSM and virtinst read, against our documents and libvirt's.

Usage: check_consumer_xpaths.py XPATHS.tsv KNOWN_GAPS.tsv OURS_DIR REFERENCE_DIR|- GOLDEN.xml...

XPATHS.tsv (tests/fixtures/consumers/) lists, per consumer, every XPath its parser reads
from libvirt's capabilities or domain capabilities. OURS_DIR and REFERENCE_DIR hold
capabilities.xml, domcaps-qemu.xml and (where KVM works) domcaps-kvm.xml: the agent's
and the real libvirt's on this machine (tests/support/libvirt-reference.sh). Each XPath
that libvirt's document answers must have an answer in ours too; one that neither
answers is listed as such (the host has no such thing, e.g. no SEV), one that only ours
answers is listed too. KNOWN_GAPS.tsv lists the XPaths libvirt answers and the agent does
not yet, with the reason: a gap not listed fails, and so does a listed one that the
agent now answers (the list must be kept true). The fixture hosts' goldens are evaluated as well: every
capabilities XPath must evaluate, and what libvirt's schema makes mandatory (host arch,
each guest's os_type, arch, wordsize, emulator and domain type) must be there.
"""

import os
import sys

from lxml import etree

DOCUMENTS = {"capabilities": ["capabilities.xml"],
             "domcapabilities": ["domcaps-qemu.xml", "domcaps-kvm.xml"]}


def load_xpaths(path):
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip() or line.startswith("#"):
                continue
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 4 or fields[1] not in DOCUMENTS:
                sys.exit(f"FAIL: {path}:{number}: expected consumer, document, xpath, use")
            rows.append(tuple(fields))
    return rows


def load_gaps(path):
    gaps = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip() or line.startswith("#"):
                continue
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 3 or fields[0] not in DOCUMENTS:
                sys.exit(f"FAIL: {path}:{number}: expected document, xpath, reason")
            gaps[(fields[0], fields[1])] = fields[2]
    return gaps


def host_arch(tree):
    found = tree.xpath("/capabilities/host/cpu/arch/text()")
    return found[0] if found else ""


def answer(tree, xpath, arch):
    """The non-empty strings (text, attribute values) and elements the XPath selects."""
    found = []
    for value in tree.xpath(xpath.replace("{arch}", arch)):
        if isinstance(value, str):
            if value.strip():
                found.append(str(value))
        else:
            found.append("<" + value.tag + ">")
    return found


def check_golden(path, rows, failures):
    tree = etree.parse(path)
    arch = host_arch(tree)
    name = os.path.basename(path)
    answered = 0
    rows = [row for row in rows if row[1] == "capabilities"]
    for consumer, _, xpath, _ in rows:
        try:
            answered += bool(answer(tree, xpath, arch))
        except etree.XPathError as error:
            failures.append(f"{name}: {consumer} {xpath}: {error}")
    if not arch:
        failures.append(f"{name}: no host/cpu/arch")
    for guest in tree.xpath("/capabilities/guest"):
        where = f"{name}: guest {etree.tostring(guest)[:60]!r}"
        for must in ("os_type/text()", "arch/@name", "arch/wordsize/text()",
                     "arch/emulator/text()", "arch/domain/@type"):
            if not guest.xpath(must):
                failures.append(f"{where}: no {must}")
    print(f"consumers: {name}: {answered} of {len(rows)} capabilities XPaths answered")


def main():
    xpaths_path, gaps_path, ours_dir, reference_dir, goldens = sys.argv[1], sys.argv[2], \
        sys.argv[3], sys.argv[4], sys.argv[5:]
    rows = load_xpaths(xpaths_path)
    gaps = load_gaps(gaps_path)
    known = {(row[1], row[2]) for row in rows}
    for gap in gaps:
        if gap not in known:
            sys.exit(f"FAIL: {gaps_path}: {gap[1]} is not an XPath of {xpaths_path}")
    failures = []
    missing = []
    gaps_seen = set()
    if reference_dir != "-":
        ours_arch = host_arch(etree.parse(os.path.join(ours_dir, "capabilities.xml")))
        for document, files in DOCUMENTS.items():
            for file_name in files:
                reference_path = os.path.join(reference_dir, file_name)
                if not os.path.exists(reference_path):
                    continue  # no KVM here: libvirt gives no kvm domain capabilities
                ours_path = os.path.join(ours_dir, file_name)
                if not os.path.exists(ours_path):
                    failures.append(f"libvirt has {file_name}, the agent gave none")
                    continue
                ours, theirs = etree.parse(ours_path), etree.parse(reference_path)
                counts = {"both": 0, "neither": 0, "only ours": 0, "only libvirt": 0}
                for consumer, kind, xpath, use in rows:
                    if kind != document:
                        continue
                    ours_answer = answer(ours, xpath, ours_arch)
                    theirs_answer = answer(theirs, xpath, ours_arch)
                    if (document, xpath) in gaps and ours_answer:
                        failures.append(f"{file_name}: {xpath} is listed in {gaps_path} but "
                                        f"ours answers it now ({ours_answer[:3]}): remove it")
                    if theirs_answer and ours_answer:
                        counts["both"] += 1
                    elif theirs_answer and (document, xpath) in gaps:
                        counts["known gap"] = counts.get("known gap", 0) + 1
                        gaps_seen.add((document, xpath))
                        print(f"consumers: {file_name}: known gap: {consumer} {xpath}: "
                              f"{gaps[(document, xpath)]}")
                    elif theirs_answer:
                        counts["only libvirt"] += 1
                        missing.append(f"{file_name}: {consumer} reads {xpath} ({use}): "
                                       f"libvirt answers {theirs_answer[:3]}, ours nothing")
                    elif ours_answer:
                        counts["only ours"] += 1
                        print(f"consumers: {file_name}: only ours answers {consumer} {xpath}: "
                              f"{ours_answer[:3]}")
                    else:
                        counts["neither"] += 1
                print(f"consumers: {file_name} vs libvirt: " +
                      ", ".join(f"{value} {key}" for key, value in counts.items()))
    else:
        print("consumers: libvirt cannot run here: nothing to compare the live documents with")
    for golden in goldens:
        check_golden(golden, rows, failures)
    for line in missing + failures:
        print("FAIL: " + line, file=sys.stderr)
    return 1 if missing or failures else (77 if reference_dir == "-" else 0)


if __name__ == "__main__":
    sys.exit(main())
