#!/usr/bin/env bash
# Checks deploy/ without a container engine or a cluster:
#  (a) every YAML file parses (PyYAML) and the Kubernetes manifests agree with each other
#      and with the agent (kinds, apiVersions, hostPath / and /dev/kvm, probes on /healthz
#      answered by a running agent, port 9977 from container to Service to
#      ServiceMonitor, job name of the alert rules);
#  (b) the Containerfile's stages, packages and entrypoint flags against the real agent
#      and this build (tests/deploy/check_deploy.py);
#  (c) the systemd units with `systemd-analyze verify` (with the agent and script paths
#      pointed at this tree), and their flags with the agent's --check-config;
#  (d) the Grafana dashboard with jq.
# Usage: check_deploy.sh AGENT_BINARY SOURCE_DIR BUILD_DIR
set -euo pipefail
agent=$(realpath "$1")
source_dir=$(realpath "$2")
build_dir=$(realpath "$3")
here=$(dirname "$(realpath "$0")")
source "$here/lib.sh"
need_packages python3 python3-yaml jq
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0

# (a), (b) and the --check-config half of (c).
"$PYTHON" "$here/check_deploy.py" "$agent" "$source_dir" "$build_dir" "$work" || failures=$((failures + 1))

# (c) systemd-analyze verify. The systemd package installs on a machine that does not
# boot with systemd without taking it over (systemd-sysv is what would), so it is
# installed when missing; if that is impossible the check says so and (b)'s
# --check-config of ExecStart's flags is what remains.
if ! command -v systemd-analyze >/dev/null; then
  (need_packages systemd) || true
fi
verify() {  # unit file(s), in a directory of their own
  local output
  # --man=no: the man page the units name is installed by the package (check_deb.sh
  # verifies the installed unit with it).
  if output=$(SYSTEMD_LOG_COLOR=0 systemd-analyze verify --man=no "$@" 2>&1) && [[ -z $output ]]; then
    echo "ok   systemd-analyze verify $(basename -a "$@" | tr '\n' ' ')"
  else
    echo "FAIL systemd-analyze verify $(basename -a "$@" | tr '\n' ' ')"
    echo "$output" | sed 's/^/     /'
    failures=$((failures + 1))
  fi
}
if command -v systemd-analyze >/dev/null; then
  mkdir "$work/units"
  sed "s|/usr/bin/virtcaps-agent|$agent|" "$source_dir/deploy/systemd/virtcaps-agent.service" \
    >"$work/units/virtcaps-agent.service"
  for unit in virtcaps-textfile.service virtcaps-textfile.timer; do
    sed "s|/usr/share/virtcaps/textfile/virtcaps-textfile.sh|$source_dir/deploy/textfile/virtcaps-textfile.sh|" \
      "$source_dir/deploy/textfile/$unit" >"$work/units/$unit"
  done
  verify "$work/units/virtcaps-agent.service"
  verify "$work/units/virtcaps-textfile.service" "$work/units/virtcaps-textfile.timer"
else
  echo "skip systemd-analyze is not available and systemd could not be installed:" \
       "virtcaps-agent.service was checked only through its ExecStart flags"
fi

# The cron example: five time fields, a user, and the script the package installs.
cron_line=$(grep -Ev '^\s*(#|$)|^[A-Z_]+=' "$source_dir/deploy/textfile/virtcaps-textfile.cron")
if [[ $(wc -l <<<"$cron_line") == 1 ]] &&
   [[ $cron_line =~ ^([^[:space:]]+[[:space:]]+){5}root[[:space:]]+/usr/share/virtcaps/textfile/virtcaps-textfile\.sh$ ]]; then
  echo "ok   virtcaps-textfile.cron is one /etc/cron.d line running the packaged script"
else
  echo "FAIL virtcaps-textfile.cron: unexpected entry: $cron_line"; failures=$((failures + 1))
fi

# (d) The Grafana dashboard.
dashboard="$source_dir/deploy/grafana/virtcaps-fleet.json"
if jq -e '
    (.title | type == "string") and (.uid | type == "string") and
    (.panels | length > 0) and
    all(.panels[]; (.title | type == "string") and (.type | type == "string")) and
    all(.panels[] | select(.type != "row") | .targets // [] | .[]; (.expr | type == "string") and (.expr | length > 0)) and
    ([.panels[].id] | length == (unique | length)) and
    any(.templating.list[]; .type == "datasource" and .query == "prometheus")
  ' "$dashboard" >/dev/null; then
  echo "ok   virtcaps-fleet.json: valid JSON, $(jq '.panels | length' "$dashboard") panels with unique ids and PromQL targets, a Prometheus datasource variable"
else
  echo "FAIL virtcaps-fleet.json does not pass the jq checks"; failures=$((failures + 1))
fi

echo "check_deploy: $failures failing part(s)"
[[ $failures -eq 0 ]]
