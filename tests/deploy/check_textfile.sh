#!/usr/bin/env bash
# The node_exporter textfile path end to end: deploy/textfile/virtcaps-textfile.sh
# writes a fixture host's metrics into a textfile directory, a real node_exporter
# (Debian's prometheus-node-exporter) with only its textfile collector serves them on
# a free loopback port, and a scrape shows the agent's metrics with no textfile error.
# Also: the write is atomic (no temporary file is left, a failing agent leaves the
# previous file untouched and the script fails) and the file is world-readable.
# Usage: check_textfile.sh AGENT_BINARY SOURCE_DIR
set -euo pipefail
agent=$1
source_dir=$2
source "$(dirname "$0")/lib.sh"
need_packages prometheus-node-exporter curl iproute2
node_exporter=/usr/bin/prometheus-node-exporter
script="$source_dir/deploy/textfile/virtcaps-textfile.sh"
fixture="$source_dir/tests/fixtures/hosts/intel-xeon-vmx-nested"
work=$(mktemp -d)
exporter_pid=""
cleanup() {
  if [[ -n $exporter_pid ]]; then
    kill "$exporter_pid" 2>/dev/null || true
    wait "$exporter_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
textfile_dir="$work/textfile"
mkdir "$textfile_dir"

# 1. The script, against the fixture host, as cron or the timer would run it.
TEXTFILE_DIR="$textfile_dir" VIRTCAPS_AGENT="$agent" \
  VIRTCAPS_AGENT_ARGS="--config.file $fixture/virtcaps.yaml --path.rootfs $fixture" \
  "$script" || fail "virtcaps-textfile.sh failed"
prom="$textfile_dir/virtcaps.prom"
[[ -s $prom ]] || fail "$prom was not written"
[[ $(stat -c %a "$prom") == 644 ]] || fail "$prom has mode $(stat -c %a "$prom"), want 644"
leftovers=$(find "$textfile_dir" -mindepth 1 ! -name virtcaps.prom)
[[ -z $leftovers ]] || fail "temporary files left behind: $leftovers"
grep -qx 'virtcaps_cpu_virtualization_supported 1' "$prom" || fail "fixture output lacks vmx support"
echo "ok   virtcaps-textfile.sh wrote $(grep -c '^virtcaps_' "$prom") samples"

# 2. A failing agent: the script fails and the previous file stays as it was.
before=$(sha256sum "$prom")
if TEXTFILE_DIR="$textfile_dir" VIRTCAPS_AGENT="$agent" \
     VIRTCAPS_AGENT_ARGS="--config.file $source_dir/tests/fixtures/config/bad-syntax.yaml" \
     "$script" 2>"$work/failing.log"; then
  fail "virtcaps-textfile.sh succeeded with a broken configuration"
fi
[[ $(sha256sum "$prom") == "$before" ]] || fail "a failing run changed $prom"
leftovers=$(find "$textfile_dir" -mindepth 1 ! -name virtcaps.prom)
[[ -z $leftovers ]] || fail "a failing run left temporary files: $leftovers"
echo "ok   a failing agent leaves the previous file and no temporary file"

# 3. A real node_exporter with only the textfile collector, on port 0 of loopback: the
# kernel picks a free port, read back from the listening socket of that process.
"$node_exporter" --web.listen-address=127.0.0.1:0 --collector.disable-defaults \
  --collector.textfile --collector.textfile.directory="$textfile_dir" \
  >"$work/node_exporter.log" 2>&1 &
exporter_pid=$!
port=""
for _ in $(seq 100); do
  kill -0 "$exporter_pid" 2>/dev/null || fail "node_exporter exited: $(tail -5 "$work/node_exporter.log")"
  port=$(ss -Hltnp | awk -v pid="pid=$exporter_pid," 'index($0, pid) {print $4}' |
         sed -n 's/^127\.0\.0\.1://p' | head -1)
  [[ -n $port ]] && break
  sleep 0.1
done
[[ -n $port ]] || fail "node_exporter did not listen: $(tail -5 "$work/node_exporter.log")"
curl -fsS "http://127.0.0.1:$port/metrics" -o "$work/scrape.txt" || fail "scraping node_exporter failed"
echo "ok   node_exporter $("$node_exporter" --version 2>&1 | head -1 | awk '{print $3}') on 127.0.0.1:$port"

expect() {  # regex, description
  grep -Eq "$1" "$work/scrape.txt" || fail "scrape lacks $2 ($1)"
  echo "ok   scrape has $2"
}
expect '^virtcaps_cpu_virtualization_supported 1$' "virtcaps_cpu_virtualization_supported 1"
expect '^node_textfile_scrape_error 0$' "node_textfile_scrape_error 0"
expect '^node_textfile_mtime_seconds\{file="[^"]*virtcaps\.prom"\} [0-9.e+]+$' "the file's mtime"
expect '^virtcaps_kvm_usable 1$' "virtcaps_kvm_usable 1"
# Every family of the file made it through node_exporter's parser.
lost=$(comm -23 <(metric_types <"$prom" | sort -u) <(metric_types <"$work/scrape.txt" | sort -u))
[[ -z $lost ]] || fail "families of virtcaps.prom missing from the scrape: $lost"
echo "ok   all $(metric_types <"$prom" | wc -l) families of virtcaps.prom are served"

kill "$exporter_pid"
wait "$exporter_pid" 2>/dev/null || true
exporter_pid=""
echo "check_textfile: passed"
