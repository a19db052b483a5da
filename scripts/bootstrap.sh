#!/usr/bin/env bash
# Install the system packages w4s needs (compilers, gVisor's runsc), create .venv and install w4s with the given
# extras (default: serve). Idempotent: a second run only checks.
# llama-cpp-python (the `serve` extra) compiles llama.cpp once (~5 min on 2 cores); pip caches the wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-serve}"
python="${PYTHON:-python3}"

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "w4s needs Python >= 3.11 (found: $("$python" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
  exit 1
fi

missing=()
command -v c++ >/dev/null 2>&1 || missing+=(g++)
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
"$python" -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
command -v runsc >/dev/null 2>&1 || missing+=(runsc)  # gVisor: the sandbox for generated workflow code
command -v ip >/dev/null 2>&1 || missing+=(iproute2)  # the isolation tests' network-namespace test host
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)  # storage of the local control plane (w4s dev cluster)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)  # the monitoring tests' real Prometheus and promtool
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing system packages: ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "please install: ${missing[*]} (build tools for llama-cpp-python; runsc for the gVisor sandbox)" >&2
    exit 1
  fi
fi

[ -x .venv/bin/python ] || "$python" -m venv .venv
export CMAKE_ARGS="${CMAKE_ARGS:--DLLAVA_BUILD=OFF}"
.venv/bin/python -m pip install --disable-pip-version-check -q --upgrade "pip>=24"
# torch (the train extra) is a CUDA build of about 4 GB with its libraries, and the package index answers
# without cache headers, so pip would fetch it again for every fresh .venv: keep its wheels under ~/.cache/w4s,
# keyed by the pinned version, and let pip take them from there (a local file wins over the same index file).
find_links=()
torch_pin=$(sed -n 's/.*"\(torch==[^"]*\)".*/\1/p' pyproject.toml | head -n 1)
if [[ ",$extras," == *",train,"* && -n "$torch_pin" ]]; then
  wheels="${W4S_CACHE_DIR:-$HOME/.cache/w4s}/wheels/${torch_pin/==/-}"
  if [ ! -f "$wheels/.complete" ]; then
    echo "caching the wheels of $torch_pin and its libraries in $wheels (once, about 4 GB)"
    rm -rf "$wheels.partial" && mkdir -p "$wheels.partial"
    .venv/bin/python -m pip download --disable-pip-version-check -q -d "$wheels.partial" "$torch_pin"
    rm -rf "$wheels" && mv "$wheels.partial" "$wheels" && touch "$wheels/.complete"
  fi
  find_links=(--find-links "$wheels")
fi
echo "installing w4s[$extras] into .venv (the first build of llama-cpp-python takes a few minutes)"
.venv/bin/python -m pip install --disable-pip-version-check -q "${find_links[@]}" -e ".[$extras]"
