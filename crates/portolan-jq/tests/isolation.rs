//! Worker-process isolation (`Isolation::Process`): a filter that overflows the stack or nests
//! values too deeply ends only its worker process, a deadline kills the worker (no runaway
//! work is left), and one tenant cannot take every worker. In thread mode the first test would
//! abort this whole test process (finding 1 of the 2026-12 security review).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use portolan_jq::{Isolation, JqBudget, JqConfig, JqEngine, JqError};
use serde_json::value::RawValue;
use serde_json::{Value, json};

fn engine(timeout: Duration, workers: usize, share: usize) -> JqEngine {
    JqEngine::with_config(JqConfig {
        timeout,
        workers,
        tenant_share: share,
        isolation: Isolation::Process {
            program: PathBuf::from(env!("CARGO_BIN_EXE_portolan-jq-worker")),
            args: vec![],
        },
        ..JqConfig::default()
    })
}

/// Every shape of finding 1: deep native recursion and deep values from builtins.
const CRASHERS: &[&str] = &[
    "null | setpath([range(2000000) | 0]; 1) | length",
    "reduce range(1000000) as $i (null; [.]) | tostring",
    "reduce range(1000000) as $i (null; [.]) | tojson | length",
    "(reduce range(1000000) as $i (null; [.])) as $a | reduce range(1000000) as $i (null; [.]) | . == $a",
    "reduce range(1000000) as $i (null; {a: .}) | tojson | fromjson | length",
    "[range(1000000)] | reduce .[] as $x (null; [.]) | [.] | flatten | length",
    "def f: 1 + f; f",
];

#[test]
fn crashing_filters_end_only_their_worker() {
    let jq = engine(Duration::from_secs(20), 2, 2);
    for filter in CRASHERS {
        // Whatever the answer (most are errors), it comes back and the engine goes on.
        let _ = jq.first(filter, &Value::Null);
        // The engine (and this process) go on.
        assert_eq!(jq.first(".a + 1", &json!({"a": 1})).unwrap(), json!(2), "after {filter}");
    }
    let stats = jq.process_stats();
    assert!(stats.crashed >= 1, "{stats:?}");
    assert_eq!(stats.busy, 0, "{stats:?}");
}

/// Two equal trees of 2^40 leaves built with sharing: comparing them is one native call that
/// walks every leaf (no memory, all CPU), which no in-filter guard can interrupt.
const RUNAWAY: &str = "(reduce range(40) as $i (1; [., .])) as $a | reduce range(40) as $i (1; [., .]) | . == $a";

#[test]
fn a_deadline_kills_the_worker() {
    let jq = engine(Duration::from_millis(300), 2, 2);
    let started = Instant::now();
    // Cost doubles with each step and runs inside one native comparison: the in-process guard
    // cannot stop it, only killing the process can.
    let r = jq.first(RUNAWAY, &Value::Null);
    assert!(matches!(r, Err(JqError::Limit(ref m)) if m.contains("time budget")), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    let stats = jq.process_stats();
    assert_eq!((stats.killed, stats.busy), (1, 0), "{stats:?}");
    assert_eq!(jq.first("1 + 1", &Value::Null).unwrap(), json!(2));
}

#[test]
fn a_budget_covers_every_evaluation_of_a_request() {
    let jq = engine(Duration::from_secs(10), 2, 2);
    let budget = JqBudget::new("org-a", Duration::from_millis(400));
    let slow = jq.compile("last(range(1e12))").unwrap();
    let r = jq.first_compiled_in(&budget, &slow, &Value::Null);
    assert!(matches!(r, Err(JqError::Limit(_))), "{r:?}");
    // The next item of the same request does not get a fresh 10 s.
    let started = Instant::now();
    let r = jq.first_in(&budget, "1", &Value::Null);
    assert!(matches!(r, Err(JqError::Limit(ref m)) if m.contains("budget")), "{r:?}");
    assert!(started.elapsed() < Duration::from_millis(100));
}

#[test]
fn one_tenant_cannot_take_every_worker() {
    let jq = Arc::new(engine(Duration::from_secs(10), 2, 1));
    let hog = {
        let jq = Arc::clone(&jq);
        std::thread::spawn(move || {
            let b = JqBudget::new("org-a", Duration::from_secs(2));
            jq.first_in(&b, "last(range(1e12))", &Value::Null)
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    // org-a's second evaluation waits for its own share and runs out of budget...
    let b = JqBudget::new("org-a", Duration::from_millis(300));
    let r = jq.first_in(&b, "1", &Value::Null);
    assert!(matches!(r, Err(JqError::Limit(ref m)) if m.contains("share")), "{r:?}");
    // ...while org-b gets the other worker at once.
    let started = Instant::now();
    let b = JqBudget::new("org-b", Duration::from_secs(2));
    assert_eq!(jq.first_in(&b, ".x", &json!({"x": 5})).unwrap(), json!(5));
    assert!(started.elapsed() < Duration::from_millis(1500), "{:?}", started.elapsed());
    assert!(matches!(hog.join().unwrap(), Err(JqError::Limit(_))));
    let stats = jq.process_stats();
    assert_eq!(stats.busy, 0, "{stats:?}");
}

#[test]
fn results_and_errors_cross_the_process_boundary_unchanged() {
    let jq = engine(Duration::from_secs(10), 1, 1);
    let input = json!({"identifier": "a-b", "properties": {"prop-with-dash": 3, "list": [1, 2]}});
    assert_eq!(jq.first(".properties.'prop-with-dash' + 1", &input).unwrap(), json!(4));
    assert_eq!(
        jq.first("{id: .identifier, n: (.properties.list | length)}", &input).unwrap(),
        json!({"id": "a-b", "n": 2})
    );
    assert!(matches!(jq.first("error(\"boom\")", &input), Err(JqError::Runtime(ref m)) if m == "boom"));
    assert!(matches!(jq.first("empty", &input), Err(JqError::Runtime(_))));
    assert!(matches!(jq.first(".[", &input), Err(JqError::Compile(_))));
    let filters = [jq.compile(".identifier").unwrap(), jq.compile("error(1)").unwrap(), jq.compile("null").unwrap()];
    let out = jq.first_many(&filters, &input).unwrap();
    assert_eq!(out[0], Ok(json!("a-b")));
    assert!(out[1].is_err());
    assert_eq!(out[2], Ok(Value::Null));

    // The worker writes results' JSON itself: the same values as in threads, number and string
    // forms included; a result too deep to read back is only its own filter's error.
    let threads = JqEngine::new();
    let sources = [
        "\"quote \\\" backslash \\\\ tab \\t line \\n nul \\u0000 é ✓ 😀\"",
        "[1.5, 0.1 + 0.2, 1e300, -0, 100000000000000000000, 1.0, 3, -7, 1e-7]",
        "{z: 1, a: {\"\": null, \"k\": [true, false]}, m: []}",
        "nan",
        "reduce range(200) as $i (0; [.])",
        "infinite",
        ".properties",
    ];
    let compiled = |e: &JqEngine| sources.iter().map(|f| e.compile(f).unwrap()).collect::<Vec<_>>();
    let here = threads.first_many(&compiled(&threads), &input).unwrap();
    let there = jq.first_many(&compiled(&jq), &input).unwrap();
    for (i, (a, b)) in here.iter().zip(&there).enumerate() {
        match (a, b) {
            (Ok(x), Ok(y)) => assert_eq!(x.to_string(), y.to_string(), "{}", sources[i]),
            (Err(JqError::NotJson(_)), Err(JqError::NotJson(_))) => {}
            (Ok(_), Err(JqError::NotJson(m))) if sources[i].contains("range(200)") => assert!(m.contains("128"), "{m}"),
            other => panic!("{}: {other:?}", sources[i]),
        }
    }
    assert!(there[0].as_ref().unwrap().as_str().unwrap().ends_with("é ✓ 😀"));
    assert!(there[4].is_err() && there[6].is_ok(), "{there:?}");
}

/// A worker with a memory limit of 1 GiB still starts and answers: the allocator's first
/// reservation (mimalloc reserves 1 GiB by default) must leave room for the evaluation stack.
#[test]
fn a_worker_with_a_one_gib_limit_answers() {
    let jq = JqEngine::with_config(JqConfig {
        worker_memory: 1 << 30,
        isolation: Isolation::Process {
            program: PathBuf::from(env!("CARGO_BIN_EXE_portolan-jq-worker")),
            args: vec![],
        },
        ..JqConfig::default()
    });
    assert_eq!(jq.first(".a + 1", &json!({"a": 1})).unwrap(), json!(2));
}

/// A worker keeps the last input it read (a delivery's chunks share it): consecutive requests
/// with other inputs still see their own.
#[test]
fn consecutive_requests_read_their_own_input() {
    let jq = engine(Duration::from_secs(10), 1, 1);
    let f = [jq.compile(".a").unwrap()];
    let budget = jq.budget_for("t");
    for a in [1, 1, 2, 9, 1, 2, 2] {
        let input = json!({"a": a, "pad": "same length"});
        assert_eq!(jq.first_many(&f, &input).unwrap(), vec![Ok(json!(a))]);
        let items = [json!(0), json!(1)];
        let got = jq.first_many_items_in(&budget, &f, &input, "item", &items).unwrap();
        assert_eq!(got, vec![vec![Ok(json!(a))], vec![Ok(json!(a))]]);
    }
    assert_eq!(jq.process_stats().live, 1);
}

#[test]
fn a_mapping_evaluates_the_same_in_worker_processes() {
    use portolan_jq::CompiledMapping;
    let procs = engine(Duration::from_secs(20), 2, 2);
    let threads = JqEngine::new();
    let mapping = json!({"filter": ".body.ok", "itemsToParse": ".body.xs",
                         "entity": {"identifier": ".item.id | tostring", "title": ".item.t",
                                    "properties": {"bad": ".item.t | tonumber", "n": ".item.id * 2"},
                                    "relations": {"r": "[.item.id]"}}});
    let input = json!({"body": {"ok": true, "xs": [{"id": 1, "t": "a"}, {"id": 2, "t": "b"}]}});
    let run = |jq: &JqEngine| {
        let scope = jq.scope(jq.budget_for("t"));
        let m = CompiledMapping::webhook(jq, &mapping);
        assert_eq!(m.select(&scope, &input), Some(Ok(json!(true))));
        let items = m.items(&scope, &input).unwrap().unwrap();
        let bound: Vec<Value> = items.into_iter().map(|x| portolan_jq::mapping::bind_item(&input, x)).collect();
        bound.iter().map(|x| m.entities()[0].eval(&scope, x).unwrap()).collect::<Vec<_>>()
    };
    let (a, b) = (run(&procs), run(&threads));
    assert_eq!(a, b);
    assert_eq!(a[1][0].result, Ok(json!("2")));
    assert!(a[1][2].result.is_err(), "{:?}", a[1][2]);
    assert!(procs.process_stats().live >= 1, "{:?}", procs.process_stats());
}

/// Many items in one hand-off give what one call per item gives (base with `.item` set), in
/// worker processes and in threads alike; a step budget that runs out ends only its filter.
#[test]
fn items_in_one_handoff_match_one_call_per_item() {
    let threads = JqEngine::with_config(JqConfig { max_steps: 10_000, ..JqConfig::default() });
    let procs = JqEngine::with_config(JqConfig {
        max_steps: 10_000,
        isolation: Isolation::Process {
            program: PathBuf::from(env!("CARGO_BIN_EXE_portolan-jq-worker")),
            args: vec![],
        },
        ..JqConfig::default()
    });
    let base = json!({"body": {"org": "acme", "items": [{"id": 1}, {"id": 2}, {"id": 3}]}, "headers": {"x": "y"}});
    // Items with more than the filters read (each item is read keeping what they can observe).
    let items: Vec<Value> = vec![
        json!({"id": 1, "n": "a", "extra": {"deep": [1, 2, {"a": "b"}]}, "skipped": {"x": [1, {"y": "z"}]}}),
        json!({"id": 2, "n": "b", "extra": [3], "skipped": "text \" with { braces"}),
        json!(null),
    ];
    for jq in [&threads, &procs] {
        let filters = [
            jq.compile(".item.id").unwrap(),
            jq.compile(".body.org + \"-\" + (.item.n // \"none\")").unwrap(),
            jq.compile("[range(1e9)] | length").unwrap(),
            jq.compile(".headers.x").unwrap(),
            jq.compile(".item.extra.deep[2].a // .item.extra").unwrap(),
            jq.compile(".item.id.x").unwrap(),
        ];
        let budget = jq.budget_for("t");
        let batched = jq.first_many_items_in(&budget, &filters, &base, "item", &items).unwrap();
        assert_eq!(batched.len(), items.len());
        for (item, got) in items.iter().zip(&batched) {
            let one = jq.first_many(&filters, &portolan_jq::mapping::bind_item(&base, item.clone())).unwrap();
            assert_eq!(got.len(), filters.len());
            for (a, b) in got.iter().zip(&one) {
                match (a, b) {
                    (Ok(x), Ok(y)) => assert_eq!(x, y),
                    (Err(JqError::Limit(_)), Err(JqError::Limit(_))) => {}
                    (Err(x), Err(y)) => assert_eq!(x.to_string(), y.to_string()),
                    other => panic!("{other:?}"),
                }
            }
        }
        // The same items as JSON texts (sent to a worker process as they are) give the same.
        // One of them laid out over lines (a worker reads one request per line).
        let mut texts: Vec<Box<RawValue>> =
            items.iter().map(|v| RawValue::from_string(v.to_string()).unwrap()).collect();
        texts[1] = RawValue::from_string(serde_json::to_string_pretty(&items[1]).unwrap()).unwrap();
        assert!(texts[1].get().contains('\n'));
        let from_texts = jq.first_many_texts_in(&budget, &filters, &base, "item", &texts).unwrap();
        assert_eq!(from_texts.len(), batched.len());
        for (a, b) in from_texts.iter().flatten().zip(batched.iter().flatten()) {
            match (a, b) {
                (Ok(x), Ok(y)) => assert_eq!(x, y),
                (Err(JqError::Limit(_)), Err(JqError::Limit(_))) => {}
                (Err(x), Err(y)) => assert_eq!(x.to_string(), y.to_string()),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(batched[1][1].as_ref().unwrap(), &json!("acme-b"));
        assert_eq!(batched[0][4].as_ref().unwrap(), &json!("b"));
        // An array where the filter indexes keys is read whole: the error names it.
        assert!(batched[1][4].as_ref().unwrap_err().to_string().contains("[3]"), "{:?}", batched[1][4]);
        assert!(batched[0][5].as_ref().unwrap_err().to_string().contains("cannot index"), "{:?}", batched[0][5]);
        assert_eq!(batched[2][0].as_ref().unwrap(), &json!(null));
        assert!(jq.first_many_items_in(&budget, &filters, &base, "item", &[]).unwrap().is_empty());
        // Every filter of every item the step budget ended is counted.
        assert!(jq.limits_hit() >= 6, "{}", jq.limits_hit());
    }
}
