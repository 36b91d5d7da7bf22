use super::*;
use serde_json::json;

fn example() -> Value {
    json!({
      "identifier": "scaffold_service",
      "title": "Scaffold a service",
      "icon": "Microservice",
      "description": "Creates a repo from a template",
      "trigger": {
        "type": "self-service",
        "operation": "CREATE",
        "blueprintIdentifier": "service",
        "actionCardButtonText": "Create",
        "executeActionButtonText": "Go",
        "userInputs": {
          "properties": {
            "name":     {"type":"string","title":"Name","pattern":"^[a-z-]+$","maxLength":32},
            "language": {"type":"string","title":"Language","enum":["go","rust"],"default":"go"},
            "sdk":      {"type":"string","enum":{"jqQuery":"if .form.language == \"go\" then [\"1.22\"] else [\"1.80\"] end"},
                         "dependsOn":["language"]},
            "domain":   {"type":"string","format":"entity","blueprint":"domain",
                         "dataset":{"combinator":"and","rules":[{"property":"$team","operator":"containsAny",
                                    "value":{"jqQuery":"[.user.teams[].name]"}}]},
                         "sort":{"property":"$title","order":"ASC"}},
            "token":    {"type":"string","encryption":"aes256-gcm"},
            "notes":    {"type":"string","format":"multi-line","visible":{"jqQuery":".form.language == \"rust\""}}
          },
          "required": ["name","language"],
          "order": ["name","language","sdk","domain","token","notes"],
          "titles": {"advanced": {"title":"Advanced","description":"Optional settings"}}
        }
      },
      "invocationMethod": {
        "type": "WEBHOOK",
        "url": "https://backend.example.com/scaffold",
        "agent": false,
        "synchronized": false,
        "method": "POST",
        "headers": {"RUN_ID": "{{ .run.id }}"},
        "body": {"{{ spreadValue() }}": "{{ .inputs }}", "port_context": {"runId": "{{ .run.id }}",
                 "user": "{{ .trigger.by.user.email }}"}}
      },
      "requiredApproval": false,
      "approvalNotification": {"type": "email"},
      "publish": true,
      "allowAnyoneToViewRuns": true
    })
}

#[test]
fn reference_example_is_valid() {
    check_action(&example()).unwrap();
}

/// Set (`Some`) or remove (`None`) the value at a JSON pointer; the parent must exist.
fn edit(v: &mut Value, pointer: &str, new: Option<Value>) {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let p = if parent.is_empty() { &mut *v } else { v.pointer_mut(parent).unwrap_or_else(|| panic!("{parent}")) };
    match (p, new) {
        (Value::Object(o), Some(n)) => {
            o.insert(key.to_string(), n);
        }
        (Value::Object(o), None) => {
            o.remove(key);
        }
        (Value::Array(a), Some(n)) => {
            let i: usize = key.parse().unwrap();
            if i == a.len() {
                a.push(n);
            } else {
                a[i] = n;
            }
        }
        (Value::Array(a), None) => {
            a.remove(key.parse().unwrap());
        }
        _ => panic!("{pointer}: parent is not a container"),
    }
}

fn errors_of(v: &Value) -> Vec<(String, String)> {
    match check_action(v) {
        Ok(()) => Vec::new(),
        Err(e) => e.0.into_iter().map(|e| (e.path, e.message)).collect(),
    }
}

fn assert_error(v: &Value, path: &str, msg: &str, case: &str) {
    let errs = errors_of(v);
    assert!(
        errs.iter().any(|(p, m)| p == path && m.contains(msg)),
        "{case}: expected an error at {path:?} containing {msg:?}, got {errs:?}"
    );
}

fn automation() -> Value {
    json!({
        "identifier": "on_update",
        "trigger": {"type": "automation",
            "event": {"type": "ENTITY_UPDATED", "blueprintIdentifier": "service"},
            "condition": {"type": "JQ", "combinator": "and",
                "expressions": [".diff.before.properties.status == \"Active\""]}},
        "invocationMethod": {"type": "KAFKA", "payload": {"x": "{{ .event.diff }}"}},
        "publish": false
    })
}

#[test]
fn valid_variants_pass() {
    let mut cases: Vec<Value> = vec![example(), automation()];
    // Server-kept fields are accepted and ignored.
    let mut v = example();
    edit(&mut v, "/id", Some(json!("action_34aweFQtayw7SCVb")));
    edit(&mut v, "/createdAt", Some(json!("2024-01-01T00:00:00Z")));
    edit(&mut v, "/updatedBy", Some(json!("x")));
    cases.push(v);
    // A run timeout of its own, or the organization's (null).
    for t in [json!(1), json!(2_592_000), Value::Null] {
        let mut v = example();
        edit(&mut v, "/runTimeoutSeconds", Some(t));
        cases.push(v);
    }
    // Steps layout instead of order.
    let mut v = example();
    edit(&mut v, "/trigger/userInputs/order", None);
    edit(
        &mut v,
        "/trigger/userInputs/steps",
        Some(json!([{"title": "Basics", "order": ["name", "language"]},
                    {"title": "More", "order": ["sdk", "domain", "token", "notes"], "visible": {"jqQuery": "true"}}])),
    );
    cases.push(v);
    // DAY-2 with a search condition, required as jq, approval object.
    let mut v = example();
    edit(&mut v, "/trigger/operation", Some(json!("DAY-2")));
    edit(
        &mut v,
        "/trigger/condition",
        Some(
            json!({"type": "SEARCH", "combinator": "and", "rules": [{"property": "$title", "operator": "!=", "value": "x"}]}),
        ),
    );
    edit(&mut v, "/trigger/userInputs/required", Some(json!({"jqQuery": "[\"name\"]"})));
    edit(&mut v, "/requiredApproval", Some(json!({"type": "ALL"})));
    edit(&mut v, "/approvalNotification", Some(json!({"type": "webhook", "url": "https://h", "format": "slack"})));
    cases.push(v);
    // Every invocation type with its required fields.
    for m in [
        json!({"type": "GITHUB", "org": "o", "repo": "r", "workflow": "w.yml", "workflowInputs": {}, "reportWorkflowStatus": true}),
        json!({"type": "GITLAB", "projectName": "p", "groupName": "g", "defaultRef": "main", "pipelineVariables": {}, "agent": true}),
        json!({"type": "GITHUB", "org": "o", "repo": "r", "workflow": "w", "omitPayload": false, "omitUserInputs": true}),
        json!({"type": "AZURE_DEVOPS", "webhook": "hook", "org": "o", "payload": {}}),
        json!({"type": "KAFKA"}),
        json!({"type": "UPSERT_ENTITY", "blueprintIdentifier": "service",
               "mapping": {"identifier": "{{ .inputs.name }}", "properties": {"a": "{{ 1 }}"}, "team": "core"}}),
        json!({"type": "INTEGRATION_ACTION", "installationId": "gh", "integrationActionType": "dispatch_workflow",
               "integrationActionExecutionProperties": {"org": "o", "repo": "r", "workflow": "w"}}),
        json!({"type": "WEBHOOK", "url": "https://x", "agent": "{{ .inputs.agent }}", "synchronized": true, "method": "DELETE"}),
    ] {
        let mut v = example();
        edit(&mut v, "/invocationMethod", Some(m));
        cases.push(v);
    }
    // Every automation event type.
    for e in [
        json!({"type": "ENTITY_CREATED", "blueprintIdentifier": "service"}),
        json!({"type": "ENTITY_DELETED", "blueprintIdentifier": "service"}),
        json!({"type": "ANY_ENTITY_CHANGE", "blueprintIdentifier": "service"}),
        json!({"type": "TIMER_PROPERTY_EXPIRED", "blueprintIdentifier": "service", "propertyIdentifier": "ttl"}),
        json!({"type": "RUN_CREATED", "actionIdentifier": "scaffold_service"}),
        json!({"type": "RUN_UPDATED", "actionIdentifier": "scaffold_service"}),
        json!({"type": "ANY_RUN_CHANGE", "actionIdentifier": "other_automation"}),
    ] {
        let mut v = automation();
        edit(&mut v, "/trigger/event", Some(e));
        cases.push(v);
    }
    // Input shapes: arrays of entities, client-side encryption, labeled-url, number bounds.
    let mut v = example();
    edit(
        &mut v,
        "/trigger/userInputs/properties/skills",
        Some(json!({"type": "array", "items": {"type": "string", "format": "entity", "blueprint": "skill"},
                    "minItems": 1, "maxItems": 3, "default": ["rust"]})),
    );
    edit(
        &mut v,
        "/trigger/userInputs/properties/secret",
        Some(
            json!({"type": "object", "encryption": {"algorithm": "client-side", "key": "-----BEGIN PUBLIC KEY-----"}}),
        ),
    );
    edit(&mut v, "/trigger/userInputs/properties/doc", Some(json!({"type": "object", "format": "labeled-url"})));
    edit(
        &mut v,
        "/trigger/userInputs/properties/cpu",
        Some(json!({"type": "number", "minimum": 1, "maximum": 8, "default": 2, "disabled": {"jqQuery": "false"}})),
    );
    edit(&mut v, "/trigger/userInputs/properties/when", Some(json!({"type": "string", "format": "date-time"})));
    edit(
        &mut v,
        "/trigger/userInputs/properties/ok",
        Some(json!({"type": "boolean", "default": true, "disabled": true})),
    );
    cases.push(v);
    for (i, c) in cases.iter().enumerate() {
        assert_eq!(errors_of(c), Vec::<(String, String)>::new(), "case {i}: {c}");
    }
}

#[test]
fn bad_actions_name_the_path_and_rule() {
    #[rustfmt::skip]
    let table: Vec<(&str, Option<Value>, &str, &str)> = vec![
        ("/identifier", None, "identifier", "is required"),
        ("/identifier", Some(json!("a/b")), "identifier", "may only contain"),
        ("/identifier", Some(json!("..")), "identifier", "\"..\""),
        ("/identifier", Some(json!("")), "identifier", "must not be empty"),
        ("/identifier", Some(json!(7)), "identifier", "must be a string"),
        ("/unknownKey", Some(json!(1)), "unknownKey", "additionalProperties"),
        ("/title", Some(json!(1)), "title", "must be a string"),
        ("/publish", Some(json!("yes")), "publish", "must be a boolean"),
        ("/allowAnyoneToViewRuns", Some(json!(1)), "allowAnyoneToViewRuns", "must be a boolean"),
        ("/runTimeoutSeconds", Some(json!(0)), "runTimeoutSeconds", "from 1 to 2592000"),
        ("/runTimeoutSeconds", Some(json!(2_592_001)), "runTimeoutSeconds", "from 1 to 2592000"),
        ("/runTimeoutSeconds", Some(json!(1.5)), "runTimeoutSeconds", "got 1.5"),
        ("/runTimeoutSeconds", Some(json!(-3)), "runTimeoutSeconds", "whole number"),
        ("/runTimeoutSeconds", Some(json!("1h")), "runTimeoutSeconds", "of type string"),
        ("/requiredApproval", Some(json!("yes")), "requiredApproval", "must be a boolean or"),
        ("/requiredApproval", Some(json!({"type": "SOME"})), "requiredApproval.type", "ANY, ALL"),
        ("/approvalNotification", Some(json!({"type": "sms"})), "approvalNotification.type", "email, webhook"),
        ("/approvalNotification", Some(json!({"type": "webhook"})), "approvalNotification.url", "is required"),
        ("/trigger", None, "trigger", "is required"),
        ("/trigger/type", Some(json!("manual")), "trigger.type", "self-service, automation"),
        ("/trigger/operation", Some(json!("UPDATE")), "trigger.operation", "CREATE, DAY-2, DELETE"),
        ("/trigger/operation", None, "trigger.operation", "is required"),
        ("/trigger/blueprintIdentifier", Some(json!("a b")), "trigger.blueprintIdentifier", "may only contain"),
        ("/trigger/extra", Some(json!(1)), "trigger.extra", "is not a field of a self-service trigger"),
        ("/trigger/actionCardButtonText", Some(json!("")), "trigger.actionCardButtonText", "1 to 15"),
        ("/trigger/actionCardButtonText", Some(json!("a very long button text")), "trigger.actionCardButtonText", "1 to 15"),
        ("/trigger/executeActionButtonText", Some(json!(" Go")), "trigger.executeActionButtonText", "whitespace"),
        ("/trigger/executeActionButtonText", Some(json!(5)), "trigger.executeActionButtonText", "must be a string"),
        ("/trigger/condition", Some(json!({"type": "SEARCH", "combinator": "and", "rules": []})), "trigger.condition", "only allowed for DAY-2 and DELETE"),
        ("/trigger/userInputs", None, "trigger.userInputs", "is required"),
        ("/trigger/userInputs/extra", Some(json!(1)), "trigger.userInputs.extra", "is not a field of userInputs"),
        ("/trigger/userInputs/properties", None, "trigger.userInputs.properties", "is required"),
        ("/trigger/userInputs/required/1", Some(json!("nmae")), "trigger.userInputs.required[1]", "names input `nmae`, which does not exist"),
        ("/trigger/userInputs/required", Some(json!("name")), "trigger.userInputs.required", "array of input ids"),
        ("/trigger/userInputs/required", Some(json!({"jqQuery": 3})), "trigger.userInputs.required.jqQuery", "must be a string"),
        ("/trigger/userInputs/order/0", Some(json!("nope")), "trigger.userInputs.order[0]", "names input `nope`"),
        ("/trigger/userInputs/steps", Some(json!([{"title": "A", "order": ["name"]}])), "trigger.userInputs.steps", "cannot be used together with `order`"),
        ("/trigger/userInputs/titles/advanced/title", Some(json!("")), "trigger.userInputs.titles.advanced.title", "1 to 140"),
        ("/trigger/userInputs/titles/name", Some(json!({"title": "Clash"})), "trigger.userInputs.titles.name", "a section title needs an id of its own"),
        ("/trigger/userInputs/properties/bad.id", Some(json!({"type": "string"})), "trigger.userInputs.properties.bad.id", "identifiers may only contain"),
        ("/trigger/userInputs/properties/name/type", Some(json!("text")), "trigger.userInputs.properties.name.type", "must be one of string, number"),
        ("/trigger/userInputs/properties/name/type", None, "trigger.userInputs.properties.name.type", "is required"),
        ("/trigger/userInputs/properties/name", Some(json!("string")), "trigger.userInputs.properties.name", "must be an object"),
        ("/trigger/userInputs/properties/name/format", Some(json!("phone")), "trigger.userInputs.properties.name.format", "must be one of date-time"),
        ("/trigger/userInputs/properties/domain/blueprint", None, "trigger.userInputs.properties.domain.blueprint", "is required for an input of format entity"),
        ("/trigger/userInputs/properties/n", Some(json!({"type": "number", "format": "url"})), "trigger.userInputs.properties.n.format", "needs type string"),
        ("/trigger/userInputs/properties/l", Some(json!({"type": "string", "format": "labeled-url"})), "trigger.userInputs.properties.l.format", "needs type object"),
        ("/trigger/userInputs/properties/arr", Some(json!({"type": "array", "items": {"type": "string", "format": "entity"}})), "trigger.userInputs.properties.arr.items.blueprint", "is required for an input of format entity"),
        ("/trigger/userInputs/properties/arr", Some(json!({"type": "array", "items": {"format": "url"}})), "trigger.userInputs.properties.arr.items.type", "is required"),
        ("/trigger/userInputs/properties/arr", Some(json!({"type": "array", "format": "entity", "blueprint": "x"})), "trigger.userInputs.properties.arr.format", "put the format in `items`"),
        ("/trigger/userInputs/properties/name/maxLength", Some(json!(-1)), "trigger.userInputs.properties.name.maxLength", "non-negative integer"),
        ("/trigger/userInputs/properties/name/minLength", Some(json!(40)), "trigger.userInputs.properties.name.maxLength", "must be >= minLength"),
        ("/trigger/userInputs/properties/name/minimum", Some(json!(1)), "trigger.userInputs.properties.name.minimum", "applies only to number inputs"),
        ("/trigger/userInputs/properties/name/pattern", Some(json!("([a-z")), "trigger.userInputs.properties.name.pattern", "not a valid regular expression"),
        ("/trigger/userInputs/properties/name/pattern", Some(json!(5)), "trigger.userInputs.properties.name.pattern", "must be a string"),
        ("/trigger/userInputs/properties/n", Some(json!({"type": "number", "maximum": "9"})), "trigger.userInputs.properties.n.maximum", "must be a number"),
        ("/trigger/userInputs/properties/n", Some(json!({"type": "number", "minLength": 1})), "trigger.userInputs.properties.n.minLength", "applies only to string inputs"),
        ("/trigger/userInputs/properties/n", Some(json!({"type": "boolean", "minItems": 1})), "trigger.userInputs.properties.n.minItems", "applies only to array inputs"),
        ("/trigger/userInputs/properties/a", Some(json!({"type": "array", "uniqueItems": "yes"})), "trigger.userInputs.properties.a.uniqueItems", "must be a boolean"),
        ("/trigger/userInputs/properties/language/enum", Some(json!("go")), "trigger.userInputs.properties.language.enum", "must be an array"),
        ("/trigger/userInputs/properties/language/enum", Some(json!(["go", 5])), "trigger.userInputs.properties.language.enum[1]", "must be of type string"),
        ("/trigger/userInputs/properties/language/enum", Some(json!({"jqQuery": "x", "extra": 1})), "trigger.userInputs.properties.language.enum", "no other keys"),
        ("/trigger/userInputs/properties/language/default", Some(json!("java")), "trigger.userInputs.properties.language.default", "must be one of"),
        ("/trigger/userInputs/properties/language/default", Some(json!(3)), "trigger.userInputs.properties.language.default", "must be of type string"),
        ("/trigger/userInputs/properties/name/default", Some(json!("UPPER")), "trigger.userInputs.properties.name.default", "does not match pattern"),
        ("/trigger/userInputs/properties/name/visible", Some(json!("yes")), "trigger.userInputs.properties.name.visible", "boolean or {\"jqQuery\""),
        ("/trigger/userInputs/properties/name/disabled", Some(json!({"jqQuery": false})), "trigger.userInputs.properties.name.disabled.jqQuery", "must be a string"),
        ("/trigger/userInputs/properties/sdk/dependsOn/0", Some(json!("langauge")), "trigger.userInputs.properties.sdk.dependsOn[0]", "names input `langauge`, which does not exist"),
        ("/trigger/userInputs/properties/sdk/dependsOn/0", Some(json!("sdk")), "trigger.userInputs.properties.sdk.dependsOn[0]", "itself"),
        ("/trigger/userInputs/properties/sdk/dependsOn", Some(json!("language")), "trigger.userInputs.properties.sdk.dependsOn", "array of input ids"),
        ("/trigger/userInputs/properties/token/encryption", Some(json!("aes128")), "trigger.userInputs.properties.token.encryption", "aes256-gcm"),
        ("/trigger/userInputs/properties/token/encryption", Some(json!({"algorithm": "client-side"})), "trigger.userInputs.properties.token.encryption.key", "is required"),
        ("/trigger/userInputs/properties/token/encryption", Some(json!({"algorithm": "rsa", "key": "k"})), "trigger.userInputs.properties.token.encryption.algorithm", "client-side"),
        ("/trigger/userInputs/properties/domain/dataset/combinator", Some(json!("xor")), "trigger.userInputs.properties.domain.dataset.combinator", "and, or"),
        ("/trigger/userInputs/properties/domain/dataset/rules/0/value", Some(json!({"jqQuery": 1})), "trigger.userInputs.properties.domain.dataset.rules[0].value.jqQuery", "must be a string"),
        ("/trigger/userInputs/properties/domain/dataset/rules/0/operator", None, "trigger.userInputs.properties.domain.dataset.rules[0].operator", "is required"),
        ("/trigger/userInputs/properties/domain/sort/order", Some(json!("UP")), "trigger.userInputs.properties.domain.sort.order", "ASC, DESC"),
        ("/trigger/userInputs/properties/domain/sort/property", None, "trigger.userInputs.properties.domain.sort.property", "is required"),
        ("/invocationMethod", None, "invocationMethod", "is required"),
        ("/invocationMethod/type", Some(json!("EMAIL")), "invocationMethod.type", "must be one of WEBHOOK"),
        ("/invocationMethod/url", None, "invocationMethod.url", "is required"),
        ("/invocationMethod/method", Some(json!("HEAD")), "invocationMethod.method", "POST, PUT, PATCH, DELETE, GET"),
        ("/invocationMethod/headers", Some(json!({"X": 1})), "invocationMethod.headers.X", "must be a string"),
        ("/invocationMethod/agent", Some(json!(1)), "invocationMethod.agent", "boolean or a string"),
        ("/invocationMethod/synchronized", Some(json!([])), "invocationMethod.synchronized", "boolean or a string"),
        ("/invocationMethod/body", Some(json!(5)), "invocationMethod.body", "object, an array"),
        ("/invocationMethod/org", Some(json!("o")), "invocationMethod.org", "is not a field of a WEBHOOK invocation method"),
    ];
    for (i, (pointer, new, path, msg)) in table.into_iter().enumerate() {
        let mut v = example();
        edit(&mut v, pointer, new);
        assert_error(&v, path, msg, &format!("case {i} ({pointer})"));
    }
}

#[test]
fn bad_invocations_and_automations_name_the_path_and_rule() {
    #[rustfmt::skip]
    let methods: Vec<(Value, &str, &str)> = vec![
        (json!({"type": "GITHUB", "repo": "r", "workflow": "w"}), "invocationMethod.org", "is required"),
        (json!({"type": "GITHUB", "org": "o", "repo": "r", "workflow": "w", "workflowInputs": "x"}), "invocationMethod.workflowInputs", "must be an object"),
        (json!({"type": "GITHUB", "org": "o", "repo": "r", "workflow": ""}), "invocationMethod.workflow", "must not be empty"),
        (json!({"type": "GITLAB", "projectName": "p"}), "invocationMethod.groupName", "is required"),
        (json!({"type": "GITLAB", "projectName": "p", "groupName": "g", "omitPayload": "no"}), "invocationMethod.omitPayload", "must be a boolean"),
        (json!({"type": "GITHUB", "org": "o", "repo": "r", "workflow": "w", "omitUserInputs": "no"}), "invocationMethod.omitUserInputs", "must be a boolean"),
        (json!({"type": "AZURE_DEVOPS", "org": "o"}), "invocationMethod.webhook", "is required"),
        (json!({"type": "KAFKA", "url": "x"}), "invocationMethod.url", "is not a field of a KAFKA invocation method"),
        (json!({"type": "UPSERT_ENTITY", "mapping": {}}), "invocationMethod.blueprintIdentifier", "is required"),
        (json!({"type": "UPSERT_ENTITY", "blueprintIdentifier": "s"}), "invocationMethod.mapping", "is required"),
        (json!({"type": "UPSERT_ENTITY", "blueprintIdentifier": "s", "mapping": {"props": {}}}), "invocationMethod.mapping.props", "is not a field of an entity mapping"),
        (json!({"type": "UPSERT_ENTITY", "blueprintIdentifier": "s", "mapping": {"identifier": 5}}), "invocationMethod.mapping.identifier", "must be a string"),
        (json!({"type": "INTEGRATION_ACTION", "installationId": "i", "integrationActionType": "dispatch_workflow"}), "invocationMethod.integrationActionExecutionProperties", "is required"),
        (json!("WEBHOOK"), "invocationMethod", "must be an object"),
    ];
    for (i, (m, path, msg)) in methods.into_iter().enumerate() {
        let mut v = example();
        edit(&mut v, "/invocationMethod", Some(m));
        assert_error(&v, path, msg, &format!("method case {i}"));
    }
    #[rustfmt::skip]
    let autos: Vec<(&str, Option<Value>, &str, &str)> = vec![
        ("/trigger/event", None, "trigger.event", "is required"),
        ("/trigger/event/type", Some(json!("ENTITY_TOUCHED")), "trigger.event.type", "must be one of ENTITY_CREATED"),
        ("/trigger/event/blueprintIdentifier", None, "trigger.event.blueprintIdentifier", "is required for ENTITY_UPDATED"),
        ("/trigger/event", Some(json!({"type": "TIMER_PROPERTY_EXPIRED", "blueprintIdentifier": "s"})), "trigger.event.propertyIdentifier", "is required"),
        ("/trigger/event", Some(json!({"type": "RUN_CREATED"})), "trigger.event.actionIdentifier", "is required for RUN_CREATED"),
        ("/trigger/event", Some(json!({"type": "RUN_UPDATED", "actionIdentifier": "a", "blueprintIdentifier": "s"})), "trigger.event.blueprintIdentifier", "is not a field of a RUN_UPDATED event"),
        ("/trigger/event/propertyIdentifier", Some(json!("ttl")), "trigger.event.propertyIdentifier", "is not a field of a ENTITY_UPDATED event"),
        ("/trigger/condition/type", Some(json!("SEARCH")), "trigger.condition.type", "must be \"JQ\""),
        ("/trigger/condition/expressions", None, "trigger.condition.expressions", "is required"),
        ("/trigger/condition/expressions/0", Some(json!(1)), "trigger.condition.expressions[0]", "jq expression"),
        ("/trigger/condition/combinator", Some(json!("xor")), "trigger.condition.combinator", "and, or"),
        ("/trigger/userInputs", Some(json!({"properties": {}})), "trigger.userInputs", "is not a field of an automation trigger"),
    ];
    for (i, (pointer, new, path, msg)) in autos.into_iter().enumerate() {
        let mut v = automation();
        edit(&mut v, pointer, new);
        assert_error(&v, path, msg, &format!("automation case {i} ({pointer})"));
    }
    // A DAY-2 condition is parsed as a search query: a bad rule names its path.
    let mut v = example();
    edit(&mut v, "/trigger/operation", Some(json!("DELETE")));
    edit(
        &mut v,
        "/trigger/condition",
        Some(
            json!({"type": "SEARCH", "combinator": "and", "rules": [{"property": "$title", "operator": "~~", "value": "x"}]}),
        ),
    );
    let errs = errors_of(&v);
    assert!(errs.iter().any(|(p, _)| p.starts_with("trigger.condition.rules[0]")), "{errs:?}");
    edit(&mut v, "/trigger/condition/type", Some(json!("JQ")));
    assert_error(&v, "trigger.condition.type", "SEARCH", "condition type");
    // Not an object at all.
    assert_eq!(check_action(&json!([])).unwrap_err().0[0].path, "");
}

#[test]
fn every_error_is_reported_at_once() {
    let mut v = example();
    edit(&mut v, "/identifier", Some(json!("a/b")));
    edit(&mut v, "/publish", Some(json!("x")));
    edit(&mut v, "/invocationMethod/url", None);
    edit(&mut v, "/trigger/userInputs/properties/sdk/dependsOn/0", Some(json!("langauge")));
    let paths: Vec<String> = errors_of(&v).into_iter().map(|(p, _)| p).collect();
    for p in ["identifier", "publish", "invocationMethod.url", "trigger.userInputs.properties.sdk.dependsOn[0]"] {
        assert!(paths.iter().any(|x| x == p), "{p} missing from {paths:?}");
    }
}

fn user_inputs() -> Value {
    example()["trigger"]["userInputs"].clone()
}

#[test]
fn jq_queries_finds_every_slot_and_resolve_writes_back() {
    let mut ui = user_inputs();
    edit(&mut ui, "/required", Some(json!({"jqQuery": "[\"name\"]"})));
    edit(&mut ui, "/properties/name/pattern", Some(json!({"jqQuery": "\"^[a-z]+$\""})));
    edit(&mut ui, "/properties/language/default", Some(json!({"jqQuery": "\"go\""})));
    edit(&mut ui, "/properties/a~b", Some(json!({"type": "string", "disabled": {"jqQuery": "false"}})));
    edit(
        &mut ui,
        "/properties/domain/dataset/rules/1",
        Some(
            json!({"combinator": "or", "rules": [{"property": "x", "operator": "=", "value": {"jqQuery": ".user.email"}}]}),
        ),
    );
    let slots = jq_queries(&ui);
    let got: Vec<(&str, &str)> = slots.iter().map(|s| (s.path.as_str(), s.pointer.as_str())).collect();
    assert_eq!(
        got,
        vec![
            ("properties.name.pattern", "/properties/name/pattern"),
            ("properties.language.default", "/properties/language/default"),
            ("properties.sdk.enum", "/properties/sdk/enum"),
            ("properties.domain.dataset.rules[0].value", "/properties/domain/dataset/rules/0/value"),
            ("properties.domain.dataset.rules[1].rules[0].value", "/properties/domain/dataset/rules/1/rules/0/value"),
            ("properties.notes.visible", "/properties/notes/visible"),
            ("properties.a~b.disabled", "/properties/a~0b/disabled"),
            ("required", "/required"),
        ]
    );
    assert_eq!(slots[2].query, "if .form.language == \"go\" then [\"1.22\"] else [\"1.80\"] end");
    let values: Vec<(String, Value)> =
        slots.iter().enumerate().map(|(i, s)| (s.pointer.clone(), json!(format!("v{i}")))).collect();
    let resolved = resolve(&ui, &values);
    assert!(jq_queries(&resolved).is_empty());
    assert_eq!(resolved["properties"]["sdk"]["enum"], json!("v2"));
    assert_eq!(resolved["properties"]["a~b"]["disabled"], json!("v6"));
    assert_eq!(resolved["required"], json!("v7"));
    // Everything else is untouched.
    assert_eq!(resolved["properties"]["name"]["maxLength"], json!(32));
    // A pointer that names nothing is skipped; the empty pointer replaces the whole document.
    assert_eq!(resolve(&ui, &[("/nope/x".into(), json!(1))]), ui);
    assert_eq!(resolve(&ui, &[(String::new(), json!(1))]), json!(1));
    // Objects with more keys than jqQuery, or a non-string query, are not slots.
    assert!(jq_queries(&json!({"a": {"jqQuery": "x", "b": 1}, "c": {"jqQuery": 1}})).is_empty());
}

/// The example's inputs with the jq slots resolved as the server would.
fn resolved_inputs() -> Value {
    let ui = user_inputs();
    let values: Vec<(String, Value)> = jq_queries(&ui)
        .into_iter()
        .map(|s| {
            let v = match s.path.as_str() {
                "properties.sdk.enum" => json!(["1.22"]),
                "properties.notes.visible" => json!(false),
                _ => json!(["core"]),
            };
            (s.pointer, v)
        })
        .collect();
    resolve(&ui, &values)
}

fn input_errors(ui: &Value, given: Value) -> Vec<(String, String)> {
    match check_inputs(ui, &given, "CREATE") {
        Ok(_) => Vec::new(),
        Err(e) => e.0.into_iter().map(|e| (e.path, e.message)).collect(),
    }
}

#[test]
fn check_inputs_fills_defaults_drops_hidden_and_lists_refs() {
    let ui = resolved_inputs();
    let out = check_inputs(
        &ui,
        &json!({"name": "cart", "sdk": "1.22", "domain": "payments", "token": "s3cret", "notes": "hidden"}),
        "CREATE",
    )
    .unwrap();
    assert_eq!(
        Value::Object(out.values.clone()),
        json!({"name": "cart", "language": "go", "sdk": "1.22", "domain": "payments", "token": "s3cret"})
    );
    assert_eq!(
        out.entity_refs,
        vec![EntityRef { path: "properties.domain".into(), blueprint: "domain".into(), identifier: "payments".into() }]
    );
    assert_eq!(out.encrypted, vec!["token".to_string()]);
    // An entity may be given as an object with its identifier; null counts as not given.
    let out =
        check_inputs(&ui, &json!({"name": "cart", "domain": {"identifier": "p2", "title": "P"}, "sdk": null}), "DAY-2")
            .unwrap();
    assert_eq!(out.entity_refs[0].identifier, "p2");
    assert!(!out.values.contains_key("sdk"));
    // Properties may be missing entirely when nothing is required.
    let mut free = ui.clone();
    edit(&mut free, "/required", None);
    assert!(check_inputs(&free, &Value::Null, "CREATE").is_ok());
}

#[test]
fn bad_inputs_name_the_input_and_rule() {
    let ui = resolved_inputs();
    let mut rich = ui.clone();
    for (id, def) in [
        ("when", json!({"type": "string", "format": "date-time"})),
        ("site", json!({"type": "string", "format": "url"})),
        ("mail", json!({"type": "string", "format": "email"})),
        ("ip4", json!({"type": "string", "format": "ipv4"})),
        ("ip6", json!({"type": "string", "format": "ipv6"})),
        ("conf", json!({"type": "string", "format": "yaml"})),
        ("owner", json!({"type": "string", "format": "user"})),
        ("team", json!({"type": "string", "format": "team"})),
        ("doc", json!({"type": "object", "format": "labeled-url"})),
        ("md", json!({"type": "string", "format": "markdown"})),
        ("cpu", json!({"type": "number", "minimum": 1, "maximum": 8, "exclusiveMaximum": 8})),
        ("flag", json!({"type": "boolean"})),
        ("meta", json!({"type": "object"})),
        (
            "tags",
            json!({"type": "array", "items": {"type": "string", "enum": ["a", "b"]}, "minItems": 1, "maxItems": 2, "uniqueItems": true}),
        ),
        ("nums", json!({"type": "array", "items": {"type": "number"}})),
        ("skills", json!({"type": "array", "items": {"type": "string", "format": "entity", "blueprint": "skill"}})),
        ("locked", json!({"type": "string", "default": "v1", "disabled": true})),
        ("frozen", json!({"type": "string", "disabled": true})),
        ("short", json!({"type": "string", "minLength": 3})),
        ("envs", json!({"type": "string", "pattern": ["dev", "prod"]})),
    ] {
        edit(&mut rich, &format!("/properties/{id}"), Some(def));
    }
    let base = json!({"name": "cart"});
    #[rustfmt::skip]
    let table: Vec<(Value, &str, &str)> = vec![
        (json!({"nope": 1}), "properties.nope", "is not an input of this action"),
        (json!({"name": null}), "properties.name", "is required"),
        (json!({"name": 5}), "properties.name", "must be of type string (got number)"),
        (json!({"name": "Cart"}), "properties.name", "does not match pattern \"^[a-z-]+$\""),
        (json!({"name": "a".repeat(33)}), "properties.name", "at most 32 characters (maxLength)"),
        (json!({"language": "java"}), "properties.language", "must be one of [\"go\", \"rust\"]"),
        (json!({"sdk": "1.80"}), "properties.sdk", "must be one of [\"1.22\"]"),
        (json!({"domain": 5}), "properties.domain", "must be an entity identifier"),
        (json!({"domain": {"title": "x"}}), "properties.domain.identifier", "is required"),
        (json!({"domain": ".."}), "properties.domain", "\"..\""),
        (json!({"when": "yesterday"}), "properties.when", "format date-time"),
        (json!({"site": "example.com"}), "properties.site", "format url"),
        (json!({"mail": "nobody"}), "properties.mail", "format email"),
        (json!({"ip4": "300.1.1.1"}), "properties.ip4", "format ipv4"),
        (json!({"ip6": "1.2.3.4"}), "properties.ip6", "format ipv6"),
        (json!({"conf": "a: [1, 2"}), "properties.conf", "valid YAML"),
        (json!({"owner": "ana"}), "properties.owner", "format user"),
        (json!({"team": ""}), "properties.team", "format team"),
        (json!({"team": ["core"]}), "properties.team", "must be of type string"),
        (json!({"doc": {"displayText": "x"}}), "properties.doc.url", "is required for a labeled URL"),
        (json!({"doc": {"url": "nope"}}), "properties.doc.url", "format url"),
        (json!({"doc": "https://x.y"}), "properties.doc", "must be of type object"),
        (json!({"md": 1}), "properties.md", "must be of type string"),
        (json!({"cpu": 0}), "properties.cpu", "must be >= 1 (minimum)"),
        (json!({"cpu": 9}), "properties.cpu", "must be <= 8 (maximum)"),
        (json!({"cpu": 8}), "properties.cpu", "must be < 8 (exclusiveMaximum)"),
        (json!({"cpu": "2"}), "properties.cpu", "must be of type number"),
        (json!({"flag": "true"}), "properties.flag", "must be of type boolean"),
        (json!({"meta": []}), "properties.meta", "must be of type object"),
        (json!({"tags": []}), "properties.tags", "at least 1 items (minItems)"),
        (json!({"tags": ["a", "b", "a"]}), "properties.tags", "at most 2 items (maxItems)"),
        (json!({"tags": ["a", "a"]}), "properties.tags[1]", "duplicates an earlier item"),
        (json!({"tags": ["c"]}), "properties.tags[0]", "must be one of [\"a\", \"b\"]"),
        (json!({"tags": "a"}), "properties.tags", "must be of type array"),
        (json!({"nums": [1, "2"]}), "properties.nums[1]", "must be of type number"),
        (json!({"skills": ["rust", 3]}), "properties.skills[1]", "must be an entity identifier"),
        (json!({"locked": "v2"}), "properties.locked", "is disabled; it can only hold its default \"v1\""),
        (json!({"frozen": "x"}), "properties.frozen", "is disabled and cannot be given a value"),
        (json!({"short": "ab"}), "properties.short", "at least 3 characters (minLength)"),
        (json!({"envs": "qa"}), "properties.envs", "must be one of [\"dev\", \"prod\"]"),
        (json!(["name"]), "properties", "must be an object"),
    ];
    for (i, (extra, path, msg)) in table.into_iter().enumerate() {
        let mut given = base.clone();
        match extra {
            Value::Object(o) => given.as_object_mut().unwrap().extend(o),
            other => given = other,
        }
        let errs = input_errors(&rich, given.clone());
        assert!(
            errs.iter().any(|(p, m)| p == path && m.contains(msg)),
            "case {i} {given}: expected {path:?} containing {msg:?}, got {errs:?}"
        );
    }
    // The good values of the same inputs pass, and entity arrays give one ref per item.
    let ok = check_inputs(
        &rich,
        &json!({"name": "cart", "when": "2024-01-31T12:00:00Z", "site": "https://x.y", "mail": "a@b.co",
                "ip4": "10.0.0.1", "ip6": "::1", "conf": "a: [1, 2]", "owner": "a@b.co", "team": "core",
                "doc": {"url": "https://x.y", "displayText": "X"}, "md": "# hi", "cpu": 7.5, "flag": false,
                "meta": {"a": 1}, "tags": ["a"], "nums": [1, 2.5], "skills": ["rust", {"identifier": "go"}],
                "locked": "v1", "short": "abc", "envs": "dev"}),
        "CREATE",
    )
    .unwrap();
    let refs: Vec<(&str, &str, &str)> =
        ok.entity_refs.iter().map(|r| (r.path.as_str(), r.blueprint.as_str(), r.identifier.as_str())).collect();
    assert_eq!(refs, vec![("properties.skills[0]", "skill", "rust"), ("properties.skills[1]", "skill", "go")]);
    assert_eq!(ok.values["locked"], json!("v1"));
    // Several problems are reported together.
    let errs = input_errors(&rich, json!({"name": 1, "cpu": 0, "bogus": true}));
    assert_eq!(errs.len(), 3, "{errs:?}");
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i32>().prop_map(|n| json!(n)),
            (-1e6f64..1e6).prop_map(|f| json!(f)),
            "[a-z.@:\\-]{0,6}".prop_map(Value::String),
            prop_oneof![
                Just("string"),
                Just("number"),
                Just("boolean"),
                Just("object"),
                Just("array"),
                Just("entity"),
                Just("date-time"),
                Just("yaml"),
                Just("labeled-url"),
                Just("url"),
                Just("^[a-z"),
                Just("jqQuery")
            ]
            .prop_map(|s| json!(s)),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            let keys = prop_oneof![
                Just("type".to_string()),
                Just("format".to_string()),
                Just("enum".to_string()),
                Just("default".to_string()),
                Just("items".to_string()),
                Just("pattern".to_string()),
                Just("minLength".to_string()),
                Just("maxItems".to_string()),
                Just("minimum".to_string()),
                Just("disabled".to_string()),
                Just("visible".to_string()),
                Just("blueprint".to_string()),
                Just("jqQuery".to_string()),
                Just("uniqueItems".to_string()),
                "[a-z]{1,3}",
            ];
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(keys, inner, 0..5).prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn check_inputs_never_panics(defs in prop::collection::btree_map("[a-c]", arb_json(), 0..4),
                                     required in arb_json(), given in arb_json()) {
            let ui = json!({"properties": defs, "required": required});
            let _ = check_inputs(&ui, &given, "CREATE");
            // Given values keyed by the defined ids reach the per-type checks.
            if let Value::Object(d) = &ui["properties"] {
                let keyed: Map<String, Value> = d.keys().map(|k| (k.clone(), given.clone())).collect();
                let _ = check_inputs(&ui, &Value::Object(keyed), "DAY-2");
            }
        }

        #[test]
        fn check_action_and_jq_queries_never_panic(ui in arb_json(), m in arb_json()) {
            let mut v = example();
            v["trigger"]["userInputs"] = ui.clone();
            v["invocationMethod"] = m;
            let _ = check_action(&v);
            let slots = jq_queries(&ui);
            let values: Vec<(String, Value)> = slots.iter().map(|s| (s.pointer.clone(), Value::Null)).collect();
            prop_assert!(jq_queries(&resolve(&ui, &values)).is_empty());
        }
    }
}

#[test]
fn blueprint_refs_lists_every_named_blueprint() {
    let mut v = example();
    edit(
        &mut v,
        "/trigger/userInputs/properties/skills",
        Some(json!({"type": "array", "items": {"type": "string", "format": "entity", "blueprint": "skill"}})),
    );
    edit(
        &mut v,
        "/invocationMethod",
        Some(json!({"type": "UPSERT_ENTITY", "blueprintIdentifier": "team", "mapping": {}})),
    );
    assert_eq!(
        blueprint_refs(&v),
        vec![
            ("trigger.blueprintIdentifier".to_string(), "service".to_string()),
            ("trigger.userInputs.properties.domain.blueprint".into(), "domain".into()),
            ("trigger.userInputs.properties.skills.items.blueprint".into(), "skill".into()),
            ("invocationMethod.blueprintIdentifier".into(), "team".into()),
        ]
    );
    edit(&mut v, "/invocationMethod/blueprintIdentifier", Some(json!("{{ .inputs.kind }}")));
    assert_eq!(blueprint_refs(&v).len(), 3);
    assert_eq!(
        blueprint_refs(&automation()),
        vec![("trigger.event.blueprintIdentifier".to_string(), "service".to_string())]
    );
    assert!(blueprint_refs(&json!(5)).is_empty());
}
