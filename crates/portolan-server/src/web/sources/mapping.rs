//! The mapping editor of an integration (JSON or YAML): validated (shape, jq, blueprints)
//! before it is saved through the same handler as `PATCH /v1/integration/{id}/config`.
//!
//! `check_jq`, `compile` and `compile_leaves` walk a mapping's jq expressions; they move to the
//! shared mapping engine (`portolan-jq/src/mapping.rs`) when it lands.

use std::collections::HashSet;

use axum::extract::{Path, RawQuery, Request, State};
use axum::http::StatusCode;
use portolan_jq::{CompiledMapping, JqScope, MappingErrorKind};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::{ADMINS_ONLY, base, load, resources};
use crate::ops;
use crate::state::AppState;
use crate::web::form::{query_form, signed_form};
use crate::web::respond::{FieldMessage, api_errors, caller, chrome, page_with, require_admin, see_other};
use crate::web::session::WebUser;
use crate::web::{Chrome, WebError, WebResult};

#[derive(Serialize)]
struct MappingPage<'a> {
    chrome: Chrome,
    title: String,
    id: &'a str,
    base: String,
    format: &'static str,
    text: &'a str,
    message: Option<String>,
    errors: Vec<FieldMessage>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum TextFormat {
    Json,
    Yaml,
}

impl TextFormat {
    fn parse(s: Option<&str>) -> TextFormat {
        if s == Some("yaml") { TextFormat::Yaml } else { TextFormat::Json }
    }
    fn name(self) -> &'static str {
        match self {
            TextFormat::Json => "json",
            TextFormat::Yaml => "yaml",
        }
    }
    fn write(self, v: &Value) -> String {
        match self {
            TextFormat::Json => serde_json::to_string_pretty(v).unwrap_or_default(),
            TextFormat::Yaml => portolan_core::export::value_to_yaml(v),
        }
    }
    fn read(self, text: &str) -> Result<Value, String> {
        match self {
            TextFormat::Json => serde_json::from_str(text).map_err(|e| format!("The text is not valid JSON: {e}")),
            TextFormat::Yaml => {
                portolan_core::export::yaml_to_value(text).map_err(|e| format!("The text is not valid YAML: {e}"))
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn mapping_page(
    state: &AppState,
    user: &WebUser,
    status: StatusCode,
    id: &str,
    fmt: TextFormat,
    text: &str,
    message: Option<String>,
    errors: Vec<FieldMessage>,
) -> WebResult {
    let ctx = MappingPage {
        chrome: chrome(state, user),
        title: format!("Mapping of {id}"),
        id,
        base: base(id),
        format: fmt.name(),
        text,
        message,
        errors,
    };
    page_with(state, status, "source_mapping.html", ctx)
}

pub async fn mapping(
    State(state): State<AppState>,
    user: WebUser,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> WebResult {
    let i = load(&state, &user, &id).await?;
    let fmt = TextFormat::parse(query_form(&q).get("format"));
    let text = fmt.write(i.data.get("config").unwrap_or(&json!({})));
    mapping_page(&state, &user, StatusCode::OK, &id, fmt, &text, None, vec![])
}

/// Save the mapping: it must parse, have Ocean's shape, every jq expression must compile and
/// every constant blueprint must exist; then it is saved by the API's `PATCH …/config` handler
/// (same store call, config version, event-log line and audit record).
pub async fn mapping_save(
    State(state): State<AppState>,
    user: WebUser,
    Path(id): Path<String>,
    req: Request,
) -> WebResult {
    let (_, form) = signed_form(&user, req).await?;
    require_admin(&user, ADMINS_ONLY)?;
    load(&state, &user, &id).await?;
    let fmt = TextFormat::parse(form.get("format"));
    let text = form.get("config").unwrap_or("").to_string();
    let refuse = |message: String, errors: Vec<FieldMessage>| {
        mapping_page(&state, &user, StatusCode::UNPROCESSABLE_ENTITY, &id, fmt, &text, Some(message), errors)
    };
    let config = match fmt.read(&text) {
        Ok(c @ Value::Object(_)) => c,
        Ok(_) => return refuse("The mapping must be an object: {resources: [...]}.".into(), vec![]),
        Err(m) => return refuse(m, vec![]),
    };
    let mut errors: Vec<FieldMessage> = Vec::new();
    let body = json!({"config": config});
    if let Err(e) = ops::integration::check_body(body.as_object().unwrap_or(&Map::new())) {
        errors.extend(api_errors(&e).1);
    }
    let blueprints: HashSet<String> = state.blueprints(&user.org).await?.keys().cloned().collect();
    let (jq, budget) = (state.jq.clone(), state.jq.budget_for(&user.org.0));
    let cfg = config.clone();
    let jq_errors = tokio::task::spawn_blocking(move || check_jq(&jq.scope(budget), &cfg, &blueprints))
        .await
        .map_err(|e| WebError::internal("jq check", e))?;
    errors.extend(jq_errors.into_iter().map(|(path, message)| FieldMessage::new(path, message)));
    if !errors.is_empty() {
        let n = errors.len();
        return refuse(format!("The mapping was not saved: {n} problem{}.", if n == 1 { "" } else { "s" }), errors);
    }
    // The write, through the service layer the API uses.
    let config = config.as_object().cloned().unwrap_or_default();
    match ops::integration::patch_config(&state, &caller(&user), &id, &config).await {
        Ok(_) => Ok(see_other(&format!("{}?saved=1", base(&id)))),
        Err(e) if e.status.is_client_error() => {
            let (m, details) = api_errors(&e);
            mapping_page(&state, &user, e.status, &id, fmt, &text, Some(m), details)
        }
        Err(e) => Err(e.into()),
    }
}

/// Every jq expression of a mapping (`selector.query`, `port.itemsToParse`, every string of
/// `port.entity.mappings`) compiles; a `blueprint` that is a constant names an existing one.
/// Returns (path, message) per problem; shapes are checked by the API's own validation. The
/// compilation is the shared mapping engine's (`portolan_jq::mapping`), as for webhooks.
pub(super) fn check_jq(jq: &JqScope<'_>, config: &Value, blueprints: &HashSet<String>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (n, r) in resources(&json!({"config": config})).iter().enumerate() {
        let at = format!("config.resources[{n}]");
        let compiled = CompiledMapping::ocean(jq.engine(), r);
        out.extend(compiled.own_errors().iter().map(|e| (format!("{at}.{}", e.path), e.message.clone())));
        for t in compiled.entities() {
            // Non-string leaves are the API's shape check to report, not a jq problem.
            let errors = t.errors().iter().filter(|e| e.kind != MappingErrorKind::Literal);
            out.extend(errors.map(|e| (format!("{at}.{}", e.path), e.message.clone())));
            if let Some(f) = t.field("blueprint")
                && let Ok(Value::String(name)) = f.eval(jq, &Value::Null)
                && !blueprints.contains(&name)
            {
                out.push((format!("{at}.{}", f.path()), format!("there is no blueprint {name:?}")));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saving_checks_jq_and_blueprints_with_paths() {
        let engine = portolan_jq::JqEngine::new();
        let jq = engine.scope(engine.budget_for("test"));
        let bps: HashSet<String> = ["thing".to_string()].into();
        let config = json!({"resources": [{"kind": "item", "selector": {"query": ".a |"},
            "port": {"entity": {"mappings": {"identifier": ".id", "blueprint": "\"other\"",
                                             "properties": {"x": ".x | nosuchfn"}}}}}]});
        let errs = check_jq(&jq, &config, &bps);
        let paths: Vec<&str> = errs.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            paths,
            [
                "config.resources[0].selector.query",
                "config.resources[0].port.entity.mappings.properties.x",
                "config.resources[0].port.entity.mappings.blueprint"
            ]
        );
    }

    #[test]
    fn mappings_read_and_write_json_and_yaml() {
        let v = json!({"resources": [{"kind": "a"}]});
        for fmt in [TextFormat::Json, TextFormat::Yaml] {
            assert_eq!(fmt.read(&fmt.write(&v)).unwrap(), v, "{}", fmt.name());
        }
        assert_eq!(TextFormat::parse(Some("yaml")).name(), "yaml");
        assert_eq!(TextFormat::parse(Some("toml")).name(), "json");
        assert!(TextFormat::Json.read("{").unwrap_err().starts_with("The text is not valid JSON"));
    }
}
