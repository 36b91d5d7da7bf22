//! The pages: catalog table (filter, search, paging, columns, group-by, CSV/JSON export), the
//! entity page (formats, computed values, relations, history), builder, audit log, export —
//! and that hostile values render inert.

use reqwest::StatusCode;
use serde_json::json;

use crate::app::{Browser, WebApp};

async fn model(app: &WebApp) {
    app.api(
        "POST",
        "/v1/blueprints",
        json!({"identifier": "domain", "title": "Domain",
        "schema": {"properties": {"owner": {"type": "string", "format": "email"}}}}),
    )
    .await;
    app.api(
        "POST",
        "/v1/blueprints",
        json!({"identifier": "service", "title": "Service",
        "schema": {"properties": {
            "language": {"type": "string", "enum": ["go", "rust"], "enumColors": {"go": "blue", "rust": "red"}},
            "cpu": {"type": "number"},
            "docs": {"type": "string", "format": "url"},
            "readme": {"type": "string", "format": "markdown"},
            "deadline": {"type": "string", "format": "timer"},
            "note": {"type": "string"},
            "site": {"type": "object"}
        }},
        "relations": {"domain": {"title": "Domain", "target": "domain", "required": false, "many": false}},
        "mirrorProperties": {"domainOwner": {"title": "Domain owner", "path": "domain.owner"}},
        "calculationProperties": {"link": {"title": "Link", "type": "string", "format": "url",
            "calculation": "'https://svc.example/' + .identifier"}}}),
    )
    .await;
    app.api(
        "POST",
        "/v1/blueprints/domain/entities",
        json!({"identifier": "pay", "title": "Payments",
        "properties": {"owner": "ana@example.com"}}),
    )
    .await;
    for (id, lang, cpu) in
        [("cart", "go", 4), ("auth", "rust", 1), ("search", "go", 8), ("mail", "rust", 2), ("feed", "go", 3)]
    {
        app.api(
            "POST",
            "/v1/blueprints/service/entities",
            json!({"identifier": id, "title": format!("{id} service"),
            "properties": {"language": lang, "cpu": cpu, "note": format!("{id}, \"quoted\"")},
            "relations": {"domain": "pay"}}),
        )
        .await;
    }
}

fn rows(html: &str) -> Vec<String> {
    // Identifiers linked from the table body, in order.
    let mut out = Vec::new();
    let body = &html[html.find("<table class=\"grid\" id=\"catalog-table\"").unwrap_or(0)..];
    for part in body.split("<a href=\"/ui/entities/service/").skip(1) {
        out.push(part.split('"').next().unwrap().to_string());
    }
    out
}

#[tokio::test]
async fn the_catalog_filters_searches_pages_and_sorts() {
    let Some(app) = WebApp::spawn().await else { return };
    model(&app).await;
    let mut b = app.admin().await;
    let all = app.get(&mut b, "/ui/catalog/service").await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.text);
    assert_eq!(rows(&all.text).len(), 5);
    assert!(all.text.contains("enum-blue"), "enum colours");

    let gt = app.get(&mut b, "/ui/catalog/service?fp=cpu&fo=%3E&fv=2").await;
    let mut ids = rows(&gt.text);
    ids.sort();
    assert_eq!(ids, ["cart", "feed", "search"]);

    let lang = app.get(&mut b, "/ui/catalog/service?fp=language&fo=%3D&fv=rust").await;
    let mut ids = rows(&lang.text);
    ids.sort();
    assert_eq!(ids, ["auth", "mail"]);

    // Several rules, AND-ed; the page shows each rule and a blank one to add; paging keeps them.
    let both = app.get(&mut b, "/ui/catalog/service?fp=language&fo=%3D&fv=go&fp=cpu&fo=%3E&fv=3&limit=1").await;
    assert!(both.text.contains("data-rule=\"1\"") && both.text.contains("data-rule=\"2\""), "{}", both.text);
    let mut ids = rows(&both.text);
    let i = both.text.find("rel=\"next\"").expect("a next page");
    let href = both.text[..i].rsplit("href=\"").next().unwrap().split('"').next().unwrap();
    let second = app.get(&mut b, &href.replace("&amp;", "&").replace("&#x2f;", "/")).await;
    ids.extend(rows(&second.text));
    assert!(!second.text.contains("rel=\"next\""), "two match in all");
    ids.sort();
    assert_eq!(ids, ["cart", "search"]);

    let q = app.get(&mut b, "/ui/catalog/service?q=sear").await;
    assert_eq!(rows(&q.text), ["search"]);

    let bad = app.get(&mut b, "/ui/catalog/service?fp=nosuch&fo=%3D&fv=x").await;
    assert_eq!(bad.status, StatusCode::OK);
    assert!(bad.text.contains("class=\"error\""), "a bad filter is explained on the page");
    let cursor = app.get(&mut b, "/ui/catalog/service?after=bogus").await;
    assert!(cursor.text.contains("the page cursor is not valid"), "{}", cursor.text);

    // Pages of 2, following the Next link: every entity once.
    let mut seen = Vec::new();
    let mut path = "/ui/catalog/service?limit=2".to_string();
    for _ in 0..5 {
        let p = app.get(&mut b, &path).await;
        let r = rows(&p.text);
        assert!(r.len() <= 2);
        seen.extend(r);
        let Some(i) = p.text.find("rel=\"next\"") else { break };
        let before = &p.text[..i];
        let href = before.rsplit("href=\"").next().unwrap().split('"').next().unwrap();
        path = href.replace("&amp;", "&").replace("&#x2f;", "/");
    }
    seen.sort();
    assert_eq!(seen, ["auth", "cart", "feed", "mail", "search"]);

    let sorted = app.get(&mut b, "/ui/catalog/service?sort=cpu&dir=desc").await;
    assert_eq!(rows(&sorted.text), ["search", "cart", "feed", "mail", "auth"]);
    // Sorted by the store across pages: pages of 2 continue the order.
    let mut order = Vec::new();
    let mut path = "/ui/catalog/service?sort=cpu&limit=2".to_string();
    for _ in 0..5 {
        let p = app.get(&mut b, &path).await;
        assert!(!p.text.contains("sorted within the page"));
        order.extend(rows(&p.text));
        let Some(i) = p.text.find("rel=\"next\"") else { break };
        let href = p.text[..i].rsplit("href=\"").next().unwrap().split('"').next().unwrap();
        path = href.replace("&amp;", "&").replace("&#x2f;", "/");
    }
    assert_eq!(order, ["auth", "mail", "feed", "cart", "search"]);
    let by_title = app.get(&mut b, "/ui/catalog/service?sort=%24title&dir=desc&limit=1").await;
    assert_eq!(rows(&by_title.text), ["search"]);
    // A computed column sorts the rows of the page, and says so.
    let computed = app.get(&mut b, "/ui/catalog/service?sort=link&dir=desc").await;
    assert!(computed.text.contains("sorted within the page"));
    assert_eq!(rows(&computed.text), ["search", "mail", "feed", "cart", "auth"]);

    // Columns chosen and ordered by the query string; computed columns render.
    let cols = app.get(&mut b, "/ui/catalog/service?cols=link,%24identifier,domainOwner").await;
    let head = &cols.text[cols.text.find("<thead>").unwrap()..cols.text.find("</thead>").unwrap()];
    let order: Vec<&str> = head.split("data-column=\"").skip(1).map(|s| s.split('"').next().unwrap()).collect();
    assert_eq!(order, ["link", "$identifier", "domainOwner"]);
    assert!(cols.text.contains("https://svc.example/cart"));
    assert!(cols.text.contains("ana@example.com"));

    let grouped = app.get(&mut b, "/ui/catalog/service?group=language").await;
    assert!(grouped.text.contains("go (3)") && grouped.text.contains("rust (2)"), "{}", grouped.text);
}

#[tokio::test]
async fn the_current_view_exports_as_csv_and_json() {
    let Some(app) = WebApp::spawn().await else { return };
    model(&app).await;
    let mut b = app.admin().await;
    let csv = app
        .get(&mut b, "/ui/catalog/service/export?format=csv&cols=%24identifier,note&fp=language&fo=%3D&fv=rust")
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(csv.headers["content-disposition"].to_str().unwrap().contains("service.csv"));
    let mut lines: Vec<&str> = csv.text.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.remove(0), "Identifier,note");
    lines.sort();
    assert_eq!(lines, ["auth,\"auth, \"\"quoted\"\"\"", "mail,\"mail, \"\"quoted\"\"\""]);
    let j = app.get(&mut b, "/ui/catalog/service/export?format=json&cols=%24identifier,cpu&limit=2").await;
    let v: serde_json::Value = serde_json::from_str(&j.text).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2, "the current page only");
    assert!(v[0]["cpu"].is_number() && v[0]["identifier"].is_string());
}

#[tokio::test]
async fn hostile_values_render_inert() {
    let Some(app) = WebApp::spawn().await else { return };
    model(&app).await;
    app.api("POST", "/v1/blueprints/service/entities", json!({
        "identifier": "evil", "title": "<script>alert('title')</script>",
        "properties": {"language": "go", "site": {"url": "javascript:alert(1)", "displayText": "site"},
            "readme": "hi <img src=x onerror=alert(2)> [click](javascript:alert(3)) [data](data:text/html,<script>x</script>)",
            "note": "\"><svg onload=alert(4)>"}}))
        .await;
    let mut b = app.admin().await;
    for path in ["/ui/entities/service/evil", "/ui/catalog/service?cols=%24identifier,%24title,site,readme,note"] {
        let p = app.get(&mut b, path).await;
        assert_eq!(p.status, StatusCode::OK, "{path}");
        let t = &p.text;
        assert!(!t.contains("<script>alert"), "{path}: {t}");
        assert!(!t.contains("<img"), "{path}");
        assert!(!t.contains("<svg onload"), "{path}");
        assert!(!t.contains("href=\"javascript:"), "{path}");
        assert!(!t.contains("href=\"data:"), "{path}");
        assert!(t.contains("&lt;script&gt;alert("), "{path}: the title is shown as text");
        assert!(p.headers["content-security-policy"].to_str().unwrap().contains("default-src 'none'"));
    }
}

#[tokio::test]
async fn the_entity_page_shows_formats_computed_values_relations_and_history() {
    let Some(app) = WebApp::spawn().await else { return };
    model(&app).await;
    app.api(
        "PATCH",
        "/v1/blueprints/service/entities/cart",
        json!({"properties": {"cpu": 6,
        "docs": "https://docs.example/cart", "readme": "# Cart\n\n**fast**", "deadline": "2020-01-01T00:00:00Z"}}),
    )
    .await;
    let mut b = app.admin().await;
    let p = app.get(&mut b, "/ui/entities/service/cart").await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.text);
    let t = &p.text;
    assert!(t.contains("<a href=\"https://docs.example/cart\""), "url as a link");
    assert!(t.contains("<strong>fast</strong>"), "markdown");
    assert!(t.contains(">Expired<"), "timer");
    assert!(t.contains("class=\"computed\" title=\"mirror of domain.owner\""), "mirror marked");
    assert!(t.contains("class=\"computed\" title=\"calculation\""), "calculation marked");
    assert!(t.contains("id=\"upstream\"") && t.contains("/ui/entities/domain/pay"), "upstream relation");
    assert!(t.contains("<ins>6</ins>") && t.contains("<del>4</del>"), "the history shows the diff: {t}");

    let d = app.get(&mut b, "/ui/entities/domain/pay").await;
    assert!(d.text.contains("id=\"downstream\""), "downstream relations");
    for id in ["cart", "auth", "search", "mail", "feed"] {
        assert!(d.text.contains(&format!("/ui/entities/service/{id}\"")), "{id} is downstream");
    }
    assert_eq!(app.get(&mut b, "/ui/entities/service/nope").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn entities_and_blueprints_are_edited_as_json_with_the_apis_messages() {
    let Some(app) = WebApp::spawn().await else { return };
    let mut b = app.admin().await;
    let csrf = app.csrf(&mut b).await;
    let bad = app.post(&mut b, "/ui/builder", &[("_csrf", &csrf),
        ("json", r#"{"identifier": "svc", "title": "Service", "schema": {"properties": {"cpu": {"type": "integer"}}}}"#)]).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.text.contains("data-path=\"schema.properties.cpu.type\""), "{}", bad.text);
    let broken = app.post(&mut b, "/ui/builder", &[("_csrf", &csrf), ("json", "{not json")]).await;
    assert_eq!(broken.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(broken.text.contains("not valid JSON"));
    let ok = app.post(&mut b, "/ui/builder", &[("_csrf", &csrf),
        ("json", r#"{"identifier": "svc", "title": "Service", "schema": {"properties": {"cpu": {"type": "number", "maximum": 8}}}}"#)]).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.text);
    // The builder's forms add a property and a relation through the API's validation.
    let edit = app.get(&mut b, "/ui/builder/svc").await;
    assert!(edit.text.contains("id=\"add-property\"") && edit.text.contains("id=\"add-relation\""));
    let added = app
        .post(
            &mut b,
            "/ui/builder/svc/property",
            &[
                ("_csrf", &csrf),
                ("identifier", "owner"),
                ("title", "Owner"),
                ("type", "string"),
                ("format", "email"),
                ("required", "1"),
            ],
        )
        .await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.text);
    let rel = app
        .post(
            &mut b,
            "/ui/builder/svc/relation",
            &[("_csrf", &csrf), ("identifier", "parent"), ("target", "svc"), ("many", "1")],
        )
        .await;
    assert_eq!(rel.status, StatusCode::SEE_OTHER, "{}", rel.text);
    let bp = app.api("GET", "/v1/blueprints/svc", json!(null)).await;
    assert_eq!(bp["blueprint"]["schema"]["properties"]["owner"]["format"], "email");
    assert_eq!(bp["blueprint"]["schema"]["required"], json!(["owner"]));
    assert_eq!(bp["blueprint"]["relations"]["parent"]["many"], true);
    let refused = app
        .post(&mut b, "/ui/builder/svc/property", &[("_csrf", &csrf), ("identifier", "n"), ("type", "integer")])
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.text.contains("data-path=\"schema.properties.n.type\""), "{}", refused.text);
    assert_eq!(
        app.post(&mut b, "/ui/builder/svc/property", &[("identifier", "x")]).await.status,
        StatusCode::FORBIDDEN
    );
    // Required now: a later edit without owner is refused; put it back with one.
    let builder = app.get(&mut b, "/ui/builder").await;
    assert!(builder.text.contains("<code>svc</code>"));
    let svg = app.get(&mut b, "/ui/builder/graph.svg").await;
    assert_eq!(svg.headers["content-type"], "image/svg+xml");
    assert!(svg.text.starts_with("<svg") && svg.text.contains(">svc<"));

    let created = app
        .post(
            &mut b,
            "/ui/entities/svc",
            &[
                ("_csrf", &csrf),
                ("json", r#"{"identifier": "one", "title": "One", "properties": {"cpu": 2, "owner": "a@b.co"}}"#),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.text);
    assert_eq!(created.location(), "/ui/entities/svc/one");
    let invalid = app
        .post(
            &mut b,
            "/ui/entities/svc/one",
            &[("_csrf", &csrf), ("json", r#"{"identifier": "one", "properties": {"cpu": 99, "owner": "a@b.co"}}"#)],
        )
        .await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(invalid.text.contains("data-path=\"properties.cpu\""), "{}", invalid.text);
    let edited = app
        .post(
            &mut b,
            "/ui/entities/svc/one",
            &[
                ("_csrf", &csrf),
                ("json", r#"{"identifier": "one", "title": "One!", "properties": {"cpu": 3, "owner": "a@b.co"}}"#),
            ],
        )
        .await;
    assert_eq!(edited.status, StatusCode::SEE_OTHER);
    let page = app.get(&mut b, "/ui/entities/svc/one").await;
    assert!(page.text.contains("<h1>One!</h1>"));
    let audit = app.get(&mut b, "/ui/audit?entity=one&action=UPDATE").await;
    assert!(audit.text.contains("admin@example.com (UI)"), "UI writes are audited as the user: {}", audit.text);
    assert!(audit.text.contains("<ins>3</ins>"));
    let creates = app.get(&mut b, "/ui/audit?entity=one&action=CREATE").await;
    assert!(!creates.text.contains("<ins>3</ins>"), "the action filter applies");
}

#[tokio::test]
async fn the_export_dialog_downloads_hcl_yaml_and_json() {
    let Some(app) = WebApp::spawn().await else { return };
    model(&app).await;
    let mut b = app.admin().await;
    // An action on service goes with service's export; one on another blueprint does not.
    for (id, bp) in [("deploy", "service"), ("merge_domains", "domain")] {
        let w = portolan_store::ActionWrite {
            identifier: id.into(),
            id: format!("action_{id}"),
            data: json!({"identifier": id, "title": id, "trigger": {"type": "self-service", "operation": "DAY-2",
                "blueprintIdentifier": bp, "userInputs": {"properties": {}}},
                "invocationMethod": {"type": "WEBHOOK", "url": "https://example.com/hook"}}),
        };
        let ctx = portolan_store::AuditCtx {
            user_id: "t".into(),
            origin: "API".into(),
            at: "2024-01-01T00:00:00.000Z".into(),
            depth: 0,
        };
        app.store
            .save_action(&portolan_store::OrgId(crate::app::ORG.into()), &w, portolan_store::SaveMode::Create, &ctx)
            .await
            .unwrap();
    }
    let dialog = app.get(&mut b, "/ui/export").await;
    assert!(dialog.text.contains("value=\"service\""));
    let hcl = app.get(&mut b, "/ui/export/download?format=hcl&blueprint=service").await;
    assert_eq!(hcl.status, StatusCode::OK);
    assert!(hcl.text.contains("resource \"port_blueprint\" \"service\" {"));
    assert!(hcl.text.contains("resource \"port_entity\" \"service_cart\" {"));
    assert!(!hcl.text.contains("\"port_blueprint\" \"domain\""), "only the chosen blueprint");
    assert!(hcl.text.contains("resource \"port_action\" \"deploy\""), "its actions");
    assert!(!hcl.text.contains("merge_domains"), "not the actions of blueprints left out");
    let yaml = app.get(&mut b, "/ui/export/download?format=yaml").await;
    assert!(yaml.text.contains("identifier: pay"));
    let only = app.get(&mut b, "/ui/export/download?format=json&entities=no").await;
    let v: serde_json::Value = serde_json::from_str(&only.text).unwrap();
    assert_eq!(v["entities"], json!([]));
    assert_eq!(v["blueprints"].as_array().unwrap().len(), 2);
    let exported: Vec<_> = v["actions"].as_array().unwrap().iter().map(|a| a["identifier"].clone()).collect();
    assert_eq!(exported, [json!("deploy"), json!("merge_domains")]);
    let mut anon = Browser::default();
    assert_eq!(app.get(&mut anon, "/ui/export/download?format=hcl").await.status, StatusCode::SEE_OTHER);
}
