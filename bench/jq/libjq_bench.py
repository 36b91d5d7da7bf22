#!/usr/bin/env python3
"""libjq (PyPI `jq`, libjq 1.8.2) on the mapping and items written by
`cargo run --release -p portolan-jq --example map_bench -- N --json FILE`.

Evaluates each expression separately with first-output semantics (error -> null), as Ocean does.
Usage: libjq_bench.py FILE
"""
import json
import sys
import time

import jq

data = json.load(open(sys.argv[1]))
mapping = [expr for _, expr in data["mapping"]]
items = data["items"]
progs = [jq.compile(expr) for expr in mapping]


def first(prog, item):
    try:
        return prog.input_value(item).first()
    except (ValueError, StopIteration):
        return None


t = time.perf_counter()
check = 0
for item in items:
    for prog in progs:
        check += first(prog, item) is not None
per_expr = len(items) / (time.perf_counter() - t)
print("sample item 7:", json.dumps([first(p, items[7]) for p in progs], separators=(",", ":")))
print(f"libjq (python jq) per-expression: {per_expr:>10.0f} items/s ({len(items)} items, {len(mapping)} expressions)")
print(f"(non-null results: {check})")
