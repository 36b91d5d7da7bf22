#!/usr/bin/env bash
# What every entity write asks of its organization's blueprints (`entities::OrgWrites`): does one
# aggregate, which deliver their changelog to a webhook. Times that question over 50 blueprints
# of about 4.8 KB each, read from the JSON bodies (before migration 0035) and from the columns
# 0035 keeps. Usage: bench/sql/org_writes_probe.sh [POSTGRES_URL]   (default: the test database)
set -euo pipefail
URL="${1:-postgres://postgres@127.0.0.1:5432/test}"
echo "PostgreSQL ($URL):"
psql "$URL" -q <<'EOF' | grep -E "Execution Time"
DROP TABLE IF EXISTS bp_probe;
CREATE TABLE bp_probe (org_id TEXT, identifier TEXT, body JSON NOT NULL,
  aggregates BOOLEAN GENERATED ALWAYS AS (COALESCE((body::jsonb -> 'aggregationProperties') <> '{}'::jsonb, false)) STORED,
  changelog_webhook BOOLEAN GENERATED ALWAYS AS (COALESCE(body::jsonb #>> '{changelogDestination,type}' = 'WEBHOOK'
    AND COALESCE(body::jsonb #>> '{changelogDestination,agent}', 'false') <> 'true', false)) STORED);
INSERT INTO bp_probe(org_id, identifier, body) SELECT 'o', 'bp' || i, json_build_object('identifier', 'bp' || i,
  'schema', json_build_object('properties', (SELECT json_object_agg('prop' || j, json_build_object('type', 'string',
  'title', 'Property number ' || j, 'description', repeat('x', 40))) FROM generate_series(1, 40) j)))
  FROM generate_series(1, 50) i;
ANALYZE bp_probe;
EXPLAIN ANALYZE SELECT 1 WHERE EXISTS (SELECT 1 FROM bp_probe WHERE org_id = 'o'
  AND (body::jsonb -> 'aggregationProperties') <> '{}'::jsonb) UNION ALL SELECT 2 FROM bp_probe WHERE org_id = 'o'
  AND body::jsonb #>> '{changelogDestination,type}' = 'WEBHOOK'
  AND COALESCE(body::jsonb #>> '{changelogDestination,agent}', 'false') <> 'true';
EXPLAIN ANALYZE SELECT 1 WHERE EXISTS (SELECT 1 FROM bp_probe WHERE org_id = 'o' AND aggregates)
  UNION ALL SELECT 2 FROM bp_probe WHERE org_id = 'o' AND changelog_webhook;
DROP TABLE bp_probe;
EOF
echo "SQLite (Python's sqlite3, mean of 200):"
python3 - <<'EOF'
import json, sqlite3, time
c = sqlite3.connect(":memory:")
c.execute("CREATE TABLE blueprints (org_id TEXT NOT NULL, identifier TEXT NOT NULL, body TEXT NOT NULL, "
          "aggregates INTEGER NOT NULL DEFAULT 0, changelog_webhook INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (org_id, identifier))")
for i in range(50):
    props = {f"prop{j}": {"type": "string", "title": f"Property number {j}", "description": "x" * 40} for j in range(40)}
    c.execute("INSERT INTO blueprints(org_id, identifier, body) VALUES (?, ?, ?)",
              ("o", f"bp{i}", json.dumps({"identifier": f"bp{i}", "schema": {"properties": props}})))
old = ("SELECT 1 WHERE EXISTS (SELECT 1 FROM blueprints WHERE org_id = 'o' AND json_extract(body, '$.aggregationProperties') <> '{}') "
       "UNION ALL SELECT 2 FROM blueprints WHERE org_id = 'o' AND json_extract(body, '$.changelogDestination.type') = 'WEBHOOK' "
       "AND COALESCE(json_extract(body, '$.changelogDestination.agent'), 0) = 0")
new = ("SELECT 1 WHERE EXISTS (SELECT 1 FROM blueprints WHERE org_id = 'o' AND aggregates <> 0) "
       "UNION ALL SELECT 2 FROM blueprints WHERE org_id = 'o' AND changelog_webhook <> 0")
for name, q in (("from the bodies", old), ("from the columns", new)):
    t = time.perf_counter()
    for _ in range(200):
        c.execute(q).fetchall()
    print(f"  {name}: {(time.perf_counter() - t) / 200 * 1000:.3f} ms")
EOF
