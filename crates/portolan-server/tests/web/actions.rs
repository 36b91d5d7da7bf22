//! Self-service actions in the UI: the action list, the action buttons of catalog and entity
//! pages, the run form generated from `userInputs` (jq-driven visibility, entity pickers,
//! errors at their fields), starting a run, the run page and "My runs" — and that hostile
//! action texts render inert.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::app::{ADMIN, Browser, WebApp};

async fn model(app: &WebApp) {
    app.api("POST", "/v1/blueprints", json!({"identifier": "domain", "title": "Domain", "schema": {"properties": {}}}))
        .await;
    app.api(
        "POST",
        "/v1/blueprints",
        json!({"identifier": "service", "title": "Service",
        "schema": {"properties": {"language": {"type": "string", "enum": ["go", "rust"]}}}}),
    )
    .await;
    for (id, title) in [("pay", "Payments"), ("ship", "Shipping")] {
        app.api("POST", "/v1/blueprints/domain/entities", json!({"identifier": id, "title": title})).await;
    }
    for (id, lang) in [("auth", "rust"), ("cart", "go")] {
        app.api(
            "POST",
            "/v1/blueprints/service/entities",
            json!({"identifier": id, "title": format!("{id} service"), "properties": {"language": lang}}),
        )
        .await;
    }
    app.api(
        "POST",
        "/v1/actions",
        json!({"identifier": "scaffold", "title": "Scaffold a service", "description": "Creates a repo",
        "trigger": {"type": "self-service", "operation": "CREATE", "blueprintIdentifier": "service",
            "userInputs": {"properties": {"name": {"type": "string", "title": "Name"}}, "required": ["name"]}},
        "invocationMethod": {"type": "UPSERT_ENTITY", "blueprintIdentifier": "service",
            "mapping": {"identifier": "{{ .inputs.name }}"}}}),
    )
    .await;
    app.api(
        "POST",
        "/v1/actions",
        json!({"identifier": "deploy", "title": "Deploy", "icon": "Rocket",
        "trigger": {"type": "self-service", "operation": "DAY-2", "blueprintIdentifier": "service",
            "condition": {"type": "SEARCH", "combinator": "and",
                "rules": [{"property": "language", "operator": "=", "value": "rust"}]},
            "userInputs": {
                "properties": {
                    "language": {"type": "string", "title": "Language", "enum": ["go", "rust"], "default": "go"},
                    "notes": {"type": "string", "format": "multi-line", "title": "Notes",
                        "visible": {"jqQuery": ".form.language == \"rust\""}},
                    "count": {"type": "number", "title": "Replicas", "minimum": 1},
                    "domain": {"type": "string", "format": "entity", "blueprint": "domain", "title": "Domain"},
                    "when": {"type": "string", "format": "date-time", "title": "When"},
                    "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}},
                    "config": {"type": "object", "title": "Config"},
                    "on": {"type": "boolean", "title": "Enabled"}
                },
                "required": ["language"],
                "titles": {"adv": {"title": "Advanced", "description": "Optional settings"}},
                "order": ["language", "notes", "count", "domain", "adv", "when", "tags", "config", "on"]}},
        // Through an execution agent: the run waits for one, IN_PROGRESS, until the test ends it.
        "invocationMethod": {"type": "WEBHOOK", "url": "https://backend.example/deploy", "agent": true}}),
    )
    .await;
    app.api(
        "POST",
        "/v1/actions",
        json!({"identifier": "on_change", "title": "An automation",
        "trigger": {"type": "automation", "event": {"type": "ENTITY_UPDATED", "blueprintIdentifier": "service"}},
        "invocationMethod": {"type": "WEBHOOK", "url": "https://example.com/hook"}}),
    )
    .await;
}

/// The HTML of the field `id` of a run form (its `<div class="field">`).
fn field(html: &str, id: &str) -> String {
    let start = html.find(&format!("id=\"field-{id}\"")).unwrap_or_else(|| panic!("no field {id} in\n{html}"));
    let rest = &html[start..];
    let end = rest.find("\n</div>").unwrap_or(rest.len());
    rest[..end].to_string()
}

#[tokio::test]
async fn the_self_service_page_lists_actions_and_pages_offer_their_buttons() {
    let Some(app) = WebApp::spawn().await else { return };
    model(&app).await;
    let mut b = app.admin().await;
    let list = app.get(&mut b, "/ui/self-service").await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    assert!(list.text.contains("Scaffold a service") && list.text.contains("Deploy"), "{}", list.text);
    assert!(!list.text.contains("An automation"), "automations are not self-service");
    assert!(list.unescaped().contains("href=\"/ui/self-service/scaffold\""), "CREATE opens its form");

    let catalog = app.get(&mut b, "/ui/catalog/service").await;
    assert!(catalog.text.contains("id=\"create-actions\""), "{}", catalog.text);
    assert!(catalog.unescaped().contains("href=\"/ui/self-service/scaffold\""));
    assert!(!catalog.unescaped().contains("/ui/self-service/deploy"), "DAY-2 actions are on entities");

    // The condition (language = rust) is evaluated by a search for the entity.
    let auth = app.get(&mut b, "/ui/entities/service/auth").await;
    assert!(auth.unescaped().contains("href=\"/ui/self-service/deploy?entity=auth\""), "{}", auth.text);
    let cart = app.get(&mut b, "/ui/entities/service/cart").await;
    assert!(!cart.unescaped().contains("/ui/self-service/deploy"), "cart is go: no deploy button");

    // Opened without an entity, a DAY-2 form offers the entities its condition matches.
    let choose = app.get(&mut b, "/ui/self-service/deploy").await;
    assert!(choose.text.contains("id=\"choose-entity\""), "{}", choose.text);
    assert!(choose.unescaped().contains("deploy?entity=auth") && !choose.unescaped().contains("entity=cart"));
    // An automation has no form.
    assert_eq!(app.get(&mut b, "/ui/self-service/on_change").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_form_renders_every_input_and_shows_a_conditional_one_only_when_its_jq_is_true() {
    let Some(app) = WebApp::spawn().await else { return };
    model(&app).await;
    let mut b = app.admin().await;
    let form = app.get(&mut b, "/ui/self-service/deploy?entity=auth").await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.text);
    let html = form.unescaped();
    // Controls by type and format; the default is selected; sections follow `order`.
    assert!(field(&html, "language").contains("<option value=\"&quot;go&quot;\" selected>go</option>"), "{html}");
    assert!(field(&html, "language").contains("class=\"required\""), "required mark");
    assert!(field(&html, "count").contains("type=\"number\""));
    assert!(field(&html, "when").contains("type=\"datetime-local\""));
    assert!(field(&html, "tags").contains("<select multiple"));
    assert!(field(&html, "config").contains("<textarea") && field(&html, "config").contains("JSON object"));
    assert!(field(&html, "on").contains("type=\"checkbox\""));
    let domain = field(&html, "domain");
    assert!(
        domain.contains("type=\"search\"") && domain.contains("<option value=\"pay\">Payments (pay)</option>"),
        "{domain}"
    );
    assert!(html.find("<h3>Advanced</h3>").unwrap() > html.find("id=\"field-domain\"").unwrap());
    assert!(html.find("<h3>Advanced</h3>").unwrap() < html.find("id=\"field-when\"").unwrap());
    // A change of `language` (which notes' `visible` reads) re-renders the form; other inputs do not.
    assert!(field(&html, "language").contains("hx-post=\"/ui/self-service/deploy/form?entity=auth\""), "{html}");
    assert!(!field(&html, "count").contains("hx-post"), "{html}");
    // `notes` is visible only when .form.language == "rust".
    assert!(!html.contains("id=\"field-notes\""), "language defaults to go: no notes");

    let csrf = form.csrf_field();
    let rust = app
        .post(&mut b, "/ui/self-service/deploy/form?entity=auth", &[("_csrf", &csrf), ("p.language", "\"rust\"")])
        .await;
    assert_eq!(rust.status, StatusCode::OK, "{}", rust.text);
    assert!(rust.text.starts_with("<div id=\"fields\"") || rust.text.contains("id=\"fields\""), "a fragment");
    assert!(!rust.text.contains("<html"), "only the fields");
    assert!(rust.text.contains("id=\"field-notes\""), "{}", rust.text);
    let go = app
        .post(&mut b, "/ui/self-service/deploy/form?entity=auth", &[("_csrf", &csrf), ("p.language", "\"go\"")])
        .await;
    assert!(!go.text.contains("id=\"field-notes\""), "{}", go.text);
    // Without the CSRF token: refused.
    let forged = app.post(&mut b, "/ui/self-service/deploy/form?entity=auth", &[("p.language", "\"rust\"")]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);

    // The entity picker searches by title or identifier.
    let opts = app
        .post(&mut b, "/ui/self-service/deploy/options/domain?entity=auth", &[("_csrf", &csrf), ("q.domain", "ship")])
        .await;
    assert_eq!(opts.status, StatusCode::OK, "{}", opts.text);
    assert!(opts.text.contains("value=\"ship\"") && !opts.text.contains("value=\"pay\""), "{}", opts.text);
    // A selected entity stays offered whatever the search.
    let kept = app
        .post(
            &mut b,
            "/ui/self-service/deploy/options/domain?entity=auth",
            &[("_csrf", &csrf), ("q.domain", "ship"), ("p.domain", "pay")],
        )
        .await;
    assert!(kept.text.contains("<option value=\"pay\" selected>"), "{}", kept.text);
}

#[tokio::test]
async fn a_refused_run_shows_each_error_next_to_its_field_and_keeps_the_values() {
    let Some(app) = WebApp::spawn().await else { return };
    model(&app).await;
    let mut b = app.admin().await;
    let csrf = app.csrf(&mut b).await;
    let res = app
        .post(
            &mut b,
            "/ui/self-service/deploy?entity=auth",
            &[
                ("_csrf", &csrf),
                ("p.language", "\"rust\""),
                ("p.notes", "keep <me>"),
                ("p.count", "0"),
                ("p.domain", "pay"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", res.text);
    let count = field(&res.text, "count");
    assert!(count.contains("class=\"field-errors\"") && count.contains("must be &gt;= 1"), "{count}");
    assert!(count.contains("value=\"0\""), "{count}");
    assert!(field(&res.text, "notes").contains("keep &lt;me&gt;</textarea>"), "the typed text is kept");
    assert!(!field(&res.text, "language").contains("field-errors"));
    // Bad JSON is caught before the run is tried, at its field.
    let bad = app
        .post(
            &mut b,
            "/ui/self-service/deploy?entity=auth",
            &[("_csrf", &csrf), ("p.language", "\"go\""), ("p.config", "{nope")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(field(&bad.text, "config").contains("not valid JSON"), "{}", bad.text);
    // A required input left empty.
    let missing = app.post(&mut b, "/ui/self-service/scaffold", &[("_csrf", &csrf), ("p.name", "")]).await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(field(&missing.text, "name").contains("is required"), "{}", missing.text);
    let runs = app.api("GET", "/v1/actions/runs", Value::Null).await;
    assert_eq!(runs["runs"].as_array().unwrap().len(), 0, "no run was started");
}

#[tokio::test]
async fn submitting_starts_a_run_whose_page_follows_it_to_the_end() {
    let Some(app) = WebApp::spawn().await else { return };
    model(&app).await;
    let mut b = app.admin().await;
    let csrf = app.csrf(&mut b).await;
    let res = app
        .post(
            &mut b,
            "/ui/self-service/deploy?entity=auth",
            &[
                ("_csrf", &csrf),
                ("p.language", "\"rust\""),
                ("p.notes", "first deploy"),
                ("p.count", "2"),
                ("p.domain", "pay"),
                ("p.when", "2024-05-01T10:30"),
                ("m.tags", "1"),
                ("p.tags", "\"a\""),
                ("m.on", "1"),
                ("p.on", "true"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.text);
    let to = res.location();
    let run_id = to.strip_prefix("/ui/runs/").expect(&to).to_string();
    let run = app.api("GET", &format!("/v1/actions/runs/{run_id}"), Value::Null).await["run"].clone();
    assert_eq!(run["source"], "UI");
    assert_eq!(run["createdBy"], ADMIN);
    assert_eq!(run["entity"]["identifier"], "auth");
    assert_eq!(
        run["properties"],
        json!({"language": "rust", "notes": "first deploy", "count": 2, "domain": "pay",
               "when": "2024-05-01T10:30:00.000Z", "tags": ["a"], "on": true})
    );

    let page = app.get(&mut b, &to).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(page.text.contains("IN_PROGRESS"));
    assert!(page.text.contains("hx-trigger=\"every 2s\""), "polls while in progress");
    assert!(page.text.contains("first deploy"));

    app.api("POST", &format!("/v1/actions/runs/{run_id}/logs"), json!({"message": "rolled out <b>2</b>"})).await;
    app.api(
        "PATCH",
        &format!("/v1/actions/runs/{run_id}"),
        json!({"status": "SUCCESS", "summary": "Deployed **auth**", "link": ["https://ci.example/1", "javascript:alert(1)"]}),
    )
    .await;
    let live = app.get(&mut b, &format!("/ui/runs/{run_id}/live")).await;
    assert_eq!(live.status, StatusCode::OK, "{}", live.text);
    assert!(!live.text.contains("<html"), "a fragment");
    assert!(live.text.contains("data-status=\"SUCCESS\""), "{}", live.text);
    assert!(!live.text.contains("hx-trigger"), "an ended run stops polling");
    assert!(live.unescaped().contains("rolled out &lt;b&gt;2&lt;/b&gt;"), "{}", live.text);
    assert!(live.text.contains("<strong>auth</strong>"), "the summary is markdown");
    assert!(live.unescaped().contains("href=\"https://ci.example/1\""));
    assert!(!live.text.contains("href=\"javascript:"), "unsafe links are not links");

    let mine = app.get(&mut b, "/ui/runs").await;
    assert!(mine.text.contains(&run_id) && mine.text.contains("SUCCESS"), "{}", mine.text);
    let entity = app.get(&mut b, "/ui/entities/service/auth").await;
    assert!(entity.text.contains(&run_id), "the entity page lists its runs");
    let other = app.get(&mut b, "/ui/entities/service/cart").await;
    assert!(!other.text.contains(&run_id));
}

#[tokio::test]
async fn an_upsert_entity_run_ends_by_itself_and_its_page_says_so() {
    let Some(app) = WebApp::spawn().await else { return };
    model(&app).await;
    let mut b = app.admin().await;
    let csrf = app.csrf(&mut b).await;
    let res = app.post(&mut b, "/ui/self-service/scaffold", &[("_csrf", &csrf), ("p.name", "billing")]).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.text);
    let live = format!("{}/live", res.location());
    let mut last = String::new();
    for _ in 0..100 {
        last = app.get(&mut b, &live).await.text;
        if !last.contains("data-status=\"IN_PROGRESS\"") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(last.contains("data-status=\"SUCCESS\""), "{last}");
    assert!(last.contains("id=\"run-summary\"") && !last.contains("hx-trigger"), "{last}");
    assert!(app.get(&mut b, "/ui/entities/service/billing").await.status.is_success(), "the entity was written");
}

#[tokio::test]
async fn my_runs_pages_newest_first() {
    let Some(app) = WebApp::spawn().await else { return };
    model(&app).await;
    let mut b = app.admin().await;
    let csrf = app.csrf(&mut b).await;
    let mut ids = Vec::new();
    for i in 0..52 {
        let name = format!("svc{i}");
        let res = app.post(&mut b, "/ui/self-service/scaffold", &[("_csrf", &csrf), ("p.name", &name)]).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.text);
        ids.push(res.location().trim_start_matches("/ui/runs/").to_string());
    }
    let first = app.get(&mut b, "/ui/runs").await;
    assert!(first.text.contains(&ids[51]) && !first.text.contains(&format!("{}\"", ids[1])), "newest first");
    let older = first.unescaped();
    let i = older.find("id=\"runs-older\"").expect("an Older link");
    let href = older[..i].rsplit("href=\"").next().unwrap().split('"').next().unwrap().to_string();
    let second = app.get(&mut b, &href).await;
    assert!(second.text.contains(&ids[0]) && second.text.contains(&ids[1]) && !second.text.contains(&ids[51]));
}

#[tokio::test]
async fn hostile_action_texts_render_inert() {
    let Some(app) = WebApp::spawn().await else { return };
    model(&app).await;
    let evil = "<script>alert(1)</script>\"'><x-evil hx-get=\"/ui/users\" hx-trigger=\"load\">";
    app.api(
        "POST",
        "/v1/actions",
        json!({"identifier": "evil", "title": evil, "description": evil, "icon": evil,
        "trigger": {"type": "self-service", "operation": "CREATE", "blueprintIdentifier": "service",
            "executeActionButtonText": "Go",
            "userInputs": {"properties": {"x": {"type": "string", "title": evil, "description": evil,
                "enum": [evil, "ok"]}},
                "titles": {"t": {"title": "<b>section</b>", "description": evil}}, "order": ["t", "x"]}},
        "invocationMethod": {"type": "UPSERT_ENTITY", "blueprintIdentifier": "service", "mapping": {"identifier": "x"}}}),
    )
    .await;
    let mut b: Browser = app.admin().await;
    for path in ["/ui/self-service", "/ui/self-service/evil", "/ui/catalog/service"] {
        let page = app.get(&mut b, path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.text);
        assert!(page.text.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"), "{path}: {}", page.text);
        assert!(!page.text.contains("<script>alert"), "{path}");
        assert!(!page.text.contains("<x-evil"), "{path}");
        assert!(!page.text.contains("<b>section"), "{path}");
    }
    // A run of it: the run page escapes the inputs and the action's title.
    let csrf = app.csrf(&mut b).await;
    let value = serde_json::to_string(evil).unwrap();
    let res = app.post(&mut b, "/ui/self-service/evil", &[("_csrf", &csrf), ("p.x", &value)]).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.text);
    let run = app.get(&mut b, &res.location()).await;
    assert!(!run.text.contains("<script>alert") && !run.text.contains("<x-evil"), "{}", run.text);
}

/// A backend that answers every request `200 {"deployed": true}` with a header, once per
/// connection.
async fn backend() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = s.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some(head_end) = text.find("\r\n\r\n") {
                        let len = text[..head_end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string())
                            })
                            .and_then(|v| v.parse::<usize>().ok())
                            .unwrap_or(0);
                        if buf.len() >= head_end + 4 + len {
                            break;
                        }
                    }
                }
                let body = "{\"deployed\": true, \"note\": \"<i>done</i>\"}";
                let res = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-backend: tiny\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(res.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}/deploy")
}

#[tokio::test]
async fn a_synchronized_webhook_run_shows_its_response_and_trace() {
    let Some(app) = WebApp::spawn().await else { return };
    model(&app).await;
    let url = backend().await;
    app.api(
        "POST",
        "/v1/actions",
        json!({"identifier": "restart", "title": "Restart",
        "trigger": {"type": "self-service", "operation": "DAY-2", "blueprintIdentifier": "service",
            "userInputs": {"properties": {"why": {"type": "string"}}}},
        "invocationMethod": {"type": "WEBHOOK", "url": url, "synchronized": true,
            "body": {"why": "{{ .inputs.why }}", "run": "{{ .run.id }}"}}}),
    )
    .await;
    let mut b = app.admin().await;
    let csrf = app.csrf(&mut b).await;
    let res = app.post(&mut b, "/ui/self-service/restart?entity=cart", &[("_csrf", &csrf), ("p.why", "stuck")]).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.text);
    let live = format!("{}/live", res.location());
    let mut last = String::new();
    for _ in 0..100 {
        last = app.get(&mut b, &live).await.text;
        if !last.contains("data-status=\"IN_PROGRESS\"") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(last.contains("data-status=\"SUCCESS\""), "{last}");
    let page = app.get(&mut b, &res.location()).await;
    let html = page.unescaped();
    assert!(html.contains("id=\"run-response\""), "{html}");
    assert!(html.contains("&lt;i&gt;done&lt;/i&gt;") && !html.contains("<i>done"), "the response is escaped");
    assert!(html.contains("id=\"run-trace\"") && html.contains(&format!("<code>POST</code> {url}")), "{html}");
    assert!(html.contains("x-backend: tiny"), "response headers in the trace: {html}");
    assert!(html.contains("stuck"), "the request body in the trace");
}

#[tokio::test]
async fn encrypted_inputs_are_shown_as_encrypted() {
    let Some(app) = WebApp::spawn().await else { return };
    model(&app).await;
    let org = portolan_store::OrgId(crate::app::ORG.into());
    let mut data = serde_json::Map::new();
    data.insert("action".into(), json!({"identifier": "deploy", "title": "Deploy"}));
    data.insert("properties".into(), json!({"token": "c2VjcmV0LWNpcGhlcnRleHQ=", "version": "1.2"}));
    data.insert("encryptedProperties".into(), json!(["token"]));
    data.insert("source".into(), json!("API"));
    let run = portolan_store::Run {
        rid: 0,
        id: "r_encrypted".into(),
        action: "deploy".into(),
        blueprint: Some("service".into()),
        entity: Some("auth".into()),
        status: "IN_PROGRESS".into(),
        external_run_id: None,
        data,
        trace: vec![],
        pending_execution: false,
        claimed_until: None,
        installation_id: None,
        ended_by_log: false,
        created_by: ADMIN.into(),
        created_at: "2024-01-01T00:00:00.000Z".into(),
        updated_by: ADMIN.into(),
        updated_at: "2024-01-01T00:00:00.000Z".into(),
        ended_at: None,
        timeout_at: Some("2099-01-01T00:00:00.000Z".into()),
    };
    app.store.create_run(&org, &run, None).await.unwrap();
    let mut b = app.admin().await;
    let page = app.get(&mut b, "/ui/runs/r_encrypted").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let token = &page.text[page.text.find("data-input=\"token\"").unwrap()..];
    let token = &token[..token.find("</tr>").unwrap()];
    assert!(token.contains("encrypted") && !token.contains("c2VjcmV0"), "{token}");
    assert!(page.text.contains("1.2"));
    assert!(!page.text.contains("c2VjcmV0"), "the ciphertext is not shown anywhere");
    let status = &page.text[page.text.find("id=\"run-status\"").unwrap()..];
    let status = &status[..status.find("</p>").unwrap()];
    assert!(status.contains("id=\"run-times-out\">times out") && status.contains("2099"), "{status}");
}
