#!/usr/bin/python3
"""Runs a program under the system call filter a systemd unit file asks for, without
systemd: the closest this machine gets to `systemd-run -p ...`, since systemd is not
PID 1 here. Used by check_systemd_security.sh.

Usage: unit_seccomp.py UNIT_FILE PROGRAM [ARG...]

From the unit's [Service] section it reproduces, with libseccomp (python3-seccomp):
  SystemCallFilter=      allow-list and ~deny-list lines, in order, with their @groups
                         expanded by `systemd-analyze syscall-filter` (this machine's
                         systemd, so the same lists the unit gets); names this
                         architecture does not have are skipped, as systemd skips them
  SystemCallErrorNumber= the action for a call outside the list (else SIGSYS)
  SystemCallArchitectures=native  (libseccomp's default: native only, others killed)
  RestrictNamespaces=yes clone/unshare with any CLONE_NEW* flag and setns fail with
                         EPERM; clone3 fails with ENOSYS so that glibc falls back to
                         clone, whose flags a filter can see (what systemd does)
  RestrictAddressFamilies= socket() of any other family fails with EAFNOSUPPORT
  LockPersonality=yes    personality() may only query or keep PER_LINUX
  RestrictRealtime=yes   sched_setscheduler() to SCHED_FIFO/RR/DEADLINE fails
  NoNewPrivileges=yes    (loading a filter sets it: libseccomp's default)
Everything else in the unit is the caller's business (check_systemd_security.sh
documents what it reproduces and what not). A directive the script does not know how
to read is refused, so a changed unit cannot silently lose its reproduction.
"""
import errno
import os
import re
import socket
import subprocess
import sys

import seccomp

CLONE_NEW_FLAGS = {
    "cgroup": 0x02000000, "ipc": 0x08000000, "net": 0x40000000, "mnt": 0x00020000,
    "pid": 0x20000000, "user": 0x10000000, "uts": 0x04000000,
}
SCHED_REALTIME = (1, 2, 6)  # SCHED_FIFO, SCHED_RR, SCHED_DEADLINE
PER_LINUX, PER_QUERY = 0, 0xffffffff


def service_settings(path):
    """[(key, value)] of the [Service] section, in order (repeated keys kept)."""
    settings, section = [], None
    with open(path, encoding="utf-8") as unit:
        for raw in unit:
            line = raw.strip()
            if not line or line.startswith(("#", ";")):
                continue
            if line.startswith("["):
                section = line
                continue
            if section == "[Service]" and "=" in line:
                key, value = line.split("=", 1)
                settings.append((key.strip(), value.strip()))
    return settings


def syscall_groups():
    """{"@group": [entries]} as this machine's systemd defines them."""
    text = subprocess.run(["systemd-analyze", "syscall-filter", "--no-pager"], check=True,
                          capture_output=True, text=True).stdout
    groups, current = {}, None
    for line in text.splitlines():
        if line.startswith("@"):
            current = line.strip()
            groups[current] = []
        elif current and line.strip() and not line.strip().startswith("#"):
            groups[current].append(line.strip())
    return groups


def expand(names, groups, seen=None):
    seen = set() if seen is None else seen
    calls = set()
    for name in names:
        if name.startswith("@"):
            if name not in groups:
                sys.exit(f"unit_seccomp: unknown system call group {name}")
            if name in seen:
                continue
            seen.add(name)
            calls |= expand(groups[name], groups, seen)
        else:
            calls.add(name)
    return calls


def known(name):
    """A system call of this architecture (libseccomp gives others a negative number)."""
    try:
        return seccomp.resolve_syscall(seccomp.Arch.NATIVE, name) >= 0
    except (ValueError, RuntimeError):
        return False


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    unit, argv = sys.argv[1], sys.argv[2:]
    groups = syscall_groups()
    allowed, have_filter = None, False
    error_number = None
    families, restrict_namespaces, lock_personality, restrict_realtime = None, False, False, False
    for key, value in service_settings(unit):
        if key == "SystemCallFilter":
            have_filter = True
            deny = value.startswith("~")
            names = value.lstrip("~").split()
            calls = expand(names, groups)
            if deny:
                if allowed is None:
                    sys.exit("unit_seccomp: a deny-only SystemCallFilter is not reproduced")
                allowed -= calls
            else:
                allowed = calls if allowed is None else allowed | calls
        elif key == "SystemCallErrorNumber":
            error_number = getattr(errno, value, None)
            if error_number is None:
                sys.exit(f"unit_seccomp: unknown errno name {value}")
        elif key == "SystemCallArchitectures":
            if value != "native":
                sys.exit(f"unit_seccomp: SystemCallArchitectures={value} is not reproduced")
        elif key == "RestrictNamespaces":
            if value != "yes":
                sys.exit(f"unit_seccomp: RestrictNamespaces={value} is not reproduced")
            restrict_namespaces = True
        elif key == "RestrictAddressFamilies":
            families = set()
            for name in value.split():
                families.add(int(getattr(socket, name)))
        elif key == "LockPersonality":
            lock_personality = value == "yes"
        elif key == "RestrictRealtime":
            restrict_realtime = value == "yes"
    if not have_filter:
        sys.exit("unit_seccomp: the unit has no SystemCallFilter=")

    # Filter 1, the allow-list. The kernel runs every loaded filter and takes the most
    # restrictive answer, so filter 2's refusals hold whatever filter 1 allows.
    default = seccomp.ERRNO(error_number) if error_number is not None else seccomp.KILL_PROCESS
    allow_list = seccomp.SyscallFilter(defaction=default)
    skipped = sorted(name for name in allowed if not known(name))
    for name in sorted(allowed - set(skipped)):
        if lock_personality and name == "personality":
            # Only the two values; the list's default answers any other.
            for persona in (PER_LINUX, PER_QUERY):
                allow_list.add_rule(seccomp.ALLOW, name, seccomp.Arg(0, seccomp.EQ, persona))
        else:
            allow_list.add_rule(seccomp.ALLOW, name)
    # Filter 2: argument checks.
    checks = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    eperm = seccomp.ERRNO(errno.EPERM)
    if restrict_namespaces:
        for flag in CLONE_NEW_FLAGS.values():
            # x86_64 clone(flags, ...), unshare(flags).
            checks.add_rule(eperm, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
            checks.add_rule(eperm, "unshare", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
        checks.add_rule(eperm, "setns")
        checks.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    if families is not None:
        refuse = seccomp.ERRNO(errno.EAFNOSUPPORT)
        top = 46  # AF_MAX on Linux 6.1
        for family in range(top):
            if family not in families:
                checks.add_rule(refuse, "socket", seccomp.Arg(0, seccomp.EQ, family))
        checks.add_rule(refuse, "socket", seccomp.Arg(0, seccomp.GE, top))
    if restrict_realtime:
        for policy in SCHED_REALTIME:
            checks.add_rule(eperm, "sched_setscheduler", seccomp.Arg(1, seccomp.EQ, policy))
    print(f"unit_seccomp: {len(allowed) - len(skipped)} system calls allowed "
          f"({len(skipped)} of the lists unknown here)", file=sys.stderr)
    checks.load()
    allow_list.load()
    os.execv(argv[0], argv)


if __name__ == "__main__":
    main()
