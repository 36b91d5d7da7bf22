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
    // A loop inside a native builtin passes no guard: its abandoned worker spins until the test
    // process exits (CPU only; a filter that allocates without bound would also keep
    // allocating, so none is used here).
    let t = Instant::now();
    let r = e.first("last(range(1e12))", &json!(null));
    assert!(matches!(r, Err(JqError::Limit(ref m)) if m.contains("time limit")), "{r:?}");
    assert!(t.elapsed() < Duration::from_secs(2), "took {:?}", t.elapsed());
    // Abandoned workers are replaced: the engine keeps answering.
    assert_eq!(e.first(".a + 1", &json!({"a": 1})).unwrap(), json!(2));
    assert_eq!(e.runaway_workers(), 1);
    assert_eq!(e.worker_threads(), 3);
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
fn runaway_worker_exits_when_its_filter_ends() {
    let e = JqEngine::with_config(JqConfig { timeout: Duration::from_millis(30), workers: 2, ..JqConfig::default() });
    // ~0.3 s in release, ~1.5 s in debug: longer than the limit, but it ends.
    let r = e.first("last(range(1e7))", &json!(null));
    assert!(matches!(r, Err(JqError::Limit(_))), "{r:?}");
    assert_eq!(e.worker_threads(), 3);
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
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/jq-corpus/ocean-mappings.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!("jq corpus missing at {path} ({e}); CI must check out shared/ beside the repository")
    });
    let entries: Vec<Value> = serde_json::from_str(&text).expect("corpus is a JSON array");
    let e = JqEngine::with_config(JqConfig { cache_capacity: 4096, ..JqConfig::default() });
    let (mut ok, mut failures) = (0, Vec::new());
    for entry in &entries {
        let expr = entry["expr"].as_str().expect("expr is a string");
        match e.compile(expr) {
            Ok(c) => {
                ok += 1;
                // Evaluating on an empty object must not panic or hang; the result does not matter.
                let _ = e.first_compiled(&c, &json!({}));
            }
            Err(err) => failures.push(format!("{} {}: {expr:?}: {err}", entry["integration"], entry["field"])),
        }
    }
    println!("ocean corpus: {ok} of {} expressions compile", entries.len());
    for f in &failures {
        println!("  FAIL {f}");
    }
    // Measured: 2527 of 2528 (only gitlab's `file://README.md`, which is not jq, fails).
    assert!(ok >= 2520, "only {ok} of {} compile:\n{}", entries.len(), failures.join("\n"));
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
