//! Checking a blueprint definition (docs/reference/port-api.md §1). Every problem is reported at once, each
//! with the path of the offending field.

use std::collections::HashSet;

use serde_json::Value;

use crate::blueprint::{Blueprint, PropType, Property};
use crate::ident::{check_blueprint_id, check_property_id};
use crate::{FieldError, FieldErrors};

/// String formats of blueprint properties (SPEC enum).
pub const STRING_FORMATS: &[&str] = &[
    "date-time",
    "url",
    "email",
    "idn-email",
    "ipv4",
    "ipv6",
    "markdown",
    "yaml",
    "user",
    "blueprints",
    "team",
    "timer",
    "proto",
];
/// Port's colour palette for `enumColors` and calculation `colors`.
pub const COLORS: &[&str] = &[
    "blue",
    "turquoise",
    "orange",
    "purple",
    "pink",
    "yellow",
    "green",
    "red",
    "gold",
    "silver",
    "paleBlue",
    "darkGray",
    "lightGray",
    "bronze",
    "lime",
    "olive",
    "brown",
];
/// Meta-properties every entity has (docs/reference/port-api.md §1.3), plus `$datasource`.
pub const META_PROPERTIES: &[&str] = &[
    "$identifier",
    "$title",
    "$team",
    "$icon",
    "$blueprint",
    "$createdAt",
    "$updatedAt",
    "$createdBy",
    "$updatedBy",
    "$datasource",
];

/// Parse a blueprint from JSON, naming the field that has the wrong type.
pub fn parse_blueprint(v: &Value) -> Result<Blueprint, FieldErrors> {
    if !v.is_object() {
        return Err(FieldError::new("", "the blueprint must be a JSON object").into());
    }
    // serde would read a struct from an array (`"schema": []`); Port's schema says object.
    if v.get("schema").is_some_and(|s| !s.is_object()) {
        return Err(FieldError::new("schema", "must be an object {properties, required}").into());
    }
    serde_path_to_error::deserialize::<_, Blueprint>(v).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        serde_field_error(&path, &e.inner().to_string()).into()
    })
}

/// A serde error at `path` as a [`FieldError`]. A missing field is reported at the field
/// itself (`schema.properties.cpu.type` "is required"), not at the object that lacks it.
pub fn serde_field_error(path: &str, msg: &str) -> FieldError {
    let missing = msg.strip_prefix("missing field `").and_then(|m| m.split_once('`')).map(|(field, _)| field);
    match missing {
        Some(field) => FieldError::new(crate::error::join_path(path, field), "is required"),
        None => FieldError::new(path, clean_serde_message(msg)),
    }
}

/// serde's messages end with " at line X column Y", which means nothing for a parsed Value.
pub fn clean_serde_message(msg: &str) -> String {
    let msg = match msg.find(" at line ") {
        Some(i) => &msg[..i],
        None => msg,
    };
    msg.replace("missing field", "must have required property")
}

/// How the checker sees the rest of the data model.
pub trait BlueprintLookup {
    /// The blueprint with this identifier, as it will be after the write being checked.
    fn blueprint(&self, id: &str) -> Option<&Blueprint>;
}

/// Check everything about `bp` that does not need jq (calculation properties are compiled by
/// the caller, which owns the jq engine).
pub fn check_blueprint(bp: &Blueprint, others: &dyn BlueprintLookup) -> Result<(), FieldErrors> {
    let mut errs = FieldErrors::default();
    if let Err(e) = check_blueprint_id("identifier", &bp.identifier) {
        errs.0.push(e);
    }
    check_title(&mut errs, "title", Some(&bp.title), true);
    if let Some(d) = &bp.description
        && d.chars().count() > 200
    {
        errs.push("description", "must be at most 200 characters");
    }
    let mut used: HashSet<String> = HashSet::new();
    for (id, p) in &bp.schema.properties {
        let path = format!("schema.properties.{id}");
        claim_key(&mut errs, &path, id, &mut used);
        check_property(&mut errs, &path, p);
    }
    for (i, r) in bp.schema.required.iter().enumerate() {
        if !bp.schema.properties.contains_key(r) {
            errs.push(
                format!("schema.required[{i}]"),
                format!("names {r:?}, which is not a property of this blueprint"),
            );
        }
    }
    for (id, rel) in &bp.relations {
        let path = format!("relations.{id}");
        claim_key(&mut errs, &path, id, &mut used);
        check_title(&mut errs, &format!("{path}.title"), rel.title.as_deref(), false);
        if rel.target != bp.identifier && others.blueprint(&rel.target).is_none() {
            errs.push(format!("{path}.target"), format!("blueprint {:?} does not exist", rel.target));
        }
        if rel.many && rel.required {
            errs.push(path, "a relation cannot be both many and required");
        }
    }
    for (id, m) in &bp.mirror_properties {
        let path = format!("mirrorProperties.{id}");
        claim_key(&mut errs, &path, id, &mut used);
        if let Err(msg) = check_mirror_path(bp, others, &m.path) {
            errs.push(format!("{path}.path"), msg);
        }
    }
    for (id, c) in &bp.calculation_properties {
        let path = format!("calculationProperties.{id}");
        claim_key(&mut errs, &path, id, &mut used);
        if c.calculation.trim().is_empty() {
            errs.push(format!("{path}.calculation"), "must be a jq expression");
        }
        if let Some(f) = &c.format
            && !STRING_FORMATS.contains(&f.as_str())
            && f != "labeled-url"
        {
            errs.push(format!("{path}.format"), format!("{f:?} is not a known format"));
        }
        check_colors(&mut errs, &format!("{path}.colors"), c.rest.get("colors"));
    }
    for (id, a) in &bp.aggregation_properties {
        let path = format!("aggregationProperties.{id}");
        claim_key(&mut errs, &path, id, &mut used);
        check_aggregation(&mut errs, &path, a, others, &bp.identifier);
    }
    if let Some(o) = &bp.ownership {
        match o.get("type").and_then(Value::as_str) {
            Some("Direct") => {}
            Some("Inherited") => {
                if o.get("path").and_then(Value::as_str).is_none_or(str::is_empty) {
                    errs.push("ownership.path", "is required when ownership.type is \"Inherited\"");
                }
            }
            _ => errs.push("ownership.type", "must be \"Direct\" or \"Inherited\""),
        }
    }
    errs.into_result()
}

fn claim_key(errs: &mut FieldErrors, path: &str, id: &str, used: &mut HashSet<String>) {
    if let Err(e) = check_property_id(path, id) {
        errs.0.push(e);
    }
    if !used.insert(id.to_string()) {
        errs.push(
            path,
            format!("identifier {id:?} is already used by another property, relation, mirror, calculation or aggregation property of this blueprint"),
        );
    }
}

fn check_title(errs: &mut FieldErrors, path: &str, title: Option<&str>, required: bool) {
    match title {
        None if required => errs.push(path, "is required"),
        Some(t) if required && t.trim().is_empty() => errs.push(path, "must not be empty"),
        Some(t) if t.chars().count() > 100 => errs.push(path, "must be at most 100 characters"),
        _ => {}
    }
}

fn check_colors(errs: &mut FieldErrors, path: &str, colors: Option<&Value>) {
    let Some(colors) = colors else { return };
    let Some(map) = colors.as_object() else {
        errs.push(path, "must be an object of value → colour");
        return;
    };
    for (k, c) in map {
        if !c.as_str().is_some_and(|c| COLORS.contains(&c)) {
            errs.push(format!("{path}.{k}"), format!("must be one of {}", COLORS.join(", ")));
        }
    }
}

fn check_property(errs: &mut FieldErrors, path: &str, p: &Property) {
    check_title(errs, &format!("{path}.title"), p.title.as_deref(), false);
    if let Some(f) = &p.format {
        let ok = match p.ty {
            PropType::String => STRING_FORMATS.contains(&f.as_str()),
            PropType::Object => f == "labeled-url",
            _ => false,
        };
        if !ok {
            errs.push(
                format!("{path}.format"),
                format!("{f:?} is not a valid format for a property of type {}", p.ty.as_str()),
            );
        }
    }
    if let Some(values) = &p.enum_values {
        if !matches!(p.ty, PropType::String | PropType::Number) {
            errs.push(format!("{path}.enum"), "is only allowed on string and number properties");
        }
        for (i, v) in values.iter().enumerate() {
            let ok = match p.ty {
                PropType::String => v.is_string() || v.is_null(),
                PropType::Number => v.is_number() || v.is_null(),
                _ => true,
            };
            if !ok {
                errs.push(format!("{path}.enum[{i}]"), format!("must be a {}", p.ty.as_str()));
            }
        }
    }
    check_colors(errs, &format!("{path}.enumColors"), p.rest.get("enumColors"));
    for k in ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"] {
        if let Some(v) = p.keyword(k)
            && !v.is_number()
        {
            errs.push(format!("{path}.{k}"), "must be a number");
        }
    }
    for k in ["minLength", "maxLength", "minItems", "maxItems"] {
        if let Some(v) = p.keyword(k)
            && !v.is_u64()
        {
            errs.push(format!("{path}.{k}"), "must be a non-negative integer");
        }
    }
    if let Some(pat) = p.keyword("pattern") {
        match pat.as_str() {
            Some(s) => {
                if let Err(e) = regex::Regex::new(s) {
                    errs.push(format!("{path}.pattern"), format!("is not a valid regular expression: {e}"));
                }
            }
            None => errs.push(format!("{path}.pattern"), "must be a string"),
        }
    }
    if p.ty == PropType::Array {
        if let Some(items) = &p.items {
            match items.get("type").and_then(Value::as_str) {
                Some("string" | "number" | "boolean" | "object" | "array") | None => {}
                Some(t) => errs.push(format!("{path}.items.type"), format!("{t:?} is not a property type")),
            }
        }
    } else if p.items.is_some() {
        errs.push(format!("{path}.items"), "is only allowed on array properties");
    }
    if let Some(d) = p.keyword("default") {
        let mut sub = FieldErrors::default();
        crate::entity::check_value(&mut sub, &format!("{path}.default"), p, d);
        errs.0.extend(sub.0);
    }
}

/// What may not change when blueprint `old` is replaced by `new` (outside the rename routes):
/// a property's type and an array's item type, a relation's target and `many`.
pub fn check_change(old: &Blueprint, new: &Blueprint) -> Result<(), FieldErrors> {
    let mut errs = FieldErrors::default();
    for (k, p) in &new.schema.properties {
        let Some(o) = old.schema.properties.get(k) else { continue };
        if o.ty != p.ty {
            errs.push(
                format!("schema.properties.{k}.type"),
                format!(
                    "cannot change from {} to {}: a property's type is immutable; add a new property instead",
                    o.ty.as_str(),
                    p.ty.as_str()
                ),
            );
        } else if o.items_type().is_some() && p.items_type().is_some() && o.items_type() != p.items_type() {
            errs.push(
                format!("schema.properties.{k}.items.type"),
                "cannot be changed: the item type of an array property is immutable",
            );
        }
    }
    for (k, r) in &new.relations {
        if let Some(o) = old.relations.get(k) {
            if o.many != r.many {
                errs.push(format!("relations.{k}.many"), "cannot be changed after the relation is created");
            }
            if o.target != r.target {
                errs.push(format!("relations.{k}.target"), "cannot be changed after the relation is created");
            }
        }
    }
    errs.into_result()
}

/// Mirror paths of `dependents` that resolve `before` a change but not `after` it: the change
/// would break them (a removed property or relation they go through).
pub fn check_dependents<'a>(
    dependents: impl IntoIterator<Item = &'a Blueprint>,
    before: &dyn BlueprintLookup,
    after: &dyn BlueprintLookup,
) -> Result<(), FieldErrors> {
    let mut errs = FieldErrors::default();
    for other in dependents {
        for (id, m) in &other.mirror_properties {
            if check_mirror_path(other, before, &m.path).is_err() {
                continue;
            }
            if let Err(why) = check_mirror_path(other, after, &m.path) {
                errs.push(
                    "",
                    format!(
                        "mirror property {id:?} of blueprint {:?} (path {:?}) would break: {why}; change or remove it first",
                        other.identifier, m.path
                    ),
                );
            }
        }
    }
    errs.into_result()
}

fn check_mirror_path(bp: &Blueprint, others: &dyn BlueprintLookup, path: &str) -> Result<(), String> {
    let parts: Vec<&str> = path.split('.').collect();
    if parts.len() < 2 || parts.iter().any(|p| p.is_empty()) {
        return Err(format!(
            "{path:?} must be relation identifiers joined by dots, ending with a property (e.g. \"domain.owner\")"
        ));
    }
    let mut cur = bp;
    for hop in &parts[..parts.len() - 1] {
        let Some(rel) = cur.relations.get(*hop) else {
            return Err(format!("{hop:?} is not a relation of blueprint {:?}", cur.identifier));
        };
        cur = if rel.target == bp.identifier {
            bp
        } else {
            others
                .blueprint(&rel.target)
                .ok_or_else(|| format!("relation {hop:?} targets blueprint {:?}, which does not exist", rel.target))?
        };
    }
    let last = parts[parts.len() - 1];
    let known = META_PROPERTIES.contains(&last)
        || cur.schema.properties.contains_key(last)
        || cur.calculation_properties.contains_key(last)
        || cur.mirror_properties.contains_key(last)
        || cur.relations.contains_key(last);
    if !known {
        return Err(format!("{last:?} is not a property of blueprint {:?}", cur.identifier));
    }
    Ok(())
}

fn check_aggregation(errs: &mut FieldErrors, path: &str, a: &Value, others: &dyn BlueprintLookup, own: &str) {
    let Some(obj) = a.as_object() else {
        errs.push(path, "must be an object");
        return;
    };
    if !obj.get("title").is_some_and(Value::is_string) {
        errs.push(format!("{path}.title"), "is required");
    }
    match obj.get("target").and_then(Value::as_str) {
        None => errs.push(format!("{path}.target"), "is required"),
        Some(t) if t != own && others.blueprint(t).is_none() => {
            errs.push(format!("{path}.target"), format!("blueprint {t:?} does not exist"))
        }
        _ => {}
    }
    let spec = obj.get("calculationSpec");
    let by = spec.and_then(|s| s.get("calculationBy")).and_then(Value::as_str);
    let func = spec.and_then(|s| s.get("func")).and_then(Value::as_str);
    match (by, func) {
        (Some("entities"), Some("count" | "average")) => {}
        (Some("property"), Some("sum" | "min" | "max" | "median" | "average")) => {
            if spec.and_then(|s| s.get("property")).and_then(Value::as_str).is_none() {
                errs.push(format!("{path}.calculationSpec.property"), "is required when calculationBy is \"property\"");
            }
        }
        _ => errs.push(
            format!("{path}.calculationSpec"),
            "must be {calculationBy:\"entities\", func: count|average} or {calculationBy:\"property\", func: sum|min|max|median|average, property}",
        ),
    }
    // What the computation needs besides (averageOf, measureTimeBy, query, pathFilter); the
    // errors above are not repeated.
    if let Err(e) = crate::aggregation::Aggregation::parse(own, a, path) {
        let reported =
            [format!("{path}.target"), format!("{path}.calculationSpec"), format!("{path}.calculationSpec.property")];
        for f in e.0.into_iter().filter(|f| !reported.contains(&f.path)) {
            errs.push(f.path, f.message);
        }
    }
}
