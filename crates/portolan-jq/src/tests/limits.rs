#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Resource limits, caching, concurrency and the Ocean corpus.
use crate::*;
use serde_json::json;
use std::time::Instant;

fn engine() -> JqEngine {
    JqEngine::new()
}

#[test]
fn deep_input_is_rejected() {
    let mut v = json!(1);
    for _ in 0..600 {
        v = json!([v]);
    }
    assert!(matches!(engine().first(".", &v), Err(JqError::Limit(_))));
}

#[test]
fn timeout_and_recovery() {
    let e = JqEngine::with_config(JqConfig { timeout: Duration::from_millis(200), workers: 2, ..JqConfig::default() });
    // A filter the guards cannot see (one long native sort) still hits the pool's time limit; its
    // abandoned worker finishes on its own and the engine keeps answering.
    let t = Instant::now();
    let r = e.first("[range(3000000) | -.] | sort | length", &json!(null));
    assert!(matches!(r, Err(JqError::Limit(_))), "{r:?}");
    assert!(t.elapsed() < Duration::from_secs(2), "took {:?}", t.elapsed());
    assert_eq!(e.first(".a + 1", &json!({"a": 1})).unwrap(), json!(2));
}

#[test]
fn native_loops_stop_at_the_deadline() {
    // These used to spin on a written-off worker until the process exited: `range`, `repeat`,
    // `recurse`, `while`, `until` now check the deadline themselves.
    let e = JqEngine::with_config(JqConfig {
        timeout: Duration::from_millis(300),
        workers: 2,
        max_steps: u64::MAX,
        ..JqConfig::default()
    });
    for f in [
        "last(range(1e12))",
        "last(repeat(1))",
        "last(1 | recurse(. + 1))",
        "last(0 | while(true; . + 1))",
        "0 | until(false; . + 1)",
        "[limit(1e12; repeat(1))] | length",
        "reduce range(1e12) as $i (0; . + $i)",
        "first(range(1e12) | select(. < 0))",
    ] {
        let t = Instant::now();
        let r = e.first(f, &json!(null));
        assert!(matches!(r, Err(JqError::Limit(_))), "{f}: {r:?}");
        assert!(t.elapsed() < Duration::from_secs(5), "{f} took {:?}", t.elapsed());
        // The worker stopped itself: nothing is left running.
        while e.runaway_workers() > 0 && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(e.runaway_workers(), 0, "{f}: the worker did not stop at its deadline");
    }
}

#[test]
fn step_and_size_budgets() {
    // Generous time limit: without the budgets these would run out of memory, not time.
    let e = JqEngine::with_config(JqConfig {
        timeout: Duration::from_secs(60),
        max_steps: 100_000,
        max_len: 1_000_000,
        ..JqConfig::default()
    });
    let x = json!(null);
    for (f, what) in [
        ("[range(1e9)]", "step"),
        ("[limit(1e9; repeat(1))]", "step"),
        ("[1 | recurse(. + 1)]", "step"),
        ("[0 | while(true; . + 1)]", "step"),
        ("\"x\" * 1e10", "too large"),
        ("1e10 * \"x\"", "too large"),
        ("reduce range(40) as $i (\"ab\"; . + .)", "too large"),
        ("reduce range(40) as $i ([1]; . + .)", "too large"),
        ("reduce range(40) as $i ([1]; [., .]) | tojson", "too large"),
        ("reduce range(40) as $i ([1]; [., .]) | tostring", "too large"),
        ("null | .[1e12] = 1", "too large"),
        ("[] | setpath([1e12]; 1)", "too large"),
        // a caught limit error still ends the evaluation with `Limit`
        ("try (\"x\" * 1e10) catch \"small\"", "too large"),
        ("[range(1e9)] | length? // 0", "step"),
    ] {
        let t = Instant::now();
        let r = e.first(f, &x);
        assert!(matches!(r, Err(JqError::Limit(ref m)) if m.contains(what)), "{f}: {r:?}");
        assert!(t.elapsed() < Duration::from_secs(10), "{f} took {:?}", t.elapsed());
    }
    // Below the limits everything works.
    assert_eq!(e.first("[range(1000)] | length", &x).unwrap(), json!(1000));
    assert_eq!(e.first("\"ab\" * 3", &x).unwrap(), json!("ababab"));
    assert_eq!(e.first("null | .[3] = 1", &x).unwrap(), json!([null, null, null, 1]));
    // The budget is per evaluation.
    for _ in 0..3 {
        assert_eq!(e.first("[range(60000)] | length", &x).unwrap(), json!(60000));
    }
}

#[test]
fn runaway_worker_exits_when_its_filter_ends() {
    let e = JqEngine::with_config(JqConfig { timeout: Duration::from_millis(30), workers: 2, ..JqConfig::default() });
    // A native sort the guards do not see: longer than the limit, but it ends.
    let r = e.first("[range(1000000) | -.] | sort | length", &json!(null));
    assert!(matches!(r, Err(JqError::Limit(_))), "{r:?}");
    let t = Instant::now();
    while e.runaway_workers() > 0 && t.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(e.runaway_workers(), 0);
    // The finished runaway worker exited instead of rejoining the pool.
    while e.worker_threads() > 2 && t.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(e.worker_threads(), 2);
    assert_eq!(e.first("1 + 1", &json!(null)).unwrap(), json!(2));
}

#[test]
fn endless_recursion_through_a_def_stops_at_the_deadline() {
    let e = JqEngine::with_config(JqConfig { timeout: Duration::from_millis(200), workers: 2, ..JqConfig::default() });
    let t = Instant::now();
    let r = e.first("def f: f; f", &json!(null));
    assert!(matches!(r, Err(JqError::Limit(_))), "{r:?}");
    assert!(t.elapsed() < Duration::from_secs(2), "took {:?}", t.elapsed());
    // The guard stops the filter itself, so no worker is left spinning.
    while e.runaway_workers() > 0 && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(e.runaway_workers(), 0, "the worker stopped at its deadline");
}

#[test]
fn caching() {
    let e = engine();
    let a = e.compile(".a").unwrap();
    let b = e.compile(".a").unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    assert!(!Arc::ptr_eq(&a, &e.compile(".b").unwrap()));
    assert_eq!(e.compile(".a |").unwrap_err(), e.compile(".a |").unwrap_err());

    let small = JqEngine::with_config(JqConfig { cache_capacity: 2, ..JqConfig::default() });
    let one = small.compile("1").unwrap();
    let _two = small.compile("2").unwrap();
    assert!(Arc::ptr_eq(&one, &small.compile("1").unwrap())); // "1" is now the most recent
    let _three = small.compile("3").unwrap(); // evicts "2"
    assert!(Arc::ptr_eq(&one, &small.compile("1").unwrap()));
    assert_eq!(small.cache.lock().unwrap().map.len(), 2);
}

#[test]
fn concurrent_callers() {
    let e = engine();
    std::thread::scope(|s| {
        for t in 0..8 {
            let e = &e;
            s.spawn(move || {
                for i in 0..200 {
                    let v = e.first(".a * 2 + .b", &json!({"a": i, "b": t})).unwrap();
                    assert_eq!(v, json!(i * 2 + t));
                }
            });
        }
    });
}

#[test]
fn ocean_corpus_compiles() {
    // A copy of shared/jq-corpus (Apache-2.0 Ocean mappings; attribution in tests/data/README.md).
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/ocean-mappings.json");
    let text = std::fs::read_to_string(path).expect("tests/data/ocean-mappings.json");
    let entries: Vec<Value> = serde_json::from_str(&text).expect("corpus is a JSON array");
    assert_eq!(entries.len(), 2528);
    let e = JqEngine::with_config(JqConfig { cache_capacity: 4096, ..JqConfig::default() });
    let mut failures = Vec::new();
    for entry in &entries {
        let expr = entry["expr"].as_str().expect("expr is a string");
        match e.compile(expr) {
            // Evaluating on an empty object must not panic or hang; the result does not matter.
            Ok(c) => drop(e.first_compiled(&c, &json!({}))),
            Err(err) => failures.push((entry["integration"].clone(), entry["field"].clone(), expr.to_owned(), err)),
        }
    }
    // The corpus README names two expressions that libjq rejects: gitlab's `file://README.md` is
    // not jq, and azure-devops' `… // ''` uses single quotes, which Port's dialect accepts.
    let names: Vec<String> = failures.iter().map(|(i, f, x, err)| format!("{i} {f} {x:?}: {err}")).collect();
    assert_eq!(failures.len(), 1, "{}", names.join("\n"));
    assert_eq!((failures[0].0.as_str(), failures[0].2.as_str()), (Some("gitlab"), "file://README.md"));
    let azure = ".fields.\"System.Description\" // ''";
    assert!(entries.iter().any(|x| x["expr"] == azure));
    assert_eq!(e.first(azure, &json!({"fields": {}})).unwrap(), json!(""));
    // The github mapping's look-ahead now evaluates instead of failing at run time.
    let github = r#"(.user.login | gsub("\\["; "-") | gsub("\\](?=[^$])"; "-") | gsub("\\]$"; ""))"#;
    assert!(entries.iter().any(|x| x["expr"] == github), "{github}");
    assert_eq!(e.first(github, &json!({"user": {"login": "dependabot[bot]"}})).unwrap(), json!("dependabot-bot"));
}

#[test]
fn deep_recursion_is_an_error_not_an_abort() {
    // Generous time limit: a debug build on a loaded machine is slow to fill the stack.
    let slow = Duration::from_secs(60);
    let e = JqEngine::with_timeout(slow);
    let r = e.first("def f: 1+f; f", &json!(0));
    assert!(matches!(r, Err(JqError::Limit(ref m)) if m.contains("recursion")), "{r:?}");
    // The other shapes on small stacks, to keep the test fast.
    let small = JqEngine::with_config(JqConfig { timeout: slow, stack_size: 16 << 20, ..JqConfig::default() });
    for f in [
        "def f: 1+f; f",
        "def f: 1+f; try f catch 0",
        "def f: try (1+f) catch 0; f",
        "def f: [f]; f",
        "def f(g): 1 + f(g); f(.)",
        "def f: def g: 1+g; g; f",
        "[.[] | def f: 1+f; f]",
    ] {
        let r = small.first(f, &json!([0]));
        assert!(matches!(r, Err(JqError::Limit(ref m)) if m.contains("recursion")), "{f}: {r:?}");
    }
    // Bounded and tail recursion still work.
    let f = "def f($n): if $n >= 1000 then $n else 1 + f($n+1) end; f(0)";
    assert_eq!(e.first(f, &json!(null)).unwrap(), json!(2000));
    let f = "def f: if . >= 100000 then . else .+1 | f end; f";
    assert_eq!(e.first(f, &json!(0)).unwrap(), json!(100000));
    assert_eq!(
        e.first("def fac: if . <= 1 then 1 else . * (. - 1 | fac) end; fac", &json!(10)).unwrap(),
        json!(3628800)
    );
    // The guard's name is reserved.
    assert!(matches!(e.compile("def __portolan_guard: .; 1"), Err(JqError::Compile(_))));
    // The engine is still usable afterwards.
    assert_eq!(e.first(".a", &json!({"a": 1})).unwrap(), json!(1));
}

#[test]
fn fromjson_is_strict_and_bounded() {
    let e = engine();
    assert_eq!(e.first("fromjson", &json!("{\"a\":[1,2.5,null]}")).unwrap(), json!({"a": [1, 2.5, null]}));
    assert!(matches!(e.first("fromjson", &json!("1 2")), Err(JqError::Runtime(_))));
    assert!(matches!(e.first("fromjson", &json!("abc")), Err(JqError::Runtime(_))));
    // jaq's own parser overflows the stack on this.
    let deep = "[".repeat(1_000_000);
    assert!(matches!(e.first("fromjson", &json!(deep)), Err(JqError::Runtime(_))));
}

#[test]
fn engine_and_filters_are_shareable() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<JqEngine>();
    send_sync::<Arc<Compiled>>();
    send_sync::<JqError>();
}

#[test]
fn limits_hit_counts_every_evaluation_a_limit_ended() {
    let e = JqEngine::with_config(JqConfig { max_steps: 1000, ..JqConfig::default() });
    assert_eq!(e.limits_hit(), 0);
    e.first(".a", &json!({"a": 1})).unwrap();
    assert!(e.first("[range(1e9)]", &json!(null)).is_err());
    assert_eq!(e.limits_hit(), 1, "a step budget ran out once");
    let filters = [e.compile("[range(1e9)]").unwrap(), e.compile(".").unwrap(), e.compile("[range(1e9)]").unwrap()];
    let out = e.first_many(&filters, &json!(null)).unwrap();
    assert_eq!(out.iter().filter(|r| r.is_err()).count(), 2);
    assert_eq!(e.limits_hit(), 3, "each filter of a batch counts");
    assert!(e.first(".a", &json!({"a": 2})).is_ok());
    assert_eq!(e.limits_hit(), 3, "a success does not count");
}

/// Compiling never parses on the caller's thread: a deeply nested filter compiled from a thread
/// with a small stack (a request handler's) is an answer, not a stack overflow that aborts the
/// process (review of 41702a2: the fast-path check parsed there).
#[test]
fn compiling_a_deep_filter_on_a_small_stack_does_not_abort() {
    let deep = format!("{}1{}", "(".repeat(3000), ")".repeat(3000));
    let e = engine();
    let got = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || e.compile(&deep).map(|c| c.source().len()))
        .unwrap()
        .join()
        .unwrap();
    assert!(got.is_ok() || matches!(got, Err(JqError::Compile(_) | JqError::Limit(_))), "{got:?}");
}

/// A native `|=` loop spends no step per path, as jq's definition did not.
#[test]
fn updates_spend_no_steps_per_path() {
    let e = JqEngine::with_config(JqConfig { max_steps: 5000, ..JqConfig::default() });
    let input = json!((0..100).collect::<Vec<_>>());
    assert_eq!(e.first("reduce range(100) as $i (.; .[] |= . + 1) | .[0]", &input).unwrap(), json!(100));
}
