//! Entities (docs/reference/port-api.md §2): the stored shape, how writes combine with what is stored, and
//! validation against the blueprint.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::blueprint::{Blueprint, Property};
use crate::blueprint_check::serde_field_error;
use crate::ident::check_entity_id;
use crate::{FieldError, FieldErrors};

/// An entity as stored (stored properties only; mirror and calculation values are added on
/// read by the caller).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Entity {
    pub identifier: String,
    pub title: Option<String>,
    pub icon: Option<String>,
    pub blueprint: String,
    pub team: Vec<String>,
    pub properties: Map<String, Value>,
    pub relations: Map<String, Value>,
    pub created_at: String,
    pub created_by: String,
    pub updated_at: String,
    pub updated_by: String,
    #[serde(skip)]
    pub datasource: Option<String>,
}

/// The body of an entity write. Absent fields mean "not given" (which matters for merges).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct EntityInput {
    #[serde(default)]
    pub identifier: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    pub title: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    pub icon: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    pub team: Option<Value>,
    #[serde(default)]
    pub properties: Option<Map<String, Value>>,
    #[serde(default)]
    pub relations: Option<Map<String, Value>>,
    #[serde(default)]
    pub blueprint: Option<Value>,
}

/// Keep an explicit `null` as `Some(Null)` so "set to null" differs from "absent".
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

impl EntityInput {
    /// Parse a JSON body, naming the field with the wrong type.
    pub fn parse(v: &Value) -> Result<EntityInput, FieldError> {
        if !v.is_object() {
            return Err(FieldError::new("", "the entity must be a JSON object"));
        }
        // The path of a wrong field is tracked only once one is known to be wrong (tracking
        // allocates for every key on the way; bulk ingest parses thousands of entities).
        if let Ok(input) = EntityInput::deserialize(v) {
            return Ok(input);
        }
        serde_path_to_error::deserialize::<_, EntityInput>(v).map_err(|e| {
            let p = e.path().to_string();
            serde_field_error(if p == "." { "" } else { &p }, &e.inner().to_string())
        })
    }

    /// The identifier as a string, if one was given. A search-query identifier is reported.
    pub fn identifier_str(&self) -> Result<Option<&str>, FieldError> {
        match &self.identifier {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(Value::Object(_)) => Err(FieldError::new(
                "identifier",
                "search-query identifiers are not supported yet; send the entity's identifier as a string",
            )),
            Some(_) => Err(FieldError::new("identifier", "must be a string")),
        }
    }
}

/// How a write combines with the entity already stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Create; the caller rejects an existing entity with 409.
    Create,
    /// Replace everything but creation meta (`upsert=true`, PUT).
    Replace,
    /// Change only the fields given (`upsert=true&merge=true`, PATCH).
    Merge,
}

/// Who is writing and when (filled in by the caller; the domain reads no clock).
#[derive(Debug, Clone)]
pub struct WriteMeta {
    pub now: String,
    pub actor: String,
    pub datasource: Option<String>,
}

fn opt_string(errs: &mut FieldErrors, path: &str, v: &Option<Value>) -> Option<String> {
    match v {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errs.push(path, "must be a string or null");
            None
        }
    }
}

fn teams(errs: &mut FieldErrors, v: &Value) -> Vec<String> {
    match v {
        Value::Null => vec![],
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .enumerate()
            .filter_map(|(i, t)| match t {
                Value::String(s) => Some(s.clone()),
                _ => {
                    errs.push(format!("team[{i}]"), "must be a team identifier (string)");
                    None
                }
            })
            .collect(),
        _ => {
            errs.push("team", "must be a team identifier or an array of them");
            vec![]
        }
    }
}

/// Build the entity that a write produces from `input` and what is `stored`, then validate it
/// against `bp`. Every problem is reported at once.
pub fn compose(
    bp: &Blueprint,
    id: &str,
    input: &EntityInput,
    stored: Option<&Entity>,
    mode: WriteMode,
    meta: &WriteMeta,
) -> Result<Entity, FieldErrors> {
    let mut errs = FieldErrors::default();
    // A stored entity's identifier stands (a `_team` entity is named as its team, whose name may
    // hold a space).
    if stored.is_none()
        && let Err(e) = check_entity_id("identifier", id)
    {
        errs.0.push(e);
    }
    let merge_onto = if mode == WriteMode::Merge { stored } else { None };
    let title = match (&input.title, merge_onto) {
        (None, Some(s)) => s.title.clone(),
        (t, _) => opt_string(&mut errs, "title", t),
    };
    let icon = match (&input.icon, merge_onto) {
        (None, Some(s)) => s.icon.clone(),
        (i, _) => opt_string(&mut errs, "icon", i),
    };
    let team = match (&input.team, merge_onto) {
        (None, Some(s)) => s.team.clone(),
        (None, None) => vec![],
        (Some(t), _) => teams(&mut errs, t),
    };
    // Stored values of properties and relations the blueprint no longer has are dropped.
    let mut properties: Map<String, Value> = merge_onto
        .map(|s| s.properties.iter().filter(|(k, _)| bp.schema.properties.contains_key(*k)))
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (k, v) in input.properties.iter().flatten() {
        properties.insert(k.clone(), v.clone());
    }
    if stored.is_none() || mode != WriteMode::Merge {
        for (k, p) in &bp.schema.properties {
            if let (None, Some(d)) = (properties.get(k), p.keyword("default")) {
                properties.insert(k.clone(), d.clone());
            }
        }
    }
    let mut relations: Map<String, Value> = merge_onto
        .map(|s| s.relations.iter().filter(|(k, _)| bp.relations.contains_key(*k)))
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (k, v) in input.relations.iter().flatten() {
        relations.insert(k.clone(), v.clone());
    }
    let entity = Entity {
        identifier: id.to_string(),
        title,
        icon,
        blueprint: bp.identifier.clone(),
        team,
        properties,
        relations,
        created_at: stored.map_or_else(|| meta.now.clone(), |s| s.created_at.clone()),
        created_by: stored.map_or_else(|| meta.actor.clone(), |s| s.created_by.clone()),
        updated_at: meta.now.clone(),
        updated_by: meta.actor.clone(),
        datasource: meta.datasource.clone().or_else(|| stored.and_then(|s| s.datasource.clone())),
    };
    check_entity(&mut errs, bp, &entity);
    errs.into_result().map(|()| entity)
}

/// The deepest a property's value may nest (each object or array is a level). The audit
/// record's diff and an automation's event or changelog message wrap the entity a few levels
/// deeper, and each must stay readable by JSON parsers bounded at 128 levels (serde_json's).
pub const MAX_VALUE_DEPTH: usize = 64;

/// How many objects and arrays `v` nests (a scalar: 0).
fn nesting(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(nesting).max().unwrap_or(0),
        Value::Object(o) => 1 + o.values().map(nesting).max().unwrap_or(0),
        _ => 0,
    }
}

/// Validate stored properties and relations against the blueprint.
pub fn check_entity(errs: &mut FieldErrors, bp: &Blueprint, e: &Entity) {
    if let Some(t) = &e.title
        && t.chars().count() > 1000
    {
        errs.push("title", "must be at most 1000 characters");
    }
    for (k, v) in &e.properties {
        let path = format!("properties.{k}");
        let depth = nesting(v);
        if depth > MAX_VALUE_DEPTH {
            errs.push(
                path,
                format!("nests {depth} levels of objects and arrays; at most {MAX_VALUE_DEPTH} are accepted"),
            );
            continue;
        }
        match bp.schema.properties.get(k) {
            Some(p) => {
                if !v.is_null() {
                    check_value(errs, &path, p, v);
                }
            }
            None if bp.calculation_properties.contains_key(k) || bp.mirror_properties.contains_key(k) => {
                errs.push(path, "is a computed (mirror or calculation) property and cannot be written")
            }
            None => errs.push(path, format!("is not a property of blueprint {:?}", bp.identifier)),
        }
    }
    for r in &bp.schema.required {
        if e.properties.get(r).is_none_or(Value::is_null) {
            errs.push(format!("properties.{r}"), "is required by the blueprint");
        }
    }
    for (k, v) in &e.relations {
        let path = format!("relations.{k}");
        let Some(rel) = bp.relations.get(k) else {
            errs.push(path, format!("is not a relation of blueprint {:?}", bp.identifier));
            continue;
        };
        match v {
            Value::Null => {}
            Value::String(s) if !rel.many => {
                if let Err(e) = check_entity_id(&path, s) {
                    errs.0.push(e);
                }
            }
            Value::Array(a) if rel.many => {
                for (i, t) in a.iter().enumerate() {
                    match t.as_str() {
                        Some(s) => {
                            if let Err(e) = check_entity_id(&format!("{path}[{i}]"), s) {
                                errs.0.push(e);
                            }
                        }
                        None => errs.push(format!("{path}[{i}]"), "must be an entity identifier (string)"),
                    }
                }
            }
            _ if rel.many => errs.push(path, "must be an array of entity identifiers (the relation is many)"),
            _ => errs.push(path, "must be an entity identifier or null (the relation is single)"),
        }
    }
    for (k, rel) in &bp.relations {
        if rel.required && e.relations.get(k).is_none_or(Value::is_null) {
            errs.push(format!("relations.{k}"), format!("is required (relation to {:?})", rel.target));
        }
    }
}

/// The (target blueprint, identifier) pairs an entity's relations point at.
pub fn relation_targets(bp: &Blueprint, e: &Entity) -> Vec<(String, String, String, bool)> {
    let mut out = Vec::new();
    for (k, v) in &e.relations {
        let Some(rel) = bp.relations.get(k) else { continue };
        let ids: Vec<&str> = match v {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        for id in ids {
            out.push((k.clone(), rel.target.clone(), id.to_string(), rel.required));
        }
    }
    out
}

/// `null`, `boolean`, `number`, `string`, `array` or `object`.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn matches_type(ty: &str, v: &Value) -> bool {
    matches!(
        (ty, v),
        ("string", Value::String(_))
            | ("number", Value::Number(_))
            | ("boolean", Value::Bool(_))
            | ("object", Value::Object(_))
            | ("array", Value::Array(_))
    )
}

/// Check one value against a property definition (type, format, enum and the JSON-schema
/// keywords Port supports), pushing one error per broken rule.
pub fn check_value(errs: &mut FieldErrors, path: &str, p: &Property, v: &Value) {
    if !matches_type(p.ty.as_str(), v) {
        errs.push(path, format!("must be of type {} (got {})", p.ty.as_str(), type_name(v)));
        return;
    }
    if let Some(values) = &p.enum_values
        && !values.contains(v)
    {
        let list: Vec<String> = values.iter().map(ToString::to_string).collect();
        errs.push(path, format!("must be one of the enum values {}", list.join(", ")));
    }
    match v {
        Value::String(s) => {
            let len = s.chars().count() as u64;
            if let Some(min) = p.keyword("minLength").and_then(Value::as_u64)
                && len < min
            {
                errs.push(path, format!("must be at least {min} characters (minLength)"));
            }
            if let Some(max) = p.keyword("maxLength").and_then(Value::as_u64)
                && len > max
            {
                errs.push(path, format!("must be at most {max} characters (maxLength)"));
            }
            if let Some(pat) = p.keyword("pattern").and_then(Value::as_str)
                && let Ok(re) = regex::Regex::new(pat)
                && !re.is_match(s)
            {
                errs.push(path, format!("must match pattern {pat:?}"));
            }
            if let Some(f) = &p.format
                && let Err(m) = check_format(f, s)
            {
                errs.push(path, m);
            }
        }
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            let bound = |k: &str| p.keyword(k).and_then(Value::as_f64);
            if let Some(m) = bound("minimum").filter(|m| x < *m) {
                errs.push(path, format!("must be >= {m} (minimum)"));
            }
            if let Some(m) = bound("maximum").filter(|m| x > *m) {
                errs.push(path, format!("must be <= {m} (maximum)"));
            }
            if let Some(m) = bound("exclusiveMinimum").filter(|m| x <= *m) {
                errs.push(path, format!("must be > {m} (exclusiveMinimum)"));
            }
            if let Some(m) = bound("exclusiveMaximum").filter(|m| x >= *m) {
                errs.push(path, format!("must be < {m} (exclusiveMaximum)"));
            }
        }
        Value::Array(a) => check_array(errs, path, p, a),
        Value::Object(o)
            if p.format.as_deref() == Some("labeled-url") && !o.get("url").is_some_and(Value::is_string) =>
        {
            errs.push(format!("{path}.url"), "is required for a labeled URL");
        }
        _ => {}
    }
}

fn check_array(errs: &mut FieldErrors, path: &str, p: &Property, a: &[Value]) {
    let n = a.len() as u64;
    if let Some(min) = p.keyword("minItems").and_then(Value::as_u64).filter(|m| n < *m) {
        errs.push(path, format!("must have at least {min} items (minItems)"));
    }
    if let Some(max) = p.keyword("maxItems").and_then(Value::as_u64).filter(|m| n > *m) {
        errs.push(path, format!("must have at most {max} items (maxItems)"));
    }
    if p.keyword("uniqueItems") == Some(&Value::Bool(true)) {
        for (i, x) in a.iter().enumerate() {
            if a[..i].contains(x) {
                errs.push(format!("{path}[{i}]"), "duplicates an earlier item (uniqueItems)");
            }
        }
    }
    let Some(items) = &p.items else { return };
    let Some(ty) = items.get("type").and_then(Value::as_str) else { return };
    let enum_values = items.get("enum").and_then(Value::as_array);
    let format = items.get("format").and_then(Value::as_str);
    for (i, x) in a.iter().enumerate() {
        let ip = format!("{path}[{i}]");
        if !matches_type(ty, x) {
            errs.push(ip, format!("must be of type {ty} (got {})", type_name(x)));
            continue;
        }
        if enum_values.is_some_and(|e| !e.contains(x)) {
            errs.push(ip.clone(), "must be one of the items' enum values");
        }
        if let (Some(f), Some(s)) = (format, x.as_str())
            && let Err(m) = check_format(f, s)
        {
            errs.push(ip, m);
        }
    }
}

/// Port's string formats. Lenient where Port is (markdown, yaml, proto are free text).
pub fn check_format(format: &str, s: &str) -> Result<(), String> {
    let ok = match format {
        "date-time" | "timer" => chrono::DateTime::parse_from_rfc3339(s).is_ok(),
        "url" => {
            let scheme_end = s.find("://");
            scheme_end.is_some_and(|i| {
                i > 0 && s[..i].chars().all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c)) && s.len() > i + 3
            })
        }
        "email" | "idn-email" | "user" => {
            let parts: Vec<&str> = s.split('@').collect();
            parts.len() == 2 && !parts[0].is_empty() && parts[1].contains('.') && !s.contains(char::is_whitespace)
        }
        "ipv4" => s.parse::<std::net::Ipv4Addr>().is_ok(),
        "ipv6" => s.parse::<std::net::Ipv6Addr>().is_ok(),
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        let what = match format {
            "date-time" | "timer" => "an ISO-8601 date-time such as 2024-01-31T12:00:00Z",
            "url" => "a URL with a scheme, such as https://example.com",
            "email" | "idn-email" | "user" => "an email address",
            "ipv4" => "an IPv4 address",
            _ => "an IPv6 address",
        };
        Err(format!("must be {what} (format {format})"))
    }
}
