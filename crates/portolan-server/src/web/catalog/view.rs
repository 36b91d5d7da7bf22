//! What the catalog table shows (filter, search, sort, columns, group-by and page, all in the
//! query string, so a view is a link) and the one store read of a page of it.

use portolan_core::Blueprint;
use portolan_core::export::cell_text;
use portolan_core::search::parse_query;
use portolan_store::SearchRequest;
use serde::Serialize;
use serde_json::{Value, json};

use crate::computed::{ReadOptions, render_for};
use crate::handlers::search::{decode_cursor, encode_cursor};
use crate::state::AppState;
use crate::web::WebResult;
use crate::web::form::Form;
use crate::web::session::WebUser;
use crate::web::urlencode;

/// Largest page of the catalog table.
const MAX_PAGE: u32 = 200;
const DEFAULT_PAGE: u32 = 50;
/// Most filter rules a catalog view applies.
pub(super) const MAX_RULES: usize = 10;

/// What the catalog table shows: filter, search, sort, columns, group-by and page, all in the
/// query string (so a view is a link).
#[derive(Debug, Clone)]
pub(super) struct View {
    pub q: Option<String>,
    /// Rules, AND-ed: repeated `fp`/`fo`/`fv` in the query string, matched by position.
    pub filters: Vec<Rule>,
    pub sort: Option<String>,
    pub desc: bool,
    pub cols: Vec<String>,
    pub group: Option<String>,
    pub after: Option<String>,
    /// Rows skipped, for views sorted by the store (they page by offset).
    pub offset: u64,
    pub limit: u32,
    /// The page has a saved initial filter: links to an unfiltered view say so (`nf=1`), or
    /// opening them would apply it.
    pub has_initial: bool,
}

/// One filter rule: property (or relation), operator, value; named as the query string names
/// them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(super) struct Rule {
    pub fp: String,
    pub fo: String,
    pub fv: String,
}

impl Rule {
    pub(super) fn new(fp: impl Into<String>, fo: impl Into<String>, fv: impl Into<String>) -> Rule {
        Rule { fp: fp.into(), fo: fo.into(), fv: fv.into() }
    }
}

pub(super) const OPERATORS: &[&str] = &[
    "=",
    "!=",
    ">",
    ">=",
    "<",
    "<=",
    "contains",
    "doesNotContains",
    "beginsWith",
    "endsWith",
    "in",
    "isEmpty",
    "isNotEmpty",
];

pub(super) fn all_columns(bp: &Blueprint) -> Vec<String> {
    let mut c = vec!["$identifier".to_string(), "$title".to_string()];
    c.extend(bp.schema.properties.keys().cloned());
    c.extend(bp.relations.keys().cloned());
    c.extend(bp.mirror_properties.keys().cloned());
    c.extend(bp.calculation_properties.keys().cloned());
    c.push("$team".into());
    c.push("$updatedAt".into());
    c
}

impl View {
    pub(super) fn parse(f: &Form, bp: &Blueprint) -> View {
        let known = all_columns(bp);
        let cols: Vec<String> = match f.get("cols") {
            Some(c) => c.split(',').filter(|c| known.iter().any(|k| k == c)).map(str::to_string).collect(),
            None => known.iter().take(8).cloned().collect(),
        };
        let (fps, fos, fvs) = (f.raw("fp"), f.raw("fo"), f.raw("fv"));
        let filters = fps
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                let o = *fos.get(i)?;
                (!p.is_empty() && OPERATORS.contains(&o)).then(|| Rule::new(*p, o, fvs.get(i).copied().unwrap_or("")))
            })
            .take(MAX_RULES)
            .collect();
        View {
            q: f.get("q").map(str::to_string),
            filters,
            sort: f.get("sort").filter(|s| known.iter().any(|k| k == s)).map(str::to_string),
            desc: f.get("dir") == Some("desc"),
            cols: if cols.is_empty() { vec!["$identifier".into()] } else { cols },
            group: f.get("group").filter(|s| known.iter().any(|k| k == s)).map(str::to_string),
            after: f.get("after").map(str::to_string),
            offset: f.get("o").and_then(|o| o.parse().ok()).unwrap_or(0),
            limit: f
                .get("limit")
                .and_then(|l| l.parse().ok())
                .filter(|l| (1..=MAX_PAGE).contains(l))
                .unwrap_or(DEFAULT_PAGE),
            has_initial: false,
        }
    }

    /// The query string of this view with some parameters changed (`None` removes one).
    pub(super) fn link(&self, bp: &str, changes: &[(&str, Option<String>)]) -> String {
        let mut p: Vec<(&str, String)> = Vec::new();
        let mut put = |k: &'static str, v: Option<String>| {
            if let Some(v) = v {
                p.push((k, v));
            }
        };
        put("q", self.q.clone());
        for r in &self.filters {
            put("fp", Some(r.fp.clone()));
            put("fo", Some(r.fo.clone()));
            put("fv", Some(r.fv.clone()));
        }
        put("sort", self.sort.clone());
        put("dir", self.desc.then(|| "desc".to_string()));
        put("cols", Some(self.cols.join(",")));
        put("group", self.group.clone());
        put("after", self.after.clone());
        put("o", (self.offset > 0).then(|| self.offset.to_string()));
        put("limit", (self.limit != DEFAULT_PAGE).then(|| self.limit.to_string()));
        for (k, v) in changes {
            p.retain(|(key, _)| key != k);
            if let Some(v) = v {
                p.push((k, v.clone()));
            }
        }
        if self.has_initial && !p.iter().any(|(k, _)| *k == "q" || *k == "fp") {
            p.push(("nf", "1".into()));
        }
        let qs: Vec<String> = p.iter().map(|(k, v)| format!("{k}={}", urlencode(v))).collect();
        format!("/ui/catalog/{}?{}", urlencode(bp), qs.join("&"))
    }

    /// The search query of this view.
    pub(super) fn query(&self, bp: &Blueprint) -> Result<Option<Value>, String> {
        let mut rules = Vec::new();
        if let Some(q) = &self.q {
            rules.push(json!({"combinator": "or", "rules": [
                {"property": "$identifier", "operator": "contains", "value": q},
                {"property": "$title", "operator": "contains", "value": q}]}));
        }
        for Rule { fp: p, fo: op, fv: v } in &self.filters {
            let known = p.starts_with('$') || bp.schema.properties.contains_key(p) || bp.relations.contains_key(p);
            if !known {
                return Err(format!("\"{p}\" is not a property or relation of {}; pick one from the list", bp.title));
            }
            let ty = bp.schema.properties.get(p).map(|x| x.ty);
            let typed = |s: &str| -> Value {
                match ty {
                    Some(portolan_core::PropType::Number) => s
                        .trim()
                        .parse::<f64>()
                        .ok()
                        .and_then(serde_json::Number::from_f64)
                        .map_or(json!(s), Value::Number),
                    Some(portolan_core::PropType::Boolean) => match s.trim() {
                        "true" => json!(true),
                        "false" => json!(false),
                        other => json!(other),
                    },
                    _ => json!(s),
                }
            };
            let rule = match op.as_str() {
                "isEmpty" | "isNotEmpty" => json!({"property": p, "operator": op}),
                "in" => json!({"property": p, "operator": "in",
                               "value": v.split(',').map(|x| typed(x.trim())).collect::<Vec<_>>()}),
                _ if bp.relations.contains_key(p) => json!({"relation": p, "operator": op, "value": v}),
                _ => json!({"property": p, "operator": op, "value": typed(v)}),
            };
            rules.push(rule);
        }
        if rules.is_empty() {
            return Ok(None);
        }
        Ok(Some(json!({"combinator": "and", "rules": rules})))
    }
}

pub(super) fn column_value(e: &Value, col: &str) -> Value {
    match col.strip_prefix('$') {
        Some(meta) => e.get(meta).cloned().unwrap_or(Value::Null),
        None => e["properties"].get(col).or_else(|| e["relations"].get(col)).cloned().unwrap_or(Value::Null),
    }
}

pub(super) fn cmp_values(a: &Value, b: &Value) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Greater,
        (_, Value::Null) => Ordering::Less,
        (Value::Number(x), Value::Number(y)) => {
            x.as_f64().unwrap_or(0.0).partial_cmp(&y.as_f64().unwrap_or(0.0)).unwrap_or(Ordering::Equal)
        }
        (a, b) => cell_text(a).to_lowercase().cmp(&cell_text(b).to_lowercase()),
    }
}

/// One page of the view: entities rendered as the API returns them (mirror and calculation
/// values included), and the cursor of the next page. One store page read, never more.
pub(super) async fn view_page(
    state: &AppState,
    user: &WebUser,
    bp: &Blueprint,
    view: &View,
) -> WebResult<Result<(Vec<Value>, Option<Next>), String>> {
    let query = match view.query(bp) {
        Ok(Some(q)) => match parse_query(&q) {
            Ok(q) => Some(q),
            Err(e) => return Ok(Err(e.to_string())),
        },
        Ok(None) => None,
        Err(e) => return Ok(Err(e)),
    };
    let after = match &view.after {
        Some(c) => match decode_cursor(c) {
            Ok(p) => Some(p),
            Err(_) => return Ok(Err("the page cursor is not valid; start from the first page".into())),
        },
        None => None,
    };
    let blueprints = state.blueprints(&user.org).await?;
    // One read of the permission documents for the restriction and the rendering.
    let (scope, visible) = crate::access::reader_and_restriction(state, &crate::web::respond::caller(user)).await?;
    let req = SearchRequest {
        after,
        visible: visible.as_ref(),
        ..SearchRequest::new(&blueprints, Some(&bp.identifier), query.as_ref(), view.limit)
    };
    if let Some(s) = view.sort.as_deref().filter(|s| store_sorts(bp, s)) {
        // Sorted by the store over the whole result, a page at a time (by offset).
        let page = match state.store.search_sorted(&user.org, &req, s, view.desc, view.offset).await {
            Ok(p) => p,
            Err(portolan_store::StoreError::Invalid(f)) => return Ok(Err(f.to_string())),
            Err(e) => return Err(e.into()),
        };
        let rows = render_for(state, &user.org, scope.as_ref(), &page.entities, &ReadOptions::default()).await?;
        return Ok(Ok((rows, page.more.then(|| Next::Offset(view.offset + u64::from(view.limit))))));
    }
    let page = match state.store.search(&user.org, &req).await {
        Ok(p) => p,
        Err(portolan_store::StoreError::Invalid(f)) => return Ok(Err(f.to_string())),
        Err(e) => return Err(e.into()),
    };
    let mut rows = render_for(state, &user.org, scope.as_ref(), &page.entities, &ReadOptions::default()).await?;
    if let Some(s) = &view.sort {
        // Computed columns (mirror, calculation) and relations are not stored sortably: these
        // sort the rows of this page.
        rows.sort_by(|a, b| {
            let o = cmp_values(&column_value(a, s), &column_value(b, s));
            if view.desc { o.reverse() } else { o }
        });
    }
    Ok(Ok((rows, page.next.map(|n| Next::Cursor(encode_cursor(n))))))
}

/// Where the next page starts.
pub(super) enum Next {
    Cursor(String),
    Offset(u64),
}

/// Does the store sort by this column (a meta column or a stored property)?
pub(super) fn store_sorts(bp: &Blueprint, col: &str) -> bool {
    matches!(col, "$identifier" | "$title" | "$createdAt" | "$updatedAt") || bp.schema.properties.contains_key(col)
}
