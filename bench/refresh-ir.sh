#!/usr/bin/env bash
# bench/refresh-ir.sh - instructions (callgrind Ir, every thread) per warm refresh of a
# serving agent: the "refresh Ir, in the agent" row of bench/run.sh on its own, for
# measuring one change at a time without the whole benchmark.
#
#   bench/refresh-ir.sh AGENT [RUNS] [OUTDIR]
#
# AGENT: a built virtcaps-agent (RelWithDebInfo keeps the profile readable). RUNS: warm
# refreshes counted (default 10). OUTDIR: where callgrind's files and the inclusive
# profile go (default a new temp dir, printed). The agent listens on 127.0.0.1:0 with
# refresh_interval 1s and its own QEMU cache directory under OUTDIR, so other agents on
# the machine (and their cache format) do not change the figure; under valgrind CPUID
# reports valgrind's CPU, so the first refresh probes the emulators and the later ones
# are warm. Prints "IR_PER_REFRESH <n> over <runs> refreshes".
set -euo pipefail

AGENT=${1:?usage: bench/refresh-ir.sh AGENT [RUNS] [OUTDIR]}
RUNS=${2:-10}
OUT=${3:-$(mktemp -d /tmp/virtcaps-refresh-ir.XXXXXX)}
mkdir -p "$OUT/cache"
chmod 700 "$OUT/cache"
printf 'refresh_interval: 1s\nhypervisors:\n  - type: qemu\n    cache_dir: %s\n' "$OUT/cache" \
  >"$OUT/config.yaml"

log="$OUT/agent.log"
valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.out" \
  "$AGENT" --config.file="$OUT/config.yaml" --log.level=debug \
  --web.listen-address=127.0.0.1:0 >/dev/null 2>"$log" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true' EXIT

refreshes() { grep -c 'msg=refreshed' "$log" || true; }
wait_refreshes() { # count seconds
  local deadline=$((SECONDS + $2))
  while (($(refreshes) < $1)); do
    kill -0 "$pid" 2>/dev/null || {
      cat "$log" >&2
      echo "agent exited" >&2
      exit 1
    }
    ((SECONDS < deadline)) || {
      echo "no $1 refreshes after $2 s" >&2
      exit 1
    }
    sleep 0.1
  done
}
# The first snapshot probes (under valgrind's CPU); one more refresh warms what is
# remembered from the previous one; then the counters start.
wait_refreshes 2 300
callgrind_control -z "$pid" >/dev/null
first=$(refreshes)
wait_refreshes $((first + RUNS)) $((RUNS * 10 + 60))
runs=$(($(refreshes) - first))
callgrind_control -d "$pid" >/dev/null
kill "$pid"
wait "$pid" 2>/dev/null || true
trap - EXIT

total=$(awk '/^summary:/ {print $2; exit}' "$OUT/callgrind.out.1")
callgrind_annotate --inclusive=yes "$OUT/callgrind.out.1" 2>/dev/null | head -150 \
  >"$OUT/inclusive.txt" || true
callgrind_annotate "$OUT/callgrind.out.1" 2>/dev/null | head -80 >"$OUT/self.txt" || true
echo "IR_PER_REFRESH $((total / runs)) over $runs refreshes ($OUT)"
