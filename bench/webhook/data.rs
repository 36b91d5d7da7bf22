// The webhook benchmarks' mapping and items, included (`include!`) by
// `crates/portolan-jq/examples/webhook_bench.rs` (the mapping alone, and Ocean's libjq path on the
// same items) and `crates/portolan-bench/src/webhook.rs` (the whole path on a real server).
// The includer imports `serde_json::{Value, json}`.

/// An app mapping of 11 fields, in the style of the custom-webhook mappings users write.
pub const MAPPING: &[(&str, &str)] = &[
    ("identifier", ".item.id | tostring"),
    ("title", ".item.name"),
    ("blueprint", "\"app\""),
    ("created", ".item.created | strptime(\"%Y-%m-%dT%H:%M:%SZ\") | mktime"),
    ("tags", ".item.tags | unique"),
    ("labels", ".item.labels | with_entries(.value |= tostring)"),
    ("url", "\"https://apps.example.com/\" + (.item.name | @uri)"),
    ("owner", ".body.org"),
    ("env", ".item.env // \"production\""),
    ("size", ".item.size * 2"),
    ("lang", ".item.lang | ascii_downcase"),
];

/// Item `i` of delivery `d`.
pub fn item(d: usize, i: usize) -> Value {
    json!({
        "id": d * 1_000_000 + i,
        "name": format!("app {d}-{i} (payments)"),
        "created": "2024-05-01T10:00:00Z",
        "tags": ["b", "a", "b", format!("t{}", i % 5)],
        "labels": {"tier": i % 3, "pci": i.is_multiple_of(2)},
        "env": if i.is_multiple_of(4) { Value::Null } else { json!("staging") },
        "size": i,
        "lang": "Rust",
    })
}
