#!/usr/bin/env bash
# bench/refresh-cpu.sh - CPU time (user+sys, getrusage of the waited agent) per warm
# refresh of a serving agent: the "warm refresh CPU inside the serving agent" row of
# bench/run.sh on its own.
#
#   bench/refresh-cpu.sh AGENT [SECONDS] [ROUNDS]
#
# Two agents, refresh_interval 1s and 1h, each serving for SECONDS (default 30) on
# 127.0.0.1:0 with the same private, already warm QEMU cache directory; the CPU
# difference divided by the difference in virtcaps_refreshes_total is one refresh's
# CPU. ROUNDS (default 3) repeats the pair and prints each round and the median. The
# figure is the machine's as much as the agent's: on a shared machine other work
# skews it (the load average is printed); callgrind's count (bench/refresh-ir.sh)
# does not depend on it.
set -euo pipefail

AGENT=${1:?usage: bench/refresh-cpu.sh AGENT [SECONDS] [ROUNDS]}
WINDOW=${2:-30}
ROUNDS=${3:-3}
WORK=$(mktemp -d /tmp/virtcaps-refresh-cpu.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/cache"
chmod 700 "$WORK/cache"
for interval in 1s 1h; do
  printf 'refresh_interval: %s\nhypervisors:\n  - type: qemu\n    cache_dir: %s\n' \
    "$interval" "$WORK/cache" >"$WORK/$interval.yaml"
done

# user+sys of the waited children so far (getrusage via `times`), into variable $1. Not
# in a $(...) subshell: a subshell's children are not the script's.
children_cpu_ms() {
  times >"$WORK/times"
  printf -v "$1" '%s' "$(awk 'NR == 2 { total = 0
    for (i = 1; i <= 2; i++) { split($i, p, "m"); sub("s", "", p[2]); total += p[1] * 60 + p[2] }
    printf "%.3f", total * 1000 }' "$WORK/times")"
}

# Warms the cache directory for this CPU (a first --once probes the emulators).
"$AGENT" --once --format prometheus --config.file="$WORK/1h.yaml" >/dev/null 2>&1

run_window() { # config: sets WINDOW_MS (CPU) and WINDOW_N (refreshes)
  local before after pid port
  children_cpu_ms before
  : >"$WORK/agent.log"
  "$AGENT" --config.file="$1" --web.listen-address=127.0.0.1:0 2>"$WORK/agent.log" &
  pid=$!
  for _ in $(seq 600); do
    grep -q 'msg="first snapshot ready"' "$WORK/agent.log" && break
    sleep 0.1
  done
  sleep "$WINDOW"
  port=$(sed -n 's/.*msg=listening address=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$WORK/agent.log")
  WINDOW_N=$(curl -fsS "http://127.0.0.1:$port/metrics" |
    awk '$1 == "virtcaps_refreshes_total" {print $2}')
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  children_cpu_ms after
  WINDOW_MS=$(awk -v a="$after" -v b="$before" 'BEGIN { printf "%.3f", a - b }')
}

results=()
for round in $(seq "$ROUNDS"); do
  run_window "$WORK/1s.yaml"
  fast_ms=$WINDOW_MS fast_n=$WINDOW_N
  run_window "$WORK/1h.yaml"
  slow_ms=$WINDOW_MS slow_n=$WINDOW_N
  per=$(awk -v f="$fast_ms" -v s="$slow_ms" -v fn="$fast_n" -v sn="$slow_n" \
    'BEGIN { printf "%.3f", (f - s) / (fn - sn) }')
  echo "round $round: 1s agent ${fast_ms} ms / $fast_n refreshes, 1h agent ${slow_ms} ms / $slow_n: $per ms per refresh"
  results+=("$per")
done
median=$(printf '%s\n' "${results[@]}" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
echo "CPU_MS_PER_REFRESH $median (median of $ROUNDS; load average $(cut -d' ' -f1-3 /proc/loadavg))"
