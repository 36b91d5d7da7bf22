//! Exports of blueprints, entities and actions: JSON, GitOps YAML, Terraform HCL in the
//! resource shapes of Port's Terraform provider (`port_blueprint`, `port_entity`,
//! `port_action`), and CSV tables. Pure functions of their arguments (the web UI and
//! `portolan export` share them).
//!
//! The HCL writer is our own rather than a general HCL library: it writes exactly the layout
//! `terraform fmt` produces (two-space indents, `=` aligned across each run of single-line
//! attributes, a line that opens a multi-line value ending a run), so `terraform fmt -check`
//! passes on the output as written.

use serde_json::{Map, Value, json};

use crate::blueprint::PropType;
use crate::{Blueprint, Entity};

mod action;

/// The formats of [`export`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
    Hcl,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "json" => Some(Format::Json),
            "yaml" | "yml" => Some(Format::Yaml),
            "hcl" | "tf" | "terraform" => Some(Format::Hcl),
            _ => None,
        }
    }
    /// File extension of a download.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Yaml => "yaml",
            Format::Hcl => "tf",
        }
    }
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Yaml => "application/yaml",
            Format::Hcl => "text/plain; charset=utf-8",
        }
    }
}

/// The blueprints an export takes, sorted: those `chosen`, else all but the system blueprints
/// `_user` and `_team` (people and teams are not catalog data to carry elsewhere).
pub fn selection<'a>(all: impl IntoIterator<Item = &'a String>, chosen: &[String]) -> Vec<&'a String> {
    let mut ids: Vec<&String> = all
        .into_iter()
        .filter(|k| if chosen.is_empty() { !crate::system::is_system(k) } else { chosen.contains(k) })
        .collect();
    ids.sort();
    ids
}

/// Blueprints and entities in `format` (no actions: the document has no `actions` key).
pub fn export(format: Format, blueprints: &[Blueprint], entities: &[Entity]) -> String {
    match format {
        Format::Json => to_json(blueprints, entities),
        Format::Yaml => to_yaml(blueprints, entities),
        Format::Hcl => to_hcl(blueprints, entities),
    }
}

/// The actions an export of `blueprints` carries: those whose every blueprint reference
/// ([`crate::action::blueprint_refs`]) is among them, so the export can be applied as it is.
pub fn actions_for(blueprints: &[Blueprint], actions: &[Value]) -> Vec<Value> {
    let ids: std::collections::HashSet<&str> = blueprints.iter().map(|b| b.identifier.as_str()).collect();
    actions
        .iter()
        .filter(|a| crate::action::blueprint_refs(a).iter().all(|(_, bp)| ids.contains(bp.as_str())))
        .cloned()
        .collect()
}

/// Blueprints, entities and actions (and automations; action objects as `GET /v1/actions`
/// returns them) in `format`. JSON and YAML get an `actions` array (always present) of the
/// actions as `POST /v1/actions` takes them (server-kept `id`, `createdAt`, `createdBy`,
/// `updatedAt`, `updatedBy` removed); HCL gets one `port_action` resource per action after
/// the blueprints and entities.
pub fn export_with_actions(format: Format, blueprints: &[Blueprint], entities: &[Entity], actions: &[Value]) -> String {
    match format {
        Format::Json => pretty(&document_with_actions(blueprints, entities, actions)),
        Format::Yaml => {
            serde_saphyr::to_string(&document_with_actions(blueprints, entities, actions)).unwrap_or_default()
        }
        Format::Hcl => {
            let mut out = to_hcl(blueprints, entities);
            action::write_actions(actions, blueprints, &mut out);
            out
        }
    }
}

/// An action as `POST /v1/actions` takes it: the server-kept keys removed.
pub fn action_document(a: &Value) -> Value {
    match a {
        Value::Object(o) => Value::Object(
            o.iter()
                .filter(|(k, _)| !crate::action::SERVER_KEYS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn document_with_actions(blueprints: &[Blueprint], entities: &[Entity], actions: &[Value]) -> Value {
    let mut doc = document(blueprints, entities);
    if let Value::Object(o) = &mut doc {
        o.insert("actions".into(), Value::Array(actions.iter().map(action_document).collect()));
    }
    doc
}

fn pretty(doc: &Value) -> String {
    let mut s = serde_json::to_string_pretty(doc).unwrap_or_default();
    s.push('\n');
    s
}

/// An entity as Port's GitOps `port.yml` and the API write it (no meta fields).
pub fn entity_document(e: &Entity) -> Value {
    let mut m = Map::new();
    m.insert("identifier".into(), json!(e.identifier));
    if let Some(t) = &e.title {
        m.insert("title".into(), json!(t));
    }
    if let Some(i) = &e.icon {
        m.insert("icon".into(), json!(i));
    }
    m.insert("blueprint".into(), json!(e.blueprint));
    if !e.team.is_empty() {
        m.insert("team".into(), json!(e.team));
    }
    m.insert("properties".into(), Value::Object(e.properties.clone()));
    m.insert("relations".into(), Value::Object(e.relations.clone()));
    Value::Object(m)
}

fn document(blueprints: &[Blueprint], entities: &[Entity]) -> Value {
    json!({
        "blueprints": blueprints.iter().map(|b| serde_json::to_value(b).unwrap_or(Value::Null)).collect::<Vec<_>>(),
        "entities": entities.iter().map(entity_document).collect::<Vec<_>>(),
    })
}

/// `{"blueprints": [...], "entities": [...]}`, pretty-printed: blueprints as the API takes
/// them, entities as `port.yml` lists them.
pub fn to_json(blueprints: &[Blueprint], entities: &[Entity]) -> String {
    pretty(&document(blueprints, entities))
}

/// The same document as [`to_json`] in YAML: the `entities` list is what Port's GitOps
/// `port.yml` holds.
pub fn to_yaml(blueprints: &[Blueprint], entities: &[Entity]) -> String {
    serde_saphyr::to_string(&document(blueprints, entities)).unwrap_or_default()
}

/// Any JSON value as YAML (the web UI's mapping editor).
pub fn value_to_yaml(v: &Value) -> String {
    serde_saphyr::to_string(v).unwrap_or_default()
}

/// YAML text as a JSON value, or the parser's message (with its line and column).
pub fn yaml_to_value(text: &str) -> Result<Value, String> {
    serde_saphyr::from_str::<Value>(text).map_err(|e| e.to_string())
}

/// One CSV table (RFC 4180): a header row, then rows; fields holding a comma, a quote, a line
/// break or leading/trailing spaces are quoted, quotes doubled; lines end with CRLF.
pub fn csv(header: &[String], rows: &[Vec<String>]) -> String {
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        for (i, c) in cells.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&csv_field(c));
        }
        out.push_str("\r\n");
    };
    line(header);
    for r in rows {
        line(r);
    }
    out
}

pub fn csv_field(s: &str) -> String {
    let needs = s.contains([',', '"', '\n', '\r']) || s.starts_with(' ') || s.ends_with(' ');
    if needs { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

/// A JSON value as one table cell: strings as they are, `null` empty, anything else as JSON.
pub fn cell_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Terraform HCL

/// An HCL expression.
#[derive(Debug, Clone, PartialEq)]
enum Hcl {
    Str(String),
    Num(serde_json::Number),
    Bool(bool),
    Null,
    List(Vec<Hcl>),
    Obj(Vec<(String, Hcl)>),
    /// A reference such as `port_blueprint.service.identifier`.
    Ref(String),
    /// `jsonencode(<value>)`.
    JsonEncode(Box<Hcl>),
}

impl Hcl {
    fn from_json(v: &Value) -> Hcl {
        match v {
            Value::Null => Hcl::Null,
            Value::Bool(b) => Hcl::Bool(*b),
            Value::Number(n) => Hcl::Num(n.clone()),
            Value::String(s) => Hcl::Str(s.clone()),
            Value::Array(a) => Hcl::List(a.iter().map(Hcl::from_json).collect()),
            Value::Object(o) => Hcl::Obj(o.iter().map(|(k, v)| (k.clone(), Hcl::from_json(v))).collect()),
        }
    }

    /// Written on one line: scalars, empty collections and lists of scalars.
    fn single_line(&self) -> bool {
        match self {
            Hcl::Obj(o) => o.is_empty(),
            Hcl::List(l) => l.iter().all(|x| !matches!(x, Hcl::Obj(_) | Hcl::List(_) | Hcl::JsonEncode(_))),
            Hcl::JsonEncode(inner) => inner.single_line(),
            _ => true,
        }
    }
}

/// A quoted HCL string: JSON-style escapes, and `${` / `%{` escaped so no template runs.
fn hcl_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '$' | '%' if chars.peek() == Some(&'{') => {
                out.push(c);
                out.push(c);
            }
            c if (c as u32) < 0x20 || c == '\u{7f}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// An object key: bare when it is an HCL identifier, else quoted.
fn hcl_key(k: &str) -> String {
    let mut chars = k.chars();
    let ident = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ident && !matches!(k, "true" | "false" | "null") { k.to_string() } else { hcl_string(k) }
}

fn write_inline(h: &Hcl, out: &mut String) {
    match h {
        Hcl::Str(s) => out.push_str(&hcl_string(s)),
        Hcl::Num(n) => out.push_str(&n.to_string()),
        Hcl::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Hcl::Null => out.push_str("null"),
        Hcl::Ref(r) => out.push_str(r),
        Hcl::Obj(_) => out.push_str("{}"),
        Hcl::List(l) => {
            out.push('[');
            for (i, x) in l.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_inline(x, out);
            }
            out.push(']');
        }
        Hcl::JsonEncode(inner) => {
            out.push_str("jsonencode(");
            write_inline(inner, out);
            out.push(')');
        }
    }
}

/// Write a multi-line value starting after `= ` on the current line; lines inside are indented
/// one level deeper than `indent`, the closing bracket at `indent`.
fn write_multiline(h: &Hcl, indent: usize, out: &mut String) {
    match h {
        Hcl::Obj(o) => {
            out.push_str("{\n");
            write_attributes(o, indent + 1, out);
            push_indent(indent, out);
            out.push('}');
        }
        Hcl::List(l) => {
            out.push_str("[\n");
            for x in l {
                push_indent(indent + 1, out);
                if x.single_line() {
                    write_inline(x, out);
                } else {
                    write_multiline(x, indent + 1, out);
                }
                out.push_str(",\n");
            }
            push_indent(indent, out);
            out.push(']');
        }
        Hcl::JsonEncode(inner) => {
            out.push_str("jsonencode(");
            write_multiline(inner, indent, out);
            out.push(')');
        }
        other => write_inline(other, out),
    }
}

fn push_indent(level: usize, out: &mut String) {
    for _ in 0..level {
        out.push_str("  ");
    }
}

/// Attributes one per line, `=` aligned across each run of single-line attributes (as
/// `terraform fmt` aligns them).
fn write_attributes(attrs: &[(String, Hcl)], indent: usize, out: &mut String) {
    let keys: Vec<String> = attrs.iter().map(|(k, _)| hcl_key(k)).collect();
    let mut i = 0;
    while i < attrs.len() {
        if !attrs[i].1.single_line() {
            push_indent(indent, out);
            out.push_str(&keys[i]);
            out.push_str(" = ");
            write_multiline(&attrs[i].1, indent, out);
            out.push('\n');
            i += 1;
            continue;
        }
        let mut j = i;
        while j < attrs.len() && attrs[j].1.single_line() {
            j += 1;
        }
        let width = keys[i..j].iter().map(|k| k.chars().count()).max().unwrap_or(0);
        for k in i..j {
            push_indent(indent, out);
            out.push_str(&keys[k]);
            for _ in keys[k].chars().count()..width {
                out.push(' ');
            }
            out.push_str(" = ");
            write_inline(&attrs[k].1, out);
            out.push('\n');
        }
        i = j;
    }
}

fn resource(kind: &str, name: &str, attrs: &[(String, Hcl)], out: &mut String) {
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str(&format!("resource {} {} {{\n", hcl_string(kind), hcl_string(name)));
    write_attributes(attrs, 1, out);
    out.push_str("}\n");
}

/// A Terraform resource name from an identifier: letters, digits, `_` and `-`, starting with a
/// letter or `_`.
pub fn resource_name(s: &str) -> String {
    let mut out: String = s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    if !out.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        out.insert(0, '_');
    }
    out
}

fn snake(k: &str) -> String {
    let mut out = String::with_capacity(k.len() + 4);
    for c in k.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn opt_str(attrs: &mut Vec<(String, Hcl)>, key: &str, v: &Option<String>) {
    if let Some(v) = v {
        attrs.push((key.into(), Hcl::Str(v.clone())));
    }
}

/// The keys of a property definition other than its type, in the provider's snake_case.
fn property_attrs(p: &crate::Property, required: bool) -> Vec<(String, Hcl)> {
    let mut a = Vec::new();
    opt_str(&mut a, "title", &p.title);
    if required {
        a.push(("required".into(), Hcl::Bool(true)));
    }
    if p.ty == PropType::String || p.ty == PropType::Number {
        opt_str(&mut a, "format", &p.format);
    }
    if let Some(e) = &p.enum_values {
        a.push(("enum".into(), Hcl::List(e.iter().map(Hcl::from_json).collect())));
    }
    for (k, v) in &p.rest {
        let value = match (k.as_str(), p.ty) {
            ("default", PropType::Object) => Hcl::JsonEncode(Box::new(Hcl::from_json(v))),
            _ => Hcl::from_json(v),
        };
        a.push((snake(k), value));
    }
    if p.ty == PropType::Array
        && let Some(items) = &p.items
    {
        let ty = items.get("type").and_then(Value::as_str).unwrap_or("string");
        let mut item_attrs = Vec::new();
        for (k, v) in items {
            if k != "type" {
                item_attrs.push((snake(k), Hcl::from_json(v)));
            }
        }
        a.push((format!("{ty}_items"), Hcl::Obj(item_attrs)));
    }
    a
}

fn blueprint_resource(bp: &Blueprint, out: &mut String) {
    let mut a = vec![("identifier".to_string(), Hcl::Str(bp.identifier.clone()))];
    a.push(("title".into(), Hcl::Str(bp.title.clone())));
    opt_str(&mut a, "icon", &bp.icon);
    opt_str(&mut a, "description", &bp.description);
    let mut groups: Vec<(String, Hcl)> = Vec::new();
    for ty in [PropType::String, PropType::Number, PropType::Boolean, PropType::Array, PropType::Object] {
        let props: Vec<(String, Hcl)> = bp
            .schema
            .properties
            .iter()
            .filter(|(_, p)| p.ty == ty)
            .map(|(id, p)| (id.clone(), Hcl::Obj(property_attrs(p, bp.schema.required.contains(id)))))
            .collect();
        if !props.is_empty() {
            groups.push((format!("{}_props", ty.as_str()), Hcl::Obj(props)));
        }
    }
    if !groups.is_empty() {
        a.push(("properties".into(), Hcl::Obj(groups)));
    }
    if !bp.relations.is_empty() {
        let rels = bp
            .relations
            .iter()
            .map(|(id, r)| {
                let mut ra = Vec::new();
                opt_str(&mut ra, "title", &r.title);
                ra.push(("target".into(), Hcl::Str(r.target.clone())));
                ra.push(("required".into(), Hcl::Bool(r.required)));
                ra.push(("many".into(), Hcl::Bool(r.many)));
                opt_str(&mut ra, "description", &r.description);
                (id.clone(), Hcl::Obj(ra))
            })
            .collect();
        a.push(("relations".into(), Hcl::Obj(rels)));
    }
    if !bp.mirror_properties.is_empty() {
        let m = bp
            .mirror_properties
            .iter()
            .map(|(id, m)| {
                let mut ma = Vec::new();
                opt_str(&mut ma, "title", &m.title);
                ma.push(("path".into(), Hcl::Str(m.path.clone())));
                (id.clone(), Hcl::Obj(ma))
            })
            .collect();
        a.push(("mirror_properties".into(), Hcl::Obj(m)));
    }
    if !bp.calculation_properties.is_empty() {
        let c = bp
            .calculation_properties
            .iter()
            .map(|(id, c)| {
                let mut ca = Vec::new();
                opt_str(&mut ca, "title", &c.title);
                ca.push(("calculation".into(), Hcl::Str(c.calculation.clone())));
                ca.push(("type".into(), Hcl::Str(c.ty.as_str().into())));
                opt_str(&mut ca, "format", &c.format);
                (id.clone(), Hcl::Obj(ca))
            })
            .collect();
        a.push(("calculation_properties".into(), Hcl::Obj(c)));
    }
    resource("port_blueprint", &resource_name(&bp.identifier), &a, out);
}

fn json_kind(v: &Value) -> PropType {
    match v {
        Value::Number(_) => PropType::Number,
        Value::Bool(_) => PropType::Boolean,
        Value::Array(_) => PropType::Array,
        Value::Object(_) => PropType::Object,
        _ => PropType::String,
    }
}

fn entity_resource(e: &Entity, bp: Option<&Blueprint>, name: &str, out: &mut String) {
    let mut a = vec![("identifier".to_string(), Hcl::Str(e.identifier.clone()))];
    opt_str(&mut a, "title", &e.title);
    opt_str(&mut a, "icon", &e.icon);
    let blueprint = match bp {
        Some(_) => Hcl::Ref(format!("port_blueprint.{}.identifier", resource_name(&e.blueprint))),
        None => Hcl::Str(e.blueprint.clone()),
    };
    a.push(("blueprint".into(), blueprint));
    if !e.team.is_empty() {
        a.push(("teams".into(), Hcl::List(e.team.iter().map(|t| Hcl::Str(t.clone())).collect())));
    }
    let mut buckets: Vec<(PropType, Vec<(String, Hcl)>)> =
        [PropType::String, PropType::Number, PropType::Boolean].into_iter().map(|t| (t, Vec::new())).collect();
    // array_props holds one map per item type.
    let mut arrays: Vec<(&str, Vec<(String, Hcl)>)> = ["string_items", "number_items", "boolean_items", "object_items"]
        .into_iter()
        .map(|k| (k, Vec::new()))
        .collect();
    for (k, v) in &e.properties {
        if v.is_null() {
            continue;
        }
        let ty = bp.and_then(|b| b.schema.properties.get(k)).map(|p| p.ty).unwrap_or_else(|| json_kind(v));
        match ty {
            PropType::Array => {
                let items = v.as_array().cloned().unwrap_or_default();
                let item_ty = bp
                    .and_then(|b| b.schema.properties.get(k))
                    .and_then(|p| p.items_type().map(str::to_string))
                    .unwrap_or_else(|| items.first().map_or("string", |x| json_kind(x).as_str()).to_string());
                let (slot, list) = match item_ty.as_str() {
                    "number" => (1, Hcl::List(items.iter().map(Hcl::from_json).collect())),
                    "boolean" => (2, Hcl::List(items.iter().map(Hcl::from_json).collect())),
                    "object" => {
                        (3, Hcl::List(items.iter().map(|x| Hcl::JsonEncode(Box::new(Hcl::from_json(x)))).collect()))
                    }
                    _ => (0, Hcl::List(items.iter().map(Hcl::from_json).collect())),
                };
                arrays[slot].1.push((k.clone(), list));
            }
            // Written below, in object_props.
            PropType::Object => {}
            t => {
                let i = buckets.iter().position(|(bt, _)| *bt == t).unwrap_or(0);
                buckets[i].1.push((k.clone(), Hcl::from_json(v)));
            }
        }
    }
    let mut props: Vec<(String, Hcl)> = Vec::new();
    for (t, attrs) in buckets {
        if !attrs.is_empty() {
            props.push((format!("{}_props", t.as_str()), Hcl::Obj(attrs)));
        }
    }
    let arrays: Vec<(String, Hcl)> =
        arrays.into_iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| (k.to_string(), Hcl::Obj(v))).collect();
    if !arrays.is_empty() {
        props.push(("array_props".into(), Hcl::Obj(arrays)));
    }
    let objects: Vec<(String, Hcl)> = e
        .properties
        .iter()
        .filter(|(k, v)| {
            !v.is_null()
                && bp.and_then(|b| b.schema.properties.get(*k)).map(|p| p.ty).unwrap_or_else(|| json_kind(v))
                    == PropType::Object
        })
        .map(|(k, v)| (k.clone(), Hcl::JsonEncode(Box::new(Hcl::from_json(v)))))
        .collect();
    if !objects.is_empty() {
        props.push(("object_props".into(), Hcl::Obj(objects)));
    }
    if !props.is_empty() {
        a.push(("properties".into(), Hcl::Obj(props)));
    }
    let mut single = Vec::new();
    let mut many = Vec::new();
    for (k, v) in &e.relations {
        match v {
            Value::String(s) => single.push((k.clone(), Hcl::Str(s.clone()))),
            Value::Array(l) => many.push((k.clone(), Hcl::List(l.iter().map(Hcl::from_json).collect()))),
            _ => {}
        }
    }
    let mut rels = Vec::new();
    if !single.is_empty() {
        rels.push(("single_relations".to_string(), Hcl::Obj(single)));
    }
    if !many.is_empty() {
        rels.push(("many_relations".to_string(), Hcl::Obj(many)));
    }
    if !rels.is_empty() {
        a.push(("relations".into(), Hcl::Obj(rels)));
    }
    resource("port_entity", name, &a, out);
}

/// `port_blueprint` resources for the blueprints, then `port_entity` resources for the
/// entities (named `<blueprint>_<identifier>`, made unique), referring to their blueprint's
/// resource when it is exported too.
pub fn to_hcl(blueprints: &[Blueprint], entities: &[Entity]) -> String {
    let mut out = String::new();
    for bp in blueprints {
        blueprint_resource(bp, &mut out);
    }
    let mut used = std::collections::HashSet::new();
    for e in entities {
        let base = resource_name(&format!("{}_{}", e.blueprint, e.identifier));
        let mut name = base.clone();
        let mut n = 2;
        while !used.insert(name.clone()) {
            name = format!("{base}_{n}");
            n += 1;
        }
        let bp = blueprints.iter().find(|b| b.identifier == e.blueprint);
        entity_resource(e, bp, &name, &mut out);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
