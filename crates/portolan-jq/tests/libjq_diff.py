#!/usr/bin/env python3
"""Reads [[filter, input], ...] as JSON on stdin; prints one JSON line per case: the first output
of libjq (PyPI `jq`), or null on an error or no output (Ocean's rules)."""
import json
import sys

import jq

for flt, inp in json.load(sys.stdin):
    try:
        out = jq.compile(flt).input_value(inp).first()
    except (ValueError, StopIteration):
        out = None
    print(json.dumps(out))
