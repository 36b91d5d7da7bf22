//! Tests of the action form.

use super::*;
use crate::web::form::parse_form;

fn defs() -> Map<String, Value> {
    json!({
        "name": {"type": "string"},
        "name2": {"type": "string", "format": "multi-line"},
        "cpu": {"type": "number"},
        "on": {"type": "boolean"},
        "lang": {"type": "string", "enum": ["go", "rust"]},
        "size": {"type": "number", "enum": [1, 2]},
        "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}},
        "deps": {"type": "array", "items": {"type": "string", "format": "entity", "blueprint": "service"}},
        "dom": {"type": "string", "format": "entity", "blueprint": "domain"},
        "cfg": {"type": "object"},
        "when": {"type": "string", "format": "date-time"},
        "notes": {"type": "string", "format": "markdown"},
        "secret": {"type": "string", "encryption": "aes256-gcm"},
        "who": {"type": "string", "format": "user"},
    })
    .as_object()
    .unwrap()
    .clone()
}

#[test]
fn every_type_and_format_has_its_control() {
    let d = defs();
    let c = |id: &str| control(d[id].as_object().unwrap());
    assert_eq!(
        ["name", "cpu", "on", "lang", "size", "tags", "deps", "dom", "cfg", "when", "notes", "secret", "who"].map(c),
        [
            "text",
            "number",
            "checkbox",
            "select",
            "select",
            "multiselect",
            "entities",
            "entity",
            "json",
            "datetime",
            "textarea",
            "password",
            "text"
        ]
    );
}

#[test]
fn a_posted_form_becomes_typed_values() {
    let f = Form(parse_form(
        "p.name=x&p.cpu=2.5&m.on=1&p.lang=%22rust%22&p.size=2&m.tags=1&p.tags=%22a%22&p.tags=%22b%22&m.deps=1&p.deps=cart\
         &p.deps=auth&p.dom=pay&p.cfg=%7B%22a%22%3A1%7D&p.when=2024-05-01T10%3A30&p.notes=&p.who=a%40b.c&p.name2=a%0D%0Ab",
    ));
    let p = read_form(&defs(), &f);
    assert!(p.errors.is_empty(), "{:?}", p.errors);
    assert_eq!(
        Value::Object(p.values),
        json!({"name": "x", "cpu": 2.5, "on": false, "lang": "rust", "size": 2, "tags": ["a", "b"],
               "deps": ["cart", "auth"], "dom": "pay", "cfg": {"a": 1}, "when": "2024-05-01T10:30:00.000Z",
               "who": "a@b.c", "name2": "a\nb"})
    );
    assert!(p.present.contains("notes") && !p.present.contains("secret"));
}

#[test]
fn unreadable_values_are_errors_at_their_input() {
    let p = read_form(&defs(), &Form(parse_form("p.cpu=lots&p.cfg=%7Bnope")));
    assert!(p.errors["cpu"][0].contains("not a number"), "{:?}", p.errors);
    assert!(p.errors["cfg"][0].contains("not valid JSON"), "{:?}", p.errors);
    assert!(p.values.is_empty());
}

#[test]
fn layout_follows_steps_order_and_titles() {
    let ui = json!({"properties": {"a": {}, "b": {}, "c": {}, "d": {}},
        "titles": {"adv": {"title": "Advanced", "description": "More"}},
        "order": ["b", "adv", "a"]});
    let l = layout(&ui);
    assert_eq!(l.len(), 3, "{l:?}");
    assert_eq!(l[0].ids, ["b"]);
    assert_eq!(
        (l[1].heading.as_deref(), l[1].description.as_deref(), &l[1].ids),
        (Some("Advanced"), Some("More"), &vec!["a".to_string()])
    );
    assert_eq!(l[2].ids, ["c", "d"]);
    let steps = json!({"properties": {"a": {}, "b": {}},
        "steps": [{"title": "One", "order": ["a"]}, {"title": "Hidden", "order": ["b"], "visible": false}]});
    let l = layout(&steps);
    assert_eq!(l.len(), 1, "{l:?}");
    assert_eq!((l[0].heading.as_deref(), &l[0].ids), (Some("One"), &vec!["a".to_string()]));
}

#[test]
fn only_inputs_the_jq_reads_re_render_the_form() {
    let ui = json!({"properties": {
        "a": {"type": "string"}, "b": {"type": "string", "visible": {"jqQuery": ".form.a == \"x\" and .form[\"c\"]"}},
        "c": {"type": "string"}, "d": {"type": "string", "dependsOn": ["e"]}, "e": {"type": "string"},
        "f": {"type": "string", "default": {"jqQuery": ".formal // .entity.title"}}}});
    let refs = form_refs(&ui).unwrap();
    let mut refs: Vec<&str> = refs.iter().map(String::as_str).collect();
    refs.sort();
    assert_eq!(refs, ["a", "c", "e"]);
    let all = json!({"properties": {"a": {"type": "string", "enum": {"jqQuery": ".form | keys"}}}});
    assert_eq!(form_refs(&all), None);
}

#[test]
fn api_paths_name_their_input() {
    assert_eq!(input_of("properties.cpu"), Some(("cpu".into(), String::new())));
    assert_eq!(input_of("properties.tags[1]"), Some(("tags".into(), "[1]".into())));
    assert_eq!(input_of("properties.link.url"), Some(("link".into(), "url".into())));
    assert_eq!(input_of("entity"), None);
}

#[test]
fn datetime_inputs_are_utc_minutes() {
    assert_eq!(datetime_from_input("2024-05-01T10:30"), "2024-05-01T10:30:00.000Z");
    assert_eq!(datetime_to_input("2024-05-01T12:30:00+02:00"), "2024-05-01T10:30");
}
