//! Aggregation properties (port-api.md §1.7): a blueprint's `aggregationProperties.<id>` parsed
//! into [`Aggregation`], and the pure functions that turn the aggregated entities' values into
//! the property's number.
//!
//! The store gathers a [`Summary`] of the target entities with SQL aggregates; [`finish`]
//! turns it into the value. [`compute`] does both from a list of [`Sample`]s and is the
//! reference the store's SQL must agree with.
//!
//! Values of an empty set (decided here; Port's documentation is silent): `count` and `sum`
//! are 0, `average` of entities is 0; `min`, `max`, `median` and `average` of a property are
//! `None` (JSON `null`). Property functions look only at JSON numbers: an entity whose property
//! is missing, null or not a number adds nothing (and is not counted by a property average).

use chrono::{DateTime, Months, Utc};
use serde_json::Value;

use crate::Blueprint;
use crate::error::{FieldErrors, join_path};
use crate::search::{MAX_PATH_STEPS, Query, parse_query};

/// What is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    Count,
    Sum,
    Min,
    Max,
    Median,
    /// Per time unit (`averageOf`); [`Per::Total`] is the plain average (of a property), or
    /// the count (of entities).
    Average(Per),
}

/// `averageOf`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Per {
    Hour,
    Day,
    Week,
    Month,
    Total,
}

impl Per {
    fn parse(s: &str) -> Option<Per> {
        Some(match s {
            "hour" => Per::Hour,
            "day" => Per::Day,
            "week" => Per::Week,
            "month" => Per::Month,
            "total" => Per::Total,
            _ => return None,
        })
    }
}

/// `pathFilter[0]`: the one relation path the targets are reached by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathFilter {
    /// Relation identifiers, in the order they are followed.
    pub path: Vec<String>,
    /// Without it the path starts at a target entity and ends at the aggregating entity; with
    /// it (the aggregating entity's blueprint) it starts at the aggregating entity and ends at
    /// the targets.
    pub from_blueprint: Option<String>,
}

/// One aggregation property of a blueprint.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregation {
    pub id: String,
    /// The blueprint of the aggregated entities.
    pub target: String,
    pub func: Func,
    /// `calculationBy: "property"`: the target blueprint's property; `None`: entities.
    pub property: Option<String>,
    /// The date the time averages measure by: `$createdAt`, `$updatedAt` or a property.
    pub measure_time_by: String,
    /// Filters the targets (the search language, over the target blueprint).
    pub query: Option<Query>,
    pub path_filter: Option<PathFilter>,
}

impl Aggregation {
    /// Parse `aggregationProperties.<id>`; errors at paths under `path`.
    pub fn parse(id: &str, v: &Value, path: &str) -> Result<Aggregation, FieldErrors> {
        let mut errs = FieldErrors::default();
        let at = |k: &str| join_path(path, k);
        let target = v.get("target").and_then(Value::as_str).unwrap_or_default().to_string();
        if target.is_empty() {
            errs.push(at("target"), "is required");
        }
        let spec = v.get("calculationSpec");
        let get = |k: &str| spec.and_then(|s| s.get(k));
        let by = get("calculationBy").and_then(Value::as_str);
        let func = get("func").and_then(Value::as_str);
        let property = get("property").and_then(Value::as_str).map(str::to_string);
        let mut per = Per::Total;
        if func == Some("average") {
            match get("averageOf").and_then(Value::as_str).and_then(Per::parse) {
                Some(p) => per = p,
                None => errs.push(at("calculationSpec.averageOf"), "must be one of hour, day, week, month, total"),
            }
        }
        let measure_time_by = match get("measureTimeBy") {
            None | Some(Value::Null) => "$createdAt".to_string(),
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(_) => {
                errs.push(at("calculationSpec.measureTimeBy"), "must be a date property or $createdAt, $updatedAt");
                String::new()
            }
        };
        let func = match (by, func) {
            (Some("entities"), Some("count")) => Some(Func::Count),
            (_, Some("average")) => Some(Func::Average(per)),
            (Some("property"), Some("sum")) => Some(Func::Sum),
            (Some("property"), Some("min")) => Some(Func::Min),
            (Some("property"), Some("max")) => Some(Func::Max),
            (Some("property"), Some("median")) => Some(Func::Median),
            _ => None,
        };
        let func = match (func, by) {
            (Some(f), Some("entities" | "property")) => f,
            _ => {
                errs.push(
                    at("calculationSpec"),
                    "must be {calculationBy:\"entities\", func: count|average} or {calculationBy:\"property\", \
                     func: sum|min|max|median|average, property}",
                );
                Func::Count
            }
        };
        let property = if by == Some("property") {
            if property.is_none() {
                errs.push(at("calculationSpec.property"), "is required when calculationBy is \"property\"");
            }
            property
        } else {
            None
        };
        let query = match v.get("query") {
            None | Some(Value::Null) => None,
            Some(q) => match parse_query(q) {
                Ok(q) => Some(q),
                Err(e) => {
                    errs.push(join_path(&at("query"), &e.path), e.message);
                    None
                }
            },
        };
        let path_filter = match v.get("pathFilter") {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) if items.is_empty() => None,
            Some(Value::Array(items)) if items.len() == 1 => {
                let p = &items[0];
                let steps: Option<Vec<String>> = p
                    .get("path")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().map(|s| s.as_str().map(str::to_string)).collect::<Option<Vec<_>>>())
                    .unwrap_or(None);
                let from_blueprint = p.get("fromBlueprint").and_then(Value::as_str).map(str::to_string);
                match steps {
                    Some(s) if !s.is_empty() && s.len() <= MAX_PATH_STEPS => {
                        Some(PathFilter { path: s, from_blueprint })
                    }
                    _ => {
                        let msg = format!("must be a list of 1 to {MAX_PATH_STEPS} relation identifiers");
                        errs.push(at("pathFilter[0].path"), msg);
                        None
                    }
                }
            }
            Some(_) => {
                errs.push(at("pathFilter"), "must be a list of at most one {path, fromBlueprint?}");
                None
            }
        };
        errs.into_result()?;
        Ok(Aggregation { id: id.to_string(), target, func, property, measure_time_by, query, path_filter })
    }

    /// The blueprint's aggregation properties that parse (a stored one that no longer does is
    /// left out: it has no value).
    pub fn of_blueprint(bp: &Blueprint) -> Vec<Aggregation> {
        bp.aggregation_properties
            .iter()
            .filter_map(|(id, v)| Aggregation::parse(id, v, &format!("aggregationProperties.{id}")).ok())
            .collect()
    }

    /// Whether [`finish`] needs [`Summary::earliest`].
    pub fn needs_time(&self) -> bool {
        matches!(self.func, Func::Average(p) if p != Per::Total)
    }
}

/// One target entity as the functions see it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// The property's value when it is a JSON number (property functions).
    pub value: Option<f64>,
    /// The `measureTimeBy` date.
    pub at: Option<DateTime<Utc>>,
}

/// What the store gathers of the target entities (SQL aggregates).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Summary {
    /// Target entities.
    pub entities: u64,
    /// Targets with a numeric value.
    pub values: u64,
    pub sum: f64,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub median: Option<f64>,
    /// The earliest `measureTimeBy` date.
    pub earliest: Option<DateTime<Utc>>,
}

impl Summary {
    pub fn of(samples: &[Sample]) -> Summary {
        let values: Vec<f64> = samples.iter().filter_map(|s| s.value).collect();
        Summary {
            entities: samples.len() as u64,
            values: values.len() as u64,
            sum: sum(&values),
            min: min(&values),
            max: max(&values),
            median: median(&values),
            earliest: samples.iter().filter_map(|s| s.at).min(),
        }
    }
}

pub fn sum(values: &[f64]) -> f64 {
    values.iter().sum()
}

pub fn min(values: &[f64]) -> Option<f64> {
    values.iter().copied().reduce(f64::min)
}

pub fn max(values: &[f64]) -> Option<f64> {
    values.iter().copied().reduce(f64::max)
}

/// The middle value; of an even count, the mean of the two middle ones.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    median_of_middle(v.len() as u64, v.get((v.len().max(1) - 1) / 2).copied(), v.get(v.len() / 2).copied())
}

/// The median of `n` sorted values from the one or two in the middle: `lower` at position
/// `(n - 1) / 2`, `upper` at `n / 2` (the store fetches just those).
pub fn median_of_middle(n: u64, lower: Option<f64>, upper: Option<f64>) -> Option<f64> {
    match (n, lower, upper) {
        (0, _, _) => None,
        (n, Some(a), Some(b)) if n % 2 == 0 => Some((a + b) / 2.0),
        (_, Some(a), _) => Some(a),
        _ => None,
    }
}

/// Time units from `earliest` to `now`; an interval that has only begun counts as a whole one,
/// so there is at least one. Months are calendar months.
pub fn intervals(per: Per, earliest: DateTime<Utc>, now: DateTime<Utc>) -> u64 {
    if now <= earliest {
        return 1;
    }
    let secs = |unit: i64| {
        let d = (now - earliest).num_milliseconds();
        let unit = unit * 1000;
        u64::try_from((d + unit - 1) / unit).unwrap_or(1).max(1)
    };
    match per {
        Per::Total => 1,
        Per::Hour => secs(3600),
        Per::Day => secs(86_400),
        Per::Week => secs(7 * 86_400),
        Per::Month => {
            use chrono::Datelike;
            let whole = (now.year() - earliest.year()) * 12 + now.month() as i32 - earliest.month() as i32;
            let mut k = u32::try_from(whole.max(0)).unwrap_or(0);
            // `k` months after `earliest` may still be before `now`: then a further one has begun.
            while earliest.checked_add_months(Months::new(k)).is_some_and(|t| t < now) {
                k += 1;
            }
            u64::from(k.max(1))
        }
    }
}

/// The aggregation's value from the summary of its targets (`now`: for the time averages).
pub fn finish(agg: &Aggregation, s: &Summary, now: DateTime<Utc>) -> Option<f64> {
    let by_entities = agg.property.is_none();
    match agg.func {
        Func::Count => Some(s.entities as f64),
        Func::Sum => Some(s.sum),
        Func::Min => s.min,
        Func::Max => s.max,
        Func::Median => s.median,
        Func::Average(per) => {
            let (total, n) = if by_entities { (s.entities as f64, s.entities) } else { (s.sum, s.values) };
            if n == 0 {
                return by_entities.then_some(0.0);
            }
            match per {
                Per::Total if by_entities => Some(total),
                Per::Total => Some(total / n as f64),
                // No date to measure by: nothing to average over.
                per => s.earliest.map(|e| total / intervals(per, e, now) as f64),
            }
        }
    }
}

/// [`finish`] over a list of samples.
pub fn compute(agg: &Aggregation, samples: &[Sample], now: DateTime<Utc>) -> Option<f64> {
    finish(agg, &Summary::of(samples), now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn agg(spec: Value) -> Aggregation {
        Aggregation::parse("a", &json!({"title": "A", "target": "t", "calculationSpec": spec}), "a").unwrap()
    }

    fn values(v: &[f64]) -> Vec<Sample> {
        v.iter().map(|&x| Sample { value: Some(x), at: None }).collect()
    }

    const NOW: &str = "2026-03-10T12:00:00Z";

    #[test]
    fn count_counts_entities_with_or_without_values() {
        let a = agg(json!({"calculationBy": "entities", "func": "count"}));
        let s = vec![Sample { value: None, at: None }; 3];
        assert_eq!(compute(&a, &s, at(NOW)), Some(3.0));
        assert_eq!(compute(&a, &[], at(NOW)), Some(0.0));
    }

    #[test]
    fn sum_min_max_median_of_values() {
        let p = |f: &str| agg(json!({"calculationBy": "property", "func": f, "property": "x"}));
        let s = values(&[4.0, -1.5, 10.0, 2.0]);
        assert_eq!(compute(&p("sum"), &s, at(NOW)), Some(14.5));
        assert_eq!(compute(&p("min"), &s, at(NOW)), Some(-1.5));
        assert_eq!(compute(&p("max"), &s, at(NOW)), Some(10.0));
        assert_eq!(compute(&p("median"), &s, at(NOW)), Some(3.0), "even count: mean of the middle two");
        assert_eq!(compute(&p("median"), &values(&[5.0, 1.0, 3.0]), at(NOW)), Some(3.0));
        let mut with_missing = values(&[7.0]);
        with_missing.push(Sample { value: None, at: None });
        assert_eq!(compute(&p("median"), &with_missing, at(NOW)), Some(7.0), "missing values are ignored");
    }

    #[test]
    fn empty_sets() {
        let p = |f: &str| agg(json!({"calculationBy": "property", "func": f, "property": "x", "averageOf": "total"}));
        assert_eq!(compute(&p("sum"), &[], at(NOW)), Some(0.0));
        for f in ["min", "max", "median", "average"] {
            assert_eq!(compute(&p(f), &[], at(NOW)), None, "{f}");
        }
        let e = agg(json!({"calculationBy": "entities", "func": "average", "averageOf": "week"}));
        assert_eq!(compute(&e, &[], at(NOW)), Some(0.0));
    }

    #[test]
    fn property_average_total_is_the_mean() {
        let a = agg(json!({"calculationBy": "property", "func": "average", "property": "x", "averageOf": "total"}));
        assert_eq!(compute(&a, &values(&[1.0, 2.0, 6.0]), at(NOW)), Some(3.0));
    }

    #[test]
    fn averages_per_time_unit_count_a_begun_interval_as_whole() {
        let e = |per: &str| agg(json!({"calculationBy": "entities", "func": "average", "averageOf": per}));
        let s = |dates: &[&str]| dates.iter().map(|d| Sample { value: None, at: Some(at(d)) }).collect::<Vec<_>>();
        // 6 entities, the earliest 8 days and 1 hour before now: 9 days, 2 weeks.
        let six = s(&["2026-03-02T11:00:00Z"; 6]);
        assert_eq!(compute(&e("day"), &six, at(NOW)), Some(6.0 / 9.0));
        assert_eq!(compute(&e("week"), &six, at(NOW)), Some(3.0));
        assert_eq!(compute(&e("hour"), &six, at(NOW)), Some(6.0 / 193.0));
        assert_eq!(compute(&e("month"), &six, at(NOW)), Some(6.0));
        assert_eq!(compute(&e("total"), &six, at(NOW)), Some(6.0));
        // Property: sum per unit.
        let p = agg(json!({"calculationBy": "property", "func": "average", "property": "x", "averageOf": "day",
            "measureTimeBy": "deployedAt"}));
        assert_eq!(p.measure_time_by, "deployedAt");
        let samples = vec![
            Sample { value: Some(10.0), at: Some(at("2026-03-09T12:00:00Z")) },
            Sample { value: Some(20.0), at: Some(at("2026-03-10T11:00:00Z")) },
        ];
        assert_eq!(compute(&p, &samples, at(NOW)), Some(30.0), "exactly one day: one interval");
        let mut older = samples.clone();
        older[0].at = Some(at("2026-03-09T11:59:59Z"));
        assert_eq!(compute(&p, &older, at(NOW)), Some(15.0), "a begun second day counts");
    }

    #[test]
    fn intervals_edges() {
        assert_eq!(intervals(Per::Day, at(NOW), at(NOW)), 1);
        assert_eq!(intervals(Per::Day, at("2026-03-11T00:00:00Z"), at(NOW)), 1, "a future start is one interval");
        assert_eq!(intervals(Per::Hour, at("2026-03-10T11:00:00Z"), at(NOW)), 1);
        assert_eq!(intervals(Per::Hour, at("2026-03-10T10:59:59Z"), at(NOW)), 2);
        assert_eq!(intervals(Per::Month, at("2026-01-10T12:00:00Z"), at(NOW)), 2);
        assert_eq!(intervals(Per::Month, at("2026-01-10T11:00:00Z"), at(NOW)), 3);
        assert_eq!(intervals(Per::Month, at("2025-03-31T00:00:00Z"), at(NOW)), 12);
    }

    #[test]
    fn parse_errors_have_paths() {
        let bad = json!({"title": "A", "target": "t",
            "calculationSpec": {"calculationBy": "property", "func": "average", "property": "x", "averageOf": "year"},
            "query": {"combinator": "and", "rules": [{"property": "x", "operator": "nope", "value": 1}]},
            "pathFilter": [{"path": []}]});
        let e = Aggregation::parse("a", &bad, "aggregationProperties.a").unwrap_err();
        let paths: Vec<&str> = e.0.iter().map(|f| f.path.as_str()).collect();
        assert!(paths.contains(&"aggregationProperties.a.calculationSpec.averageOf"), "{paths:?}");
        assert!(paths.iter().any(|p| p.starts_with("aggregationProperties.a.query.rules[0]")), "{paths:?}");
        assert!(paths.contains(&"aggregationProperties.a.pathFilter[0].path"), "{paths:?}");
        let ok = json!({"title": "A", "target": "t", "calculationSpec": {"calculationBy": "entities", "func": "count"},
            "pathFilter": [{"path": ["deployment", "service"], "fromBlueprint": "incident"}]});
        let a = Aggregation::parse("a", &ok, "p").unwrap();
        assert_eq!(
            a.path_filter,
            Some(PathFilter {
                path: vec!["deployment".into(), "service".into()],
                from_blueprint: Some("incident".into())
            })
        );
    }
}
