#!/usr/bin/env bash
# The Debian package end to end: `cpack -G DEB` in the build tree, lintian (no errors or
# warnings), hardening-check on the packaged binary, `dpkg -i` (root), the
# installed files, conffile, user and cache directory, the installed agent (--check-config
# with /etc/virtcaps/virtcaps.yaml, --once XML against libvirt's schema, as the virtcaps
# user), the unit enabled by deb-systemd-helper, the installed unit with systemd-analyze,
# the man page, `dpkg -s` metadata, then
# `dpkg -r` (the configuration stays) and `dpkg --purge` (nothing stays). The machine is
# left as it was: the virtcaps user is deleted again if this test created it.
# Exits 77 (skipped) if virtcaps-agent is already installed: it is not this test's to remove.
# Usage: check_deb.sh BUILD_DIR
set -euo pipefail
build_dir=$(realpath "$1")
here=$(dirname "$(realpath "$0")")
source "$here/lib.sh"
[[ $(id -u) -eq 0 ]] || fail "must run as root (dpkg -i)"
# dpkg-dev and file for CPack's dpkg-shlibdeps, libvirt0 for capability.rng, lintian
# and devscripts (hardening-check) for the package's own checks.
need_packages dpkg-dev file libxml2-utils libvirt0 adduser man-db lintian devscripts init-system-helpers
# systemd-analyze, if systemd installs here (it does not take over a machine booted
# without it; systemd-sysv would).
(need_packages systemd) || true
source_dir=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$build_dir/CMakeCache.txt")
[[ -d $source_dir ]] || fail "no source directory in $build_dir/CMakeCache.txt"
package=virtcaps-agent

if dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -qv "not-installed"; then
  echo "SKIP: $package is already installed (or has its configuration left); not touching it"
  exit 77
fi
user_existed=0
if getent passwd virtcaps >/dev/null; then user_existed=1; fi

work=$(mktemp -d)
cleanup() {
  if dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -qv "not-installed"; then
    dpkg --purge "$package" >/dev/null 2>&1 || true
  fi
  if [[ $user_existed == 0 ]] && getent passwd virtcaps >/dev/null; then
    userdel virtcaps 2>/dev/null || true
    if getent group virtcaps >/dev/null; then groupdel virtcaps 2>/dev/null || true; fi
  fi
  rm -rf "$work"
}
trap cleanup EXIT
ok() { echo "ok   $*"; }

# --- build the package
(cd "$build_dir" && rm -f "${package}"_*.deb && cpack -G DEB) >"$work/cpack.log" 2>&1 \
  || fail "cpack -G DEB: $(tail -20 "$work/cpack.log")"
debs=("$build_dir/${package}"_*.deb)
[[ ${#debs[@]} == 1 && -f ${debs[0]} ]] || fail "expected one ${package}_*.deb, got ${debs[*]}"
deb=${debs[0]}
# The package version is the upstream version plus the Debian revision, and the
# latest entry of deploy/debian/changelog names exactly it.
upstream_version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build_dir/CMakeCache.txt")
version=$(dpkg-parsechangelog -l "$source_dir/deploy/debian/changelog" -S Version)
[[ $version == "$upstream_version"-[0-9]* ]] \
  || fail "deploy/debian/changelog's version $version is not $upstream_version-REVISION"
arch=$(dpkg --print-architecture)
[[ $(basename "$deb") == "${package}_${version}_${arch}.deb" ]] \
  || fail "package file $(basename "$deb"), want ${package}_${version}_${arch}.deb"
ok "cpack made $(basename "$deb") ($(du -h "$deb" | cut -f1))"
dpkg-deb --contents "$deb" >"$work/contents"
if awk '{print $2}' "$work/contents" | grep -qv '^root/root$'; then
  fail "files not owned by root/root in the package: $(awk '$2 != "root/root"' "$work/contents")"
fi
ok "every file in the package belongs to root/root"

# --- lintian (Debian 12's): no error and no warning. Info and pedantic tags are shown;
# README ("Debian package") lists those that stay and why, and every override in
# /usr/share/lintian/overrides/virtcaps-agent carries its reason.
# As nobody: lintian warns against running as root, and needs no privilege.
chmod 0755 "$work"
cp "$deb" "$work/lintian.deb" && chmod 0644 "$work/lintian.deb"
(cd / && setpriv --reuid=nobody --regid=nogroup --clear-groups env HOME=/nonexistent TMPDIR=/tmp \
   lintian --pedantic --display-info --tag-display-limit 0 --fail-on error,warning "$work/lintian.deb") \
  >"$work/lintian.log" 2>&1 || fail "lintian: $(cat "$work/lintian.log")"
grep -E '^[EW]: ' "$work/lintian.log" && fail "lintian reported errors or warnings"
ok "lintian: no errors, no warnings$( [[ -s $work/lintian.log ]] && printf '; shown: %s' "$(cut -d' ' -f3 "$work/lintian.log" | sort | uniq -c | awk '{printf "%s%s (%s)", sep, $2, $1; sep=", "}')")"

# --- Debian's hardening flags in the packaged binary (and the TLS shims). Not asked
# for: control-flow protection (-fcf-protection), which Debian 12's dpkg-buildflags
# does not add (later releases do, with hardening=+branch); and the shims, whose few
# small functions have no local arrays, get no stack canary from
# -fstack-protector-strong, so that check is off for them alone.
dpkg-deb -x "$deb" "$work/hardening"
hardening-check --nocfprotection "$work/hardening/usr/bin/virtcaps-agent" >"$work/hardening.log" 2>&1 \
  || fail "hardening-check /usr/bin/virtcaps-agent: $(cat "$work/hardening.log")"
for property in "Position Independent Executable: yes" "Stack protected: yes" \
                "Fortify Source functions: yes" "Read-only relocations: yes" "Immediate binding: yes"; do
  grep -qF "$property" "$work/hardening.log" || fail "hardening-check: not '$property': $(cat "$work/hardening.log")"
done
for shim in usr/lib/virtcaps/libssl.so usr/lib/virtcaps/libcrypto.so; do
  hardening-check --nocfprotection --nostackprotector "$work/hardening/$shim" >"$work/hardening.log" 2>&1 \
    || fail "hardening-check /$shim: $(cat "$work/hardening.log")"
done
# The TLS module is built with _FORTIFY_SOURCE too, but its only libc calls with a
# checked variant are std::string's memcpy/memmove/strlen of run-time sizes, which
# FORTIFY leaves as they are: hardening-check would say "only unprotected functions".
module=usr/lib/virtcaps/libvirtcaps-tls.so
hardening-check --nocfprotection --nofortify "$work/hardening/$module" >"$work/hardening.log" 2>&1 \
  || fail "hardening-check /$module: $(cat "$work/hardening.log")"
grep -qF "Stack protected: yes" "$work/hardening.log" || fail "hardening-check /$module: $(cat "$work/hardening.log")"
ok "hardening-check: PIE, stack protector, FORTIFY, RELRO, BIND_NOW in /usr/bin/virtcaps-agent (and the TLS module and shims pass)"

# --- install
dpkg -i "$deb" >"$work/dpkg-i.log" 2>&1 || fail "dpkg -i: $(cat "$work/dpkg-i.log")"
[[ $(dpkg-query -W -f='${Status}' "$package") == "install ok installed" ]] || fail "not installed"
ok "dpkg -i $(basename "$deb")"

expect_file() {  # path, mode (octal), [source file it must equal]
  [[ -f $1 ]] || fail "$1 is missing"
  [[ $(stat -c %a "$1") == "$2" ]] || fail "$1 has mode $(stat -c %a "$1"), want $2"
  dpkg -S "$1" >/dev/null 2>&1 || fail "$1 does not belong to the package"
  if [[ $# -gt 2 ]]; then cmp -s "$1" "$3" || fail "$1 differs from $3"; fi
}
expect_file /usr/bin/virtcaps-agent 755
expect_file /usr/lib/virtcaps/libssl.so 644
expect_file /usr/lib/virtcaps/libcrypto.so 644
expect_file /usr/lib/virtcaps/libvirtcaps-tls.so 644
expect_file /etc/virtcaps/virtcaps.yaml 644 "$source_dir/config/virtcaps.yaml"
expect_file /lib/systemd/system/virtcaps-agent.service 644 "$source_dir/deploy/systemd/virtcaps-agent.service"
for file in prometheus/prometheus.yml prometheus/virtcaps-alerts.yml prometheus/virtcaps-alerts.test.yml \
            grafana/virtcaps-fleet.json textfile/virtcaps-textfile.cron textfile/virtcaps-textfile.service \
            textfile/virtcaps-textfile.timer; do
  expect_file "/usr/share/virtcaps/$file" 644 "$source_dir/deploy/$file"
done
expect_file /usr/share/virtcaps/textfile/virtcaps-textfile.sh 755 "$source_dir/deploy/textfile/virtcaps-textfile.sh"
# Documentation is checked in the package itself: minimal images often tell dpkg not to
# install /usr/share/doc and /usr/share/man (path-exclude).
dpkg-deb -x "$deb" "$work/extract"
for file in usr/share/man/man1/virtcaps-agent.1.gz usr/share/doc/$package/README.md \
            usr/share/doc/$package/metrics.md usr/share/doc/$package/copyright \
            usr/share/doc/$package/changelog.Debian.gz usr/share/lintian/overrides/$package; do
  grep -q " \./$file\$" "$work/contents" || fail "the package lacks /$file"
  [[ $(stat -c %a "$work/extract/$file") == 644 ]] || fail "/$file has mode $(stat -c %a "$work/extract/$file")"
done
cmp -s "$work/extract/usr/share/doc/$package/README.md" "$source_dir/README.md" || fail "README.md differs"
cmp -s "$work/extract/usr/share/doc/$package/metrics.md" "$source_dir/docs/metrics.md" || fail "metrics.md differs"
cmp -s "$work/extract/usr/share/doc/$package/copyright" "$source_dir/deploy/debian/copyright" || fail "copyright differs"
zcat "$work/extract/usr/share/doc/$package/changelog.Debian.gz" | cmp -s - "$source_dir/deploy/debian/changelog" \
  || fail "changelog.Debian.gz is not deploy/debian/changelog"
ok "$(dpkg -L "$package" | while read -r f; do [[ -f $f ]] && echo; done | wc -l) files in place with their modes and contents"

conffiles=$(dpkg-query -W -f='${Conffiles}' "$package")
grep -q '^ /etc/virtcaps/virtcaps.yaml [0-9a-f]\{32\}$' <<<"$conffiles" \
  || fail "/etc/virtcaps/virtcaps.yaml is not a conffile: $conffiles"
ok "/etc/virtcaps/virtcaps.yaml is a conffile"

# --- postinst: user and cache directory
IFS=: read -r _ _ uid gid _ _ shell < <(getent passwd virtcaps) || fail "no user virtcaps"
[[ $uid -lt 1000 && $shell == /usr/sbin/nologin ]] || fail "virtcaps is not a system user: uid $uid, shell $shell"
[[ $(getent group "$gid" | cut -d: -f1) == virtcaps ]] || fail "virtcaps's group is not virtcaps"
if getent group kvm >/dev/null; then
  id -nG virtcaps | tr ' ' '\n' | grep -qx kvm || fail "virtcaps is not in group kvm"
  ok "system user virtcaps (uid $uid), member of kvm"
else
  ok "system user virtcaps (uid $uid); no kvm group on this machine"
fi
[[ $(stat -c '%U:%G %a' /var/cache/virtcaps) == "virtcaps:virtcaps 750" ]] \
  || fail "/var/cache/virtcaps is $(stat -c '%U:%G %a' /var/cache/virtcaps 2>&1)"
ok "/var/cache/virtcaps belongs to virtcaps, mode 750"

# --- the unit's enable state, kept by deb-systemd-helper (systemd need not run)
wants=/etc/systemd/system/multi-user.target.wants/virtcaps-agent.service
dsh_state=/var/lib/systemd/deb-systemd-helper-enabled/virtcaps-agent.service.dsh-also
[[ $(readlink "$wants") == /lib/systemd/system/virtcaps-agent.service ]] \
  || fail "postinst did not enable the unit: $wants is '$(readlink "$wants" 2>&1)'"
[[ -f $dsh_state ]] || fail "no deb-systemd-helper state $dsh_state"
ok "postinst enabled virtcaps-agent.service through deb-systemd-helper ($wants)"

# --- the installed agent
ldd /usr/bin/virtcaps-agent >"$work/ldd"
! grep -q 'not found' "$work/ldd" || fail "unresolved libraries: $(grep 'not found' "$work/ldd")"
# OpenSSL only through the TLS module, which the agent dlopens when TLS is configured.
! grep -q 'libssl\|libcrypto' "$work/ldd" || fail "the agent links OpenSSL itself: $(grep 'libssl\|libcrypto' "$work/ldd")"
ldd /usr/lib/virtcaps/libvirtcaps-tls.so >"$work/ldd-tls"
! grep -q 'not found' "$work/ldd-tls" || fail "the TLS module's unresolved libraries: $(grep 'not found' "$work/ldd-tls")"
grep -q '^\s*libssl.so => /usr/lib/virtcaps/libssl.so ' "$work/ldd-tls" \
  || fail "the TLS module does not load the shim from /usr/lib/virtcaps: $(grep libssl "$work/ldd-tls")"
ok "the installed agent resolves every library without OpenSSL; its TLS module loads the shims from /usr/lib/virtcaps"
/usr/bin/virtcaps-agent --version | grep -q "^virtcaps-agent $upstream_version " || fail "--version: $(/usr/bin/virtcaps-agent --version)"
/usr/bin/virtcaps-agent --check-config --config.file=/etc/virtcaps/virtcaps.yaml >"$work/check.log" 2>&1 \
  || fail "--check-config: $(cat "$work/check.log")"
ok "virtcaps-agent --check-config --config.file=/etc/virtcaps/virtcaps.yaml"
/usr/bin/virtcaps-agent --config.file=/etc/virtcaps/virtcaps.yaml --once --format xml >"$work/caps.xml" 2>"$work/once.log" \
  || fail "--once --format xml: $(cat "$work/once.log")"
# libvirt's names (sse4.1) need the one widened pattern: tests/support/capability-schema.sh.
schema=$("$source_dir/tests/support/capability-schema.sh" "$work/schemas")
xmllint --noout --relaxng "$schema" "$work/caps.xml" 2>"$work/xmllint.log" \
  || fail "capabilities XML is not valid against $schema: $(cat "$work/xmllint.log")"
ok "virtcaps-agent --once --format xml is valid against $schema"
# As the service runs: the unprivileged user, from /var/cache/virtcaps's point of view.
(cd / && runuser -u virtcaps -- /usr/bin/virtcaps-agent --config.file=/etc/virtcaps/virtcaps.yaml \
   --once --format prometheus) >"$work/user.prom" 2>"$work/user.log" \
  || fail "--once as user virtcaps: $(cat "$work/user.log")"
grep -q '^virtcaps_scrape_collector_success{collector="cpu"} 1$' "$work/user.prom" \
  || fail "as user virtcaps the cpu collector failed: $(cat "$work/user.log")"
if command -v promtool >/dev/null; then
  # One accepted finding: promtool takes every "bits" for a data size, but an address
  # width in bits is not one (as in tests/e2e/schema_and_lint.sh).
  promtool check metrics <"$work/user.prom" 2>&1 \
    | grep -v '^virtcaps_cpu_physical_address_width_bits use base unit' >"$work/promtool.log" || true
  [[ ! -s $work/promtool.log ]] || fail "promtool check metrics: $(cat "$work/promtool.log")"
fi
ok "virtcaps-agent --once --format prometheus as user virtcaps ($(grep -c '^virtcaps_' "$work/user.prom") samples)"
TEXTFILE_DIR="$work" /usr/share/virtcaps/textfile/virtcaps-textfile.sh 2>"$work/textfile.log" \
  || fail "the packaged textfile script: $(cat "$work/textfile.log")"
grep -q '^virtcaps_build_info{' "$work/virtcaps.prom" || fail "the packaged textfile script wrote no metrics"
ok "the packaged textfile script writes virtcaps.prom with the packaged configuration"

# --- the installed units (real binary and user now) and the man page
if command -v systemd-analyze >/dev/null; then
  # --man=no when dpkg left the man page out (path-exclude); it is checked below.
  man_option=--man=yes
  [[ -f /usr/share/man/man1/virtcaps-agent.1.gz ]] || man_option=--man=no
  SYSTEMD_LOG_COLOR=0 systemd-analyze verify $man_option /lib/systemd/system/virtcaps-agent.service \
    >"$work/verify.log" 2>&1 && [[ ! -s $work/verify.log ]] || fail "systemd-analyze verify: $(cat "$work/verify.log")"
  ok "systemd-analyze verify $man_option /lib/systemd/system/virtcaps-agent.service"
  cp /usr/share/virtcaps/textfile/virtcaps-textfile.service /usr/share/virtcaps/textfile/virtcaps-textfile.timer "$work/"
  SYSTEMD_LOG_COLOR=0 systemd-analyze verify $man_option "$work/virtcaps-textfile.service" "$work/virtcaps-textfile.timer" \
    >"$work/verify.log" 2>&1 && [[ ! -s $work/verify.log ]] || fail "systemd-analyze verify textfile units: $(cat "$work/verify.log")"
  ok "systemd-analyze verify the packaged virtcaps-textfile.service and .timer"
else
  echo "skip systemd-analyze is not available (systemd could not be installed); the unit's flags were checked with --check-config by check_deploy.sh"
fi
MANWIDTH=80 man --warnings -l "$work/extract/usr/share/man/man1/virtcaps-agent.1.gz" >"$work/man.txt" 2>"$work/man.log" \
  && [[ ! -s $work/man.log ]] || fail "man page: $(cat "$work/man.log")"
missing=()
for flag in $(/usr/bin/virtcaps-agent --help | grep -o '^  --[a-z][a-z.-]*' | sed 's/NAME$//'); do
  grep -qF -- "$flag" "$work/man.txt" || missing+=("$flag")
done
[[ ${#missing[@]} -eq 0 ]] || fail "flags of --help missing from the man page: ${missing[*]}"
ok "the man page renders without warnings and names every flag of --help"

# --- dpkg -s metadata
dpkg -s "$package" >"$work/status"
field() { sed -n "s/^$1: //p" "$work/status"; }
[[ $(field Version) == "$version" ]] || fail "Version $(field Version), want $version"
[[ $(field Architecture) == "$arch" ]] || fail "Architecture $(field Architecture)"
[[ $(field Section) == admin && $(field Priority) == optional ]] || fail "Section/Priority: $(field Section)/$(field Priority)"
[[ -n $(field Maintainer) && -n $(field Homepage) ]] || fail "no Maintainer or Homepage"
[[ $(field Description) == "virtualization capabilities of a host as libvirt XML and Prometheus metrics" ]] \
  || fail "Description: $(field Description)"
[[ $(field Installed-Size) -gt 0 ]] || fail "Installed-Size: $(field Installed-Size)"
depends=$(field Depends)
# Every library the installed agent loads from outside the package is a dependency.
# The libraries the agent itself links (its NEEDED entries): what those load in turn
# (libssl's libcrypto, ...) is their own packages' dependencies.
direct=$(readelf -d /usr/bin/virtcaps-agent | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
needed=(adduser)
while read -r soname path; do
  grep -qxF "$soname" <<<"$direct" || continue
  owner=$(dpkg -S "*/$(basename "$path")" 2>/dev/null | grep -F "$(dirname "$path" | sed 's|^/usr||')/" | head -1 | cut -d: -f1)
  [[ -n $owner ]] && needed+=("$owner")
done < <(awk '$2 == "=>" && $3 !~ /virtcaps/ {print $1, $3}' "$work/ldd")
depends_names=$(tr ',' '\n' <<<"$depends" | sed 's/^ *//; s/ .*//')
for dependency in $(printf '%s\n' "${needed[@]}" | sort -u); do
  grep -qxF "$dependency" <<<"$depends_names" || fail "Depends lacks $dependency: $depends"
done
ok "dpkg -s: $package $version $arch, Depends: $depends"

# --- configuration survives reinstall and removal, purge removes everything
echo "# changed by check_deb.sh" >>/etc/virtcaps/virtcaps.yaml
dpkg -i "$deb" </dev/null >"$work/dpkg-i2.log" 2>&1 || fail "reinstall: $(cat "$work/dpkg-i2.log")"
tail -1 /etc/virtcaps/virtcaps.yaml | grep -q 'changed by check_deb.sh' || fail "reinstall replaced the changed configuration"
ok "reinstalling keeps a changed /etc/virtcaps/virtcaps.yaml, without a prompt"
# An administrator's "disabled" survives an upgrade (was-enabled), and "enabled" comes back.
# (systemctl enable/disable work on the unit files without a running systemd.)
systemctl disable virtcaps-agent.service >/dev/null 2>&1 || fail "systemctl disable failed"
[[ ! -e $wants && ! -L $wants ]] || fail "systemctl disable left $wants"
dpkg -i "$deb" </dev/null >"$work/dpkg-i3.log" 2>&1 || fail "reinstall: $(cat "$work/dpkg-i3.log")"
[[ ! -e $wants && ! -L $wants ]] || fail "reinstalling enabled the unit the administrator had disabled"
systemctl enable virtcaps-agent.service >/dev/null 2>&1 || fail "systemctl enable failed"
[[ -L $wants ]] || fail "systemctl enable made no $wants"
ok "reinstalling keeps the unit disabled when the administrator disabled it"
dpkg -r "$package" >"$work/dpkg-r.log" 2>&1 || fail "dpkg -r: $(cat "$work/dpkg-r.log")"
[[ $(readlink /etc/systemd/system/virtcaps-agent.service) == /dev/null ]] \
  || fail "postrm remove did not mask the unit (its configuration stays, its binary is gone)"
[[ ! -e /usr/bin/virtcaps-agent && ! -e /usr/lib/virtcaps && ! -e /usr/share/virtcaps ]] \
  || fail "dpkg -r left files behind"
[[ -f /etc/virtcaps/virtcaps.yaml ]] || fail "dpkg -r removed the conffile"
[[ $(dpkg-query -W -f='${Status}' "$package") == "deinstall ok config-files" ]] || fail "status after dpkg -r"
ok "dpkg -r removes the files, keeps /etc/virtcaps/virtcaps.yaml, masks the unit"
dpkg --purge "$package" >"$work/dpkg-purge.log" 2>&1 || fail "dpkg --purge: $(cat "$work/dpkg-purge.log")"
[[ ! -e /etc/virtcaps && ! -e /var/cache/virtcaps ]] || fail "dpkg --purge left /etc/virtcaps or /var/cache/virtcaps"
[[ ! -L $wants && ! -L /etc/systemd/system/virtcaps-agent.service && ! -e $dsh_state ]] \
  || fail "dpkg --purge left the unit's links or deb-systemd-helper state behind"
[[ -z $(find /var/lib/systemd/deb-systemd-helper-enabled /var/lib/systemd/deb-systemd-helper-masked \
         -name 'virtcaps-agent.service*' 2>/dev/null) ]] || fail "deb-systemd-helper state left after purge"
dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -qv "not-installed" && fail "still known to dpkg after purge"
ok "dpkg --purge removes the configuration, the cache, the unit's links and their state"
echo "check_deb: passed"
