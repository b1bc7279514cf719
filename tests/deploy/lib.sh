# Shared by the tests/deploy/check_*.sh scripts (sourced, not run).

fail() { echo "FAIL: $*" >&2; exit 1; }

# Installs the Debian packages given that are missing, like scripts/install-deps.sh.
# Services the packages ship are not started (policy-rc.d), so that installing, say,
# prometheus-node-exporter never leaves a daemon listening on every address.
need_packages() {
  local missing=() package
  for package in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$package")
    fi
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  echo "installing Debian packages: ${missing[*]}" >&2
  local sudo="" policy=/usr/sbin/policy-rc.d made_policy=0
  if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod 0755 "$policy"
    made_policy=1
  fi
  local status=0
  $sudo apt-get update -q >/dev/null || status=$?
  if [[ $status -eq 0 ]]; then
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends \
      "${missing[@]}" >/dev/null || status=$?
  fi
  if [[ $made_policy -eq 1 ]]; then $sudo rm -f "$policy"; fi
  [[ $status -eq 0 ]] || fail "could not install ${missing[*]}"
}

# Debian's own Python 3 (python3-yaml is installed for it, not for a pyenv or venv one).
PYTHON=/usr/bin/python3

# Every metric family in an exposition: "name type" per line, from the # TYPE lines.
metric_types() { grep '^# TYPE ' | awk '{print $3, $4}'; }
