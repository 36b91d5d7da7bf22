#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Differential test against libjq 1.8 (PyPI `jq`) for the builtins real Ocean mappings use
//! (`tests/data/feature-census.txt`), on generated inputs, under Ocean's rules (first output;
//! error or no output is `null`).
//!
//! Runs when `PORTOLAN_LIBJQ_PYTHON` names a Python with the `jq` package
//! (`python3 -m venv /work/venv-jq && /work/venv-jq/bin/pip install jq`), else skips with a
//! message on stderr.

use portolan_jq::JqEngine;
use serde_json::{Value, json};
use std::io::Write as _;
use std::process::{Command, Stdio};

const FILTERS: &[&str] = &[
    "select(type == \"object\") | .a",
    "map(tostring)?",
    "tostring",
    "tojson",
    "gsub(\" \"; \"\")",
    "gsub(\"\\\\](?=[^$])\"; \"-\")",
    "gsub(\"(?<x>[aeiou])\"; \"<\\(.x)>\")",
    "gsub(\"\\\\]$\"; \"\")",
    "sub(\" \"; \"T\")",
    "sub(\"\\\\..*Z$\"; \"Z\")",
    "split(\"/\")",
    "split(\"/\") | last",
    "split(\":\")[1]",
    "ascii_downcase",
    "ascii_upcase",
    "startswith(\"user:\")",
    "length",
    "join(\",\")",
    "tonumber",
    "tonumber? // \"n/a\"",
    "tonumber / 1000 | todate",
    "todate",
    "fromdate",
    "strptime(\"%Y-%m-%dT%H:%M:%SZ\") | mktime",
    "strptime(\"%Y-%m-%d\") | todateiso8601",
    "tostring | strptime(\"%s\") | strftime(\"%Y-%m-%dT%H:%M:%SZ\")",
    "strftime(\"%Y-%m-%dT%H:%M:%SZ\")",
    "contains(\"a\")",
    "contains([\"a\"])",
    "sort_by(.a)?",
    "sort",
    "floor",
    "add",
    "group_by(.a)? | length",
    "to_entries",
    "has(\"a\")",
    "fromjson",
    "unique",
    "any",
    "all",
    "any(. == 1)",
    "max_by(.a)?",
    "not",
    "capture(\"(?<first>[a-z]+)-(?<second>[a-z0-9]+)\")",
    "test(\"ab\"; \"i\")",
    "keys",
    ".[3] |= ascii_downcase",
    // Updates (`|=` and friends run jq 1.8's `_modify` loop natively).
    "with_entries(.value |= tostring)",
    "to_entries | map(.value |= tostring) | from_entries",
    ".a |= empty",
    ".[0] |= empty",
    "(.[]? | select(. == null)) |= empty",
    "(.[]? | select(type == \"number\")) |= . + 1",
    "(.. | select(type == \"number\")) |= . * 2",
    ".a.b |= 1",
    ".b[1].a |= 5",
    ".[1:3] |= map(tostring)",
    ".a |= (1, 2)",
    "(.a, .b) |= tostring",
    ".a += 1",
    ".a //= 3",
    ".[]? |= length",
    ".a // -1",
    "if . == null then \"none\" else . end",
    "[.[]?]",
    ".. | numbers",
    "tostring | ltrimstr(\"a\")",
    ". as $x | [$x] | length",
    "\"\\(.)\"",
];

fn inputs() -> Vec<Value> {
    vec![
        json!(null),
        json!(true),
        json!(0),
        json!(-1.5),
        json!(1700000000),
        json!(1704164645123_i64),
        json!("abc"),
        json!("AbC dEf"),
        json!("a b c"),
        json!("12"),
        json!(" 3.5 "),
        json!("12x"),
        json!("user:alice"),
        json!("app[bot]"),
        json!("a[b]c"),
        json!("x/y/Z/W/q"),
        json!("2024-01-02T03:04:05Z"),
        json!("2024-01-02T03:04:05.123Z"),
        json!("2024-01-02"),
        json!("a-b1"),
        json!("{\"a\": [1, 2]}"),
        json!(""),
        json!([]),
        json!([1, 2, 3]),
        json!(["a", "b", null, 1]),
        json!(["x", "y", "z", "UPPER"]),
        json!([{"a": 2}, {"a": 1}, {"a": 2}]),
        json!({}),
        json!({"a": 1, "b": "x"}),
        json!({"b": [1, {"a": null}], "a": false}),
    ]
}

/// Known differences between jaq-based portolan-jq and libjq 1.8, with the reason.
fn known_difference(filter: &str, input: &Value) -> Option<&'static str> {
    match (filter, input) {
        // jaq parses fractional seconds; libjq's `fromdate` rejects them.
        ("fromdate" | "todate", Value::String(s)) if s.contains('.') => Some("fractional seconds"),
        // libjq formats years past 9999 and broken-down-time arrays of any length; jaq needs a
        // complete array and a representable date (mappings pass epoch seconds or strptime output).
        ("todate" | "strftime(\"%Y-%m-%dT%H:%M:%SZ\")", Value::Array(_)) => Some("short broken-down time"),
        (_, Value::Number(n)) if n.as_f64() > Some(1e11) && (filter.contains("time") || filter.contains("todate")) => {
            Some("year past 9999")
        }
        // jq 1.7's `from_entries`, which the prelude follows, turns a key that is not a string
        // into one with `tojson` (an array's entries have number keys); libjq 1.8 rejects it.
        (f, Value::Array(_)) if f.ends_with("from_entries") => Some("from_entries with number keys"),
        // Not yet like jq: `.[0]` on an object is `null` here (jq: an error).
        (".[0] |= empty", Value::Object(_)) => Some("number index on an object"),
        _ => None,
    }
}

#[test]
fn matches_libjq_on_the_census_builtins() {
    let Ok(python) = std::env::var("PORTOLAN_LIBJQ_PYTHON") else {
        eprintln!("libjq differential test skipped: set PORTOLAN_LIBJQ_PYTHON to a Python with the PyPI `jq` package");
        return;
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/libjq_diff.py");
    let cases: Vec<(String, Value)> =
        FILTERS.iter().flat_map(|f| inputs().into_iter().map(move |i| ((*f).to_owned(), i))).collect();
    let mut child = match Command::new(&python).arg(script).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("libjq differential test skipped: cannot run {python}: {e}");
            return;
        }
    };
    child.stdin.take().unwrap().write_all(serde_json::to_string(&cases).unwrap().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{python} failed: is the `jq` package installed?");
    let libjq: Vec<Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(libjq.len(), cases.len());
    let engine = JqEngine::new();
    let (mut same, mut known, mut diffs) = (0, 0, Vec::new());
    for ((filter, input), want) in cases.iter().zip(&libjq) {
        let got = engine.first_or_null(filter, input);
        let equal = match (&got, want) {
            (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
            _ => got == *want,
        };
        if equal {
            same += 1;
        } else if let Some(_why) = known_difference(filter, input) {
            known += 1;
        } else {
            diffs.push(format!("{filter} on {input}: portolan {got}, libjq {want}"));
        }
    }
    println!("libjq differential: {same} equal, {known} known differences, {} unexpected", diffs.len());
    assert!(diffs.is_empty(), "{} differences:\n{}", diffs.len(), diffs.join("\n"));
}
