#!/usr/bin/env python3
"""Where a benchmark's database time goes, from the server's statement log.

Run the server (or `portolan-bench --bin` with a wrapper that keeps its stderr) with
`PORTOLAN_LOG_FORMAT=json PORTOLAN_LOG_LEVEL=info,sqlx::query=debug`, then:

    python3 crates/portolan-bench/scripts/sql_time.py server.log [--split-on-actions] [--top N]

Prints, per statement (its first 110 characters, whitespace collapsed), how many times it ran
and its total time as sqlx measured it. `--split-on-actions` sums separately the statements
between `INSERT INTO actions` and `DELETE FROM actions` ("with": `--automation-updates`'
automated rounds and their runs) and the others after the first deletion ("without").
"""
import json
import re
import sys


def main():
    args = sys.argv[1:]
    if not args:
        sys.exit(__doc__)
    path, split = args[0], "--split-on-actions" in args
    top = int(args[args.index("--top") + 1]) if "--top" in args else 25
    phase, totals = ("all", {})
    with open(path, encoding="utf-8") as f:
        for line in f:
            if '"sqlx::query"' not in line:
                continue
            try:
                fields = json.loads(line)["fields"]
            except (ValueError, KeyError):
                continue
            sql = re.sub(r"\s+", " ", fields.get("db.statement") or fields.get("summary", "")).strip()
            if split and sql.startswith("INSERT INTO actions"):
                phase = "with"
            elif split and sql.startswith("DELETE FROM actions"):
                phase = "without"
            elif split and phase == "all":
                continue
            row = totals.setdefault(phase, {}).setdefault(sql[:110], [0, 0.0])
            row[0] += 1
            row[1] += fields.get("elapsed_secs", 0.0)
    for name, rows in totals.items():
        items = sorted(rows.items(), key=lambda kv: -kv[1][1])
        count, secs = sum(v[0] for _, v in items), sum(v[1] for _, v in items)
        print(f"== {name}: {count} statements, {secs:.2f} s")
        for sql, (n, t) in items[:top]:
            print(f"{n:8d} {t:8.3f} s  {sql}")


if __name__ == "__main__":
    main()
