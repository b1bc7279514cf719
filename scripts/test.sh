#!/usr/bin/env bash
# Builds virtcaps with warnings as errors and runs the whole test suite.
# VIRTCAPS_SANITIZE=1 builds and tests with ASan+UBSan in build-asan/ instead.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh test
# Some tests run the agent as an unprivileged user (nobody): the checkout must be
# reachable by other users. A clone in a `mktemp -d` directory (mode 0700) is not, so
# give its directories search permission (x only, nothing readable is opened up).
dir=$PWD
while [[ $dir != / ]]; do
  if [[ ! -O $dir ]] || [[ $(stat -c %A "$dir") == *x ]]; then dir=$(dirname "$dir"); continue; fi
  chmod o+x "$dir"
  dir=$(dirname "$dir")
done
build_dir=build
options=(-DVIRTCAPS_WERROR=ON -DVIRTCAPS_BUILD_TESTS=ON)
if [[ "${VIRTCAPS_SANITIZE:-0}" == "1" ]]; then
  build_dir=build-asan
  options+=(-DVIRTCAPS_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug)
fi
cmake -S . -B "$build_dir" "${options[@]}" >/dev/null
cmake --build "$build_dir" -j"$(nproc)"
ctest_args=()
# The packaging tests (the .deb, the container's library list) are about the release
# build; the sanitizer build links libasan, so they run in the normal pass only.
if [[ "${VIRTCAPS_SANITIZE:-0}" == "1" ]]; then ctest_args+=(-LE packaging); fi
# The resilience attacks run the issue's 30 s in the normal pass; under the sanitizers
# the same attacks run 10 s each: that pass looks for memory errors, not endurance.
if [[ "${VIRTCAPS_SANITIZE:-0}" == "1" ]]; then export VIRTCAPS_ATTACK_SECONDS=${VIRTCAPS_ATTACK_SECONDS:-10}; fi
ctest --test-dir "$build_dir" --output-on-failure -j"$(nproc)" "${ctest_args[@]}"
