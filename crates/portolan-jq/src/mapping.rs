//! One engine for Port mappings: a selector, `itemsToParse` and an entity mapping (identifier,
//! title, blueprint, icon, team, `properties.*`, `relations.*`, each a jq expression), compiled
//! once and evaluated per item.
//!
//! Three shapes are read:
//! - a custom webhook's mapping ([`CompiledMapping::webhook`]): `{blueprint, operation, filter,
//!   itemsToParse, entity: {identifier, title, team, icon, properties, relations}}`;
//! - a resource of an Ocean integration's config ([`CompiledMapping::ocean`]): `{kind,
//!   selector: {query}, port: {itemsToParse, entity: {mappings}}}`, `mappings` an object or an
//!   array of them, every string inside a jq expression;
//! - loose parts ([`CompiledMapping::from_parts`]): a selector, an optional `itemsToParse` and an
//!   entity mapping object (the web playground).
//!
//! Compiling never fails as a whole: every problem is a [`MappingError`] with its path (save-time
//! checks list them), and a field whose expression does not compile evaluates to that compile
//! error (the playground shows it beside the field, as Ocean would). Evaluation spends the
//! caller's [`JqScope`]: the selector and `itemsToParse` one evaluation each, an entity's fields
//! one batch ([`JqScope::first_many`], one worker hand-off) per item.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::{Compiled, JqEngine, JqError, JqScope};

/// What kind of problem a [`MappingError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MappingErrorKind {
    /// A jq expression does not compile (or is over the size limit). The message is the
    /// [`JqError`]'s text.
    Compile,
    /// Something is not where or what the shape requires (a required expression is missing, an
    /// expression is not a string, a group is not an object).
    Shape,
    /// A non-string leaf (number, boolean, null) inside a free-form entity mapping (Ocean shape
    /// or loose parts), where a jq expression was expected. Evaluating it is an error.
    Literal,
}

/// A problem of a mapping, at a path relative to the mapping (`entity.properties.size`,
/// `port.entity.mappings[1].identifier`, `selector.query`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingError {
    pub path: String,
    pub kind: MappingErrorKind,
    pub message: String,
}

/// Why a field has no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    /// The expression did not compile, failed, produced nothing, or hit a limit.
    #[error(transparent)]
    Jq(#[from] JqError),
    /// The mapping has a non-string value here.
    #[error("not a jq expression: mapping values are strings")]
    Literal,
    /// `itemsToParse` gave something else than an array (its kind: `an object`, `null`, …).
    #[error("itemsToParse must give an array, not {0}")]
    NotArray(&'static str),
}

/// Where a field's value goes in the entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot {
    /// A top-level key of the entity: `identifier`, `title`, `blueprint`, `icon`, `team`, ….
    Top(String),
    /// `properties.<name>`.
    Property(String),
    /// `relations.<name>` given as an expression.
    Relation(String),
    /// Deeper inside the mapping (a relation's search query, an array element): shown and
    /// checked, not assembled into the entity.
    Nested,
}

#[derive(Debug, Clone)]
enum Program {
    Jq(Arc<Compiled>),
    Invalid(JqError),
    Literal,
}

/// One expression of a mapping, compiled.
#[derive(Debug, Clone)]
pub struct Field {
    path: String,
    expr: String,
    slot: Slot,
    program: Program,
}

impl Field {
    fn compile(jq: &JqEngine, path: String, slot: Slot, v: &Value, errors: &mut Vec<MappingError>) -> Field {
        let (expr, program) = match v {
            Value::String(src) => match jq.compile(src) {
                Ok(c) => (src.clone(), Program::Jq(c)),
                Err(e) => {
                    errors.push(MappingError {
                        path: path.clone(),
                        kind: MappingErrorKind::Compile,
                        message: e.to_string(),
                    });
                    (src.clone(), Program::Invalid(e))
                }
            },
            other => {
                errors.push(MappingError {
                    path: path.clone(),
                    kind: MappingErrorKind::Literal,
                    message: EvalError::Literal.to_string(),
                });
                (other.to_string(), Program::Literal)
            }
        };
        Field { path, expr, slot, program }
    }
    /// Path relative to the mapping (`entity.title`, `port.entity.mappings.properties.url`).
    pub fn path(&self) -> &str {
        &self.path
    }
    /// The expression as written (a non-string leaf: its JSON text).
    pub fn expr(&self) -> &str {
        &self.expr
    }
    /// Where the value goes in the entity.
    pub fn slot(&self) -> &Slot {
        &self.slot
    }
    /// The compile error, if the expression did not compile.
    pub fn compile_error(&self) -> Option<&JqError> {
        match &self.program {
            Program::Invalid(e) => Some(e),
            _ => None,
        }
    }
    /// The first output of the expression over `input`.
    pub fn eval(&self, jq: &JqScope<'_>, input: &Value) -> Result<Value, EvalError> {
        match &self.program {
            Program::Jq(c) => Ok(jq.first_compiled(c, input)?),
            Program::Invalid(e) => Err(EvalError::Jq(e.clone())),
            Program::Literal => Err(EvalError::Literal),
        }
    }
    fn result(&self, result: Result<Value, EvalError>) -> FieldValue {
        FieldValue { path: self.path.clone(), expr: self.expr.clone(), slot: self.slot.clone(), result }
    }
}

/// One entity mapping: the fields that make one entity per item.
#[derive(Debug, Clone)]
pub struct EntityTemplate {
    path: String,
    fields: Vec<Field>,
    /// Only the compiled fields, in order, for one batch per item.
    batch: Vec<Arc<Compiled>>,
    errors: Vec<MappingError>,
}

impl EntityTemplate {
    fn new(path: String, fields: Vec<Field>, errors: Vec<MappingError>) -> Self {
        let batch = fields
            .iter()
            .filter_map(|f| match &f.program {
                Program::Jq(c) => Some(Arc::clone(c)),
                _ => None,
            })
            .collect();
        EntityTemplate { path, fields, batch, errors }
    }
    /// Where the template is in the mapping (`entity`, `port.entity.mappings[0]`, or empty).
    pub fn path(&self) -> &str {
        &self.path
    }
    /// The fields, in mapping order.
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }
    /// The field at `key` relative to the template (`identifier`, `properties.url`).
    pub fn field(&self, key: &str) -> Option<&Field> {
        self.fields.iter().find(|f| rel(&self.path, &f.path) == key)
    }
    /// This template's problems (its paths include the template's).
    pub fn errors(&self) -> &[MappingError] {
        &self.errors
    }
    /// The first field whose expression does not compile.
    pub fn first_compile_error(&self) -> Option<(&Field, &JqError)> {
        self.fields.iter().find_map(|f| f.compile_error().map(|e| (f, e)))
    }
    /// Every field over `input`, in one worker hand-off. `Err` when the batch itself failed
    /// (the budget ran out, the tenant's share was busy, a worker died): no field has a value.
    pub fn eval(&self, jq: &JqScope<'_>, input: &Value) -> Result<Vec<FieldValue>, JqError> {
        Ok(self.field_values(jq.first_many(&self.batch, input)?))
    }

    /// [`eval`](Self::eval) for many items at once: item `n`'s input is `base` with `key` set to
    /// `items[n]` (as [`bind_item`] builds it), in one worker hand-off, `base` converted once —
    /// a delivery's body is not copied per item. `Err` as for `eval`: no item has values.
    pub fn eval_items(
        &self,
        jq: &JqScope<'_>,
        base: &Value,
        key: &str,
        items: &[Value],
    ) -> Result<Vec<Vec<FieldValue>>, JqError> {
        if self.batch.is_empty() {
            return Ok(items.iter().map(|_| self.field_values(Vec::new())).collect());
        }
        let per_item = jq.engine().first_many_items_in(jq.budget(), &self.batch, base, key, items)?;
        Ok(per_item.into_iter().map(|outcomes| self.field_values(outcomes)).collect())
    }

    /// The fields' values from the batch's outcomes (in `self.batch` order).
    fn field_values(&self, outcomes: Vec<Result<Value, JqError>>) -> Vec<FieldValue> {
        let mut batch = outcomes.into_iter();
        self.fields
            .iter()
            .map(|f| {
                let r = match &f.program {
                    Program::Jq(_) => batch
                        .next()
                        .unwrap_or_else(|| Err(JqError::Runtime("internal error: no outcome".to_owned())))
                        .map_err(EvalError::Jq),
                    Program::Invalid(e) => Err(EvalError::Jq(e.clone())),
                    Program::Literal => Err(EvalError::Literal),
                };
                f.result(r)
            })
            .collect()
    }
}

/// A field's path relative to its template.
fn rel<'a>(template: &str, path: &'a str) -> &'a str {
    if template.is_empty() {
        return path;
    }
    path.strip_prefix(template).and_then(|p| p.strip_prefix('.')).unwrap_or(path)
}

/// One evaluated expression.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldValue {
    pub path: String,
    pub expr: String,
    pub slot: Slot,
    pub result: Result<Value, EvalError>,
}

/// The entity could not be assembled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntityError {
    /// The identifier was not a non-empty string or a number (what it was: `null`, `an object`, …;
    /// `missing` when the mapping has none or it failed).
    #[error("the identifier is {0}: it must be a non-empty string or a number")]
    Identifier(&'static str),
}

/// Port's entity from evaluated fields: `identifier` (a number becomes a string), the other
/// top-level fields that are not `null`, `properties` and `relations`. A failed field counts as
/// `null`, as in Ocean. Nested fields are not assembled.
pub fn assemble(values: &[FieldValue]) -> Result<Map<String, Value>, EntityError> {
    let mut body = Map::new();
    let (mut props, mut rels) = (Map::new(), Map::new());
    let mut identifier = None;
    for f in values {
        let v = f.result.clone().unwrap_or(Value::Null);
        if f.slot == Slot::Top("identifier".into()) {
            identifier = Some(v.clone());
        }
        match &f.slot {
            Slot::Property(k) => {
                props.insert(k.clone(), v);
            }
            Slot::Relation(k) => {
                rels.insert(k.clone(), v);
            }
            Slot::Top(k) if !v.is_null() => {
                body.insert(k.clone(), v);
            }
            Slot::Top(_) | Slot::Nested => {}
        }
    }
    let id = match &identifier {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(_)) => return Err(EntityError::Identifier("an empty string")),
        Some(other) => return Err(EntityError::Identifier(kind(other))),
        None => return Err(EntityError::Identifier("missing")),
    };
    body.insert("identifier".into(), json!(id));
    body.insert("properties".into(), Value::Object(props));
    body.insert("relations".into(), Value::Object(rels));
    Ok(body)
}

/// `null`, `a boolean`, `a number`, `a string`, `an array` or `an object`.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `input` with `item` bound as `.item` (a non-object input becomes `{"item": item}`).
pub fn bind_item(input: &Value, item: Value) -> Value {
    let mut v = match input {
        Value::Object(o) => o.clone(),
        _ => Map::new(),
    };
    v.insert("item".into(), item);
    Value::Object(v)
}

/// A mapping, compiled once.
#[derive(Debug, Clone, Default)]
pub struct CompiledMapping {
    selector: Option<Field>,
    items_to_parse: Option<Field>,
    entities: Vec<EntityTemplate>,
    /// Problems outside the entity templates (selector, itemsToParse, a missing entity).
    errors: Vec<MappingError>,
}

/// A relation given as a search query in a webhook mapping.
const SEARCH_QUERY: &str = "relation search queries ({combinator, rules}) are not supported on webhooks yet; map the relation to entity identifiers with jq";
/// Port's message for a value that should be a jq expression.
const NOT_A_STRING: &str = "must be a jq expression (a string; literal strings need inner quotes: '\"x\"')";

impl CompiledMapping {
    /// A custom webhook's mapping. Paths: `filter`, `itemsToParse`, `entity`,
    /// `entity.identifier` (required), `entity.title|team|icon`, `entity.properties.<k>`,
    /// `entity.relations.<k>` (required when present). Values that are not strings are shape
    /// errors and are not evaluated; relation search queries are refused (not supported yet).
    pub fn webhook(jq: &JqEngine, mapping: &Value) -> Self {
        let mut out = CompiledMapping::default();
        let Some(m) = mapping.as_object() else {
            out.shape("", "must be an object {blueprint, operation, filter, itemsToParse, entity}");
            return out;
        };
        out.selector = out.webhook_expr(jq, "filter", m.get("filter"));
        out.items_to_parse = out.webhook_expr(jq, "itemsToParse", m.get("itemsToParse"));
        let Some(entity) = m.get("entity").and_then(Value::as_object) else {
            out.shape("entity", "is required: {identifier, title, team, icon, properties, relations} (jq)");
            return out;
        };
        let (mut fields, mut errors) = (Vec::new(), Vec::new());
        for key in ["identifier", "title", "team", "icon"] {
            let path = format!("entity.{key}");
            let required = key == "identifier";
            webhook_field(jq, path, Slot::Top(key.into()), entity.get(key), required, &mut fields, &mut errors);
        }
        for group in ["properties", "relations"] {
            match entity.get(group) {
                None | Some(Value::Null) => {}
                Some(Value::Object(fs)) => {
                    for (k, v) in fs {
                        let path = format!("entity.{group}.{k}");
                        let slot = match group {
                            "properties" => Slot::Property(k.clone()),
                            _ if v.is_object() => {
                                errors.push(shape(path, SEARCH_QUERY));
                                continue;
                            }
                            _ => Slot::Relation(k.clone()),
                        };
                        webhook_field(jq, path, slot, Some(v), true, &mut fields, &mut errors);
                    }
                }
                Some(_) => errors.push(shape(format!("entity.{group}"), "must be an object of jq expressions")),
            }
        }
        out.entities.push(EntityTemplate::new("entity".into(), fields, errors));
        out
    }

    fn webhook_expr(&mut self, jq: &JqEngine, path: &str, v: Option<&Value>) -> Option<Field> {
        match v {
            None | Some(Value::Null) => None,
            Some(v @ Value::String(_)) => Some(Field::compile(jq, path.into(), Slot::Nested, v, &mut self.errors)),
            Some(_) => {
                self.shape(path, NOT_A_STRING);
                None
            }
        }
    }

    /// A resource of an Ocean integration's config. Paths: `selector.query`,
    /// `port.itemsToParse`, `port.entity.mappings…` (`port.entity.mappings[j]…` for an array of
    /// mappings). Every string under a mapping is an expression; other leaves are
    /// [`MappingErrorKind::Literal`].
    pub fn ocean(jq: &JqEngine, resource: &Value) -> Self {
        let mut out = CompiledMapping::default();
        out.selector = out.ocean_expr(jq, "selector.query", resource.pointer("/selector/query"));
        out.items_to_parse = out.ocean_expr(jq, "port.itemsToParse", resource.pointer("/port/itemsToParse"));
        match resource.pointer("/port/entity/mappings") {
            Some(m @ Value::Object(_)) => out.entities.push(template(jq, "port.entity.mappings".into(), m)),
            Some(Value::Array(ms)) => {
                for (j, m) in ms.iter().enumerate() {
                    out.entities.push(template(jq, format!("port.entity.mappings[{j}]"), m));
                }
            }
            _ => {}
        }
        out
    }

    fn ocean_expr(&mut self, jq: &JqEngine, path: &str, v: Option<&Value>) -> Option<Field> {
        match v {
            None | Some(Value::Null) => None,
            Some(v @ Value::String(_)) => Some(Field::compile(jq, path.into(), Slot::Nested, v, &mut self.errors)),
            Some(_) => {
                self.shape(path, "must be a jq expression (a string)");
                None
            }
        }
    }

    /// Loose parts, as the playground has them: paths `selector.query`, `port.itemsToParse` and
    /// the mapping's own keys (`identifier`, `properties.size`).
    pub fn from_parts(jq: &JqEngine, selector: &str, items_to_parse: Option<&str>, mapping: &Value) -> Self {
        let mut out = CompiledMapping::default();
        let sel = Value::String(selector.to_owned());
        out.selector = out.ocean_expr(jq, "selector.query", Some(&sel));
        let items = items_to_parse.map(|s| Value::String(s.to_owned()));
        out.items_to_parse = out.ocean_expr(jq, "port.itemsToParse", items.as_ref());
        out.entities.push(template(jq, String::new(), mapping));
        out
    }

    fn shape(&mut self, path: &str, message: &str) {
        self.errors.push(shape(path.into(), message));
    }

    /// Every problem, in mapping order: selector, itemsToParse, then each entity mapping.
    pub fn errors(&self) -> impl Iterator<Item = &MappingError> {
        self.errors.iter().chain(self.entities.iter().flat_map(|t| t.errors.iter()))
    }
    /// The problems outside the entity templates (selector, itemsToParse, a missing entity);
    /// [`EntityTemplate::errors`] has the rest.
    pub fn own_errors(&self) -> &[MappingError] {
        &self.errors
    }
    /// The selector (`filter` of a webhook, `selector.query` of a resource).
    pub fn selector(&self) -> Option<&Field> {
        self.selector.as_ref()
    }
    /// `itemsToParse`.
    pub fn items_to_parse(&self) -> Option<&Field> {
        self.items_to_parse.as_ref()
    }
    /// The entity mappings (a webhook's: one, or none when `entity` is missing).
    pub fn entities(&self) -> &[EntityTemplate] {
        &self.entities
    }

    /// The selector over `input`; `None` without one (the mapping applies).
    pub fn select(&self, jq: &JqScope<'_>, input: &Value) -> Option<Result<Value, EvalError>> {
        self.selector.as_ref().map(|f| f.eval(jq, input))
    }

    /// `itemsToParse` over `input`: the array's elements; `None` without one (the input itself
    /// is the one item). Bind each with [`bind_item`].
    pub fn items(&self, jq: &JqScope<'_>, input: &Value) -> Option<Result<Vec<Value>, EvalError>> {
        self.items_to_parse.as_ref().map(|f| match f.eval(jq, input)? {
            Value::Array(items) => Ok(items),
            other => Err(EvalError::NotArray(kind(&other))),
        })
    }

    /// Everything, as Ocean would and the playground shows it: the selector's result (the rest
    /// is evaluated even when it is not `true`), `itemsToParse` (at most `max_items` items
    /// mapped), then every field of every entity mapping per item.
    pub fn evaluate(&self, jq: &JqScope<'_>, input: &Value, max_items: usize) -> Evaluation {
        let mut out = Evaluation { selected: true, ..Evaluation::default() };
        if let Some(f) = &self.selector {
            let r = f.eval(jq, input);
            out.selected = r == Ok(Value::Bool(true));
            out.selector = Some(f.result(r));
        }
        let mut inputs: Vec<(Option<usize>, Value)> = Vec::new();
        match &self.items_to_parse {
            None => inputs.push((None, input.clone())),
            Some(f) => {
                let r = match f.eval(jq, input) {
                    Ok(Value::Array(a)) => {
                        out.item_count = Some(a.len());
                        inputs.extend(
                            a.iter().take(max_items).enumerate().map(|(n, x)| (Some(n), bind_item(input, x.clone()))),
                        );
                        Ok(Value::Array(a))
                    }
                    Ok(other) => Err(EvalError::NotArray(kind(&other))),
                    Err(e) => Err(e),
                };
                out.items = Some(f.result(r));
            }
        }
        for (n, t) in self.entities.iter().enumerate() {
            for (item, x) in &inputs {
                let fields = t
                    .eval(jq, x)
                    .unwrap_or_else(|e| t.fields.iter().map(|f| f.result(Err(EvalError::Jq(e.clone())))).collect());
                out.entities.push(EntityValue { template: n, item: *item, fields });
            }
        }
        out
    }
}

/// One entity field of a webhook mapping: only strings are expressions.
fn webhook_field(
    jq: &JqEngine,
    path: String,
    slot: Slot,
    v: Option<&Value>,
    required: bool,
    fields: &mut Vec<Field>,
    errors: &mut Vec<MappingError>,
) {
    match v {
        None | Some(Value::Null) if !required => {}
        None | Some(Value::Null) => errors.push(shape(path, "is required: a jq expression")),
        Some(v @ Value::String(_)) => fields.push(Field::compile(jq, path, slot, v, errors)),
        Some(_) => errors.push(shape(path, NOT_A_STRING)),
    }
}

fn shape(path: String, message: &str) -> MappingError {
    MappingError { path, kind: MappingErrorKind::Shape, message: message.into() }
}

/// A free-form entity mapping: every string leaf an expression.
fn template(jq: &JqEngine, path: String, mapping: &Value) -> EntityTemplate {
    let (mut fields, mut errors) = (Vec::new(), Vec::new());
    leaves(jq, &path, &[], mapping, &mut fields, &mut errors);
    EntityTemplate::new(path, fields, errors)
}

/// `keys`: the way down from the template (`None` for an array index).
fn leaves<'a>(
    jq: &JqEngine,
    path: &str,
    keys: &[Option<&'a str>],
    v: &'a Value,
    fields: &mut Vec<Field>,
    errors: &mut Vec<MappingError>,
) {
    let down = |k: Option<&'a str>| {
        let mut keys = keys.to_vec();
        keys.push(k);
        keys
    };
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let at = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                leaves(jq, &at, &down(Some(k)), x, fields, errors);
            }
        }
        Value::Array(a) => {
            for (j, x) in a.iter().enumerate() {
                leaves(jq, &format!("{path}[{j}]"), &down(None), x, fields, errors);
            }
        }
        leaf => {
            let slot = match keys {
                [Some("properties"), Some(k)] => Slot::Property((*k).to_owned()),
                [Some("relations"), Some(k)] => Slot::Relation((*k).to_owned()),
                [Some(k)] => Slot::Top((*k).to_owned()),
                _ => Slot::Nested,
            };
            fields.push(Field::compile(jq, path.to_owned(), slot, leaf, errors));
        }
    }
}

/// What [`CompiledMapping::evaluate`] found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evaluation {
    /// The selector's result (`None` without a selector).
    pub selector: Option<FieldValue>,
    /// No selector, or it gave `true`.
    pub selected: bool,
    /// `itemsToParse`'s result (an error when it is not an array).
    pub items: Option<FieldValue>,
    /// How many items `itemsToParse` gave (before `max_items`).
    pub item_count: Option<usize>,
    /// Per entity mapping, per item: every field.
    pub entities: Vec<EntityValue>,
}

/// The fields of one entity mapping over one item.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityValue {
    /// Index into [`CompiledMapping::entities`].
    pub template: usize,
    /// The item's index when `itemsToParse` split the input.
    pub item: Option<usize>,
    pub fields: Vec<FieldValue>,
}

impl EntityValue {
    /// `item[n]` when `itemsToParse` split the input.
    pub fn label(&self) -> Option<String> {
        self.item.map(|n| format!("item[{n}]"))
    }
    /// The field at `path`.
    pub fn field(&self, path: &str) -> Option<&FieldValue> {
        self.fields.iter().find(|f| f.path == path)
    }
    /// Port's entity from these fields ([`assemble`]).
    pub fn entity(&self) -> Result<Map<String, Value>, EntityError> {
        assemble(&self.fields)
    }
}
