#!/usr/bin/env bash
# Builds virtcaps-agent and runs it in the foreground with its embedded default
# configuration (loopback, port 9977). Extra arguments are passed to the agent.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh build
cmake -S . -B build -DVIRTCAPS_BUILD_TESTS=OFF >/dev/null
cmake --build build --target virtcaps-agent -j"$(nproc)"
echo "virtcaps-agent: http://127.0.0.1:9977/metrics and http://127.0.0.1:9977/capabilities" >&2
exec build/agent/virtcaps-agent "$@"
