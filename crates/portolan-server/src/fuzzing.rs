//! Entry points for the fuzz targets of `crates/portolan-fuzz` (not an API): the webhook
//! ingest's signature check and header/query parsing, and the delivery mapping engine, with
//! plain types so the fuzz crate needs no HTTP types.

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use portolan_jq::{JqBudget, JqEngine};
use serde_json::{Map, Value};

/// `handlers::webhook::ingest::verify` over headers given as pairs (invalid names or values
/// are skipped, as the HTTP layer would refuse them) and the ingest's header and query maps.
pub fn webhook_ingest(
    security: &Map<String, Value>,
    secret: Option<&str>,
    headers: &[(String, String)],
    query: Option<&str>,
    body: &[u8],
) -> (Result<(), String>, Map<String, Value>, Map<String, Value>) {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        if let (Ok(k), Ok(v)) = (HeaderName::try_from(k.as_str()), HeaderValue::try_from(v.as_str())) {
            map.append(k, v);
        }
    }
    let verdict = crate::handlers::webhook::ingest::verify(security, secret, &map, body);
    (
        verdict,
        crate::handlers::webhook::ingest::header_map(&map, None),
        crate::handlers::webhook::ingest::query_map(query),
    )
}

/// `jobs::webhook::evaluate` (the delivery mapping engine): per mapping, how many entities it
/// produced and how many items failed.
pub fn map_delivery(
    jq: &JqEngine,
    budget: &JqBudget,
    mappings: &[Value],
    input: &Value,
) -> Vec<(usize, usize, Vec<Value>)> {
    crate::jobs::webhook::evaluate(jq, budget, mappings, input)
        .into_iter()
        .map(|p| (p.items, p.failed, p.entities))
        .collect()
}
