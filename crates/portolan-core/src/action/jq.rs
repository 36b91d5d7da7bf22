//! The `{"jqQuery": "<jq>"}` slots of a `userInputs` object (§5.2): where they are, and writing
//! the evaluated results back. Evaluation itself (over `{form, entity, user}`) is the server's:
//! the core has no jq engine.

use serde_json::Value;

/// One `{"jqQuery": q}` found in a `userInputs` object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JqSlot {
    /// jq-style path, for messages: `properties.sdk.enum`, `properties.domain.dataset.rules[0].value`,
    /// `required`, `steps[1].visible`.
    pub path: String,
    /// RFC 6901 JSON pointer of the slot inside the `userInputs` object (`/properties/sdk/enum`),
    /// for [`resolve`].
    pub pointer: String,
    /// The jq program.
    pub query: String,
}

/// Is `v` a jq slot, `{"jqQuery": "<string>"}` and nothing else?
pub fn as_jq_query(v: &Value) -> Option<&str> {
    let o = v.as_object()?;
    if o.len() != 1 {
        return None;
    }
    o.get("jqQuery")?.as_str()
}

/// Does `v` look like a jq slot at all (an object with a `jqQuery` key), well formed or not?
pub(crate) fn looks_like_jq(v: &Value) -> bool {
    v.as_object().is_some_and(|o| o.contains_key("jqQuery"))
}

/// Every `{"jqQuery": q}` in `user_inputs`, in document order (depth first). Any object that is
/// exactly one string-valued `jqQuery` key counts, wherever it sits: `enum`, `default`,
/// `visible`, `disabled`, `pattern`, the top-level `required`, dataset rule values (at any
/// group depth), `titles.<id>.visible`, `steps[i].visible`.
pub fn jq_queries(user_inputs: &Value) -> Vec<JqSlot> {
    let mut out = Vec::new();
    walk(user_inputs, String::new(), String::new(), &mut out);
    out
}

fn walk(v: &Value, path: String, pointer: String, out: &mut Vec<JqSlot>) {
    if let Some(q) = as_jq_query(v) {
        out.push(JqSlot { path, pointer, query: q.to_string() });
        return;
    }
    match v {
        Value::Object(o) => {
            for (k, child) in o {
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                walk(child, p, format!("{pointer}/{}", escape_pointer(k)), out);
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                walk(child, format!("{path}[{i}]"), format!("{pointer}/{i}"), out);
            }
        }
        _ => {}
    }
}

fn escape_pointer(k: &str) -> String {
    k.replace('~', "~0").replace('/', "~1")
}

/// A copy of `user_inputs` with each `(pointer, value)` written in place (pointers as
/// [`JqSlot::pointer`] gives them; a pointer that names nothing is skipped).
pub fn resolve(user_inputs: &Value, values: &[(String, Value)]) -> Value {
    let mut out = user_inputs.clone();
    for (pointer, value) in values {
        if pointer.is_empty() {
            out = value.clone();
        } else if let Some(slot) = out.pointer_mut(pointer) {
            *slot = value.clone();
        }
    }
    out
}
