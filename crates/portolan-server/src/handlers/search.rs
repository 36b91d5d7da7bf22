//! `POST /v1/entities/search` and `POST /v1/blueprints/{bp}/entities/search`.

use axum::Json;
use axum::extract::{Path, State};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use portolan_core::FieldError;
use portolan_core::search::{Query, parse_query};
use portolan_store::{SearchRequest, StoreError};
use serde_json::{Value, json};

use crate::access;
use crate::auth::Caller;
use crate::computed::{ReadOptions, render_for};
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, QueryParams};
use crate::handlers::entity::{EntityParams, blueprint_of, too_many};
use crate::state::AppState;

/// Default and largest page of the paginated search (Port: 200 and 1000).
pub const DEFAULT_LIMIT: u32 = 200;
pub const MAX_LIMIT: u32 = 1000;

fn parse_at(v: &Value, path: &str) -> ApiResult<Query> {
    parse_query(v).map_err(|e| ApiError::from(e.under(path)))
}

/// The cursor is opaque to clients: base64 of the position.
pub fn encode_cursor(pos: i64) -> String {
    B64.encode(format!("p:{pos}"))
}

pub fn decode_cursor(s: &str) -> ApiResult<i64> {
    B64.decode(s)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("p:").and_then(|n| n.parse().ok()))
        .ok_or_else(|| {
            FieldError::new("from", "is not a cursor returned by this endpoint (use the previous response's \"next\")")
                .into()
        })
}

pub async fn search_all(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(params): QueryParams<EntityParams>,
    JsonBody(mut body): JsonBody,
) -> ApiResult<Json<Value>> {
    access::resolve_context(&mut body, &caller.principal, "").map_err(ApiError::from)?;
    let query = parse_at(&body, "")?;
    let blueprints = state.blueprints_for(&caller).await?;
    let max = state.config.max_unpaginated;
    // One read of the permission documents for the restriction and the rendering.
    let (scope, visible) = access::reader_and_restriction(&state, &caller).await?;
    let req = SearchRequest { visible: visible.as_ref(), ..SearchRequest::new(&blueprints, None, Some(&query), max) };
    let page = state.store.search(&caller.org, &req).await?;
    if page.next.is_some() {
        return Err(too_many(max, "{blueprint}"));
    }
    let mut matching: Vec<String> =
        query.referenced_blueprints().into_iter().filter(|b| blueprints.contains_key(b)).collect();
    if matching.is_empty() {
        for e in &page.entities {
            if !matching.contains(&e.blueprint) {
                matching.push(e.blueprint.clone());
            }
        }
    }
    let entities = render_for(&state, &caller.org, scope.as_ref(), &page.entities, &params.read_options()?).await?;
    Ok(Json(json!({"ok": true, "matchingBlueprints": matching, "failedBlueprints": [], "entities": entities})))
}

fn string_list(body: &Value, key: &str) -> ApiResult<Vec<String>> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| FieldError::new(format!("{key}[{i}]"), "must be a string").into())
            })
            .collect(),
        Some(_) => Err(FieldError::new(key, "must be an array of property identifiers").into()),
    }
}

pub async fn search_blueprint(
    State(state): State<AppState>,
    caller: Caller,
    Path(bp): Path<String>,
    QueryParams(params): QueryParams<EntityParams>,
    JsonBody(mut body): JsonBody,
) -> ApiResult<Json<Value>> {
    blueprint_of(&state, &caller, &bp).await?;
    if !body.is_object() {
        return Err(FieldError::new("", "the body must be a JSON object {query, include, exclude, limit, from}").into());
    }
    if let Some(q) = body.get_mut("query") {
        access::resolve_context(q, &caller.principal, "query").map_err(ApiError::from)?;
    }
    let query = match body.get("query") {
        None | Some(Value::Null) => None,
        Some(q) => Some(parse_at(q, "query")?),
    };
    let limit = match body.get("limit") {
        None | Some(Value::Null) => DEFAULT_LIMIT,
        Some(v) => {
            v.as_u64().filter(|l| (1..=u64::from(MAX_LIMIT)).contains(l)).map(|l| l as u32).ok_or_else(|| {
                ApiError::from(FieldError::new("limit", format!("must be an integer from 1 to {MAX_LIMIT}")))
            })?
        }
    };
    let after = match body.get("from") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(decode_cursor(s)?),
        Some(_) => {
            return Err(FieldError::new("from", "must be the string cursor from a previous response's \"next\"").into());
        }
    };
    let mut opts: ReadOptions = params.read_options()?;
    opts.include.extend(string_list(&body, "include")?);
    opts.exclude.extend(string_list(&body, "exclude")?);
    let blueprints = state.blueprints_for(&caller).await?;
    // One read of the permission documents for the restriction and the rendering.
    let (scope, visible) = access::reader_and_restriction(&state, &caller).await?;
    let req = SearchRequest {
        after,
        visible: visible.as_ref(),
        ..SearchRequest::new(&blueprints, Some(&bp), query.as_ref(), limit)
    };
    // The compiler's paths are relative to the query, which sits under "query" in this body.
    let page = state.store.search(&caller.org, &req).await.map_err(|e| match e {
        StoreError::Invalid(f) => ApiError::from(f.under("query")),
        e => ApiError::from(e),
    })?;
    let entities = render_for(&state, &caller.org, scope.as_ref(), &page.entities, &opts).await?;
    let mut out = json!({"ok": true, "entities": entities});
    if let Some(n) = page.next {
        out["next"] = json!(encode_cursor(n));
    }
    Ok(Json(out))
}
