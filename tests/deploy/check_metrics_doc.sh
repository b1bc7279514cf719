#!/usr/bin/env bash
# docs/metrics.md against what the agent really exports: the union of the metric
# families of `--once --format prometheus` on the live host and on every fixture host.
# Fails when a family the agent exports is missing from the doc's table, when the doc
# lists a family the agent never exports, or when a family's type or label names differ.
# Usage: check_metrics_doc.sh AGENT_BINARY SOURCE_DIR
set -euo pipefail
agent=$1
source_dir=$2
source "$(dirname "$0")/lib.sh"
need_packages python3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

hosts=0
"$agent" --once --format prometheus >"$work/live.prom" 2>"$work/live.log" \
  || fail "agent --once on the live host: $(cat "$work/live.log")"
hosts=$((hosts + 1))
for dir in "$source_dir"/tests/fixtures/hosts/*/; do
  profile=$(basename "$dir")
  "$agent" --config.file="$dir/virtcaps.yaml" --path.rootfs="$dir" --once --format prometheus \
    >"$work/$profile.prom" 2>"$work/$profile.log" \
    || fail "agent --once on fixture $profile: $(cat "$work/$profile.log")"
  hosts=$((hosts + 1))
done
# The served page adds the families read per scrape (process_*, http_requests_total).
fixture="$source_dir/tests/fixtures/hosts/intel-xeon-vmx-nested"
# Created here: the background agent's redirection may open it after the first sed.
: >"$work/served.log"
"$agent" --config.file="$fixture/virtcaps.yaml" --path.rootfs="$fixture" \
  --web.listen-address=127.0.0.1:0 2>"$work/served.log" &
agent_pid=$!
trap 'kill "$agent_pid" 2>/dev/null; rm -rf "$work"' EXIT
port=""
for _ in $(seq 1 100); do
  port=$(sed -n 's/.*msg=listening address=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/served.log")
  [[ -n $port ]] && curl -fsS "http://127.0.0.1:$port/metrics" >"$work/served.prom" 2>/dev/null && break
  sleep 0.1
done
[[ -s $work/served.prom ]] || fail "no /metrics from the served agent: $(cat "$work/served.log")"
kill "$agent_pid"
echo "expositions: live host, $((hosts - 1)) fixture hosts and one served page"

"$PYTHON" - "$source_dir/docs/metrics.md" "$work"/*.prom <<'PY'
import re
import sys

doc_path, expositions = sys.argv[1], sys.argv[2:]

# What the agent exports: family -> type, family -> label names seen on its samples.
exported_types, exported_labels, where = {}, {}, {}
for path in expositions:
    for line in open(path, encoding="utf-8"):
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            if exported_types.setdefault(name, kind) != kind:
                sys.exit(f"FAIL: {name} is a {exported_types[name]} in one exposition and a {kind} in {path}")
            exported_labels.setdefault(name, set())
            where.setdefault(name, path.rsplit("/", 1)[-1])
        elif line.strip() and not line.startswith("#"):
            match = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s", line)
            if not match:
                sys.exit(f"FAIL: unparsable sample in {path}: {line!r}")
            name = match.group(1)
            for suffix in ("", "_total", "_count", "_sum", "_bucket"):
                family = name[: len(name) - len(suffix)] if suffix and name.endswith(suffix) else name
                if family in exported_types:
                    break
            else:
                sys.exit(f"FAIL: sample {name} in {path} has no # TYPE line")
            labels = re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', match.group(2) or "")
            exported_labels[family].update(l for l in labels if l != "le")

# What the doc says: the rows of its table whose first cell is a `virtcaps_...` or
# `process_...` name.
documented = {}
for number, line in enumerate(open(doc_path, encoding="utf-8"), 1):
    if not line.startswith(("| `virtcaps_", "| `process_")):
        continue
    cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
    if len(cells) != 5:
        sys.exit(f"FAIL: {doc_path}:{number}: expected 5 cells (metric, type, labels, meaning, source), got {len(cells)}")
    name = cells[0].strip("`")
    if name in documented:
        sys.exit(f"FAIL: {doc_path}:{number}: {name} is listed twice")
    if not cells[3] or not cells[4]:
        sys.exit(f"FAIL: {doc_path}:{number}: {name} has no meaning or no source")
    documented[name] = (cells[1], set(re.findall(r"`([a-zA-Z_][a-zA-Z0-9_]*)`", cells[2])), number)

problems = []
for name in sorted(exported_types):
    if name not in documented:
        problems.append(f"{name} ({exported_types[name]}, exported on {where[name]}) is missing from docs/metrics.md")
        continue
    kind, labels, number = documented[name]
    if kind != exported_types[name]:
        problems.append(f"docs/metrics.md:{number}: {name} is documented as {kind} but exported as {exported_types[name]}")
    if labels != exported_labels[name]:
        problems.append(f"docs/metrics.md:{number}: {name} is documented with labels {sorted(labels)} but exported with {sorted(exported_labels[name])}")
for name in sorted(set(documented) - set(exported_types)):
    problems.append(f"docs/metrics.md:{documented[name][2]}: {name} is documented but the agent never exports it")

for problem in problems:
    print("FAIL:", problem)
print(f"metrics doc: {len(exported_types)} families exported, {len(documented)} documented, {len(problems)} problem(s)")
sys.exit(1 if problems else 0)
PY
