//! Mapping throughput: a GitHub pull-request mapping from the Ocean corpus (selector + 13
//! fields) over N generated items, the way Ocean evaluates it (each expression separately, first
//! output, error → null), on one caller thread.
//!
//! `cargo run --release -p portolan-jq --example map_bench -- [N] [--json items.json]`
//! (`bench/jq/run.sh` runs this and the libjq script on the same data and prints both rates).
use portolan_jq::{CompiledMapping, JqEngine};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;

/// The expressions of the github integration's `pull-request` kind (tests/data/ocean-mappings.json).
pub const MAPPING: &[(&str, &str)] = &[
    ("selector", "true"),
    ("identifier", ".head.repo.name + (.id|tostring)"),
    ("title", ".title"),
    ("blueprint", "\"githubPullRequest\""),
    ("creator", r#"(.user.login | gsub("\\["; "-") | gsub("\\](?=[^$])"; "-") | gsub("\\]$"; ""))"#),
    ("assignees", r#"[.assignees[].login | gsub("\\](?=[^$])"; "-") | gsub("\\]$"; "")]"#),
    ("reviewers", r#"[.requested_reviewers[].login | gsub("\\](?=[^$])"; "-") | gsub("\\]$"; "")]"#),
    ("status", ".state"),
    ("closedAt", ".closed_at"),
    ("updatedAt", ".updated_at"),
    ("mergedAt", ".merged_at"),
    ("createdAt", ".created_at"),
    ("prNumber", ".id"),
    ("link", ".html_url"),
    ("repository", ".__repository"),
];

fn item(i: usize) -> Value {
    let login = if i.is_multiple_of(7) { format!("bot{i}[bot]") } else { format!("user{}", i % 50) };
    json!({
        "id": 1_000_000 + i, "number": i, "state": if i.is_multiple_of(3) { "closed" } else { "open" },
        "title": format!("Fix flaky test #{i} in payments"),
        "html_url": format!("https://github.com/acme/payments/pull/{i}"),
        "user": {"login": login, "id": i % 50, "type": "User", "site_admin": false},
        "assignees": [{"login": format!("user{}", i % 11)}, {"login": "renovate[bot]"}],
        "requested_reviewers": [{"login": format!("user{}", i % 13)}],
        "created_at": "2024-05-01T10:00:00Z", "updated_at": "2024-05-02T11:30:00Z",
        "closed_at": if i.is_multiple_of(3) { json!("2024-05-03T09:00:00Z") } else { Value::Null },
        "merged_at": if i.is_multiple_of(6) { json!("2024-05-03T09:00:00Z") } else { Value::Null },
        "head": {"ref": format!("fix/{i}"), "sha": "0123456789abcdef0123456789abcdef01234567",
                 "repo": {"name": "payments", "full_name": "acme/payments", "private": true}},
        "base": {"ref": "main", "repo": {"name": "payments"}},
        "labels": [{"name": "bug"}, {"name": "ci"}], "draft": false,
        "body": "This fixes the flaky test by waiting for the queue to drain.",
        "__repository": "payments"
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let items: Vec<Value> = (0..n).map(item).collect();
    if let Some(i) = args.iter().position(|a| a == "--json") {
        let path = args.get(i + 1).ok_or("--json needs a path")?;
        std::fs::write(path, serde_json::to_string(&json!({"mapping": MAPPING, "items": items}))?)?;
    }
    let engine = JqEngine::new();
    let compiled: Vec<Arc<_>> = MAPPING.iter().map(|(_, f)| engine.compile(f)).collect::<Result<_, _>>()?;

    // Per expression, as Ocean evaluates (one engine call per field).
    let t = Instant::now();
    let mut check = 0usize;
    for it in &items {
        for c in &compiled {
            let v = engine.first_compiled(c, it).unwrap_or(Value::Null);
            check += usize::from(!v.is_null());
        }
    }
    let per_expr = n as f64 / t.elapsed().as_secs_f64();

    // The same, one worker hand-off per item.
    let t = Instant::now();
    for it in &items {
        for v in engine.first_many(&compiled, it)? {
            check += usize::from(v.is_ok_and(|v| !v.is_null()));
        }
    }
    let batched = n as f64 / t.elapsed().as_secs_f64();

    // The mapping engine (what the webhook job and the playground use): one batch per item, the
    // same 15 expressions as `first_many` (the selector as a field; the webhook job evaluates
    // its filter once per delivery, not per item).
    let fields: serde_json::Map<String, Value> =
        MAPPING.iter().map(|(k, f)| ((*k).to_owned(), Value::String((*f).to_owned()))).collect();
    let mapping = CompiledMapping::from_parts(&engine, "true", None, &Value::Object(fields));
    let entity = &mapping.entities()[0];
    let t = Instant::now();
    for it in &items {
        let scope = engine.scope(engine.budget_for(""));
        for v in entity.eval(&scope, it)? {
            check += usize::from(v.result.is_ok_and(|v| !v.is_null()));
        }
    }
    let engine_rate = n as f64 / t.elapsed().as_secs_f64();

    let sample: Vec<Value> =
        compiled.iter().map(|c| engine.first_compiled(c, &items[7]).unwrap_or(Value::Null)).collect();
    println!("sample item 7: {}", serde_json::to_string(&sample)?);
    println!("portolan-jq per-expression : {per_expr:>10.0} items/s ({n} items, {} expressions)", MAPPING.len());
    println!("portolan-jq first_many     : {batched:>10.0} items/s");
    println!("portolan-jq CompiledMapping: {engine_rate:>10.0} items/s (one batch per item)");
    println!("(non-null results: {check})");
    Ok(())
}
