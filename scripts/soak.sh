#!/usr/bin/env bash
# Soak test (not in CI): runs the agent for SOAK_SECONDS (default 300) while scraping
# /metrics and /capabilities (plain and gzip) in a loop and sending SIGHUP every few
# seconds, then reports the agent's RSS at start, middle and end. Loopback only.
# Usage: scripts/soak.sh [AGENT_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
agent=${1:-build/agent/virtcaps-agent}
seconds=${SOAK_SECONDS:-300}
work=$(mktemp -d)
trap 'kill $agent_pid 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

printf 'refresh_interval: 1s\n' >"$work/virtcaps.yaml"
"$agent" --config.file="$work/virtcaps.yaml" --web.listen-address=127.0.0.1:0 2>"$work/agent.log" &
agent_pid=$!
for _ in $(seq 100); do grep -q 'first snapshot ready' "$work/agent.log" && break; sleep 0.1; done
port=$(grep -o 'msg=listening address=127.0.0.1:[0-9]*' "$work/agent.log" | head -1 | sed 's/.*://')
[[ -n "$port" ]] || { echo "agent did not start"; cat "$work/agent.log"; exit 1; }

rss() { awk '/VmRSS/ {print $2}' "/proc/$agent_pid/status"; }
start_rss=$(rss)
end=$(( $(date +%s) + seconds ))
half=$(( $(date +%s) + seconds / 2 ))
mid_rss=""
scrapes=0
reloads=0
while (( $(date +%s) < end )); do
  for _ in $(seq 50); do
    curl -fs "http://127.0.0.1:$port/metrics" >/dev/null
    curl -fs -H 'Accept-Encoding: gzip' "http://127.0.0.1:$port/capabilities" >/dev/null
    scrapes=$((scrapes + 2))
  done
  kill -HUP "$agent_pid"
  reloads=$((reloads + 1))
  if [[ -z "$mid_rss" ]] && (( $(date +%s) >= half )); then mid_rss=$(rss); fi
done
end_rss=$(rss)
kill -0 "$agent_pid" || { echo "agent died"; exit 1; }
echo "soak: ${seconds}s, $scrapes scrapes, $reloads reloads"
echo "soak: RSS start ${start_rss} kB, middle ${mid_rss:-n/a} kB, end ${end_rss} kB, growth $((end_rss - start_rss)) kB"
