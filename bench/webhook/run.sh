#!/usr/bin/env bash
# The webhook mapping path against Ocean's libjq path, same items, same run.
# Usage: bench/webhook/run.sh [DELIVERIES] [ITEMS_PER_DELIVERY]   (default 20 500)
# Needs a Python with PyPI `jq` in PORTOLAN_LIBJQ_PYTHON (CI builds target/jq-venv; or
# `python3.11 -m venv /work/venv-jq && /work/venv-jq/bin/pip install jq==1.13.0`).
set -euo pipefail
D="${1:-20}"
K="${2:-500}"
PY="${PORTOLAN_LIBJQ_PYTHON:-target/jq-venv/bin/python}"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
DATA="$(mktemp --suffix=.json)"
trap 'rm -f "$DATA"' EXIT
cd "$ROOT"
cargo build --quiet --release -p portolan-jq --bins --examples -p portolan-cli -p portolan-bench
target/release/examples/webhook_bench --deliveries "$D" --items "$K" --json "$DATA"
"$PY" bench/jq/libjq_bench.py "$DATA"
# The whole path on a real server (SQLite): first POST to every entity counted.
target/release/portolan-bench --bin target/release/portolan --webhook-deliveries "$D" --webhook-items "$K"
