//! Roles and permissions (port-api.md §8.1–8.3): the permission matrix generated from the route
//! table, personal credentials, moderators, and blueprint permissions deciding entity writes
//! and reads on every read path (get, list, count, search, bulk).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, assert_invalid, fetch_token, ids, person};

/// A concrete path for a route template: `{id}` is the blueprint `scratch`, `{email}` a user
/// none of the callers is; other parameters name nothing.
fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|seg| match seg {
            "{id}" => "scratch",
            "{email}" => "target@example.com",
            "{version}" => "1",
            s if s.starts_with('{') => "nope",
            s => s,
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Every route of the route table, called by each kind of caller: what the table declares is
/// what happens. Refusals are 403 with Port's envelope and say which role it takes; a caller a
/// route admits is never refused by it (entity routes may refuse one entity, saying which
/// permission); a disabled user's credential is refused everywhere; another organization's
/// credential never reads organization A's blueprint or users.
#[tokio::test]
async fn every_route_decides_its_callers_as_the_route_table_says() {
    use portolan_server::access::Access;
    let Some(app) = TestApp::spawn().await else { return };
    app.blueprint(json!({"identifier": "scratch", "title": "Scratch"})).await;
    app.web_user("usr_target", "target@example.com", "member").await;
    let admin = person(&app, "usr_ad", "admin@example.com", json!(["Admin"]), json!([])).await;
    let member = person(&app, "usr_me", "member@example.com", json!(["Member"]), json!([])).await;
    let moderator = person(&app, "usr_mo", "mod@example.com", json!(["Member", "scratch-moderator"]), json!([])).await;
    let disabled = person(&app, "usr_di", "gone@example.com", json!(["Admin"]), json!([])).await;
    let r = app.patch("/v1/users/gone@example.com", json!({"status": "Disabled"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let other = app.other_org_token("org-other").await;

    let mut checked = 0;
    for (method, template, _, _, access) in portolan_server::router::ROUTES {
        let path = concrete(template);
        let body = matches!(*method, "post" | "put" | "patch").then(|| json!({}));
        let call = |token: String| {
            let (path, body) = (path.clone(), body.clone());
            let app = &app;
            async move { app.req_as(&token, &method.to_uppercase(), &path, body).await }
        };
        let what = format!("{method} {template}");
        let public = *access == Access::Public;
        // Refused callers first (they must change nothing), admitted ones last.
        let r = call(disabled.clone()).await;
        if !public {
            assert_error(&r, 401, "unauthorized");
            assert!(r.body["message"].as_str().unwrap().contains("disabled"), "{what}: {}", r.body);
        }
        let member_refused = matches!(access, Access::Admin | Access::Moderator | Access::AdminOrSelf);
        let r = call(member.clone()).await;
        if member_refused {
            assert_error(&r, 403, "forbidden");
            assert!(r.body["message"].as_str().unwrap().contains("member@example.com"), "{what}: {}", r.body);
        } else if r.status == StatusCode::FORBIDDEN {
            // Only an entity's permissions may refuse a member on a route that admits members.
            let msg = r.body["message"].as_str().unwrap_or_default();
            assert!(
                matches!(access, Access::Entities | Access::Pages) && msg.contains("permissions"),
                "{what} refused a member: {}",
                r.body
            );
        }
        let r = call(moderator.clone()).await;
        if matches!(access, Access::Admin | Access::AdminOrSelf) {
            assert_error(&r, 403, "forbidden");
        } else if *template == "/v1/audit-log" {
            // Non-admins (moderators too) read one entity's log at a time: asked for all, the
            // refusal says what to give.
            assert_error(&r, 403, "forbidden");
            assert!(r.body["message"].as_str().unwrap().contains("give entity and blueprint"), "{}", r.body);
        } else {
            assert_ne!(r.status, StatusCode::FORBIDDEN, "{what} refused the blueprint's moderator: {}", r.body);
        }
        if template.starts_with("/v1/blueprints/{id}") || template.starts_with("/v1/users/{email}") {
            let r = call(other.clone()).await;
            assert!(!r.status.is_success(), "{what}: another organization reached organization A's data: {}", r.body);
        }
        for (who, token) in [("an Admin user", admin.clone()), ("the organization credential", app.token.clone())] {
            let r = call(token).await;
            assert!(
                r.status != StatusCode::FORBIDDEN && r.status != StatusCode::UNAUTHORIZED,
                "{what} refused {who}: {} {}",
                r.status,
                r.body
            );
        }
        checked += 1;
    }
    assert_eq!(checked, portolan_server::router::ROUTES.len());
    // The table itself: what members may change is a short, deliberate list.
    let member_writes: Vec<String> = portolan_server::router::ROUTES
        .iter()
        .filter(|r| r.0 != "get" && r.4 == Access::Member)
        .map(|r| format!("{} {}", r.0, r.1))
        .collect();
    // Running an action (its execute permission decides) and deciding on a run's approval (its
    // approve permission decides, tests/api/approvals.rs).
    assert_eq!(
        member_writes,
        ["patch /v1/actions/runs/{run_id}/approval", "post /v1/actions/{id}/runs"],
        "routes that let any member change something"
    );
}

/// Personal credentials act as their user: rotating replaces the old one, the audit log names
/// the user, a member rotates only their own, and disabling or removing the user revokes it.
#[tokio::test]
async fn personal_credentials_act_as_their_user_and_are_revoked_with_it() {
    let Some(app) = TestApp::spawn().await else { return };
    app.model().await;
    app.web_user("usr_a", "a@example.com", "admin").await; // so that m is not the last admin
    let first = person(&app, "usr_m", "m@example.com", json!(["Member"]), json!([])).await;
    assert_eq!(app.req_as(&first, "GET", "/v1/blueprints", None).await.status, StatusCode::OK);
    // The user rotates their own credential: the first one stops working at once.
    let r = app.req_as(&first, "POST", "/v1/rotate-credentials/M@example.com", Some(json!({}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let c = &r.body["credentials"];
    let second =
        fetch_token(&app.http, &app.base, c["clientId"].as_str().unwrap(), c["clientSecret"].as_str().unwrap()).await;
    assert_error(&app.req_as(&first, "GET", "/v1/blueprints", None).await, 401, "unauthorized");
    // Not another user's, and personal credentials are not the organization's apps.
    app.web_user("usr_o", "o@example.com", "member").await;
    let r = app.req_as(&second, "POST", "/v1/rotate-credentials/o@example.com", Some(json!({}))).await;
    assert_error(&r, 403, "forbidden");
    let apps = app.get("/v1/apps").await;
    assert!(!apps.body.to_string().contains(c["clientId"].as_str().unwrap()), "{}", apps.body);
    assert_error(&app.post("/v1/rotate-credentials/ghost@example.com", json!({})).await, 404, "not_found");
    // A member's credential reads, and may not change the model.
    let r = app.req_as(&second, "POST", "/v1/blueprints", Some(json!({"identifier": "x", "title": "X"}))).await;
    assert_error(&r, 403, "forbidden");
    assert!(r.body["message"].as_str().unwrap().contains("it takes the Admin role"), "{}", r.body);
    // Made admin, the same credential writes, and the audit log names the user.
    let r = app.patch("/v1/users/m@example.com", json!({"roles": ["Admin"]})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = app.req_as(&second, "POST", "/v1/blueprints", Some(json!({"identifier": "x", "title": "X"}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let recs = app.audit("identifier=x&resources=blueprint").await;
    assert_eq!(recs[0]["trigger"]["by"]["userId"], json!("m@example.com"), "{}", recs[0]);
    let creds = app.audit("resources=credential").await;
    assert_eq!(creds.len(), 2, "each rotation is audited: {creds:?}");
    assert_eq!(creds[0]["identifier"], json!("m@example.com"));
    // The organization's own credentials too.
    let r = app.post("/v1/apps", json!({"name": "ci"})).await;
    let app_id = r.body["app"]["id"].as_str().unwrap().to_string();
    app.post(&format!("/v1/apps/{app_id}/rotate-secret"), json!({})).await;
    app.delete(&format!("/v1/apps/{app_id}")).await;
    let recs = app.audit(&format!("identifier={app_id}&resources=credential")).await;
    let actions: Vec<&str> = recs.iter().map(|r| r["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["DELETE", "UPDATE", "CREATE"]);
    // Disabled: refused at once, saying why; active again: works again.
    assert_eq!(app.patch("/v1/users/m@example.com", json!({"status": "Disabled"})).await.status, StatusCode::OK);
    let r = app.req_as(&second, "GET", "/v1/blueprints", None).await;
    assert_error(&r, 401, "unauthorized");
    assert!(r.body["message"].as_str().unwrap().contains("disabled"), "{}", r.body);
    assert_error(&app.post("/v1/rotate-credentials/m@example.com", json!({})).await, 409, "conflict");
    assert_eq!(app.patch("/v1/users/m@example.com", json!({"status": "Active"})).await.status, StatusCode::OK);
    assert_eq!(app.req_as(&second, "GET", "/v1/blueprints", None).await.status, StatusCode::OK);
    // Removed: its credential goes with it.
    assert_eq!(app.delete("/v1/users/m@example.com").await.status, StatusCode::OK);
    assert_error(&app.req_as(&second, "GET", "/v1/blueprints", None).await, 401, "unauthorized");
}

fn svc(id: &str, team: &[&str], lang: &str) -> Value {
    json!({"identifier": id, "team": team, "properties": {"language": lang}})
}

/// Blueprint permissions decide entity writes: the defaults let members read only; `register`
/// by user, `update` by `ownedByTeam` (on the stored entity's team), per-property grants,
/// `unregister`; moderators do everything on their blueprint and nothing more; refusals say
/// which permission and are per item in bulk writes; bad documents name the field.
#[tokio::test]
async fn blueprint_permissions_decide_entity_writes() {
    let Some(app) = TestApp::spawn().await else { return };
    app.model().await;
    app.teams(&["ops", "dev"]).await;
    let ops = person(&app, "usr_1", "ops@example.com", json!(["Member"]), json!(["ops"])).await;
    let modr = person(&app, "usr_2", "mod@example.com", json!(["service-moderator"]), json!([])).await;
    app.entity("service", svc("s-ops", &["ops"], "go")).await;
    app.entity("service", svc("s-dev", &["dev"], "go")).await;

    let r = app.get("/v1/blueprints/service/permissions").await;
    assert_eq!(r.body["permissions"]["entities"]["register"]["roles"], json!(["Admin", "service-moderator"]));
    assert_eq!(r.body["permissions"]["entities"]["read"]["roles"], json!(["Admin", "Member", "service-moderator"]));
    let post = |token: &str, body: Value| {
        let token = token.to_string();
        let app = &app;
        async move { app.req_as(&token, "POST", "/v1/blueprints/service/entities", Some(body)).await }
    };
    let r = post(&ops, svc("new", &["ops"], "go")).await;
    assert_error(&r, 403, "forbidden");
    assert!(r.body["message"].as_str().unwrap().contains("entities.register"), "{}", r.body);

    // Bad documents: each error names its field; nothing changes.
    let bad = json!({"entities": {"register": {"roles": ["Owner"], "teams": ["ghost"]},
                                  "updateProperties": {"nope": {"roles": ["Member"]}}}});
    let r = app.patch("/v1/blueprints/service/permissions", bad).await;
    assert_invalid(&r, "entities.register.roles[0]");
    let r =
        app.patch("/v1/blueprints/service/permissions", json!({"entities": {"register": {"teams": ["ghost"]}}})).await;
    assert_invalid(&r, "entities.register.teams[0]");
    let r =
        app.patch("/v1/blueprints/service/permissions", json!({"entities": {"updateProperties": {"nope": {}}}})).await;
    assert_invalid(&r, "entities.updateProperties.nope");
    // Members may not change permissions; the blueprint's moderator may.
    let grant = json!({"entities": {"register": {"users": ["ops@example.com"]},
                                    "update": {"roles": [], "ownedByTeam": true},
                                    "unregister": {"roles": [], "ownedByTeam": true},
                                    "updateProperties": {"cpu": {"roles": ["Member"]}}}});
    let r = app.req_as(&ops, "PATCH", "/v1/blueprints/service/permissions", Some(grant.clone())).await;
    assert_error(&r, 403, "forbidden");
    let r = app.req_as(&modr, "PATCH", "/v1/blueprints/service/permissions", Some(grant)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["permissions"]["entities"]["read"]["roles"], json!(["Admin", "Member", "service-moderator"]));
    let recs = app.audit("identifier=service&resources=blueprint").await;
    assert!(recs[0]["diff"]["after"]["permissions"].is_object(), "audited: {}", recs[0]);

    // register by user; update by the stored entity's team; a field grant without update.
    assert_eq!(post(&ops, svc("new", &["ops"], "go")).await.status, StatusCode::CREATED);
    let patch = |id: &str, body: Value| {
        let (id, ops) = (id.to_string(), ops.clone());
        let app = &app;
        async move { app.req_as(&ops, "PATCH", &format!("/v1/blueprints/service/entities/{id}"), Some(body)).await }
    };
    assert_eq!(patch("s-ops", json!({"properties": {"language": "rust"}})).await.status, StatusCode::OK);
    let r = patch("s-dev", json!({"properties": {"language": "rust"}})).await;
    assert_error(&r, 403, "forbidden");
    assert!(r.body["message"].as_str().unwrap().contains("property \"language\""), "{}", r.body);
    assert_eq!(patch("s-dev", json!({"properties": {"cpu": 2}})).await.status, StatusCode::OK, "field grant");
    // Moving an entity out of one's team is an update of it; into one's team is not allowed.
    assert_error(&patch("s-dev", json!({"team": ["ops"]})).await, 403, "forbidden");
    // Bulk: per item.
    let r = app
        .req_as(
            &ops,
            "POST",
            "/v1/blueprints/service/entities/bulk?upsert=true&merge=true",
            Some(json!({"entities": [{"identifier": "s-ops", "properties": {"language": "python"}},
                                     {"identifier": "s-dev", "properties": {"language": "python"}}]})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 207, "{}", r.body);
    assert_eq!(r.body["errors"][0]["index"], 1, "{}", r.body);
    assert!(r.body["errors"][0]["message"].as_str().unwrap().contains("may not change"), "{}", r.body);
    // unregister by team; cascades take a moderator.
    let del = |id: &str| {
        let (id, ops) = (id.to_string(), ops.clone());
        let app = &app;
        async move { app.req_as(&ops, "DELETE", &format!("/v1/blueprints/service/entities/{id}"), None).await }
    };
    assert_error(&del("s-dev").await, 403, "forbidden");
    assert_eq!(del("s-ops").await.status, StatusCode::OK);
    let r = app.req_as(&ops, "DELETE", "/v1/blueprints/service/entities/new?delete_dependents=true", None).await;
    assert_error(&r, 403, "forbidden");
    // The moderator: everything on service, nothing on domain.
    let r = app.req_as(&modr, "DELETE", "/v1/blueprints/service/entities/s-dev", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = app.req_as(&modr, "PATCH", "/v1/blueprints/service", Some(json!({"title": "Services"}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = app.req_as(&modr, "POST", "/v1/blueprints/domain/entities", Some(json!({"identifier": "d1"}))).await;
    assert_error(&r, 403, "forbidden");
    assert_error(
        &app.req_as(&modr, "PATCH", "/v1/blueprints/domain", Some(json!({"title": "D"}))).await,
        403,
        "forbidden",
    );
    // Moderator roles name blueprints that exist.
    assert_invalid(&app.patch("/v1/users/mod@example.com", json!({"roles": ["ghost-moderator"]})).await, "roles");
    let u = app.get("/v1/users/mod@example.com").await;
    assert_eq!(u.body["user"]["roles"], json!([{"name": "Member"}, {"name": "service-moderator"}]), "{}", u.body);
}

/// A team-scoped `read` permission: a member sees only their teams' entities, in every read
/// (get, list, count, both searches) and nothing of a blueprint without read; admins all.
/// A property or relation with its own update grant is removed from the blueprint: the grant
/// goes with the next change of the permissions instead of making every change fail on its key.
#[tokio::test]
async fn grants_of_removed_properties_do_not_block_later_changes() {
    let Some(app) = TestApp::spawn().await else { return };
    app.model().await;
    let grant = json!({"entities": {"updateProperties": {"cpu": {"roles": ["Member"]}},
                                    "updateRelations": {"packages": {"roles": ["Member"]}}}});
    let r = app.patch("/v1/blueprints/service/permissions", grant).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let mut bp = app.get("/v1/blueprints/service").await.body["blueprint"].clone();
    bp["schema"]["properties"].as_object_mut().unwrap().remove("cpu");
    bp["relations"].as_object_mut().unwrap().remove("packages");
    let r = app.put("/v1/blueprints/service", bp).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = app.patch("/v1/blueprints/service/permissions", json!({"entities": {"read": {"roles": ["Admin"]}}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let e = &r.body["permissions"]["entities"];
    assert_eq!((e["updateProperties"].clone(), e["updateRelations"].clone()), (json!({}), json!({})), "{e}");
    assert_eq!(e["read"]["roles"], json!(["Admin"]));
    // A rename carries the grant to the new name.
    let grant = json!({"entities": {"updateProperties": {"public": {"teams": [], "roles": ["Member"]}},
                                    "updateRelations": {"domain": {"roles": ["Member"]}}}});
    assert_eq!(app.patch("/v1/blueprints/service/permissions", grant).await.status, StatusCode::OK);
    let r = app.patch("/v1/blueprints/service/properties/public/rename", json!({"newPropertyName": "open"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = app.patch("/v1/blueprints/service/relations/domain/rename", json!({"newRelationIdentifier": "area"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let e = app.get("/v1/blueprints/service/permissions").await.body["permissions"]["entities"].clone();
    assert_eq!(e["updateProperties"].as_object().unwrap().keys().collect::<Vec<_>>(), ["open"], "{e}");
    assert_eq!(e["updateRelations"].as_object().unwrap().keys().collect::<Vec<_>>(), ["area"], "{e}");
    assert_eq!(e["updateProperties"]["open"]["roles"], json!(["Member"]));
    // Naming a missing property in the change itself is still an error at its key.
    let r =
        app.patch("/v1/blueprints/service/permissions", json!({"entities": {"updateProperties": {"cpu": {}}}})).await;
    assert_invalid(&r, "entities.updateProperties.cpu");
}

#[tokio::test]
async fn read_permissions_filter_every_read() {
    let Some(app) = TestApp::spawn().await else { return };
    app.model().await;
    app.teams(&["ops", "dev"]).await;
    let ops = person(&app, "usr_1", "ops@example.com", json!(["Member"]), json!(["ops"])).await;
    for (id, team) in [("a", "ops"), ("b", "dev"), ("c", "ops")] {
        app.entity("service", svc(id, &[team], "go")).await;
    }
    app.entity("domain", json!({"identifier": "d1"})).await;
    let r = app
        .patch(
            "/v1/blueprints/service/permissions",
            json!({"entities": {"read": {"roles": ["Admin"], "ownedByTeam": true}}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = app.patch("/v1/blueprints/package/permissions", json!({"entities": {"read": {"roles": ["Admin"]}}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    app.entity("package", json!({"identifier": "p1"})).await;

    let get = |path: &str| {
        let (path, ops) = (path.to_string(), ops.clone());
        let app = &app;
        async move { app.req_as(&ops, "GET", &path, None).await }
    };
    assert_eq!(get("/v1/blueprints/service/entities/a").await.status, StatusCode::OK);
    assert_error(&get("/v1/blueprints/service/entities/b").await, 404, "not_found");
    assert_error(&get("/v1/blueprints/package/entities/p1").await, 404, "not_found");
    assert_eq!(ids(&get("/v1/blueprints/service/entities").await.body), ["a", "c"]);
    assert_eq!(get("/v1/blueprints/service/entities-count").await.body["count"], json!(2));
    assert_eq!(get("/v1/blueprints/package/entities-count").await.body["count"], json!(0));
    let search =
        json!({"query": {"combinator": "and", "rules": [{"property": "language", "operator": "=", "value": "go"}]}});
    let r = app.req_as(&ops, "POST", "/v1/blueprints/service/entities/search", Some(search)).await;
    assert_eq!(ids(&r.body), ["a", "c"], "{}", r.body);
    let all = json!({"combinator": "or", "rules": [
        {"property": "$blueprint", "operator": "=", "value": "service"},
        {"property": "$blueprint", "operator": "=", "value": "package"},
        {"property": "$blueprint", "operator": "=", "value": "domain"}]});
    let r = app.req_as(&ops, "POST", "/v1/entities/search", Some(all.clone())).await;
    assert_eq!(ids(&r.body), ["a", "c", "d1"], "{}", r.body);
    // Errors in the member's own query keep their paths.
    let bad = json!({"query": {"combinator": "and", "rules": [{"property": "ghost", "operator": "=", "value": 1}]}});
    let r = app.req_as(&ops, "POST", "/v1/blueprints/service/entities/search", Some(bad)).await;
    assert_invalid(&r, "query.rules[0].property");
    // The organization's credential and admins see everything.
    let r = app.post("/v1/entities/search", all).await;
    assert_eq!(ids(&r.body).len(), 5, "{}", r.body);

    // The audit log (Port's rule for non-admins): one entity they may read at a time, never a
    // deleted one; an entity they may not read is the same 404 as a missing one.
    let r = get("/v1/audit-log?blueprint=service&entity=a").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let recs = r.body["audits"].as_array().unwrap();
    assert!(!recs.is_empty() && recs.iter().all(|x| x["context"]["entity"] == json!("a")), "{}", r.body);
    assert_error(&get("/v1/audit-log?blueprint=service&entity=b").await, 404, "not_found");
    assert_error(&get("/v1/audit-log?blueprint=package&entity=p1").await, 404, "not_found");
    let r = get("/v1/audit-log").await;
    assert_error(&r, 403, "forbidden");
    assert!(r.body["message"].as_str().unwrap().contains("give entity and blueprint"), "{}", r.body);
    assert_invalid(&get("/v1/audit-log?blueprint=service&entity=a&resources=blueprint").await, "resources");
    let r = app.req("DELETE", "/v1/blueprints/service/entities/c", None).await;
    assert!(r.status.is_success(), "{}", r.body);
    assert_error(&get("/v1/audit-log?blueprint=service&entity=c").await, 404, "not_found");
    assert!(app.audit("blueprint=service&entity=c").await.len() >= 2, "admins still read a deleted entity's log");
}

/// Values an answer takes from related entities — mirror properties, relation titles — come
/// only from entities the reader may read: a domain a member may not read shows through none of
/// its services, in a single read or a search; admins see it all.
#[tokio::test]
async fn mirrors_and_relation_titles_hide_entities_the_reader_may_not_read() {
    let Some(app) = TestApp::spawn().await else { return };
    app.model().await;
    app.teams(&["ops"]).await;
    let ops = person(&app, "usr_1", "ops@example.com", json!(["Member"]), json!(["ops"])).await;
    app.entity("domain", json!({"identifier": "d1", "title": "Secret domain", "properties": {"owner": "alice"}})).await;
    app.entity(
        "service",
        json!({"identifier": "a", "team": ["ops"], "properties": {"language": "go"},
                                 "relations": {"domain": "d1"}}),
    )
    .await;
    let read = |token: String| {
        let app = &app;
        async move {
            let r = app
                .req_as(&token, "GET", "/v1/blueprints/service/entities/a?attach_title_to_relation=true", None)
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            (r.body["entity"]["properties"]["domainOwner"].clone(), r.body["entity"]["relations"]["domain"].clone())
        }
    };
    // Readable: the member sees the mirror and the title.
    let (owner, rel) = read(ops.clone()).await;
    assert_eq!((owner, rel["title"].clone()), (json!("alice"), json!("Secret domain")));
    let r = app.patch("/v1/blueprints/domain/permissions", json!({"entities": {"read": {"roles": ["Admin"]}}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let (owner, rel) = read(ops.clone()).await;
    assert_eq!(owner, json!(null), "the mirror shows an unreadable domain's owner");
    assert_eq!(rel, json!({"identifier": "d1", "title": null}), "the relation shows an unreadable domain's title");
    let q =
        json!({"query": {"combinator": "and", "rules": [{"property": "$identifier", "operator": "=", "value": "a"}]}});
    let r = app.req_as(&ops, "POST", "/v1/blueprints/service/entities/search", Some(q.clone())).await;
    assert_eq!(r.body["entities"][0]["properties"]["domainOwner"], json!(null), "{}", r.body);
    let (owner, rel) = read(app.token.clone()).await;
    assert_eq!((owner, rel["title"].clone()), (json!("alice"), json!("Secret domain")), "admins see everything");
}

/// Action permissions: every member runs an action by default; `execute` by team or by the
/// entity's team (`ownedByTeam`) narrows it, with a 403 naming the grant; only admins change
/// them; members see only their own runs (another's is a 404, as a missing one).
#[tokio::test]
async fn action_permissions_decide_who_runs_and_members_see_their_own_runs() {
    let Some(app) = TestApp::spawn().await else { return };
    app.model().await;
    app.teams(&["sre", "dev"]).await;
    let dev = person(&app, "usr_d", "dev@example.com", json!(["Member"]), json!(["dev"])).await;
    let sre = person(&app, "usr_s", "sre@example.com", json!(["Member"]), json!(["sre"])).await;
    app.entity("service", svc("svc-dev", &["dev"], "go")).await;
    app.entity("service", svc("svc-sre", &["sre"], "go")).await;
    let action = json!({"identifier": "restart", "title": "Restart",
        "trigger": {"type": "self-service", "operation": "DAY-2", "blueprintIdentifier": "service",
                    "userInputs": {"properties": {}}},
        "invocationMethod": {"type": "GITHUB", "org": "acme", "repo": "infra", "workflow": "restart.yml"}});
    assert_eq!(app.post("/v1/actions", action).await.status, StatusCode::CREATED);
    let run = |token: &str, entity: &str| {
        let (token, entity) = (token.to_string(), entity.to_string());
        let app = &app;
        async move {
            app.req_as(&token, "POST", "/v1/actions/restart/runs", Some(json!({"entity": entity, "properties": {}})))
                .await
        }
    };
    let r = app.get("/v1/actions/restart/permissions").await;
    assert_eq!(r.body["permissions"]["execute"]["roles"], json!(["Admin", "Member"]), "{}", r.body);
    let r = run(&dev, "svc-dev").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "defaults: members run it: {}", r.body);
    let dev_run = r.body["run"]["id"].as_str().unwrap().to_string();

    let grant = json!({"execute": {"roles": [], "teams": ["sre"], "ownedByTeam": true}});
    assert_error(
        &app.req_as(&dev, "PATCH", "/v1/actions/restart/permissions", Some(grant.clone())).await,
        403,
        "forbidden",
    );
    assert_invalid(
        &app.patch("/v1/actions/restart/permissions", json!({"approve": {"teams": ["ghost"]}})).await,
        "approve.teams[0]",
    );
    assert_invalid(
        &app.patch("/v1/actions/restart/permissions", json!({"execute": {"policy": {}}})).await,
        "execute.policy.queries",
    );
    assert_eq!(app.patch("/v1/actions/restart/permissions", grant).await.status, StatusCode::OK);
    // sre runs it on anything; dev only on the entities of its team.
    assert_eq!(run(&sre, "svc-dev").await.status, StatusCode::ACCEPTED);
    assert_eq!(run(&dev, "svc-dev").await.status, StatusCode::ACCEPTED, "ownedByTeam");
    let r = run(&dev, "svc-sre").await;
    assert_error(&r, 403, "forbidden");
    assert!(r.body["message"].as_str().unwrap().contains("execute"), "{}", r.body);
    assert_eq!(
        app.post("/v1/actions/restart/runs", json!({"entity": "svc-sre", "properties": {}})).await.status,
        StatusCode::ACCEPTED
    );

    // Runs: a member lists and reads their own only; admins all.
    let r = app.req_as(&dev, "GET", "/v1/actions/runs", None).await;
    let creators: Vec<&str> =
        r.body["runs"].as_array().unwrap().iter().map(|x| x["createdBy"].as_str().unwrap()).collect();
    assert_eq!(creators, ["dev@example.com", "dev@example.com"], "{}", r.body);
    assert_eq!(app.get("/v1/actions/runs").await.body["runs"].as_array().unwrap().len(), 4);
    assert_eq!(app.req_as(&dev, "GET", &format!("/v1/actions/runs/{dev_run}"), None).await.status, StatusCode::OK);
    let r = app.req_as(&sre, "GET", &format!("/v1/actions/runs/{dev_run}"), None).await;
    assert_error(&r, 404, "not_found");
    assert_error(&app.req_as(&sre, "GET", &format!("/v1/actions/runs/{dev_run}/logs"), None).await, 404, "not_found");
}

/// Contextual values (port-api.md §3.2): "My Teams" and `{context: "userTeams"}` are the
/// caller's teams, `{context: "user"}` its e-mail; an organization credential has neither and
/// is told so at the value's path.
#[tokio::test]
async fn my_teams_and_user_context_are_the_callers() {
    let Some(app) = TestApp::spawn().await else { return };
    app.model().await;
    app.teams(&["ops", "dev", "web"]).await;
    let ops = person(&app, "usr_1", "ops@example.com", json!(["Member"]), json!(["ops", "web"])).await;
    for (id, team) in [("a", "ops"), ("b", "dev"), ("c", "web")] {
        app.entity("service", svc(id, &[team], "go")).await;
    }
    let search = |token: &str, rules: Value| {
        let token = token.to_string();
        let app = &app;
        async move {
            let body = json!({"query": {"combinator": "and", "rules": rules}});
            app.req_as(&token, "POST", "/v1/blueprints/service/entities/search", Some(body)).await
        }
    };
    let r = search(&ops, json!([{"property": "$team", "operator": "in", "value": ["My Teams"]}])).await;
    assert_eq!(ids(&r.body), ["a", "c"], "{}", r.body);
    let r = search(&ops, json!([{"property": "$team", "operator": "=", "value": "My Teams"}])).await;
    assert_eq!(ids(&r.body), ["a", "c"], "{}", r.body);
    let r = search(
        &ops,
        json!([{"property": "$team", "operator": "containsAny", "value": {"context": "userTeams", "property": "$identifier"}}]),
    )
    .await;
    assert_eq!(ids(&r.body), ["a", "c"], "{}", r.body);
    let r = search(
        &ops,
        json!([{"property": "$updatedBy", "operator": "=", "value": {"context": "user", "property": "$identifier"}}]),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(ids(&r.body).is_empty(), "the services were written by the organization's credential: {}", r.body);
    let r = search(
        &ops,
        json!([{"property": "$team", "operator": "in", "value": {"context": "user", "property": "department"}}]),
    )
    .await;
    assert_invalid(&r, "query.rules[0].value");
    let r = search(&app.token, json!([{"property": "$team", "operator": "in", "value": ["My Teams"]}])).await;
    assert_invalid(&r, "query.rules[0].value");
    assert!(r.body["message"].as_str().unwrap().contains("personal credential"), "{}", r.body);
    let r = app
        .req_as(
            &ops,
            "POST",
            "/v1/entities/search",
            Some(json!({"combinator": "and", "rules": [
            {"property": "$blueprint", "operator": "=", "value": "service"},
            {"property": "$team", "operator": "in", "value": ["My Teams", "dev"]}]})),
        )
        .await;
    assert_eq!(ids(&r.body), ["a", "b", "c"], "{}", r.body);
}

/// Page permissions (§8.5): every member reads a page by default; a `read` grant by team hides
/// it from the others in the list and as a 404; only admins read and change the document, and
/// a grant naming no team is a 422 at its path.
#[tokio::test]
async fn page_read_permissions_hide_pages() {
    let Some(app) = TestApp::spawn().await else { return };
    app.teams(&["sre"]).await;
    let sre = person(&app, "usr_s", "sre@example.com", json!(["Member"]), json!(["sre"])).await;
    let dev = person(&app, "usr_d", "dev@example.com", json!(["Member"]), json!([])).await;
    for id in ["open", "oncall"] {
        let r = app.post("/v1/pages", json!({"identifier": id, "type": "dashboard", "title": id, "widgets": []})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
    let r = app.get("/v1/pages/oncall/permissions").await;
    assert_eq!(r.body["permissions"]["read"]["roles"], json!(["Admin", "Member"]), "{}", r.body);
    assert_error(&app.req_as(&sre, "GET", "/v1/pages/oncall/permissions", None).await, 403, "forbidden");
    assert_invalid(
        &app.patch("/v1/pages/oncall/permissions", json!({"read": {"teams": ["ghost"]}})).await,
        "read.teams[0]",
    );
    assert_invalid(
        &app.patch("/v1/pages/oncall/permissions", json!({"read": {"ownedByTeam": true}})).await,
        "read.ownedByTeam",
    );
    let r = app.patch("/v1/pages/oncall/permissions", json!({"read": {"roles": ["Admin"], "teams": ["sre"]}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let listed = |token: String| {
        let app = &app;
        async move {
            let r = app.req_as(&token, "GET", "/v1/pages", None).await;
            let mut ids: Vec<String> = r.body["pages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["identifier"].as_str().unwrap().to_string())
                .collect();
            ids.sort();
            ids
        }
    };
    assert_eq!(listed(sre.clone()).await, ["oncall", "open"]);
    assert_eq!(listed(dev.clone()).await, ["open"]);
    assert_eq!(listed(app.token.clone()).await, ["oncall", "open"]);
    assert_error(&app.req_as(&dev, "GET", "/v1/pages/oncall", None).await, 404, "not_found");
    assert_eq!(app.req_as(&sre, "GET", "/v1/pages/oncall", None).await.status, StatusCode::OK);
    let recs = app.audit("identifier=oncall&resources=page").await;
    assert!(recs[0]["diff"]["after"]["permissions"]["read"]["teams"] == json!(["sre"]), "{}", recs[0]);

    // `update` names who changes the page besides admins (Port §8.5): its fields and widgets.
    let page = json!({"identifier": "open", "type": "dashboard", "title": "Open",
                      "widgets": [{"id": "w1", "type": "markdown", "markdown": "hi"}]});
    let r = app.req_as(&sre, "PUT", "/v1/pages/open", Some(page.clone())).await;
    assert_error(&r, 403, "forbidden");
    assert!(r.body["message"].as_str().unwrap().contains("update permissions"), "{}", r.body);
    let r = app.patch("/v1/pages/open/permissions", json!({"update": {"roles": ["Admin"], "teams": ["sre"]}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = app.req_as(&sre, "PUT", "/v1/pages/open", Some(page)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = app.req_as(&sre, "PATCH", "/v1/pages/open/widgets/w1", Some(json!({"markdown": "hello"}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["page"]["widgets"][0]["markdown"], "hello");
    assert_error(&app.req_as(&dev, "DELETE", "/v1/pages/open/widgets/w1", None).await, 403, "forbidden");
    assert_eq!(app.req_as(&sre, "DELETE", "/v1/pages/open/widgets/w1", None).await.status, StatusCode::OK);
    // Deleting the page and changing its permissions stay with admins.
    assert_error(&app.req_as(&sre, "DELETE", "/v1/pages/open", None).await, 403, "forbidden");
    assert_error(
        &app.req_as(&sre, "PATCH", "/v1/pages/open/permissions", Some(json!({"read": {"roles": ["Admin"]}}))).await,
        403,
        "forbidden",
    );
    // A page the caller may not read is not found, whatever it would change.
    assert_error(
        &app.req_as(&dev, "PUT", "/v1/pages/oncall", Some(json!({"type": "dashboard"}))).await,
        404,
        "not_found",
    );
    let recs = app.audit("identifier=open&resources=page").await;
    assert_eq!(recs[0]["trigger"]["by"]["userId"], "sre@example.com", "{}", recs[0]);
}
