//! User inputs of a self-service action (§5.2): the definitions (`trigger.userInputs`) and the
//! values a run is given (`properties` of `POST /v1/actions/{id}/runs`).

use serde_json::{Map, Value};

use super::jq::{as_jq_query, looks_like_jq};
use crate::entity::type_name;
use crate::error::{FieldErrors, join_path};
use crate::ident::check_property_id;

/// Input types (§5.2, the blueprint property types).
pub const INPUT_TYPES: &[&str] = &["string", "number", "boolean", "object", "array"];

/// Input formats (§5.2).
pub const INPUT_FORMATS: &[&str] = &[
    "date-time",
    "url",
    "email",
    "ipv4",
    "ipv6",
    "yaml",
    "entity",
    "user",
    "team",
    "proto",
    "markdown",
    "multi-line",
    "labeled-url",
];

/// The result of [`check_inputs`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CheckedInputs {
    /// The given values plus the defaults of inputs not given; inputs with `visible: false`
    /// are dropped (given or defaulted), as are inputs given `null` without a default.
    pub values: Map<String, Value>,
    /// Every entity named by an `entity`-format input (or array of them), for the caller to
    /// check that it exists.
    pub entity_refs: Vec<EntityRef>,
    /// Ids of the inputs defined with `encryption`, in definition order (trigger data
    /// `action.encryptedProperties`).
    pub encrypted: Vec<String>,
}

/// One entity an input value names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityRef {
    /// `properties.<id>` or `properties.<id>[i]`.
    pub path: String,
    pub blueprint: String,
    pub identifier: String,
}

fn is_jq(v: &Value) -> bool {
    as_jq_query(v).is_some()
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

/// A `{"jqQuery": …}` whose query is not a string.
fn check_jq_shape(errs: &mut FieldErrors, path: &str, v: &Value) -> bool {
    if !looks_like_jq(v) {
        return false;
    }
    match v.as_object() {
        Some(o) if o.len() != 1 => {
            errs.push(path, "a jq value must be {\"jqQuery\": \"<jq>\"} with no other keys");
        }
        _ if !is_jq(v) => errs.push(join_path(path, "jqQuery"), "must be a string (a jq query)"),
        _ => {}
    }
    true
}

/// `bool` or `{"jqQuery": …}`.
pub(super) fn check_bool_or_jq(errs: &mut FieldErrors, path: &str, v: &Value) {
    if !v.is_boolean() && !check_jq_shape(errs, path, v) {
        errs.push(path, "must be a boolean or {\"jqQuery\": \"<jq>\"}");
    }
}

/// Check a `userInputs` object (the three layouts of §5.2). `path` is where it sits
/// (`trigger.userInputs`).
pub(super) fn check_user_inputs(errs: &mut FieldErrors, path: &str, ui: &Value) {
    let Some(ui) = ui.as_object() else {
        errs.push(path, "must be an object ({properties, required?, titles?, order? | steps?})");
        return;
    };
    for k in ui.keys() {
        if !["properties", "required", "titles", "order", "steps"].contains(&k.as_str()) {
            errs.push(join_path(path, k), "is not a field of userInputs (properties, required, titles, order, steps)");
        }
    }
    let empty = Map::new();
    let props = match ui.get("properties") {
        Some(Value::Object(p)) => p,
        Some(_) => {
            errs.push(join_path(path, "properties"), "must be an object of input definitions");
            &empty
        }
        None => {
            errs.push(join_path(path, "properties"), "is required");
            &empty
        }
    };
    let titles = match ui.get("titles") {
        Some(Value::Object(t)) => t,
        Some(_) => {
            errs.push(join_path(path, "titles"), "must be an object of section titles");
            &empty
        }
        None => &empty,
    };
    let pp = join_path(path, "properties");
    for (id, def) in props {
        let ip = join_path(&pp, id);
        if let Err(e) = check_property_id(&ip, id) {
            errs.0.push(e);
        }
        check_definition(errs, &ip, def, props);
    }
    let tp = join_path(path, "titles");
    for (id, t) in titles {
        let p = join_path(&tp, id);
        if props.contains_key(id) {
            errs.push(&p, format!("names input `{id}`; a section title needs an id of its own"));
        }
        check_title(errs, &p, t);
    }
    match ui.get("required") {
        None => {}
        Some(Value::Array(ids)) => {
            for (i, id) in ids.iter().enumerate() {
                let p = format!("{}[{i}]", join_path(path, "required"));
                match id.as_str() {
                    Some(s) if props.contains_key(s) => {}
                    Some(s) => errs.push(p, format!("names input `{s}`, which does not exist")),
                    None => errs.push(p, "must be a string (an input id)"),
                }
            }
        }
        Some(v) if !check_jq_shape(errs, &join_path(path, "required"), v) => {
            errs.push(join_path(path, "required"), "must be an array of input ids or {\"jqQuery\": \"<jq>\"}");
        }
        Some(_) => {}
    }
    if ui.contains_key("order") && ui.contains_key("steps") {
        errs.push(join_path(path, "steps"), "cannot be used together with `order` (choose one layout)");
    }
    let known = |s: &str| props.contains_key(s) || titles.contains_key(s);
    if let Some(order) = ui.get("order") {
        check_order(errs, &join_path(path, "order"), order, &known);
    }
    match ui.get("steps") {
        None => {}
        Some(Value::Array(steps)) => {
            for (i, step) in steps.iter().enumerate() {
                let sp = format!("{}[{i}]", join_path(path, "steps"));
                let Some(s) = step.as_object() else {
                    errs.push(sp, "must be an object {title, order, visible?}");
                    continue;
                };
                for k in s.keys() {
                    if !["title", "order", "visible"].contains(&k.as_str()) {
                        errs.push(join_path(&sp, k), "is not a field of a step (title, order, visible)");
                    }
                }
                match s.get("title") {
                    Some(Value::String(t)) if !t.trim().is_empty() => {}
                    Some(_) => errs.push(join_path(&sp, "title"), "must be a non-empty string"),
                    None => errs.push(join_path(&sp, "title"), "is required"),
                }
                match s.get("order") {
                    Some(o) => check_order(errs, &join_path(&sp, "order"), o, &known),
                    None => errs.push(join_path(&sp, "order"), "is required"),
                }
                if let Some(v) = s.get("visible") {
                    check_bool_or_jq(errs, &join_path(&sp, "visible"), v);
                }
            }
        }
        Some(_) => errs.push(join_path(path, "steps"), "must be an array of steps"),
    }
}

fn check_order(errs: &mut FieldErrors, path: &str, order: &Value, known: &dyn Fn(&str) -> bool) {
    let Some(ids) = order.as_array() else {
        errs.push(path, "must be an array of input ids");
        return;
    };
    for (i, id) in ids.iter().enumerate() {
        let p = format!("{path}[{i}]");
        match id.as_str() {
            Some(s) if known(s) => {}
            Some(s) => errs.push(p, format!("names input `{s}`, which does not exist")),
            None => errs.push(p, "must be a string (an input id)"),
        }
    }
}

fn check_title(errs: &mut FieldErrors, path: &str, t: &Value) {
    let Some(t) = t.as_object() else {
        errs.push(path, "must be an object {title, description?, visible?}");
        return;
    };
    for k in t.keys() {
        if !["title", "description", "visible"].contains(&k.as_str()) {
            errs.push(join_path(path, k), "is not a field of a section title (title, description, visible)");
        }
    }
    match t.get("title") {
        Some(Value::String(s)) if (1..=140).contains(&s.chars().count()) => {}
        Some(_) => errs.push(join_path(path, "title"), "must be a string of 1 to 140 characters"),
        None => errs.push(join_path(path, "title"), "is required"),
    }
    match t.get("description") {
        None => {}
        Some(Value::String(s)) if s.chars().count() <= 1000 => {}
        Some(_) => errs.push(join_path(path, "description"), "must be a string of at most 1000 characters"),
    }
    if let Some(v) = t.get("visible") {
        check_bool_or_jq(errs, &join_path(path, "visible"), v);
    }
}

/// Which keywords belong to which input type.
const STRING_KEYWORDS: &[&str] = &["minLength", "maxLength", "pattern"];
const NUMBER_KEYWORDS: &[&str] = &["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"];
const ARRAY_KEYWORDS: &[&str] = &["minItems", "maxItems", "uniqueItems", "items"];

/// One input definition (`properties.<id>`); `all` are its siblings (for `dependsOn`).
fn check_definition(errs: &mut FieldErrors, path: &str, def: &Value, all: &Map<String, Value>) {
    let Some(d) = def.as_object() else {
        errs.push(path, "must be an object (an input definition with a `type`)");
        return;
    };
    let ty = match d.get("type") {
        Some(Value::String(t)) if INPUT_TYPES.contains(&t.as_str()) => Some(t.as_str()),
        Some(_) => {
            errs.push(join_path(path, "type"), format!("must be one of {}", INPUT_TYPES.join(", ")));
            None
        }
        None => {
            errs.push(join_path(path, "type"), "is required");
            None
        }
    };
    for k in ["title", "description", "icon"] {
        if let Some(v) = d.get(k)
            && !v.is_string()
        {
            errs.push(join_path(path, k), "must be a string");
        }
    }
    if let Some(ty) = ty {
        for (kws, owner) in [(STRING_KEYWORDS, "string"), (NUMBER_KEYWORDS, "number"), (ARRAY_KEYWORDS, "array")] {
            for k in kws {
                if d.contains_key(*k) && ty != owner {
                    errs.push(join_path(path, k), format!("applies only to {owner} inputs (this input is {ty})"));
                }
            }
        }
    }
    check_keywords(errs, path, d);
    if let Some(f) = d.get("format") {
        check_format_def(errs, path, f, ty, d);
    }
    if let Some(items) = d.get("items")
        && ty == Some("array")
    {
        check_items(errs, &join_path(path, "items"), items);
    }
    if let Some(e) = d.get("enum") {
        let ep = join_path(path, "enum");
        if !check_jq_shape(errs, &ep, e) {
            match e.as_array() {
                Some(values) => {
                    let item_ty = if ty == Some("array") {
                        d.get("items").and_then(|i| i.get("type")).and_then(Value::as_str)
                    } else {
                        ty
                    };
                    for (i, v) in values.iter().enumerate() {
                        if let Some(t) = item_ty
                            && !matches_type(t, v)
                            && !v.is_null()
                        {
                            errs.push(format!("{ep}[{i}]"), format!("must be of type {t} (got {})", type_name(v)));
                        }
                    }
                }
                None => errs.push(&ep, "must be an array of allowed values or {\"jqQuery\": \"<jq>\"}"),
            }
        }
    }
    if let Some(v) = d.get("default")
        && !check_jq_shape(errs, &join_path(path, "default"), v)
        && ty.is_some()
    {
        let mut sub = FieldErrors::default();
        let mut refs = Vec::new();
        check_value(&mut sub, "", d, v, &mut refs);
        for e in sub.0 {
            errs.push(join_path(&join_path(path, "default"), &e.path), format!("(default) {}", e.message));
        }
    }
    if let Some(v) = d.get("pattern") {
        let pp = join_path(path, "pattern");
        if !check_jq_shape(errs, &pp, v) {
            match v.as_str() {
                Some(p) => {
                    if let Err(e) = regex::Regex::new(p) {
                        errs.push(pp, format!("is not a valid regular expression: {e}"));
                    }
                }
                None => errs.push(pp, "must be a string (a regular expression) or {\"jqQuery\": \"<jq>\"}"),
            }
        }
    }
    for k in ["visible", "disabled"] {
        if let Some(v) = d.get(k) {
            check_bool_or_jq(errs, &join_path(path, k), v);
        }
    }
    if let Some(deps) = d.get("dependsOn") {
        let dp = join_path(path, "dependsOn");
        match deps.as_array() {
            Some(ids) => {
                let own = path.rsplit('.').next().unwrap_or_default();
                for (i, id) in ids.iter().enumerate() {
                    let p = format!("{dp}[{i}]");
                    match id.as_str() {
                        Some(s) if s == own => errs.push(p, format!("names input `{s}` itself")),
                        Some(s) if all.contains_key(s) => {}
                        Some(s) => errs.push(p, format!("names input `{s}`, which does not exist")),
                        None => errs.push(p, "must be a string (an input id)"),
                    }
                }
            }
            None => errs.push(dp, "must be an array of input ids"),
        }
    }
    if let Some(enc) = d.get("encryption") {
        let ep = join_path(path, "encryption");
        match enc {
            Value::String(s) if s == "aes256-gcm" => {}
            Value::Object(o) => {
                for k in o.keys() {
                    if k != "algorithm" && k != "key" {
                        errs.push(join_path(&ep, k), "is not a field of encryption (algorithm, key)");
                    }
                }
                if o.get("algorithm").and_then(Value::as_str) != Some("client-side") {
                    errs.push(join_path(&ep, "algorithm"), "must be \"client-side\"");
                }
                if o.get("key").and_then(Value::as_str).is_none_or(|k| k.trim().is_empty()) {
                    errs.push(join_path(&ep, "key"), "is required (the RSA public key, PEM)");
                }
            }
            _ => errs.push(ep, "must be \"aes256-gcm\" or {\"algorithm\": \"client-side\", \"key\": \"<PEM>\"}"),
        }
    }
    if let Some(ds) = d.get("dataset") {
        check_dataset(errs, &join_path(path, "dataset"), ds, 1);
    }
    if let Some(s) = d.get("sort") {
        let sp = join_path(path, "sort");
        match s.as_object() {
            Some(o) => {
                for k in o.keys() {
                    if k != "property" && k != "order" {
                        errs.push(join_path(&sp, k), "is not a field of sort (property, order)");
                    }
                }
                if !o.get("property").is_some_and(Value::is_string) {
                    errs.push(join_path(&sp, "property"), "is required (a property identifier)");
                }
                if let Some(ord) = o.get("order")
                    && !matches!(ord.as_str(), Some("ASC" | "DESC"))
                {
                    errs.push(join_path(&sp, "order"), "must be one of ASC, DESC");
                }
            }
            None => errs.push(sp, "must be an object {property, order}"),
        }
    }
    for k in ["blueprint"] {
        if let Some(v) = d.get(k)
            && !v.is_string()
        {
            errs.push(join_path(path, k), "must be a string (a blueprint identifier)");
        }
    }
}

/// `minLength`, `maxLength`, `minItems`, `maxItems` are non-negative integers; the numeric
/// bounds are numbers; `uniqueItems` is a boolean.
fn check_keywords(errs: &mut FieldErrors, path: &str, d: &Map<String, Value>) {
    for k in ["minLength", "maxLength", "minItems", "maxItems"] {
        if let Some(v) = d.get(k)
            && v.as_u64().is_none()
        {
            errs.push(join_path(path, k), "must be a non-negative integer");
        }
    }
    for k in NUMBER_KEYWORDS {
        if let Some(v) = d.get(*k)
            && !v.is_number()
        {
            errs.push(join_path(path, k), "must be a number");
        }
    }
    if let Some(v) = d.get("uniqueItems")
        && !v.is_boolean()
    {
        errs.push(join_path(path, "uniqueItems"), "must be a boolean");
    }
    for (lo, hi) in [("minLength", "maxLength"), ("minItems", "maxItems"), ("minimum", "maximum")] {
        if let (Some(a), Some(b)) = (d.get(lo).and_then(Value::as_f64), d.get(hi).and_then(Value::as_f64))
            && a > b
        {
            errs.push(join_path(path, hi), format!("must be >= {lo} ({a})"));
        }
    }
}

fn check_format_def(errs: &mut FieldErrors, path: &str, f: &Value, ty: Option<&str>, d: &Map<String, Value>) {
    let fp = join_path(path, "format");
    let Some(f) = f.as_str().filter(|f| INPUT_FORMATS.contains(f)) else {
        errs.push(fp, format!("must be one of {}", INPUT_FORMATS.join(", ")));
        return;
    };
    let want = if f == "labeled-url" { "object" } else { "string" };
    if let Some(t) = ty
        && t != want
    {
        let hint = if t == "array" { "; for an array, put the format in `items`" } else { "" };
        errs.push(&fp, format!("format {f} needs type {want} (this input is {t}){hint}"));
    }
    if f == "entity" && !d.get("blueprint").is_some_and(Value::is_string) {
        errs.push(join_path(path, "blueprint"), "is required for an input of format entity");
    }
}

fn check_items(errs: &mut FieldErrors, path: &str, items: &Value) {
    let Some(it) = items.as_object() else {
        errs.push(path, "must be an object ({type, format?, enum?, blueprint?})");
        return;
    };
    let ty = match it.get("type") {
        Some(Value::String(t)) if INPUT_TYPES.contains(&t.as_str()) => Some(t.as_str()),
        Some(_) => {
            errs.push(join_path(path, "type"), format!("must be one of {}", INPUT_TYPES.join(", ")));
            None
        }
        None => {
            errs.push(join_path(path, "type"), "is required");
            None
        }
    };
    if let Some(f) = it.get("format") {
        check_format_def(errs, path, f, ty, it);
    }
    if let Some(e) = it.get("enum")
        && !check_jq_shape(errs, &join_path(path, "enum"), e)
        && !e.is_array()
    {
        errs.push(join_path(path, "enum"), "must be an array of allowed values or {\"jqQuery\": \"<jq>\"}");
    }
}

/// A dataset is a search query whose rule values may be jq: checked for shape only (the
/// resolved query is what the server searches with).
fn check_dataset(errs: &mut FieldErrors, path: &str, ds: &Value, depth: usize) {
    let Some(o) = ds.as_object() else {
        errs.push(path, "must be an object {combinator, rules}");
        return;
    };
    if depth > crate::search::MAX_DEPTH {
        errs.push(path, format!("is nested deeper than {} groups", crate::search::MAX_DEPTH));
        return;
    }
    match o.get("combinator").and_then(Value::as_str) {
        Some("and" | "or") => {}
        _ => errs.push(join_path(path, "combinator"), "must be one of and, or"),
    }
    let Some(rules) = o.get("rules").and_then(Value::as_array) else {
        errs.push(join_path(path, "rules"), "must be an array of rules");
        return;
    };
    for (i, r) in rules.iter().enumerate() {
        let rp = format!("{}[{i}]", join_path(path, "rules"));
        match r.as_object() {
            Some(ro) if ro.contains_key("rules") => check_dataset(errs, &rp, r, depth + 1),
            Some(ro) => {
                if !ro.get("operator").is_some_and(Value::is_string) {
                    errs.push(join_path(&rp, "operator"), "is required");
                }
                if let Some(v) = ro.get("value") {
                    check_jq_shape(errs, &join_path(&rp, "value"), v);
                }
            }
            None => errs.push(rp, "must be an object (a rule or a group)"),
        }
    }
}

/// Check the values a run is given against the (jq-resolved) `userInputs` of its action.
///
/// Rules, each reported at `properties.<id>`: a given id that is not an input ("is not an
/// input of this action"); a required input (the `required` list) with neither a value nor a
/// default ("is required"); type; format (date-time RFC 3339, url, email, ipv4, ipv6, yaml
/// parses, entity = an identifier string or an object with one, user = an e-mail, team,
/// markdown, multi-line and proto = strings, labeled-url = `{url, displayText|label}`); enum;
/// pattern; min/maxLength; minimum/maximum (and exclusive); min/maxItems, uniqueItems; item
/// type, format and enum; a `disabled: true` input given a value other than its default.
/// Inputs with `visible: false` are not required and their values are dropped. A given `null`
/// counts as not given.
///
/// `operation` is the trigger's (CREATE, DAY-2, DELETE); none of §5.2's input rules depends on
/// it today, it is taken so the call site states it and a rule that does can use it.
pub fn check_inputs(user_inputs: &Value, given: &Value, operation: &str) -> Result<CheckedInputs, FieldErrors> {
    let _ = operation;
    let mut errs = FieldErrors::default();
    let empty = Map::new();
    let defs = user_inputs.get("properties").and_then(Value::as_object).unwrap_or(&empty);
    let given = match given {
        Value::Object(o) => o,
        Value::Null => &empty,
        _ => {
            errs.push("properties", "must be an object of input values");
            return Err(errs);
        }
    };
    for k in given.keys() {
        if !defs.contains_key(k) {
            errs.push(format!("properties.{k}"), "is not an input of this action");
        }
    }
    let required: Vec<&str> = user_inputs
        .get("required")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut out = CheckedInputs::default();
    for (id, def) in defs {
        let Some(d) = def.as_object() else { continue };
        if d.contains_key("encryption") {
            out.encrypted.push(id.clone());
        }
        let path = format!("properties.{id}");
        if d.get("visible") == Some(&Value::Bool(false)) {
            continue;
        }
        let default = d.get("default").filter(|v| !is_jq(v) && !v.is_null());
        let value = given.get(id).filter(|v| !v.is_null());
        if d.get("disabled") == Some(&Value::Bool(true))
            && let Some(v) = value
            && Some(v) != default
        {
            match default {
                Some(dv) => errs.push(&path, format!("is disabled; it can only hold its default {dv}")),
                None => errs.push(&path, "is disabled and cannot be given a value"),
            }
            continue;
        }
        let Some(v) = value.or(default) else {
            if required.contains(&id.as_str()) {
                errs.push(&path, "is required");
            }
            continue;
        };
        let before = errs.0.len();
        check_value(&mut errs, &path, d, v, &mut out.entity_refs);
        if errs.0.len() == before {
            out.values.insert(id.clone(), v.clone());
        }
    }
    if errs.is_empty() { Ok(out) } else { Err(errs) }
}

/// Check one value against an input definition. Keywords still holding a jq query are skipped.
fn check_value(errs: &mut FieldErrors, path: &str, d: &Map<String, Value>, v: &Value, refs: &mut Vec<EntityRef>) {
    let Some(ty) = d.get("type").and_then(Value::as_str) else { return };
    let format = d.get("format").and_then(Value::as_str);
    let blueprint = d.get("blueprint").and_then(Value::as_str).unwrap_or_default();
    if format == Some("entity") {
        if let Some(id) = entity_identifier(errs, path, v) {
            check_enum(errs, path, d.get("enum"), v);
            refs.push(EntityRef { path: path.to_string(), blueprint: blueprint.to_string(), identifier: id });
        }
        return;
    }
    if !matches_type(ty, v) {
        errs.push(path, format!("must be of type {ty} (got {})", type_name(v)));
        return;
    }
    if ty != "array" {
        check_enum(errs, path, d.get("enum"), v);
    }
    match v {
        Value::String(s) => {
            let len = s.chars().count() as u64;
            if let Some(min) = d.get("minLength").and_then(Value::as_u64)
                && len < min
            {
                errs.push(path, format!("must be at least {min} characters (minLength)"));
            }
            if let Some(max) = d.get("maxLength").and_then(Value::as_u64)
                && len > max
            {
                errs.push(path, format!("must be at most {max} characters (maxLength)"));
            }
            match d.get("pattern") {
                Some(Value::String(pat)) => {
                    if let Ok(re) = regex::Regex::new(pat)
                        && !re.is_match(s)
                    {
                        errs.push(path, format!("does not match pattern {pat:?}"));
                    }
                }
                // A resolved `pattern` jq query may return the allowed values instead (TF
                // `pattern_jq_query`).
                Some(Value::Array(allowed)) if !allowed.contains(v) => {
                    errs.push(path, format!("must be one of {}", list(allowed)));
                }
                _ => {}
            }
            if let Some(f) = format
                && let Err(m) = check_string_format(f, s)
            {
                errs.push(path, m);
            }
        }
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            let bound = |k: &str| d.get(k).and_then(Value::as_f64);
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
        Value::Array(a) => check_array(errs, path, d, a, refs),
        Value::Object(o) if format == Some("labeled-url") => {
            match o.get("url") {
                Some(Value::String(u)) => {
                    if let Err(m) = check_string_format("url", u) {
                        errs.push(join_path(path, "url"), m);
                    }
                }
                _ => errs.push(join_path(path, "url"), "is required for a labeled URL (a string)"),
            }
            for k in ["displayText", "label"] {
                if o.get(k).is_some_and(|t| !t.is_string()) {
                    errs.push(join_path(path, k), "must be a string");
                }
            }
        }
        _ => {}
    }
}

fn list(values: &[Value]) -> String {
    format!("[{}]", values.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))
}

fn check_enum(errs: &mut FieldErrors, path: &str, e: Option<&Value>, v: &Value) {
    if let Some(Value::Array(values)) = e {
        let key = entity_key(v);
        if !values.contains(v) && !key.is_some_and(|k| values.contains(&k)) {
            errs.push(path, format!("must be one of {}", list(values)));
        }
    }
}

/// An entity-format value given as an object compares to an enum by its identifier.
fn entity_key(v: &Value) -> Option<Value> {
    v.as_object()?.get("identifier").cloned()
}

/// The identifier an entity-format value names: a string, or an object with an `identifier`.
fn entity_identifier(errs: &mut FieldErrors, path: &str, v: &Value) -> Option<String> {
    let id = match v {
        Value::String(s) => s.as_str(),
        Value::Object(o) => match o.get("identifier") {
            Some(Value::String(s)) => s.as_str(),
            _ => {
                errs.push(join_path(path, "identifier"), "is required (a string) in an entity object");
                return None;
            }
        },
        _ => {
            errs.push(path, format!("must be an entity identifier (a string; got {})", type_name(v)));
            return None;
        }
    };
    match crate::ident::check_entity_id(path, id) {
        Ok(()) => Some(id.to_string()),
        Err(e) => {
            errs.0.push(e);
            None
        }
    }
}

fn check_array(errs: &mut FieldErrors, path: &str, d: &Map<String, Value>, a: &[Value], refs: &mut Vec<EntityRef>) {
    let n = a.len() as u64;
    if let Some(min) = d.get("minItems").and_then(Value::as_u64).filter(|m| n < *m) {
        errs.push(path, format!("must have at least {min} items (minItems)"));
    }
    if let Some(max) = d.get("maxItems").and_then(Value::as_u64).filter(|m| n > *m) {
        errs.push(path, format!("must have at most {max} items (maxItems)"));
    }
    if d.get("uniqueItems") == Some(&Value::Bool(true)) {
        for (i, x) in a.iter().enumerate() {
            if a[..i].contains(x) {
                errs.push(format!("{path}[{i}]"), "duplicates an earlier item (uniqueItems)");
            }
        }
    }
    let Some(items) = d.get("items").and_then(Value::as_object) else { return };
    // An array's `enum` (when not on `items`) lists the values its items may take.
    let mut items = items.clone();
    if !items.contains_key("enum")
        && let Some(e) = d.get("enum").filter(|e| e.is_array())
    {
        items.insert("enum".into(), e.clone());
    }
    for (i, x) in a.iter().enumerate() {
        check_value(errs, &format!("{path}[{i}]"), &items, x, refs);
    }
}

/// A string input's format. Free-text formats (markdown, multi-line, proto, team) accept any
/// string; yaml must parse.
pub fn check_string_format(format: &str, s: &str) -> Result<(), String> {
    match format {
        "date-time" | "url" | "email" | "ipv4" | "ipv6" => crate::entity::check_format(format, s),
        "user" => {
            crate::entity::check_format("email", s).map_err(|_| "must be a user's email address (format user)".into())
        }
        "yaml" => {
            serde_saphyr::from_str::<Value>(s).map(|_| ()).map_err(|e| format!("must be valid YAML (format yaml): {e}"))
        }
        "team" if s.is_empty() => Err("must be a team identifier (format team)".into()),
        _ => Ok(()),
    }
}
