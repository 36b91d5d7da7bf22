//! Action permission policies (port-api.md §8.4): an `execute` or `approve` grant's
//! `{queries, conditions}`. Each query is a search query whose `{{ }}` values are rendered over
//! the run's context first; its entities (at most 1000) are `.results.<name>.entities` for the
//! conditions, jq expressions over `{results, blueprint, action, inputs, user, entity,
//! trigger}`. An execute policy allows the run when a condition gives `true`; an approve policy
//! names the approvers: the e-mails its conditions give (arrays or strings), together. A query
//! that fails is left out (as in Port) and said in the answer; a condition that fails counts as
//! not holding and is said too, so a policy that refuses explains itself.

use portolan_core::search::parse_query;
use portolan_jq::template;
use portolan_store::{OrgId, SearchRequest};
use serde_json::{Map, Value, json};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Entities one policy query reads.
const QUERY_LIMIT: u32 = 1000;

/// What a policy gave: each condition's value (or error), and the queries that failed.
#[derive(Debug, Default)]
pub struct Outcome {
    pub values: Vec<Result<Value, String>>,
    pub failed_queries: Vec<String>,
}

impl Outcome {
    /// Does a condition give `true` (an execute policy)?
    pub fn allows(&self) -> bool {
        self.values.iter().any(|v| matches!(v, Ok(Value::Bool(true))))
    }

    /// The e-mails the conditions name (an approve policy), lower-cased, in order, once each.
    pub fn emails(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut add = |v: &Value| {
            if let Some(s) = v.as_str().map(|s| s.trim().to_lowercase()).filter(|s| s.contains('@'))
                && !out.contains(&s)
            {
                out.push(s);
            }
        };
        for v in self.values.iter().flatten() {
            match v {
                Value::Array(a) => a.iter().for_each(&mut add),
                other => add(other),
            }
        }
        out
    }

    /// Why the policy gave what it gave, in a sentence, for a refusal.
    pub fn explain(&self, conditions: &[String]) -> String {
        let mut parts: Vec<String> = conditions
            .iter()
            .zip(&self.values)
            .map(|(c, v)| match v {
                Ok(v) => format!("{c:?} gave {v}"),
                Err(e) => format!("{c:?} failed: {e}"),
            })
            .collect();
        if !self.failed_queries.is_empty() {
            parts.push(format!("queries that failed and were left out: {}", self.failed_queries.join("; ")));
        }
        parts.join("; ")
    }
}

/// The `user` of a policy's context: the caller's e-mail, roles and teams.
pub fn user_json(actor: &super::Actor) -> Value {
    use portolan_core::permissions::Principal;
    match &actor.principal {
        Principal::User(u) => json!({"email": u.email, "roles": actor.principal.roles(), "teams": u.teams}),
        Principal::Machine => json!({"email": actor.client_id, "roles": ["Admin"], "teams": []}),
    }
}

/// A run's policy context (§8.4).
pub fn context(
    actor: &super::Actor,
    action: &portolan_store::StoredAction,
    blueprint: Option<&str>,
    inputs: &Map<String, Value>,
    entity: Option<&portolan_core::Entity>,
    at: &str,
) -> Value {
    let user = user_json(actor);
    json!({
        "blueprint": blueprint,
        "action": {"identifier": action.identifier, "title": action.data.get("title")},
        "inputs": inputs,
        "user": user,
        "entity": entity.map_or(Value::Null, |e| Value::Object(crate::computed::entity_json(e))),
        "trigger": {"at": at, "user": user},
    })
}

/// The conditions of a policy, as written.
pub fn conditions(policy: &Value) -> Vec<String> {
    policy["conditions"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

/// Run `policy` over `context` (`{blueprint, action, inputs, user, entity, trigger}`) for
/// organization `org`, within its jq budget.
pub async fn evaluate(state: &AppState, org: &OrgId, policy: &Value, context: &Value) -> ApiResult<Outcome> {
    let mut out = Outcome::default();
    let blueprints = state.blueprints(org).await?;
    let mut results = Map::new();
    // One budget of the organization for the whole policy: its queries' templates and its
    // conditions.
    let budget = state.jq.budget_for(&org.0);
    for (name, q) in policy["queries"].as_object().into_iter().flatten() {
        let rendered = {
            let (jq, b, q, c) = (state.jq.clone(), budget.clone(), q.clone(), context.clone());
            tokio::task::spawn_blocking(move || template::render(&jq, &b, &q, &c).map_err(|e| e.to_string()))
                .await
                .map_err(|e| ApiError::internal("policy query", e))?
        };
        let query = match rendered.and_then(|r| parse_query(&r).map_err(|e| e.to_string())) {
            Ok(q) => q,
            Err(e) => {
                out.failed_queries.push(format!("{name}: {e}"));
                continue;
            }
        };
        let req = SearchRequest::new(&blueprints, None, Some(&query), QUERY_LIMIT);
        match state.store.search(org, &req).await {
            Ok(found) => {
                let entities: Vec<Value> =
                    found.entities.iter().map(|e| Value::Object(crate::computed::entity_json(e))).collect();
                results.insert(name.clone(), json!({"entities": entities}));
            }
            Err(e) => out.failed_queries.push(format!("{name}: {e}")),
        }
    }
    let mut input = context.clone();
    input["results"] = Value::Object(results);
    let conds = conditions(policy);
    let jq = state.jq.clone();
    out.values = tokio::task::spawn_blocking(move || {
        conds.iter().map(|c| jq.first_in(&budget, c, &input).map_err(|e| e.to_string())).collect::<Vec<_>>()
    })
    .await
    .map_err(|e| ApiError::internal("policy conditions", e))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_needs_a_true_and_emails_gathers_every_address_once() {
        let o = Outcome {
            values: vec![
                Ok(json!(["Ann@x.io", "bob@x.io", "not an email", 3])),
                Err("boom".into()),
                Ok(json!("bob@x.io")),
                Ok(json!(false)),
            ],
            failed_queries: vec!["q: bad".into()],
        };
        assert!(!o.allows());
        assert_eq!(o.emails(), ["ann@x.io", "bob@x.io"]);
        let why = o.explain(&["a".into(), "b".into(), "c".into(), "d".into()]);
        assert!(
            why.contains("\"b\" failed: boom") && why.contains("\"d\" gave false") && why.contains("q: bad"),
            "{why}"
        );
        let yes = Outcome { values: vec![Ok(json!(1)), Ok(json!(true))], failed_queries: vec![] };
        assert!(yes.allows(), "any condition giving true allows");
    }
}
