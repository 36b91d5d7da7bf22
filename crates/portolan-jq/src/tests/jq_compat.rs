#![allow(clippy::unwrap_used, clippy::expect_used)]
//! jq 1.8 behaviour that jaq 3 lacks (see `crates/portolan-jq/README.md`, "The dialect"); each case failed before
//! the fix it names.
use crate::*;
use serde_json::json;

fn eq(f: &str, input: Value, want: Value) {
    let got = JqEngine::new().first(f, &input);
    assert_eq!(got, Ok(want), "{f}");
}

fn fails(f: &str, input: Value, msg: &str) {
    let got = JqEngine::new().first(f, &input);
    assert!(matches!(got, Err(JqError::Runtime(ref m)) if m.contains(msg)), "{f}: {got:?}");
}

#[test]
fn regex_look_around_back_references_and_flags() {
    // The github Ocean mapping (look-ahead).
    let f = r#".user.login | gsub("\\["; "-") | gsub("\\](?=[^$])"; "-") | gsub("\\]$"; "")"#;
    eq(f, json!({"user": {"login": "app[bot]"}}), json!("app-bot"));
    eq(f, json!({"user": {"login": "a[b]c"}}), json!("a-b-c"));
    eq(r#"test("(?<!x)y")"#, json!("ay"), json!(true));
    eq(r#"test("(?<!x)y")"#, json!("xy"), json!(false));
    eq(r#"test("(a)\\1")"#, json!("aa"), json!(true));
    eq(r#"test("(?<q>a)\\k<q>")"#, json!("aa"), json!(true));
    eq(r#"test("\\h+$")"#, json!("beef"), json!(true));
    eq(r#"test("a$")"#, json!("a\n"), json!(true)); // Oniguruma: `$` before a final newline
    eq(r#"test("^b")"#, json!("a\nb"), json!(false));
    eq(r#"[test("a.b"), test("a.b"; "p")]"#, json!("a\nb"), json!([false, true]));
    eq(r#"test("B"; "i")"#, json!("abc"), json!(true));
    eq(r#"test("a b c"; "x")"#, json!("abc"), json!(true));
    eq(r#"[match(""; "g")] | length"#, json!("abc"), json!(4));
    eq(r#"[match("a*"; "gn") | .string]"#, json!("baab"), json!(["aa"]));
    eq(r#"test(["B", "i"])"#, json!("abc"), json!(true));
    fails(r#"test("b"; "q")"#, json!("abc"), "not a valid modifier string");
    fails(r#"test("(")"#, json!("abc"), "not a valid regex");
}

#[test]
fn regex_match_objects_like_jq() {
    eq(
        r#"match("(x)?b")"#,
        json!("abc"),
        json!({"offset": 1, "length": 1, "string": "b",
               "captures": [{"offset": -1, "length": 0, "string": null, "name": null}]}),
    );
    eq(
        r#"match("(?<n>é+)")"#,
        json!("aéé"),
        json!({"offset": 1, "length": 2, "string": "éé",
               "captures": [{"offset": 1, "length": 2, "string": "éé", "name": "n"}]}),
    );
    eq(
        r#"capture(".*\\.(?<region>[^\\.]+)\\.amazonaws\\.com")"#,
        json!("b.s3.eu-west-1.amazonaws.com"),
        json!({"region": "eu-west-1"}),
    );
    eq(r#"[scan("c")], [scan("(a)(b)")]"#, json!("abcab"), json!(["c"]));
    eq(r#"[scan("(a)(b)")]"#, json!("abcab"), json!([["a", "b"], ["a", "b"]]));
    eq(r#"[splits(", *"; null)]"#, json!("a, b,c"), json!(["a", "b", "c"]));
    eq(r#"split("x"; "gi")"#, json!("aXbxc"), json!(["a", "b", "c"]));
    eq(r#"[sub("(?<x>b)"; "1", "2")]"#, json!("abc"), json!(["a1c", "a2c"]));
    eq(r#"gsub("(?<x>[aeiou])"; "<\(.x)>")"#, json!("banana"), json!("b<a>n<a>n<a>"));
    eq(r#"sub("^\\s+"; "")"#, json!("  x "), json!("x "));
    eq(r#"gsub(""; "-")"#, json!("ab"), json!("-a-b-"));
}

#[test]
fn assignment_creates_structure_through_null() {
    eq(".a = 1", json!(null), json!({"a": 1}));
    eq(".a.b = 1", json!({}), json!({"a": {"b": 1}}));
    eq(".a[1] = 1", json!(null), json!({"a": [null, 1]}));
    eq("setpath([\"a\", \"b\"]; 1)", json!(null), json!({"a": {"b": 1}}));
    eq(".a.b |= . + 1", json!({}), json!({"a": {"b": 1}}));
    eq(".a += 1", json!(null), json!({"a": 1}));
    eq(".a //= 3 | .b //= 4", json!({"a": 1}), json!({"a": 1, "b": 4}));
    eq(".[-1] = 5", json!([1, 2]), json!([1, 5]));
    eq(".[1:] = [\"x\", \"y\"]", json!([1, 2]), json!([1, "x", "y"]));
    eq("(.[] | select(. > 1)) |= empty", json!([1, 2, 3]), json!([1]));
    eq("del(.[0, 2])", json!([1, 2, 3]), json!([2]));
    eq("delpaths([[0], [1]])", json!([1, 2, 3]), json!([3]));
    eq(".[3] |= ascii_downcase", json!(["a", "b", "c", "D"]), json!(["a", "b", "c", "d"]));
    eq("(def f: .a; f) |= 3", json!({}), json!({"a": 3}));
    eq("pick(.a.b)", json!({"a": {"b": 1, "c": 2}}), json!({"a": {"b": 1}}));
    eq("[paths]", json!({"a": [1]}), json!([["a"], ["a", 0]]));
    fails("setpath([-1]; 1)", json!(null), "Out of bounds negative array index");
    fails(".a = 1", json!(1), "index 1 with");
    fails("setpath([\"a\"]; 1)", json!(1), "Cannot index number");
}

#[test]
fn arithmetic_like_jq() {
    eq("[(1,2) + (10,20)]", json!(null), json!([11, 12, 21, 22]));
    eq("[(1,2) * (10,20)]", json!(null), json!([10, 20, 20, 40]));
    eq("[\"ab\" * 0, \"ab\" * 1.5, 2 * \"ab\"]", json!(null), json!(["", "ab", "abab"]));
    eq("\"ab\" * -1", json!(null), json!(null));
    eq("5.5 % 2, -5 % 3", json!(null), json!(1));
    eq("[-5 % 3]", json!(null), json!([-2]));
    eq("{a: {b: 1}} * {a: {c: 2}}", json!(null), json!({"a": {"b": 1, "c": 2}}));
    eq("\"a,b\" / \",\"", json!(null), json!(["a", "b"]));
    fails("1 / 0", json!(null), "divisor is zero");
    fails(".a / .b", json!({"a": 1, "b": 0}), "divisor is zero");
    fails("5 % 0", json!(null), "divisor is zero");
    // Non-finite numbers never become invalid JSON text.
    eq("infinite | tojson", json!(null), json!("1.7976931348623157e+308"));
    eq("[nan, -infinite] | tostring", json!(null), json!("[null,-1.7976931348623157e+308]"));
}

#[test]
fn missing_builtins() {
    eq("[tostream]", json!([1, [2]]), json!([[[0], 1], [[1, 0], 2], [[1, 0]], [[1]]]));
    eq("fromstream(tostream)", json!({"a": [1, {"b": null}]}), json!({"a": [1, {"b": null}]}));
    eq("[1 | truncate_stream([[0], 1], [[1, 0], 2], [[1, 0]], [[1]])]", json!(null), json!([[[0], 2], [[0]]]));
    eq("$__loc__", json!(null), json!({"file": "<top-level>", "line": 1}));
    eq("1 |\n\n$__loc__.line", json!(null), json!(3));
    eq("input_filename", json!(null), json!(null));
    eq("@base64d", json!("aGVsbG8"), json!("hello"));
    eq("@base64d", json!("aGVsbG8="), json!("hello"));
    fails("@base64d", json!("!!"), "not valid base64");
    eq("@base32d", json!("MZXW6==="), json!("foo"));
    eq("@text", json!([1, "a"]), json!("[1,\"a\"]"));
    eq("walk(if type == \"array\" then sort else . end)", json!({"a": [3, 1]}), json!({"a": [1, 3]}));
    eq("[limit(0; 1, 2)]", json!(null), json!([]));
    fails("[limit(-1; 1, 2)]", json!(null), "negative count");
    eq("getpath([\"a\", 0, \"b\"])", json!(null), json!(null));
    eq("[.[] | ltrimstr(\"a\")]", json!(["ab", "b"]), json!(["b", "b"]));
    // jq 1.8 (#2969): non-string inputs are an error
    fails("ltrimstr(\"x\")", json!(1), "requires string inputs");
    for f in ["input", "inputs", "halt"] {
        assert!(JqEngine::new().first(f, &json!(null)).is_err(), "{f}");
    }
}

/// `to_entries`, `from_entries` (natives for arrays of objects) and `|=` (a native loop) give
/// what the jq definitions they replace give, on every shape of entry, errors included.
#[test]
fn native_entries_and_updates_match_their_jq_definitions() {
    const DEFS: &str = r#"
def te: [keys_unsorted[] as $k | {key: $k, value: .[$k]}];
def fe: reduce .[] as $x ({};
    . + { ($x | if .key == null then .k // .name // .Name // .K // .Key else .key end
              | if isstring then . else tojson end):
          ($x | if has("value") then .value elif has("v") then .v else .Value end) });
def modify(paths; update): reduce path(paths) as $p ([., []];
    . as [$x, $del]
    | label $out
    | (($x | getpath($p) | update) as $v | [($x | setpath($p; $v)), $del] | ., break $out), [$x, $del + [$p]])
  | . as [$x, $del] | $x | delpaths($del);
"#;
    let jq = JqEngine::new();
    let same = |native: &str, defined: &str, input: Value| {
        let a = jq.first(native, &input);
        let b = jq.first(&format!("{DEFS} {defined}"), &input);
        match (&a, &b) {
            (Ok(x), Ok(y)) => assert_eq!(x, y, "{native} on {input}"),
            (Err(x), Err(y)) => assert_eq!(x.to_string(), y.to_string(), "{native} on {input}"),
            _ => panic!("{native} on {input}: {a:?} vs {b:?}"),
        }
    };
    let entries = json!([
        [],
        [{"key": "a", "value": 1}, {"key": "a", "value": 2}, {"key": "b"}],
        [{"key": 1, "value": 1}, {"key": false, "v": 2}, {"key": null, "k": "x", "Value": 3}],
        [{"k": false, "name": null, "Name": "n", "value": null, "v": 5}],
        [{"k": null, "name": false, "K": false, "Key": false}, {"Key": [1, {"a": "b"}], "v": null}],
        [{"name": "z", "Value": {"deep": [1]}}, {"K": 2.5, "value": "w"}, {}],
        [{"key": "x"}, null],
        [{"key": "x"}, 3],
        {"a": {"key": "k1", "value": 1}, "b": {"name": "k2"}},
        {"a": 1},
        null,
        "s",
        [{"key": {"a": 1}, "value": 1}, {"key": [null, true], "value": 2}, {"key": 1.5, "value": 3}],
    ]);
    for input in entries.as_array().unwrap() {
        same("from_entries", "fe", input.clone());
        same("to_entries", "te", input.clone());
        same("to_entries | from_entries", "te | fe", input.clone());
    }
    let odd = "[{key: infinite, value: 1}, {key: nan, v: 2}, {key: -infinite}, {key: \"a\" | @base64d}]";
    same(&format!("{odd} | from_entries"), &format!("{odd} | fe"), json!(null));
    let updates = [
        ".a |= . + 1",
        ".[]? |= tostring",
        "(.[]? | select(. == null)) |= empty",
        ".a.b |= 3",
        ".[0] |= (1, 2)",
        "(.a, .b, .a) |= [.]",
        ".[1:] |= map(.)",
        "(.. | select(type == \"number\")) |= . * 2",
        ".a |= error(\"boom\")",
        ".a[2] |= 7",
    ];
    let inputs =
        json!([null, {}, {"a": 1, "b": null}, {"a": {"b": [1]}}, [1, null, "x", [2]], [], "str", 4, {"a": [null]}]);
    for u in updates {
        let (path, update) = u.split_once(" |= ").unwrap();
        for input in inputs.as_array().unwrap() {
            same(u, &format!("modify({path}; {update})"), input.clone());
        }
    }
}

/// Plain paths and literals are answered without jaq (`compile::Fast`): the same values and
/// errors as jaq's evaluation of the same filter.
#[test]
fn fast_paths_and_literals_match_jaq() {
    let jq = JqEngine::new();
    let fast =
        [".a", ".a.b", ".\"a-b\".c", ".[\"x\"]", ".a.b.c.d", "\"lit\"", "\"\"", "true", "false", "null", "'single'"];
    let slow =
        [".a?", ".a[0]", "\"esc\\n\"", ".a | .b", ".", ".[]", "\"x\\(.a)\"", "1", "$__loc__", ".a // 1", "@text \"a\""];
    let inputs = json!([null, {}, {"a": 1}, {"a": {"b": [1]}}, {"a": {"b": {"c": {"d": false}}}}, {"a": null}, [1], "s", 3,
                        {"a-b": {"c": 5}}, {"x": "y"}, {"a": {"b": null}}, {"a": [1]}, true]);
    for (f, expect_fast) in fast.iter().map(|f| (f, true)).chain(slow.iter().map(|f| (f, false))) {
        let compiled = jq.compile(f).unwrap();
        assert_eq!(compiled.fast.is_some(), expect_fast, "{f}");
        for input in inputs.as_array().unwrap() {
            let a = jq.first(f, input);
            let b = jq.first(&format!("({}) | .", compiled.code), input);
            match (&a, &b) {
                (Ok(x), Ok(y)) => assert_eq!(x, y, "{f} on {input}"),
                (Err(x), Err(y)) => assert_eq!(x.to_string(), y.to_string(), "{f} on {input}"),
                _ => panic!("{f} on {input}: {a:?} vs {b:?}"),
            }
        }
    }
}

/// jq deletes nothing below a `null` or at an array index past either end (jaq's update failed:
/// "index 5 out of bounds", "cannot use null as iterable").
#[test]
fn deleting_what_is_not_there_changes_nothing() {
    eq("del(.[0])", json!([]), json!([]));
    eq("del(.[5])", json!([1]), json!([1]));
    eq("del(.[-5])", json!([1, 2]), json!([1, 2]));
    eq("del(.[-1])", json!([1, 2]), json!([1]));
    eq("del(.[1, 5])", json!([1, 2, 3]), json!([1, 3]));
    eq("delpaths([[5], [0]])", json!([1, 2]), json!([2]));
    eq("del(.a[3])", json!({"a": [1]}), json!({"a": [1]}));
    eq("del(.a.b)", json!({}), json!({}));
    eq("del(.[0])", json!(null), json!(null));
    eq("del(.[2][0])", json!([1]), json!([1]));
    eq(".[0] |= empty", json!([]), json!([]));
    eq("[.[] | del(.[3])]", json!([[1, 2, 3, 4], [1]]), json!([[1, 2, 3], [1]]));
    fails("del(.a.b)", json!({"a": 5}), "");
}
