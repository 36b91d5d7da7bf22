//! Access decisions (docs/reference/port-api.md §8.1–8.3): who the caller is, what each route
//! requires of it, and what of a blueprint's entities it may read and write.
//!
//! *One place decides.* Every `/v1` route declares its [`Access`] in the route table
//! (`router.rs`); the [`Caller`](crate::auth::Caller) extractor enforces it before the handler
//! runs, so a route cannot be added without a decision. Entity routes ([`Access::Entities`])
//! are decided per entity by the blueprint's permissions ([`BlueprintPermissions`], core):
//! writes inside the write's transaction ([`WriteGuard`], on the stored entity), reads by a
//! restriction AND-ed into every search, list, count and export ([`visible`]) and a check of
//! single reads ([`may_read`]); values an answer takes from related entities through the
//! reader's [`Reader`]; the audit log through [`audit_scope`]. Page changes
//! ([`Access::Pages`]) are decided by the page's `update` grant (`ops::page::check_update`).
//! The web UI's pages act through the same functions.
//!
//! Administrators (organization credentials, Admin users) and a blueprint's moderators skip
//! the per-entity decisions: their requests cost nothing more than before.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use portolan_core::permissions::{BlueprintPermissions, EntityOp, Principal, ReadScope, UserPrincipal};
use portolan_core::search::{Combinator, Query, parse_query};
use portolan_core::{Entity, FieldError};
use portolan_store::{OrgId, StoreError};
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::ops::Actor;
use crate::state::AppState;

/// What a route requires of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No bearer token (the token exchange, webhook ingest URLs).
    Public,
    /// Any user or credential of the organization.
    Member,
    /// Decided per entity by the blueprint's permissions (route level: any member).
    Entities,
    /// Decided per page by its `update` permission (route level: any member).
    Pages,
    /// An administrator or a moderator of the blueprint in the path's `{id}`.
    Moderator,
    /// An administrator, or the user the path's `{email}` names.
    AdminOrSelf,
    /// An administrator (organization credentials, Admin users).
    Admin,
}

impl Access {
    /// Why a principal is refused, or `None` when the route admits it. `param` reads a path
    /// parameter of the request.
    pub fn refusal(self, p: &Principal, param: impl Fn(&str) -> Option<String>) -> Option<String> {
        let ok = match self {
            Access::Public | Access::Member | Access::Entities | Access::Pages => true,
            Access::Admin => p.is_admin(),
            Access::Moderator => param("id").is_some_and(|bp| p.moderates(&bp)),
            Access::AdminOrSelf => {
                p.is_admin()
                    || matches!(p, Principal::User(u) if param("email").is_some_and(|e| e.eq_ignore_ascii_case(&u.email)))
            }
        };
        (!ok).then(|| {
            let who = who(p);
            match self {
                Access::Moderator => format!(
                    "{who} may not change blueprint {:?}: it takes the Admin role or the {:?} role",
                    param("id").unwrap_or_default(),
                    format!("{}-moderator", param("id").unwrap_or_default())
                ),
                Access::AdminOrSelf => {
                    format!("{who} may only do this for themselves; it takes the Admin role for others")
                }
                _ => format!("{who} may not do this: it takes the Admin role"),
            }
        })
    }
}

fn who(p: &Principal) -> String {
    match p {
        Principal::Machine => "this credential".into(),
        Principal::User(u) => format!("{} (roles {})", u.email, p.roles().join(", ")),
    }
}

/// The [`Access`] of the route `method path` (the route's template, as `MatchedPath` gives it).
pub fn route_access(method: &str, template: &str) -> Option<Access> {
    static TABLE: OnceLock<HashMap<(String, &'static str), Access>> = OnceLock::new();
    let table =
        TABLE.get_or_init(|| crate::router::ROUTES.iter().map(|r| ((r.0.to_ascii_uppercase(), r.1), r.4)).collect());
    table.get(&(method.to_ascii_uppercase(), template)).copied()
}

/// The value of the path parameter `name` of `path` matched by the route `template`
/// (percent-decoded).
pub fn path_param(template: &str, path: &str, name: &str) -> Option<String> {
    let want = format!("{{{name}}}");
    let seg = template.split('/').position(|s| s == want)?;
    let raw = path.split('/').nth(seg)?;
    Some(crate::extract::form_pairs(&format!("v={}", raw.replace('+', "%2B"))).pop()?.1)
}

/// The principal of the user `email` of `org`: refused when the user is gone or disabled.
pub async fn user_principal(state: &AppState, org: &OrgId, email: &str) -> ApiResult<Principal> {
    let Some(p) = state.store.get_person(org, email).await? else {
        return Err(ApiError::unauthorized(format!(
            "the user {email:?} of this credential no longer exists; the credential was revoked"
        )));
    };
    if p.status == "Disabled" {
        return Err(ApiError::unauthorized(format!(
            "the user {email:?} is disabled; an administrator can set their status back to Active"
        )));
    }
    Ok(principal_of(p))
}

/// The principal of an active person.
pub fn principal_of(p: portolan_store::Person) -> Principal {
    Principal::User(UserPrincipal { email: p.email, admin: p.role == "admin", moderates: p.moderates, teams: p.teams })
}

/// The permissions of blueprint `bp` (the defaults when it has none stored).
pub async fn permissions(state: &AppState, org: &OrgId, bp: &str) -> ApiResult<BlueprintPermissions> {
    let doc = match state.store.blueprint_permissions(org, bp).await {
        Ok(d) => d,
        Err(StoreError::NotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    Ok(doc
        .and_then(|d| BlueprintPermissions::from_stored(bp, &d))
        .unwrap_or_else(|| BlueprintPermissions::defaults(bp)))
}

/// Decides the writes of one principal to one blueprint, on each stored entity, inside the
/// write's transaction.
#[derive(Debug)]
pub struct WriteGuard {
    principal: Principal,
    blueprint: String,
    perms: BlueprintPermissions,
}

/// The guard of `actor`'s writes to `bp`; `None` when it may write every entity of it
/// (administrators, moderators).
pub async fn write_guard(state: &AppState, actor: &Actor, bp: &str) -> ApiResult<Option<Arc<WriteGuard>>> {
    if actor.principal.moderates(bp) {
        return Ok(None);
    }
    let perms = permissions(state, &actor.org, bp).await?;
    Ok(Some(Arc::new(WriteGuard { principal: actor.principal.clone(), blueprint: bp.to_string(), perms })))
}

impl WriteGuard {
    /// Why writing `new` over `stored` is refused, if it is.
    pub fn refusal(&self, stored: Option<&Entity>, new: &Entity) -> Option<String> {
        let (p, bp) = (&self.principal, self.blueprint.as_str());
        let Some(stored) = stored else {
            return (!self.perms.allows(p, bp, EntityOp::Register, &new.team))
                .then(|| self.refused(EntityOp::Register, &new.identifier));
        };
        if self.perms.allows(p, bp, EntityOp::Update, &stored.team) {
            return None;
        }
        // Without `update`, each changed property and relation needs its own grant; the
        // entity's title, icon and team need `update` itself.
        let changed = |a: &Value, b: &Value| a != b;
        let mut denied = Vec::new();
        if stored.title != new.title || stored.icon != new.icon || stored.team != new.team {
            denied.push("title, icon or team".to_string());
        }
        let keys = |m: &serde_json::Map<String, Value>, n: &serde_json::Map<String, Value>| -> Vec<String> {
            let mut k: Vec<String> = m.keys().chain(n.keys()).cloned().collect();
            k.sort();
            k.dedup();
            k.into_iter()
                .filter(|k| changed(m.get(k).unwrap_or(&Value::Null), n.get(k).unwrap_or(&Value::Null)))
                .collect()
        };
        for k in keys(&stored.properties, &new.properties) {
            if !self.perms.allows_field(p, false, &k, &stored.team) {
                denied.push(format!("property {k:?}"));
            }
        }
        for k in keys(&stored.relations, &new.relations) {
            if !self.perms.allows_field(p, true, &k, &stored.team) {
                denied.push(format!("relation {k:?}"));
            }
        }
        (!denied.is_empty()).then(|| {
            format!(
                "{} may not change {} of entity {:?} of blueprint {bp:?}: the blueprint's permissions grant update \
                 (entities.update, or entities.updateProperties / updateRelations per field) to roles {:?}{}",
                who(p),
                denied.join(", "),
                new.identifier,
                self.perms.update.roles,
                if self.perms.update.owned_by_team { " and to members of the entity's team" } else { "" }
            )
        })
    }

    fn refused(&self, op: EntityOp, id: &str) -> String {
        let g = self.perms.grant(op);
        format!(
            "{} may not {} entities of blueprint {:?} (entity {id:?}): its permissions grant entities.{} to roles \
             {:?}, users {:?}, teams {:?}{}",
            who(&self.principal),
            op.verb(),
            self.blueprint,
            op.key(),
            g.roles,
            g.users,
            g.teams,
            if g.owned_by_team { ", and to members of the entity's team" } else { "" }
        )
    }

    /// Why deleting `stored` is refused, if it is.
    pub fn delete_refusal(&self, stored: &Entity) -> Option<String> {
        (!self.perms.allows(&self.principal, &self.blueprint, EntityOp::Unregister, &stored.team))
            .then(|| self.refused(EntityOp::Unregister, &stored.identifier))
    }
}

/// What `actor` may read: `None` when everything, else a query every read ANDs in (it admits
/// only the entities of readable blueprints, and of team-scoped ones the entities of its teams).
/// A handler that also renders the entities builds the [`Reader`] once ([`reader`]) and takes
/// [`Reader::restriction`] from it, reading the permission documents once.
pub async fn read_restriction(state: &AppState, actor: &Actor) -> ApiResult<Option<Query>> {
    Ok(match reader(state, actor).await? {
        Some(r) => r.restriction()?,
        None => None,
    })
}

/// `actor`'s [`Reader`] and its [`Reader::restriction`], from one read of the permission
/// documents: for handlers that both choose the entities and render them.
pub async fn reader_and_restriction(state: &AppState, actor: &Actor) -> ApiResult<(Option<Reader>, Option<Query>)> {
    let reader = reader(state, actor).await?;
    let restriction = match &reader {
        Some(r) => r.restriction()?,
        None => None,
    };
    Ok((reader, restriction))
}

/// `query` narrowed to what `actor` may read (`None`: no query and no restriction).
pub async fn visible(state: &AppState, actor: &Actor, query: Option<&Query>) -> ApiResult<Option<Query>> {
    let restriction = read_restriction(state, actor).await?;
    Ok(match (restriction, query) {
        (None, q) => q.cloned(),
        (Some(r), None) => Some(r),
        (Some(r), Some(q)) => Some(Query::Group { combinator: Combinator::And, rules: vec![r, q.clone()] }),
    })
}

/// May `actor` read `e`?
pub async fn may_read(state: &AppState, actor: &Actor, e: &Entity) -> ApiResult<bool> {
    if !matches!(&actor.principal, Principal::User(u) if !u.admin) {
        return Ok(true);
    }
    let perms = permissions(state, &actor.org, &e.blueprint).await?;
    Ok(match perms.read_scope(&actor.principal, &e.blueprint) {
        ReadScope::All => true,
        ReadScope::Teams(t) => e.team.iter().any(|x| t.contains(x)),
        ReadScope::Nothing => false,
    })
}

/// What a reader who is not an administrator may read, blueprint by blueprint: for values an
/// answer takes from related entities (mirror properties, relation titles), so an entity the
/// reader may not read shows through none of them.
pub struct Reader {
    principal: Principal,
    scopes: HashMap<String, ReadScope>,
}

impl Reader {
    fn scope(&self, bp: &str) -> ReadScope {
        match self.scopes.get(bp) {
            Some(s) => s.clone(),
            None => BlueprintPermissions::defaults(bp).read_scope(&self.principal, bp),
        }
    }

    /// The query every read of this reader ANDs in ([`read_restriction`]); `None` when it
    /// may read every entity. Blueprints in a fixed order, so one reader's statement is the
    /// same text every time.
    pub fn restriction(&self) -> ApiResult<Option<Query>> {
        let mut bps: Vec<&String> = self.scopes.keys().collect();
        bps.sort();
        let mut rules = Vec::new();
        for bp in bps {
            match &self.scopes[bp] {
                ReadScope::All => {}
                ReadScope::Teams(teams) => rules.push(json!({"combinator": "or", "rules": [
                    {"property": "$blueprint", "operator": "!=", "value": bp},
                    {"property": "$team", "operator": "containsAny", "value": teams}]})),
                ReadScope::Nothing => rules.push(json!({"property": "$blueprint", "operator": "!=", "value": bp})),
            }
        }
        if rules.is_empty() {
            return Ok(None);
        }
        let q = parse_query(&json!({"combinator": "and", "rules": rules}))
            .map_err(|e: FieldError| ApiError::internal("read restriction", e))?;
        Ok(Some(q))
    }

    /// May the reader read every entity of blueprint `bp`?
    pub fn reads_all(&self, bp: &str) -> bool {
        matches!(self.scope(bp), ReadScope::All)
    }

    /// May the reader read `e`?
    pub fn admits(&self, e: &Entity) -> bool {
        match self.scope(&e.blueprint) {
            ReadScope::All => true,
            ReadScope::Teams(t) => e.team.iter().any(|x| t.contains(x)),
            ReadScope::Nothing => false,
        }
    }
}

/// `actor`'s [`Reader`]; `None` for administrators (organization credentials, Admin users), who
/// read everything (no query).
pub async fn reader(state: &AppState, actor: &Actor) -> ApiResult<Option<Reader>> {
    let Principal::User(u) = &actor.principal else { return Ok(None) };
    if u.admin {
        return Ok(None);
    }
    let stored = state.store.all_blueprint_permissions(&actor.org).await?;
    let scopes = stored
        .into_iter()
        .map(|(bp, doc)| {
            let perms =
                BlueprintPermissions::from_stored(&bp, &doc).unwrap_or_else(|| BlueprintPermissions::defaults(&bp));
            let scope = perms.read_scope(&actor.principal, &bp);
            (bp, scope)
        })
        .collect();
    Ok(Some(Reader { principal: actor.principal.clone(), scopes }))
}

/// What of the audit log `actor` may read, given the `blueprint` and `entity` it asks for
/// and the `resources` it filters on (the resources to filter on). Port's rule for non-admins
/// (port-api.md §8.6), the same in the API and the web UI: administrators read the whole log;
/// everyone else the log of one entity they may read, never of a deleted one — so a member sees
/// no entity there that a search would not show them, and none of the organization's other
/// changes (credentials, users, settings).
pub async fn audit_scope(
    state: &AppState,
    actor: &Actor,
    blueprint: Option<&str>,
    entity: Option<&str>,
    resources: Vec<String>,
) -> ApiResult<Vec<String>> {
    if actor.principal.is_admin() {
        return Ok(resources);
    }
    let (Some(bp), Some(id)) = (blueprint, entity) else {
        return Err(ApiError::forbidden(
            "members read the audit log of one entity at a time, one the blueprint's read permissions let them \
             read: give entity and blueprint (the whole log takes the Admin role)",
        ));
    };
    match state.store.get_entity(&actor.org, bp, id).await? {
        Some(e) if may_read(state, actor, &e).await? => {}
        _ => return Err(unreadable(bp, id)),
    }
    if resources.iter().any(|r| r != "entity") {
        return Err(FieldError::new(
            "resources",
            "members read the records of one entity: resources may only be entity",
        )
        .into());
    }
    Ok(vec!["entity".to_string()])
}

/// The answer to a read of an entity `actor` may not read: the same 404 as a missing one, so
/// nothing about it leaks.
pub fn unreadable(bp: &str, id: &str) -> ApiError {
    ApiError::not_found(format!("entity {id:?} of blueprint {bp:?} was not found"))
}

/// Substitute the caller's contextual values in a search query (port-api.md §3.2) before it is
/// parsed: `"My Teams"` in a `$team` rule's value becomes the caller's teams, and
/// `{"context": "user", "property": "$identifier"}` its e-mail, `{"context": "userTeams",
/// "property": "$identifier"}` its teams. Errors are at the value's path under `at`.
pub fn resolve_context(query: &mut Value, p: &Principal, at: &str) -> Result<(), FieldError> {
    resolve_in(query, p, at, 0)
}

fn resolve_in(v: &mut Value, p: &Principal, path: &str, depth: usize) -> Result<(), FieldError> {
    // The parser bounds depth; this walk stops at the same place.
    if depth > portolan_core::search::MAX_DEPTH + 1 {
        return Ok(());
    }
    let Some(obj) = v.as_object_mut() else { return Ok(()) };
    if let Some(Value::Array(rules)) = obj.get_mut("rules") {
        for (i, r) in rules.iter_mut().enumerate() {
            resolve_in(r, p, &portolan_core::error::join_path(path, &format!("rules[{i}]")), depth + 1)?;
        }
        return Ok(());
    }
    let is_team = obj.get("property").and_then(Value::as_str) == Some("$team");
    // `$team = "My Teams"`: belongs to one of them (`=` with a list would compare whole lists).
    if is_team
        && obj.get("value").and_then(Value::as_str) == Some("My Teams")
        && obj.get("operator") == Some(&json!("="))
    {
        obj.insert("operator".into(), json!("containsAny"));
    }
    let vpath = portolan_core::error::join_path(path, "value");
    let Some(value) = obj.get_mut("value") else { return Ok(()) };
    let teams = || -> Result<Vec<Value>, FieldError> {
        match p {
            Principal::User(u) => Ok(u.teams.iter().map(|t| json!(t)).collect()),
            Principal::Machine => Err(FieldError::new(
                &vpath,
                "an organization credential acts for no user, so it has no teams: use a personal credential \
                 (POST /v1/rotate-credentials/{email}) or name the teams",
            )),
        }
    };
    match value {
        Value::String(s) if is_team && s == "My Teams" => *value = Value::Array(teams()?),
        Value::Array(items) if is_team && items.iter().any(|x| x == "My Teams") => {
            let mine = teams()?;
            items.retain(|x| x != "My Teams");
            items.extend(mine);
        }
        Value::Object(o) if o.contains_key("context") => {
            let context = o.get("context").and_then(Value::as_str).unwrap_or_default().to_string();
            let property = o.get("property").and_then(Value::as_str).unwrap_or_default().to_string();
            let Principal::User(u) = p else {
                return Err(FieldError::new(
                    &vpath,
                    "an organization credential acts for no user: contextual values need a personal credential",
                ));
            };
            *value = match (context.as_str(), property.as_str()) {
                ("user", "$identifier" | "email" | "$email") => json!(u.email),
                ("userTeams", "$identifier" | "name" | "$title") => Value::Array(teams()?),
                _ => {
                    return Err(FieldError::new(
                        &vpath,
                        format!(
                            "{{context: {context:?}, property: {property:?}}} is not available: Portolan resolves \
                             {{context: \"user\", property: \"$identifier\"}} (the caller's e-mail) and \
                             {{context: \"userTeams\", property: \"$identifier\"}} (its teams)"
                        ),
                    ));
                }
            };
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use portolan_core::permissions::UserPrincipal;

    /// A reader's restriction is the same query (so the same statement text, one prepared
    /// statement) however its scopes were collected: blueprints in order, not in the hash map's.
    #[test]
    fn a_readers_restriction_lists_blueprints_in_order() {
        let principal = Principal::User(UserPrincipal {
            email: "m@example.com".into(),
            admin: false,
            moderates: vec![],
            teams: vec!["t".into()],
        });
        let reader = || Reader {
            principal: principal.clone(),
            scopes: (0..8)
                .map(|i| {
                    let scope = if i % 2 == 0 { ReadScope::Teams(vec!["t".into()]) } else { ReadScope::Nothing };
                    (format!("bp{i}"), scope)
                })
                .collect(),
        };
        let first = reader().restriction().unwrap().unwrap();
        for _ in 0..20 {
            assert_eq!(reader().restriction().unwrap().unwrap(), first);
        }
        let everything = Reader { principal: principal.clone(), scopes: HashMap::from([("a".into(), ReadScope::All)]) };
        assert!(everything.restriction().unwrap().is_none());
    }
}
