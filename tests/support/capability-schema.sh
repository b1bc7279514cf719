#!/usr/bin/env bash
# Prints the path of the capabilities schema the tests validate against: Debian's
# libvirt0 schemas copied to DIR ($1) with ONE change. libvirt 9.0 names host CPU
# features sse4.1/sse4.2 (virsh capabilities on the build machine prints them) but
# the host <cpu> feature pattern in cputypes.rng, [a-zA-Z0-9\-_]+, rejects the dot,
# so libvirt's own document fails its own schema. The copy widens that one pattern
# to the featureName pattern the same file uses for guest CPU features,
# [a-zA-Z0-9\-_\.]+; nothing else differs (checked below).
set -euo pipefail
dir=$1
src=/usr/share/libvirt/schemas
mkdir -p "$dir"
cp "$src"/*.rng "$dir"/
python3 - "$dir/cputypes.rng" <<'PY'
import sys
path = sys.argv[1]
text = open(path).read()
host_feature = '''<param name="pattern">[a-zA-Z0-9\\-_]+</param>'''
if text.count(host_feature) != 1:
    sys.exit("cputypes.rng: expected exactly one host feature-name pattern")
open(path, "w").write(text.replace(host_feature, '''<param name="pattern">[a-zA-Z0-9\\-_\\.]+</param>'''))
PY
changed=$(diff "$src/cputypes.rng" "$dir/cputypes.rng" | grep -c '^[<>]' || true)
[[ $changed -eq 2 ]] || { echo "capability-schema.sh: unexpected schema change" >&2; exit 1; }
echo "$dir/capability.rng"
