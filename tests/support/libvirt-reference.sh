#!/usr/bin/env bash
# Records what the real libvirt on this machine says about it, for the live tests that
# compare the agent with libvirt on whatever machine they run on.
# Usage: tests/support/libvirt-reference.sh OUTDIR
# Writes OUTDIR/capabilities.xml, OUTDIR/domcaps-qemu.xml and, when libvirt's QEMU driver
# can use KVM here, OUTDIR/domcaps-kvm.xml. Starts a libvirtd (root only; it exits by
# itself after two idle minutes) when none is listening. Exit 77 when libvirt cannot run
# here (not root, no libvirtd installed), 1 on any other failure.
set -euo pipefail
out=${1:?usage: libvirt-reference.sh OUTDIR}
mkdir -p "$out"
uri=qemu:///system
socket=/run/libvirt/libvirt-sock
if ! command -v virsh >/dev/null || ! command -v libvirtd >/dev/null; then
  echo "libvirt-reference: virsh/libvirtd not installed" >&2
  exit 77
fi
# Tests run in parallel (ctest -j): one of them starts the daemon, the others wait.
exec 9>"${TMPDIR:-/tmp}/virtcaps-test-libvirtd.lock"
flock 9
if [[ ! -S $socket ]] || ! virsh -c "$uri" version >/dev/null 2>&1; then
  if [[ $(id -u) -ne 0 ]]; then
    echo "libvirt-reference: no libvirtd listening and not root to start one" >&2
    exit 77
  fi
  libvirtd --daemon --timeout 120 --pid-file /run/virtcaps-test-libvirtd.pid
  for _ in $(seq 1 100); do
    if virsh -c "$uri" version >/dev/null 2>&1; then break; fi
    sleep 0.1
  done
fi
flock -u 9
# The first call after a start probes every emulator; give it time.
timeout 120 virsh -c "$uri" capabilities >"$out/capabilities.xml"
timeout 120 virsh -c "$uri" domcapabilities --virttype qemu >"$out/domcaps-qemu.xml"
if grep -q "<domain type='kvm'" "$out/capabilities.xml"; then
  timeout 120 virsh -c "$uri" domcapabilities --virttype kvm >"$out/domcaps-kvm.xml"
else
  rm -f "$out/domcaps-kvm.xml"
fi
virsh -c "$uri" version >"$out/version.txt"
