#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;
use serde_json::json;

mod jq_compat;
mod limits;
mod mapping;
mod needs;
mod templates;

fn engine() -> JqEngine {
    JqEngine::new()
}

fn entity() -> Value {
    json!({
        "identifier": "payments-api", "title": "Payments API", "blueprint": "service",
        "team": ["payments"], "icon": "Service",
        "properties": {"prop-with-dash": "dashed", "status": "OK", "replicas": 3, "quote": "it's"},
        "relations": {"domain": "finance"}, "createdAt": "2024-01-02T03:04:05Z"
    })
}

#[test]
fn calc_example_from_port_docs() {
    let e = engine();
    let url = e.first("'https://datadog.com/' + .identifier", &entity()).unwrap();
    assert_eq!(url, json!("https://datadog.com/payments-api"));
    assert_eq!(e.first(".properties.status", &entity()).unwrap(), json!("OK"));
}

#[test]
fn single_quotes() {
    let e = engine();
    let x = entity();
    assert_eq!(e.first("'abc'", &x).unwrap(), json!("abc"));
    assert_eq!(e.first(".properties.'prop-with-dash'", &x).unwrap(), json!("dashed"));
    assert_eq!(e.first(".properties['prop-with-dash']", &x).unwrap(), json!("dashed"));
    assert_eq!(e.first(".missing // ''", &x).unwrap(), json!(""));
    assert_eq!(e.first("'say \"hi\"'", &x).unwrap(), json!("say \"hi\""));
    assert_eq!(e.first("\"\\(.title) is 'live'\"", &x).unwrap(), json!("Payments API is 'live'"));
    assert_eq!(e.first("\"rock 'n roll\"", &x).unwrap(), json!("rock 'n roll"));
    assert_eq!(e.first(".properties.quote | test(\"'\")", &x).unwrap(), json!(true));
    assert_eq!(e.first("'a-' + (.team | join('+'))", &x).unwrap(), json!("a-payments"));
    assert_eq!(e.compile("'x'").unwrap().rewritten(), "\"x\"");
    assert_eq!(e.compile("'x'").unwrap().source(), "'x'");
}

/// Runs only inside the child process started by `env_is_blocked`, which sets the variable.
#[test]
#[ignore = "started by env_is_blocked with PORTOLAN_JQ_TEST_SECRET set"]
fn env_child() {
    let Ok(secret) = std::env::var("PORTOLAN_JQ_TEST_SECRET") else {
        return;
    };
    assert_eq!(secret, "hunter2");
    let e = engine();
    for f in ["env", "$ENV", "{} as $x | env"] {
        assert_eq!(e.first(f, &json!(null)).unwrap(), json!({}), "{f}");
    }
    for f in ["env.PORTOLAN_JQ_TEST_SECRET", "$ENV.PORTOLAN_JQ_TEST_SECRET", "env.PATH", "$ENV | .PATH"] {
        assert_eq!(e.first(f, &json!(null)).unwrap(), json!(null), "{f}");
    }
    assert_eq!(e.first("[env, $ENV] | tojson | test(\"hunter2\")", &json!(null)).unwrap(), json!(false));
    println!("ENV-CHILD-CHECKED");
}

#[test]
fn env_is_blocked() {
    // The process environment of this test has PATH; jq must not see it.
    assert!(std::env::var_os("PATH").is_some());
    let e = engine();
    assert_eq!(e.first("env", &json!(null)).unwrap(), json!({}));
    assert_eq!(e.first("$ENV.PATH", &json!(null)).unwrap(), json!(null));
    // A secret set for the test (edition 2024 makes `set_var` unsafe, which the workspace
    // forbids, so the test binary re-runs itself with the variable set).
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "tests::env_child", "--ignored", "--nocapture", "--test-threads=1"])
        .env("PORTOLAN_JQ_TEST_SECRET", "hunter2")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("ENV-CHILD-CHECKED"), "child did not run: {stdout}");
}

#[test]
fn first_output_only() {
    let e = engine();
    assert_eq!(e.first(".[]", &json!([1, 2, 3])).unwrap(), json!(1));
    assert_eq!(e.first("range(1e12)", &json!(null)).unwrap(), json!(0));
    assert_eq!(e.first("repeat(1)", &json!(null)).unwrap(), json!(1));
    assert_eq!(e.first("1, error(\"late\")", &json!(null)).unwrap(), json!(1));
    assert!(matches!(e.first("empty", &json!(null)), Err(JqError::Runtime(_))));
    assert!(matches!(e.first("error(\"boom\"), 1", &json!(null)), Err(JqError::Runtime(m)) if m == "boom"));
}

#[test]
fn errors_map_to_null() {
    let e = JqEngine::with_timeout(Duration::from_millis(200));
    let x = entity();
    for f in [".identifier | .[", "nosuchfilter", "error(\"x\")", "empty", ".title | tonumber", "{(1): 2}", "1 / 0"] {
        assert!(e.first(f, &x).is_err(), "{f} should fail");
        assert_eq!(e.first_or_null(f, &x), Value::Null, "{f}");
    }
    assert_eq!(e.first_or_null(".title", &x), json!("Payments API"));
    let quick = JqEngine::with_timeout(Duration::from_millis(10));
    assert!(matches!(quick.first("last(range(1e7))", &x), Err(JqError::Limit(_))));
    assert_eq!(quick.first_or_null("last(range(1e7))", &x), Value::Null);
}

#[test]
fn compile_errors_name_the_filter() {
    let e = engine();
    let Err(JqError::Compile(msg)) = e.compile(".a | ") else { panic!("expected compile error") };
    assert!(msg.contains("`.a | `"), "{msg}");
    let Err(JqError::Compile(msg)) = e.compile("nosuchfilter(1)") else { panic!("expected compile error") };
    assert!(msg.contains("undefined filter `nosuchfilter`"), "{msg}");
    assert!(matches!(e.compile("include \"x\"; 1"), Err(JqError::Compile(_))));
    assert!(matches!(e.compile("import \"x\" as $d; $d"), Err(JqError::Compile(_))));
    assert!(matches!(e.compile(&"1+".repeat(MAX_FILTER_LEN)), Err(JqError::Limit(_))));
}

#[test]
fn non_json_results() {
    let e = engine();
    let x = json!(null);
    for f in ["{(1): 2}", "{(null): 1}", "nan", "[-infinite]", "{a: {(true): 1}}", "reduce range(600) as $i (0; [.])"] {
        assert!(matches!(e.first(f, &x), Err(JqError::NotJson(_))), "{f}: {:?}", e.first(f, &x));
    }
    // Decimal and big-integer literals become JSON numbers.
    assert_eq!(e.first("[1.0, 1e2, 12345678901234567890]", &x).unwrap(), json!([1.0, 100.0, 12345678901234567890u64]));
}

#[test]
fn tonumber_yields_one_error() {
    let e = engine();
    assert!(matches!(e.first("\"abc\" | tonumber", &json!(null)), Err(JqError::Runtime(_))));
    // Collecting used to run out of memory on jaq-json 2.0.3's endless error stream.
    assert!(matches!(e.first("[\"abc\" | tonumber]", &json!(null)), Err(JqError::Runtime(_))));
    assert_eq!(
        e.first("[.[] | tonumber?]", &json!(["1", "abc", " 2 ", "12x", "-1.5", 7])).unwrap(),
        json!([1, -1.5, 7])
    );
    assert_eq!(e.first("[\"abc\" | tonumber] | length", &json!(null)).ok(), None);
    assert_eq!(
        e.first("try (\"abc\" | tonumber) catch .", &json!(null)).unwrap(),
        json!("cannot parse \"abc\" as number")
    );
    assert_eq!(e.first(".createdAt | tonumber? // \"n/a\"", &entity()).unwrap(), json!("n/a"));
}

#[test]
fn jq_compatible_helpers() {
    let e = engine();
    let x = json!(null);
    assert_eq!(e.first("[\"a\", 1, null, true] | join(\",\")", &x).unwrap(), json!("a,1,,true"));
    assert_eq!(e.first("[] | join(\",\")", &x).unwrap(), json!(""));
    assert_eq!(e.first("[1, \"a\\\"b\", null, false] | @csv", &x).unwrap(), json!("1,\"a\"\"b\",,false"));
    assert_eq!(e.first("[\"a\\tb\", \"c\\\\d\", 1] | @tsv", &x).unwrap(), json!("a\\tb\tc\\\\d\t1"));
    assert_eq!(
        e.first("[{name: \"a\", value: 1}, {k: \"b\", v: 2}, {key: 3, value: 4}] | from_entries", &x).unwrap(),
        json!({"a": 1, "b": 2, "3": 4})
    );
    assert_eq!(e.first("{a: 1} | to_entries | from_entries", &x).unwrap(), json!({"a": 1}));
    // Effects a mapping must not have are disabled rather than fatal.
    assert!(e.first("halt", &x).is_err());
    assert!(e.first("\"bye\" | halt_error(1)", &x).is_err());
    assert!(e.first("input", &x).is_err());
    assert_eq!(e.first("1 | debug | stderr", &x).unwrap(), json!(1));
}

/// A worker process reads its request straight into jaq values (`convert::WireVal`): the same
/// values as parsing the text and converting it, for every kind of JSON value.
#[test]
fn wire_values_match_parsed_and_converted_values() {
    let texts = [
        "null",
        "true",
        "0",
        "-1",
        "9223372036854775807",
        "-9223372036854775808",
        "18446744073709551615",
        "123456789012345678901234567890",
        "1.0",
        "-0.0",
        "1.5e300",
        "2.5e-7",
        r#""plain""#,
        r#""esc\"aped\\ \u00e9 \ud83d\ude00 \n""#,
        "[]",
        "{}",
        r#"[1, [2, [3, {"a": [null, false]}]], "x"]"#,
        r#"{"b": 1, "a": {"c": [1.25, -3]}, "b": 2}"#,
    ];
    for text in texts {
        let wire: convert::WireVal = serde_json::from_str(text).unwrap();
        let parsed = convert::to_val(&serde_json::from_str::<Value>(text).unwrap()).unwrap();
        assert!(wire.0 == parsed, "{text}: {} against {}", wire.0, parsed);
        assert_eq!(convert::from_val(&wire.0).unwrap(), convert::from_val(&parsed).unwrap(), "{text}");
    }
    // Object keys keep their order (a repeated key keeps its first place and last value).
    let wire: convert::WireVal = serde_json::from_str(r#"{"z": 1, "a": 2, "z": 3}"#).unwrap();
    assert_eq!(convert::from_val(&wire.0).unwrap().to_string(), r#"{"z":3,"a":2}"#);
    // What is not JSON is refused, as the parser refuses it.
    for bad in ["nan", "[1,", r#"{"a"}"#, r#""\ud800""#] {
        assert!(serde_json::from_str::<convert::WireVal>(bad).is_err(), "{bad}");
    }
}
