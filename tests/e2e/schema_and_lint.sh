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
  check "schema $(basename "$xml")" xmllint --noout --relaxng "$(schema_for "$xml")" "$xml"
done
"$agent" --once --format xml >"$work/live.xml"
check "schema live host" xmllint --noout --relaxng "$schema" "$work/live.xml"

for prom in "$source_dir"/tests/golden/*.prom; do
  check "promtool $(basename "$prom")" promtool check metrics <"$prom"
done
"$agent" --once --format prometheus >"$work/live.prom"
check "promtool live host" promtool check metrics <"$work/live.prom"

echo "schema_and_lint: $failures failure(s)"
[[ $failures -eq 0 ]]
