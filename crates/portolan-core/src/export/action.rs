//! Actions and automations as `port_action` resources of Port's Terraform provider.
//!
//! The mapping follows the provider's `port_action` schema (docs/resources/port_action.md and
//! `port/action/model.go` of terraform-provider-port-labs):
//!
//! - `identifier`, `title`, `icon`, `description`, `publish`, `allow_anyone_to_view_runs`;
//!   `required_approval` is a string (`"true"`, `"false"`, `"ANY"`, `"ALL"`);
//!   `approvalNotification` becomes `approval_email_notification = {}` or
//!   `approval_webhook_notification = {url, format}`.
//! - `self_service_trigger = {operation, blueprint_identifier, condition = jsonencode(…),
//!   user_properties = {string_props, number_props, boolean_props, object_props, array_props},
//!   required_jq_query, order_properties, steps}`; each input lists `required = true` when the
//!   `required` list names it, its keys in snake_case, a jq-valued key `k` as `k_jq_query`
//!   (`enum_jq_query`, `default_jq_query`, `visible_jq_query`, `pattern_jq_query`, …), an
//!   object input's `default` as `jsonencode(…)`, an array input's items as
//!   `<type>_items = {…}` holding the array's `default` (items' `dataset` as `jsonencode(…)`),
//!   a dataset rule's jq value as `value = {jq_query = …}`, and an entity input's `blueprint`
//!   as a reference to the `port_blueprint` resource when that blueprint is exported too.
//! - `automation_trigger = {<event>_event = {blueprint_identifier | action_identifier,
//!   property_identifier}, jq_condition = {expressions, combinator}}` with `<event>` the
//!   lower-cased event type (`entity_updated_event`, `timer_property_expired_event`, …).
//! - One `<kind>_method` per invocation type: `webhook_method {url, agent, synchronized, method,
//!   headers, body}` (`agent`/`synchronized` as strings, `body` as `jsonencode(…)`),
//!   `github_method {org, repo, workflow, workflow_inputs, report_workflow_status}`,
//!   `gitlab_method {project_name, group_name, default_ref, pipeline_variables}`,
//!   `azure_method {org, webhook, payload}`, `kafka_method {payload}`,
//!   `upsert_entity_method {blueprint_identifier, title, mapping {identifier, icon, teams,
//!   properties, relations}}`; payload-like objects are `jsonencode(…)`d, as the provider
//!   takes them.
//!
//! Where the reference does not give the provider's name (section `titles`, the button texts,
//! `disabled`, client-side `encryption`, GitLab's `omitPayload`/`omitUserInputs`, the
//! `INTEGRATION_ACTION` method written as `integration_method`), the wire key is written in
//! snake_case with its value as is, and object values that are payloads or not representable
//! as attributes (client-side `encryption`, `integrationActionExecutionProperties`) as
//! `jsonencode(<the original object>)`.

use serde_json::{Map, Value};

use super::{Hcl, opt_str, resource, resource_name, snake};
use crate::Blueprint;

fn s(v: &str) -> Hcl {
    Hcl::Str(v.to_string())
}

fn enc(v: &Value) -> Hcl {
    Hcl::JsonEncode(Box::new(Hcl::from_json(v)))
}

/// A payload attribute: the provider takes payloads as JSON text, so every value (a template
/// string included) is `jsonencode`d.
fn payload(v: &Value) -> Hcl {
    enc(v)
}

/// `agent`, `synchronized`, `report_workflow_status`, `required_approval` are strings in the
/// provider.
fn stringly(v: &Value) -> Hcl {
    match v {
        Value::String(t) => s(t),
        Value::Bool(b) => s(if *b { "true" } else { "false" }),
        other => s(&other.to_string()),
    }
}

fn get_str(o: &Map<String, Value>, k: &str) -> Option<String> {
    o.get(k).and_then(Value::as_str).map(str::to_string)
}

fn blueprint_ref(id: &str, blueprints: &[Blueprint]) -> Hcl {
    if blueprints.iter().any(|b| b.identifier == id) {
        Hcl::Ref(format!("port_blueprint.{}.identifier", resource_name(id)))
    } else {
        s(id)
    }
}

/// The attributes of one `port_action` resource.
pub(super) fn action_attrs(a: &Map<String, Value>, blueprints: &[Blueprint]) -> Vec<(String, Hcl)> {
    let mut out = Vec::new();
    opt_str(&mut out, "identifier", &get_str(a, "identifier"));
    for k in ["title", "icon", "description"] {
        opt_str(&mut out, k, &get_str(a, k));
    }
    if let Some(t) = a.get("trigger").and_then(Value::as_object) {
        match t.get("type").and_then(Value::as_str) {
            Some("automation") => out.push(("automation_trigger".into(), Hcl::Obj(automation(t, blueprints)))),
            _ => out.push(("self_service_trigger".into(), Hcl::Obj(self_service(t, blueprints)))),
        }
    }
    if let Some(m) = a.get("invocationMethod").and_then(Value::as_object) {
        let (name, attrs) = method(m, blueprints);
        out.push((name.into(), Hcl::Obj(attrs)));
    }
    if let Some(r) = a.get("requiredApproval") {
        let v = match r {
            Value::Object(o) => o.get("type").map(stringly).unwrap_or_else(|| s("true")),
            other => stringly(other),
        };
        out.push(("required_approval".into(), v));
    }
    if let Some(n) = a.get("approvalNotification").and_then(Value::as_object) {
        match n.get("type").and_then(Value::as_str) {
            Some("webhook") => {
                let mut w = Vec::new();
                opt_str(&mut w, "url", &get_str(n, "url"));
                opt_str(&mut w, "format", &get_str(n, "format"));
                out.push(("approval_webhook_notification".into(), Hcl::Obj(w)));
            }
            _ => out.push(("approval_email_notification".into(), Hcl::Obj(Vec::new()))),
        }
    }
    for k in ["publish", "allowAnyoneToViewRuns"] {
        if let Some(v) = a.get(k) {
            out.push((snake(k), Hcl::from_json(v)));
        }
    }
    out
}

fn self_service(t: &Map<String, Value>, blueprints: &[Blueprint]) -> Vec<(String, Hcl)> {
    let mut out = Vec::new();
    opt_str(&mut out, "operation", &get_str(t, "operation"));
    if let Some(b) = t.get("blueprintIdentifier").and_then(Value::as_str) {
        out.push(("blueprint_identifier".into(), blueprint_ref(b, blueprints)));
    }
    for k in ["actionCardButtonText", "executeActionButtonText"] {
        opt_str(&mut out, &snake(k), &get_str(t, k));
    }
    if let Some(c) = t.get("condition") {
        out.push(("condition".into(), enc(c)));
    }
    let empty = Map::new();
    let ui = t.get("userInputs").and_then(Value::as_object).unwrap_or(&empty);
    let props = ui.get("properties").and_then(Value::as_object).unwrap_or(&empty);
    let required: Vec<&str> = ui
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut groups = Vec::new();
    for ty in ["string", "number", "boolean", "object", "array"] {
        let members: Vec<(String, Hcl)> = props
            .iter()
            .filter_map(|(id, d)| {
                let d = d.as_object()?;
                (d.get("type").and_then(Value::as_str) == Some(ty))
                    .then(|| (id.clone(), Hcl::Obj(input_attrs(d, ty, required.contains(&id.as_str()), blueprints))))
            })
            .collect();
        if !members.is_empty() {
            groups.push((format!("{ty}_props"), Hcl::Obj(members)));
        }
    }
    out.push(("user_properties".into(), Hcl::Obj(groups)));
    if let Some(q) = ui.get("required").and_then(crate::action::as_jq_query) {
        out.push(("required_jq_query".into(), s(q)));
    }
    if let Some(o) = ui.get("order") {
        out.push(("order_properties".into(), Hcl::from_json(o)));
    }
    if let Some(Value::Array(steps)) = ui.get("steps") {
        let list = steps
            .iter()
            .map(|st| match st.as_object() {
                Some(o) => Hcl::Obj(o.iter().map(|(k, v)| jq_or_plain(k, v)).collect()),
                None => Hcl::from_json(st),
            })
            .collect();
        out.push(("steps".into(), Hcl::List(list)));
    }
    if let Some(Value::Object(titles)) = ui.get("titles") {
        let t = titles
            .iter()
            .map(|(id, v)| match v.as_object() {
                Some(o) => (id.clone(), Hcl::Obj(o.iter().map(|(k, v)| jq_or_plain(k, v)).collect())),
                None => (id.clone(), Hcl::from_json(v)),
            })
            .collect();
        out.push(("titles".into(), Hcl::Obj(t)));
    }
    out
}

/// `k = v`, or `k_jq_query = q` for a jq-valued key.
fn jq_or_plain(k: &str, v: &Value) -> (String, Hcl) {
    match crate::action::as_jq_query(v) {
        Some(q) => (format!("{}_jq_query", snake(k)), s(q)),
        None => (snake(k), Hcl::from_json(v)),
    }
}

fn dataset(ds: &Value) -> Hcl {
    let Some(o) = ds.as_object() else { return Hcl::from_json(ds) };
    Hcl::Obj(
        o.iter()
            .map(|(k, v)| match (k.as_str(), v) {
                ("rules", Value::Array(rules)) => (k.clone(), Hcl::List(rules.iter().map(rule).collect())),
                _ => (snake(k), Hcl::from_json(v)),
            })
            .collect(),
    )
}

fn rule(r: &Value) -> Hcl {
    let Some(o) = r.as_object() else { return Hcl::from_json(r) };
    if o.contains_key("rules") {
        return dataset(r);
    }
    Hcl::Obj(
        o.iter()
            .map(|(k, v)| match (k.as_str(), crate::action::as_jq_query(v)) {
                ("value", Some(q)) => (k.clone(), Hcl::Obj(vec![("jq_query".into(), s(q))])),
                _ => (snake(k), Hcl::from_json(v)),
            })
            .collect(),
    )
}

fn input_attrs(d: &Map<String, Value>, ty: &str, required: bool, blueprints: &[Blueprint]) -> Vec<(String, Hcl)> {
    let mut out = Vec::new();
    opt_str(&mut out, "title", &get_str(d, "title"));
    if required {
        out.push(("required".into(), Hcl::Bool(true)));
    }
    for (k, v) in d {
        match (k.as_str(), v) {
            ("type" | "title" | "items", _) => {}
            // The provider keeps an array's default on its items.
            ("default", _) if ty == "array" && crate::action::as_jq_query(v).is_none() => {}
            ("dataset", _) => out.push((k.clone(), dataset(v))),
            ("blueprint", Value::String(b)) => out.push((k.clone(), blueprint_ref(b, blueprints))),
            ("default", Value::Object(_)) if ty == "object" => out.push((k.clone(), enc(v))),
            ("encryption", Value::Object(_)) => out.push((k.clone(), enc(v))),
            _ => out.push(jq_or_plain(k, v)),
        }
    }
    if ty == "array" {
        let empty = Map::new();
        let items = d.get("items").and_then(Value::as_object).unwrap_or(&empty);
        let item_ty = items.get("type").and_then(Value::as_str).unwrap_or("string");
        let mut ia: Vec<(String, Hcl)> = items
            .iter()
            .filter(|(k, _)| k.as_str() != "type")
            .map(|(k, v)| match (k.as_str(), v) {
                ("dataset", _) => (k.clone(), enc(v)),
                ("blueprint", Value::String(b)) => (k.clone(), blueprint_ref(b, blueprints)),
                _ => jq_or_plain(k, v),
            })
            .collect();
        if let Some(def) = d.get("default").filter(|v| crate::action::as_jq_query(v).is_none()) {
            let list = match def {
                Value::Array(xs) if item_ty == "object" => Hcl::List(xs.iter().map(enc).collect()),
                other => Hcl::from_json(other),
            };
            ia.push(("default".into(), list));
        }
        out.push((format!("{item_ty}_items"), Hcl::Obj(ia)));
    }
    out
}

fn automation(t: &Map<String, Value>, blueprints: &[Blueprint]) -> Vec<(String, Hcl)> {
    let mut out = Vec::new();
    if let Some(e) = t.get("event").and_then(Value::as_object) {
        let ty = e.get("type").and_then(Value::as_str).unwrap_or_default();
        let mut ea = Vec::new();
        for (k, v) in e {
            match (k.as_str(), v) {
                ("type", _) => {}
                ("blueprintIdentifier", Value::String(b)) => {
                    ea.push(("blueprint_identifier".into(), blueprint_ref(b, blueprints)))
                }
                _ => ea.push((snake(k), Hcl::from_json(v))),
            }
        }
        out.push((format!("{}_event", ty.to_ascii_lowercase()), Hcl::Obj(ea)));
    }
    if let Some(c) = t.get("condition").and_then(Value::as_object) {
        let ca = c.iter().filter(|(k, _)| k.as_str() != "type").map(|(k, v)| (snake(k), Hcl::from_json(v))).collect();
        out.push(("jq_condition".into(), Hcl::Obj(ca)));
    }
    out
}

fn method(m: &Map<String, Value>, blueprints: &[Blueprint]) -> (&'static str, Vec<(String, Hcl)>) {
    let ty = m.get("type").and_then(Value::as_str).unwrap_or_default();
    let name = match ty {
        "WEBHOOK" => "webhook_method",
        "GITHUB" => "github_method",
        "GITLAB" => "gitlab_method",
        "AZURE_DEVOPS" => "azure_method",
        "KAFKA" => "kafka_method",
        "UPSERT_ENTITY" => "upsert_entity_method",
        _ => "integration_method",
    };
    let mut out = Vec::new();
    for (k, v) in m {
        let attr = match (k.as_str(), v) {
            ("type", _) => continue,
            ("agent" | "synchronized" | "reportWorkflowStatus", _) => stringly(v),
            ("headers", Value::Object(_)) => Hcl::from_json(v),
            (
                "body" | "payload" | "workflowInputs" | "pipelineVariables" | "integrationActionExecutionProperties",
                _,
            ) => payload(v),
            ("blueprintIdentifier", Value::String(b)) if !b.contains("{{") => blueprint_ref(b, blueprints),
            ("mapping", Value::Object(map)) => {
                if let Some(t) = map.get("title") {
                    out.push(("title".into(), Hcl::from_json(t)));
                }
                Hcl::Obj(mapping(map))
            }
            _ => Hcl::from_json(v),
        };
        out.push((snake(k), attr));
    }
    (name, out)
}

/// `upsert_entity_method.mapping`: the entity's `title` sits on the method; `team` becomes the
/// `teams` list; `properties`/`relations` are `jsonencode`d.
fn mapping(map: &Map<String, Value>) -> Vec<(String, Hcl)> {
    let mut out = Vec::new();
    for (k, v) in map {
        match (k.as_str(), v) {
            ("title", _) => {}
            ("team", Value::Array(_)) => out.push(("teams".into(), Hcl::from_json(v))),
            ("team", Value::String(t)) => out.push(("teams".into(), Hcl::List(vec![s(t)]))),
            ("properties" | "relations", _) => out.push((k.clone(), payload(v))),
            _ => out.push((snake(k), Hcl::from_json(v))),
        }
    }
    out
}

/// `port_action` resources, named after the identifiers (made unique).
pub(super) fn write_actions(actions: &[Value], blueprints: &[Blueprint], out: &mut String) {
    let mut used = std::collections::HashSet::new();
    for a in actions {
        let Some(o) = a.as_object() else { continue };
        let base = resource_name(o.get("identifier").and_then(Value::as_str).unwrap_or("action"));
        let mut name = base.clone();
        let mut n = 2;
        while !used.insert(name.clone()) {
            name = format!("{base}_{n}");
            n += 1;
        }
        resource("port_action", &name, &action_attrs(o, blueprints), out);
    }
}
