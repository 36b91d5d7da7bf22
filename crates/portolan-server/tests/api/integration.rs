//! Integrations as Ocean uses them (`/v1/integration…`), their event log, and the mass-deletion
//! guard. Requests that Ocean makes carry Ocean's User-Agent, which is how the server knows the
//! integration a write belongs to.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Res, TestApp, assert_error, assert_invalid};

const ID: &str = "fixture-int";
const UA: &str = "port-ocean/fixture/0.1.0/fixture-int/exporter";

fn config() -> Value {
    json!({"deleteDependentEntities": true, "createMissingRelatedEntities": true, "enableMergeEntity": true,
           "resources": [{"kind": "item", "selector": {"query": "true", "includedFiles": ["README.md"]},
                          "port": {"entity": {"mappings": {"identifier": ".id", "blueprint": "'\"thing\"'",
                                                          "properties": {"size": ".size"}}}}}]})
}

impl TestApp {
    /// A request as Ocean sends it (its User-Agent).
    async fn ocean(&self, method: &str, path: &str, body: Option<Value>) -> Res {
        let mut headers = vec![("user-agent", UA)];
        if body.is_some() {
            headers.push(("content-type", "application/json"));
        }
        self.raw(method, path, &headers, body.map(|b| b.to_string().into_bytes())).await
    }

    /// The `thing` blueprint and the integration, created as Ocean does.
    async fn integration_setup(&self) {
        self.blueprint(json!({"identifier": "thing", "title": "Thing",
            "schema": {"properties": {"size": {"type": "number", "maximum": 100}}}}))
            .await;
        let r = self
            .ocean(
                "POST",
                "/v1/integration",
                Some(json!({"installationId": ID, "installationAppType": "fixture",
                "version": "0.1.0", "changelogDestination": {}, "config": config()})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }

    async fn resync_state(&self, status: &str) -> Res {
        let r = self
            .ocean(
                "PATCH",
                &format!("/v1/integration/{ID}/resync-state"),
                Some(json!({"status": status,
            "lastResyncStart": "2024-11-10T00:00:00+00:00", "lastResyncEnd": null, "nextResync": null,
            "intervalInMinuets": null})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r
    }

    async fn upsert(&self, id: &str, size: i64) -> Res {
        let path = "/v1/blueprints/thing/entities?upsert=true&merge=true&create_missing_related_entities=true&validation_only=false";
        self.ocean("POST", path, Some(json!({"identifier": id, "blueprint": "thing", "properties": {"size": size}})))
            .await
    }

    async fn logs(&self, query: &str) -> Vec<Value> {
        let r = self.get(&format!("/v1/integration/{ID}/logs?{query}")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body["logs"].as_array().unwrap().clone()
    }

    /// Ocean's delete phase: every DELETE at once. Answers (status, body) in the order of `ids`.
    async fn delete_all_concurrently(&self, ids: &[String]) -> Vec<Res> {
        let tasks: Vec<_> = ids
            .iter()
            .map(|id| {
                let req = self
                    .http
                    .delete(format!("{}/v1/blueprints/thing/entities/{id}?delete_dependents=true", self.base))
                    .bearer_auth(&self.token)
                    .header("user-agent", UA);
                tokio::spawn(async move {
                    let res = req.send().await.expect("request");
                    let (status, headers) = (res.status(), res.headers().clone());
                    let body = serde_json::from_str(&res.text().await.unwrap_or_default()).unwrap_or(Value::Null);
                    Res { status, body, headers }
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.expect("task"));
        }
        out
    }
}

#[tokio::test]
async fn ocean_startup_calls_get_the_shapes_ocean_needs() {
    let Some(app) = TestApp::spawn().await else { return };
    // Unknown integration: 404 with a JSON body (Ocean parses it, then creates the integration).
    let r = app.ocean("GET", &format!("/v1/integration/{ID}"), None).await;
    assert_error(&r, 404, "not_found");
    app.integration_setup().await;
    let r = app.ocean("GET", &format!("/v1/integration/{ID}"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let i = &r.body["integration"];
    assert_eq!(i["config"], config(), "the mapping round-trips, selector extras included");
    assert_eq!(i["installationType"], "OnPrem");
    assert_eq!(i["installationAppType"], "fixture");
    assert_eq!(i["identifier"], ID);
    assert!(i["updatedAt"].is_string());
    let ingest = i["logAttributes"]["ingestUrl"].as_str().unwrap();
    assert_eq!(ingest, format!("{}/v1/integration/{ID}/logs", app.base));
    // Ocean's every-start PATCH.
    let r = app
        .ocean(
            "PATCH",
            &format!("/v1/integration/{ID}"),
            Some(json!({"installationAppType": "fixture", "version": "0.1.1"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["integration"]["version"], "0.1.1");
    assert_eq!(r.body["integration"]["configVersion"], 1, "config unchanged: same version");
    // Resync state: resyncState.updatedAt present and equal to the integration's updatedAt.
    let r = app.resync_state("running").await;
    let i = &r.body["integration"];
    assert_eq!(i["resyncState"]["status"], "running");
    assert!(i["resyncState"]["updatedAt"].is_string(), "{}", r.body);
    assert_eq!(i["resyncState"]["updatedAt"], i["updatedAt"]);
    // Kind examples.
    let path = format!("/v1/integration/{ID}/kinds/item/examples");
    let r = app.ocean("POST", &path, Some(json!({"examples": [{"id": "a", "size": 1}]}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(app.get(&path).await.body["examples"], json!([{"id": "a", "size": 1}]));
    assert_invalid(&app.ocean("POST", &path, Some(json!({"examples": "no"}))).await, "examples");
    // The log ingest URL stores what Ocean ships.
    let r = app
        .ocean(
            "POST",
            &format!("/v1/integration/{ID}/logs"),
            Some(json!({"logs": [
        {"message": "Resync started", "level": "INFO", "timestamp": "2024-11-10T00:00:01.000Z", "extra": {"k": 1}},
        {"message": "Oops", "level": "error", "timestamp": "2024-11-10T00:00:02.000Z", "extra": {}}]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let ocean_lines = app.logs("source=ocean").await;
    assert_eq!(ocean_lines.len(), 2);
    assert_eq!(ocean_lines[0]["message"], "Oops", "newest first");
    assert_eq!(ocean_lines[0]["level"], "ERROR");
    assert_eq!(ocean_lines[1]["extra"], json!({"k": 1}));
    assert!(ocean_lines[1]["resyncId"].is_string(), "lines shipped during a resync belong to it");
    // Latest-Ocean calls.
    let r = app.ocean("GET", "/v1/integration/provision-enabled", None).await;
    assert_eq!(r.body, json!({"ok": true, "integrations": []}));
    let r = app.ocean("GET", "/v1/organization", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["organization"]["name"], "org-a");
    assert!(r.body["organization"]["featureFlags"].is_array());
    let r = app.ocean("GET", &format!("/v1/integration/{ID}/resync-request"), None).await;
    assert!(r.body["request"]["updatedAt"].is_string(), "{}", r.body);
    // Errors Ocean parses are JSON, for every integration route.
    assert_error(
        &app.ocean("PATCH", "/v1/integration/nope/resync-state", Some(json!({"status": "running"}))).await,
        404,
        "not_found",
    );
    assert_error(
        &app.ocean("POST", "/v1/integration/nope/kinds/item/examples", Some(json!({"examples": []}))).await,
        404,
        "not_found",
    );
    assert_error(&app.ocean("POST", "/v1/integration/nope/logs", Some(json!({"logs": []}))).await, 404, "not_found");
    // Another organization sees nothing.
    let other = app.other_org_token("org-b").await;
    assert_error(&app.req_as(&other, "GET", &format!("/v1/integration/{ID}"), None).await, 404, "not_found");
    assert_error(&app.req_as(&other, "GET", &format!("/v1/integration/{ID}/logs"), None).await, 404, "not_found");
}

#[tokio::test]
async fn the_config_is_validated_versioned_audited_and_restorable() {
    let Some(app) = TestApp::spawn().await else { return };
    app.integration_setup().await;
    let r = app.post("/v1/integration", json!({"installationId": ID, "config": {}})).await;
    assert_error(&r, 409, "conflict");
    // What would crash Ocean is refused.
    let r = app.patch(&format!("/v1/integration/{ID}"), json!({"installationType": "SaaS"})).await;
    assert_invalid(&r, "installationType");
    let r = app.patch(&format!("/v1/integration/{ID}/config"), json!({"config": {"resources": [{"port": {}}]}})).await;
    assert_invalid(&r, "config.resources[0].kind");
    assert_invalid(&r, "config.resources[0].port.entity.mappings");
    let r = app.post("/v1/integration", json!({"installationId": "bad id/x", "config": {}})).await;
    assert_invalid(&r, "installationId");
    // Two changes of the config: versions 2 and 3; the first is kept.
    let mut c2 = config();
    c2["resources"][0]["selector"]["query"] = json!(".size > 1");
    let r = app.patch(&format!("/v1/integration/{ID}/config"), json!({"config": c2})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["integration"]["configVersion"], 2);
    let mut c3 = config();
    c3["enableMergeEntity"] = json!(false);
    let r = app.patch(&format!("/v1/integration/{ID}"), json!({"config": c3})).await;
    assert_eq!(r.body["integration"]["configVersion"], 3);
    let r = app
        .put(&format!("/v1/integration/{ID}"), json!({"installationAppType": "fixture", "config": c3, "version": "2"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["integration"]["configVersion"], 3, "same config: no new version");
    assert_eq!(r.body["integration"]["version"], "2");
    let r = app.get(&format!("/v1/integration/{ID}/config/versions")).await;
    let versions = r.body["versions"].as_array().unwrap();
    assert_eq!(versions.iter().map(|v| v["version"].as_i64().unwrap()).collect::<Vec<_>>(), vec![3, 2, 1]);
    assert_eq!(versions[2]["config"], config());
    assert_eq!(versions[1]["config"], c2);
    // Restore version 1: it becomes version 4.
    let r = app.post(&format!("/v1/integration/{ID}/config/versions/1/restore"), json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["integration"]["configVersion"], 4);
    assert_eq!(r.body["integration"]["config"], config());
    assert_error(
        &app.post(&format!("/v1/integration/{ID}/config/versions/9/restore"), json!({})).await,
        404,
        "not_found",
    );
    // Audited, with the diff.
    let audits = app.audit("resources=integration&limit=50").await;
    assert!(audits.len() >= 5, "{audits:?}");
    assert!(audits.iter().any(|a| a["action"] == "CREATE"), "{audits:?}");
    // A config change is in the event log too.
    let changes = app.logs("event=config_changed").await;
    assert_eq!(changes.len(), 3, "{changes:?}");
    // Delete.
    assert_eq!(app.delete(&format!("/v1/integration/{ID}")).await.status, StatusCode::OK);
    assert_error(&app.get(&format!("/v1/integration/{ID}")).await, 404, "not_found");
}

#[tokio::test]
async fn the_event_log_has_rejected_writes_deletions_and_resync_counts() {
    let Some(app) = TestApp::spawn().await else { return };
    app.integration_setup().await;
    app.resync_state("running").await;
    for (id, size) in [("a", 1), ("b", 2), ("c", 3)] {
        assert!(app.upsert(id, size).await.status.is_success());
    }
    let r = app.upsert("huge", 1000).await;
    assert_error(&r, 422, "invalid_request");
    let r = app
        .ocean(
            "POST",
            "/v1/blueprints/thing/entities/bulk?upsert=true",
            Some(json!({"entities": [
            {"identifier": "d", "properties": {"size": 4}}, {"identifier": "bad", "properties": {"size": "x"}}]})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 207, "{}", r.body);
    let r = app.ocean("DELETE", "/v1/blueprints/thing/entities/c?delete_dependents=true", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    app.resync_state("completed").await;

    let rejected = app.logs("event=entity_rejected").await;
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    let huge = rejected.iter().find(|l| l["extra"]["identifier"] == "huge").expect("huge rejected");
    assert_eq!(huge["level"], "ERROR");
    assert_eq!(huge["extra"]["blueprint"], "thing");
    assert!(huge["message"].as_str().unwrap().contains("properties.size"), "the reason: {huge}");
    assert!(rejected.iter().any(|l| l["extra"]["identifier"] == "bad"));
    let deleted = app.logs("event=entity_deleted").await;
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0]["extra"], json!({"blueprint": "thing", "identifier": "c"}));
    let started = app.logs("event=resync_started").await;
    assert_eq!(started.len(), 1);
    let resync = started[0]["resyncId"].as_str().unwrap().to_string();
    let finished = app.logs("event=resync_finished").await;
    assert_eq!(finished.len(), 1);
    let counts = &finished[0]["extra"];
    assert_eq!(counts["status"], "completed");
    assert_eq!(counts["written"], 3, "a, b, d (c was deleted): {counts}");
    assert_eq!(counts["rejected"], 2, "{counts}");
    assert_eq!(counts["deleted"], 1, "{counts}");
    assert_eq!(counts["entities"], 3, "{counts}");
    assert_eq!(counts["entitiesAtStart"], 0, "{counts}");
    // Writes by others are not the integration's.
    assert_error(
        &app.post("/v1/blueprints/thing/entities", json!({"identifier": "x", "properties": {"size": 999}})).await,
        422,
        "invalid_request",
    );
    assert_eq!(app.logs("event=entity_rejected").await.len(), 2);

    // Filters: level, eventId (the resync), limit and the log_id cursor in both directions.
    let errors = app.logs("level=ERROR").await;
    assert!(errors.iter().all(|l| l["level"] == "ERROR") && errors.len() == 2, "{errors:?}");
    let of_resync = app.logs(&format!("eventId={resync}")).await;
    assert_eq!(of_resync.len(), 5, "start, 2 rejected, 1 deleted, end: {of_resync:?}");
    let all = app.logs("").await;
    let page = app.logs("limit=2").await;
    assert_eq!(page, all[..2].to_vec());
    let older = app.logs(&format!("limit=2&direction=up&log_id={}", page[1]["id"].as_str().unwrap())).await;
    assert_eq!(older, all[2..4].to_vec());
    let newer = app.logs(&format!("direction=down&log_id={}", all[2]["id"].as_str().unwrap())).await;
    assert_eq!(newer, vec![all[1].clone(), all[0].clone()], "oldest first");
    assert_invalid(&app.get(&format!("/v1/integration/{ID}/logs?limit=301")).await, "limit");
    assert_invalid(&app.get(&format!("/v1/integration/{ID}/logs?level=LOUD")).await, "level");
    assert_invalid(&app.get(&format!("/v1/integration/{ID}/logs?direction=sideways")).await, "direction");
}

/// Seed `n` entities through a first resync of the integration.
async fn seed(app: &TestApp, n: usize) -> Vec<String> {
    app.integration_setup().await;
    app.resync_state("running").await;
    let ids: Vec<String> = (0..n).map(|i| format!("t{i:02}")).collect();
    for id in &ids {
        assert!(app.upsert(id, 1).await.status.is_success());
    }
    app.resync_state("completed").await;
    ids
}

#[tokio::test]
async fn a_source_answering_nothing_cannot_wipe_the_catalog() {
    let Some(app) = TestApp::spawn().await else { return };
    let ids = seed(&app, 20).await;
    // The source answers {}: Ocean upserts nothing and deletes every entity it knows, at once.
    app.resync_state("running").await;
    let results = app.delete_all_concurrently(&ids).await;
    for r in &results {
        assert_error(r, 409, "mass_deletion_refused");
    }
    assert!(results[0].body["message"].as_str().unwrap().contains("confirm-deletions"));
    // Bulk deletion (the latest Ocean) is refused too.
    let r = app.ocean("POST", "/v1/blueprints/thing/bulk/entities/delete", Some(json!({"entities": ids[..3]}))).await;
    assert_error(&r, 409, "mass_deletion_refused");
    app.resync_state("completed").await;
    assert_eq!(app.count("thing").await, 20, "nothing was deleted");
    let refused = app.logs("event=deletion_refused").await;
    assert_eq!(refused.len(), 21);
    assert_eq!(refused[0]["level"], "ERROR");
    let finished = app.logs("event=resync_finished&limit=1").await;
    assert_eq!(finished[0]["extra"]["deletionsRefused"], 23, "{}", finished[0]);
    assert_eq!(finished[0]["extra"]["deleted"], 0);

    // A normal resync still deletes: 16 kept, 4 gone (under the minimum of 10).
    app.resync_state("running").await;
    for id in &ids[..16] {
        assert!(app.upsert(id, 2).await.status.is_success());
    }
    for r in app.delete_all_concurrently(&ids[16..]).await {
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    app.resync_state("completed").await;
    assert_eq!(app.count("thing").await, 16);

    // An admin confirms; the next resync may delete everything.
    let r = app.post(&format!("/v1/integration/{ID}/confirm-deletions"), json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["confirmed"], "next");
    app.resync_state("running").await;
    for r in app.delete_all_concurrently(&ids[..16]).await {
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    app.resync_state("completed").await;
    assert_eq!(app.count("thing").await, 0);
    assert_eq!(app.logs("event=deletion_confirmed").await.len(), 1);
    assert_error(&app.post("/v1/integration/nope/confirm-deletions", json!({})).await, 404, "not_found");
}

#[tokio::test]
async fn the_guard_counts_deletions_and_can_be_confirmed_mid_resync_and_configured() {
    let Some(app) = TestApp::spawn().await else { return };
    let ids = seed(&app, 30).await;
    // Half the source is kept; the other half goes one at a time: 15 of 30 is allowed (50%).
    app.resync_state("running").await;
    for id in &ids[..15] {
        assert!(app.upsert(id, 2).await.status.is_success());
    }
    for id in &ids[15..] {
        let r = app.ocean("DELETE", &format!("/v1/blueprints/thing/entities/{id}"), None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    app.resync_state("completed").await;
    // Next resync keeps 1 of 15: 14 > 10 and > 7.5 would go — refused at once.
    app.resync_state("running").await;
    assert!(app.upsert(&ids[0], 3).await.status.is_success());
    let r = app.ocean("DELETE", &format!("/v1/blueprints/thing/entities/{}", ids[1]), None).await;
    assert_error(&r, 409, "mass_deletion_refused");
    // Confirmed while the resync runs: the rest of it may delete.
    let r = app.post(&format!("/v1/integration/{ID}/confirm-deletions"), json!({})).await;
    assert_eq!(r.body["confirmed"], "running", "{}", r.body);
    for id in &ids[1..15] {
        let r = app.ocean("DELETE", &format!("/v1/blueprints/thing/entities/{id}"), None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    app.resync_state("completed").await;
    assert_eq!(app.count("thing").await, 1);
    // The next resync is guarded again; a stricter guard per integration.
    let r =
        app.patch(&format!("/v1/integration/{ID}"), json!({"deletionGuard": {"maxShare": 0.0, "minCount": 0}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_invalid(
        &app.patch(&format!("/v1/integration/{ID}"), json!({"deletionGuard": {"maxShare": 2}})).await,
        "deletionGuard.maxShare",
    );
    app.resync_state("running").await;
    let r = app.ocean("DELETE", &format!("/v1/blueprints/thing/entities/{}", ids[0]), None).await;
    assert_error(&r, 409, "mass_deletion_refused");
    app.resync_state("completed").await;
    // Deletions outside a resync, and by other clients, are not guarded.
    let r = app.delete(&format!("/v1/blueprints/thing/entities/{}", ids[0])).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn datasource_entities_are_paged_by_prefix_suffix_and_time() {
    let Some(app) = TestApp::spawn().await else { return };
    app.integration_setup().await;
    for i in 0..5 {
        assert!(app.upsert(&format!("mine{i}"), 1).await.status.is_success());
    }
    let other = [("user-agent", "port-ocean/fixture/0.1.0/other-int/exporter"), ("content-type", "application/json")];
    let body = json!({"identifier": "theirs", "properties": {"size": 1}}).to_string().into_bytes();
    assert!(app.raw("POST", "/v1/blueprints/thing/entities", &other, Some(body)).await.status.is_success());
    let path = "/v1/blueprints/entities/datasource-entities";
    let q =
        json!({"datasource_prefix": "port-ocean/fixture/", "datasource_suffix": format!("/{ID}/exporter"), "limit": 2});
    let mut seen = Vec::new();
    let mut body = q.clone();
    loop {
        let r = app.ocean("POST", path, Some(body.clone())).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        for e in r.body["entities"].as_array().unwrap() {
            seen.push(e["identifier"].as_str().unwrap().to_string());
            assert_eq!(e["blueprint"], "thing");
        }
        match r.body["next"].as_str() {
            Some(n) => body["from"] = json!(n),
            None => break,
        }
    }
    seen.sort();
    assert_eq!(seen, vec!["mine0", "mine1", "mine2", "mine3", "mine4"]);
    let mut before = q.clone();
    before["before"] = json!("2000-01-01T00:00:00+00:00");
    let r = app.ocean("POST", path, Some(before)).await;
    assert_eq!(r.body["entities"], json!([]), "{}", r.body);
    assert_invalid(&app.ocean("POST", path, Some(json!({"limit": 5}))).await, "datasource_prefix");
}
