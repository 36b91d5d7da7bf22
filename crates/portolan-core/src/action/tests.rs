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
        Some(json!({"type": "SEARCH", "combinator": "and", "rules": [{"property": "$title", "operator": "!=", "value": "x"}]})),
    );
    edit(&mut v, "/trigger/userInputs/required", Some(json!({"jqQuery": "[\"name\"]"})));
    edit(&mut v, "/requiredApproval", Some(json!({"type": "ALL"})));
    edit(&mut v, "/approvalNotification", Some(json!({"type": "webhook", "url": "https://h", "format": "slack"})));
    cases.push(v);
    // Every invocation type with its required fields.
    for m in [
        json!({"type": "GITHUB", "org": "o", "repo": "r", "workflow": "w.yml", "workflowInputs": {}, "reportWorkflowStatus": true}),
        json!({"type": "GITLAB", "projectName": "p", "groupName": "g", "defaultRef": "main", "pipelineVariables": {}}),
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
        Some(json!({"type": "object", "encryption": {"algorithm": "client-side", "key": "-----BEGIN PUBLIC KEY-----"}})),
    );
    edit(&mut v, "/trigger/userInputs/properties/doc", Some(json!({"type": "object", "format": "labeled-url"})));
    edit(
        &mut v,
        "/trigger/userInputs/properties/cpu",
        Some(json!({"type": "number", "minimum": 1, "maximum": 8, "default": 2, "disabled": {"jqQuery": "false"}})),
    );
    edit(&mut v, "/trigger/userInputs/properties/when", Some(json!({"type": "string", "format": "date-time"})));
    edit(&mut v, "/trigger/userInputs/properties/ok", Some(json!({"type": "boolean", "default": true, "disabled": true})));
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
    edit(&mut v, "/trigger/condition", Some(json!({"type": "SEARCH", "combinator": "and", "rules": [{"property": "$title", "operator": "~~", "value": "x"}]})));
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
