//! Self-service actions and automations (docs/reference/port-api.md §5.1–5.4): checking an
//! action object as `POST/PUT /v1/actions` receive it, locating the jq-valued keys of its
//! user inputs, and checking the inputs a run is given. No IO and no jq engine: jq-valued keys
//! arrive here already evaluated by the caller (see [`jq_queries`] and [`resolve`]).
//!
//! Automations (`trigger.type: "automation"`) are checked and stored like actions; running them
//! is a later issue.

mod inputs;
mod jq;
#[cfg(test)]
mod tests;

use std::sync::LazyLock;

use serde_json::{Map, Value};

use crate::error::{FieldErrors, join_path};

pub use inputs::{CheckedInputs, EntityRef, INPUT_FORMATS, INPUT_TYPES, check_inputs, check_string_format};
pub use jq::{JqSlot, as_jq_query, jq_queries, resolve};

/// Top-level keys a client may set (§5.1, `additionalProperties: false`).
pub const ACTION_KEYS: &[&str] = &[
    "identifier",
    "title",
    "icon",
    "description",
    "trigger",
    "invocationMethod",
    "requiredApproval",
    "approvalNotification",
    "publish",
    "allowAnyoneToViewRuns",
    // Portolan: seconds after which a run still IN_PROGRESS ends FAILURE (null: the organization's).
    "runTimeoutSeconds",
];

/// A run's timeout when neither its action (`runTimeoutSeconds`) nor the organization
/// (`settings.runTimeoutSeconds`) sets one: a day, so no run stays IN_PROGRESS for ever.
pub const DEFAULT_RUN_TIMEOUT_SECS: u64 = 24 * 3600;

/// The longest run timeout (30 days).
pub const MAX_RUN_TIMEOUT_SECS: u64 = 30 * 24 * 3600;

/// Check a `runTimeoutSeconds` value (of an action, or of the organization's settings): null,
/// or a whole number of seconds from 1 to [`MAX_RUN_TIMEOUT_SECS`].
pub fn check_run_timeout(errs: &mut FieldErrors, path: &str, v: &Value) {
    match v {
        Value::Null => {}
        Value::Number(n) => match n.as_u64() {
            Some(s) if (1..=MAX_RUN_TIMEOUT_SECS).contains(&s) => {}
            _ => errs.push(
                path,
                format!(
                    "must be a whole number of seconds from 1 to {MAX_RUN_TIMEOUT_SECS} (30 days), or null; got {n}"
                ),
            ),
        },
        other => errs.push(
            path,
            format!(
                "must be a whole number of seconds (or null); got a value of type {}",
                crate::entity::type_name(other)
            ),
        ),
    }
}

/// The run timeout `runTimeoutSeconds` sets (`None`: not set, null or invalid).
pub fn run_timeout_of(v: Option<&Value>) -> Option<u64> {
    v.and_then(Value::as_u64).filter(|s| (1..=MAX_RUN_TIMEOUT_SECS).contains(s))
}

/// Keys the server keeps; accepted in a body (a GET result sent back) and ignored.
pub const SERVER_KEYS: &[&str] = &["id", "createdAt", "createdBy", "updatedAt", "updatedBy"];

/// `trigger.operation` of a self-service action.
pub const OPERATIONS: &[&str] = &["CREATE", "DAY-2", "DELETE"];

/// Automation event types that concern entities (they name a `blueprintIdentifier`).
pub const ENTITY_EVENTS: &[&str] =
    &["ENTITY_CREATED", "ENTITY_UPDATED", "ENTITY_DELETED", "ANY_ENTITY_CHANGE", "TIMER_PROPERTY_EXPIRED"];

/// Automation event types that concern runs (they name an `actionIdentifier`).
pub const RUN_EVENTS: &[&str] = &["RUN_CREATED", "RUN_UPDATED", "ANY_RUN_CHANGE"];

/// `invocationMethod.type` values (§5.4).
pub const INVOCATION_TYPES: &[&str] =
    &["WEBHOOK", "GITHUB", "GITLAB", "AZURE_DEVOPS", "KAFKA", "UPSERT_ENTITY", "INTEGRATION_ACTION"];

/// Webhook HTTP methods.
pub const WEBHOOK_METHODS: &[&str] = &["POST", "PUT", "PATCH", "DELETE", "GET"];

/// Longest button text (`actionCardButtonText`, `executeActionButtonText`).
pub const MAX_BUTTON_TEXT: usize = 15;

static ACTION_ID: LazyLock<regex::Regex> = LazyLock::new(|| {
    #[allow(clippy::unwrap_used)] // a constant pattern
    regex::Regex::new(r"^[\p{L}0-9@_.+:=-]+$").unwrap()
});

/// Check an action identifier: `^(?!\.{1,2}$)[\p{L}0-9@_.+:=-]+$` (no `/`), at most 100
/// characters (runs and automations are keyed by it).
pub fn check_action_id(errs: &mut FieldErrors, path: &str, id: &str) {
    if id.is_empty() {
        errs.push(path, "must not be empty");
    } else if id == "." || id == ".." {
        errs.push(path, "must not be \".\" or \"..\"");
    } else if id.chars().count() > crate::ident::MAX_IDENT {
        errs.push(path, format!("must be at most {} characters", crate::ident::MAX_IDENT));
    } else if let Some(bad) = id.chars().find(|c| !ACTION_ID.is_match(c.encode_utf8(&mut [0; 4]))) {
        errs.push(path, format!("contains {bad:?}; an action identifier may only contain letters, digits and @_.+:=-"));
    }
}

/// Check an action or automation object as `POST /v1/actions` (and `PUT /v1/actions/{id}`)
/// receive it. Every broken rule is reported, each at its path: unknown top-level keys, the
/// identifier, the trigger (self-service: operation, blueprint, button texts, condition, user
/// inputs; automation: event and JQ condition), the invocation method per type, approval and
/// the boolean flags.
pub fn check_action(body: &Value) -> Result<(), FieldErrors> {
    let mut errs = FieldErrors::default();
    let Some(o) = body.as_object() else {
        errs.push("", "must be an object (an action)");
        return Err(errs);
    };
    for k in o.keys() {
        if !ACTION_KEYS.contains(&k.as_str()) && !SERVER_KEYS.contains(&k.as_str()) {
            errs.push(k.as_str(), "is not a field of an action (additionalProperties: false)");
        }
    }
    match o.get("identifier") {
        Some(Value::String(id)) => check_action_id(&mut errs, "identifier", id),
        Some(_) => errs.push("identifier", "must be a string"),
        None => errs.push("identifier", "is required"),
    }
    for k in ["title", "icon", "description"] {
        if let Some(v) = o.get(k)
            && !v.is_string()
            && !v.is_null()
        {
            errs.push(k, "must be a string");
        }
    }
    for k in ["publish", "allowAnyoneToViewRuns"] {
        if let Some(v) = o.get(k)
            && !v.is_boolean()
        {
            errs.push(k, "must be a boolean");
        }
    }
    match o.get("trigger") {
        Some(t) => check_trigger(&mut errs, t),
        None => errs.push("trigger", "is required"),
    }
    match o.get("invocationMethod") {
        Some(m) => check_invocation(&mut errs, "invocationMethod", m),
        None => errs.push("invocationMethod", "is required"),
    }
    if let Some(a) = o.get("requiredApproval") {
        check_approval(&mut errs, a);
    }
    if let Some(n) = o.get("approvalNotification") {
        check_approval_notification(&mut errs, n);
    }
    if let Some(t) = o.get("runTimeoutSeconds") {
        check_run_timeout(&mut errs, "runTimeoutSeconds", t);
    }
    errs.into_result()
}

/// Every blueprint an action names, as `(path, blueprint identifier)`, for the caller to check
/// that each exists: `trigger.blueprintIdentifier`, `trigger.event.blueprintIdentifier`,
/// `invocationMethod.blueprintIdentifier` (unless it is a `{{ }}` template), and the
/// `blueprint` of entity-format inputs (`trigger.userInputs.properties.<id>.blueprint`,
/// `….items.blueprint`). Malformed parts are skipped ([`check_action`] reports them).
pub fn blueprint_refs(action: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut add = |path: String, v: Option<&Value>| {
        if let Some(Value::String(b)) = v
            && !b.contains("{{")
        {
            out.push((path, b.clone()));
        }
    };
    let trigger = action.get("trigger");
    add("trigger.blueprintIdentifier".into(), trigger.and_then(|t| t.get("blueprintIdentifier")));
    add(
        "trigger.event.blueprintIdentifier".into(),
        trigger.and_then(|t| t.get("event")).and_then(|e| e.get("blueprintIdentifier")),
    );
    if let Some(Value::Object(props)) = trigger.and_then(|t| t.get("userInputs")).and_then(|u| u.get("properties")) {
        for (id, d) in props {
            let base = format!("trigger.userInputs.properties.{id}");
            add(format!("{base}.blueprint"), d.get("blueprint"));
            add(format!("{base}.items.blueprint"), d.get("items").and_then(|i| i.get("blueprint")));
        }
    }
    add(
        "invocationMethod.blueprintIdentifier".into(),
        action.get("invocationMethod").and_then(|m| m.get("blueprintIdentifier")),
    );
    out
}

fn unknown_keys(errs: &mut FieldErrors, path: &str, o: &Map<String, Value>, allowed: &[&str], what: &str) {
    for k in o.keys() {
        if !allowed.contains(&k.as_str()) {
            errs.push(join_path(path, k), format!("is not a field of {what} ({})", allowed.join(", ")));
        }
    }
}

/// A required (or optional) string field.
fn string_field(errs: &mut FieldErrors, path: &str, o: &Map<String, Value>, key: &str, required: bool) {
    match o.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => {}
        Some(Value::String(_)) => errs.push(join_path(path, key), "must not be empty"),
        Some(_) => errs.push(join_path(path, key), "must be a string"),
        None if required => errs.push(join_path(path, key), "is required"),
        None => {}
    }
}

/// A boolean or a jq/template string (`agent`, `synchronized`, `reportWorkflowStatus`).
fn bool_or_string(errs: &mut FieldErrors, path: &str, o: &Map<String, Value>, key: &str) {
    if let Some(v) = o.get(key)
        && !v.is_boolean()
        && !v.is_string()
    {
        errs.push(join_path(path, key), "must be a boolean or a string (a jq expression)");
    }
}

fn bool_field(errs: &mut FieldErrors, path: &str, o: &Map<String, Value>, key: &str) {
    if o.get(key).is_some_and(|v| !v.is_boolean()) {
        errs.push(join_path(path, key), "must be a boolean");
    }
}

fn object_field(errs: &mut FieldErrors, path: &str, o: &Map<String, Value>, key: &str, required: bool) {
    match o.get(key) {
        Some(Value::Object(_)) => {}
        Some(_) => errs.push(join_path(path, key), "must be an object"),
        None if required => errs.push(join_path(path, key), "is required"),
        None => {}
    }
}

fn check_trigger(errs: &mut FieldErrors, t: &Value) {
    let path = "trigger";
    let Some(o) = t.as_object() else {
        errs.push(path, "must be an object with a `type` (self-service or automation)");
        return;
    };
    match o.get("type").and_then(Value::as_str) {
        Some("self-service") => check_self_service(errs, path, o),
        Some("automation") => check_automation(errs, path, o),
        _ => errs.push(join_path(path, "type"), "must be one of self-service, automation"),
    }
}

fn check_self_service(errs: &mut FieldErrors, path: &str, o: &Map<String, Value>) {
    unknown_keys(
        errs,
        path,
        o,
        &[
            "type",
            "operation",
            "blueprintIdentifier",
            "userInputs",
            "actionCardButtonText",
            "executeActionButtonText",
            "condition",
        ],
        "a self-service trigger",
    );
    let operation = o.get("operation").and_then(Value::as_str).filter(|op| OPERATIONS.contains(op));
    if operation.is_none() {
        let p = join_path(path, "operation");
        if o.contains_key("operation") {
            errs.push(p, format!("must be one of {}", OPERATIONS.join(", ")));
        } else {
            errs.push(p, "is required");
        }
    }
    match o.get("blueprintIdentifier") {
        None | Some(Value::Null) => {}
        Some(Value::String(b)) => {
            if let Err(e) = crate::ident::check_blueprint_id(&join_path(path, "blueprintIdentifier"), b) {
                errs.0.push(e);
            }
        }
        Some(_) => errs.push(join_path(path, "blueprintIdentifier"), "must be a string (a blueprint identifier)"),
    }
    for k in ["actionCardButtonText", "executeActionButtonText"] {
        let p = join_path(path, k);
        match o.get(k) {
            None => {}
            Some(Value::String(s)) => {
                let n = s.chars().count();
                if !(1..=MAX_BUTTON_TEXT).contains(&n) {
                    errs.push(p, format!("must be 1 to {MAX_BUTTON_TEXT} characters long (is {n})"));
                } else if s.trim() != s {
                    errs.push(p, "must not begin or end with whitespace");
                }
            }
            Some(_) => errs.push(p, "must be a string"),
        }
    }
    if let Some(c) = o.get("condition") {
        let p = join_path(path, "condition");
        if operation == Some("CREATE") {
            errs.push(p, "is only allowed for DAY-2 and DELETE actions (it selects the entities offered the action)");
        } else {
            check_search_condition(errs, &p, c);
        }
    }
    match o.get("userInputs") {
        Some(ui) => inputs::check_user_inputs(errs, &join_path(path, "userInputs"), ui),
        None => errs.push(join_path(path, "userInputs"), "is required"),
    }
}

fn check_search_condition(errs: &mut FieldErrors, path: &str, c: &Value) {
    let Some(o) = c.as_object() else {
        errs.push(path, "must be an object {type: \"SEARCH\", combinator, rules}");
        return;
    };
    if o.get("type").and_then(Value::as_str) != Some("SEARCH") {
        errs.push(join_path(path, "type"), "must be \"SEARCH\"");
    }
    let mut query = o.clone();
    query.remove("type");
    if let Err(e) = crate::search::parse_query(&Value::Object(query)) {
        errs.0.push(e.under(path));
    }
}

fn check_automation(errs: &mut FieldErrors, path: &str, o: &Map<String, Value>) {
    unknown_keys(errs, path, o, &["type", "event", "condition"], "an automation trigger");
    let ep = join_path(path, "event");
    match o.get("event") {
        None => errs.push(ep, "is required"),
        Some(Value::Object(e)) => {
            let ty = e.get("type").and_then(Value::as_str);
            match ty {
                Some(t) if ENTITY_EVENTS.contains(&t) => {
                    let mut allowed = vec!["type", "blueprintIdentifier"];
                    match e.get("blueprintIdentifier") {
                        Some(Value::String(b)) => {
                            if let Err(x) = crate::ident::check_blueprint_id(&join_path(&ep, "blueprintIdentifier"), b)
                            {
                                errs.0.push(x);
                            }
                        }
                        Some(_) => errs.push(join_path(&ep, "blueprintIdentifier"), "must be a string"),
                        None => errs.push(join_path(&ep, "blueprintIdentifier"), format!("is required for {t}")),
                    }
                    if t == "TIMER_PROPERTY_EXPIRED" {
                        allowed.push("propertyIdentifier");
                        match e.get("propertyIdentifier") {
                            Some(Value::String(p)) => {
                                if let Err(x) =
                                    crate::ident::check_property_id(&join_path(&ep, "propertyIdentifier"), p)
                                {
                                    errs.0.push(x);
                                }
                            }
                            Some(_) => errs.push(join_path(&ep, "propertyIdentifier"), "must be a string"),
                            None => errs.push(join_path(&ep, "propertyIdentifier"), "is required for a timer"),
                        }
                    }
                    unknown_keys(errs, &ep, e, &allowed, &format!("a {t} event"));
                }
                Some(t) if RUN_EVENTS.contains(&t) => {
                    match e.get("actionIdentifier") {
                        Some(Value::String(a)) => check_action_id(errs, &join_path(&ep, "actionIdentifier"), a),
                        Some(_) => errs.push(join_path(&ep, "actionIdentifier"), "must be a string"),
                        None => errs.push(join_path(&ep, "actionIdentifier"), format!("is required for {t}")),
                    }
                    unknown_keys(errs, &ep, e, &["type", "actionIdentifier"], &format!("a {t} event"));
                }
                _ => errs.push(
                    join_path(&ep, "type"),
                    format!("must be one of {}, {}", ENTITY_EVENTS.join(", "), RUN_EVENTS.join(", ")),
                ),
            }
        }
        Some(_) => errs.push(ep, "must be an object {type, blueprintIdentifier | actionIdentifier}"),
    }
    if let Some(c) = o.get("condition") {
        let cp = join_path(path, "condition");
        let Some(c) = c.as_object() else {
            errs.push(cp, "must be an object {type: \"JQ\", expressions, combinator}");
            return;
        };
        unknown_keys(errs, &cp, c, &["type", "expressions", "combinator"], "a JQ condition");
        if c.get("type").and_then(Value::as_str) != Some("JQ") {
            errs.push(join_path(&cp, "type"), "must be \"JQ\"");
        }
        match c.get("expressions") {
            Some(Value::Array(xs)) => {
                for (i, x) in xs.iter().enumerate() {
                    if x.as_str().is_none_or(|s| s.trim().is_empty()) {
                        errs.push(
                            format!("{}[{i}]", join_path(&cp, "expressions")),
                            "must be a non-empty string (a jq expression)",
                        );
                    }
                }
            }
            Some(_) => errs.push(join_path(&cp, "expressions"), "must be an array of jq expressions"),
            None => errs.push(join_path(&cp, "expressions"), "is required"),
        }
        if let Some(comb) = c.get("combinator")
            && !matches!(comb.as_str(), Some("and" | "or"))
        {
            errs.push(join_path(&cp, "combinator"), "must be one of and, or");
        }
    }
}

fn check_invocation(errs: &mut FieldErrors, path: &str, m: &Value) {
    let Some(o) = m.as_object() else {
        errs.push(path, format!("must be an object with a `type` ({})", INVOCATION_TYPES.join(", ")));
        return;
    };
    let Some(ty) = o.get("type").and_then(Value::as_str).filter(|t| INVOCATION_TYPES.contains(t)) else {
        errs.push(join_path(path, "type"), format!("must be one of {}", INVOCATION_TYPES.join(", ")));
        return;
    };
    let what = format!("a {ty} invocation method");
    match ty {
        "WEBHOOK" => {
            unknown_keys(errs, path, o, &["type", "url", "agent", "synchronized", "method", "headers", "body"], &what);
            string_field(errs, path, o, "url", true);
            bool_or_string(errs, path, o, "agent");
            bool_or_string(errs, path, o, "synchronized");
            if let Some(method) = o.get("method")
                && !method.as_str().is_some_and(|s| WEBHOOK_METHODS.contains(&s))
            {
                errs.push(join_path(path, "method"), format!("must be one of {}", WEBHOOK_METHODS.join(", ")));
            }
            match o.get("headers") {
                None => {}
                Some(Value::Object(h)) => {
                    for (k, v) in h {
                        if !v.is_string() {
                            errs.push(join_path(&join_path(path, "headers"), k), "must be a string (a header value)");
                        }
                    }
                }
                Some(_) => errs.push(join_path(path, "headers"), "must be an object of header names to strings"),
            }
            if let Some(b) = o.get("body")
                && !(b.is_object() || b.is_array() || b.is_string())
            {
                errs.push(join_path(path, "body"), "must be an object, an array or a template string");
            }
        }
        "GITHUB" => {
            unknown_keys(
                errs,
                path,
                o,
                &[
                    "type",
                    "org",
                    "repo",
                    "workflow",
                    "workflowInputs",
                    "reportWorkflowStatus",
                    // The Terraform provider sends these for GitHub too.
                    "omitPayload",
                    "omitUserInputs",
                ],
                &what,
            );
            for k in ["org", "repo", "workflow"] {
                string_field(errs, path, o, k, true);
            }
            object_field(errs, path, o, "workflowInputs", false);
            bool_or_string(errs, path, o, "reportWorkflowStatus");
            bool_field(errs, path, o, "omitPayload");
            bool_field(errs, path, o, "omitUserInputs");
        }
        "GITLAB" => {
            unknown_keys(
                errs,
                path,
                o,
                &[
                    "type",
                    "projectName",
                    "groupName",
                    "defaultRef",
                    "pipelineVariables",
                    "omitPayload",
                    "omitUserInputs",
                    // GitLab pipelines are triggered through the agent; the provider sends it.
                    "agent",
                ],
                &what,
            );
            string_field(errs, path, o, "projectName", true);
            string_field(errs, path, o, "groupName", true);
            string_field(errs, path, o, "defaultRef", false);
            object_field(errs, path, o, "pipelineVariables", false);
            bool_field(errs, path, o, "omitPayload");
            bool_field(errs, path, o, "omitUserInputs");
            bool_or_string(errs, path, o, "agent");
        }
        "AZURE_DEVOPS" => {
            unknown_keys(errs, path, o, &["type", "webhook", "org", "payload"], &what);
            string_field(errs, path, o, "webhook", true);
            string_field(errs, path, o, "org", true);
        }
        "KAFKA" => unknown_keys(errs, path, o, &["type", "payload"], &what),
        "UPSERT_ENTITY" => {
            unknown_keys(errs, path, o, &["type", "blueprintIdentifier", "mapping"], &what);
            match o.get("blueprintIdentifier") {
                Some(Value::String(b)) => {
                    // The blueprint may be a template (`{{ .inputs.kind }}`); check plain ones.
                    if !b.contains("{{")
                        && let Err(e) = crate::ident::check_blueprint_id(&join_path(path, "blueprintIdentifier"), b)
                    {
                        errs.0.push(e);
                    }
                }
                Some(_) => errs.push(join_path(path, "blueprintIdentifier"), "must be a string"),
                None => errs.push(join_path(path, "blueprintIdentifier"), "is required"),
            }
            let mp = join_path(path, "mapping");
            match o.get("mapping") {
                Some(Value::Object(map)) => {
                    unknown_keys(
                        errs,
                        &mp,
                        map,
                        &["identifier", "title", "icon", "team", "properties", "relations"],
                        "an entity mapping",
                    );
                    for k in ["identifier", "title", "icon"] {
                        if map.get(k).is_some_and(|v| !v.is_string()) {
                            errs.push(join_path(&mp, k), "must be a string (a template)");
                        }
                    }
                    for k in ["properties", "relations"] {
                        if map.get(k).is_some_and(|v| !v.is_object() && !v.is_string()) {
                            errs.push(join_path(&mp, k), "must be an object or a template string");
                        }
                    }
                }
                Some(_) => errs.push(mp, "must be an object {identifier, title, icon, team, properties, relations}"),
                None => errs.push(mp, "is required"),
            }
        }
        _ => {
            // INTEGRATION_ACTION
            unknown_keys(
                errs,
                path,
                o,
                &["type", "installationId", "integrationActionType", "integrationActionExecutionProperties"],
                &what,
            );
            string_field(errs, path, o, "installationId", true);
            string_field(errs, path, o, "integrationActionType", true);
            object_field(errs, path, o, "integrationActionExecutionProperties", true);
        }
    }
}

fn check_approval(errs: &mut FieldErrors, a: &Value) {
    match a {
        Value::Bool(_) => {}
        Value::Object(o) => {
            unknown_keys(errs, "requiredApproval", o, &["type"], "requiredApproval");
            if !matches!(o.get("type").and_then(Value::as_str), Some("ANY" | "ALL")) {
                errs.push("requiredApproval.type", "must be one of ANY, ALL");
            }
        }
        _ => errs.push("requiredApproval", "must be a boolean or {\"type\": \"ANY\" | \"ALL\"}"),
    }
}

fn check_approval_notification(errs: &mut FieldErrors, n: &Value) {
    let path = "approvalNotification";
    let Some(o) = n.as_object() else {
        errs.push(path, "must be an object {type: \"email\"} or {type: \"webhook\", url, format?}");
        return;
    };
    match o.get("type").and_then(Value::as_str) {
        Some("email") => unknown_keys(errs, path, o, &["type"], "an email approval notification"),
        Some("webhook") => {
            unknown_keys(errs, path, o, &["type", "url", "format"], "a webhook approval notification");
            string_field(errs, path, o, "url", true);
            if let Some(f) = o.get("format")
                && !matches!(f.as_str(), Some("json" | "slack"))
            {
                errs.push(join_path(path, "format"), "must be one of json, slack");
            }
        }
        _ => errs.push(join_path(path, "type"), "must be one of email, webhook"),
    }
}
