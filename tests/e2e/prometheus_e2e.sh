#!/usr/bin/env bash
# End to end with a real Prometheus: four agents on fixture hosts (one with vmx, one
# without vmx whose KVM works (kvm_pvm), the same one with KVM_CREATE_VM failing, and
# the same one whose QEMU does not come up under KVM, so it offers TCG only),
# scraped on loopback with the shipped alert rules; asserts through Prometheus's HTTP
# API that targets are up, series exist, the no-vmx alert fires only for the host that
# cannot run KVM guests, every dashboard query runs, and that the scrapes were
# negotiated to OpenMetrics (Prometheus 2.42's default Accept header).
set -euo pipefail
agent=$1
source_dir=$2
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

# Starts an agent on a fixture host on a free loopback port; sets agent_port.
# Usage: start_agent PROFILE [LOG_NAME CONFIG_FILE]
start_agent() {
  local profile=$1 log="$work/${2:-$1}.log"
  local dir="$source_dir/tests/fixtures/hosts/$profile"
  "$agent" --config.file="${3:-$dir/virtcaps.yaml}" --path.rootfs="$dir" --log.level=debug \
    --web.listen-address=127.0.0.1:0 >/dev/null 2>"$log" &
  pids+=($!)
  for _ in $(seq 100); do
    if grep -q 'msg="first snapshot ready"' "$log"; then
      agent_port=$(grep -o 'msg=listening address=127.0.0.1:[0-9]*' "$log" | head -1 | sed 's/.*://')
      return
    fi
    sleep 0.1
  done
  fail "agent on $profile did not start: $(cat "$log")"
}

start_agent intel-xeon-vmx-nested
vmx_port=$agent_port
start_agent amd-epyc-pvm-guest
pvm_port=$agent_port
# The same host whose KVM stops creating VMs.
pvm_dir=$(cd "$source_dir/tests/fixtures/hosts/amd-epyc-pvm-guest" && pwd)
sed -e "s|dump_file: cpuid.txt|dump_file: $pvm_dir/cpuid.txt|" -e 's/vm_creatable: true/vm_creatable: false/' \
  "$pvm_dir/virtcaps.yaml" >"$work/nokvm.yaml"
grep -q 'vm_creatable: false' "$work/nokvm.yaml" || fail "could not derive the no-KVM config"
start_agent amd-epyc-pvm-guest nokvm "$work/nokvm.yaml"
nokvm_port=$agent_port
# The same host whose QEMU comes up without KVM: its first (and only) QMP session runs
# under TCG, so it answers what the recorded TCG session answered (query-kvm not
# enabled; TCG's models and `max` expansion). Its host-model differs from the pvm
# host's under kvm (it has none) and agrees under qemu.
tcg_root="$work/tcgonly"
cp -a "$pvm_dir" "$tcg_root"
ln -sfn "$source_dir/tests/fixtures/cpu_map/libvirt-9.0" "$tcg_root/usr/share/libvirt/cpu_map"
ln -sfn "$source_dir/tests/fixtures/emulators/qmp-replay" "$tcg_root/usr/bin/qemu-system-x86_64"
replies="$tcg_root/usr/bin/qemu-system-x86_64.qmp"
mv "$replies"/tcg/* "$replies"/ && rmdir "$replies/tcg"
rm -f "$replies"/query-cpu-model-expansion@*host*.json
printf '%s\n' '{"enabled": false, "present": true}' >"$replies/query-kvm.json"
sed -e "s|dump_file: cpuid.txt|dump_file: $pvm_dir/cpuid.txt|" "$pvm_dir/virtcaps.yaml" >"$work/tcgonly.yaml"
"$agent" --config.file="$work/tcgonly.yaml" --path.rootfs="$tcg_root" --log.level=debug \
  --web.listen-address=127.0.0.1:0 >/dev/null 2>"$work/tcgonly.log" &
pids+=($!)
for _ in $(seq 100); do
  grep -q 'msg="first snapshot ready"' "$work/tcgonly.log" && break
  sleep 0.1
done
tcg_port=$(grep -o 'msg=listening address=127.0.0.1:[0-9]*' "$work/tcgonly.log" | head -1 | sed 's/.*://')
[[ -n $tcg_port ]] || fail "agent on the TCG-only host did not start: $(cat "$work/tcgonly.log")"

# The shipped rules, with `for:` shortened so alerts fire within the test.
sed 's/^\(\s*for:\).*/\1 0s/' "$source_dir/deploy/prometheus/virtcaps-alerts.yml" >"$work/rules.yml"
cp "$source_dir/deploy/prometheus/virtcaps-placement.yml" "$work/placement.yml"
cat >"$work/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: ["$work/rules.yml", "$work/placement.yml"]
scrape_configs:
  - job_name: virtcaps
    static_configs:
      - targets: ["127.0.0.1:$vmx_port"]
        labels: {host: vmx}
      - targets: ["127.0.0.1:$pvm_port"]
        labels: {host: pvm}
      - targets: ["127.0.0.1:$nokvm_port"]
        labels: {host: nokvm}
      - targets: ["127.0.0.1:$tcg_port"]
        labels: {host: tcgonly}
YAML

# Prometheus 2.42 has no scrape_protocols setting (it came in 2.49): its config check
# refuses the key, so OpenMetrics is negotiated by the default Accept header alone.
sed 's/^  - job_name: virtcaps$/  - job_name: virtcaps\n    scrape_protocols: [OpenMetricsText1.0.0]/' \
  "$work/prometheus.yml" >"$work/protocols.yml"
if promtool check config "$work/protocols.yml" >"$work/protocols.out" 2>&1; then
  fail "promtool accepted scrape_protocols; this Prometheus supports it, so test it"
fi
grep -q 'field scrape_protocols not found' "$work/protocols.out" \
  || fail "unexpected promtool answer: $(cat "$work/protocols.out")"
echo "ok   Prometheus $(promtool --version 2>&1 | awk 'NR==1 {print $3}') has no scrape_protocols"

# Prometheus on a free loopback port (retried if taken).
for attempt in $(seq 10); do
  prom_port=$((20000 + RANDOM % 30000))
  prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/data" \
    --web.listen-address="127.0.0.1:$prom_port" >"$work/prometheus.log" 2>&1 &
  prom_pid=$!
  ready=0
  for _ in $(seq 100); do
    if curl -fs "http://127.0.0.1:$prom_port/-/ready" >/dev/null 2>&1; then ready=1; break; fi
    kill -0 "$prom_pid" 2>/dev/null || break
    sleep 0.2
  done
  if [[ $ready == 1 ]]; then pids+=("$prom_pid"); break; fi
  kill "$prom_pid" 2>/dev/null || true
  wait "$prom_pid" 2>/dev/null || true
  [[ $attempt == 10 ]] && fail "prometheus did not start: $(tail -5 "$work/prometheus.log")"
done
api="http://127.0.0.1:$prom_port/api/v1"

query() { curl -fsG "$api/query" --data-urlencode "query=$1"; }

# Waits (bounded) until a PromQL query returns the expected number of series.
wait_for() {
  local expr=$1 want=$2 got=""
  for _ in $(seq 150); do
    got=$(query "$expr" | jq '.data.result | length')
    [[ "$got" == "$want" ]] && return 0
    sleep 0.2
  done
  fail "query '$expr' returned $got series, wanted $want: $(query "$expr" | jq -c '[.data.result[].metric]')"
}

wait_for 'up{job="virtcaps"} == 1' 4
echo "ok   all four targets up"
wait_for 'virtcaps_kvm_usable' 4
wait_for 'virtcaps_cpu_info' 4
# OpenMetrics shapes ingested: an info family, a counter family without _total.
wait_for 'virtcaps_refreshes_total' 4
wait_for 'process_cpu_seconds_total' 4
wait_for 'virtcaps_http_requests_total{path="/metrics",code="200"} > 0' 4
for name in vmx-nested pvm nokvm tcgonly; do
  log=$(ls "$work"/*.log | grep -e "$name" | head -1)
  grep -q 'msg=request method=GET path=/metrics status=200 content_type="application/openmetrics-text; version=1.0.0; charset=utf-8"' "$log" \
    || fail "the $name agent was not scraped as OpenMetrics: $(grep 'msg=request' "$log" | tail -2)"
done
echo "ok   Prometheus scraped OpenMetrics (negotiated by Accept) and ingested it"
wait_for 'virtcaps_scrape_collector_success == 0' 0
echo "ok   series present, no collector failing"

wait_for 'ALERTS{alertname="VirtcapsCpuLacksHardwareVirtualization",alertstate="firing"}' 1
host=$(query 'ALERTS{alertname="VirtcapsCpuLacksHardwareVirtualization",alertstate="firing"}' | jq -r '.data.result[0].metric.host')
[[ "$host" == "nokvm" ]] || fail "no-vmx alert fired for host '$host'"
echo "ok   VirtcapsCpuLacksHardwareVirtualization fires for nokvm only (not the kvm_pvm host whose KVM works)"
wait_for 'ALERTS{alertname="VirtcapsKvmUnusable"}' 1
host=$(query 'ALERTS{alertname="VirtcapsKvmUnusable"}' | jq -r '.data.result[0].metric.host')
[[ "$host" == "nokvm" ]] || fail "KVM-unusable alert fired for host '$host'"
echo "ok   VirtcapsKvmUnusable fires for nokvm only"

# Placement (deploy/prometheus/virtcaps-placement.yml): the pvm fixture (and its nokvm
# variant) carries the QMP replies of this machine's QEMU under KVM (pentium3 usable,
# EPYC-Rome not); the vmx fixture has no emulator, so it offers no model at all.
wait_for 'virtcaps_guest_cpu_model_usable{arch="x86_64",virttype="kvm",model="pentium3"} == 1' 2
hosts=$(query 'virtcaps_guest_cpu_model_usable{arch="x86_64",virttype="kvm",model="pentium3"} == 1' | jq -r '[.data.result[].metric.host] | sort | join(",")')
[[ "$hosts" == "nokvm,pvm" ]] || fail "pentium3 placement lists hosts '$hosts'"
wait_for 'virtcaps_guest_cpu_model_usable{arch="x86_64",virttype="kvm",model="EPYC-Rome"} == 1' 0
wait_for 'virtcaps:guest_cpu_model_usable:hosts{arch="x86_64",virttype="kvm"}' 4
wait_for 'virtcaps:guest_cpu_model_usable:pool_hosts{arch="x86_64",virttype="kvm"} == 2' 1
wait_for 'virtcaps:guest_cpu_model_usable:pool_hosts{arch="x86_64",virttype="qemu"} == 3' 1
pool=$(query 'virtcaps:guest_cpu_model_usable:hosts{arch="x86_64",virttype="kvm"} == on (arch, virttype) group_left () virtcaps:guest_cpu_model_usable:pool_hosts' | jq -r '[.data.result[].metric.model] | sort | join(",")')
[[ "$pool" == "486,pentium,pentium2,pentium3" ]] || fail "models common to the pool: '$pool'"
echo "ok   placement: pentium3 on $hosts (not the emulator-less vmx host), EPYC-Rome nowhere, pool models $pool"

# Host-model (virtcaps_guest_cpu_host_model_info): the pvm host and its nokvm variant
# give kvm64/Intel under kvm and EPYC/AMD under qemu (as virsh domcapabilities said on
# the machine the replies were recorded on); the TCG-only host only EPYC under qemu.
wait_for 'virtcaps_guest_cpu_host_model_info{arch="x86_64"}' 5
hosts=$(query 'virtcaps_guest_cpu_host_model_info{arch="x86_64",virttype="kvm",model="kvm64",vendor="Intel"}' | jq -r '[.data.result[].metric.host] | sort | join(",")')
[[ "$hosts" == "nokvm,pvm" ]] || fail "kvm host-model kvm64 on hosts '$hosts'"
hosts=$(query 'virtcaps_guest_cpu_host_model_info{arch="x86_64",virttype="qemu",model="EPYC",vendor="AMD"}' | jq -r '[.data.result[].metric.host] | sort | join(",")')
[[ "$hosts" == "nokvm,pvm,tcgonly" ]] || fail "qemu host-model EPYC on hosts '$hosts'"
wait_for 'virtcaps:guest_cpu_host_model:hosts{arch="x86_64",virttype="qemu",model="EPYC",vendor="AMD"} == 3' 1
# The pool's common host-model: under qemu every host agrees on EPYC; under kvm the
# TCG-only host offers none, and the two KVM hosts agree on kvm64.
common=$(query 'virtcaps:guest_cpu_host_model:hosts{arch="x86_64"} == on (arch, virttype) group_left () virtcaps:guest_cpu_host_model:pool_hosts' | jq -r '[.data.result[].metric | .virttype + "=" + .model + "/" + .vendor] | sort | join(",")')
[[ "$common" == "kvm=kvm64/Intel,qemu=EPYC/AMD" ]] || fail "common host-models of the pool: '$common'"
# A pool where the hosts' host-models differ has no common one: here the TCG-only host
# against the pvm host, under both virt types, counted over those two hosts alone.
differ=$(query 'count by (virttype, model) (virtcaps_guest_cpu_host_model_info{arch="x86_64",host=~"pvm|tcgonly"}) == on () group_left () scalar(count(count by (instance) (virtcaps_guest_cpu_host_model_info{arch="x86_64",host=~"pvm|tcgonly"})))' | jq -r '[.data.result[].metric | .virttype + "=" + .model] | sort | join(",")')
[[ "$differ" == "qemu=EPYC" ]] || fail "host-models common to pvm and tcgonly over both virt types: '$differ'"
echo "ok   host-model: kvm64 on nokvm,pvm; EPYC on all three QEMU hosts; pool common $common; pvm+tcgonly share only $differ"

# The QEMU version of each probed emulator (virtcaps_qemu_emulator_info).
wait_for 'virtcaps_qemu_emulator_info{emulator="/usr/bin/qemu-system-x86_64",arch="x86_64",version="7.2.22"}' 3
echo "ok   QEMU version 7.2.22 on the three QEMU hosts"

# Every dashboard query runs without error.
count=0
while IFS= read -r expr; do
  status=$(query "$expr" | jq -r '.status') || fail "dashboard query failed: $expr"
  [[ "$status" == "success" ]] || fail "dashboard query '$expr': $status"
  count=$((count + 1))
done < <(jq -r '.panels[].targets[].expr' "$source_dir/deploy/grafana/virtcaps-fleet.json")
[[ $count -gt 0 ]] || fail "no dashboard queries found"
echo "ok   $count dashboard queries run"
echo "prometheus_e2e: 0 failures"
