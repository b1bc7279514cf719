#!/usr/bin/env bash
# Builds the libFuzzer targets in fuzz/ with clang (ASan+UBSan) in build-fuzz/ and runs
# each for FUZZ_SECONDS (default 20) on a fresh copy of its seed corpus fuzz/corpus/NAME.
# Exits non-zero when any fuzzer finds a crash, a broken invariant, a leak, UB or an
# input slower than FUZZ_TIMEOUT seconds (default 10); the input that did it is kept in
# build-fuzz/fuzz-artifacts/NAME/ and the whole log in build-fuzz/fuzz-logs/NAME.log.
#
# Usage: [FUZZ_SECONDS=N] scripts/fuzz.sh [NAME...]    (default: every fuzz/*_fuzzer.cpp)
# Reproduce a finding: build-fuzz/fuzz/NAME_fuzzer build-fuzz/fuzz-artifacts/NAME/crash-...
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-20}
timeout=${FUZZ_TIMEOUT:-10}
build_dir=build-fuzz

scripts/install-deps.sh build
missing=()
for package in clang libclang-rt-14-dev libfuzzer-14-dev; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
if [[ ${#missing[@]} -gt 0 ]]; then
  sudo=""
  if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
  echo "fuzz: installing ${missing[*]}" >&2
  $sudo apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

CC=clang CXX=clang++ cmake -S . -B "$build_dir" -DVIRTCAPS_FUZZ=ON -DVIRTCAPS_BUILD_TESTS=OFF \
  >/dev/null
cmake --build "$build_dir" --target virtcaps_fuzzers -j"$(nproc)"

names=("$@")
if [[ ${#names[@]} -eq 0 ]]; then
  for source in fuzz/*_fuzzer.cpp; do
    name=${source##*/}
    names+=("${name%_fuzzer.cpp}")
  done
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=()
for name in "${names[@]}"; do
  binary=$build_dir/fuzz/${name}_fuzzer
  corpus=$build_dir/fuzz-corpus/$name
  artifacts=$build_dir/fuzz-artifacts/$name
  log=$build_dir/fuzz-logs/$name.log
  if [[ ! -x $binary || ! -d fuzz/corpus/$name ]]; then
    echo "fuzz: $name: no $binary or no fuzz/corpus/$name" >&2
    failed+=("$name")
    continue
  fi
  rm -rf "$corpus"
  mkdir -p "$corpus" "$artifacts" "${log%/*}"
  cp -R "fuzz/corpus/$name/." "$corpus/"
  status=0
  "$binary" -max_total_time="$seconds" -timeout="$timeout" -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" "$corpus" >"$log" 2>&1 || status=$?
  # The last status line: "#RUNS DONE cov: N ft: N corp: N/Nb ... exec/s: N rss: NMb".
  progress=$(grep -E '^#[0-9]+' "$log" | tail -n 1 |
    sed -E 's/^#([0-9]+)[[:space:]]+[A-Z]+[[:space:]]+/\1 runs, /' || true)
  if [[ $status -eq 0 ]]; then
    echo "fuzz: $name: ok in ${seconds}s: $progress"
  else
    echo "fuzz: $name: FAILED (exit $status): $progress" >&2
    grep -E 'ERROR|invariant failed|SUMMARY|Test unit written|runtime error' "$log" | head -n 20 >&2 || true
    echo "fuzz: $name: full log in $log" >&2
    failed+=("$name")
  fi
done

if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzz: ${#failed[@]} of ${#names[@]} fuzzers failed: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: all ${#names[@]} fuzzers ran ${seconds}s each without a finding"
