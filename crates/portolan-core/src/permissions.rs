//! Who may do what (docs/reference/port-api.md §8.1, §8.3): the principals, Port's blueprint
//! permission document, and the one decision function every route, page and job asks.
//!
//! *Roles.* `Admin` may do everything; `<blueprint>-moderator` everything on that blueprint
//! (its entities, its scorecards, the blueprint itself); `Member` reads and runs the actions it
//! is allowed. The organization's own credentials (`/v1/apps`, what Ocean and Terraform use)
//! act as an administrator machine ([`Principal::Machine`]).
//!
//! *Blueprint permissions* decide the entity operations (`read`, `register`, `update`,
//! `unregister`) for everyone else: a grant names roles, users and teams, and `ownedByTeam`
//! admits the members of the entity's own teams. An unset document means the defaults: every
//! member reads, only administrators and the blueprint's moderators write.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::error::{FieldError, FieldErrors};

/// Who is acting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// An organization credential: an administrator machine (Ocean, Terraform, scripts).
    Machine,
    /// A person (through the web UI or a personal credential).
    User(UserPrincipal),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPrincipal {
    /// Lower-cased.
    pub email: String,
    pub admin: bool,
    /// Blueprints this user moderates.
    pub moderates: Vec<String>,
    /// Names of the user's teams.
    pub teams: Vec<String>,
}

impl Principal {
    /// An administrator (a machine credential or an Admin user).
    pub fn is_admin(&self) -> bool {
        match self {
            Principal::Machine => true,
            Principal::User(u) => u.admin,
        }
    }

    /// May change the blueprint `bp` itself, its scorecards and every entity of it.
    pub fn moderates(&self, bp: &str) -> bool {
        match self {
            Principal::Machine => true,
            Principal::User(u) => u.admin || u.moderates.iter().any(|m| m == bp),
        }
    }

    /// Port's role names of this principal: `Admin` or `Member`, and `<bp>-moderator`s.
    pub fn roles(&self) -> Vec<String> {
        match self {
            Principal::Machine => vec!["Admin".into()],
            Principal::User(u) => {
                let mut r = vec![if u.admin { "Admin".to_string() } else { "Member".to_string() }];
                r.extend(u.moderates.iter().map(|b| format!("{b}-moderator")));
                r
            }
        }
    }
}

/// The entity operations a blueprint's permissions decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntityOp {
    Read,
    Register,
    Update,
    Unregister,
}

impl EntityOp {
    pub fn key(self) -> &'static str {
        match self {
            EntityOp::Read => "read",
            EntityOp::Register => "register",
            EntityOp::Update => "update",
            EntityOp::Unregister => "unregister",
        }
    }
    /// What the operation is, in a sentence ("create entities of …").
    pub fn verb(self) -> &'static str {
        match self {
            EntityOp::Read => "read",
            EntityOp::Register => "create",
            EntityOp::Update => "change",
            EntityOp::Unregister => "delete",
        }
    }
}

/// One grant: `{roles, users, teams, ownedByTeam}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grant {
    pub roles: Vec<String>,
    pub users: Vec<String>,
    pub teams: Vec<String>,
    pub owned_by_team: bool,
    /// An action grant's contextual policy (§8.4), checked by [`check_policy`]:
    /// `{queries: {name: search query}, conditions: [jq]}`. With one, roles, users and teams
    /// decide who sees the action; the policy decides who runs it (or, for `approve`, who the
    /// approvers are).
    pub policy: Option<Value>,
}

impl Grant {
    fn roles(roles: &[&str]) -> Grant {
        Grant { roles: roles.iter().map(|r| r.to_string()).collect(), ..Grant::default() }
    }

    fn to_json(&self) -> Value {
        let mut v =
            json!({"roles": self.roles, "users": self.users, "teams": self.teams, "ownedByTeam": self.owned_by_team});
        if let Some(p) = &self.policy {
            v["policy"] = p.clone();
        }
        v
    }

    /// Does the grant admit `u` without looking at the entity (roles, users, teams)?
    fn admits(&self, u: &UserPrincipal, roles: &[String]) -> bool {
        self.roles.iter().any(|r| roles.contains(r))
            || self.users.iter().any(|e| e.eq_ignore_ascii_case(&u.email))
            || self.teams.iter().any(|t| u.teams.contains(t))
    }
}

/// Port's blueprint permission document (`entities.{read, register, update, unregister,
/// updateProperties, updateRelations}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlueprintPermissions {
    pub read: Grant,
    pub register: Grant,
    pub update: Grant,
    pub unregister: Grant,
    /// Per-property grants for updates (beside `update`, which overrides them).
    pub update_properties: BTreeMap<String, Grant>,
    pub update_relations: BTreeMap<String, Grant>,
}

/// What a principal may read of a blueprint's entities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadScope {
    All,
    /// Only entities whose `team` holds one of these teams.
    Teams(Vec<String>),
    Nothing,
}

impl BlueprintPermissions {
    /// The defaults of a blueprint without a document: every member reads, administrators and
    /// the blueprint's moderators (who pass every check anyway) write.
    pub fn defaults(bp: &str) -> Self {
        let moderator = format!("{bp}-moderator");
        let writers = Grant::roles(&["Admin", &moderator]);
        BlueprintPermissions {
            read: Grant::roles(&["Admin", "Member", &moderator]),
            register: writers.clone(),
            update: writers.clone(),
            unregister: writers,
            update_properties: BTreeMap::new(),
            update_relations: BTreeMap::new(),
        }
    }

    pub fn grant(&self, op: EntityOp) -> &Grant {
        match op {
            EntityOp::Read => &self.read,
            EntityOp::Register => &self.register,
            EntityOp::Update => &self.update,
            EntityOp::Unregister => &self.unregister,
        }
    }

    /// Port's JSON form: `{entities: {…}}`.
    pub fn to_json(&self) -> Value {
        let map = |m: &BTreeMap<String, Grant>| -> Map<String, Value> {
            m.iter().map(|(k, g)| (k.clone(), g.to_json())).collect()
        };
        json!({"entities": {
            "read": self.read.to_json(),
            "register": self.register.to_json(),
            "update": self.update.to_json(),
            "unregister": self.unregister.to_json(),
            "updateProperties": map(&self.update_properties),
            "updateRelations": map(&self.update_relations),
        }})
    }

    /// Apply a `PATCH` body (`{entities: {…}}`): only the keys given change; within a given
    /// grant, whatever is not listed is taken away (Port's semantics). Paths in errors start at
    /// the body (`entities.read.roles[1]`).
    pub fn patched(&self, body: &Value) -> Result<Self, FieldErrors> {
        let mut errs = FieldErrors::default();
        let mut out = self.clone();
        let Some(obj) = body.as_object() else {
            return Err(FieldError::new("", "must be an object {\"entities\": {…}}").into());
        };
        for k in obj.keys().filter(|k| *k != "entities") {
            errs.push(k.as_str(), "is not a permission key; the body is {\"entities\": {read, register, update, unregister, updateProperties, updateRelations}}");
        }
        let Some(ent) = obj.get("entities") else {
            errs.push("entities", "is required");
            return Err(errs);
        };
        let Some(ent) = ent.as_object() else {
            errs.push("entities", "must be an object");
            return Err(errs);
        };
        for (k, v) in ent {
            let path = format!("entities.{k}");
            match k.as_str() {
                "read" | "register" | "update" | "unregister" => {
                    if let Some(g) = parse_grant(v, &path, &mut errs, false) {
                        *match k.as_str() {
                            "read" => &mut out.read,
                            "register" => &mut out.register,
                            "update" => &mut out.update,
                            _ => &mut out.unregister,
                        } = g;
                    }
                }
                "updateProperties" | "updateRelations" => {
                    let Some(m) = v.as_object() else {
                        errs.push(path, "must be an object of grants keyed by property or relation");
                        continue;
                    };
                    let target =
                        if k == "updateProperties" { &mut out.update_properties } else { &mut out.update_relations };
                    for (name, g) in m {
                        if let Some(g) = parse_grant(g, &format!("{path}.{name}"), &mut errs, false) {
                            target.insert(name.clone(), g);
                        }
                    }
                }
                _ => errs.push(
                    path,
                    "is not a permission; use read, register, update, unregister, updateProperties or updateRelations",
                ),
            }
        }
        errs.into_result().map(|()| out)
    }

    /// Parse a stored document (written by [`Self::to_json`]); `None` when it is not one.
    pub fn from_stored(bp: &str, doc: &Value) -> Option<Self> {
        BlueprintPermissions::defaults(bp).patched(doc).ok()
    }

    /// May `p` perform `op` on an entity of blueprint `bp` owned by `entity_teams`?
    /// (Reads: see [`Self::read_scope`] for lists.)
    pub fn allows(&self, p: &Principal, bp: &str, op: EntityOp, entity_teams: &[String]) -> bool {
        let Principal::User(u) = p else { return true };
        if p.moderates(bp) {
            return true;
        }
        let g = self.grant(op);
        g.admits(u, &p.roles()) || (g.owned_by_team && entity_teams.iter().any(|t| u.teams.contains(t)))
    }

    /// May `p` update the property (or relation) `name` when `update` itself is not granted?
    pub fn allows_field(&self, p: &Principal, relation: bool, name: &str, entity_teams: &[String]) -> bool {
        let Principal::User(u) = p else { return true };
        let grants = if relation { &self.update_relations } else { &self.update_properties };
        grants.get(name).is_some_and(|g| {
            g.admits(u, &p.roles()) || (g.owned_by_team && entity_teams.iter().any(|t| u.teams.contains(t)))
        })
    }

    /// Which entities of blueprint `bp` `p` may read.
    pub fn read_scope(&self, p: &Principal, bp: &str) -> ReadScope {
        let Principal::User(u) = p else { return ReadScope::All };
        if p.moderates(bp) || self.read.admits(u, &p.roles()) {
            ReadScope::All
        } else if self.read.owned_by_team && !u.teams.is_empty() {
            ReadScope::Teams(u.teams.clone())
        } else {
            ReadScope::Nothing
        }
    }
}

/// Port's action permission document (§8.4): `{execute, approve}`, each a grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionPermissions {
    pub execute: Grant,
    pub approve: Grant,
}

impl ActionPermissions {
    /// Without a document: every member runs the action, administrators approve its runs.
    pub fn defaults() -> Self {
        ActionPermissions { execute: Grant::roles(&["Admin", "Member"]), approve: Grant::roles(&["Admin"]) }
    }

    pub fn to_json(&self) -> Value {
        json!({"execute": self.execute.to_json(), "approve": self.approve.to_json()})
    }

    /// Apply a `PATCH` body `{execute?, approve?}` (only the keys given change).
    pub fn patched(&self, body: &Value) -> Result<Self, FieldErrors> {
        let mut errs = FieldErrors::default();
        let mut out = self.clone();
        let Some(obj) = body.as_object() else {
            return Err(FieldError::new("", "must be an object {\"execute\": {…}, \"approve\": {…}}").into());
        };
        for (k, v) in obj {
            match k.as_str() {
                "execute" | "approve" => {
                    if let Some(g) = parse_grant(v, k, &mut errs, true) {
                        *if k == "execute" { &mut out.execute } else { &mut out.approve } = g;
                    }
                }
                _ => errs.push(k.as_str(), "is not an action permission; use execute or approve"),
            }
        }
        errs.into_result().map(|()| out)
    }

    /// Parse a stored document; `None` when it is not one.
    pub fn from_stored(doc: &Value) -> Option<Self> {
        ActionPermissions::defaults().patched(doc).ok()
    }

    /// May `p` run the action (on an entity owned by `entity_teams`, for `ownedByTeam`)? With
    /// an execute policy this decides who sees the action; the policy (evaluated by the
    /// server) decides the run.
    pub fn may_execute(&self, p: &Principal, entity_teams: &[String]) -> bool {
        let Principal::User(u) = p else { return true };
        u.admin
            || self.execute.admits(u, &p.roles())
            || (self.execute.owned_by_team && entity_teams.iter().any(|t| u.teams.contains(t)))
    }

    /// May `p` approve the action's runs?
    pub fn may_approve(&self, p: &Principal) -> bool {
        let Principal::User(u) = p else { return true };
        u.admin || self.approve.admits(u, &p.roles())
    }

    /// Is `p` an approver the `approve` grant names (by role, e-mail or team)? These are the
    /// people a run waiting for approval asks; an administrator it does not name may still
    /// decide.
    pub fn designates(&self, p: &Principal) -> bool {
        let Principal::User(u) = p else { return false };
        self.approve.admits(u, &p.roles())
    }
}

/// Port's page permission document (§8.5): `{read, update}`, each `{roles, users, teams}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PagePermissions {
    pub read: Grant,
    pub update: Grant,
}

impl PagePermissions {
    /// Without a document: every member reads the page, administrators change it.
    pub fn defaults() -> Self {
        PagePermissions { read: Grant::roles(&["Admin", "Member"]), update: Grant::roles(&["Admin"]) }
    }

    pub fn to_json(&self) -> Value {
        let g = |g: &Grant| json!({"roles": g.roles, "users": g.users, "teams": g.teams});
        json!({"read": g(&self.read), "update": g(&self.update)})
    }

    /// Apply a `PATCH` body `{read?, update?}` (only the keys given change).
    pub fn patched(&self, body: &Value) -> Result<Self, FieldErrors> {
        let mut errs = FieldErrors::default();
        let mut out = self.clone();
        let Some(obj) = body.as_object() else {
            return Err(FieldError::new("", "must be an object {\"read\": {…}, \"update\": {…}}").into());
        };
        for (k, v) in obj {
            match k.as_str() {
                "read" | "update" => {
                    if v.get("ownedByTeam").is_some() {
                        errs.push(
                            format!("{k}.ownedByTeam"),
                            "pages have no owning team: grant by roles, users or teams",
                        );
                    } else if let Some(g) = parse_grant(v, k, &mut errs, false) {
                        *if k == "read" { &mut out.read } else { &mut out.update } = g;
                    }
                }
                _ => errs.push(k.as_str(), "is not a page permission; use read or update"),
            }
        }
        errs.into_result().map(|()| out)
    }

    pub fn from_stored(doc: &Value) -> Option<Self> {
        PagePermissions::defaults().patched(doc).ok()
    }

    /// May `p` see the page?
    pub fn may_read(&self, p: &Principal) -> bool {
        let Principal::User(u) = p else { return true };
        u.admin || self.read.admits(u, &p.roles())
    }

    /// May `p` change the page (its fields and widgets)? Administrators always; others when
    /// the page's `update` grant names them, their role or one of their teams.
    pub fn may_update(&self, p: &Principal) -> bool {
        let Principal::User(u) = p else { return true };
        u.admin || self.update.admits(u, &p.roles())
    }
}

fn parse_grant(v: &Value, path: &str, errs: &mut FieldErrors, allow_policy: bool) -> Option<Grant> {
    let Some(o) = v.as_object() else {
        errs.push(path, "must be an object {roles, users, teams, ownedByTeam}");
        return None;
    };
    let mut g = Grant::default();
    let before = errs.0.len();
    for (k, v) in o {
        let p = format!("{path}.{k}");
        match k.as_str() {
            "roles" | "users" | "teams" => {
                let Some(items) = v.as_array() else {
                    errs.push(p, "must be an array of strings");
                    continue;
                };
                let mut list = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match item.as_str() {
                        Some(s) if !s.trim().is_empty() && s.len() <= 200 => list.push(s.trim().to_string()),
                        _ => errs.push(format!("{p}[{i}]"), "must be a non-empty string of at most 200 bytes"),
                    }
                }
                if list.len() > 1000 {
                    errs.push(p.clone(), "lists at most 1000 names");
                }
                if k == "roles" {
                    for (i, r) in list.iter().enumerate() {
                        if r != "Admin" && r != "Member" && !r.ends_with("-moderator") {
                            errs.push(
                                format!("{p}[{i}]"),
                                format!("{r:?} is not a role: use Admin, Member or <blueprint>-moderator"),
                            );
                        }
                    }
                    g.roles = list;
                } else if k == "users" {
                    g.users = list.into_iter().map(|s| s.to_lowercase()).collect();
                } else {
                    g.teams = list;
                }
            }
            "ownedByTeam" => match v.as_bool() {
                Some(b) => g.owned_by_team = b,
                None => errs.push(p, "must be true or false"),
            },
            "policy" if allow_policy => {
                if !v.is_null() {
                    check_policy(v, &p, errs);
                    g.policy = Some(v.clone());
                }
            }
            "policy" => {
                if !v.is_null() {
                    errs.push(
                        p,
                        "contextual policies are supported on action permissions only: grant by roles, users, teams \
                         or ownedByTeam",
                    );
                }
            }
            _ => errs.push(p, "is not a grant field; use roles, users, teams or ownedByTeam"),
        }
    }
    (errs.0.len() == before).then_some(g)
}

/// Most queries and conditions one policy holds.
pub const MAX_POLICY_QUERIES: usize = 10;
pub const MAX_POLICY_CONDITIONS: usize = 20;

/// Check a policy's shape (§8.4): `queries`, an object of 1 to 10 named search queries (each
/// checked by the search language's parser once its `{{ }}` values are rendered, when the
/// policy runs), and `conditions`, 1 to 20 jq expressions.
pub fn check_policy(v: &Value, path: &str, errs: &mut FieldErrors) {
    let Some(o) = v.as_object() else {
        errs.push(path, "must be an object {queries: {name: query}, conditions: [jq]} or null");
        return;
    };
    for k in o.keys().filter(|k| !["queries", "conditions"].contains(&k.as_str())) {
        errs.push(format!("{path}.{k}"), "is not a policy field; use queries and conditions");
    }
    match o.get("queries").and_then(Value::as_object) {
        Some(q) if !q.is_empty() && q.len() <= MAX_POLICY_QUERIES => {
            for (name, query) in q {
                let at = format!("{path}.queries.{name}");
                if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    errs.push(&at, "a query's name is letters, digits and _ (it is read as .results.<name> in jq)");
                }
                if !query.get("rules").is_some_and(Value::is_array) {
                    errs.push(at, "must be a search query {combinator, rules}");
                }
            }
        }
        _ => errs.push(
            format!("{path}.queries"),
            format!("is required: an object of 1 to {MAX_POLICY_QUERIES} named search queries"),
        ),
    }
    match o.get("conditions").and_then(Value::as_array) {
        Some(c) if !c.is_empty() && c.len() <= MAX_POLICY_CONDITIONS => {
            for (i, jq) in c.iter().enumerate() {
                if jq.as_str().is_none_or(|s| s.trim().is_empty()) {
                    errs.push(format!("{path}.conditions[{i}]"), "must be a jq expression (a non-empty string)");
                }
            }
        }
        _ => errs.push(
            format!("{path}.conditions"),
            format!("is required: an array of 1 to {MAX_POLICY_CONDITIONS} jq expressions"),
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn member(teams: &[&str], moderates: &[&str]) -> Principal {
        Principal::User(UserPrincipal {
            email: "m@x.io".into(),
            admin: false,
            moderates: moderates.iter().map(|s| s.to_string()).collect(),
            teams: teams.iter().map(|s| s.to_string()).collect(),
        })
    }

    #[test]
    fn defaults_let_members_read_and_only_admins_and_moderators_write() {
        let p = BlueprintPermissions::defaults("service");
        let m = member(&[], &[]);
        assert_eq!(p.read_scope(&m, "service"), ReadScope::All);
        for op in [EntityOp::Register, EntityOp::Update, EntityOp::Unregister] {
            assert!(!p.allows(&m, "service", op, &[]), "{op:?}");
            assert!(p.allows(&member(&[], &["service"]), "service", op, &[]));
            assert!(!p.allows(&member(&[], &["other"]), "service", op, &[]));
            assert!(p.allows(&Principal::Machine, "service", op, &[]));
        }
    }

    #[test]
    fn owned_by_team_admits_members_of_the_entity_team_only() {
        let body = json!({"entities": {"update": {"roles": [], "ownedByTeam": true},
                                       "read": {"roles": ["Admin"], "ownedByTeam": true}}});
        let p = BlueprintPermissions::defaults("svc").patched(&body).unwrap();
        let ops = member(&["ops"], &[]);
        assert!(p.allows(&ops, "svc", EntityOp::Update, &["ops".into()]));
        assert!(!p.allows(&ops, "svc", EntityOp::Update, &["dev".into()]));
        assert!(!p.allows(&ops, "svc", EntityOp::Update, &[]));
        assert_eq!(p.read_scope(&ops, "svc"), ReadScope::Teams(vec!["ops".into()]));
        assert_eq!(p.read_scope(&member(&[], &[]), "svc"), ReadScope::Nothing);
        // A patch leaves the keys it does not name alone.
        assert_eq!(p.register, BlueprintPermissions::defaults("svc").register);
    }

    #[test]
    fn users_and_teams_grant_and_field_grants_are_separate() {
        let body = json!({"entities": {"register": {"users": ["M@X.io"]},
                                       "updateProperties": {"slack": {"teams": ["ops"]}}}});
        let p = BlueprintPermissions::defaults("svc").patched(&body).unwrap();
        assert!(p.allows(&member(&[], &[]), "svc", EntityOp::Register, &[]));
        assert!(p.allows_field(&member(&["ops"], &[]), false, "slack", &[]));
        assert!(!p.allows_field(&member(&["dev"], &[]), false, "slack", &[]));
        assert!(!p.allows_field(&member(&["ops"], &[]), true, "slack", &[]));
        let round = BlueprintPermissions::from_stored("svc", &p.to_json()).unwrap();
        assert_eq!(round, p);
    }

    #[test]
    fn actions_run_for_members_by_default_and_grants_narrow_it() {
        let d = ActionPermissions::defaults();
        assert!(d.may_execute(&member(&[], &[]), &[]));
        assert!(!d.may_approve(&member(&[], &[])));
        assert!(d.may_approve(&Principal::Machine));
        let p = d.patched(&json!({"execute": {"roles": [], "teams": ["sre"], "ownedByTeam": true}})).unwrap();
        assert!(!p.may_execute(&member(&["dev"], &[]), &[]));
        assert!(p.may_execute(&member(&["sre"], &[]), &[]));
        assert!(p.may_execute(&member(&["dev"], &[]), &["dev".into()]), "ownedByTeam: the entity's team");
        assert_eq!(p.approve, d.approve, "a patch leaves approve alone");
        assert_eq!(ActionPermissions::from_stored(&p.to_json()).unwrap(), p);
        assert_eq!(d.patched(&json!({"run": {}})).unwrap_err().0[0].path, "run");
    }

    #[test]
    fn bad_documents_say_which_field() {
        let base = BlueprintPermissions::defaults("svc");
        let e = base.patched(&json!({"entities": {"read": {"roles": ["Owner"]}}})).unwrap_err();
        assert_eq!(e.0[0].path, "entities.read.roles[0]");
        let e = base.patched(&json!({"entities": {"delete": {}}})).unwrap_err();
        assert_eq!(e.0[0].path, "entities.delete");
        let e = base.patched(&json!({"entities": {"update": {"ownedByTeam": "yes"}}})).unwrap_err();
        assert_eq!(e.0[0].path, "entities.update.ownedByTeam");
        assert!(base.patched(&json!([])).is_err());
    }
}
