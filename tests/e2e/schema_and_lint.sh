#!/usr/bin/env bash
# Validates every golden capabilities document and the live host's document against
# libvirt's own schema (capability.rng from Debian's libvirt0; see
# tests/support/capability-schema.sh for the one pattern widened), and lints every
# golden exposition and the live one with promtool.
set -euo pipefail
agent=$1
source_dir=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Debian's schema with the one pattern libvirt's own output breaks widened (sse4.1).
schema=$("$source_dir/tests/support/capability-schema.sh" "$work/schemas")

failures=0
check() {  # name, command...
  local name=$1; shift
  if "$@" >"$work/out" 2>&1; then
    echo "ok   $name"
  else
    echo "FAIL $name"; sed 's/^/     /' "$work/out"; failures=$((failures + 1))
  fi
}

# The documents target libvirt 9.0's schema, except that a host arch it does not name
# (loongarch64) keeps libvirt's later name: such a document is checked against a copy
# of the schema whose arch list has that one name added (see README, "Schema").
schema_for() {  # document -> schema path
  local arch
  arch=$(xmllint --xpath 'string(/capabilities/host/cpu/arch)' "$1" 2>/dev/null || true)
  if [[ -z $arch ]] || grep -q "<value>$arch</value>" "$(dirname "$schema")/basictypes.rng"; then
    echo "$schema"; return
  fi
  local dir=$work/schema-$arch
  if [[ ! -d $dir ]]; then
    cp -r "$(dirname "$schema")" "$dir"
    sed -i "s|<value>aarch64</value>|<value>aarch64</value><value>$arch</value>|" "$dir/basictypes.rng"
  fi
  echo "$dir/capability.rng"
}

for xml in "$source_dir"/tests/golden/*.xml; do
  case $xml in
    *.domcaps-*.xml)  # domain capabilities goldens: libvirt's domaincaps schema
      check "schema $(basename "$xml")" xmllint --noout --relaxng \
        /usr/share/libvirt/schemas/domaincaps.rng "$xml" ;;
    *) check "schema $(basename "$xml")" xmllint --noout --relaxng "$(schema_for "$xml")" "$xml" ;;
  esac
done
"$agent" --once --format xml >"$work/live.xml"
check "schema live host" xmllint --noout --relaxng "$schema" "$work/live.xml"

# promtool's lint, with one deliberate exception: it takes every "bits" for a data size
# ("use base unit bytes"), but an address width in bits is a count of address lines.
lint() {  # file
  local findings
  findings=$(promtool check metrics <"$1" 2>&1 | grep -v \
    '^virtcaps_cpu_physical_address_width_bits use base unit "bytes" instead of "bits"$' || true)
  [[ -z $findings ]] || { echo "$findings"; return 1; }
}
for prom in "$source_dir"/tests/golden/*.prom; do
  check "promtool $(basename "$prom")" lint "$prom"
done
"$agent" --once --format prometheus >"$work/live.prom"
check "promtool live host" lint "$work/live.prom"

# OpenMetrics: promtool 2.42's `check metrics` reads only the 0.0.4 text format (it
# rejects the `info` type and takes an OpenMetrics counter's NAME_total sample for a
# family without help), so these are parsed by the strict OpenMetrics parser of the
# Prometheus Python client (python3-prometheus-client), written by the format's authors.
openmetrics() {  # file
  /usr/bin/python3 - "$1" <<'PY'
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
text = open(sys.argv[1], encoding="utf-8").read()
families = list(text_string_to_metric_families(text))
assert families, "no families"
assert text.endswith("# EOF\n"), "no final # EOF line"
print(f"{len(families)} families")
PY
}
for om in "$source_dir"/tests/golden/*.om; do
  check "openmetrics $(basename "$om")" openmetrics "$om"
done
"$agent" --once --format openmetrics >"$work/live.om"
check "openmetrics live host" openmetrics "$work/live.om"

echo "schema_and_lint: $failures failure(s)"
[[ $failures -eq 0 ]]
