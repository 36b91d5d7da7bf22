#!/usr/bin/env bash
# Mapping benchmark: portolan-jq against libjq on the same mapping and items, in the same run.
# Usage: bench/jq/run.sh [N]   (needs a Python with the PyPI `jq` package: PORTOLAN_LIBJQ_PYTHON,
# default /work/venv-jq/bin/python; create it with
# `python3 -m venv /work/venv-jq && /work/venv-jq/bin/pip install jq`)
set -euo pipefail
N="${1:-20000}"
PY="${PORTOLAN_LIBJQ_PYTHON:-/work/venv-jq/bin/python}"
DIR="$(cd "$(dirname "$0")" && pwd)"
DATA="$(mktemp --suffix=.json)"
trap 'rm -f "$DATA"' EXIT
cargo run --quiet --release -p portolan-jq --example map_bench -- "$N" --json "$DATA"
"$PY" "$DIR/libjq_bench.py" "$DATA"
