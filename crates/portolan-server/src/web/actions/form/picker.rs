//! The entity picker of an action form: the entities an entity-format input offers, and its
//! options.

use portolan_core::Entity;
use portolan_core::search::parse_query;
use portolan_store::SearchRequest;
use serde_json::{Map, Value, json};

use super::super::condition_query;
use super::{OptionView, option_label};
use crate::state::AppState;
use crate::web::WebResult;
use crate::web::session::WebUser;

/// Search the entities an entity input offers: its blueprint, its `dataset` (resolved), and
/// `text` in the identifier or title. A dataset that does not parse offers nothing.
pub(in crate::web) async fn picker_entities(
    state: &AppState,
    user: &WebUser,
    d: &Map<String, Value>,
    text: &str,
    limit: u32,
) -> WebResult<Vec<Entity>> {
    let def = if d.get("type").and_then(Value::as_str) == Some("array") {
        d.get("items").and_then(Value::as_object).cloned().unwrap_or_default()
    } else {
        d.clone()
    };
    let Some(bp) = def.get("blueprint").and_then(Value::as_str) else { return Ok(vec![]) };
    let mut rules = Vec::new();
    if !text.is_empty() {
        rules.push(json!({"combinator": "or", "rules": [
            {"property": "$identifier", "operator": "contains", "value": text},
            {"property": "$title", "operator": "contains", "value": text}]}));
    }
    let dataset = d.get("dataset").or_else(|| def.get("dataset")).cloned().unwrap_or(Value::Null);
    let query = match condition_query(&dataset, rules.clone()) {
        Some(q) => q,
        None if rules.is_empty() => Value::Null,
        None => json!({"combinator": "and", "rules": rules}),
    };
    let parsed = if query.is_null() {
        None
    } else {
        match parse_query(&query) {
            Ok(q) => Some(q),
            Err(_) => return Ok(vec![]),
        }
    };
    let bps = state.blueprints(&user.org).await?;
    if !bps.contains_key(bp) {
        return Ok(vec![]);
    }
    let visible = crate::access::read_restriction(state, &crate::web::respond::caller(user)).await?;
    let req = SearchRequest { visible: visible.as_ref(), ..SearchRequest::new(&bps, Some(bp), parsed.as_ref(), limit) };
    let mut found = state.store.search(&user.org, &req).await?.entities;
    if let Some(sort) = d.get("sort") {
        let key = sort["property"].as_str().unwrap_or("$title").to_string();
        let field = |e: &Entity| -> String {
            match key.as_str() {
                "$identifier" => e.identifier.clone(),
                "$title" => e.title.clone().unwrap_or_default(),
                k => e.properties.get(k).map(option_label).unwrap_or_default(),
            }
        };
        found.sort_by_key(|e| field(e));
        if sort["order"].as_str() == Some("DESC") {
            found.reverse();
        }
    }
    Ok(found)
}

/// The options of an entity picker: the matching entities, plus the selected ones the search
/// did not return (so a search never drops a choice).
pub(in crate::web) fn entity_options(found: &[Entity], selected: &[String]) -> Vec<OptionView> {
    let mut out: Vec<OptionView> = Vec::new();
    for s in selected {
        if !found.iter().any(|e| &e.identifier == s) {
            out.push(OptionView { value: s.clone(), label: s.clone(), selected: true });
        }
    }
    for e in found {
        let label = match &e.title {
            Some(t) if t != &e.identifier => format!("{t} ({})", e.identifier),
            _ => e.identifier.clone(),
        };
        out.push(OptionView { value: e.identifier.clone(), label, selected: selected.contains(&e.identifier) });
    }
    out
}
