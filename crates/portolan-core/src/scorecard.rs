//! Scorecards (docs/reference/port-api.md §6): the definition as Port accepts it, checked with
//! every error at its field path, and the level rule (§6.2).
//!
//! A scorecard's `filter` and each rule's `query` are `{combinator, conditions}` trees in Port's
//! search language (§3); [`check_scorecard`] translates them to [`Query`] (the store's search
//! compiler evaluates them — there is no evaluator here) with error paths in the scorecard's
//! own terms (`rules[2].query.conditions[0].operator`). A condition may carry `"not": true`,
//! which negates `isEmpty` / `isNotEmpty` (as Port's schema allows).

use serde_json::{Map, Value, json};

use crate::error::{FieldError, FieldErrors, join_path};
use crate::ident::{MAX_IDENT, check_entity_id, check_property_id};
use crate::search::{Query, parse_query};

/// Keys the server adds to a scorecard it returns; ignored in a request body.
pub const SERVER_KEYS: &[&str] = &["id", "createdAt", "createdBy", "updatedAt", "updatedBy"];

/// Most rules of one scorecard.
pub const MAX_RULES: usize = 100;
/// Most levels of one scorecard.
pub const MAX_LEVELS: usize = 20;

/// One level, lowest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Level {
    pub title: String,
    pub color: Option<String>,
}

/// One rule: passing it (and every rule of its level and of the levels below) earns `level`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScRule {
    pub identifier: String,
    pub level: String,
    pub query: Query,
}

/// A checked scorecard.
#[derive(Debug, Clone, PartialEq)]
pub struct Scorecard {
    pub identifier: String,
    pub blueprint: String,
    /// Lowest first; the first is the base level every evaluated entity has.
    pub levels: Vec<Level>,
    /// Only entities matching it are evaluated (`None`: all of the blueprint's).
    pub filter: Option<Query>,
    pub rules: Vec<ScRule>,
}

/// Port's default levels.
pub fn default_levels() -> Value {
    json!([
        {"title": "Basic", "color": "paleBlue"},
        {"title": "Bronze", "color": "bronze"},
        {"title": "Silver", "color": "silver"},
        {"title": "Gold", "color": "gold"}
    ])
}

impl Scorecard {
    /// The level an entity reaches given whether each rule (in [`Scorecard::rules`] order)
    /// passed: the highest level L such that every rule of L and of every lower level passed;
    /// the first level when a rule of the second fails (or there is only one level).
    pub fn level_of(&self, passed: &[bool]) -> &str {
        let mut reached = 0;
        for (i, level) in self.levels.iter().enumerate().skip(1) {
            let all = self.rules.iter().zip(passed).filter(|(r, _)| r.level == level.title).all(|(_, ok)| *ok);
            if !all {
                break;
            }
            reached = i;
        }
        self.levels.get(reached).map_or("", |l| l.title.as_str())
    }

    /// The level titles, lowest first.
    pub fn level_titles(&self) -> Vec<String> {
        self.levels.iter().map(|l| l.title.clone()).collect()
    }
}

/// Check a scorecard body (server keys already removed) for `blueprint`, every error at once.
/// Fills in Port's defaults (`levels`, `blueprint`) in `body`.
pub fn check_scorecard(blueprint: &str, body: &mut Map<String, Value>) -> Result<Scorecard, FieldErrors> {
    let mut errs = FieldErrors::default();
    match body.get("blueprint") {
        None => {
            body.insert("blueprint".into(), json!(blueprint));
        }
        Some(Value::String(b)) if b == blueprint => {}
        Some(_) => errs.push("blueprint", format!("must be {blueprint:?}, the blueprint in the URL")),
    }
    let identifier = match body.get("identifier") {
        None => {
            errs.push("", "must have required property 'identifier'");
            String::new()
        }
        Some(Value::String(id)) => {
            if let Err(e) = check_entity_id("identifier", id) {
                errs.0.push(e);
            } else if id.chars().count() > MAX_IDENT {
                errs.push("identifier", format!("must be at most {MAX_IDENT} characters"));
            }
            id.clone()
        }
        Some(_) => {
            errs.push("identifier", "must be string");
            String::new()
        }
    };
    match body.get("title") {
        None => errs.push("", "must have required property 'title'"),
        Some(Value::String(_)) => {}
        Some(_) => errs.push("title", "must be string"),
    }
    if !body.contains_key("levels") {
        body.insert("levels".into(), default_levels());
    }
    let levels = check_levels(&body["levels"], &mut errs);
    let filter = match body.get("filter") {
        None | Some(Value::Null) => None,
        Some(f) => conditions(f, "filter", &mut errs),
    };
    let mut rules = Vec::new();
    match body.get("rules") {
        None => errs.push("", "must have required property 'rules'"),
        Some(Value::Array(items)) => {
            if items.len() > MAX_RULES {
                errs.push("rules", format!("must NOT have more than {MAX_RULES} items"));
            }
            let mut seen = Vec::new();
            for (i, r) in items.iter().enumerate() {
                if let Some(rule) = check_rule(r, &format!("rules[{i}]"), &levels, &mut seen, &mut errs) {
                    rules.push(rule);
                }
            }
        }
        Some(_) => errs.push("rules", "must be array"),
    }
    errs.into_result()?;
    Ok(Scorecard { identifier, blueprint: blueprint.to_string(), levels, filter, rules })
}

fn check_levels(v: &Value, errs: &mut FieldErrors) -> Vec<Level> {
    let Some(items) = v.as_array() else {
        errs.push("levels", "must be array");
        return Vec::new();
    };
    if items.is_empty() {
        errs.push("levels", "must NOT have fewer than 1 items");
    }
    if items.len() > MAX_LEVELS {
        errs.push("levels", format!("must NOT have more than {MAX_LEVELS} items"));
    }
    let mut out: Vec<Level> = Vec::new();
    for (i, l) in items.iter().enumerate() {
        let path = format!("levels[{i}]");
        let Some(o) = l.as_object() else {
            errs.push(path, "must be object {title, color}");
            continue;
        };
        if let Some(k) = o.keys().find(|k| !["title", "color"].contains(&k.as_str())) {
            errs.push(&path, format!("must NOT have additional properties ('{k}')"));
        }
        let color = match o.get("color") {
            None => None,
            Some(Value::String(c)) => Some(c.clone()),
            Some(_) => {
                errs.push(join_path(&path, "color"), "must be string");
                None
            }
        };
        match o.get("title") {
            Some(Value::String(t)) if !t.is_empty() => {
                if out.iter().any(|l| &l.title == t) {
                    errs.push(join_path(&path, "title"), format!("repeats level {t:?}; level titles must be unique"));
                }
                out.push(Level { title: t.clone(), color });
            }
            Some(_) => errs.push(join_path(&path, "title"), "must be a non-empty string"),
            None => errs.push(path, "must have required property 'title'"),
        }
    }
    out
}

fn check_rule(
    v: &Value,
    path: &str,
    levels: &[Level],
    seen: &mut Vec<String>,
    errs: &mut FieldErrors,
) -> Option<ScRule> {
    let Some(o) = v.as_object() else {
        errs.push(path, "must be object {identifier, title, level, query}");
        return None;
    };
    let before = errs.0.len();
    let identifier = match o.get("identifier") {
        Some(Value::String(id)) => {
            if let Err(e) = check_property_id(&join_path(path, "identifier"), id) {
                errs.0.push(e);
            } else if seen.contains(id) {
                errs.push(
                    join_path(path, "identifier"),
                    format!("repeats rule {id:?}; rule identifiers must be unique"),
                );
            }
            seen.push(id.clone());
            id.clone()
        }
        Some(_) => {
            errs.push(join_path(path, "identifier"), "must be string");
            String::new()
        }
        None => {
            errs.push(path, "must have required property 'identifier'");
            String::new()
        }
    };
    match o.get("title") {
        None | Some(Value::String(_)) => {}
        Some(_) => errs.push(join_path(path, "title"), "must be string"),
    }
    match o.get("description") {
        None | Some(Value::String(_)) | Some(Value::Null) => {}
        Some(_) => errs.push(join_path(path, "description"), "must be string"),
    }
    let level = match o.get("level") {
        Some(Value::String(l)) => {
            let lpath = join_path(path, "level");
            match levels.iter().position(|x| &x.title == l) {
                None => {
                    let titles: Vec<&str> = levels.iter().map(|l| l.title.as_str()).collect();
                    errs.push(lpath, format!("must be one of the scorecard's levels ({})", titles.join(", ")));
                }
                Some(0) => errs
                    .push(lpath, format!("must not be {l:?}, the first (base) level: every evaluated entity has it")),
                Some(_) => {}
            }
            l.clone()
        }
        Some(_) => {
            errs.push(join_path(path, "level"), "must be string");
            String::new()
        }
        None => {
            errs.push(path, "must have required property 'level'");
            String::new()
        }
    };
    let query = match o.get("query") {
        Some(q) => conditions(q, &join_path(path, "query"), errs),
        None => {
            errs.push(path, "must have required property 'query'");
            None
        }
    };
    if errs.0.len() > before {
        return None;
    }
    Some(ScRule { identifier, level, query: query? })
}

/// A `{combinator, conditions}` tree at `path` → a [`Query`] (errors pushed, `None` on error).
fn conditions(v: &Value, path: &str, errs: &mut FieldErrors) -> Option<Query> {
    let translated = match to_rules(v, "") {
        Ok(t) => t,
        Err(e) => {
            errs.0.push(e.under(path));
            return None;
        }
    };
    match parse_query(&translated) {
        Ok(q) => Some(q),
        Err(e) => {
            errs.push(join_path(path, &rules_to_conditions(&e.path)), e.message);
            None
        }
    }
}

/// Port's scorecard conditions → the search language's rules: groups' `conditions` become
/// `rules`; `"not": true` negates `isEmpty` / `isNotEmpty`.
fn to_rules(v: &Value, path: &str) -> Result<Value, FieldError> {
    let Some(o) = v.as_object() else {
        return Err(FieldError::new(path, "must be object"));
    };
    if o.contains_key("combinator") || o.contains_key("conditions") {
        if o.contains_key("rules") {
            return Err(FieldError::new(path, "must NOT have additional properties ('rules'); use 'conditions'"));
        }
        let mut out = Map::new();
        for (k, val) in o {
            if k == "conditions" {
                let cpath = join_path(path, "conditions");
                let items = val.as_array().ok_or_else(|| FieldError::new(&cpath, "must be array"))?;
                let rules = items
                    .iter()
                    .enumerate()
                    .map(|(i, c)| to_rules(c, &join_path(&cpath, &format!("[{i}]"))))
                    .collect::<Result<Vec<_>, _>>()?;
                out.insert("rules".into(), Value::Array(rules));
            } else {
                out.insert(k.clone(), val.clone());
            }
        }
        if !out.contains_key("rules") {
            return Err(FieldError::new(path, "must have required property 'conditions'"));
        }
        return Ok(Value::Object(out));
    }
    let mut out = o.clone();
    match out.remove("not") {
        None | Some(Value::Bool(false)) => {}
        Some(Value::Bool(true)) => {
            let flipped = match out.get("operator").and_then(Value::as_str) {
                Some("isEmpty") => "isNotEmpty",
                Some("isNotEmpty") => "isEmpty",
                _ => return Err(FieldError::new(join_path(path, "not"), "is allowed only with isEmpty / isNotEmpty")),
            };
            out.insert("operator".into(), json!(flipped));
        }
        Some(_) => return Err(FieldError::new(join_path(path, "not"), "must be boolean")),
    }
    Ok(Value::Object(out))
}

/// A search-language path (`rules[0].rules[1].value`) in scorecard terms
/// (`conditions[0].conditions[1].value`).
pub fn rules_to_conditions(path: &str) -> String {
    path.split('.')
        .map(|seg| match seg.strip_prefix("rules") {
            Some(rest) if rest.is_empty() || rest.starts_with('[') => format!("conditions{rest}"),
            _ => seg.to_string(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sc(v: Value) -> Result<Scorecard, FieldErrors> {
        let mut m = v.as_object().cloned().unwrap();
        check_scorecard("service", &mut m)
    }

    fn rule(id: &str, level: &str, cond: Value) -> Value {
        json!({"identifier": id, "title": id, "level": level, "query": {"combinator": "and", "conditions": [cond]}})
    }

    #[test]
    fn levels_follow_ports_rule() {
        let s = sc(json!({"identifier": "q", "title": "Q", "rules": [
            rule("b1", "Bronze", json!({"property": "a", "operator": "isNotEmpty"})),
            rule("b2", "Bronze", json!({"property": "b", "operator": "isNotEmpty"})),
            rule("s1", "Silver", json!({"property": "c", "operator": "isNotEmpty"})),
            rule("g1", "Gold", json!({"property": "d", "operator": "isNotEmpty"})),
        ]}))
        .unwrap();
        assert_eq!(s.level_of(&[false, false, false, false]), "Basic");
        assert_eq!(s.level_of(&[true, false, true, true]), "Basic", "a Bronze rule failing keeps Basic");
        assert_eq!(s.level_of(&[true, true, false, true]), "Bronze", "Gold passes but Silver fails");
        assert_eq!(s.level_of(&[true, true, true, false]), "Silver");
        assert_eq!(s.level_of(&[true, true, true, true]), "Gold");
    }

    #[test]
    fn a_level_without_rules_is_reached_with_the_one_below() {
        let s = sc(json!({"identifier": "q", "title": "Q", "rules": [
            rule("g", "Gold", json!({"property": "d", "operator": "isNotEmpty"})),
        ]}))
        .unwrap();
        assert_eq!(s.level_of(&[false]), "Silver");
        assert_eq!(s.level_of(&[true]), "Gold");
    }

    #[test]
    fn errors_carry_scorecard_paths() {
        let e = sc(json!({"identifier": "q", "title": "Q", "rules": [
            rule("a", "Bronze", json!({"property": "a", "operator": "isNotEmpty"})),
            rule("b", "Bronze", json!({"property": "a", "operator": "isNotEmpty"})),
            {"identifier": "c", "title": "c", "level": "Silver",
             "query": {"combinator": "and", "conditions": [{"property": "x", "operator": "nope", "value": 1}]}},
        ]}))
        .unwrap_err();
        assert_eq!(e.0[0].path, "rules[2].query.conditions[0].operator", "{e}");
        let e = sc(json!({"identifier": "q", "title": "Q", "rules": [rule("a", "Basic", json!({"property": "a", "operator": "isEmpty"})),
            rule("a", "Platinum", json!({"property": "a", "operator": "isEmpty"}))]}))
        .unwrap_err();
        let paths: Vec<&str> = e.0.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["rules[0].level", "rules[1].identifier", "rules[1].level"]);
        let e = sc(json!({"title": "Q", "filter": {"combinator": "and", "conditions": [{"combinator": "or", "conditions": [{"property": "x"}]}]}, "rules": []}))
            .unwrap_err();
        let paths: Vec<&str> = e.0.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["", "filter.conditions[0].conditions[0]"]);
    }

    #[test]
    fn not_negates_emptiness() {
        let s = sc(json!({"identifier": "q", "title": "Q", "rules": [
            rule("a", "Bronze", json!({"property": "a", "operator": "isEmpty", "not": true}))]}))
        .unwrap();
        let want = parse_query(&json!({"combinator": "and", "rules": [{"property": "a", "operator": "isNotEmpty"}]}));
        assert_eq!(s.rules[0].query, want.unwrap());
    }
}
