//! The mapping engine (`mapping.rs`): compile problems with paths, selector, itemsToParse,
//! per-field results, entity assembly, and the Ocean corpus as whole mappings.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::mapping::{EntityError, Slot, assemble, bind_item};
use crate::{CompiledMapping, EvalError, JqBudget, JqEngine, JqError, MappingErrorKind};
use serde_json::{Value, json};

fn paths(m: &CompiledMapping) -> Vec<(String, MappingErrorKind)> {
    m.errors().map(|e| (e.path.clone(), e.kind)).collect()
}

#[test]
fn webhook_compile_errors_carry_field_paths() {
    let jq = JqEngine::new();
    let m = CompiledMapping::webhook(
        &jq,
        &json!({"blueprint": "svc", "filter": ".a |", "itemsToParse": 3,
                "entity": {"title": 1, "team": null,
                           "properties": {"ok": ".x", "bad": ".x | nosuchfn", "gone": null},
                           "relations": {"q": {"combinator": "\"and\"", "rules": []}, "owner": ".o"}}}),
    );
    use MappingErrorKind::{Compile, Shape};
    assert_eq!(
        paths(&m),
        [
            ("filter".to_string(), Compile),
            ("itemsToParse".to_string(), Shape),
            ("entity.identifier".to_string(), Shape),
            ("entity.title".to_string(), Shape),
            ("entity.properties.bad".to_string(), Compile),
            ("entity.properties.gone".to_string(), Shape),
            ("entity.relations.q".to_string(), Shape),
        ]
    );
    let msgs: Vec<&str> = m.errors().map(|e| e.message.as_str()).collect();
    assert!(msgs[0].starts_with("jq compile error:"), "{}", msgs[0]);
    assert_eq!(msgs[2], "is required: a jq expression");
    assert!(msgs[3].starts_with("must be a jq expression (a string"), "{}", msgs[3]);
    assert!(msgs[4].contains("nosuchfn"), "{}", msgs[4]);
    assert!(msgs[6].contains("search queries"), "{}", msgs[6]);
    // Only strings are fields; the compile error is kept on its field.
    let t = &m.entities()[0];
    let fields: Vec<&str> = t.fields().iter().map(|f| f.path()).collect();
    assert_eq!(fields, ["entity.properties.ok", "entity.properties.bad", "entity.relations.owner"]);
    let (f, e) = t.first_compile_error().unwrap();
    assert_eq!(f.path(), "entity.properties.bad");
    assert!(matches!(e, JqError::Compile(_)));
    assert_eq!(t.field("relations.owner").unwrap().slot(), &Slot::Relation("owner".into()));

    let groups = CompiledMapping::webhook(&jq, &json!({"entity": {"identifier": ".id", "properties": []}}));
    let e: Vec<_> = groups.errors().collect();
    assert_eq!(
        (e[0].path.as_str(), e[0].message.as_str()),
        ("entity.properties", "must be an object of jq expressions")
    );
    let none = CompiledMapping::webhook(&jq, &json!({"blueprint": "svc"}));
    assert_eq!(paths(&none), [("entity".to_string(), Shape)]);
    assert!(none.entities().is_empty());
    let clean = CompiledMapping::webhook(&jq, &json!({"filter": "true", "entity": {"identifier": ".id"}}));
    assert_eq!(clean.errors().count(), 0);
}

#[test]
fn selector_false_skips_and_items_bind_as_item() {
    let jq = JqEngine::new();
    let scope = jq.scope(jq.budget_for("t"));
    let m = CompiledMapping::webhook(
        &jq,
        &json!({"filter": ".body.kind == \"push\"", "itemsToParse": ".body.commits",
                "entity": {"identifier": ".item.id", "title": ".item.msg + \" by \" + .body.who",
                           "properties": {"n": ".item.n"}}}),
    );
    let other = json!({"body": {"kind": "ping"}});
    assert_eq!(m.select(&scope, &other), Some(Ok(json!(false))));
    let input = json!({"body": {"kind": "push", "who": "ana", "commits": [
        {"id": "c1", "msg": "fix", "n": 1}, {"id": "c2", "msg": "feat", "n": 2}]}});
    assert_eq!(m.select(&scope, &input), Some(Ok(json!(true))));
    let items = m.items(&scope, &input).unwrap().unwrap();
    assert_eq!(items.len(), 2);
    let bound = bind_item(&input, items[1].clone());
    assert_eq!(bound["body"]["who"], "ana");
    let values = m.entities()[0].eval(&scope, &bound).unwrap();
    assert_eq!(
        Value::Object(assemble(&values).unwrap()),
        json!({"identifier": "c2", "title": "feat by ana", "properties": {"n": 2}, "relations": {}})
    );
    // Not an array: the kind is named.
    let not_array = m.items(&scope, &json!({"body": {"commits": {"a": 1}}})).unwrap();
    assert_eq!(not_array, Err(EvalError::NotArray("an object")));
    assert_eq!(not_array.unwrap_err().to_string(), "itemsToParse must give an array, not an object");
    // No selector and no itemsToParse: the mapping applies to the input itself.
    let plain = CompiledMapping::webhook(&jq, &json!({"entity": {"identifier": ".id"}}));
    assert!(plain.select(&scope, &input).is_none() && plain.items(&scope, &input).is_none());
    assert_eq!(bind_item(&json!(3), json!(1)), json!({"item": 1}));
}

#[test]
fn evaluation_reports_every_field_as_ocean_would() {
    let jq = JqEngine::new();
    let scope = jq.scope(jq.budget_for("t"));
    let mapping = json!({"identifier": ".id", "blueprint": "\"thing\"", "icon": 7,
                         "properties": {"size": ".size * 2", "bad": ".size | nosuchfn", "boom": "error(\"no\")"},
                         "relations": {"members": "[.users[].id]",
                                       "owner": {"combinator": "\"and\"", "rules": [{"property": "\"$identifier\"",
                                                 "operator": "\"=\"", "value": ".owner"}]}}});
    let m = CompiledMapping::from_parts(&jq, ".size > 1", None, &mapping);
    let kinds: Vec<_> = paths(&m);
    assert_eq!(
        kinds,
        [("icon".to_string(), MappingErrorKind::Literal), ("properties.bad".to_string(), MappingErrorKind::Compile)]
    );
    let item = json!({"id": "a", "size": 3, "users": [{"id": "u1"}, {"id": "u2"}], "owner": "o1"});
    let out = m.evaluate(&scope, &item, 20);
    assert!(out.selected);
    assert_eq!(out.selector.as_ref().unwrap().result, Ok(json!(true)));
    assert_eq!(out.entities.len(), 1);
    let e = &out.entities[0];
    assert_eq!(e.label(), None);
    assert_eq!(e.field("identifier").unwrap().result, Ok(json!("a")));
    assert_eq!(e.field("properties.size").unwrap().result, Ok(json!(6)));
    let bad = e.field("properties.bad").unwrap().result.clone().unwrap_err().to_string();
    assert!(bad.contains("jq compile error"), "{bad}");
    assert_eq!(e.field("properties.boom").unwrap().result, Err(EvalError::Jq(JqError::Runtime("no".into()))));
    assert_eq!(e.field("icon").unwrap().result, Err(EvalError::Literal));
    assert_eq!(e.field("icon").unwrap().expr, "7");
    assert_eq!(e.field("relations.members").unwrap().result, Ok(json!(["u1", "u2"])));
    let rule = e.field("relations.owner.rules[0].value").unwrap();
    assert_eq!((rule.slot.clone(), rule.result.clone()), (Slot::Nested, Ok(json!("o1"))));
    // Assembled: failures become null, nested fields (search queries) are left out.
    let entity = Value::Object(e.entity().unwrap());
    assert_eq!(
        entity,
        json!({"identifier": "a", "blueprint": "thing",
               "properties": {"size": 6, "bad": null, "boom": null},
               "relations": {"members": ["u1", "u2"]}})
    );
    // The selector is shown even when it does not select; the fields are still evaluated.
    let small = m.evaluate(&scope, &json!({"id": "b", "size": 0}), 20);
    assert!(!small.selected);
    assert_eq!(small.entities[0].field("identifier").unwrap().result, Ok(json!("b")));
}

#[test]
fn items_are_capped_and_labelled() {
    let jq = JqEngine::new();
    let scope = jq.scope(jq.budget_for("t"));
    let m = CompiledMapping::from_parts(&jq, "true", Some(".xs"), &json!({"identifier": ".item | tostring"}));
    let out = m.evaluate(&scope, &json!({"xs": [1, 2, 3]}), 2);
    assert_eq!(out.item_count, Some(3));
    assert_eq!(out.entities.len(), 2);
    assert_eq!(out.entities[1].label().as_deref(), Some("item[1]"));
    assert_eq!(out.entities[1].fields[0].result, Ok(json!("2")));
    let bad = m.evaluate(&scope, &json!({"xs": "nope"}), 2);
    assert_eq!(bad.items.unwrap().result, Err(EvalError::NotArray("a string")));
    assert!(bad.entities.is_empty());
}

#[test]
fn a_missing_identifier_is_a_clear_error() {
    let jq = JqEngine::new();
    let scope = jq.scope(jq.budget_for("t"));
    let m = CompiledMapping::from_parts(&jq, "true", None, &json!({"identifier": ".id", "title": ".t"}));
    let entity = |item: Value| m.evaluate(&scope, &item, 1).entities[0].entity();
    assert_eq!(entity(json!({"t": "x"})), Err(EntityError::Identifier("null")));
    assert_eq!(entity(json!({"id": "  "})), Err(EntityError::Identifier("an empty string")));
    assert_eq!(entity(json!({"id": [1]})), Err(EntityError::Identifier("an array")));
    assert_eq!(entity(json!({"id": 42})).unwrap()["identifier"], json!("42"));
    let none = CompiledMapping::from_parts(&jq, "true", None, &json!({"title": ".t"}));
    let err = none.evaluate(&scope, &json!({"t": "x"}), 1).entities[0].entity().unwrap_err();
    assert_eq!(err.to_string(), "the identifier is missing: it must be a non-empty string or a number");
}

#[test]
fn a_spent_budget_fails_the_batch_and_every_field_shows_it() {
    let jq = JqEngine::new();
    let scope = jq.scope(JqBudget::new("t", Duration::ZERO));
    let m = CompiledMapping::from_parts(&jq, "true", None, &json!({"identifier": ".id", "title": ".t"}));
    assert!(matches!(m.entities()[0].eval(&scope, &json!({})), Err(JqError::Limit(_))));
    let out = m.evaluate(&scope, &json!({}), 1);
    assert!(!out.selected);
    assert!(out.entities[0].fields.iter().all(|f| matches!(f.result, Err(EvalError::Jq(JqError::Limit(_))))));
}

#[test]
fn ocean_resources_with_one_or_many_mappings() {
    let jq = JqEngine::new();
    let scope = jq.scope(jq.budget_for("t"));
    let r = json!({"kind": "repo", "selector": {"query": 1},
                   "port": {"itemsToParse": null, "entity": {"mappings": [
                       {"identifier": ".id", "blueprint": "\"a\""},
                       {"identifier": ".id + \"-x\"", "blueprint": "\"b\"", "properties": {"p": ".p |"}}]}}});
    let m = CompiledMapping::ocean(&jq, &r);
    assert_eq!(
        paths(&m),
        [
            ("selector.query".to_string(), MappingErrorKind::Shape),
            ("port.entity.mappings[1].properties.p".to_string(), MappingErrorKind::Compile)
        ]
    );
    assert_eq!(m.entities().len(), 2);
    assert_eq!(m.entities()[1].field("blueprint").unwrap().path(), "port.entity.mappings[1].blueprint");
    let out = m.evaluate(&scope, &json!({"id": "r"}), 10);
    let ids: Vec<_> = out.entities.iter().map(|e| e.entity().unwrap()["identifier"].clone()).collect();
    assert_eq!(ids, [json!("r"), json!("r-x")]);
    assert_eq!(out.entities[1].template, 1);
}

/// The Ocean corpus (tests/data/ocean-mappings.json) regrouped into one resource per integration
/// and kind, the way its `port-app-config.yml` had them.
fn ocean_resources() -> BTreeMap<(String, String), Value> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/ocean-mappings.json");
    let entries: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut out: BTreeMap<(String, String), Value> = BTreeMap::new();
    for e in entries {
        let (field, expr) = (e["field"].as_str().unwrap(), e["expr"].clone());
        let (kind, path) = field.rsplit_once(':').unwrap();
        let r = out
            .entry((e["integration"].as_str().unwrap().to_owned(), kind.to_owned()))
            .or_insert_with(|| json!({"kind": kind, "port": {"entity": {"mappings": {}}}}));
        let pointer = match path.strip_prefix("mappings.") {
            Some(rest) => match rest.strip_suffix(".rules.value") {
                Some(rel) => {
                    let q = json!({"combinator": "\"and\"",
                                   "rules": [{"property": "\"$identifier\"", "operator": "\"=\"", "value": expr}]});
                    *r.pointer_mut("/port/entity/mappings").unwrap() =
                        merge(r.pointer("/port/entity/mappings").unwrap(), rel, q);
                    continue;
                }
                None => format!("port.entity.mappings.{rest}"),
            },
            None if path == "itemsToParse" => "port.itemsToParse".to_owned(),
            None => path.to_owned(),
        };
        *r = merge(r, &pointer, expr);
    }
    out
}

/// `v` with `value` set at the dotted path `at` (objects created on the way).
fn merge(v: &Value, at: &str, value: Value) -> Value {
    let mut v = v.clone();
    let mut cur = &mut v;
    let keys: Vec<&str> = at.split('.').collect();
    for (i, k) in keys.iter().enumerate() {
        let o = cur.as_object_mut().unwrap();
        if i + 1 == keys.len() {
            o.insert((*k).to_owned(), value);
            break;
        }
        cur = o.entry((*k).to_owned()).or_insert_with(|| json!({}));
    }
    v
}

#[test]
fn the_ocean_corpus_compiles_as_whole_mappings() {
    let jq = JqEngine::with_config(crate::JqConfig { cache_capacity: 4096, ..crate::JqConfig::default() });
    let resources = ocean_resources();
    assert_eq!(resources.len(), 208);
    let (mut fields, mut errors) = (0, Vec::new());
    for ((integration, kind), r) in &resources {
        let m = CompiledMapping::ocean(&jq, r);
        assert!(m.selector().is_some() || r.pointer("/selector/query").is_none(), "{integration} {kind}");
        fields += m.entities().iter().map(|t| t.fields().len()).sum::<usize>();
        errors.extend(m.errors().map(|e| format!("{integration} {kind} {} {:?}", e.path, e.kind)));
    }
    // 2,298 mapping expressions, less the duplicated kinds (argocd, …) regrouped into one, plus
    // the combinator, property and operator of the two search-query relations.
    assert_eq!(fields, 2304);
    assert_eq!(errors, ["gitlab project port.entity.mappings.properties.readme Compile"]);
}

#[test]
fn the_github_pull_request_mapping_maps_a_pull_request() {
    let jq = JqEngine::new();
    let scope = jq.scope(jq.budget_for("t"));
    let r = &ocean_resources()[&("github".to_owned(), "pull-request".to_owned())];
    let m = CompiledMapping::ocean(&jq, r);
    let pr = json!({"id": 7, "title": "Fix", "state": "closed", "html_url": "https://x/7",
                    "user": {"login": "dependabot[bot]"}, "assignees": [{"login": "a[bot]"}],
                    "requested_reviewers": [], "created_at": "2024-05-01T10:00:00Z",
                    "merged_at": "2024-05-01T13:30:00Z", "closed_at": null, "updated_at": null,
                    "head": {"repo": {"name": "payments"}}, "__repository": "payments"});
    let out = m.evaluate(&scope, &pr, 1);
    assert!(out.selected);
    let e = Value::Object(out.entities[0].entity().unwrap());
    assert_eq!(
        e,
        json!({"identifier": "payments7", "title": "Fix", "blueprint": "githubPullRequest",
               "properties": {"creator": "dependabot-bot", "assignees": ["a[bot"], "reviewers": [],
                              "status": "closed", "closedAt": null, "updatedAt": null,
                              "mergedAt": "2024-05-01T13:30:00Z", "createdAt": "2024-05-01T10:00:00Z",
                              "prNumber": 7, "link": "https://x/7", "leadTimeHours": 3.5},
               "relations": {"repository": "payments"}})
    );
}

/// The web mapping editor's save check, as the integrator is to rebuild it on the engine
/// (`web/sources.rs` `check_jq`): compile problems with the resource's path, then each constant
/// blueprint evaluated over `null`.
#[test]
fn the_web_save_check_fits_the_api() {
    let jq = JqEngine::new();
    let scope = jq.scope(jq.budget_for("t"));
    let r = json!({"kind": "item", "selector": {"query": ".a |"},
                   "port": {"entity": {"mappings": {"identifier": ".id", "blueprint": "\"other\"", "icon": null,
                                                    "properties": {"x": ".x | nosuchfn"}}}}});
    let m = CompiledMapping::ocean(scope.engine(), &r);
    let at = "config.resources[0]";
    let mut out: Vec<(String, String)> =
        m.own_errors().iter().map(|e| (format!("{at}.{}", e.path), e.message.clone())).collect();
    for t in m.entities() {
        let compile = t.errors().iter().filter(|e| e.kind != MappingErrorKind::Literal);
        out.extend(compile.map(|e| (format!("{at}.{}", e.path), e.message.clone())));
        if let Some(f) = t.field("blueprint")
            && let Ok(Value::String(name)) = f.eval(&scope, &Value::Null)
            && name != "thing"
        {
            out.push((format!("{at}.{}", f.path()), format!("there is no blueprint {name:?}")));
        }
    }
    let paths: Vec<&str> = out.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        paths,
        [
            "config.resources[0].selector.query",
            "config.resources[0].port.entity.mappings.properties.x",
            "config.resources[0].port.entity.mappings.blueprint"
        ]
    );
    assert!(out[0].1.starts_with("jq compile error"), "{}", out[0].1);
}
