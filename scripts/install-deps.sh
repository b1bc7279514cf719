#!/usr/bin/env bash
# Installs the Debian 12 packages virtcaps needs to build and test, if missing.
# Usage: scripts/install-deps.sh [build|test]   (test adds the test-only tools)
set -euo pipefail

build_packages=(cmake g++ make pkg-config dpkg-dev prometheus-cpp-dev libcivetweb-dev libyaml-cpp-dev
                libexpat1-dev zlib1g-dev libcrypt-dev libssl-dev)
test_packages=(libgtest-dev libgmock-dev libvirt0 libxml2-utils prometheus cpuid curl
               python3-prometheus-client
               qemu-system-x86 ovmf clang-format locales jq openssl
               libvirt-daemon-system libvirt-clients
               python3-seccomp lintian devscripts
               virtinst python3-lxml systemd)

wanted=("${build_packages[@]}")
if [[ "${1:-build}" == "test" ]]; then wanted+=("${test_packages[@]}"); fi

missing=()
for package in "${wanted[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "install-deps: installing ${missing[*]}" >&2
  $sudo apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
# The renderer tests run under a comma-decimal locale to prove numbers ignore it.
if [[ "${1:-build}" == "test" ]] && ! locale -a 2>/dev/null | grep -qi '^de_DE.utf8$'; then
  $sudo localedef -i de_DE -f UTF-8 de_DE.UTF-8
fi
