//! JSON → [`Query`], strict: Port's schema (`/schemas/entitiesQuery`) forbids unknown keys, and
//! so does this parser. Messages follow Port's AJV wording where it has one.

use serde_json::{Map, Value};

use super::{
    Bound, CmpOp, Combinator, DatePreset, DateRange, Direction, ItemsFilter, Literal, MAX_DEPTH, MAX_HOPS,
    MAX_PATH_STEPS, MAX_RULES, MAX_STRING_CHARS, MAX_VALUES, MatchAny, MetaProperty, Operator, PathStep, PropertyOp,
    PropertyRef, PropertySchemaFilter, Query, RelatedTo, Rule, ScorecardRule, parse_timestamp,
};
use crate::blueprint::PropType;
use crate::error::{FieldError, join_path};

/// Parse a search query (`{combinator, rules}`). Error paths are relative to the query object:
/// `rules[2].operator`, or empty for the query itself.
pub fn parse_query(v: &Value) -> Result<Query, FieldError> {
    let obj = v.as_object().ok_or_else(|| FieldError::new("", "must be object"))?;
    let mut parser = Parser { rules: 0 };
    parser.group(obj, "", 1)
}

type Res<T> = Result<T, FieldError>;

fn err(path: &str, child: &str, message: impl Into<String>) -> FieldError {
    FieldError::new(join_path(path, child), message)
}

fn required(path: &str, key: &str) -> FieldError {
    FieldError::new(path, format!("must have required property '{key}'"))
}

fn one_of<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    format!("must be one of {}", names.into_iter().collect::<Vec<_>>().join(", "))
}

/// Reject keys outside `allowed`, naming the first offender.
fn only_keys(obj: &Map<String, Value>, path: &str, allowed: &[&str]) -> Res<()> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(FieldError::new(path, format!("must NOT have additional properties ('{k}')"))),
        None => Ok(()),
    }
}

fn is_context_ref(v: &Value) -> bool {
    v.as_object().is_some_and(|o| o.contains_key("context"))
}

fn context_error(path: &str) -> FieldError {
    FieldError::new(
        path,
        "contextual references ({context, property}) are not supported here; resolve them before searching",
    )
}

/// Refuse a string longer than [`MAX_STRING_CHARS`] (counted cheaply: bytes first).
fn bounded<'a>(s: &'a str, path: &str) -> Res<&'a str> {
    if s.len() > MAX_STRING_CHARS && s.chars().count() > MAX_STRING_CHARS {
        return Err(FieldError::new(
            path,
            format!("must NOT have more than {MAX_STRING_CHARS} characters (this one has {})", s.chars().count()),
        ));
    }
    Ok(s)
}

fn string<'a>(v: &'a Value, path: &str) -> Res<&'a str> {
    match v {
        Value::String(s) => bounded(s, path),
        v if is_context_ref(v) => Err(context_error(path)),
        _ => Err(FieldError::new(path, "must be string")),
    }
}

fn non_empty_string(v: &Value, path: &str) -> Res<String> {
    let s = string(v, path)?;
    if s.is_empty() {
        return Err(FieldError::new(path, "must NOT have fewer than 1 characters"));
    }
    Ok(s.to_string())
}

/// A string, or an array of strings (`relatedTo` / `matchAny` identifiers).
fn ids(v: &Value, path: &str) -> Res<Vec<String>> {
    match v {
        Value::String(s) => Ok(vec![bounded(s, path)?.to_string()]),
        Value::Array(items) => {
            if items.len() > MAX_VALUES {
                return Err(FieldError::new(path, format!("must NOT have more than {MAX_VALUES} items")));
            }
            items
                .iter()
                .enumerate()
                .map(|(i, v)| string(v, &join_path(path, &format!("[{i}]"))).map(str::to_string))
                .collect()
        }
        v if is_context_ref(v) => Err(context_error(path)),
        _ => Err(FieldError::new(path, "must be string or array of strings")),
    }
}

/// A scalar list item (`in`, `notIn`, `containsAny`, array values of `=`).
fn list_item(v: &Value, path: &str) -> Res<Literal> {
    match v {
        Value::String(s) => Ok(Literal::String(bounded(s, path)?.to_string())),
        Value::Number(n) => Ok(Literal::Number(n.clone())),
        Value::Bool(b) => Ok(Literal::Bool(*b)),
        _ => Err(FieldError::new(path, "must be string, number or boolean")),
    }
}

fn list(v: &Value, path: &str) -> Res<Vec<Literal>> {
    match v {
        Value::Array(items) => {
            if items.len() > MAX_VALUES {
                return Err(FieldError::new(path, format!("must NOT have more than {MAX_VALUES} items")));
            }
            items.iter().enumerate().map(|(i, v)| list_item(v, &join_path(path, &format!("[{i}]")))).collect()
        }
        v if is_context_ref(v) => Err(context_error(path)),
        _ => Err(FieldError::new(path, "must be array")),
    }
}

/// The value of `=` / `!=`: null, string, number, boolean or an array of scalars.
fn literal(v: &Value, path: &str) -> Res<Literal> {
    match v {
        Value::Null => Ok(Literal::Null),
        Value::Array(_) => Ok(Literal::Array(list(v, path)?)),
        Value::Object(_) if is_context_ref(v) => Err(context_error(path)),
        Value::Object(_) => Err(FieldError::new(path, "must be null, string, number, boolean or array")),
        v => list_item(v, path),
    }
}

fn bound(v: &Value, path: &str) -> Res<Bound> {
    const MSG: &str = "must be a number or an ISO-8601 date-time string";
    match v {
        Value::Number(n) => Ok(Bound::Number(n.clone())),
        Value::String(s) => parse_timestamp(s).map(Bound::DateTime).ok_or_else(|| FieldError::new(path, MSG)),
        v if is_context_ref(v) => Err(context_error(path)),
        _ => Err(FieldError::new(path, MSG)),
    }
}

fn timestamp(v: &Value, path: &str) -> Res<chrono::DateTime<chrono::Utc>> {
    let s = string(v, path)?;
    parse_timestamp(s).ok_or_else(|| FieldError::new(path, "must be an ISO-8601 date-time string"))
}

fn date_range(v: &Value, path: &str) -> Res<DateRange> {
    let obj = match v {
        Value::Object(_) if is_context_ref(v) => return Err(context_error(path)),
        Value::Object(o) => o,
        _ => return Err(FieldError::new(path, "must be {from, to} or {preset}")),
    };
    if let Some(p) = obj.get("preset") {
        only_keys(obj, path, &["preset"])?;
        let ppath = join_path(path, "preset");
        let name = string(p, &ppath)?;
        let preset = DatePreset::from_name(name)
            .ok_or_else(|| FieldError::new(&ppath, one_of(DatePreset::ALL.iter().map(|p| p.as_str()))))?;
        return Ok(DateRange::Preset(preset));
    }
    if !obj.contains_key("from") && !obj.contains_key("to") {
        return Err(FieldError::new(path, "must be {from, to} or {preset}"));
    }
    only_keys(obj, path, &["from", "to"])?;
    let from = obj.get("from").ok_or_else(|| required(path, "from"))?;
    let to = obj.get("to").ok_or_else(|| required(path, "to"))?;
    Ok(DateRange::Range {
        from: timestamp(from, &join_path(path, "from"))?,
        to: timestamp(to, &join_path(path, "to"))?,
    })
}

fn prop_type(v: &Value, path: &str) -> Res<PropType> {
    let s = string(v, path)?;
    [PropType::String, PropType::Number, PropType::Boolean, PropType::Object, PropType::Array]
        .into_iter()
        .find(|t| t.as_str() == s)
        .ok_or_else(|| FieldError::new(path, one_of(["string", "number", "boolean", "object", "array"])))
}

/// Whether an operator takes no `value`.
fn valueless(op: Operator) -> bool {
    matches!(op, Operator::IsEmpty | Operator::IsNotEmpty | Operator::IsExpired | Operator::IsNotExpired)
}

struct Parser {
    /// Rules and groups seen so far, to bound the work a query can ask for.
    rules: usize,
}

impl Parser {
    fn node(&mut self, v: &Value, path: &str, depth: usize) -> Res<Query> {
        self.rules += 1;
        if self.rules > MAX_RULES {
            return Err(FieldError::new(
                path,
                format!(
                    "is rule number {} of this query; a query may have at most {MAX_RULES} rules and groups, \
                     all levels together: split the search or use `in` lists",
                    self.rules
                ),
            ));
        }
        let obj = v.as_object().ok_or_else(|| FieldError::new(path, "must be object"))?;
        if obj.contains_key("combinator") || obj.contains_key("rules") {
            return self.group(obj, path, depth);
        }
        rule(obj, path).map(Query::Rule)
    }

    fn group(&mut self, obj: &Map<String, Value>, path: &str, depth: usize) -> Res<Query> {
        if depth > MAX_DEPTH {
            return Err(FieldError::new(path, format!("is nested too deeply (at most {MAX_DEPTH} levels)")));
        }
        let c = obj.get("combinator").ok_or_else(|| required(path, "combinator"))?;
        let cpath = join_path(path, "combinator");
        let combinator = match string(c, &cpath)? {
            "and" => Combinator::And,
            "or" => Combinator::Or,
            _ => return Err(FieldError::new(cpath, one_of(["and", "or"]))),
        };
        let rules = obj.get("rules").ok_or_else(|| required(path, "rules"))?;
        only_keys(obj, path, &["combinator", "rules"])?;
        let rpath = join_path(path, "rules");
        let items = rules.as_array().ok_or_else(|| FieldError::new(&rpath, "must be array"))?;
        let rules = items
            .iter()
            .enumerate()
            .map(|(i, v)| self.node(v, &join_path(&rpath, &format!("[{i}]")), depth + 1))
            .collect::<Res<Vec<_>>>()?;
        Ok(Query::Group { combinator, rules })
    }
}

fn rule(obj: &Map<String, Value>, path: &str) -> Res<Rule> {
    let o = obj.get("operator").ok_or_else(|| required(path, "operator"))?;
    let opath = join_path(path, "operator");
    let name = string(o, &opath)?;
    let op = Operator::from_name(name)
        .ok_or_else(|| FieldError::new(&opath, one_of(Operator::ALL.iter().map(|o| o.as_str()))))?;
    match op {
        Operator::RelatedTo => related_to(obj, path).map(Rule::RelatedTo),
        Operator::MatchAny => match_any(obj, path).map(Rule::MatchAny),
        _ if obj.contains_key("propertySchema") => {
            let keys: &[&str] =
                if valueless(op) { &["propertySchema", "operator"] } else { &["propertySchema", "operator", "value"] };
            only_keys(obj, path, keys)?;
            let schema = property_schema(&obj["propertySchema"], &join_path(path, "propertySchema"))?;
            Ok(Rule::PropertySchema { schema, op: property_op(op, obj, path)? })
        }
        _ if obj.contains_key("relation") => {
            const OPS: [Operator; 7] = [
                Operator::Eq,
                Operator::Ne,
                Operator::In,
                Operator::NotIn,
                Operator::ContainsAny,
                Operator::IsEmpty,
                Operator::IsNotEmpty,
            ];
            if !OPS.contains(&op) {
                return Err(FieldError::new(opath, one_of(OPS.iter().map(|o| o.as_str()))));
            }
            let keys: &[&str] =
                if valueless(op) { &["relation", "operator"] } else { &["relation", "operator", "value"] };
            only_keys(obj, path, keys)?;
            let relation = non_empty_string(&obj["relation"], &join_path(path, "relation"))?;
            Ok(Rule::Relation { relation, op: property_op(op, obj, path)? })
        }
        _ if obj.contains_key("scorecard") => scorecard_rule(op, obj, path).map(Rule::Scorecard),
        _ => {
            let p = obj.get("property").ok_or_else(|| required(path, "property"))?;
            let keys: &[&str] =
                if valueless(op) { &["property", "operator"] } else { &["property", "operator", "value"] };
            only_keys(obj, path, keys)?;
            let property = property_ref(p, &join_path(path, "property"))?;
            Ok(Rule::Property { property, op: property_op(op, obj, path)? })
        }
    }
}

/// `{scorecard, scorecardRule?, operator, value}` (keys not yet checked).
fn scorecard_rule(op: Operator, obj: &Map<String, Value>, path: &str) -> Res<ScorecardRule> {
    let opath = join_path(path, "operator");
    let vpath = join_path(path, "value");
    let rule = obj.contains_key("scorecardRule");
    let keys: &[&str] =
        if rule { &["scorecard", "scorecardRule", "operator", "value"] } else { &["scorecard", "operator", "value"] };
    only_keys(obj, path, keys)?;
    let scorecard = non_empty_string(&obj["scorecard"], &join_path(path, "scorecard"))?;
    let v = obj.get("value").ok_or_else(|| required(path, "value"))?;
    if rule {
        let rule = non_empty_string(&obj["scorecardRule"], &join_path(path, "scorecardRule"))?;
        let negated = match op {
            Operator::Eq => false,
            Operator::Ne => true,
            _ => return Err(FieldError::new(opath, "must be one of =, != (a scorecardRule rule)")),
        };
        let status = match v {
            Value::Bool(true) => "SUCCESS",
            Value::Bool(false) => "FAILURE",
            Value::String(s) if s == "SUCCESS" || s == "FAILURE" => s.as_str(),
            _ => {
                return Err(FieldError::new(
                    vpath,
                    "must be \"SUCCESS\", \"FAILURE\", true or false (the rule's status)",
                ));
            }
        };
        return Ok(ScorecardRule { scorecard, rule: Some(rule), negated, values: vec![status.to_string()] });
    }
    let (negated, values) = match op {
        Operator::Eq | Operator::Ne => (op == Operator::Ne, vec![non_empty_string(v, &vpath)?]),
        Operator::In | Operator::NotIn => {
            let Value::Array(items) = v else {
                return Err(FieldError::new(vpath, "must be an array of level titles"));
            };
            if items.is_empty() || items.len() > MAX_VALUES {
                return Err(FieldError::new(vpath, format!("must hold 1 to {MAX_VALUES} level titles")));
            }
            let values = items
                .iter()
                .enumerate()
                .map(|(i, item)| non_empty_string(item, &join_path(&vpath, &format!("[{i}]"))))
                .collect::<Res<Vec<_>>>()?;
            (op == Operator::NotIn, values)
        }
        _ => return Err(FieldError::new(opath, "must be one of =, !=, in, notIn (a scorecard rule)")),
    };
    Ok(ScorecardRule { scorecard, rule: None, negated, values })
}

fn property_ref(v: &Value, path: &str) -> Res<PropertyRef> {
    if v.is_object() && !is_context_ref(v) {
        return Err(FieldError::new(path, "must be string (a relation path {path} needs operator matchAny)"));
    }
    let name = non_empty_string(v, path)?;
    if name.starts_with('$') {
        let meta = MetaProperty::from_name(&name).ok_or_else(|| {
            let names = MetaProperty::ALL.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", ");
            FieldError::new(path, format!("unknown meta-property '{name}'; must be one of {names}"))
        })?;
        return Ok(PropertyRef::Meta(meta));
    }
    Ok(PropertyRef::Property(name))
}

/// The typed operator of a property / property-schema / relation rule (keys already checked).
fn property_op(op: Operator, obj: &Map<String, Value>, path: &str) -> Res<PropertyOp> {
    if valueless(op) {
        return Ok(match op {
            Operator::IsEmpty => PropertyOp::IsEmpty,
            Operator::IsNotEmpty => PropertyOp::IsNotEmpty,
            Operator::IsExpired => PropertyOp::IsExpired,
            _ => PropertyOp::IsNotExpired,
        });
    }
    let v = obj.get("value").ok_or_else(|| required(path, "value"))?;
    let vpath = join_path(path, "value");
    let s = || string(v, &vpath).map(str::to_string);
    Ok(match op {
        Operator::Eq => PropertyOp::Eq(literal(v, &vpath)?),
        Operator::Ne => PropertyOp::Ne(literal(v, &vpath)?),
        Operator::Gt => PropertyOp::Cmp(CmpOp::Gt, bound(v, &vpath)?),
        Operator::Ge => PropertyOp::Cmp(CmpOp::Ge, bound(v, &vpath)?),
        Operator::Lt => PropertyOp::Cmp(CmpOp::Lt, bound(v, &vpath)?),
        Operator::Le => PropertyOp::Cmp(CmpOp::Le, bound(v, &vpath)?),
        Operator::Between => PropertyOp::Between(date_range(v, &vpath)?),
        Operator::NotBetween => PropertyOp::NotBetween(date_range(v, &vpath)?),
        Operator::Contains => PropertyOp::Contains(s()?),
        Operator::DoesNotContains => PropertyOp::DoesNotContain(s()?),
        Operator::BeginsWith => PropertyOp::BeginsWith(s()?),
        Operator::DoesNotBeginsWith => PropertyOp::DoesNotBeginWith(s()?),
        Operator::EndsWith => PropertyOp::EndsWith(s()?),
        Operator::DoesNotEndsWith => PropertyOp::DoesNotEndWith(s()?),
        Operator::ContainsAny => PropertyOp::ContainsAny(list(v, &vpath)?),
        Operator::In => PropertyOp::In(list(v, &vpath)?),
        Operator::NotIn => PropertyOp::NotIn(list(v, &vpath)?),
        // relatedTo / matchAny never reach here; the empty / expired ones returned above.
        _ => return Err(FieldError::new(join_path(path, "operator"), "is not a property operator")),
    })
}

fn property_schema(v: &Value, path: &str) -> Res<PropertySchemaFilter> {
    let obj = v.as_object().ok_or_else(|| FieldError::new(path, "must be object"))?;
    let ty = obj.get("type").ok_or_else(|| required(path, "type"))?;
    only_keys(obj, path, &["type", "format", "items"])?;
    let ty = prop_type(ty, &join_path(path, "type"))?;
    let format = obj.get("format").map(|f| non_empty_string(f, &join_path(path, "format"))).transpose()?;
    let items = match obj.get("items") {
        None => None,
        Some(items) => {
            let ipath = join_path(path, "items");
            let iobj = items.as_object().ok_or_else(|| FieldError::new(&ipath, "must be object"))?;
            let ity = iobj.get("type").ok_or_else(|| required(&ipath, "type"))?;
            only_keys(iobj, &ipath, &["type", "format"])?;
            let ty = prop_type(ity, &join_path(&ipath, "type"))?;
            let format = iobj.get("format").map(|f| non_empty_string(f, &join_path(&ipath, "format"))).transpose()?;
            Some(ItemsFilter { ty, format })
        }
    };
    Ok(PropertySchemaFilter { ty, format, items })
}

fn related_to(obj: &Map<String, Value>, path: &str) -> Res<RelatedTo> {
    let blueprint = obj.get("blueprint").ok_or_else(|| required(path, "blueprint"))?;
    let value = obj.get("value").ok_or_else(|| required(path, "value"))?;
    only_keys(obj, path, &["operator", "blueprint", "value", "direction", "required"])?;
    let blueprint = non_empty_string(blueprint, &join_path(path, "blueprint"))?;
    let values = ids(value, &join_path(path, "value"))?;
    let direction = match obj.get("direction") {
        None => None,
        Some(d) => {
            let dpath = join_path(path, "direction");
            match string(d, &dpath)? {
                "upstream" => Some(Direction::Upstream),
                "downstream" => Some(Direction::Downstream),
                _ => return Err(FieldError::new(dpath, one_of(["upstream", "downstream"]))),
            }
        }
    };
    let required = match obj.get("required") {
        None => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err(err(path, "required", "must be boolean")),
    };
    Ok(RelatedTo { blueprint, values, direction, required })
}

fn match_any(obj: &Map<String, Value>, path: &str) -> Res<MatchAny> {
    let property = obj.get("property").ok_or_else(|| required(path, "property"))?;
    let value = obj.get("value").ok_or_else(|| required(path, "value"))?;
    only_keys(obj, path, &["property", "operator", "value"])?;
    let ppath = join_path(path, "property");
    let pobj = property.as_object().ok_or_else(|| FieldError::new(&ppath, "must be object {path, fromBlueprint?}"))?;
    let steps = pobj.get("path").ok_or_else(|| required(&ppath, "path"))?;
    only_keys(pobj, &ppath, &["path", "fromBlueprint"])?;
    let spath = join_path(&ppath, "path");
    let items = steps.as_array().ok_or_else(|| FieldError::new(&spath, "must be array"))?;
    if items.is_empty() {
        return Err(FieldError::new(spath, "must NOT have fewer than 1 items"));
    }
    if items.len() > MAX_PATH_STEPS {
        return Err(FieldError::new(spath, format!("must NOT have more than {MAX_PATH_STEPS} items (relations)")));
    }
    let mut path_steps = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let ipath = join_path(&spath, &format!("[{i}]"));
        let step = path_step(item, &ipath)?;
        if step.max_hops.is_some() && path_steps.iter().any(|s: &PathStep| s.max_hops.is_some()) {
            return Err(FieldError::new(ipath, "maxHops may appear only once in a path"));
        }
        path_steps.push(step);
    }
    let from_blueprint =
        pobj.get("fromBlueprint").map(|b| non_empty_string(b, &join_path(&ppath, "fromBlueprint"))).transpose()?;
    let values = ids(value, &join_path(path, "value"))?;
    Ok(MatchAny { path: path_steps, from_blueprint, values })
}

fn path_step(v: &Value, path: &str) -> Res<PathStep> {
    match v {
        Value::String(_) => Ok(PathStep { relation: non_empty_string(v, path)?, max_hops: None }),
        Value::Object(o) => {
            let relation = o.get("relation").ok_or_else(|| required(path, "relation"))?;
            let hops = o.get("maxHops").ok_or_else(|| required(path, "maxHops"))?;
            only_keys(o, path, &["relation", "maxHops"])?;
            let relation = non_empty_string(relation, &join_path(path, "relation"))?;
            let max_hops = hops
                .as_u64()
                .filter(|h| (1..=u64::from(MAX_HOPS)).contains(h))
                .and_then(|h| u8::try_from(h).ok())
                .ok_or_else(|| err(path, "maxHops", format!("must be an integer between 1 and {MAX_HOPS}")))?;
            Ok(PathStep { relation, max_hops: Some(max_hops) })
        }
        _ => Err(FieldError::new(path, "must be string or object {relation, maxHops}")),
    }
}
