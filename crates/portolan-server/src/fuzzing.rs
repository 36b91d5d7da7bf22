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

/// The checks of a SAML response (`sso::saml::response::check`) on `xml`, against what the
/// signed answers of `sso/saml/fixtures.json` were made for (their IdP's certificate, SP, ACS and
/// time; the request ID is the caller's): the accepted NameID and groups, or the refusal's
/// message. `xml` is also read as IdP metadata, which must not panic either.
pub fn saml_response(xml: &[u8], request_id: &str) -> Result<(String, Vec<String>), String> {
    use base64::Engine;
    let _ = std::str::from_utf8(xml).map(crate::sso::saml::parse_metadata);
    static FIXTURES: std::sync::OnceLock<(Value, Vec<Vec<u8>>)> = std::sync::OnceLock::new();
    let (f, certs) = FIXTURES.get_or_init(|| {
        let f: Value = serde_json::from_str(include_str!("sso/saml/fixtures.json")).unwrap_or_default();
        let md = f.get("metadata").and_then(Value::as_str).unwrap_or_default();
        let certs = crate::sso::saml::parse_metadata(md).map(|m| m.certs).unwrap_or_default();
        (f, certs)
    });
    let text = |k: &str| f.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let (idp, sp, acs) = (text("idp"), text("sp"), text("acs"));
    let expect = crate::sso::saml::response::Expect {
        idp_entity_id: &idp,
        sp_entity_id: &sp,
        acs_url: &acs,
        request_id,
        certs,
        now: f.get("issuedAt").and_then(Value::as_i64).unwrap_or_default() + 5,
    };
    let b64 = base64::engine::general_purpose::STANDARD.encode(xml);
    crate::sso::saml::response::check(&b64, &expect)
        .map(|a| (a.name_id.clone(), a.values("groups").map(<[String]>::to_vec).unwrap_or_default()))
        .map_err(|e| e.message)
}

/// The signed answers of `sso/saml/fixtures.json` that are accepted, as XML (fuzz seeds).
pub fn saml_seeds() -> Vec<Vec<u8>> {
    use base64::Engine;
    let f: Value = serde_json::from_str(include_str!("sso/saml/fixtures.json")).unwrap_or_default();
    ["assertion", "response", "both", "wrap", "error"]
        .iter()
        .filter_map(|c| f["responses"][c].as_str())
        .filter_map(|r| base64::engine::general_purpose::STANDARD.decode(r).ok())
        .chain(f["metadata"].as_str().map(|m| m.as_bytes().to_vec()))
        .collect()
}
