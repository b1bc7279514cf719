#!/usr/bin/env bash
# bench/run.sh - measures virtcaps-agent against its anchors and prints one table.
#
#   bench/run.sh            (from the repository root or anywhere; needs root for apt-get,
#                            /dev/kvm and libvirtd, as the rest of the project's scripts do)
#
# Anchors, all on 127.0.0.1 with free ports: node_exporter with only its cpu collector,
# nginx serving the agent's own /metrics and /capabilities bytes as static files, and
# a cold `virsh capabilities` of libvirtd. See bench/README.md for what each figure means.
#
# Environment:
#   BENCH_DURATION=10s      length of each wrk throughput/latency run
#   BENCH_SCRAPES=100000    scrapes driven into the agent and node_exporter for the RSS figures
#   BENCH_SCRAPE_LIMIT=100  seconds at most for each of those drives (keeps the run short)
#   BENCH_REFRESH_RUNS=20   --once/--version runs averaged for the warm refresh CPU time
#   BENCH_REFRESH_WINDOW=30 seconds an agent with refresh_interval 1s runs (in-agent refresh cost)
#   BENCH_REFRESH_IR_RUNS=5 warm refreshes of a serving agent counted by callgrind
#   BENCH_LIBVIRT=1         0 skips installing/starting libvirtd (the 8 s reference is used)
#   BENCH_BUILD_DIR=build-bench
# Raw outputs (wrk, callgrind, logs) are kept in $BENCH_BUILD_DIR/bench-results/.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
DURATION=${BENCH_DURATION:-10s}
SCRAPES=${BENCH_SCRAPES:-100000}
SCRAPE_LIMIT=${BENCH_SCRAPE_LIMIT:-100}
WARMUP=${BENCH_WARMUP:-10000} # scrapes before the "warm" RSS reading (issue 13: 10 000)
IDLE_WINDOW=${BENCH_IDLE_WINDOW:-10} # seconds the idle CPU and wakeups are measured over
REFRESH_RUNS=${BENCH_REFRESH_RUNS:-20}
REFRESH_WINDOW=${BENCH_REFRESH_WINDOW:-30}
REFRESH_IR_RUNS=${BENCH_REFRESH_IR_RUNS:-5} # warm refreshes counted by callgrind in a serving agent
LIBVIRT=${BENCH_LIBVIRT:-1}
BUILD_DIR=${BENCH_BUILD_DIR:-build-bench}
THREADS=2
CONNECTIONS=16
VIRSH_REFERENCE_S=8 # docs: shared/design/FACTS.md section 5, "virsh capabilities cold ~8 s"

log() { printf 'bench: %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi

# --- dependencies --------------------------------------------------------------------
apt_install() { # packages...
  log "installing $*"
  $sudo apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@" >/dev/null
}
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

"$ROOT/scripts/install-deps.sh" build
missing=()
for package in wrk prometheus-node-exporter valgrind curl qemu-system-x86 iproute2 procps; do
  installed "$package" || missing+=("$package")
done
command -v nginx >/dev/null || missing+=(nginx-light)
if [[ ${#missing[@]} -gt 0 ]]; then apt_install "${missing[@]}"; fi

# libvirtd for the cold `virsh capabilities` reference. libvirt-daemon-system creates the
# libvirt-qemu user that the qemu driver refuses to start without.
libvirt_note=""
if [[ $LIBVIRT == 1 && -z $sudo ]]; then
  if ! command -v libvirtd >/dev/null || ! command -v virsh >/dev/null ||
    ! id libvirt-qemu >/dev/null 2>&1; then
    apt_install libvirt-daemon-system libvirt-clients ||
      libvirt_note="libvirt-daemon-system did not install"
  fi
elif [[ $LIBVIRT != 1 ]]; then
  libvirt_note="BENCH_LIBVIRT=0"
else
  libvirt_note="not root: libvirtd not started"
fi

# --- build ------------------------------------------------------------------------------
RESULTS=$ROOT/$BUILD_DIR/bench-results
mkdir -p "$RESULTS"
log "building virtcaps-agent in $BUILD_DIR"
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DVIRTCAPS_BUILD_TESTS=OFF \
  >"$RESULTS/cmake.log" 2>&1 || {
  tail -20 "$RESULTS/cmake.log"
  die "cmake configure failed"
}
cmake --build "$BUILD_DIR" -j2 --target virtcaps-agent >"$RESULTS/build.log" 2>&1 || {
  tail -40 "$RESULTS/build.log"
  die "build failed"
}
AGENT=$ROOT/$BUILD_DIR/agent/virtcaps-agent
NODE_EXPORTER=$(command -v prometheus-node-exporter || command -v node_exporter)

# --- process bookkeeping --------------------------------------------------------------
WORK=$(mktemp -d /tmp/virtcaps-bench.XXXXXX)
chmod 755 "$WORK" # nginx workers run as nobody and read the static files from here
PIDS=()          # children started here, stopped on exit
LIBVIRTD_PID=""  # libvirtd daemonizes: not our child, tracked by its pid file

alive() { [[ -e /proc/$1 ]] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }
stop_pid() { # pid
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  if [[ -n $LIBVIRTD_PID ]]; then
    kill "$LIBVIRTD_PID" 2>/dev/null || true
    for _ in $(seq 50); do alive "$LIBVIRTD_PID" || break; sleep 0.1; done
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

forget_pid() { # pid: stopped on purpose, drop it from PIDS
  local kept=() pid
  for pid in "${PIDS[@]}"; do [[ $pid == "$1" ]] || kept+=("$pid"); done
  PIDS=("${kept[@]}")
}

free_port() {
  local used port
  used=$(ss -Hltn | awk '{n = split($4, a, ":"); print a[n]}')
  for _ in $(seq 200); do
    port=$((20000 + RANDOM % 40000))
    if ! grep -qx "$port" <<<"$used"; then
      echo "$port"
      return
    fi
  done
  die "no free port found"
}
wait_listening() { # port pid what
  for _ in $(seq 200); do
    [[ -n $(ss -Hltn "sport = :$1") ]] && return 0
    alive "$2" || die "$3 exited before listening"
    sleep 0.05
  done
  die "$3 is not listening on 127.0.0.1:$1"
}
wait_for_line() { # file pattern pid what seconds
  local deadline=$((SECONDS + $5))
  until grep -q -- "$2" "$1"; do
    alive "$3" || {
      cat "$1" >&2
      die "$4 exited before: $2"
    }
    ((SECONDS < deadline)) || die "$4: no '$2' after $5 s"
    sleep 0.05
  done
}
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
threads_of() { awk '/^Threads:/ {print $2}' "/proc/$1/status"; }
# Context switches of every thread of a process so far (each one a wakeup or a preemption).
switches_of() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches:/ {n += $2} END {print n + 0}'; }
# user+sys CPU ticks of a process so far.
ticks_of() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Sets IDLE_WAKEUPS (per second) and IDLE_CPU_MS (per second) of an idle process.
idle_figures() { # pid
  local s0 t0 s1 t1
  s0=$(switches_of "$1") t0=$(ticks_of "$1")
  sleep "$IDLE_WINDOW"
  s1=$(switches_of "$1") t1=$(ticks_of "$1")
  IDLE_WAKEUPS=$(calc "($s1 - $s0) / $IDLE_WINDOW")
  IDLE_CPU_MS=$(calc "($t1 - $t0) * 1000 / $(getconf CLK_TCK) / $IDLE_WINDOW")
}

# Sets VAR to the user+sys CPU (ms) of every child this shell has waited for, as bash's
# `times` reports it (getrusage RUSAGE_CHILDREN). It must run in this shell, never in $(...):
# a subshell has children of its own.
cpu_mark() { # VAR
  times >"$WORK/times"
  printf -v "$1" '%s' "$(awk 'NR == 2 {
    total = 0
    for (i = 1; i <= 2; i++) { split($i, p, "m"); sub("s", "", p[2]); total += p[1] * 60 + p[2] }
    printf "%.3f", total * 1000 }' "$WORK/times")"
}
calc() { awk "BEGIN { printf \"%s\", $* }"; }
now_s() { date +%s.%N; }

# --- start the servers ------------------------------------------------------------------
load_start=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$load_start" 'BEGIN { exit !(l > 1) }'; then
  log "warning: load average $load_start before measuring: other work on these $(nproc) CPUs skews the figures"
fi
log "starting virtcaps-agent"
# wrk opens all its 16 connections from 127.0.0.1, and the agent serves at most
# web.max_connections_per_client (8 by default) from one address: beyond that it closes
# a connection as soon as it is accepted, and wrk counts read errors and reconnects
# (9 650 instead of ~58 000 requests in 2 s here). The load generator is one trusted
# client, as a Prometheus server is, so it may hold its 16 connections, and the "one
# more client" row's curl (from the same address) a 17th.
printf 'web:\n  max_connections_per_client: %s\n' "$((CONNECTIONS + 1))" >"$WORK/agent.yaml"
"$AGENT" --config.file="$WORK/agent.yaml" --web.listen-address=127.0.0.1:0 2>"$WORK/agent.log" &
AGENT_PID=$!
PIDS+=("$AGENT_PID")
wait_for_line "$WORK/agent.log" 'msg="first snapshot ready"' "$AGENT_PID" virtcaps-agent 120
AGENT_PORT=$(sed -n 's/.*msg=listening address=127\.0\.0\.1:\([0-9]*\).*/\1/p' \
  "$WORK/agent.log" | head -1)
[[ -n $AGENT_PORT ]] || die "no 'msg=listening address=127.0.0.1:PORT' line from the agent"
AGENT_URL=http://127.0.0.1:$AGENT_PORT
rss_agent_start=$(rss_kb "$AGENT_PID")
threads_agent_start=$(threads_of "$AGENT_PID")

log "starting node_exporter (cpu collector only)"
NE_PORT=$(free_port)
"$NODE_EXPORTER" --collector.disable-defaults --collector.cpu --collector.cpu.info \
  --web.listen-address="127.0.0.1:$NE_PORT" 2>"$WORK/node_exporter.log" &
NE_PID=$!
PIDS+=("$NE_PID")
wait_listening "$NE_PORT" "$NE_PID" node_exporter
NE_URL=http://127.0.0.1:$NE_PORT
rss_ne_start=$(rss_kb "$NE_PID")
threads_ne_start=$(threads_of "$NE_PID")
log "measuring idle CPU and wakeups for ${IDLE_WINDOW} s each"
idle_figures "$AGENT_PID"
idle_wakeups_agent=$IDLE_WAKEUPS idle_cpu_agent=$IDLE_CPU_MS
idle_figures "$NE_PID"
idle_wakeups_ne=$IDLE_WAKEUPS idle_cpu_ne=$IDLE_CPU_MS

# --- RSS across a fixed number of scrapes -----------------------------------------------
# Each wrk thread stops after its share of responses (wrk.thread:stop() in a Lua response
# hook). wrk's main thread would still sleep out -d, so once only it is left it gets SIGINT,
# which makes it print its summary at once. -d bounds the drive: one that hits the bound
# completes fewer scrapes than asked, which the table reports (and counts as a MISS).
cat >"$WORK/count.lua" <<'EOF'
local limit = tonumber(os.getenv("WRK_LIMIT_PER_THREAD"))
local seen = 0
function response(status, headers, body)
  seen = seen + 1
  if seen >= limit then wrk.thread:stop() end
end
EOF
drive_scrapes() { # name url count -> prints completed request count
  local pid
  WRK_LIMIT_PER_THREAD=$((($3 + THREADS - 1) / THREADS)) \
    wrk -t$THREADS -c$CONNECTIONS -d"${SCRAPE_LIMIT}s" -s "$WORK/count.lua" "$2" \
    >"$RESULTS/scrapes-$1.txt" 2>&1 &
  pid=$!
  threads() { find "/proc/$pid/task" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
  for _ in $(seq 100); do # its threads start first...
    [[ $(threads) -gt 1 ]] && break
    sleep 0.05
  done
  while [[ $(threads) -gt 1 ]]; do sleep 0.1; done # ...and are done when only main is left
  kill -INT "$pid" 2>/dev/null || true
  wait "$pid" || true
  awk '/requests in/ {print $1}' "$RESULTS/scrapes-$1.txt"
}
# RSS right after start, after a warm-up of WARMUP scrapes (thread stacks, connection
# buffers and allocator arenas are touched by the first requests; FACTS.md's node_exporter
# figure is also "after 1000 scrapes"), and after SCRAPES scrapes in all.
log "driving $WARMUP + $((SCRAPES - WARMUP)) scrapes into the agent"
t0=$(now_s)
warm_agent=$(drive_scrapes agent-warmup "$AGENT_URL/metrics" "$WARMUP")
rss_agent_warm=$(rss_kb "$AGENT_PID")
rest_agent=$(drive_scrapes agent "$AGENT_URL/metrics" $((SCRAPES - WARMUP)))
scrapes_agent=$((${warm_agent:-0} + ${rest_agent:-0}))
scrapes_agent_s=$(calc "$(now_s) - $t0")
rss_agent_load=$(rss_kb "$AGENT_PID")
log "driving $WARMUP + $((SCRAPES - WARMUP)) scrapes into node_exporter"
t0=$(now_s)
warm_ne=$(drive_scrapes node_exporter-warmup "$NE_URL/metrics" "$WARMUP")
rss_ne_warm=$(rss_kb "$NE_PID")
rest_ne=$(drive_scrapes node_exporter "$NE_URL/metrics" $((SCRAPES - WARMUP)))
scrapes_ne=$((${warm_ne:-0} + ${rest_ne:-0}))
scrapes_ne_s=$(calc "$(now_s) - $t0")
rss_ne_load=$(rss_kb "$NE_PID")

# --- nginx serving the agent's bytes ----------------------------------------------------
mkdir -p "$WORK/www" "$WORK/nginx"
curl -fsS -o "$WORK/www/metrics" "$AGENT_URL/metrics"
curl -fsS -o "$WORK/www/capabilities" "$AGENT_URL/capabilities"
chmod 644 "$WORK/www/"*
metrics_bytes=$(stat -c %s "$WORK/www/metrics")
caps_bytes=$(stat -c %s "$WORK/www/capabilities")
ne_bytes=$(curl -fsS "$NE_URL/metrics" | wc -c)
NGINX_PORT=$(free_port)
cat >"$WORK/nginx/nginx.conf" <<EOF
daemon off;
worker_processes auto;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  open_file_cache max=16;
  client_body_temp_path $WORK/nginx/body;
  proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/fastcgi;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    root $WORK/www;
    location = /metrics { default_type "text/plain; version=0.0.4; charset=utf-8"; }
    location = /capabilities { default_type application/xml; }
  }
}
EOF
log "starting nginx"
nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
wait_listening "$NGINX_PORT" "$NGINX_PID" nginx
NGINX_URL=http://127.0.0.1:$NGINX_PORT
cmp -s <(curl -fsS "$NGINX_URL/metrics") "$WORK/www/metrics" || die "nginx serves other bytes"

# --- throughput and latency -------------------------------------------------------------
declare -A RPS P50 P99 ERR
to_ms() { # "123.45us" | "1.2ms" | "2.00s" | "1.00m"
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) printf "%.3f", v / 1000; else if (v ~ /ms$/) printf "%.3f", v + 0;
    else if (v ~ /m$/) printf "%.3f", v * 60000; else printf "%.3f", v * 1000 }'
}
declare -A EXTRA # one more client's latency (s) while wrk holds its 16 connections
measure() { # name url [request header]
  local pid header=()
  [[ -n ${3:-} ]] && header=(-H "$3")
  log "wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency ${header[*]} $2"
  wrk -t$THREADS -c$CONNECTIONS -d"$DURATION" --latency "${header[@]}" "$2" >"$RESULTS/wrk-$1.txt" 2>&1 &
  pid=$!
  sleep 1
  local rc=0
  EXTRA[$1]=$(curl -s -o /dev/null -m 60 -w '%{time_total}' "${header[@]}" "$2") || rc=$?
  if ((rc != 0)); then EXTRA[$1]="failed (curl exit $rc after ${EXTRA[$1]:-?} s)"; fi
  wait "$pid"
  RPS[$1]=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$RESULTS/wrk-$1.txt")
  P50[$1]=$(to_ms "$(awk '$1 == "50%" {print $2}' "$RESULTS/wrk-$1.txt")")
  P99[$1]=$(to_ms "$(awk '$1 == "99%" {print $2}' "$RESULTS/wrk-$1.txt")")
  ERR[$1]=$(awk '/Socket errors|Non-2xx/ {$1 = $1; printf "%s%s", sep, $0; sep = "; "}' \
    "$RESULTS/wrk-$1.txt")
}
measure agent_metrics "$AGENT_URL/metrics"
measure ne_metrics "$NE_URL/metrics"
measure nginx_metrics "$NGINX_URL/metrics"
# What a Prometheus server asks for: the agent closes its pre-compressed body with the
# live families; node_exporter compresses every response.
measure agent_metrics_gzip "$AGENT_URL/metrics" "Accept-Encoding: gzip"
measure ne_metrics_gzip "$NE_URL/metrics" "Accept-Encoding: gzip"
measure agent_caps "$AGENT_URL/capabilities"
measure nginx_caps "$NGINX_URL/capabilities"
rss_agent_end=$(rss_kb "$AGENT_PID")
rss_ne_end=$(rss_kb "$NE_PID")
threads_agent_end=$(threads_of "$AGENT_PID")
threads_ne_end=$(threads_of "$NE_PID")

for pid in "$NGINX_PID" "$NE_PID" "$AGENT_PID"; do
  stop_pid "$pid"
  forget_pid "$pid"
done

# --- warm refresh cost --------------------------------------------------------------------
log "warm refresh: $REFRESH_RUNS x --once --format prometheus vs --version"
"$AGENT" --once --format prometheus >"$RESULTS/once-warmup.prom" 2>"$RESULTS/once-warmup.log"
"$AGENT" --once --format prometheus >"$RESULTS/once-warm.prom" 2>/dev/null
warm_cache_hits=$(awk '$1 == "virtcaps_qemu_emulator_cache_hits_total" {print $2}' "$RESULTS/once-warm.prom")
warm_spawned=$(awk '$1 == "virtcaps_qemu_emulator_probes_spawned_total" {print $2}' "$RESULTS/once-warm.prom")
cpu_per_run() { # VAR runs command...: VAR = ms of user+sys per run
  local var=$1 n=$2 before after
  shift 2
  cpu_mark before
  for ((i = 0; i < n; i++)); do "$@" >/dev/null 2>&1; done
  cpu_mark after
  printf -v "$var" '%s' "$(calc "($after - $before) / $n")"
}
once_ms="" version_ms="" # set by cpu_per_run
cpu_per_run once_ms "$REFRESH_RUNS" "$AGENT" --once --format prometheus
cpu_per_run version_ms "$REFRESH_RUNS" "$AGENT" --version
warm_refresh_ms=$(calc "$once_ms - $version_ms")

log "callgrind of a warm --once (and of --version)"
# Under valgrind CPUID reports valgrind's own CPU, whose signature is part of the QEMU cache
# key: a first run under valgrind re-probes and caches for that key, the second is warm.
callgrind_ir() { # name args... -> total Ir
  valgrind --tool=callgrind --callgrind-out-file="$RESULTS/callgrind.$1.out" "${@:2}" \
    >"$RESULTS/callgrind.$1.stdout" 2>"$RESULTS/callgrind.$1.log"
  awk '/Collected :/ {print $NF}' "$RESULTS/callgrind.$1.log"
}
callgrind_ir warmup "$AGENT" --once --format prometheus >/dev/null
ir_once=$(callgrind_ir once "$AGENT" --once --format prometheus)
ir_once_spawned=$(awk '$1 == "virtcaps_qemu_emulator_probes_spawned_total" {print $2}' \
  "$RESULTS/callgrind.once.stdout")
ir_version=$(callgrind_ir version "$AGENT" --version)
callgrind_annotate --inclusive=yes "$RESULTS/callgrind.once.out" 2>/dev/null |
  head -80 >"$RESULTS/callgrind.once.inclusive.txt" || true
"$AGENT" --once --format prometheus >/dev/null 2>&1 # the native cache key again

# The refresh as the serving agent does it (probe + Prometheus + XML + two gzips):
# an agent refreshing every 1s against one refreshing every 1h, both for the same window;
# their CPU difference over the extra refreshes. CPU is read with `times` after each exits.
log "in-agent refresh: refresh_interval 1s vs 1h for ${REFRESH_WINDOW}s"
# Both agents use a private QEMU cache directory, warmed first: the callgrind runs
# above cache the emulators under valgrind's CPU (part of the cache key), and the
# agent started at the top shares the default directory. The three hypervisor entries
# are the default configuration's.
mkdir -p "$WORK/window-cache"
chmod 700 "$WORK/window-cache"
for speed in fast:1s slow:1h; do
  printf 'refresh_interval: %s\nhypervisors:\n  - type: qemu\n    cache_dir: %s\n  - type: xen\n  - type: lxc\n' \
    "${speed#*:}" "$WORK/window-cache" >"$WORK/${speed%%:*}.yaml"
done
# callgrind's serving agent gets a cache directory of its own: under valgrind CPUID is
# valgrind's CPU, part of the cache key, and its re-probe would rewrite the window
# agents' entries under that key (then the 1s agent re-probed natively: the "probes
# spawned 2/0" of earlier runs, ~0.2 s of CPU spread over its refreshes).
mkdir -p "$WORK/cg-cache"
chmod 700 "$WORK/cg-cache"
sed "s|$WORK/window-cache|$WORK/cg-cache|" "$WORK/fast.yaml" >"$WORK/cg.yaml"
run_agent_window() { # config: sets WINDOW_MS (CPU) and WINDOW_N (refreshes)
  local before pid port after
  cpu_mark before
  : >"$WORK/window.log"
  "$AGENT" --config.file="$1" --web.listen-address=127.0.0.1:0 2>"$WORK/window.log" &
  pid=$!
  PIDS+=("$pid")
  wait_for_line "$WORK/window.log" 'msg="first snapshot ready"' "$pid" virtcaps-agent 60
  sleep "$REFRESH_WINDOW"
  port=$(sed -n 's/.*msg=listening address=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$WORK/window.log")
  curl -fsS "http://127.0.0.1:$port/metrics" >"$WORK/window.prom"
  WINDOW_N=$(awk '$1 == "virtcaps_refreshes_total" {print $2}' "$WORK/window.prom")
  WINDOW_SPAWNED=$(awk '$1 == "virtcaps_qemu_emulator_probes_spawned_total" {print $2}' "$WORK/window.prom")
  WINDOW_WALL_MS=$(awk '$1 == "virtcaps_refresh_duration_seconds" {printf "%.3f", $2 * 1000}' \
    "$WORK/window.prom")
  stop_pid "$pid"
  forget_pid "$pid"
  cpu_mark after
  WINDOW_MS=$(calc "$after - $before")
}
# Instructions of one warm refresh inside a serving agent: callgrind of an agent
# refreshing every second, counters zeroed after its first warm refresh and dumped
# after REFRESH_IR_RUNS more (every thread: refresher, probe threads, idle workers).
log "callgrind of $REFRESH_IR_RUNS warm refreshes inside a serving agent"
refresh_count() { grep -c 'msg=refreshed' "$WORK/cg-serve.log" || true; }
valgrind --tool=callgrind --callgrind-out-file="$RESULTS/callgrind.serve.out" \
  "$AGENT" --config.file="$WORK/cg.yaml" --log.level=debug --web.listen-address=127.0.0.1:0 \
  >/dev/null 2>"$WORK/cg-serve.log" &
cg_pid=$!
PIDS+=("$cg_pid")
wait_for_line "$WORK/cg-serve.log" 'msg="first snapshot ready"' "$cg_pid" "virtcaps-agent under callgrind" 300
wait_for_line "$WORK/cg-serve.log" 'msg=refreshed' "$cg_pid" "virtcaps-agent under callgrind" 60
callgrind_control -z "$cg_pid" >/dev/null
cg_first=$(refresh_count)
cg_deadline=$((SECONDS + 120))
while (($(refresh_count) < cg_first + REFRESH_IR_RUNS && SECONDS < cg_deadline)); do sleep 0.1; done
cg_runs=$(($(refresh_count) - cg_first))
callgrind_control -d "$cg_pid" >/dev/null

stop_pid "$cg_pid"
forget_pid "$cg_pid"
cg_total=$(awk '/^summary:/ {print $2; exit}' "$RESULTS/callgrind.serve.out.1" 2>/dev/null || true)
ir_refresh=$(calc "${cg_total:-0} / (${cg_runs} > 0 ? ${cg_runs} : 1)")
callgrind_annotate --inclusive=yes "$RESULTS/callgrind.serve.out.1" 2>/dev/null |
  head -120 >"$RESULTS/callgrind.serve.inclusive.txt" || true

# Both windows start from a cache warmed natively, as a host's agent would.
"$AGENT" --once --format prometheus --config.file="$WORK/fast.yaml" >/dev/null 2>&1
run_agent_window "$WORK/fast.yaml"
fast_ms=$WINDOW_MS fast_n=$WINDOW_N fast_spawned=$WINDOW_SPAWNED fast_wall_ms=$WINDOW_WALL_MS
run_agent_window "$WORK/slow.yaml"
slow_ms=$WINDOW_MS slow_n=$WINDOW_N slow_spawned=$WINDOW_SPAWNED
inagent_refresh_ms=$(calc "($fast_ms - $slow_ms) / ($fast_n - $slow_n)")

# --- cold probe of the installed QEMU emulators -------------------------------------------
log "cold QEMU probe: --once with an empty cache_dir, 5 runs"
cold_runs=()
for i in 1 2 3 4 5; do
  mkdir -p "$WORK/cold-$i"
  printf 'hypervisors:\n  - type: qemu\n    cache_dir: %s\n' "$WORK/cold-$i" >"$WORK/cold-$i.yaml"
  t0=$(now_s)
  "$AGENT" --once --format prometheus --config.file="$WORK/cold-$i.yaml" \
    >"$RESULTS/once-cold.prom" 2>"$RESULTS/once-cold.log"
  cold_runs+=("$(calc "$(now_s) - $t0")")
done
cold_s=$(printf '%s\n' "${cold_runs[@]}" | sort -g | sed -n 3p)
cold_emulators=$(awk '$1 == "virtcaps_qemu_emulators" {print $2}' "$RESULTS/once-cold.prom")
cold_spawned=$(awk '$1 == "virtcaps_qemu_emulator_probes_spawned_total" {print $2}' "$RESULTS/once-cold.prom")

virsh_s=""
virsh_warm_s=""
libvirt_emulators=""
if [[ -z $libvirt_note ]]; then
  if ! command -v libvirtd >/dev/null || ! id libvirt-qemu >/dev/null 2>&1; then
    libvirt_note="libvirtd or the libvirt-qemu user missing"
  else
    for pid in $(pgrep -x libvirtd || true); do
      alive "$pid" && libvirt_note="a libvirtd not started here is running (pid $pid)"
    done
  fi
fi
if [[ -z $libvirt_note ]]; then
  log "cold virsh capabilities: empty /var/cache/libvirt/qemu/capabilities, fresh libvirtd"
  rm -f /var/cache/libvirt/qemu/capabilities/*.xml
  if timeout 60 libvirtd -d -p "$WORK/libvirtd.pid" 2>"$RESULTS/libvirtd.log" &&
    LIBVIRTD_PID=$(cat "$WORK/libvirtd.pid" 2>/dev/null) && [[ -n $LIBVIRTD_PID ]]; then
    t0=$(now_s)
    if timeout 180 virsh -c qemu:///system capabilities >"$RESULTS/virsh-capabilities.xml" \
      2>"$RESULTS/virsh.log"; then
      virsh_s=$(calc "$(now_s) - $t0")
      t0=$(now_s)
      timeout 60 virsh -c qemu:///system capabilities >/dev/null 2>&1 &&
        virsh_warm_s=$(calc "$(now_s) - $t0")
      libvirt_emulators=$(find /var/cache/libvirt/qemu/capabilities -name '*.xml' | wc -l)
    else
      libvirt_note="virsh capabilities failed: $(head -c 200 "$RESULTS/virsh.log")"
    fi
    kill "$LIBVIRTD_PID" 2>/dev/null || true
    for _ in $(seq 50); do alive "$LIBVIRTD_PID" || break; sleep 0.1; done
    LIBVIRTD_PID=""
  else
    libvirt_note="libvirtd did not start (see $RESULTS/libvirtd.log)"
  fi
fi

# --- the table --------------------------------------------------------------------------
verdict() { awk "BEGIN { print ($1) ? \"PASS\" : \"MISS\" }"; }
fmt_int() { # 1234567 -> 1 234 567
  awk -v v="$1" 'BEGIN { s = sprintf("%.0f", v); out = ""
    while (length(s) > 3) { out = " " substr(s, length(s) - 2) out; s = substr(s, 1, length(s) - 3) }
    print s out }'
}
mb() { calc "$1 / 1024"; }
fmt_ratio() { awk -v v="$1" 'BEGIN { printf (v >= 0.1 ? "%.2f" : "%.4f"), v }'; }

ratio_ne=$(calc "${RPS[agent_metrics]} / ${RPS[ne_metrics]}")
ratio_nginx=$(calc "${RPS[agent_metrics]} / ${RPS[nginx_metrics]}")
ratio_nginx_caps=$(calc "${RPS[agent_caps]} / ${RPS[nginx_caps]}")
rss_ratio=$(calc "$rss_agent_load / $rss_ne_load")
rss_growth=$((rss_agent_load - rss_agent_warm))
rss_growth_after=$((rss_agent_end - rss_agent_load))
if [[ -n $virsh_s ]]; then
  virsh_ref=$virsh_s
  virsh_label="cold virsh capabilities here: $(printf '%.2f' "$virsh_s") s ($libvirt_emulators emulators)"
else
  virsh_ref=$VIRSH_REFERENCE_S
  virsh_label="FACTS.md reference ~${VIRSH_REFERENCE_S} s (not run here: $libvirt_note)"
fi
cold_ratio=$(calc "$cold_s / $virsh_ref")
flat_limit_kb=64 # "flat" (issue 13): less than 64 kB of growth from the warm-up to the last scrape

table() {
  echo "| figure | virtcaps-agent | anchor | ratio | target | result |"
  echo "| --- | --- | --- | --- | --- | --- |"
  printf '| /metrics throughput (%s B body) | %s req/s | node_exporter cpu-only: %s req/s (%s B) | %sx | >= 30x node_exporter | %s |\n' \
    "$metrics_bytes" "$(fmt_int "${RPS[agent_metrics]}")" "$(fmt_int "${RPS[ne_metrics]}")" "$ne_bytes" \
    "$(fmt_ratio "$ratio_ne")" "$(verdict "$ratio_ne >= 30")"
  printf '| /metrics throughput, same bytes | %s req/s | nginx static: %s req/s | %sx | >= 0.8x nginx | %s |\n' \
    "$(fmt_int "${RPS[agent_metrics]}")" "$(fmt_int "${RPS[nginx_metrics]}")" "$(fmt_ratio "$ratio_nginx")" \
    "$(verdict "$ratio_nginx >= 0.8")"
  printf '| /metrics latency p50 / p99 | %.3f / %.3f ms | node_exporter %.3f / %.3f ms; nginx %.3f / %.3f ms | | p99 < 1 ms | %s |\n' \
    "${P50[agent_metrics]}" "${P99[agent_metrics]}" "${P50[ne_metrics]}" "${P99[ne_metrics]}" \
    "${P50[nginx_metrics]}" "${P99[nginx_metrics]}" "$(verdict "${P99[agent_metrics]} < 1")"
  printf '| one more client during the /metrics wrk run (a 17th connection) | %s s | nginx %s s | | (information) | |\n' \
    "${EXTRA[agent_metrics]}" "${EXTRA[nginx_metrics]}"
  printf '| /metrics gzip (Accept-Encoding: gzip, as Prometheus asks) | %s req/s, p50 / p99 %.3f / %.3f ms | node_exporter: %s req/s, %.3f / %.3f ms | %sx | (information) | |\n' \
    "$(fmt_int "${RPS[agent_metrics_gzip]}")" "${P50[agent_metrics_gzip]}" "${P99[agent_metrics_gzip]}" \
    "$(fmt_int "${RPS[ne_metrics_gzip]}")" "${P50[ne_metrics_gzip]}" "${P99[ne_metrics_gzip]}" \
    "$(fmt_ratio "$(calc "${RPS[agent_metrics_gzip]} / ${RPS[ne_metrics_gzip]}")")"
  printf '| /capabilities throughput (%s B body) | %s req/s | nginx static: %s req/s | %sx | >= 0.8x nginx | %s |\n' \
    "$caps_bytes" "$(fmt_int "${RPS[agent_caps]}")" "$(fmt_int "${RPS[nginx_caps]}")" \
    "$(fmt_ratio "$ratio_nginx_caps")" "$(verdict "$ratio_nginx_caps >= 0.8")"
  printf '| /capabilities latency p50 / p99 | %.3f / %.3f ms | nginx %.3f / %.3f ms | | p99 < 1 ms | %s |\n' \
    "${P50[agent_caps]}" "${P99[agent_caps]}" "${P50[nginx_caps]}" "${P99[nginx_caps]}" \
    "$(verdict "${P99[agent_caps]} < 1")"
  printf '| RSS right after start | %.1f MB | node_exporter %.1f MB | %.2fx | | |\n' \
    "$(mb "$rss_agent_start")" "$(mb "$rss_ne_start")" "$(calc "$rss_agent_start / $rss_ne_start")"
  printf '| RSS after %s scrapes | %.1f MB | node_exporter %.1f MB | %.2fx | | |\n' \
    "$WARMUP" "$(mb "$rss_agent_warm")" "$(mb "$rss_ne_warm")" "$(calc "$rss_agent_warm / $rss_ne_warm")"
  printf '| RSS after %s scrapes (agent: %s done in %.1f s; node_exporter: %s in %.1f s) | %.1f MB | node_exporter %.1f MB | %.2fx | <= 0.5x node_exporter | %s |\n' \
    "$SCRAPES" "$scrapes_agent" "$scrapes_agent_s" "$scrapes_ne" "$scrapes_ne_s" \
    "$(mb "$rss_agent_load")" "$(mb "$rss_ne_load")" "$rss_ratio" "$(verdict "$rss_ratio <= 0.5")"
  printf '| RSS growth from scrape %s to scrape %s | %+d kB | node_exporter %+d kB | | flat (< %d kB, all scrapes done) | %s |\n' \
    "$WARMUP" "$SCRAPES" "$rss_growth" "$((rss_ne_load - rss_ne_warm))" "$flat_limit_kb" \
    "$(verdict "$rss_growth < $flat_limit_kb && $scrapes_agent >= $SCRAPES")"
  printf '| RSS growth over the wrk runs after that | %+d kB (%.1f MB at the end) | node_exporter %+d kB | | (information) | |\n' \
    "$rss_growth_after" "$(mb "$rss_agent_end")" "$((rss_ne_end - rss_ne_load))"
  printf '| threads right after start / after all scrapes and wrk runs | %s / %s | node_exporter %s / %s | | bounded | %s |\n' \
    "$threads_agent_start" "$threads_agent_end" "$threads_ne_start" "$threads_ne_end" \
    "$(verdict "$threads_agent_end <= $threads_agent_start")"
  printf '| idle CPU (%s s, right after start) | %.3f ms/s | node_exporter %.3f ms/s | | near zero | |\n' \
    "$IDLE_WINDOW" "$idle_cpu_agent" "$idle_cpu_ne"
  printf '| idle wakeups (context switches of all threads, %s s) | %.1f /s | node_exporter %.1f /s | | near zero | |\n' \
    "$IDLE_WINDOW" "$idle_wakeups_agent" "$idle_wakeups_ne"
  printf '| warm refresh CPU: --once minus --version (mean of %s) | %.2f ms (%.2f - %.2f) | | | < 1 ms | %s |\n' \
    "$REFRESH_RUNS" "$warm_refresh_ms" "$once_ms" "$version_ms" "$(verdict "$warm_refresh_ms < 1")"
  printf '| warm refresh CPU inside the serving agent (probe, both metrics texts, XML) | %.2f ms per refresh (%s extra refreshes; probes spawned %s/%s) | | | < 1 ms | %s |\n' \
    "$inagent_refresh_ms" "$((fast_n - slow_n))" "$fast_spawned" "$slow_spawned" \
    "$(verdict "$inagent_refresh_ms < 1")"
  printf '| warm refresh instructions inside the serving agent (callgrind Ir, every thread) | %s per refresh (%s refreshes) | | | (information) | |\n' \
    "$(fmt_int "$ir_refresh")" "$cg_runs"
  printf '| warm --once instructions (callgrind Ir; %s probes spawned) | %s | --version: %s | difference %s | (information) | |\n' \
    "$ir_once_spawned" "$(fmt_int "$ir_once")" "$(fmt_int "$ir_version")" \
    "$(fmt_int "$((ir_once - ir_version))")"
  printf '| warm refresh wall (virtcaps_refresh_duration_seconds of the idle 1s-refresh agent) | %.2f ms | | | (information) | |\n' \
    "$fast_wall_ms"
  printf '| cold probe of %s QEMU emulators (median of 5, wall) | %.3f s (%s probes spawned) | %s | 1/%.0f | < 1/8 | %s |\n' \
    "$cold_emulators" "$cold_s" "$cold_spawned" "$virsh_label" "$(calc "1 / $cold_ratio")" \
    "$(verdict "$cold_ratio < 0.125")"
  if [[ -n $virsh_warm_s ]]; then
    printf '| warm virsh capabilities (information) | | %.3f s | | | |\n' "$virsh_warm_s"
  fi
}

echo
echo "virtcaps bench: $(nproc) CPUs, $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)," \
  "kernel $(uname -r); load average $load_start before, $(cut -d' ' -f1 /proc/loadavg) after"
echo "agent: $("$AGENT" --version); wrk -t$THREADS -c$CONNECTIONS -d$DURATION; warm QEMU cache:" \
  "$warm_cache_hits hits, $warm_spawned probes spawned"
echo
# The previous published run (bench/README.md, revision 309973f) beside each figure it had.
beside_previous() {
  awk -F' [|] ' '
    BEGIN {
      before["/metrics throughput ("] = "54 829 req/s (33.91x)"
      before["/metrics throughput, same bytes"] = "0.65x nginx"
      before["/metrics latency p50 / p99"] = "0.173 / 0.930 ms"
      before["/capabilities throughput ("] = "59 968 req/s (0.72x nginx)"
      before["/capabilities latency p50 / p99"] = "0.165 / 0.647 ms"
      before["RSS right after start"] = "11.9 MB (0.90x)"
      before["RSS after 10000 scrapes"] = "(12.2 MB after 1000, 0.59x)"
      before["RSS after 100000 scrapes"] = "12.5 MB (0.59x)"
      before["RSS growth from scrape"] = "+324 kB (1000 to 100000)"
      before["RSS growth over the wrk"] = "+884 kB"
      before["threads right after start"] = "257 workers + main/master (256-worker default)"
      before["warm refresh CPU: --once"] = "4.60 ms"
      before["warm refresh CPU inside"] = "4.90 ms"
      before["warm refresh instructions"] = "(main before issue 13 work: ~60 500 000 Ir, see bench/README.md)"
      before["warm --once instructions"] = "17 969 157 Ir"
      before["warm refresh wall"] = "2.96 ms"
      before["cold probe of"] = "0.044 s (1/176)"
    }
    NR == 1 { print $0 " before (309973f) |"; next }
    NR == 2 { print $0 " --- |"; next }
    {
      cell = ""
      name = substr($1, 3)
      for (prefix in before) {
        if (index(name, prefix) == 1 && length(prefix) > length(best)) { best = prefix; cell = before[prefix] }
      }
      best = ""
      print $0 " " cell " |"
    }'
}
table | beside_previous | tee "$RESULTS/table.md"
for name in agent_metrics ne_metrics nginx_metrics agent_metrics_gzip ne_metrics_gzip agent_caps nginx_caps; do
  if [[ -n ${ERR[$name]} ]]; then echo "wrk errors, $name: ${ERR[$name]}"; fi
done
echo
echo "raw outputs: $RESULTS"
