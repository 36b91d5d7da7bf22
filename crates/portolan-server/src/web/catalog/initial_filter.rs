//! The saved initial filter of a catalog page: what a page shows when its link names no filter.

use axum::extract::{Path, Request, State};
use portolan_core::Blueprint;
use serde_json::{Value, json};

use super::view::{MAX_RULES, OPERATORS, Rule, View};
use crate::state::AppState;
use crate::web::WebResult;
use crate::web::form::signed_form;
use crate::web::respond::{require_admin, see_other};
use crate::web::session::WebUser;
use crate::web::{WebError, format};

/// The (search text, rules) of a stored initial filter (`{"q", "rules": [[p, o, v], …]}`); rules
/// with an unknown operator are dropped, as in the query string.
pub(super) fn initial_rules(filter: &Value) -> (Option<String>, Vec<Rule>) {
    let q = filter.get("q").and_then(Value::as_str).filter(|q| !q.is_empty()).map(str::to_string);
    let rules = filter
        .get("rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| {
            let s = |i: usize| r.get(i).and_then(Value::as_str).map(str::to_string);
            let (p, o, v) = (s(0)?, s(1)?, s(2).unwrap_or_default());
            (!p.is_empty() && OPERATORS.contains(&o.as_str())).then(|| Rule::new(p, o, v))
        })
        .take(MAX_RULES)
        .collect();
    (q, rules)
}

/// The filter in words: `search "x" and Language = rust and …`.
pub(super) fn describe_filter(bp: &Blueprint, q: Option<&str>, rules: &[Rule]) -> String {
    let mut parts: Vec<String> = q.map(|q| format!("search \"{q}\"")).into_iter().collect();
    for Rule { fp: p, fo: o, fv: v } in rules {
        let title = format::column_title(bp, p);
        parts.push(if matches!(o.as_str(), "isEmpty" | "isNotEmpty") {
            format!("{title} {o}")
        } else {
            format!("{title} {o} {v}")
        });
    }
    parts.join(" and ")
}

/// `POST /ui/catalog/{bp}/initial-filter` (admins; CSRF): save the filter of the posted view
/// (`q`, `fp`/`fo`/`fv`) as the page's initial filter, or remove it (`remove`, or an empty
/// filter); then back to that view.
pub async fn initial_filter_save(
    State(state): State<AppState>,
    user: WebUser,
    Path(bp_id): Path<String>,
    req: Request,
) -> WebResult {
    let (_, form) = signed_form(&user, req).await?;
    require_admin(&user, "change a page's initial filter")?;
    let bps = state.blueprints(&user.org).await?;
    let bp = bps.get(&bp_id).ok_or_else(|| WebError::NotFound(format!("There is no blueprint \"{bp_id}\".")))?;
    let mut view = View::parse(&form, bp);
    let remove = form.get("remove").is_some() || (view.q.is_none() && view.filters.is_empty());
    if remove {
        state.store.set_initial_filter(&user.org, &bp.identifier, None).await?;
    } else {
        view.query(bp).map_err(WebError::BadRequest)?;
        let rules: Vec<Value> = view.filters.iter().map(|r| json!([r.fp, r.fo, r.fv])).collect();
        let saved = portolan_store::InitialFilter {
            filter: json!({"q": view.q, "rules": rules}),
            updated_at: crate::ops::audit::now_iso(),
            updated_by: user.user.email.clone(),
        };
        state.store.set_initial_filter(&user.org, &bp.identifier, Some(&saved)).await?;
    }
    view.has_initial = !remove;
    Ok(see_other(&view.link(&bp.identifier, &[("after", None), ("o", None)])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_rules_drop_unknown_operators_and_read_in_words() {
        let (q, rules) = initial_rules(&json!({"q": "api", "rules": [["lang", "=", "rust"], ["x", "like", "y"],
                                                                    ["size", "isEmpty"], ["", "=", "z"]]}));
        assert_eq!(q.as_deref(), Some("api"));
        assert_eq!(rules, [Rule::new("lang", "=", "rust"), Rule::new("size", "isEmpty", "")]);
        let bp: Blueprint = serde_json::from_value(json!({"identifier": "svc", "title": "Service",
            "schema": {"properties": {"lang": {"type": "string", "title": "Language"}}}}))
        .unwrap();
        assert_eq!(describe_filter(&bp, q.as_deref(), &rules), "search \"api\" and Language = rust and size isEmpty");
        assert_eq!(initial_rules(&json!({"q": ""})), (None, vec![]));
    }
}
