//! What the server writes to an integration's event log: its own lines (source `server`), and
//! the refused writes of a request that belongs to an integration. A request belongs to an
//! integration when its User-Agent is Ocean's (`port-ocean/<type>/<version>/<identifier>/exporter`)
//! and that integration exists.

use portolan_store::{IntegrationLog, OrgId, Resync, StoredIntegration};
use serde_json::{Value, json};

use super::Actor;
use super::audit::now_iso;
use crate::state::AppState;

/// The integration identifier in an Ocean User-Agent
/// (`port-ocean/<type>/<version>/<identifier>[/exporter|/gitops]`).
pub fn ocean_integration(ua: &str) -> Option<&str> {
    let rest = ua.strip_prefix("port-ocean/")?;
    let parts: Vec<&str> = rest.split('/').collect();
    let parts = match parts.last() {
        Some(&("exporter" | "gitops")) => &parts[..parts.len() - 1],
        _ => &parts[..],
    };
    (parts.len() == 3 && !parts[2].is_empty()).then(|| parts[2])
}

/// The integration an actor writes for: its User-Agent names an existing integration.
pub(crate) async fn actor_integration(state: &AppState, actor: &Actor) -> Option<StoredIntegration> {
    let id = ocean_integration(actor.user_agent.as_deref()?)?;
    match state.store.get_integration(&actor.org, id).await {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the integration of a write");
            None
        }
    }
}

/// One line the server writes, now.
pub(crate) fn server_line(
    level: &str,
    event: &str,
    resync: Option<String>,
    message: String,
    extra: Value,
) -> IntegrationLog {
    IntegrationLog {
        id: String::new(),
        at: now_iso(),
        level: level.into(),
        source: "server".into(),
        event: event.into(),
        resync_id: resync,
        message,
        extra,
    }
}

/// Append server lines to an integration's event log (best effort: a failure is logged, never
/// fails the operation that caused it).
pub(crate) async fn append(state: &AppState, org: &OrgId, id: &str, lines: &[IntegrationLog], what: &str) {
    if lines.is_empty() {
        return;
    }
    if let Err(e) = state.store.append_integration_logs(org, id, lines).await {
        tracing::warn!(error = %e, integration = id, "could not append {what} to the integration's event log");
    }
}

/// Append one server line to an integration's event log (best effort).
#[allow(clippy::too_many_arguments)]
pub async fn log_server(
    state: &AppState,
    org: &OrgId,
    id: &str,
    resync: Option<String>,
    level: &str,
    event: &str,
    message: String,
    extra: Value,
) {
    append(state, org, id, &[server_line(level, event, resync, message, extra)], "a line").await;
}

/// The running resync of an integration, if any (best effort).
pub(crate) async fn running_resync(state: &AppState, org: &OrgId, id: &str) -> Option<Resync> {
    match state.store.latest_resync(org, id).await {
        Ok(r) => r.filter(|r| r.status == "running"),
        Err(e) => {
            tracing::warn!(error = %e, "could not read the integration's resync");
            None
        }
    }
}

/// Writes (and deletes) of an integration that were refused, `(identifier, reason, action)`,
/// go to its event log. Nothing happens for an actor that is not an integration.
pub async fn on_rejected(state: &AppState, actor: &Actor, bp: &str, fails: &[(String, String, &'static str)]) {
    if fails.is_empty() {
        return;
    }
    let Some(i) = actor_integration(state, actor).await else { return };
    let resync = running_resync(state, &actor.org, &i.identifier).await.map(|r| r.id);
    let lines: Vec<IntegrationLog> = fails
        .iter()
        .map(|(id, reason, action)| {
            server_line(
                "ERROR",
                "entity_rejected",
                resync.clone(),
                format!("{action} of entity {id:?} of blueprint {bp:?} was rejected: {reason}"),
                json!({"blueprint": bp, "identifier": id, "action": action, "reason": reason}),
            )
        })
        .collect();
    append(state, &actor.org, &i.identifier, &lines, "rejected writes").await;
}

#[cfg(test)]
mod tests {
    use super::ocean_integration;

    #[test]
    fn the_integration_of_an_ocean_user_agent() {
        assert_eq!(ocean_integration("port-ocean/local-json/0.1.0/my-int/exporter"), Some("my-int"));
        assert_eq!(ocean_integration("port-ocean/local-json/0.1.0/my-int"), Some("my-int"));
        assert_eq!(ocean_integration("port-ocean/local-json/0.1.0//exporter"), None);
        assert_eq!(ocean_integration("python-httpx/0.27.2"), None);
        assert_eq!(ocean_integration("port-ocean/x/exporter"), None);
    }
}
