//! The entity form: creating and editing an entity with inputs made from its blueprint, errors
//! at their inputs, relations through entity pickers.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::app::WebApp;

async fn model(app: &WebApp) {
    app.api("POST", "/v1/blueprints", json!({"identifier": "domain", "title": "Domain", "schema": {"properties": {}}}))
        .await;
    app.api(
        "POST",
        "/v1/blueprints",
        json!({"identifier": "service", "title": "Service",
        "schema": {"properties": {
            "language": {"type": "string", "enum": ["go", "rust"]},
            "cpu": {"type": "number", "minimum": 1},
            "public": {"type": "boolean"},
            "readme": {"type": "string", "format": "markdown"},
            "meta": {"type": "object"}},
            "required": ["language"]},
        "relations": {"domain": {"title": "Domain", "target": "domain", "required": false, "many": false}}}),
    )
    .await;
    for (id, title) in [("pay", "Payments"), ("ship", "Shipping")] {
        app.api("POST", "/v1/blueprints/domain/entities", json!({"identifier": id, "title": title})).await;
    }
}

fn field(html: &str, id: &str) -> String {
    let start = html.find(&format!("id=\"field-{id}\"")).unwrap_or_else(|| panic!("no field {id} in\n{html}"));
    let rest = &html[start..];
    rest[..rest.find("\n</div>").unwrap_or(rest.len())].to_string()
}

#[tokio::test]
async fn an_entity_is_created_and_edited_in_a_form() {
    let Some(app) = WebApp::spawn().await else { return };
    model(&app).await;
    let mut b = app.admin().await;
    let form = app.get(&mut b, "/ui/entity-form/service").await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.text);
    assert!(field(&form.text, "language").contains("<select"));
    assert!(field(&form.text, "cpu").contains("type=\"number\""));
    assert!(field(&form.text, "public").contains("type=\"checkbox\""));
    assert!(field(&form.text, "meta").contains("<textarea"));
    assert!(field(&form.text, "rel:domain").contains("<option value=\"pay\">Payments (pay)</option>"), "{}", form.text);
    assert!(form.unescaped().contains("href=\"/ui/entities/service/new\""), "the JSON editor stays an option");
    let csrf = form.csrf_field();

    // Refused: each message at its input, values kept.
    let bad = app
        .post(
            &mut b,
            "/ui/entity-form/service",
            &[("_csrf", &csrf), ("p.$identifier", "cart"), ("p.cpu", "0"), ("p.readme", "# Cart")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.text);
    assert!(field(&bad.text, "cpu").contains("field-errors"), "{}", bad.text);
    assert!(field(&bad.text, "language").contains("field-errors"), "{}", bad.text);
    assert!(field(&bad.text, "readme").contains("# Cart</textarea>"));

    let ok = app
        .post(
            &mut b,
            "/ui/entity-form/service",
            &[
                ("_csrf", &csrf),
                ("p.$identifier", "cart"),
                ("p.$title", "Cart"),
                ("p.language", "\"go\""),
                ("p.cpu", "2"),
                ("m.public", "1"),
                ("p.public", "true"),
                ("p.meta", "{\"tier\": 1}"),
                ("p.rel:domain", "pay"),
            ],
        )
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.text);
    assert_eq!(ok.location(), "/ui/entities/service/cart");
    let e = app.api("GET", "/v1/blueprints/service/entities/cart", Value::Null).await["entity"].clone();
    assert_eq!(e["title"], "Cart");
    assert_eq!(e["properties"]["cpu"], 2);
    assert_eq!(e["properties"]["public"], true);
    assert_eq!(e["properties"]["meta"], json!({"tier": 1}));
    assert_eq!(e["relations"]["domain"], "pay");

    // Edit: the form holds the entity's values; the identifier cannot change.
    let edit = app.get(&mut b, "/ui/entity-form/service/cart").await;
    assert_eq!(edit.status, StatusCode::OK, "{}", edit.text);
    assert!(field(&edit.text, "$identifier").contains("disabled"));
    assert!(field(&edit.text, "cpu").contains("value=\"2\""));
    assert!(field(&edit.text, "language").contains("selected>go<"), "{}", edit.text);
    assert!(field(&edit.text, "rel:domain").contains("<option value=\"pay\" selected>"));
    let saved = app
        .post(
            &mut b,
            "/ui/entity-form/service/cart",
            &[("_csrf", &csrf), ("p.$title", "Cart v2"), ("p.language", "\"rust\""), ("p.rel:domain", "ship")],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.text);
    let e = app.api("GET", "/v1/blueprints/service/entities/cart", Value::Null).await["entity"].clone();
    assert_eq!((e["title"].as_str(), e["properties"]["language"].as_str()), (Some("Cart v2"), Some("rust")));
    assert_eq!(e["relations"]["domain"], "ship");
    assert!(e["properties"].get("cpu").is_none_or(Value::is_null), "a cleared input clears the value: {e}");

    // The relation picker searches.
    let opts = app
        .post(&mut b, "/ui/entity-form-options/service/rel:domain", &[("_csrf", &csrf), ("q.rel:domain", "Ship")])
        .await;
    assert!(opts.text.contains("value=\"ship\"") && !opts.text.contains("value=\"pay\""), "{}", opts.text);
}
