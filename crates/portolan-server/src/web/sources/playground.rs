//! The mapping playground: an example item through a mapping, every field's jq result or
//! error. Changes nothing.
//!
//! The evaluation is the shared mapping engine's (`portolan_jq::mapping`), the one webhook
//! deliveries use, so the playground shows what a delivery would do.

use std::collections::HashSet;

use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode};
use portolan_jq::{CompiledMapping, FieldValue, JqScope};
use portolan_store::StoredIntegration;
use serde::Serialize;
use serde_json::{Value, json};

use super::{EXAMPLES_SHOWN, ITEMS_MAPPED, base, load, resources, str_at};
use crate::state::AppState;
use crate::web::form::{query_form, signed_form};
use crate::web::respond::{chrome, page_with};
use crate::web::session::WebUser;
use crate::web::{Chrome, WebError, WebResult};

/// The playground page.
#[derive(Serialize)]
struct PlaygroundPage<'a> {
    chrome: Chrome,
    title: String,
    id: &'a str,
    base: String,
    input: &'a PlaygroundInput,
    resources: Vec<ResourceChoice<'a>>,
    /// The chosen resource and example.
    resource: usize,
    kind: Option<String>,
    examples: Vec<ExampleChoice>,
    example: usize,
    /// The result of a run.
    r: Option<Outcome>,
}

#[derive(Serialize)]
struct ResourceChoice<'a> {
    n: usize,
    kind: &'a str,
}

/// A stored example of the kind, as the picker shows it (the first 80 characters).
#[derive(Serialize)]
struct ExampleChoice {
    n: usize,
    preview: String,
}

/// The result fragment htmx swaps in.
#[derive(Serialize)]
struct ResultFragment<'a> {
    r: &'a Outcome,
}

/// One evaluated expression.
#[derive(Debug, Serialize)]
struct FieldResult {
    path: String,
    expr: String,
    /// The result as pretty JSON, or the exact jq error.
    value: Option<String>,
    error: Option<String>,
}

#[derive(Debug, Serialize)]
struct EntityResult {
    /// `item[n]` when `itemsToParse` split the input.
    label: Option<String>,
    fields: Vec<FieldResult>,
}

#[derive(Debug, Default, Serialize)]
struct Outcome {
    error: Option<String>,
    selector: Option<FieldResult>,
    selected: bool,
    items: Option<FieldResult>,
    entities: Vec<EntityResult>,
}

/// One evaluated expression as the page shows it.
fn shown(f: &FieldValue) -> FieldResult {
    FieldResult {
        path: f.path.clone(),
        expr: f.expr.clone(),
        value: f.result.as_ref().ok().map(|v| serde_json::to_string_pretty(v).unwrap_or_default()),
        error: f.result.as_ref().err().map(|e| e.to_string()),
    }
}

/// Run a mapping over an item as Ocean would: the selector, then (with `itemsToParse`) each
/// item of that array as `.item` of the input, then every expression of the entity mapping —
/// through the same engine as webhook deliveries (`portolan_jq::mapping`).
fn run_playground(
    jq: &JqScope<'_>,
    item: &Value,
    selector: &str,
    items_to_parse: Option<&str>,
    mapping: &Value,
    blueprints: &HashSet<String>,
) -> Outcome {
    let compiled = CompiledMapping::from_parts(jq.engine(), selector, items_to_parse, mapping);
    let ev = compiled.evaluate(jq, item, ITEMS_MAPPED);
    let mut out = Outcome {
        selected: ev.selected,
        selector: ev.selector.as_ref().map(shown),
        items: ev.items.as_ref().map(shown),
        ..Outcome::default()
    };
    for e in &ev.entities {
        let mut fields: Vec<FieldResult> = e.fields.iter().map(shown).collect();
        for f in fields.iter_mut().filter(|f| f.path == "blueprint") {
            if let Some(Ok(Value::String(b))) = f.value.as_deref().map(serde_json::from_str::<Value>)
                && !blueprints.contains(&b)
            {
                f.error = Some(format!("there is no blueprint {b:?}"));
            }
        }
        out.entities.push(EntityResult { label: e.label(), fields });
    }
    out
}

/// The playground's inputs (form fields).
#[derive(Debug, Serialize)]
struct PlaygroundInput {
    item: String,
    selector: String,
    items_to_parse: String,
    mapping: String,
}

#[allow(clippy::too_many_arguments)]
async fn playground_page(
    state: &AppState,
    user: &WebUser,
    i: &StoredIntegration,
    status: StatusCode,
    input: &PlaygroundInput,
    resource: usize,
    example: usize,
    outcome: Option<Outcome>,
) -> WebResult {
    let res = resources(&i.data);
    let kind = res.get(resource).and_then(|r| r.get("kind")).and_then(Value::as_str).map(str::to_string);
    let examples: Vec<Value> = match &kind {
        Some(k) => state
            .store
            .kind_examples(&user.org, &i.identifier, k)
            .await?
            .and_then(|e| e.as_array().cloned())
            .unwrap_or_default(),
        None => vec![],
    };
    let example_list: Vec<ExampleChoice> = examples
        .iter()
        .take(EXAMPLES_SHOWN)
        .enumerate()
        .map(|(n, e)| ExampleChoice { n, preview: e.to_string().chars().take(80).collect() })
        .collect();
    let resource_list: Vec<ResourceChoice> = res
        .iter()
        .enumerate()
        .map(|(n, r)| ResourceChoice { n, kind: r.get("kind").and_then(Value::as_str).unwrap_or("?") })
        .collect();
    let ctx = PlaygroundPage {
        chrome: chrome(state, user),
        title: format!("Mapping playground · {}", i.identifier),
        id: &i.identifier,
        base: base(&i.identifier),
        input,
        resources: resource_list,
        resource,
        kind,
        examples: example_list,
        example,
        r: outcome,
    };
    page_with(state, status, "source_playground.html", ctx)
}

/// `?resource=<n>&example=<n>`: the playground filled with resource n's mapping and the kind's
/// stored example n (or `{}`).
pub async fn playground(
    State(state): State<AppState>,
    user: WebUser,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> WebResult {
    let i = load(&state, &user, &id).await?;
    let f = query_form(&q);
    let resource: usize = f.get("resource").and_then(|n| n.parse().ok()).unwrap_or(0);
    let example: usize = f.get("example").and_then(|n| n.parse().ok()).unwrap_or(0);
    let res = resources(&i.data);
    let r = res.get(resource).cloned().unwrap_or(Value::Null);
    let kind = r.get("kind").and_then(Value::as_str);
    let item = match kind {
        Some(k) => state
            .store
            .kind_examples(&user.org, &id, k)
            .await?
            .and_then(|e| e.get(example).cloned())
            .unwrap_or_else(|| json!({})),
        None => json!({}),
    };
    let input = PlaygroundInput {
        item: serde_json::to_string_pretty(&item).unwrap_or_default(),
        selector: str_at(&r, "/selector/query").unwrap_or("true").to_string(),
        items_to_parse: str_at(&r, "/port/itemsToParse").unwrap_or("").to_string(),
        mapping: serde_json::to_string_pretty(
            r.pointer("/port/entity/mappings")
                .unwrap_or(&json!({"identifier": ".id", "blueprint": "\"blueprint-identifier\""})),
        )
        .unwrap_or_default(),
    };
    playground_page(&state, &user, &i, StatusCode::OK, &input, resource, example, None).await
}

/// Evaluate the playground's mapping: the result fragment for htmx (`HX-Request`), else the
/// whole page with the result. Changes nothing.
pub async fn playground_run(
    State(state): State<AppState>,
    user: WebUser,
    Path(id): Path<String>,
    req: Request,
) -> WebResult {
    let (headers, form) = signed_form(&user, req).await?;
    let i = load(&state, &user, &id).await?;
    let field = |k: &str| form.get(k).unwrap_or("").to_string();
    let input = PlaygroundInput {
        item: field("item"),
        selector: form.get("selector").unwrap_or("true").to_string(),
        items_to_parse: field("items_to_parse"),
        mapping: field("mapping"),
    };
    let item = serde_json::from_str::<Value>(&input.item);
    let mapping = serde_json::from_str::<Value>(&input.mapping);
    let outcome = match (item, mapping) {
        (Err(e), _) => Outcome { error: Some(format!("The item is not valid JSON: {e}")), ..Outcome::default() },
        (_, Err(e)) => Outcome { error: Some(format!("The mapping is not valid JSON: {e}")), ..Outcome::default() },
        (_, Ok(m)) if !m.is_object() => Outcome {
            error: Some("The mapping must be an object: {identifier, title, blueprint, properties, relations}".into()),
            ..Outcome::default()
        },
        (Ok(item), Ok(mapping)) => {
            let (jq, budget) = (state.jq.clone(), state.jq.budget_for(&user.org.0));
            let blueprints: HashSet<String> = state.blueprints(&user.org).await?.keys().cloned().collect();
            let selector = input.selector.clone();
            let itp = Some(input.items_to_parse.trim().to_string()).filter(|s| !s.is_empty());
            tokio::task::spawn_blocking(move || {
                run_playground(&jq.scope(budget), &item, &selector, itp.as_deref(), &mapping, &blueprints)
            })
            .await
            .map_err(|e| WebError::internal("playground", e))?
        }
    };
    if is_htmx(&headers) {
        return page_with(&state, StatusCode::OK, "source_playground_result.html", ResultFragment { r: &outcome });
    }
    let f = |k: &str| form.get(k).and_then(|n| n.parse().ok()).unwrap_or(0);
    playground_page(&state, &user, &i, StatusCode::OK, &input, f("resource"), f("example"), Some(outcome)).await
}

fn is_htmx(headers: &HeaderMap) -> bool {
    headers.get("hx-request").is_some_and(|v| v == "true")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_playground_evaluates_every_field_and_reports_errors() {
        let engine = portolan_jq::JqEngine::new();
        let jq = engine.scope(engine.budget_for("test"));
        let bps: HashSet<String> = ["thing".to_string()].into();
        let mapping = json!({"identifier": ".id", "blueprint": "\"thing\"",
                             "properties": {"size": ".size * 2", "bad": ".size | nosuchfn"}});
        let out = run_playground(&jq, &json!({"id": "a", "size": 3}), ".size > 1", None, &mapping, &bps);
        assert!(out.selected);
        let f = &out.entities[0].fields;
        let get = |p: &str| f.iter().find(|x| x.path == p).unwrap();
        assert_eq!(get("identifier").value.as_deref(), Some("\"a\""));
        assert_eq!(get("properties.size").value.as_deref(), Some("6"));
        assert!(get("properties.bad").error.as_deref().unwrap().contains("jq compile error"));
        let none = run_playground(&jq, &json!({"id": "a"}), "true", None, &json!({"blueprint": "\"nope\""}), &bps);
        assert!(none.entities[0].fields[0].error.as_deref().unwrap().contains("no blueprint \"nope\""));
        let items = run_playground(
            &jq,
            &json!({"xs": [1, 2]}),
            "true",
            Some(".xs"),
            &json!({"identifier": ".item | tostring"}),
            &bps,
        );
        assert_eq!(items.entities.len(), 2);
        assert_eq!(items.entities[1].fields[0].value.as_deref(), Some("\"2\""));
    }
}
