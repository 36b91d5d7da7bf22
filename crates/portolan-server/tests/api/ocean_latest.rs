//! What the latest Ocean (HEAD 0.48) calls beyond 0.12.9 (docs/reference/ocean-protocol.md §7), as it calls
//! it: bulk upsert with per-entity results, the 404 shape of a single upsert, bulk delete under
//! the mass-deletion guard, datasource-entities paging, search projections, the startup calls,
//! the new integration fields, resync requests, incremental sync cursors, the metrics ingest URL,
//! and a clean JSON 404 for the action-run routes (a later issue).

use portolan_server::ApiConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Res, TestApp, assert_error, assert_invalid, wide_text};

const ID: &str = "latest-int";
const UA: &str = "port-ocean/latest/0.48.12/latest-int/exporter";
/// What the latest Ocean adds to every upsert and delete.
const INFO: &str = "ocean_info_event_type=resync&ocean_info_resync_id=0b7c3e2a-5f1d-4c1e-9d3a-2f6b8e4a1c00";

/// A request as the latest Ocean sends it (its User-Agent, JSON body).
async fn oc(app: &TestApp, method: &str, path: &str, body: Option<Value>) -> Res {
    oc_with(app, method, path, &[], body).await
}

async fn oc_with(app: &TestApp, method: &str, path: &str, extra: &[(&str, &str)], body: Option<Value>) -> Res {
    let mut headers = vec![("user-agent", UA)];
    if body.is_some() {
        headers.push(("content-type", "application/json"));
    }
    headers.extend_from_slice(extra);
    app.raw(method, path, &headers, body.map(|b| b.to_string().into_bytes())).await
}

fn config() -> Value {
    json!({"deleteDependentEntities": true, "createMissingRelatedEntities": false, "enableMergeEntity": true,
           "entityDeletionThreshold": 0.9,
           "resources": [{"kind": "svc", "selector": {"query": "true"},
                          "port": {"entity": {"mappings": {"identifier": ".id", "blueprint": "'\"svc\"'",
                                                          "properties": {"lang": ".lang"}}}}}]})
}

/// Blueprints `team` and `svc` (svc → team, optional) and the integration, created as the
/// latest Ocean does (with its new fields).
async fn setup(app: &TestApp) {
    app.blueprint(json!({"identifier": "team", "title": "Team", "schema": {"properties": {}}})).await;
    app.blueprint(json!({"identifier": "svc", "title": "Service",
        "schema": {"properties": {"lang": {"type": "string"}, "size": {"type": "number", "maximum": 100}}},
        "relations": {"owner": {"target": "team", "many": false, "required": false}}}))
        .await;
    create_integration(app).await;
}

async fn create_integration(app: &TestApp) {
    let r = oc(
        app,
        "POST",
        "/v1/integration",
        Some(json!({"installationId": ID, "installationAppType": "latest", "version": "0.48.12",
                    "changelogDestination": {}, "config": config(), "actionsProcessingEnabled": false,
                    "createPortResourcesOrigin": "Default"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

async fn resync(app: &TestApp, status: &str) {
    let r = oc(
        app,
        "PATCH",
        &format!("/v1/integration/{ID}/resync-state"),
        Some(json!({"status": status, "lastResyncStart": "2026-01-01T00:00:00+00:00", "lastResyncEnd": null,
                    "nextResync": null, "intervalInMinuets": null})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

fn bulk_path(create_missing: bool) -> String {
    format!(
        "/v1/blueprints/svc/entities/bulk?upsert=true&merge=true&create_missing_related_entities={create_missing}&validation_only=false&{INFO}"
    )
}

async fn logs(app: &TestApp, query: &str) -> Vec<Value> {
    let r = app.get(&format!("/v1/integration/{ID}/logs?{query}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body["logs"].as_array().unwrap().clone()
}

#[tokio::test]
async fn bulk_upsert_reports_each_entity_and_207_on_partial_success() {
    let Some(app) = TestApp::spawn().await else { return };
    setup(&app).await;
    // All good: 200, one result per entity in request order, with `created`.
    let r = oc(
        &app,
        "POST",
        &bulk_path(true),
        Some(json!({"entities": [
            {"identifier": "a", "blueprint": "svc", "properties": {"lang": "go"}, "relations": {"owner": "t1"}},
            {"identifier": "b", "blueprint": "svc", "properties": {"lang": "rust"}}]})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["errors"], json!([]));
    let ok = r.body["entities"].as_array().unwrap();
    assert_eq!(ok.len(), 2);
    assert_eq!(
        (ok[0]["index"].clone(), ok[0]["identifier"].clone(), ok[0]["created"].clone()),
        (json!(0), json!("a"), json!(true))
    );
    assert_eq!(ok[1]["identifier"], "b");
    // The missing team was created (create_missing_related_entities=true), and $datasource is Ocean's.
    assert_eq!(app.get("/v1/blueprints/team/entities/t1").await.status, StatusCode::OK);

    // Partial success: 207 with the failures by index (invalid property, missing related entity,
    // a search-query identifier — reported as "unknown").
    let r = oc(
        &app,
        "POST",
        &bulk_path(false),
        Some(json!({"entities": [
            {"identifier": "a", "blueprint": "svc", "properties": {"lang": "zig"}},
            {"identifier": "huge", "blueprint": "svc", "properties": {"size": 1000}},
            {"identifier": "orphan", "blueprint": "svc", "relations": {"owner": "nobody"}},
            {"identifier": {"combinator": "and", "rules": [{"property": "lang", "operator": "=", "value": "go"}]},
             "blueprint": "svc", "properties": {"lang": "go"}}]})),
    )
    .await;
    assert_eq!(r.status.as_u16(), 207, "{}", r.body);
    let ok = r.body["entities"].as_array().unwrap();
    assert_eq!(ok.len(), 1, "{}", r.body);
    assert_eq!((ok[0]["index"].clone(), ok[0]["created"].clone()), (json!(0), json!(false)));
    let errors = r.body["errors"].as_array().unwrap();
    let by_index = |i: u64| errors.iter().find(|e| e["index"] == i).unwrap_or_else(|| panic!("error {i}: {errors:?}"));
    assert_eq!(by_index(1)["identifier"], "huge");
    assert_eq!(by_index(1)["statusCode"], 422);
    assert_eq!(by_index(2)["identifier"], "orphan");
    assert_eq!(by_index(2)["statusCode"], 404);
    assert_eq!(by_index(2)["error"], "not_found");
    assert_eq!(by_index(3)["identifier"], "unknown");
    for e in errors {
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{e}");
    }
    // The merge kept `a`'s relation; the failed ones were not written.
    let a = app.get("/v1/blueprints/svc/entities/a").await;
    assert_eq!(a.body["entity"]["properties"]["lang"], "zig");
    assert_eq!(a.body["entity"]["relations"]["owner"], "t1");
    assert_eq!(app.get("/v1/blueprints/svc/entities/orphan").await.status, StatusCode::NOT_FOUND);
    // The rejections are in the integration's event log.
    let rejected = logs(&app, "event=entity_rejected").await;
    assert_eq!(rejected.len(), 3, "{rejected:?}");
}

#[tokio::test]
async fn an_over_limit_bulk_upsert_is_413_so_ocean_falls_back_to_single_upserts() {
    let Some(app) = TestApp::spawn_with(ApiConfig { max_bulk_entities: 20, ..Default::default() }).await else {
        return;
    };
    setup(&app).await;
    let many: Vec<Value> =
        (0..21).map(|i| json!({"identifier": format!("s{i}"), "properties": {"lang": "go"}})).collect();
    let r = oc(&app, "POST", &bulk_path(true), Some(json!({"entities": many}))).await;
    assert_error(&r, 413, "payload_too_large");
    assert!(r.body["message"].as_str().unwrap().contains("20"), "says the limit: {}", r.body);
    assert_eq!(app.count("svc").await, 0, "nothing written");
    // A body over the 1 MiB limit: 413 in Port's envelope too.
    let big = "x".repeat(1_100_000);
    let r = oc(
        &app,
        "POST",
        &bulk_path(true),
        Some(json!({"entities": [{"identifier": "x", "properties": {"lang": big}}]})),
    )
    .await;
    assert_error(&r, 413, "payload_too_large");
    // The fallback, one single upsert, works.
    let r = oc(
        &app,
        "POST",
        &format!("/v1/blueprints/svc/entities?upsert=true&merge=true&create_missing_related_entities=true&validation_only=false&{INFO}"),
        Some(json!({"identifier": "s0", "blueprint": "svc", "properties": {"lang": "go"}})),
    )
    .await;
    assert!(r.status.is_success(), "{}", r.body);
    assert_eq!(r.body["entity"]["identifier"], "s0");
}

#[tokio::test]
async fn a_single_upsert_to_a_missing_related_entity_is_404_not_found() {
    let Some(app) = TestApp::spawn().await else { return };
    setup(&app).await;
    let path = format!(
        "/v1/blueprints/svc/entities?upsert=true&merge=true&create_missing_related_entities=false&validation_only=false&{INFO}"
    );
    let r = oc(&app, "POST", &path, Some(json!({"identifier": "s", "blueprint": "svc", "relations": {"owner": "t9"}})))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    assert_eq!(r.body["ok"], false);
    assert_eq!(r.body["error"], "not_found");
    let msg = r.body["message"].as_str().unwrap();
    assert!(msg.contains("t9") && msg.contains("create_missing_related_entities"), "{msg}");
    // Ocean re-upserts it at the end of the resync, after its target: then it works.
    app.entity("team", json!({"identifier": "t9"})).await;
    let r = oc(&app, "POST", &path, Some(json!({"identifier": "s", "blueprint": "svc", "relations": {"owner": "t9"}})))
        .await;
    assert!(r.status.is_success(), "{}", r.body);
}

#[tokio::test]
async fn bulk_delete_answers_deleted_entities_and_is_guarded_during_a_resync() {
    let Some(app) = TestApp::spawn().await else { return };
    setup(&app).await;
    let entities: Vec<Value> = (0..30)
        .map(|i| json!({"identifier": format!("e{i:02}"), "blueprint": "svc", "properties": {"lang": "go"}}))
        .collect();
    let r = oc(&app, "POST", &bulk_path(true), Some(json!({"entities": entities}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let del = format!("/v1/blueprints/svc/bulk/entities/delete?delete_dependents=true&{INFO}");

    // Outside a resync: deleted; for Ocean, "nope" (already gone) is skipped, not in deletedEntities.
    let r = oc(&app, "POST", &del, Some(json!({"entities": ["e00", "e01", "nope"]}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let mut got: Vec<&str> =
        r.body["deletedEntities"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    got.sort();
    assert_eq!(got, vec!["e00", "e01"]);
    assert_eq!(app.count("svc").await, 28);
    let r = oc(&app, "POST", &del, Some(json!({"entities": ["nope"]}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["deletedEntities"], json!([]));
    // Another client still gets Port's all-or-nothing 404 for an unknown identifier.
    assert_error(&app.post(&del, json!({"entities": ["e02", "nope"]})).await, 404, "not_found");
    assert_eq!(app.count("svc").await, 28);

    // During a resync that wrote nothing, Ocean deletes everything in batches: refused at once.
    resync(&app, "running").await;
    let ids: Vec<String> = (2..30).map(|i| format!("e{i:02}")).collect();
    let r = oc(&app, "POST", &del, Some(json!({"entities": ids}))).await;
    assert_error(&r, 409, "mass_deletion_refused");
    assert!(r.body["message"].as_str().unwrap().contains("confirm-deletions"), "{}", r.body);
    let r = oc(&app, "POST", &del, Some(json!({"entities": ["e02"]}))).await;
    assert_error(&r, 409, "mass_deletion_refused");
    resync(&app, "completed").await;
    assert_eq!(app.count("svc").await, 28, "nothing deleted");
    assert!(!logs(&app, "event=deletion_refused").await.is_empty());

    // A client that is not the integration is not guarded; limits are checked.
    let too_many: Vec<String> = (0..101).map(|i| format!("x{i}")).collect();
    assert_invalid(&oc(&app, "POST", &del, Some(json!({"entities": too_many}))).await, "entities");
    assert_invalid(&oc(&app, "POST", &del, Some(json!({"entities": []}))).await, "entities");
}

#[tokio::test]
async fn datasource_entities_pages_with_limit_5000_and_before() {
    let Some(app) = TestApp::spawn().await else { return };
    setup(&app).await;
    let r = oc(
        &app,
        "POST",
        &bulk_path(true),
        Some(json!({"entities": [{"identifier": "old", "properties": {"lang": "go"}}]})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    // Ocean's resync start, in Python's isoformat (microseconds, +00:00).
    let start = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let r = oc(
        &app,
        "POST",
        &bulk_path(true),
        Some(json!({"entities": [{"identifier": "new", "properties": {"lang": "go"}}]})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let path = "/v1/blueprints/entities/datasource-entities";
    let q = json!({"datasource_prefix": "port-ocean/latest/", "datasource_suffix": format!("/{ID}/exporter"), "limit": 5000});
    let r = oc(&app, "POST", path, Some(q.clone())).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["entities"].as_array().unwrap().len(), 2);
    assert!(r.body["next"].is_null(), "{}", r.body);
    let mut before = q.clone();
    before["before"] = json!(start);
    let r = oc(&app, "POST", path, Some(before)).await;
    let ids: Vec<&str> =
        r.body["entities"].as_array().unwrap().iter().map(|e| e["identifier"].as_str().unwrap()).collect();
    assert_eq!(ids, vec!["old"], "only what was updated before the resync started: {}", r.body);
    let mut over = q.clone();
    over["limit"] = json!(5001);
    assert_invalid(&oc(&app, "POST", path, Some(over)).await, "limit");
    let mut bad = q.clone();
    bad["from"] = json!("not-a-cursor");
    assert_invalid(&oc(&app, "POST", path, Some(bad)).await, "from");
}

#[tokio::test]
async fn search_with_include_projections_and_appended_rules() {
    let Some(app) = TestApp::spawn().await else { return };
    setup(&app).await;
    let entities: Vec<Value> = (0..12)
        .map(|i| {
            json!({"identifier": format!("p{i:02}"), "title": format!("P{i}"), "team": [],
                         "properties": {"lang": "go", "size": i}, "relations": {"owner": "t1"}})
        })
        .collect();
    let r = oc(&app, "POST", &bulk_path(true), Some(json!({"entities": entities}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    app.entity("svc", json!({"identifier": "p99", "properties": {"lang": "go"}})).await; // not Ocean's
    let path = "/v1/entities/search?exclude_calculated_properties=true&include=blueprint&include=identifier\
                &include=title&include=team&include=properties.lang&include=relations.owner";
    let ids: Vec<String> = (0..12).map(|i| format!("p{i:02}")).chain(["p99".to_string()]).collect();
    let body = json!({"combinator": "and", "rules": [
        {"property": "$identifier", "operator": "in", "value": ids},
        {"property": "$blueprint", "operator": "=", "value": "svc"},
        {"property": "$datasource", "operator": "contains", "value": "port-ocean/latest/"},
        {"property": "$datasource", "operator": "contains", "value": format!("/{ID}/exporter")}]});
    let r = oc(&app, "POST", path, Some(body)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let found = r.body["entities"].as_array().unwrap();
    assert_eq!(found.len(), 12, "only the integration's entities: {}", r.body);
    let e = found.iter().find(|e| e["identifier"] == "p03").unwrap();
    let mut keys: Vec<&str> = e.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, vec!["blueprint", "identifier", "properties", "relations", "team", "title"], "{e}");
    assert_eq!(e["properties"], json!({"lang": "go"}), "size not included: {e}");
    assert_eq!(e["relations"], json!({"owner": "t1"}));
    assert_eq!(e["title"], "P3");
}

#[tokio::test]
async fn startup_calls_and_new_integration_fields() {
    let Some(app) = TestApp::spawn().await else { return };
    // Startup order: provision-enabled → organization → integration (404) → create.
    let r = oc(&app, "GET", "/v1/integration/provision-enabled", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["integrations"], json!([]));
    let r = oc(&app, "GET", "/v1/organization", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["organization"]["featureFlags"], json!([]));
    let get = format!("/v1/integration/{ID}?oceanCoreVersion=0.48.12&isPolling=false");
    assert_error(&oc(&app, "GET", &get, None).await, 404, "not_found");
    setup(&app).await;
    let r = oc(&app, "GET", &get, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let i = &r.body["integration"];
    assert_eq!(i["config"], config());
    assert_eq!(i["actionsProcessingEnabled"], false);
    assert_eq!(i["createPortResourcesOrigin"], "Default");
    assert_eq!(i["installationType"], "OnPrem");
    let metrics = i["metricAttributes"]["ingestUrl"].as_str().unwrap();
    assert!(metrics.ends_with(&format!("/v1/integration/{ID}/metrics")), "{metrics}");

    // PATCH with the new fields: stored and returned.
    let r = oc(
        &app,
        "PATCH",
        &format!("/v1/integration/{ID}"),
        Some(json!({"installationAppType": "latest", "version": "0.48.12", "changelogDestination": {},
                    "actionsProcessingEnabled": true, "incrementalSyncEnabled": true, "processingMode": "default",
                    "arePortResourcesInitialized": true})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = oc(&app, "GET", &get, None).await;
    let i = &r.body["integration"];
    for (k, v) in [
        ("actionsProcessingEnabled", json!(true)),
        ("incrementalSyncEnabled", json!(true)),
        ("processingMode", json!("default")),
        ("arePortResourcesInitialized", json!(true)),
    ] {
        assert_eq!(i[k], v, "{k}: {i}");
    }
    assert_eq!(i["config"], config(), "the config stays");

    // PATCH …/config with x-skip-resync: a new config version.
    let mut c2 = config();
    c2["resources"][0]["kind"] = json!("svc2");
    let r = oc_with(
        &app,
        "PATCH",
        &format!("/v1/integration/{ID}/config"),
        &[("x-skip-resync", "true")],
        Some(json!({"config": c2})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["integration"]["config"]["resources"][0]["kind"], "svc2");
    assert_eq!(r.body["integration"]["configVersion"], 2);

    // A client cannot set metricAttributes.
    let r = oc(
        &app,
        "PATCH",
        &format!("/v1/integration/{ID}"),
        Some(json!({"metricAttributes": {"ingestUrl": "http://evil"}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body["integration"]["metricAttributes"]["ingestUrl"].as_str().unwrap().ends_with("/metrics"));
}

#[tokio::test]
async fn create_resources_mode_is_ignored_with_a_config_and_refused_without() {
    let Some(app) = TestApp::spawn().await else { return };
    let path = "/v1/integration?integration_modes=create_resources";
    // Without a config, Ocean would poll 30 times for defaults we never provision: refused now.
    let r = oc(
        &app,
        "POST",
        path,
        Some(json!({"installationId": "prov", "installationAppType": "latest", "version": "1", "config": {},
                    "createPortResourcesOrigin": "Port"})),
    )
    .await;
    assert_error(&r, 422, "provisioning_unsupported");
    assert!(r.body["message"].as_str().unwrap().contains("OCEAN__CREATE_PORT_RESOURCES_ORIGIN=Default"), "{}", r.body);
    assert_error(&oc(&app, "GET", "/v1/integration/prov", None).await, 404, "not_found");
    // With a config, the mode is ignored: created as sent, so Ocean's first poll sees the config.
    let r = oc(
        &app,
        "POST",
        path,
        Some(json!({"installationId": "prov", "installationAppType": "latest", "version": "1", "config": config(),
                    "createPortResourcesOrigin": "Port"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = oc(&app, "GET", "/v1/integration/prov", None).await;
    assert_eq!(r.body["integration"]["config"], config());
}

#[tokio::test]
async fn resync_request_has_the_shape_the_polling_listener_reads() {
    let Some(app) = TestApp::spawn().await else { return };
    setup(&app).await;
    let path = format!("/v1/integration/{ID}/resync-request");
    let r = oc(&app, "GET", &path, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let first = r.body["request"]["updatedAt"].as_str().unwrap().to_string();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    // An empty PATCH (Port's "resync now") moves it.
    assert_eq!(app.patch(&format!("/v1/integration/{ID}"), json!({})).await.status, StatusCode::OK);
    let r = oc(&app, "GET", &path, None).await;
    let second = r.body["request"]["updatedAt"].as_str().unwrap().to_string();
    assert!(second > first, "{first} → {second}");
    assert_error(&oc(&app, "GET", "/v1/integration/nope/resync-request", None).await, 404, "not_found");
}

#[tokio::test]
async fn incremental_sync_cursors_put_404_then_post_then_put() {
    let Some(app) = TestApp::spawn().await else { return };
    setup(&app).await;
    let path = |kind: &str, index: &str| format!("/v1/integration/{ID}/cursor?kind={kind}&index={index}");
    let c1 = json!({"cursor": {"primary": "2026-01-01T00:00:00+00:00"}});
    let c2 = json!({"cursor": {"primary": "2026-02-01T00:00:00+00:00"}});
    assert_error(&oc(&app, "GET", &path("svc", "0"), None).await, 404, "not_found");
    // PUT on a missing cursor: 404, so Ocean falls back to POST.
    assert_error(&oc(&app, "PUT", &path("svc", "0"), Some(c1.clone())).await, 404, "not_found");
    let r = oc(&app, "POST", &path("svc", "0"), Some(c1.clone())).await;
    assert!(r.status.is_success(), "{}", r.body);
    let r = oc(&app, "GET", &path("svc", "0"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["cursor"], c1["cursor"]);
    let r = oc(&app, "PUT", &path("svc", "0"), Some(c2.clone())).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(oc(&app, "GET", &path("svc", "0"), None).await.body["cursor"], c2["cursor"]);
    // Keyed by kind and index.
    assert_error(&oc(&app, "GET", &path("svc", "1"), None).await, 404, "not_found");
    assert_error(&oc(&app, "GET", &path("team", "0"), None).await, 404, "not_found");
    // Another organization sees none.
    let other = app.other_org_token("org-b").await;
    assert_error(&app.req_as(&other, "GET", &path("svc", "0"), None).await, 404, "not_found");
    // Bad requests say what to fix.
    assert_invalid(&oc(&app, "GET", &format!("/v1/integration/{ID}/cursor?kind=svc"), None).await, "index");
    // Keys PostgreSQL can index (a 500 there before): a kind or index over 200 bytes is refused.
    let wide = wide_text(1000).bytes().map(|b| format!("%{b:02X}")).collect::<String>();
    assert_invalid(&oc(&app, "POST", &path(&wide, "0"), Some(c1.clone())).await, "kind");
    assert_invalid(&oc(&app, "POST", &path("svc", &wide), Some(c1.clone())).await, "index");
    let examples = format!("/v1/integration/{ID}/kinds/{wide}/examples");
    assert_invalid(&oc(&app, "POST", &examples, Some(json!({"examples": [{"a": 1}]}))).await, "kind");
    assert_invalid(&oc(&app, "POST", &path("svc", "0"), Some(json!({"cursor": "x"}))).await, "cursor");
    assert_error(&oc(&app, "POST", "/v1/integration/nope/cursor?kind=svc&index=0", Some(c1)).await, 404, "not_found");
    // Deleted with the integration.
    assert_eq!(app.delete(&format!("/v1/integration/{ID}")).await.status, StatusCode::OK);
    create_integration(&app).await;
    assert_error(&oc(&app, "GET", &path("svc", "0"), None).await, 404, "not_found");
}

#[tokio::test]
async fn sync_metrics_and_heartbeats_go_to_the_event_log() {
    let Some(app) = TestApp::spawn().await else { return };
    setup(&app).await;
    let r = oc(&app, "GET", &format!("/v1/integration/{ID}"), None).await;
    let ingest = r.body["integration"]["metricAttributes"]["ingestUrl"].as_str().unwrap().to_string();
    let path = ingest.strip_prefix(&app.base).expect("the ingest URL is this server").to_string();
    resync(&app, "running").await;
    let event = "0b7c3e2a-5f1d-4c1e-9d3a-2f6b8e4a1c00";
    let kinds = json!([{"eventId": event, "kindIdentifier": "svc-0", "metrics": {"phase": {"load": {"loaded": 3}}}}]);
    let r = oc(&app, "POST", &format!("{path}/syncMetrics"), Some(json!({"syncKindsMetrics": kinds}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = oc(
        &app,
        "PUT",
        &format!("{path}/syncMetrics/resync/{event}/kind/svc-0"),
        Some(json!({"syncKindMetrics": {"eventId": event, "kindIdentifier": "svc-0", "metrics": {}}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = oc(&app, "POST", &format!("{path}/heartbeat"), Some(json!({"eventId": event}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    resync(&app, "completed").await;

    let metrics = logs(&app, "event=sync_metrics&direction=down&timestamp=2000-01-01T00:00:00Z").await;
    assert_eq!(metrics.len(), 2, "{metrics:?}");
    assert!(metrics.iter().all(|l| l["source"] == "ocean" && l["resyncId"].is_string()), "{metrics:?}");
    assert_eq!(metrics[0]["extra"]["syncKindsMetrics"], kinds);
    assert_eq!(metrics[1]["extra"]["kind"], "svc-0");
    assert_eq!(metrics[1]["extra"]["eventId"], event);
    let beats = logs(&app, "event=heartbeat").await;
    assert_eq!(beats.len(), 1);
    assert_eq!(beats[0]["extra"]["eventId"], event);
    // Shape errors and unknown integrations are JSON errors.
    assert_invalid(&oc(&app, "POST", &format!("{path}/syncMetrics"), Some(json!({}))).await, "syncKindsMetrics");
    assert_error(
        &oc(&app, "POST", "/v1/integration/nope/metrics/heartbeat", Some(json!({"eventId": "x"}))).await,
        404,
        "not_found",
    );
}

#[tokio::test]
async fn action_run_routes_answer_in_ports_shapes_and_workflow_routes_are_a_clean_json_404() {
    let Some(app) = TestApp::spawn().await else { return };
    // Ocean's actions processor polls for INTEGRATION_ACTION runs: there are none to give it.
    let claim = json!({"installationId": "my-integration", "limit": 10, "invocationMethod": "INTEGRATION_ACTION"});
    let r = oc(&app, "POST", "/v1/actions/runs/claim-pending", Some(claim)).await;
    assert_eq!((r.status.as_u16(), r.body["runs"].clone()), (200, json!([])), "{}", r.body);
    let r = oc(&app, "PATCH", "/v1/actions/runs/ack", Some(json!({"runIds": ["r_1"]}))).await;
    assert_eq!((r.status.as_u16(), r.body["ackedCount"].clone()), (200, json!(0)), "{}", r.body);
    let r = oc(&app, "GET", "/v1/actions/runs?version=v2&external_run_id=x", None).await;
    assert_eq!((r.status.as_u16(), r.body["runs"].clone()), (200, json!([])), "{}", r.body);
    for (method, path, body) in [
        ("PATCH", "/v1/actions/runs/r_1", json!({"status": "SUCCESS"})),
        ("POST", "/v1/actions/runs/r_1/logs", json!({"message": "x"})),
    ] {
        let r = oc(&app, method, path, Some(body)).await;
        assert_error(&r, 404, "not_found");
        assert!(r.body["message"].as_str().unwrap().contains("r_1"), "{method} {path}: {}", r.body);
    }
    let r =
        oc(&app, "POST", "/v1/workflows/runs/claim-pending", Some(json!({"installationId": "x", "limit": 1}))).await;
    assert_eq!((r.status.as_u16(), r.body["nodeRuns"].clone()), (200, json!([])), "{}", r.body);
    for (method, path) in [
        ("PATCH", "/v1/workflows/runs/ack"),
        ("PATCH", "/v1/workflows/nodes/runs/n_1"),
        ("POST", "/v1/workflows/nodes/runs/n_1/logs"),
        ("GET", "/v1/workflows/nodes/runs?external_run_id=x&include=nodeConfig"),
    ] {
        let body = (method != "GET").then(|| json!({}));
        let r = oc(&app, method, path, body).await;
        assert_error(&r, 404, "not_found");
        assert_eq!(r.body["ok"], false, "{method} {path}");
        assert!(r.body["message"].as_str().is_some_and(|m| m.contains("no route")), "{method} {path}: {}", r.body);
    }
}
