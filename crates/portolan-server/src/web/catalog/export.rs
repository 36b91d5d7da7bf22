//! The catalog table's current view (this page of rows, these columns) as a CSV or JSON file.

use axum::extract::{Path, RawQuery, State};
use portolan_core::export::{cell_text, csv};
use serde_json::{Map, Value};

use super::view::{View, column_value, view_page};
use crate::state::AppState;
use crate::web::form::query_form;
use crate::web::respond::download;
use crate::web::session::WebUser;
use crate::web::{WebError, WebResult, format};

/// The current view (this page of rows, these columns) as CSV or JSON.
pub async fn catalog_export(
    State(state): State<AppState>,
    user: WebUser,
    Path(bp_id): Path<String>,
    RawQuery(q): RawQuery,
) -> WebResult {
    let bps = state.blueprints(&user.org).await?;
    let bp = bps.get(&bp_id).ok_or_else(|| WebError::NotFound(format!("There is no blueprint \"{bp_id}\".")))?;
    let form = query_form(&q);
    let view = View::parse(&form, bp);
    let (rows, _) = view_page(&state, &user, bp, &view).await?.map_err(WebError::BadRequest)?;
    match form.get("format") {
        Some("json") => {
            let out: Vec<Value> = rows
                .iter()
                .map(|e| {
                    let mut m = Map::new();
                    for c in &view.cols {
                        m.insert(c.trim_start_matches('$').to_string(), column_value(e, c));
                    }
                    Value::Object(m)
                })
                .collect();
            let body = serde_json::to_string_pretty(&out).unwrap_or_default();
            Ok(download(body, "application/json", &format!("{}.json", bp.identifier)))
        }
        _ => {
            let header: Vec<String> = view.cols.iter().map(|c| format::column_title(bp, c)).collect();
            let table: Vec<Vec<String>> =
                rows.iter().map(|e| view.cols.iter().map(|c| cell_text(&column_value(e, c))).collect()).collect();
            Ok(download(csv(&header, &table), "text/csv; charset=utf-8", &format!("{}.csv", bp.identifier)))
        }
    }
}
