//! An input read keeping only what a filter can observe (`needs.rs`, `convert::read_needed`)
//! gives every filter the outputs and errors the whole input gives — checked over jq's own test
//! suite and over condition-like filters on an automation event.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::*;
use crate::needs::Need;

/// Every output (and the error ending them) of `code` over `input`, as text to compare.
fn outputs(filter: &compile::Filter, input: Val) -> String {
    let budget =
        guard::Budget { deadline: Some(Instant::now() + Duration::from_secs(2)), steps: 1_000_000, max_len: 1 << 20 };
    format!("{:?}", run_all(filter, input, budget, 50))
}

/// The three ways of reading `text` (whole; the needed parts of the parsed value; the needed
/// parts of the text) give `code` the same outputs. `Some(true)` if the needed parts left
/// something out; `None` where the case does not apply (no compile, a time or step limit).
fn same_outputs(code: &str, text: &str, key: Option<&str>) -> Option<bool> {
    let value: Value = serde_json::from_str(text).ok()?;
    let filter = compile::compile(code).ok()?;
    let need = compile::Shape::of(code).need;
    let (whole, needed, read) = match key {
        None => (
            convert::to_val(&value).unwrap(),
            convert::to_val_needed(&value, &need).unwrap(),
            convert::read_needed(text, &need).unwrap(),
        ),
        // As an item of a hand-off: the filter's input is `{key: item}`.
        Some(k) => {
            let at = need.at(k);
            let base = Val::obj(Map::default());
            (
                with_key(&base, k, convert::to_val(&value).unwrap()),
                with_key(&base, k, convert::to_val_needed(&value, &at).unwrap()),
                with_key(&base, k, convert::read_needed(text, &at).unwrap()),
            )
        }
    };
    assert_eq!(needed, read, "{code:?} over {text}: the value and the text read differently");
    let expected = outputs(&filter, whole.clone());
    if expected.contains("Limit(") {
        return None;
    }
    assert_eq!(outputs(&filter, needed.clone()), expected, "{code:?} over {text}, reading {need:?}");
    Some(needed != whole)
}

/// jaq's parser and evaluator recurse: run on a big stack, as the engine's workers do.
fn on_big_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(move || {
            guard::arm(192 << 20);
            f()
        })
        .unwrap()
        .join()
        .unwrap();
}

fn event() -> &'static str {
    r#"{"action": "UPDATE", "resourceType": "entity", "status": "SUCCESS",
        "trigger": {"by": {"userId": "u1", "orgId": "o1"}, "origin": "API", "at": "2026-12-07T10:00:00Z"},
        "context": {"blueprintIdentifier": "service", "entityIdentifier": "svc-1"},
        "diff": {
          "before": {"identifier": "svc-1", "title": "Svc", "properties": {"tick": 9, "tags": ["a"], "on": true}, "relations": {}},
          "after": {"identifier": "svc-1", "title": "Payments", "team": ["t"],
                    "properties": {"tick": 10, "tags": ["a", "x"], "on": false, "nested": {"k": [1, {"z": 2}]}, "s": "p-1"},
                    "relations": {"team": "t", "deps": ["a", "b"]}}}}"#
}

const CONDITIONS: &[&str] = &[
    ".diff.after.properties.tick % 10 == 0",
    ".diff.after.properties.tick != .diff.before.properties.tick",
    ".diff.after.properties.tick.x",
    ".diff.after.properties.tags.x",
    ".diff.after.properties.tags[0]",
    ".diff.after.properties.tags[]",
    ".diff.after[0]",
    ".diff.after.properties.tick[0]",
    ".diff.after | keys",
    ".diff.after.properties | to_entries | length",
    "[.diff.after.properties[]] | length",
    ".diff | .after.properties.tick as $t | $t > 5",
    "reduce .diff.after.properties.tags[] as $v (0; . + 1)",
    "foreach .diff.after.properties.tags[] as $v (0; . + 1; [$v, .])",
    ".diff.after.properties.tags | index(\"x\")",
    "(.diff.after.properties.tick | tostring) + \"x\"",
    "\"\\(.diff.after.identifier)-x\"",
    "@base64 \"\\(.diff.after.title)\"",
    "{a: .diff.after.identifier, status}",
    "{(.diff.after.title): 1}",
    "{$__loc__}",
    ".diff.after.properties[\"tick\"]",
    ".diff.after.properties.\"tick\"",
    ".diff.after?.properties",
    ".diff.after.properties.tick?.x",
    "try error(.diff.after) catch .",
    "try (.diff.after.properties.tick | error) catch .",
    ".diff.after.properties.nested.k[1].z",
    ".diff.after.properties.nested | .k | .[1] | .z",
    "if .diff.before == null then \"created\" else .diff.after.title end",
    ".diff.after.relations | has(\"team\")",
    "[paths] | length",
    "[.. | numbers]",
    "getpath([\"diff\", \"after\", \"title\"])",
    ".diff.after.properties |= {}",
    ".diff.after.properties.tick += 1",
    ".diff.after.properties.tick + .diff.before.properties.tick",
    "def f: .diff; f.after.title",
    ".diff.after.properties | .tick, .missing",
    ".diff.after.properties.tick // \"none\"",
    "[.diff.after.properties.tick, .diff.after.title] | @csv",
    ".diff.after.title | test(\"^P\")",
    ".diff.after.properties.tick | . % 10 == 0",
    "not",
    ".diff.after.properties.on | not",
    "(.diff.after.properties.tick == null) | not",
    ". as {diff: {after: $a}} | $a.title",
    ". as {$diff} | $diff.after.title",
    ". as [$a] | $a",
    ".diff.after as [$a] | $a",
    "label $f | .diff.after.title, break $f",
    "-(.diff.after.properties.tick)",
    "-(.diff.after.title)",
    ".diff.after.properties.tick as $t | .diff.before | .properties.tick < $t",
    ".diff.after.team | length > 0 and (.[0] == \"t\")",
    "[.diff.after.relations.deps[] | select(. == \"a\")] | length",
    ".diff.after.properties.s | startswith(\"p-\")",
    "true and .diff.after.properties.on == false",
    "null",
    ".",
    ".diff.after.title as $t | $__loc__",
    "$__loc__.file",
    ".diff.after.properties | with_entries(.value |= tostring)",
    ".diff.after.properties.tick | tojson",
    ".diff.after.properties.nested | tojson",
    "[.diff.after.properties.tags[1:]]",
    ".diff.after.properties.tags[.diff.after.properties.tick - 9]",
    ".diff.after.properties[.diff.after.properties.s]",
    ".resourceType == \"entity\" and .action == \"UPDATE\"",
    // A missing `else` is `else .`: the whole input.
    "if .diff.before.properties.on then 1 end",
    "if .diff.after.properties.on then 1 elif .missing then 2 end",
    ".diff.after | if .properties.on then 1 end",
    "label $f | if .diff.after.properties.on then break $f end",
];

/// The filters an automation's condition becomes (`.e | (condition)`, the event at `.e`), and
/// the conditions themselves: the same outputs and errors, read whole or in part.
#[test]
fn condition_filters_see_the_same_event_read_in_part() {
    on_big_stack(|| {
        let mut narrowed = 0;
        for c in CONDITIONS {
            let code = rewrite::rewrite(c);
            if same_outputs(&code, event(), None) == Some(true) {
                narrowed += 1;
            }
            let wrapped = rewrite::rewrite(&format!(".e | ({c}\n)"));
            same_outputs(&wrapped, event(), Some("e")).unwrap_or_else(|| panic!("{c:?} does not apply"));
        }
        assert!(narrowed >= 30, "only {narrowed} of {} conditions read less than the whole event", CONDITIONS.len());
    });
}

/// jq's own test suite: every program over its input, read whole and in part.
#[test]
fn jq_suite_programs_see_the_same_input_read_in_part() {
    on_big_stack(|| {
        let (mut cases, mut narrowed) = (0, 0);
        for text in [
            include_str!("../../tests/data/jq-tests/jq.test"),
            include_str!("../../tests/data/jq-tests/man.test"),
            include_str!("../../tests/data/jq-tests/manonig.test"),
            include_str!("../../tests/data/jq-tests/base64.test"),
        ] {
            let lines: Vec<&str> = text.lines().collect();
            let mut i = 0;
            while i < lines.len() {
                let l = lines[i];
                if l.trim().is_empty() || l.starts_with('#') {
                    i += 1;
                    continue;
                }
                if l.starts_with("%%FAIL") {
                    while i < lines.len() && !lines[i].trim().is_empty() {
                        i += 1;
                    }
                    continue;
                }
                let (program, input) = (l, lines.get(i + 1).copied().unwrap_or(""));
                while i < lines.len() && !lines[i].trim().is_empty() {
                    i += 1;
                }
                if ["input", "now", "$__prog", "env", "halt", "debug", "stderr", "get_", "$ENV"]
                    .iter()
                    .any(|w| program.contains(w))
                {
                    continue;
                }
                let code = rewrite::guard_defs_only(program);
                if let Some(n) = same_outputs(&code, input, None) {
                    cases += 1;
                    narrowed += usize::from(n);
                }
                same_outputs(&rewrite::guard_defs_only(&format!(".e | ({program}\n)")), input, Some("e"));
            }
        }
        assert!(cases >= 500, "only {cases} cases ran");
        // Most of the suite's inputs are small or read whole; these are the cases with parts left out.
        assert!(narrowed >= 12, "only {narrowed} of {cases} cases read less than the whole input");
    });
}

fn keys(entries: &[(&str, Need)]) -> Need {
    Need::Keys(entries.iter().map(|(k, n)| (k.to_string(), n.clone())).collect::<BTreeMap<_, _>>())
}

/// What is read, for a few shapes: a path, a pipe from a path, a variable bound to the whole
/// input, a call on the input, constants.
#[test]
fn needs_of_some_filters() {
    on_big_stack(|| {
        let need = |c: &str| compile::Shape::of(&rewrite::rewrite(c)).need;
        let tick = keys(&[("tick", Need::Whole)]);
        let event = keys(&[("diff", keys(&[("after", keys(&[("properties", tick.clone())]))]))]);
        assert_eq!(need(".e | (.diff.after.properties.tick % 10 == 0\n)"), keys(&[("e", event.clone())]));
        assert_eq!(need(".diff.after | .properties.tick == true"), event);
        assert_eq!(need(".a | length"), keys(&[("a", Need::Whole)]));
        assert_eq!(need(".a as $x | .b"), keys(&[("a", Need::Whole), ("b", Need::Whole)]));
        assert_eq!(need("{a, $__loc__}"), keys(&[("a", Need::Whole)]));
        assert_eq!(need(".a[0].b"), keys(&[("a", Need::Whole)]));
        assert_eq!(need("(.a == 1) | not"), keys(&[("a", Need::Whole)]));
        assert_eq!(need("true or null"), Need::nothing());
        for whole in ["keys", ". as $r | $r.a", ".. | .a", ".[0]", ".a = 1", "def f: .a; f", "tojson", "@base64"] {
            assert_eq!(need(whole), Need::Whole, "{whole}");
        }
        assert_eq!(compile::Shape::of("(").need, Need::Whole, "a filter that does not parse");
    });
}

/// What is not read is still checked as reading it whole checks it: an item is refused exactly
/// when its whole reading would be, whatever the filters read of it.
#[test]
fn parts_not_read_are_checked_as_whole_ones() {
    let a = keys(&[("a", Need::Whole)]);
    let deep = format!("{}1{}", "[".repeat(300), "]".repeat(300));
    for bad in ["1e400", deep.as_str(), r#""\ud800""#] {
        let text = format!(r#"{{"a": 1, "b": {bad}}}"#);
        assert!(serde_json::from_str::<convert::WireVal>(&text).is_err(), "{text} is refused whole");
        assert!(convert::read_needed(&text, &a).is_err(), "{text} is refused when only .a is read");
    }
    let mut nested = json!(1);
    for _ in 0..(convert::MAX_DEPTH + 2) {
        nested = json!([nested]);
    }
    let value = json!({"a": 1, "b": nested});
    assert!(convert::to_val(&value).is_err());
    assert!(convert::to_val_needed(&value, &a).is_err());
    assert_eq!(
        convert::to_val_needed(&json!({"a": 1, "b": [2]}), &a).unwrap(),
        convert::to_val(&json!({"a": 1})).unwrap()
    );
}

/// A filter of thousands of constant keys (`.a.a.a…`) compiles; what it needs stays shallow, so
/// reading an item for it, and dropping it, run on an ordinary thread.
#[test]
fn a_long_path_needs_a_shallow_value() {
    let filter = format!(".e | ({}\n)", ".a".repeat(3000));
    let handle = std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(move || {
            let jq = engine();
            let compiled = jq.compile(&filter).unwrap();
            let mut depth = 0;
            let mut n = &compiled.need;
            while let Need::Keys(m) = n {
                let Some(next) = m.values().next() else { break };
                n = next;
                depth += 1;
            }
            assert!(depth <= 130, "{depth}");
            let texts = [serde_json::value::RawValue::from_string(r#"{"b": {"a": 1}}"#.to_owned()).unwrap()];
            let out = jq.first_many_texts_in(&jq.budget_for("t"), &[compiled], &json!({}), "e", &texts).unwrap();
            assert_eq!(out[0][0].as_ref().unwrap(), &Value::Null);
        })
        .unwrap();
    handle.join().unwrap();
}
