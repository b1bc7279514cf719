#!/usr/bin/env bash
# The file-system half of a systemd unit's sandbox, for check_systemd_security.sh (which
# lists what is reproduced and what not), then the identity and capability half
# (setpriv) and the system call half (unit_seccomp.py). Run it as root inside
# `unshare --mount --uts --propagation private`: the mounts below stay in there.
# Usage: unit_sandbox.sh UNIT_FILE WRITABLE_DIR[:WRITABLE_DIR...] nobody|root KVM_GID|- PROGRAM [ARG...]
# The writable directories stand for CacheDirectory= and ReadWritePaths=. root: uid 0
# with the unit's CapabilityBoundingSet= as its bounding set (see
# check_systemd_security.sh).
set -euo pipefail
unit=$1 writable=$2 user=$3 kvm_gid=$4
shift 4
IFS=: read -r -a writable_dirs <<<"$writable"
here=$(dirname "$(realpath "$0")")
[[ $(readlink /proc/self/ns/mnt) != $(readlink /proc/1/ns/mnt) ]] \
  || { echo "unit_sandbox: not in a mount namespace of its own" >&2; exit 1; }

# ProtectProc=invisible: a procfs of its own, showing only this user's processes.
mount -t proc -o nosuid,nodev,noexec,hidepid=invisible proc /proc
# CacheDirectory=, ReadWritePaths=: mounts of their own, so that they stay writable below.
for dir in "${writable_dirs[@]}"; do mount --bind "$dir" "$dir"; done
is_writable() { local dir; for dir in "${writable_dirs[@]}"; do [[ $1 == "$dir" ]] && return 0; done; return 1; }
# ProtectSystem=strict: every mount read-only, keeping its other options. /dev, /proc
# and /sys are left to the options after, as systemd leaves them.
remount_read_only() {  # mount point, its per-mount options
  local options=${2/#rw,/}
  [[ $options == rw ]] && options=""
  mount -o "remount,bind,ro${options:+,$options}" "$1"
}
while read -r _ _ _ _ point options _; do
  case $point in /dev | /dev/* | /proc | /proc/* | /sys | /sys/*) continue ;; esac
  is_writable "$point" && continue
  [[ $point == *\\* ]] && continue  # an escaped name (\040): none on a test machine
  remount_read_only "$point" "$options"
done < <(awk '!seen[$5]++' /proc/self/mountinfo)
# ProtectKernelTunables= and ProtectControlGroups=: /sys, every mount under it, and
# /proc's tunables read-only.
while read -r _ _ _ _ point options _; do
  case $point in /sys | /sys/*) remount_read_only "$point" "$options" ;; esac
done < <(awk '!seen[$5]++' /proc/self/mountinfo)
for path in /proc/sys /proc/sysrq-trigger /proc/irq /proc/bus /proc/fs /proc/acpi; do
  if [[ -e $path ]]; then mount --bind "$path" "$path" && mount -o remount,bind,ro "$path"; fi
done
# ProtectHome=yes, PrivateTmp=yes.
for path in /home /root /run/user; do
  if [[ -d $path ]]; then mount -t tmpfs -o ro,nosuid,nodev,mode=0755 tmpfs "$path"; fi
done
mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs /tmp
mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs /var/tmp
# ProtectKernelModules=, ProtectKernelLogs=: inaccessible, behind mode-000 stand-ins
# (made in the private /tmp, so nothing is left on the machine).
empty=$(mktemp -d -p /tmp)
touch "$empty.file"
chmod 000 "$empty" "$empty.file"
if [[ -d /usr/lib/modules ]]; then mount --bind "$empty" /usr/lib/modules; fi
for path in /proc/kmsg /dev/kmsg; do
  if [[ -e $path ]]; then mount --bind "$empty.file" "$path"; fi
done
# UMask=, then User=/Group= (an unprivileged user, group kvm), CapabilityBoundingSet=,
# AmbientCapabilities=, NoNewPrivileges=, then the unit's system call filter.
umask 0077
groups=--clear-groups
[[ $kvm_gid != - ]] && groups=--groups=$kvm_gid
identity=(--reuid=nobody --regid=nogroup "$groups")
bounding=-all
if [[ $user == root ]]; then
  identity=(--reuid=0 --regid=0 --clear-groups)
  # CapabilityBoundingSet=CAP_A CAP_B -> -all,+a,+b (empty: -all).
  for cap in $(sed -n 's/^CapabilityBoundingSet=//p' "$unit"); do
    cap=${cap#CAP_}
    bounding+=",+${cap,,}"
  done
fi
exec setpriv "${identity[@]}" --bounding-set="$bounding" --inh-caps=-all \
  --ambient-caps=-all --no-new-privs -- "$here/unit_seccomp.py" "$unit" "$@"
