#!/usr/bin/env bash
# --path.rootfs other than "/": the host's QEMU emulators run inside the host root
# (chrooted in the child, collectors/src/subprocess.cpp), against the host's libraries,
# as they must in a container that mounts the host at /host. Without a container
# engine: a mount namespace (unshare -m) where
#   - $work/host is a host-like root: the machine's /usr and /etc bound read-only
#     (taken before anything is hidden), the usrmerge links, /proc, /sys and /dev;
#   - the agent's own view then loses every library QEMU loads and the agent does not
#     (each covered by an empty file), the way a container image lacks the host's
#     libraries. qemu-system-x86_64 run directly from $work/host then fails, which the
#     test checks first;
#   - the agent runs with --path.rootfs=$work/host and must list the QEMU guests with
#     the same machines, and the same whole document, as the agent on the live root;
#   - as in the container image (deploy/container/Containerfile): the agent installed
#     as the build stage installs it (`cmake --install --component Unspecified`,
#     RUNPATH $ORIGIN/../lib/virtcaps), with the file capability cap_sys_chroot+p, and
#     a loader cache that lists the shims' directory first (the image's
#     /etc/ld.so.conf.d/00-virtcaps.conf: secure-mode loading ignores $ORIGIN), run by
#     an unprivileged user (nobody) under a bounding set of CAP_SYS_CHROOT alone (the
#     DaemonSet's drop ALL, add SYS_CHROOT), gets the QEMU guests nobody gets on the
#     live root; the same install without the file capability gets the error that
#     names CAP_SYS_CHROOT, and the rest of its document.
# Needs root (unshare -m, chroot).
# Usage: check_rootfs_emulators.sh AGENT_BINARY SOURCE_DIR BUILD_DIR
set -euo pipefail
agent=$(realpath "$1")
source_dir=$(realpath "$2")
build_dir=$(realpath "$3")
here=$(dirname "$(realpath "$0")")
source "$here/lib.sh"
[[ $(id -u) -eq 0 ]] || fail "must run as root (unshare -m, chroot)"
need_packages qemu-system-x86 util-linux libxml2-utils libcap2-bin
ok() { echo "ok   $*"; }
emulator=/usr/bin/qemu-system-x86_64
[[ -x $emulator ]] || fail "$emulator is missing"
work=$(mktemp -d -p /run virtcaps-rootfs.XXXXXX)
trap 'rm -rf "$work"' EXIT

config() {  # name: the packaged configuration with a cache directory of its own
  mkdir -p "$work/cache-$1"
  chmod 0700 "$work/cache-$1"
  sed "s|^    cache_dir: /var/cache/virtcaps\$|    cache_dir: $work/cache-$1|" \
    "$source_dir/config/virtcaps.yaml" >"$work/$1.yaml"
  grep -q "cache_dir: $work/cache-$1" "$work/$1.yaml" || fail "no cache_dir in config/virtcaps.yaml"
}

# The reference: the agent on the live root.
config live
"$agent" --config.file="$work/live.yaml" --once --format xml >"$work/live.xml" 2>"$work/live.err" \
  || fail "live run: $(tail -5 "$work/live.err")"
grep -q "<emulator>$emulator</emulator>" "$work/live.xml" || fail "the live run lists no $emulator guest"

# The same as nobody (who may lack /dev/kvm here), for the runs as nobody below.
config live-nobody
chown nobody:nogroup "$work/cache-live-nobody"
chmod 0755 "$work"
(cd / && setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$agent" \
   --config.file="$work/live-nobody.yaml" --once --format xml) >"$work/live-nobody.xml" \
  2>"$work/live-nobody.err" || fail "live run as nobody: $(tail -5 "$work/live-nobody.err")"

# Libraries QEMU loads that the agent does not (nor mount, which hides them one by
# one): hidden from the agent's view below.
libraries() { ldd "$@" | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | xargs -r realpath | sort -u; }
comm -23 <(libraries "$emulator") <(libraries "$agent" "$(command -v mount)") >"$work/hidden"
[[ -s $work/hidden ]] || fail "QEMU loads no library the agent does not: nothing to hide"

config rootfs
config fcap
config nocap
chown nobody:nogroup "$work/cache-fcap" "$work/cache-nocap"
chmod 0755 "$work"
# The image's layout, twice: with and without the file capability.
for copy in fcap nocap; do
  DESTDIR="$work/image-$copy" cmake --install "$build_dir" --prefix /usr --component Unspecified \
    >"$work/install.log" 2>&1 || fail "cmake --install: $(cat "$work/install.log")"
  chmod -R a+rX "$work/image-$copy"
done
setcap cap_sys_chroot+p "$work/image-fcap/usr/bin/virtcaps-agent"
[[ $(getcap "$work/image-fcap/usr/bin/virtcaps-agent") == *cap_sys_chroot=p* ]] \
  || fail "setcap: $(getcap "$work/image-fcap/usr/bin/virtcaps-agent")"
# The loader cache the image's ldconfig makes: the shims' directory first.
printf '%s\n%s\ninclude /etc/ld.so.conf.d/*.conf\n' "$work/image-fcap/usr/lib/virtcaps" \
  "$work/image-nocap/usr/lib/virtcaps" >"$work/ld.so.conf"
ldconfig -f "$work/ld.so.conf" -C "$work/ld.so.cache" 2>"$work/ldconfig.log" || fail "ldconfig: $(cat "$work/ldconfig.log")"
unshare --mount --propagation private -- /bin/bash -euo pipefail -c '
  work=$1 agent=$2 emulator=$3
  host=$work/host
  mkdir -p "$host"/{usr,etc,proc,sys,dev,run,tmp,var}
  mount --bind /usr "$host/usr" && mount -o remount,bind,ro "$host/usr"
  mount --bind /etc "$host/etc" && mount -o remount,bind,ro "$host/etc"
  for link in bin sbin lib lib64 lib32 libx32; do
    if [[ -L /$link ]]; then ln -s "$(readlink "/$link")" "$host/$link"; fi
  done
  mount --rbind /proc "$host/proc"
  mount --rbind /sys "$host/sys"
  mount --rbind /dev "$host/dev"
  # Now the agent side loses the libraries.
  while read -r library; do mount --bind /dev/null "$library"; done <"$work/hidden"
  if "$host$emulator" -version >"$work/direct.out" 2>&1; then
    echo "direct run worked: the libraries are not hidden" >"$work/direct.status"
  else
    echo "refused" >"$work/direct.status"
  fi
  "$agent" --config.file="$work/rootfs.yaml" --path.rootfs="$host" --once --format xml \
    >"$work/rootfs.xml" 2>"$work/rootfs.err"
  "$agent" --config.file="$work/rootfs.yaml" --path.rootfs="$host" --once --format prometheus \
    >"$work/rootfs.prom" 2>>"$work/rootfs.err"
  # The container case: unprivileged, CAP_SYS_CHROOT only from the file capability,
  # the shims through the loader cache.
  mount --bind "$work/ld.so.cache" /etc/ld.so.cache
  for copy in fcap nocap; do
    (cd / && setpriv --reuid=nobody --regid=nogroup --clear-groups --inh-caps=-all \
       --bounding-set=-all,+sys_chroot -- "$work/image-$copy/usr/bin/virtcaps-agent" \
       --config.file="$work/$copy.yaml" --path.rootfs="$host" --once --format xml \
       >"$work/$copy.xml" 2>"$work/$copy.err") || true
  done
' rootfs "$work" "$agent" "$emulator" || fail "the run with --path.rootfs: $(tail -5 "$work/rootfs.err" 2>/dev/null)"

[[ $(cat "$work/direct.status") == refused ]] || fail "$(cat "$work/direct.status")"
ok "with $(wc -l <"$work/hidden") of QEMU's libraries hidden, $emulator under the host root does not start directly: $(grep -m1 -o 'error while loading shared libraries: [^:]*' "$work/direct.out" || head -1 "$work/direct.out")"
grep -q "<emulator>$emulator</emulator>" "$work/rootfs.xml" \
  || fail "no $emulator guest with --path.rootfs: $(grep -i qemu "$work/rootfs.err" | head -5)"
grep -q '^virtcaps_scrape_collector_success{collector="qemu"} 1$' "$work/rootfs.prom" \
  || fail "the qemu collector failed with --path.rootfs: $(cat "$work/rootfs.err")"
guests() { xmllint --xpath '//guest[arch/emulator[starts-with(., "/usr/bin/qemu-system-")]]' "$1"; }
diff -u <(guests "$work/live.xml") <(guests "$work/rootfs.xml") >"$work/guests.diff" \
  || fail "the QEMU guests differ with --path.rootfs: $(head -40 "$work/guests.diff")"
machines=$(guests "$work/rootfs.xml" | grep -c '<machine')
ok "--path.rootfs=$work/host: the QEMU guests, $machines machines, as on the live root"
diff -u "$work/live.xml" "$work/rootfs.xml" >"$work/whole.diff" \
  || fail "the capabilities differ with --path.rootfs: $(head -40 "$work/whole.diff")"
ok "--path.rootfs=$work/host: the whole capabilities document as on the live root"
diff -u <(guests "$work/live-nobody.xml") <(guests "$work/fcap.xml") >"$work/fcap.diff" \
  || fail "as nobody with cap_sys_chroot+p the QEMU guests differ: $(head -20 "$work/fcap.diff"; tail -3 "$work/fcap.err")"
ok "the image's layout as nobody, with cap_sys_chroot+p, the shims from the loader cache, CAP_SYS_CHROOT alone in the bounding set: the QEMU guests nobody gets on the live root"
! grep -q '<emulator>/usr/bin/qemu-system-' "$work/nocap.xml" || fail "without CAP_SYS_CHROOT the QEMU guests appeared"
grep -q "<arch>" "$work/nocap.xml" || fail "without CAP_SYS_CHROOT the document lost its host part"
grep -q 'chroot: Operation not permitted (the agent needs CAP_SYS_CHROOT)' "$work/nocap.err" \
  || fail "without CAP_SYS_CHROOT, no error naming it: $(tail -3 "$work/nocap.err")"
ok "the same without the file capability: the host part, and the error 'chroot: Operation not permitted (the agent needs CAP_SYS_CHROOT)'"
echo "check_rootfs_emulators: passed"
