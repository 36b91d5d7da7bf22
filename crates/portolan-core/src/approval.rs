//! Approvals of action runs (port-api.md §5.7): which runs wait for one, who was asked, and
//! what each decision does to the run.
//!
//! A run of an action with `requiredApproval` starts `WAITING_FOR_APPROVAL` with the approvers
//! designated when it was created (the people the action's `approve` grant admits then). With
//! `ANY` (or `true`) the first approval starts it; with `ALL` every designated approver must
//! approve. One decline ends it `DECLINED`, never invoked. An organization credential (an
//! administrator machine: an automation or a script) decides for everyone. An `ALL` run with
//! nobody designated needs one approval from anyone allowed to approve.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How many approvals a run needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    /// One approval is enough (`true` or `{"type": "ANY"}`).
    #[serde(rename = "ANY")]
    Any,
    /// Every designated approver must approve (`{"type": "ALL"}`).
    #[serde(rename = "ALL")]
    All,
}

/// The approval an action's runs need (`requiredApproval`), `None` when they need none.
pub fn required(action: &Value) -> Option<Mode> {
    match action.get("requiredApproval") {
        Some(Value::Bool(true)) => Some(Mode::Any),
        Some(Value::Object(o)) => match o.get("type").and_then(Value::as_str) {
            Some("ALL") => Some(Mode::All),
            _ => Some(Mode::Any),
        },
        _ => None,
    }
}

/// One approver's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub user_id: String,
    /// `APPROVED` or `DECLINED`.
    pub state: String,
    pub description: Option<String>,
    pub at: String,
}

/// A run's approval: how many it needs, who was asked, and the decisions so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub mode: Mode,
    /// The designated approvers (lower-cased e-mails, sorted), fixed when the run was created.
    pub approvers: Vec<String>,
    #[serde(default)]
    pub decisions: Vec<Decision>,
}

/// Who decides.
#[derive(Debug, Clone, Copy)]
pub struct Decider<'a> {
    /// The user's e-mail, or the organization credential's client id.
    pub user_id: &'a str,
    /// An organization credential: its decision is the organization's, whatever the mode.
    pub organization: bool,
}

/// What a decision did to the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Start the run.
    Approved,
    /// End the run `DECLINED`.
    Declined,
    /// Still waiting for these designated approvers.
    Waiting(Vec<String>),
}

impl Approval {
    pub fn new(mode: Mode, mut approvers: Vec<String>) -> Approval {
        for a in &mut approvers {
            *a = a.to_lowercase();
        }
        approvers.sort();
        approvers.dedup();
        Approval { mode, approvers, decisions: vec![] }
    }

    /// The designated approvers who have not decided yet.
    pub fn pending(&self) -> Vec<String> {
        self.approvers.iter().filter(|a| !self.decisions.iter().any(|d| &d.user_id == *a)).cloned().collect()
    }

    /// Record `who`'s decision (the caller has checked that `who` may approve the action's
    /// runs). `Err` says, in a sentence, why the decision is refused.
    pub fn decide(
        &mut self,
        who: Decider<'_>,
        approve: bool,
        description: Option<String>,
        at: &str,
    ) -> Result<Outcome, String> {
        let user = who.user_id.to_lowercase();
        if let Some(d) = self.decisions.iter().find(|d| d.user_id == user) {
            return Err(format!("{user} has already {} this run", d.state.to_lowercase()));
        }
        let counts = who.organization || self.mode == Mode::Any || self.approvers.is_empty();
        if approve && !counts && !self.approvers.contains(&user) {
            return Err(format!(
                "this run needs the approval of each of its designated approvers ({}), and {user} is not one of them",
                self.approvers.join(", ")
            ));
        }
        let state = if approve { "APPROVED" } else { "DECLINED" };
        self.decisions.push(Decision { user_id: user, state: state.into(), description, at: at.to_string() });
        if !approve {
            return Ok(Outcome::Declined);
        }
        let pending = self.pending();
        if counts || pending.is_empty() { Ok(Outcome::Approved) } else { Ok(Outcome::Waiting(pending)) }
    }

    /// Port's `approval` key of a run: the last decision (`null` before any).
    pub fn last_json(&self) -> Value {
        self.decisions.last().map_or(
            Value::Null,
            |d| serde_json::json!({"userId": d.user_id, "state": d.state, "description": d.description}),
        )
    }

    /// Port's `GET …/approvers` list: each decision, and with `pending` the designated
    /// approvers who have not decided (`state: "PENDING"`).
    pub fn approvers_json(&self, pending: bool) -> Vec<Value> {
        let mut out: Vec<Value> = self
            .decisions
            .iter()
            .map(|d| serde_json::json!({"userId": d.user_id, "state": d.state, "description": d.description, "at": d.at}))
            .collect();
        if pending {
            out.extend(
                self.pending()
                    .into_iter()
                    .map(|a| serde_json::json!({"userId": a, "state": "PENDING", "description": null})),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user(e: &str) -> Decider<'_> {
        Decider { user_id: e, organization: false }
    }

    #[test]
    fn required_reads_every_form_of_required_approval() {
        assert_eq!(required(&json!({})), None);
        assert_eq!(required(&json!({"requiredApproval": false})), None);
        assert_eq!(required(&json!({"requiredApproval": null})), None);
        assert_eq!(required(&json!({"requiredApproval": true})), Some(Mode::Any));
        assert_eq!(required(&json!({"requiredApproval": {"type": "ANY"}})), Some(Mode::Any));
        assert_eq!(required(&json!({"requiredApproval": {"type": "ALL"}})), Some(Mode::All));
    }

    #[test]
    fn any_starts_on_the_first_approval() {
        let mut a = Approval::new(Mode::Any, vec!["B@x".into(), "a@x".into()]);
        assert_eq!(a.approvers, vec!["a@x", "b@x"]);
        assert_eq!(a.decide(user("b@x"), true, None, "t").unwrap(), Outcome::Approved);
        assert_eq!(a.pending(), vec!["a@x"]);
    }

    #[test]
    fn all_waits_for_each_designated_approver() {
        let mut a = Approval::new(Mode::All, vec!["a@x".into(), "b@x".into()]);
        assert_eq!(a.decide(user("A@x"), true, Some("ok".into()), "t1").unwrap(), Outcome::Waiting(vec!["b@x".into()]));
        let again = a.decide(user("a@x"), true, None, "t2").unwrap_err();
        assert!(again.contains("already approved"), "{again}");
        let outsider = a.decide(user("c@x"), true, None, "t2").unwrap_err();
        assert!(outsider.contains("designated approvers (a@x, b@x)"), "{outsider}");
        assert_eq!(a.decide(user("b@x"), true, None, "t3").unwrap(), Outcome::Approved);
        assert_eq!(a.last_json()["userId"], "b@x");
        assert_eq!(a.approvers_json(true).len(), 2);
    }

    #[test]
    fn one_decline_ends_the_run_and_anyone_allowed_may_decline() {
        let mut a = Approval::new(Mode::All, vec!["a@x".into(), "b@x".into()]);
        a.decide(user("a@x"), true, None, "t1").unwrap();
        assert_eq!(a.decide(user("admin@x"), false, Some("no".into()), "t2").unwrap(), Outcome::Declined);
        assert_eq!(a.last_json(), json!({"userId": "admin@x", "state": "DECLINED", "description": "no"}));
    }

    #[test]
    fn an_organization_credential_or_an_empty_designation_approves_at_once() {
        let mut a = Approval::new(Mode::All, vec!["a@x".into(), "b@x".into()]);
        let org = Decider { user_id: "client-1", organization: true };
        assert_eq!(a.decide(org, true, None, "t").unwrap(), Outcome::Approved);
        let mut none = Approval::new(Mode::All, vec![]);
        assert_eq!(none.decide(user("z@x"), true, None, "t").unwrap(), Outcome::Approved);
    }

    #[test]
    fn pending_lists_only_undecided_designated_approvers() {
        let mut a = Approval::new(Mode::All, vec!["a@x".into(), "b@x".into(), "c@x".into()]);
        a.decide(user("b@x"), true, None, "t").unwrap();
        assert_eq!(a.pending(), vec!["a@x", "c@x"]);
        let listed = a.approvers_json(true);
        assert_eq!(listed[0]["state"], "APPROVED");
        assert_eq!(listed[1], json!({"userId": "a@x", "state": "PENDING", "description": null}));
        assert_eq!(a.approvers_json(false).len(), 1);
    }
}
