#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The `{{ }}` renderer (`template.rs`).
use crate::template::{TemplateError, TemplateErrorKind, render, render_strict};
use crate::*;
use serde_json::json;

fn ctx() -> Value {
    json!({
        "inputs": {"name": "cart", "language": "go", "replicas": 3, "labels": ["a", "b"]},
        "trigger": {"by": {"user": {"email": "a@b.c"}}},
        "entity": {"identifier": "svc-1", "properties": {"prop-with-dash": "d"}},
        "secrets": {"token": "s3cr3t", "my-name": "x"},
        "run": {"id": "r_1"}
    })
}

#[test]
fn typed_whole_string_and_interpolation() {
    let e = JqEngine::new();
    let t = json!({
        "url": "https://api.example.com/{{ .inputs.name }}/deploy?run={{.run.id}}",
        "count": "{{ .inputs.replicas }}",
        "padded": "  {{ .inputs.replicas }}  ",
        "labels": "{{ .inputs.labels }}",
        "inputs": "{{ .inputs }}",
        "text": "n={{ .inputs.replicas }} l={{ .inputs.labels }} m={{ .missing }}",
        "quoted": "{{ '}}' + \"{{\" }}",
        "dash": "{{ .entity.properties.'prop-with-dash' }}",
        "secret": "Bearer {{ .secrets[\"my-name\"] }}",
        "nested": [{"x": "{{ .entity.identifier }}"}, 1, true, null],
        "obj": "{{ {a: {b: .inputs.replicas}} }}",
        "plain": "no template { here }"
    });
    let out = render(&e, &e.budget_for("t"), &t, &ctx()).unwrap();
    assert_eq!(
        out,
        json!({
            "url": "https://api.example.com/cart/deploy?run=r_1",
            "count": 3,
            "padded": 3,
            "labels": ["a", "b"],
            "inputs": {"name": "cart", "language": "go", "replicas": 3, "labels": ["a", "b"]},
            "text": "n=3 l=[\"a\",\"b\"] m=null",
            "quoted": "}}{{",
            "dash": "d",
            "secret": "Bearer x",
            "nested": [{"x": "svc-1"}, 1, true, null],
            "obj": {"a": {"b": 3}},
            "plain": "no template { here }"
        })
    );
    // Non-object templates work too.
    assert_eq!(render(&e, &e.budget_for("t"), &json!("{{ .run.id }}"), &ctx()).unwrap(), json!("r_1"));
    assert_eq!(render(&e, &e.budget_for("t"), &json!(42), &ctx()).unwrap(), json!(42));
}

#[test]
fn keys_and_spread_value() {
    let e = JqEngine::new();
    let t = json!({
        "{{ .inputs.name }}": "{{ .inputs.language }}",
        "{{ .missing }}": "dropped (null key)",
        "{{ \"\" }}": "dropped (empty key)",
        "{{ spreadValue() }}": "{{ {x: 1, y: .inputs.replicas} }}",
        "static-{{ .run.id }}": 1,
        "after": true
    });
    let out = render(&e, &e.budget_for("t"), &t, &ctx()).unwrap();
    assert_eq!(out, json!({"cart": "go", "x": 1, "y": 3, "static-r_1": 1, "after": true}));
    let keys: Vec<&String> = out.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["cart", "x", "y", "static-r_1", "after"], "spread keeps its position");
    // spreadValue of null adds nothing; of a non-object is an error naming the place.
    let t = json!({"body": {"{{spreadValue()}}": "{{ .missing }}", "a": 1}});
    assert_eq!(render(&e, &e.budget_for("t"), &t, &ctx()).unwrap(), json!({"body": {"a": 1}}));
    let t = json!({"body": {"{{ spreadValue() }}": "{{ .inputs.labels }}"}});
    let err = render(&e, &e.budget_for("t"), &t, &ctx()).unwrap_err();
    assert_eq!(err.kind, TemplateErrorKind::Spread("array"));
    assert_eq!(err.path, ".body[\"{{ spreadValue() }}\"]");
}

#[test]
fn failures_are_null_or_errors_with_their_place() {
    let e = JqEngine::new();
    // Port's rule: a failing expression renders as null (typed) or "null" (text).
    let t = json!({"a": "{{ .inputs.name | tonumber }}", "b": "x{{ error(\"boom\") }}"});
    assert_eq!(render(&e, &e.budget_for("t"), &t, &ctx()).unwrap(), json!({"a": null, "b": "xnull"}));
    // Strict mode reports it, with path and expression.
    let err = render_strict(&e, &e.budget_for("t"), &json!({"body": {"list": [0, "{{ error(\"boom\") }}"]}}), &ctx())
        .unwrap_err();
    assert_eq!(err.path, ".body.list[1]");
    assert!(
        matches!(&err.kind, TemplateErrorKind::Jq { expr, error: JqError::Runtime(m) } if expr == "error(\"boom\")" && m == "boom"),
        "{err:?}"
    );
    assert!(err.to_string().contains(".body.list[1]"), "{err}");
    // Compile errors and template syntax errors are errors in both modes.
    let err = render(&e, &e.budget_for("t"), &json!({"h": {"X-Y": "{{ .a | }}"}}), &ctx()).unwrap_err();
    assert_eq!(err.path, ".h[\"X-Y\"]");
    assert!(matches!(err.kind, TemplateErrorKind::Jq { error: JqError::Compile(_), .. }), "{err:?}");
    let err: TemplateError = render(&e, &e.budget_for("t"), &json!(["{{ .a "]), &ctx()).unwrap_err();
    assert_eq!((err.path.as_str(), matches!(err.kind, TemplateErrorKind::Unterminated(_))), (".[0]", true));
    let err = render(&e, &e.budget_for("t"), &json!({"k": "{{ {{ .a }} }}"}), &ctx()).unwrap_err();
    assert!(matches!(err.kind, TemplateErrorKind::Nested(_)), "{err:?}");
    // A key that fails names the key.
    let err = render(&e, &e.budget_for("t"), &json!({"{{ .a | }}": 1}), &ctx()).unwrap_err();
    assert_eq!(err.path, ".[\"{{ .a | }}\"] (key)");
    // Limits are errors, not null.
    let quick = JqEngine::with_config(JqConfig { max_steps: 1000, ..JqConfig::default() });
    let err = render(&quick, &quick.budget_for("t"), &json!({"x": "{{ [range(1e9)] }}"}), &ctx()).unwrap_err();
    assert!(matches!(err.kind, TemplateErrorKind::Jq { error: JqError::Limit(_), .. }), "{err:?}");
    // env stays blocked inside templates.
    assert_eq!(render(&e, &e.budget_for("t"), &json!("{{ env.PATH }}"), &ctx()).unwrap(), json!(null));
}

/// A template's expressions spend the budget they are given (one deadline for the whole
/// template, the caller's tenant): once it is spent, the next expression is refused at once
/// and named. Before, every expression took a fresh budget of the engine's whole timeout for
/// no tenant, so a template of many slow expressions ran for their sum, on a shared slot.
#[test]
fn templates_spend_the_callers_budget() {
    let e = JqEngine::new();
    let spent = crate::JqBudget::new("org_a", std::time::Duration::ZERO);
    let err = render(&e, &spent, &json!({"a": "x", "b": "{{ .run.id }}"}), &ctx()).unwrap_err();
    assert_eq!(err.path, ".b");
    assert!(
        matches!(&err.kind, TemplateErrorKind::Jq { error: JqError::Limit(m), .. } if m.contains("budget")),
        "{err:?}"
    );
    // Literal parts need no budget.
    assert_eq!(render(&e, &spent, &json!({"a": "x"}), &ctx()).unwrap(), json!({"a": "x"}));
}
