#![allow(clippy::unwrap_used, clippy::expect_used)]
//! jq's own test suite (`tests/data/jq-tests/*.test`, jqlang/jq, MIT, see `COPYING` there) run
//! through the engine in plain-jq mode ([`JqEngine::all_outputs`]: no single-quote rewrite, all
//! outputs). Fails if a file's pass rate drops below the recorded one.
//!
//! Regenerate the report in `docs/jq-compatibility.md`:
//! `PORTOLAN_JQ_SUITE_REPORT=/tmp/jq-suite.md cargo test -p portolan-jq --test jq_suite -- --nocapture`
//! (writes the per-file table and the failures grouped by cause; paste it into the doc).

use portolan_jq::{JqConfig, JqEngine, JqError};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// Recorded pass rates (passed, applicable) per file; the test fails below them.
const RECORDED: &[(&str, usize)] = &[("base64.test", 9), ("jq.test", 408), ("man.test", 222), ("manonig.test", 19)];

struct Case {
    line: usize,
    program: String,
    input: String,
    expected: Vec<String>,
    fail: bool,
}

fn parse(text: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    let mut lines = text.lines().enumerate().peekable();
    loop {
        // skip blank lines and comments
        while lines.peek().is_some_and(|(_, l)| l.trim().is_empty() || l.starts_with('#')) {
            lines.next();
        }
        let Some((n, first)) = lines.next() else { break };
        let (fail, program) = if first.starts_with("%%FAIL") {
            match lines.next() {
                Some((_, p)) => (true, p.to_owned()),
                None => break,
            }
        } else {
            (false, first.to_owned())
        };
        let mut rest = Vec::new();
        while let Some((_, l)) = lines.peek() {
            if l.trim().is_empty() {
                break;
            }
            if !l.starts_with('#') {
                rest.push((*l).to_owned());
            }
            lines.next();
        }
        let (input, expected) = if fail {
            (String::new(), rest)
        } else {
            let mut it = rest.into_iter();
            (it.next().unwrap_or_default(), it.collect())
        };
        cases.push(Case { line: n + 1, program, input, expected, fail });
    }
    cases
}

/// Equal as jq compares: numbers by value.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// Why a case cannot apply to an embedded engine, if it cannot.
fn not_applicable(program: &str) -> Option<&'static str> {
    let words = |w: &str| {
        program.match_indices(w).any(|(i, _)| {
            let before = program[..i].chars().last();
            let after = program[i + w.len()..].chars().next();
            !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$' || c == '.')
                && !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
        })
    };
    if words("input") || words("inputs") || words("input_line_number") {
        Some("reads further inputs (`input`/`inputs`): no input stream in mappings")
    } else if words("import") || words("include") || words("modulemeta") || words("get_search_list") {
        Some("modules from disk (`import`/`include`/`modulemeta`)")
    } else if words("env") || program.contains("$ENV") {
        Some("process environment (`env`/`$ENV` are `{}` by design)")
    } else if words("halt") || words("halt_error") {
        Some("`halt`/`halt_error` (would end the process; disabled)")
    } else if program.contains("$__prog_args")
        || words("input_filename")
        || words("get_prog_origin")
        || words("get_jq_origin")
    {
        Some("command-line state (`$__prog_args`, `input_filename`, origins)")
    } else {
        None
    }
}

fn cause(err: &JqError) -> String {
    let msg = match err {
        JqError::Compile(m) => {
            if let Some(i) = m.find("undefined filter `") {
                let rest = &m[i + 18..];
                return format!("undefined filter `{}`", rest.split('`').next().unwrap_or(""));
            }
            if let Some(i) = m.find("undefined variable `") {
                let rest = &m[i + 20..];
                return format!("undefined variable `{}`", rest.split('`').next().unwrap_or(""));
            }
            return "syntax jaq does not parse".to_owned();
        }
        JqError::Runtime(m) => format!("runtime error: {m}"),
        JqError::NotJson(m) => format!("result not JSON: {m}"),
        JqError::Limit(m) => format!("limit: {m}"),
    };
    msg.chars().take(70).collect()
}

struct FileResult {
    passed: usize,
    applicable: usize,
    not_applicable: BTreeMap<&'static str, usize>,
    failures: BTreeMap<String, Vec<String>>,
}

fn run_file(engine: &JqEngine, name: &str) -> FileResult {
    let path = format!("{}/tests/data/jq-tests/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("test file");
    let mut r = FileResult { passed: 0, applicable: 0, not_applicable: BTreeMap::new(), failures: BTreeMap::new() };
    for case in parse(&text) {
        if let Some(why) = not_applicable(&case.program) {
            *r.not_applicable.entry(why).or_default() += 1;
            continue;
        }
        r.applicable += 1;
        let mut fail = |cause: String| {
            r.failures.entry(cause).or_default().push(format!("{name}:{} `{}`", case.line, case.program));
        };
        if case.fail {
            match engine.all_outputs(&case.program, &Value::Null, 1) {
                Err(JqError::Compile(_)) => r.passed += 1,
                _ => fail("compiles, but jq rejects it".to_owned()),
            }
            continue;
        }
        let Ok(input) = serde_json::from_str::<Value>(&case.input) else {
            fail("test input is not one JSON value (jq streams several)".to_owned());
            continue;
        };
        let expected: Result<Vec<Value>, _> = case.expected.iter().map(|l| serde_json::from_str::<Value>(l)).collect();
        let Ok(expected) = expected else {
            fail("expected output is not JSON (e.g. NaN, huge numbers)".to_owned());
            continue;
        };
        match engine.all_outputs(&case.program, &input, expected.len() + 1) {
            Err(e) => fail(cause(&e)),
            Ok(outs) => {
                if let Some(Err(e)) = outs.iter().find(|o| o.is_err()) {
                    fail(cause(e));
                    continue;
                }
                let got: Vec<Value> = outs.into_iter().flatten().collect();
                if got.len() == expected.len() && got.iter().zip(&expected).all(|(a, b)| same(a, b)) {
                    r.passed += 1;
                } else {
                    fail("different output".to_owned());
                }
            }
        }
    }
    r
}

#[test]
fn jq_test_suite_pass_rates() {
    let engine = JqEngine::with_config(JqConfig { timeout: Duration::from_secs(5), ..JqConfig::default() });
    let mut report = String::new();
    let mut table =
        String::from("| file | passed | applicable | pass rate | not applicable |\n|---|---|---|---|---|\n");
    let mut below = Vec::new();
    for (name, recorded) in RECORDED {
        let r = run_file(&engine, name);
        let na: usize = r.not_applicable.values().sum();
        let rate = 100.0 * r.passed as f64 / r.applicable.max(1) as f64;
        let _ = writeln!(table, "| {name} | {} | {} | {rate:.1} % | {na} |", r.passed, r.applicable);
        println!("{name}: {} of {} applicable cases pass ({rate:.1} %), {na} not applicable", r.passed, r.applicable);
        if r.passed < *recorded {
            below.push(format!("{name}: {} passed, recorded {recorded}", r.passed));
        }
        let _ = writeln!(report, "\n### {name}\n");
        for (why, n) in &r.not_applicable {
            let _ = writeln!(report, "- not applicable ({n}): {why}");
        }
        let mut causes: Vec<_> = r.failures.iter().collect();
        causes.sort_by_key(|(c, cases)| (std::cmp::Reverse(cases.len()), (*c).clone()));
        for (c, cases) in causes {
            let shown: Vec<String> =
                cases.iter().take(3).map(|c| c.replace('|', "\\|").chars().take(100).collect()).collect();
            let _ = writeln!(report, "- {} × {}: {}", cases.len(), c.replace('|', "\\|"), shown.join("; "));
        }
    }
    if let Ok(path) = std::env::var("PORTOLAN_JQ_SUITE_REPORT") {
        std::fs::write(&path, format!("{table}\n## Failures by cause\n{report}")).expect("write report");
        println!("report written to {path}");
    }
    assert!(below.is_empty(), "pass rate fell below the recorded one:\n{}", below.join("\n"));
}
