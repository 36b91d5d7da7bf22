//! The route table: every route of the server, in one place. The same table generates the
//! OpenAPI document, so the two cannot drift apart.

use axum::Router;
use axum::routing::{delete, get, patch, post, put};
use serde_json::{Map, Value, json};

use crate::access::Access;
use crate::auth;
use crate::handlers::integration::{cursors, metrics};
use crate::handlers::{
    action, apps, audit, blueprint, entity, integration, jobs, organization, page, people, scorecard, search, webhook,
};
use crate::state::AppState;

macro_rules! routes {
    ($( $method:ident $path:literal => $handler:path, $tag:literal, $summary:literal, $access:ident; )*) => {
        /// The `/v1` API routes.
        pub fn api_routes() -> Router<AppState> {
            Router::new() $( .route($path, $method($handler)) )*
        }
        /// (method, path, tag, summary, access) of every API route: the OpenAPI document and
        /// the access decisions ([`crate::access`]) are made from it, so a route cannot be
        /// added without saying who may call it.
        pub const ROUTES: &[(&str, &str, &str, &str, Access)] =
            &[ $( (stringify!($method), $path, $tag, $summary, Access::$access), )* ];
    };
}

routes! {
    post "/v1/auth/access_token" => auth::access_token, "Auth", "Exchange client credentials for a bearer token", Public;
    // Credentials and web users (handlers/apps.rs): deleting or rotating revokes tokens at once.
    get "/v1/apps" => apps::list, "Credentials", "List the organization's API credentials (no secrets)", Admin;
    post "/v1/apps" => apps::create, "Credentials", "Create an API credential (its secret is shown once)", Admin;
    put "/v1/apps/{id}" => apps::rename, "Credentials", "Rename an API credential", Admin;
    post "/v1/apps/{id}/rotate-secret" => apps::rotate_secret, "Credentials", "New secret for a credential; tokens issued before stop working", Admin;
    delete "/v1/apps/{id}" => apps::delete, "Credentials", "Delete an API credential; its tokens stop working", Admin;
    delete "/v1/users/{email}" => apps::delete_user, "Users", "Remove a web user; their sessions end at once", Admin;
    // Users and teams (handlers/people.rs, ops/people.rs).
    post "/v1/rotate-credentials/{email}" => people::rotate_credentials, "Users", "A new personal credential acting as the user (admins, or the user); the old one stops working", AdminOrSelf;
    get "/v1/users" => people::list_users, "Users", "The organization's users with their roles and teams", Member;
    post "/v1/users/invite" => people::invite, "Users", "Invite a user (an invitation link, answered once) and put them in teams", Admin;
    get "/v1/users/{email}" => people::get_user, "Users", "A user by e-mail", Member;
    patch "/v1/users/{email}" => people::patch_user, "Users", "Change a user's role, names, status or teams (Disabled ends their sessions)", Admin;
    get "/v1/teams" => people::list_teams, "Teams", "Every team with its members", Member;
    post "/v1/teams" => people::create_team, "Teams", "Create a team", Admin;
    get "/v1/teams/{name}" => people::get_team, "Teams", "A team by name", Member;
    patch "/v1/teams/{name}" => people::patch_team, "Teams", "Change a team (a new name renames it in entities too; users replaces the members)", Admin;
    put "/v1/teams/{name}" => people::put_team, "Teams", "Replace a team", Admin;
    delete "/v1/teams/{name}" => people::delete_team, "Teams", "Delete a team; it leaves every entity's team", Admin;
    get "/v1/blueprints" => blueprint::list, "Blueprints", "List blueprints", Member;
    post "/v1/blueprints" => blueprint::create, "Blueprints", "Create a blueprint", Admin;
    get "/v1/blueprints/{id}" => blueprint::get, "Blueprints", "Get a blueprint", Member;
    get "/v1/blueprints/system/{id}/structure" => blueprint::system_structure, "Blueprints", "The structure Portolan gives a system blueprint (_user, _team) before any extension", Member;
    put "/v1/blueprints/{id}" => blueprint::put, "Blueprints", "Replace a blueprint", Moderator;
    patch "/v1/blueprints/{id}" => blueprint::patch, "Blueprints", "Change some fields of a blueprint", Moderator;
    delete "/v1/blueprints/{id}" => blueprint::delete, "Blueprints", "Delete a blueprint (it must have no entities)", Moderator;
    patch "/v1/blueprints/{id}/properties/{key}/rename" => blueprint::rename_property, "Blueprints", "Rename a property (entity values follow)", Moderator;
    patch "/v1/blueprints/{id}/mirror/{key}/rename" => blueprint::rename_mirror, "Blueprints", "Rename a mirror property", Moderator;
    patch "/v1/blueprints/{id}/relations/{key}/rename" => blueprint::rename_relation, "Blueprints", "Rename a relation (entity values follow)", Moderator;
    get "/v1/blueprints/{id}/permissions" => blueprint::get_permissions, "Blueprints", "Who may read, create, change and delete the blueprint's entities (Port's defaults when never set)", Member;
    patch "/v1/blueprints/{id}/permissions" => blueprint::patch_permissions, "Blueprints", "Change the blueprint's permissions (only the keys given)", Moderator;
    get "/v1/blueprints/{id}/entities" => entity::list, "Entities", "List the entities of a blueprint", Entities;
    post "/v1/blueprints/{id}/entities" => entity::create, "Entities", "Create, upsert or merge an entity", Entities;
    get "/v1/blueprints/{id}/entities/{entity}" => entity::get, "Entities", "Get an entity", Entities;
    put "/v1/blueprints/{id}/entities/{entity}" => entity::put, "Entities", "Replace an entity", Entities;
    patch "/v1/blueprints/{id}/entities/{entity}" => entity::patch, "Entities", "Change some fields of an entity", Entities;
    delete "/v1/blueprints/{id}/entities/{entity}" => entity::delete, "Entities", "Delete an entity", Entities;
    post "/v1/blueprints/{id}/entities/bulk" => entity::bulk_create, "Entities", "Create or upsert many entities (207 on partial failure)", Entities;
    post "/v1/blueprints/{id}/bulk/entities/delete" => entity::bulk_delete, "Entities", "Delete up to 100 entities", Entities;
    delete "/v1/blueprints/{id}/all-entities" => entity::delete_all, "Entities", "Delete every entity of a blueprint", Moderator;
    get "/v1/blueprints/{id}/entities-count" => entity::count, "Entities", "Count the entities of a blueprint", Entities;
    post "/v1/blueprints/{id}/entities/search" => search::search_blueprint, "Search", "Search one blueprint's entities, a page at a time", Entities;
    post "/v1/entities/search" => search::search_all, "Search", "Search entities of any blueprint", Entities;
    get "/v1/audit-log" => audit::list, "Audit", "Read the audit log (members: the log of one entity they may read, given entity and blueprint)", Entities;
    get "/v1/jobs" => jobs::list, "Jobs", "Background jobs of the organization, newest first (Portolan extension)", Admin;
    get "/v1/jobs/{id}" => jobs::get, "Jobs", "A background job: status, progress, attempts, node, lease, errors (Portolan extension)", Admin;
    // Integrations (Ocean): handlers/integration.rs and handlers/integration/.
    get "/v1/integration" => integration::list, "Integrations", "List integrations", Admin;
    post "/v1/integration" => integration::create, "Integrations", "Create an integration (Ocean does on first start)", Admin;
    get "/v1/integration/provision-enabled" => integration::provision_enabled, "Integrations", "Integration types the portal provisions itself (none)", Admin;
    get "/v1/integration/{id}" => integration::get, "Integrations", "Get an integration with its config (404 when missing)", Admin;
    patch "/v1/integration/{id}" => integration::patch, "Integrations", "Change fields of an integration; an empty body requests a resync", Admin;
    put "/v1/integration/{id}" => integration::put, "Integrations", "Replace an integration's fields", Admin;
    delete "/v1/integration/{id}" => integration::delete, "Integrations", "Delete an integration (its entities stay)", Admin;
    patch "/v1/integration/{id}/config" => integration::patch_config, "Integrations", "Replace an integration's config (mapping); the previous version is kept", Admin;
    get "/v1/integration/{id}/config/versions" => integration::config_versions, "Integrations", "Every version of an integration's config (Portolan extension)", Admin;
    post "/v1/integration/{id}/config/versions/{version}/restore" => integration::restore_config, "Integrations", "Make an earlier config version current (Portolan extension)", Admin;
    patch "/v1/integration/{id}/resync-state" => integration::resync_state, "Integrations", "Report a resync's state (running starts it, completed/failed ends it)", Admin;
    get "/v1/integration/{id}/resync-request" => integration::get_resync_request, "Integrations", "When a resync was last requested", Admin;
    post "/v1/integration/{id}/resync-request" => integration::post_resync_request, "Integrations", "Request a resync", Admin;
    post "/v1/integration/{id}/kinds/{kind}/examples" => integration::put_examples, "Integrations", "Store raw-data examples of a kind", Admin;
    patch "/v1/integration/{id}/kinds/{kind}/examples" => integration::put_examples, "Integrations", "Store raw-data examples of a kind", Admin;
    get "/v1/integration/{id}/kinds/{kind}/examples" => integration::get_examples, "Integrations", "Raw-data examples of a kind", Admin;
    post "/v1/integration/{id}/logs" => integration::ingest_logs, "Integrations", "Log ingest URL: lines Ocean ships (logAttributes.ingestUrl)", Admin;
    get "/v1/integration/{id}/logs" => integration::list_logs, "Integrations", "The integration's event log: Ocean's lines and what the server saw", Admin;
    post "/v1/integration/{id}/confirm-deletions" => integration::confirm_deletions, "Integrations", "Confirm deletions the mass-deletion guard refused (Portolan extension)", Admin;
    get "/v1/integration/{id}/cursor" => cursors::get_cursor, "Integrations", "The incremental sync cursor of a kind and index (latest Ocean; 404 when none)", Admin;
    put "/v1/integration/{id}/cursor" => cursors::put_cursor, "Integrations", "Replace an existing incremental sync cursor (404 when none: POST it)", Admin;
    post "/v1/integration/{id}/cursor" => cursors::post_cursor, "Integrations", "Create or replace an incremental sync cursor", Admin;
    post "/v1/integration/{id}/metrics/syncMetrics" => metrics::post_sync_metrics, "Integrations", "Metrics ingest URL (metricAttributes.ingestUrl): sync metrics, kept in the event log", Admin;
    put "/v1/integration/{id}/metrics/syncMetrics/resync/{eventId}/kind/{kind}" => metrics::put_kind_sync_metrics, "Integrations", "One kind's sync metrics of a resync, kept in the event log", Admin;
    post "/v1/integration/{id}/metrics/heartbeat" => metrics::heartbeat, "Integrations", "Ocean's heartbeat, kept in the event log", Admin;
    get "/v1/organization" => organization::get, "Organization", "The caller's organization and its settings", Member;
    patch "/v1/organization" => organization::patch, "Organization", "Change organization settings (e.g. portAgentStreamerName, which Port's agent sets)", Admin;
    get "/v1/organization/sso" => organization::get_sso, "Organization", "Single sign-on settings (OIDC; never the client secret), the redirect URI to register and the sign-in link (Portolan extension)", Admin;
    put "/v1/organization/sso" => organization::put_sso, "Organization", "Set single sign-on: the OIDC provider {issuer, clientId, clientSecret, scopes, groupsClaim} and whether passwords still sign in; checked against the provider's discovery document (Portolan extension)", Admin;
    get "/v1/organization/secrets" => organization::list_secrets, "Secrets", "List organization secrets (names and descriptions; values are never shown)", Admin;
    post "/v1/organization/secrets" => organization::create_secret, "Secrets", "Create a secret {secretName, secretValue, description}; usable as {{ .secrets.NAME }} in actions", Admin;
    get "/v1/organization/secrets/{name}" => organization::get_secret, "Secrets", "A secret's name and description", Admin;
    patch "/v1/organization/secrets/{name}" => organization::patch_secret, "Secrets", "Change a secret's value or description", Admin;
    delete "/v1/organization/secrets/{name}" => organization::delete_secret, "Secrets", "Delete a secret", Admin;
    post "/v1/blueprints/entities/datasource-entities" => integration::datasource_entities, "Entities", "Entities by $datasource prefix/suffix, a page at a time (Ocean)", Admin;
    // Webhooks: custom webhook integrations (handlers/webhook.rs, handlers/webhook/ingest.rs, jobs/webhook.rs).
    get "/v1/webhooks" => webhook::list, "Webhooks", "List custom webhook integrations", Admin;
    post "/v1/webhooks" => webhook::create, "Webhooks", "Create a webhook: the response has its webhookKey and ingest url", Admin;
    get "/v1/webhooks/{id}" => webhook::get, "Webhooks", "Get a webhook (its secret masked)", Admin;
    put "/v1/webhooks/{id}" => webhook::put, "Webhooks", "Replace a webhook", Admin;
    patch "/v1/webhooks/{id}" => webhook::patch, "Webhooks", "Change some fields of a webhook", Admin;
    delete "/v1/webhooks/{id}" => webhook::delete, "Webhooks", "Delete a webhook (its entities stay)", Admin;
    get "/v1/webhooks/{id}/logs" => webhook::list_logs, "Webhooks", "The webhook's event log: deliveries and what processing them did", Admin;
    get "/v1/actions" => action::list, "Actions", "List actions and automations (filters: action_identifier, blueprint_identifier, trigger_type, published)", Member;
    post "/v1/actions" => action::create, "Actions", "Create an action or automation", Admin;
    get "/v1/actions/runs" => action::list_runs, "Action runs", "List runs, newest first (filters: action_identifier, entity, blueprint, external_run_id, active, limit, before)", Member;
    post "/v1/actions/runs/claim-pending" => action::claim_pending, "Action runs", "Execution agent: claim runs waiting for it (each held for a lease)", Admin;
    patch "/v1/actions/runs/ack" => action::ack, "Action runs", "Execution agent: acknowledge claimed runs {runIds} → {ackedCount}", Admin;
    get "/v1/actions/runs/{run_id}" => action::get_run, "Action runs", "A run: status, payload, response, link, summary and the trace of calls made", Member;
    patch "/v1/actions/runs/{run_id}" => action::patch_run, "Action runs", "Report on a run: status, statusLabel, link, summary, externalRunId", Admin;
    patch "/v1/actions/runs/{run_id}/approval" => action::approve, "Action runs", "Approve or decline a run waiting for approval {status: APPROVE | DECLINE, description}", Member;
    get "/v1/actions/runs/{run_id}/approvers" => action::approvers, "Action runs", "Who decided on a run's approval (and, with include_pending_approvers=true, who has not yet)", Member;
    patch "/v1/actions/runs/{run_id}/response" => action::patch_response, "Action runs", "Keep the backend's response on a run", Admin;
    post "/v1/actions/runs/{run_id}/logs" => action::add_log, "Action runs", "Add a log line; terminationStatus ends the run for good", Admin;
    get "/v1/actions/runs/{run_id}/logs" => action::list_logs, "Action runs", "A run's log lines, oldest first", Member;
    get "/v1/actions/runs/{run_id}/entities" => action::run_entities, "Action runs", "Entities written with ?run_id= while the run was in progress (Portolan extension)", Member;
    get "/v1/actions/{id}" => action::get, "Actions", "Get an action", Member;
    put "/v1/actions/{id}" => action::put, "Actions", "Replace an action", Admin;
    delete "/v1/actions/{id}" => action::delete, "Actions", "Delete an action (its runs stay)", Admin;
    get "/v1/actions/{id}/permissions" => action::get_permissions, "Actions", "Who may run the action and approve its runs (the defaults when never set)", Member;
    patch "/v1/actions/{id}/permissions" => action::patch_permissions, "Actions", "Change who may run the action and approve its runs (only the keys given)", Admin;
    post "/v1/actions/{id}/runs" => action::create_run, "Actions", "Run a self-service action {properties, entity}: 202 once the run and its invocation are stored", Member;
    post "/v1/workflows/runs/claim-pending" => action::claim_workflow_runs, "Action runs", "Execution agent: workflow node runs to claim (Portolan has none)", Admin;
    post "/v1/ingest/{webhookKey}" => webhook::ingest, "Webhooks", "Ingest URL of a webhook: no bearer token (the key is the credential); 202 once stored", Public;
    // Scorecards (handlers/scorecard.rs, ops/scorecard.rs, jobs/scorecard.rs).
    get "/v1/scorecards" => scorecard::list_all, "Scorecards", "Every scorecard of the organization", Member;
    get "/v1/blueprints/{id}/changelog" => blueprint::changelog, "Blueprints", "The blueprint's changelog destination: changes waiting for delivery and the failing ones (Portolan extension)", Member;
    get "/v1/blueprints/{id}/scorecards" => scorecard::list, "Scorecards", "The scorecards of a blueprint", Member;
    put "/v1/blueprints/{id}/scorecards" => scorecard::replace_all, "Scorecards", "Replace all of a blueprint's scorecards (those not given are deleted), in one transaction", Moderator;
    post "/v1/blueprints/{id}/scorecards" => scorecard::create, "Scorecards", "Create a scorecard; results are computed in the background (a scorecard_recompute job)", Moderator;
    get "/v1/blueprints/{id}/scorecards/{scorecard}" => scorecard::get, "Scorecards", "Get a scorecard", Member;
    put "/v1/blueprints/{id}/scorecards/{scorecard}" => scorecard::put, "Scorecards", "Replace a scorecard; results are recomputed in the background", Moderator;
    delete "/v1/blueprints/{id}/scorecards/{scorecard}" => scorecard::delete, "Scorecards", "Delete a scorecard with its results and level history", Moderator;
    get "/v1/blueprints/{id}/entities/{entity}/scorecards/{scorecard}/history" => scorecard::history, "Scorecards", "An entity's level changes in a scorecard, oldest first (Portolan extension)", Entities;
    get "/v1/pages" => page::list, "Pages", "List pages: catalog pages, dashboards, the home page, folders", Member;
    post "/v1/pages" => page::create, "Pages", "Create a page (widgets get ids when they have none)", Admin;
    get "/v1/pages/{id}" => page::get, "Pages", "Get a page with its widgets", Member;
    put "/v1/pages/{id}" => page::put, "Pages", "Replace a page (admins, and whom its update permission names)", Pages;
    delete "/v1/pages/{id}" => page::delete, "Pages", "Delete a page", Admin;
    get "/v1/pages/{id}/permissions" => page::get_permissions, "Pages", "Who may see and change the page (the defaults when never set)", Admin;
    patch "/v1/pages/{id}/permissions" => page::patch_permissions, "Pages", "Change who may see and change the page (only the keys given)", Admin;
    patch "/v1/pages/{id}/widgets/{widget}" => page::patch_widget, "Pages", "Change fields of one widget of a page (admins, and whom its update permission names)", Pages;
    delete "/v1/pages/{id}/widgets/{widget}" => page::delete_widget, "Pages", "Remove one widget from a page (admins, and whom its update permission names)", Pages;
}

/// The OpenAPI 3.1 document of [`ROUTES`].
pub fn openapi() -> Value {
    let mut paths = Map::new();
    for (method, path, tag, summary, _) in ROUTES {
        let params: Vec<Value> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let mut op = json!({
            "tags": [tag],
            "summary": summary,
            "operationId": format!("{method}_{}", path.trim_start_matches("/v1/").replace(['/', '{', '}'], "_")),
            "parameters": params,
            "responses": {
                "200": {"description": "`{ok: true, …}`"},
                "4XX": {"description": "`{ok: false, error, message}`", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            }
        });
        if matches!(*method, "post" | "put" | "patch") {
            op["requestBody"] = json!({"content": {"application/json": {"schema": {"type": "object"}}}});
        }
        // Webhooks: the ingest URL is authenticated by its key (and signature), not a bearer token.
        if *path != "/v1/auth/access_token" && !path.starts_with(webhook::INGEST_PATH) {
            op["security"] = json!([{"bearer": []}]);
        }
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        entry[*method] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Portolan API", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Port's REST API, self-hosted. Errors are always `{ok: false, error, message}`."},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": {"type": "object", "required": ["ok", "error"], "properties": {
                "ok": {"type": "boolean", "const": false}, "error": {"type": "string"}, "message": {"type": "string"}}}}
        }
    })
}
