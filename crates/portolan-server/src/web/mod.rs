//! The web UI: server-rendered HTML (minijinja templates embedded in the binary, htmx vendored
//! and pinned by its SHA-256), local accounts with server-side sessions.
//!
//! Routes live under `/ui` (plus `/` → the catalog) in [`router`], merged into the app once in
//! `lib.rs::app`; they are not part of the API's route table (`router.rs`), which documents the
//! `/v1` wire API only. Every page carries a strict Content-Security-Policy (no inline script
//! or style), every state-changing request needs the session's CSRF token (the `_csrf` form
//! field or the `X-CSRF-Token` header htmx sends), and no page reads more than one page of
//! entities from the store.

mod actions;
mod audit;
mod auth;
mod builder;
mod catalog;
mod dashboards;
mod editor;
mod entity;
mod entity_form;
mod error;
mod export;
mod form;
pub mod format;
mod organization;
mod permissions;
mod respond;
pub mod session;
mod sources;
mod sso;
mod teams;

use axum::Router;
use axum::extract::{Path, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use minijinja::Environment;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::state::AppState;

pub use error::WebError;

/// What a page handler returns: a response, or an error page.
pub(crate) type WebResult<T = Response> = Result<T, WebError>;

/// The vendored htmx (npm `htmx.org` 2.0.11, `dist/htmx.min.js`) and its pinned SHA-256 (also in
/// `assets/htmx.min.js.sha256`); a test checks the file against it, and pages load it with
/// the matching Subresource-Integrity hash.
pub const HTMX_JS: &[u8] = include_bytes!("../../assets/htmx.min.js");
pub const HTMX_SHA256: &str = "d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717";
const APP_CSS: &str = include_str!("../../assets/app.css");
const APP_JS: &str = include_str!("../../assets/app.js");

pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../../templates/base.html")),
    ("signin.html", include_str!("../../templates/signin.html")),
    ("sso_error.html", include_str!("../../templates/sso_error.html")),
    ("sso_redirect.html", include_str!("../../templates/sso_redirect.html")),
    ("sso_confirm.html", include_str!("../../templates/sso_confirm.html")),
    ("sso_repost.html", include_str!("../../templates/sso_repost.html")),
    ("invite.html", include_str!("../../templates/invite.html")),
    ("organization.html", include_str!("../../templates/organization.html")),
    ("team.html", include_str!("../../templates/team.html")),
    ("teams.html", include_str!("../../templates/teams.html")),
    ("message.html", include_str!("../../templates/message.html")),
    ("users.html", include_str!("../../templates/users.html")),
    ("catalog_index.html", include_str!("../../templates/catalog_index.html")),
    ("catalog.html", include_str!("../../templates/catalog.html")),
    ("catalog_table.html", include_str!("../../templates/catalog_table.html")),
    ("entity.html", include_str!("../../templates/entity.html")),
    ("editor.html", include_str!("../../templates/editor.html")),
    ("builder.html", include_str!("../../templates/builder.html")),
    ("audit.html", include_str!("../../templates/audit.html")),
    ("export.html", include_str!("../../templates/export.html")),
    ("sources.html", include_str!("../../templates/sources.html")),
    ("source.html", include_str!("../../templates/source.html")),
    ("source_log.html", include_str!("../../templates/source_log.html")),
    ("source_webhook.html", include_str!("../../templates/source_webhook.html")),
    ("source_mapping.html", include_str!("../../templates/source_mapping.html")),
    ("source_playground.html", include_str!("../../templates/source_playground.html")),
    ("source_playground_result.html", include_str!("../../templates/source_playground_result.html")),
    ("self_service.html", include_str!("../../templates/self_service.html")),
    ("action_form.html", include_str!("../../templates/action_form.html")),
    ("action_fields.html", include_str!("../../templates/action_fields.html")),
    ("action_options.html", include_str!("../../templates/action_options.html")),
    ("runs.html", include_str!("../../templates/runs.html")),
    ("approvals.html", include_str!("../../templates/approvals.html")),
    ("run_list.html", include_str!("../../templates/run_list.html")),
    ("run.html", include_str!("../../templates/run.html")),
    ("run_body.html", include_str!("../../templates/run_body.html")),
    ("entity_form.html", include_str!("../../templates/entity_form.html")),
    ("dashboard.html", include_str!("../../templates/dashboard.html")),
    ("permissions.html", include_str!("../../templates/permissions.html")),
];

/// The compiled templates.
pub struct Templates {
    env: Environment<'static>,
    /// `sha256-<base64>` of the vendored htmx, for the `integrity` attribute.
    pub htmx_integrity: String,
}

impl Default for Templates {
    fn default() -> Self {
        Self::new()
    }
}

impl Templates {
    pub fn new() -> Self {
        use base64::Engine;
        let mut env = Environment::new();
        // Every template escapes HTML, whatever its name: a value reaches a page only through a
        // template of this environment (there is no other HTML renderer in web/, see the test
        // `no_html_is_rendered_outside_the_escaping_environment`).
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
        for (name, src) in TEMPLATES {
            if let Err(e) = env.add_template(name, src) {
                tracing::error!(template = name, error = %e, "template does not compile");
            }
        }
        let integrity = format!("sha256-{}", base64::engine::general_purpose::STANDARD.encode(Sha256::digest(HTMX_JS)));
        Templates { env, htmx_integrity: integrity }
    }

    pub fn render(&self, name: &str, ctx: minijinja::Value) -> Result<String, WebError> {
        let t = self.env.get_template(name).map_err(|e| WebError::internal("template", e))?;
        t.render(ctx).map_err(|e| WebError::internal("template", e))
    }
}

/// An HTML response with the security headers.
pub fn html(status: StatusCode, body: String) -> Response {
    let mut res = (status, body).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    res
}

/// The templates for responses made without the application state (error pages).
static SHARED: std::sync::LazyLock<Templates> = std::sync::LazyLock::new(Templates::new);

/// A simple page with a heading and a message (errors), outside the signed-in layout. The
/// message often quotes what the request named (a blueprint, an entity): it is escaped like
/// every template value.
pub fn message_page(status: StatusCode, title: &str, message: &str) -> Response {
    let ctx = minijinja::context! { title => title, message => message };
    match SHARED.render("message.html", ctx) {
        Ok(body) => html(status, body),
        Err(_) => html(status, "<!doctype html><title>Error</title><p>Something went wrong.</p>".to_owned()),
    }
}

pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Security headers on every web response.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    // A page that embeds frames (dashboards' iframes) sets its own policy, the UI's plus a
    // `frame-src` naming exactly those origins.
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    }
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

async fn asset(Path(name): Path<String>) -> Response {
    let (body, ty): (Vec<u8>, &str) = match name.as_str() {
        "htmx.min.js" => (HTMX_JS.to_vec(), "text/javascript; charset=utf-8"),
        "app.js" => (APP_JS.as_bytes().to_vec(), "text/javascript; charset=utf-8"),
        "app.css" => (APP_CSS.as_bytes().to_vec(), "text/css; charset=utf-8"),
        _ => return message_page(StatusCode::NOT_FOUND, "Not found", "no such asset"),
    };
    let mut res = body.into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(ty));
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    res
}

/// Context every signed-in page gets.
#[derive(Serialize)]
pub struct Chrome {
    pub email: String,
    pub admin: bool,
    pub csrf: String,
    pub htmx_integrity: String,
}

/// The web UI's routes (merged into the app in `lib.rs`).
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/catalog") }))
        .route("/ui", get(|| async { Redirect::to("/ui/home") }))
        .route("/ui/home", get(dashboards::home))
        .route("/ui/dashboards", get(dashboards::dashboards))
        .route("/ui/dashboards/{id}", get(dashboards::dashboard))
        .route("/ui/dashboards/{id}/permissions", permissions::routes(permissions::Kind::Page))
        .route("/ui/assets/{name}", get(asset))
        .route("/ui/signin", get(auth::signin_form).post(auth::signin))
        .route("/ui/signout", post(auth::signout))
        .route("/ui/sso/start", get(sso::start))
        .route("/ui/sso/callback", get(sso::callback))
        .route("/ui/sso/saml/acs", post(sso::saml_acs))
        .route("/ui/sso/saml/metadata", get(sso::saml_metadata))
        .route("/ui/frames/signin", get(dashboards::frames::signin))
        .route("/ui/frames/callback", get(dashboards::frames::callback))
        .route("/ui/invite/{token}", get(auth::invite_form).post(auth::invite_accept))
        .route("/ui/users", get(auth::users).post(auth::invite_create))
        .route("/ui/organization", get(organization::organization))
        .route("/ui/organization/sso", post(organization::sso_save))
        .route("/ui/organization/sso/saml", post(organization::saml_save))
        .route("/ui/teams", get(teams::teams).post(teams::team_create))
        .route("/ui/teams/{name}", get(teams::team).post(teams::team_save))
        .route("/ui/teams/{name}/delete", post(teams::team_delete))
        .route("/ui/catalog", get(catalog::catalog_index))
        .route("/ui/catalog/{bp}", get(catalog::catalog))
        .route("/ui/catalog/{bp}/export", get(catalog::export::catalog_export))
        .route("/ui/catalog/{bp}/initial-filter", post(catalog::initial_filter::initial_filter_save))
        .route("/ui/entities/{bp}/new", get(editor::entity_new))
        .route("/ui/entities/{bp}", post(editor::entity_save_new))
        .route("/ui/entities/{bp}/{id}", get(entity::entity).post(editor::entity_save))
        .route("/ui/entities/{bp}/{id}/edit", get(editor::entity_edit))
        .route("/ui/builder", get(builder::builder).post(builder::blueprint_save_new))
        .route("/ui/builder/graph.svg", get(builder::graph_svg))
        .route("/ui/builder/new", get(builder::blueprint_new))
        .route("/ui/builder/{bp}", get(builder::blueprint_edit).post(builder::blueprint_save))
        .route("/ui/builder/{bp}/permissions", permissions::routes(permissions::Kind::Blueprint))
        .route("/ui/builder/{bp}/property", post(builder::blueprint_add_property))
        .route("/ui/builder/{bp}/relation", post(builder::blueprint_add_relation))
        .route("/ui/audit", get(audit::audit))
        .route("/ui/export", get(export::export_dialog))
        .route("/ui/export/download", get(export::export_download))
        .route("/ui/data-sources", get(sources::data_sources))
        .route("/ui/data-sources/{id}", get(sources::integration::data_source))
        .route("/ui/data-sources/webhooks/{id}", get(sources::webhook::webhook))
        .route("/ui/data-sources/{id}/mapping", get(sources::mapping::mapping).post(sources::mapping::mapping_save))
        .route(
            "/ui/data-sources/{id}/playground",
            get(sources::playground::playground).post(sources::playground::playground_run),
        )
        .route("/ui/data-sources/{id}/versions/{version}/restore", post(sources::integration::restore_version))
        .route("/ui/entity-form/{bp}", get(entity_form::new_form).post(entity_form::save_new))
        .route("/ui/entity-form/{bp}/{id}", get(entity_form::edit_form).post(entity_form::save_edit))
        .route("/ui/entity-form-options/{bp}/{input}", post(entity_form::options))
        .route("/ui/self-service", get(actions::self_service))
        .route("/ui/self-service/{action}", get(actions::form::action_form).post(actions::form::action_submit))
        .route("/ui/self-service/{action}/form", post(actions::form::action_fields))
        .route("/ui/self-service/{action}/permissions", permissions::routes(permissions::Kind::Action))
        .route("/ui/self-service/{action}/options/{input}", post(actions::form::action_options))
        .route("/ui/runs", get(actions::runs::my_runs))
        .route("/ui/approvals", get(actions::approvals::inbox))
        .route("/ui/approvals/{id}", post(actions::approvals::decide))
        .route("/ui/runs/{id}", get(actions::runs::run_page))
        .route("/ui/runs/{id}/live", get(actions::runs::run_live))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendored_htmx_matches_its_pinned_hash() {
        let actual = crate::auth::hex(&Sha256::digest(HTMX_JS));
        assert_eq!(actual, HTMX_SHA256);
        let pinned = include_str!("../../assets/htmx.min.js.sha256");
        assert!(pinned.starts_with(HTMX_SHA256), "assets/htmx.min.js.sha256 disagrees: {pinned}");
    }

    #[test]
    fn every_template_compiles() {
        let mut env = Environment::new();
        for (name, src) in TEMPLATES {
            env.add_template(name, src).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    /// A value that is hostile whatever a template does with it: printed it breaks out of text
    /// and attributes with htmx markup; every attribute of it is hostile again; iterated it
    /// gives one hostile item.
    #[derive(Debug)]
    struct Hostile(minijinja::value::ObjectRepr, u8);

    impl Hostile {
        /// An attribute or item: hostile again, a string after a few levels (finite, for
        /// filters that walk the whole value such as `tojson`).
        fn child(&self) -> minijinja::Value {
            if self.1 >= 3 {
                minijinja::Value::from(EVIL)
            } else {
                minijinja::Value::from_object(Hostile(self.0, self.1 + 1))
            }
        }
    }

    const EVIL: &str = "\"'><x-evil hx-get=\"/ui/users\" hx-trigger=\"load\">";

    impl minijinja::value::Object for Hostile {
        fn repr(self: &std::sync::Arc<Self>) -> minijinja::value::ObjectRepr {
            self.0
        }
        fn get_value(self: &std::sync::Arc<Self>, _key: &minijinja::Value) -> Option<minijinja::Value> {
            Some(self.child())
        }
        fn enumerate(self: &std::sync::Arc<Self>) -> minijinja::value::Enumerator {
            minijinja::value::Enumerator::Values(vec![self.child()])
        }
        fn render(self: &std::sync::Arc<Self>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(EVIL)
        }
    }

    /// Finding 3's class: every template, with a hostile value in every variable it reads (and
    /// every attribute of those), renders that value escaped. The value is tried as a plain
    /// object, as a sequence and as a string (templates that concatenate or compare their
    /// variables accept only some); each template must render with at least one.
    #[test]
    fn every_template_escapes_every_variable() {
        let t = Templates::new();
        let mut rendered = 0;
        // Every variable any template reads (a page also reads those of base.html and of the
        // templates it includes).
        let vars: std::collections::BTreeSet<String> = TEMPLATES
            .iter()
            .flat_map(|(name, _)| t.env.get_template(name).unwrap().undeclared_variables(false))
            .collect();
        for (name, _) in TEMPLATES {
            let tmpl = t.env.get_template(name).unwrap();
            let (mut outs, mut errors) = (vec![], vec![]);
            for v in [
                minijinja::Value::from_object(Hostile(minijinja::value::ObjectRepr::Plain, 0)),
                minijinja::Value::from_object(Hostile(minijinja::value::ObjectRepr::Seq, 0)),
                minijinja::Value::from(EVIL),
            ] {
                let ctx: std::collections::BTreeMap<String, minijinja::Value> =
                    vars.iter().map(|k| (k.clone(), v.clone())).collect();
                match tmpl.render(minijinja::Value::from(ctx)) {
                    Ok(out) => outs.push(out),
                    Err(e) => errors.push(format!("{e:#}")),
                }
            }
            assert!(!outs.is_empty(), "{name} renders with neither hostile objects nor hostile strings: {errors:?}");
            for out in outs {
                assert!(!out.contains("<x-evil"), "{name} lets markup through:\n{out}");
                assert!(!out.contains("\"'>"), "{name} lets a value out of an attribute:\n{out}");
                rendered += 1;
            }
        }
        assert!(rendered >= TEMPLATES.len());
    }

    /// Every source file of `web/` as (path from the crate, text), however the module is split.
    fn web_sources() -> Vec<(String, String)> {
        fn walk(dir: &std::path::Path, out: &mut Vec<(String, String)>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, out);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let name = path.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap().display().to_string();
                    out.push((name, std::fs::read_to_string(&path).unwrap()));
                }
            }
        }
        let mut files = Vec::new();
        walk(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/web"), &mut files);
        assert!(files.len() > 10 && files.iter().any(|(n, _)| n.ends_with("catalog/mod.rs")), "{files:?}");
        files
    }

    /// Finding 3's class: no Rust code in web/ builds HTML except format.rs (whose fragments
    /// escape every value); the rest goes through the templates.
    #[test]
    fn no_html_string_literals_outside_format_rs() {
        for (name, src) in web_sources() {
            if name == "src/web/format.rs" {
                continue;
            }
            let src = src.split("#[cfg(test)]").next().unwrap_or(&src);
            let opening = ['"', '<'].iter().collect::<String>();
            let hits: Vec<&str> = src
                .match_indices(opening.as_str())
                .filter(|(i, _)| src[i + 2..].starts_with(|c: char| c.is_ascii_alphabetic() || c == '!' || c == '/'))
                .map(|(i, _)| src[i..].lines().next().unwrap_or_default())
                .collect();
            // The one fallback page for when the message template itself fails.
            let allowed = usize::from(name == "src/web/mod.rs");
            assert!(hits.len() <= allowed, "{name} builds HTML in Rust: {hits:?}; use a template or format.rs");
        }
    }

    /// Finding 3's class, second line of defence: htmx runs without eval, script tags or
    /// cross-origin requests and keeps no page copies in storage; pages without htmx disable it
    /// outright, and every container of user-supplied content carries `hx-disable`.
    #[test]
    fn htmx_is_configured_inert_and_disabled_on_user_content() {
        let base = TEMPLATES.iter().find(|(n, _)| *n == "base.html").unwrap().1;
        let meta = base.lines().find(|l| l.contains("name=\"htmx-config\"")).expect("htmx-config meta in base.html");
        for setting in [
            "\"allowEval\": false",
            "\"allowScriptTags\": false",
            "\"selfRequestsOnly\": true",
            "\"historyCacheSize\": 0",
        ] {
            assert!(meta.contains(setting), "base.html's htmx-config lacks {setting}: {meta}");
        }
        for (name, src) in TEMPLATES {
            if !src.contains("{% extends") && !src.contains("htmx.min.js") && src.contains("<body") {
                assert!(src.contains("<body class=\"narrow\" hx-disable>"), "{name} does not use htmx: disable it");
            }
            // The user list is helper D's (remove-user buttons); every other page is checked.
            if *name == "users.html" {
                continue;
            }
            for tag in ["<tbody", "<pre", "<table class=\"props\"", "class=\"error", "class=\"field-errors\""] {
                for (i, _) in src.match_indices(tag) {
                    let end = src[i..].find('>').map_or(src.len(), |e| i + e);
                    assert!(
                        src[i..end].contains("hx-disable"),
                        "{name}: `{}` shows user content: add hx-disable",
                        &src[i..end]
                    );
                }
            }
        }
    }

    /// Finding 3's class: HTML reaches a response only through `Templates` (auto-escape on for
    /// every template) or `format.rs` (whose fragments escape every value). Every source file of
    /// `web/` is checked, however the module is split.
    #[test]
    fn no_html_is_rendered_outside_the_escaping_environment() {
        let files = web_sources();
        let banned = [
            ["minijinja::", "render!"].concat(),
            ["render", "_str("].concat(),
            ["render_named", "_str("].concat(),
            ["Environment::", "new()"].concat(),
            ["Redirect::", "to(&"].concat(),
        ];
        for (name, src) in &files {
            let src = src.split("#[cfg(test)]").next().unwrap_or(src);
            for b in &banned {
                let n = src.matches(b.as_str()).count();
                let allowed = usize::from(
                    (name == "src/web/mod.rs" && b.starts_with("Environment"))
                        || (name == "src/web/error.rs" && b.starts_with("Redirect")),
                );
                assert!(n <= allowed, "{name} uses `{b}` {n} times: render HTML through Templates");
            }
        }
        // Every template escapes, whatever its name.
        let t = Templates::new();
        let out =
            t.render("message.html", minijinja::context! { title => "<i>", message => "<b hx-get=\"/x\">" }).unwrap();
        assert!(out.contains("&lt;b hx-get=") && !out.contains("<b hx-get"), "{out}");
    }
}
