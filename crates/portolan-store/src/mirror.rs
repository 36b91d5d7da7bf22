//! The `_user` and `_team` entities ([`portolan_core::system`]) follow the organization's people
//! and teams. Every store method that changes a person, a membership or a team calls
//! [`sync_people`] / [`sync_teams`] inside its own transaction, so the entities never disagree
//! with the tables they mirror, and a crash cannot leave one written without the other. The
//! system properties (role, type, status, moderated blueprints; description, size), the title
//! and the user's `$team` are Portolan's; what an organization added to the blueprints (its own
//! properties and relations) is kept. Entity changes made here are audited and fire
//! automations like any other (an onboarding automation on `_user` creation works).

use std::collections::BTreeSet;

use portolan_core::Entity;
use portolan_core::system::{self, TEAM, USER};

use crate::db::{Db, Tx};
use crate::entities::{OrgWrites, delete_in, get_in_tx, save};
use crate::plan::{empty_entity, entity_record, json_text};
use crate::{AuditCtx, OrgId, Result, StoreError, automations, scorecards};

/// Now, as the store writes times.
pub(crate) fn now_iso() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Who Portolan's own changes are by in the audit log.
pub(crate) fn system_ctx(at: &str) -> AuditCtx {
    AuditCtx { user_id: "portolan".into(), origin: "Portolan".into(), at: at.into(), depth: 0 }
}

/// Serialize the changes to `org`'s people, memberships and teams (PostgreSQL: a transaction-scoped
/// advisory lock; SQLite's one writer does already). Taken first by every transaction that calls
/// [`sync_people`] / [`sync_teams`] or writes through a system entity, before any row or entity
/// lock, so they cannot deadlock on each other (user rows `FOR UPDATE`, `_user` / `_team` rows,
/// advisory entity keys) and a team's `size` counts every membership change.
pub(crate) async fn lock_people(tx: &mut Tx, org: &OrgId) -> Result<()> {
    crate::dialect::lock_entities(tx, crate::dialect::entity_locks(org, std::iter::once(("", "people")))).await
}

/// Create `org`'s system blueprints if it lacks them (`true` when it lacked any).
pub(crate) async fn create_blueprints(tx: &mut Tx, org: &OrgId, at: &str) -> Result<bool> {
    let json = tx.dialect().json_cast();
    let mut created = false;
    for id in [USER, TEAM] {
        let body = system::structure(id).map(|v| v.to_string()).unwrap_or_default();
        let n = tx
            .q(&format!(
                "INSERT INTO blueprints(org_id, identifier, body, created_at, created_by, updated_at, updated_by) \
                 VALUES (?, ?, ?{json}, ?, 'portolan', ?, 'portolan') ON CONFLICT DO NOTHING"
            ))
            .bind(&org.0)
            .bind(id)
            .bind(body)
            .bind(at)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        created |= n > 0;
    }
    Ok(created)
}

/// Give every organization that lacks them its system blueprints and their entities (run after
/// migrations; a no-op once done: one indexed read).
pub(crate) async fn ensure_all(db: &Db) -> Result<()> {
    let rows = db
        .q("SELECT id FROM organizations o WHERE \
            NOT EXISTS (SELECT 1 FROM blueprints b WHERE b.org_id = o.id AND b.identifier = '_team') \
            OR NOT EXISTS (SELECT 1 FROM blueprints b WHERE b.org_id = o.id AND b.identifier = '_user')")
        .fetch_all(db.write())
        .await?;
    let at = now_iso();
    for r in rows {
        let org = OrgId(r.get(0));
        let mut tx = db.begin().await?;
        lock_people(&mut tx, &org).await?;
        if create_blueprints(&mut tx, &org, &at).await? {
            let ctx = system_ctx(&at);
            let emails = names(&mut tx, "SELECT email FROM users WHERE org_id = ? ORDER BY email", &org).await?;
            sync_people(db, &mut tx, &org, &emails, &ctx).await?;
            let teams = names(&mut tx, "SELECT name FROM teams WHERE org_id = ? ORDER BY name", &org).await?;
            sync_teams(db, &mut tx, &org, &teams, &ctx).await?;
        }
        tx.commit().await?;
    }
    Ok(())
}

/// The one text column `sql` selects for `org` (its only parameter).
async fn names(tx: &mut Tx, sql: &str, org: &OrgId) -> Result<Vec<String>> {
    Ok(tx.q(sql).bind(&org.0).fetch_all(&mut *tx).await?.iter().map(|r| r.get(0)).collect())
}

async fn has_blueprint(tx: &mut Tx, org: &OrgId, bp: &str) -> Result<bool> {
    let row = tx
        .q("SELECT 1 FROM blueprints WHERE org_id = ? AND identifier = ?")
        .bind(&org.0)
        .bind(bp)
        .fetch_optional(&mut *tx)
        .await?;
    Ok(row.is_some())
}

/// Write `want` over `before` (its row id and stored entity) when they differ: title, team and
/// properties only (relations are the organization's, written through the entity API). Audited.
async fn put(
    db: &Db,
    tx: &mut Tx,
    org: &OrgId,
    before: Option<(i64, Entity)>,
    mut want: Entity,
    ctx: &AuditCtx,
) -> Result<()> {
    if let Some((_, b)) = &before
        && (b.title == want.title && b.team == want.team && b.properties == want.properties)
    {
        return Ok(());
    }
    want.updated_at = ctx.at.clone();
    want.updated_by = ctx.user_id.clone();
    match &before {
        None => {
            save(tx, org, None, &want, &[]).await?;
        }
        Some((rid, _)) => {
            let jsonb = tx.dialect().jsonb_cast();
            tx.q(&format!(
                "UPDATE entities SET title = ?, team = ?{jsonb}, properties = ?{jsonb}, updated_at = ?, updated_by = ? \
                 WHERE rid = ? AND org_id = ?"
            ))
            .bind(&want.title)
            .bind(json_text(&want.team))
            .bind(json_text(&want.properties))
            .bind(&want.updated_at)
            .bind(&want.updated_by)
            .bind(*rid)
            .bind(&org.0)
            .execute(&mut *tx)
            .await?;
        }
    }
    let action = if before.is_some() { "UPDATE" } else { "CREATE" };
    let rec =
        entity_record(ctx, action, &want.blueprint, &want.identifier, before.as_ref().map(|(_, e)| e), Some(&want));
    let config = OrgWrites::read(tx, org).await?;
    automations::audit_and_record(tx, org, &config.listening, &[rec], ctx.depth).await?;
    scorecards::enqueue_scored(db, tx, org, &[(want.blueprint.as_str(), want.identifier.as_str())], &config.scored)
        .await?;
    Ok(())
}

/// Bring the system entity `bp`/`id` in line: `fill` writes Portolan's fields over the stored
/// entity (or a new one); without `fill` (no such person or team) the entity goes, refused
/// (`RequiredBy`) while another entity requires it.
async fn reconcile(
    db: &Db,
    tx: &mut Tx,
    org: &OrgId,
    (bp, id): (&str, &str),
    fill: Option<impl FnOnce(&mut Entity)>,
    ctx: &AuditCtx,
) -> Result<()> {
    let before = get_in_tx(db, tx, org, bp, id).await?;
    let Some(fill) = fill else {
        if before.is_some() {
            delete_in(db, tx, org, bp, &[id.to_string()], false, ctx).await?;
        }
        return Ok(());
    };
    let mut want =
        before.as_ref().map_or_else(|| empty_entity(bp, id, ctx, Some("Portolan".into())), |(_, e)| e.clone());
    fill(&mut want);
    put(db, tx, org, before, want, ctx).await
}

/// Bring the `_user` entities of `emails` in line with the people (an e-mail with no person:
/// its entity goes).
pub(crate) async fn sync_people(db: &Db, tx: &mut Tx, org: &OrgId, emails: &[String], ctx: &AuditCtx) -> Result<()> {
    if emails.is_empty() || !has_blueprint(tx, org, USER).await? {
        return Ok(());
    }
    let unique: BTreeSet<&String> = emails.iter().collect();
    for email in unique {
        let person = crate::teams::person_in(db, tx, org, email).await?;
        let fill = person.map(|p| {
            move |e: &mut Entity| {
                e.title = Some(system::user_title(email, p.first_name.as_deref(), p.last_name.as_deref()));
                e.team = p.teams.clone();
                e.properties.extend(system::user_properties(&p.role, &p.kind, &p.status, &p.moderates));
            }
        });
        reconcile(db, tx, org, (USER, email), fill, ctx).await?;
    }
    Ok(())
}

/// Bring the `_team` entities of `names` in line with the teams (a name with no team: its
/// entity goes).
pub(crate) async fn sync_teams(db: &Db, tx: &mut Tx, org: &OrgId, names: &[String], ctx: &AuditCtx) -> Result<()> {
    if names.is_empty() || !has_blueprint(tx, org, TEAM).await? {
        return Ok(());
    }
    let unique: BTreeSet<&String> = names.iter().collect();
    for name in unique {
        let team = tx
            .q("SELECT description, (SELECT COUNT(*) FROM team_members m WHERE m.org_id = t.org_id AND m.team = t.name) \
                FROM teams t WHERE t.org_id = ? AND t.name = ?")
            .bind(&org.0)
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        let fill = team.map(|t| {
            let (description, size): (Option<String>, i64) = (t.get(0), t.get(1));
            move |e: &mut Entity| {
                e.title = Some(name.clone());
                e.properties
                    .extend(system::team_properties(description.as_deref(), usize::try_from(size).unwrap_or(0)));
            }
        });
        reconcile(db, tx, org, (TEAM, name), fill, ctx).await?;
    }
    Ok(())
}

/// A team renamed from `old` to `new`: its `_team` entity takes the new identifier, keeping what
/// the organization added to it. Refused while other entities' relations name it (they hold
/// identifiers, and would be left pointing at nothing).
pub(crate) async fn rename_team(tx: &mut Tx, org: &OrgId, old: &str, new: &str, ctx: &AuditCtx) -> Result<()> {
    let inbound = tx
        .q("SELECT e.blueprint, e.identifier, er.relation FROM entity_relations er JOIN entities e ON e.rid = er.src_rid \
            WHERE er.org_id = ? AND er.target_blueprint = ? AND er.target_identifier = ? LIMIT 1")
        .bind(&org.0)
        .bind(TEAM)
        .bind(old)
        .fetch_optional(&mut *tx)
        .await?;
    if let Some(r) = inbound {
        let (bp, id, rel): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        return Err(StoreError::Conflict(format!(
            "team {old:?} cannot be renamed while entities relate to its {TEAM} entity: relation {rel:?} of entity \
             {id:?} (blueprint {bp:?}) names it; point those relations elsewhere first"
        )));
    }
    tx.q("UPDATE entities SET identifier = ?, updated_at = ?, updated_by = ? \
          WHERE org_id = ? AND blueprint = ? AND identifier = ?")
        .bind(new)
        .bind(&ctx.at)
        .bind(&ctx.user_id)
        .bind(&org.0)
        .bind(TEAM)
        .bind(old)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// A person or team change made through its `_user` / `_team` entity (port-api.md §8.2),
/// written with that entity by [`crate::Teams::write_system_entity`].
#[derive(Debug, Clone)]
pub enum SystemChange {
    /// A new service account (`user.email` ends `@serviceaccounts.getport.io`): the user, its
    /// credential (client id, secret hash) and what the entity sets (role, status, teams).
    ServiceAccount { user: crate::User, client_id: String, secret_hash: String, edit: crate::PersonEdit },
    /// Changes to the person `email` (role, status, teams, moderated blueprints).
    Person { email: String, edit: crate::PersonEdit },
    /// Create or change a team (`current`: its name before).
    Team { current: Option<String>, write: crate::TeamWrite, mode: crate::SaveMode },
}

/// One transaction: apply `change` (if any), write the entity `w` over the mirror it produced (the
/// organization's own properties and relations, checked as any entity write), then restore the
/// system fields from the people and teams. A refused entity write undoes the change.
pub(crate) async fn write_system_entity(
    db: &Db,
    org: &OrgId,
    change: Option<SystemChange>,
    w: crate::EntityWrite,
    ctx: &AuditCtx,
) -> Result<crate::plan::Outcome> {
    let mut tx = db.begin().await?;
    lock_people(&mut tx, org).await?;
    let key = (w.blueprint.clone(), w.identifier.clone());
    let locks = crate::dialect::entity_locks(org, std::iter::once((key.0.as_str(), key.1.as_str())));
    crate::dialect::lock_entities(&mut tx, locks).await?;
    let created = get_in_tx(db, &mut tx, org, &key.0, &key.1).await?.is_none();
    match &change {
        None => {}
        Some(SystemChange::ServiceAccount { user, client_id, secret_hash, edit }) => {
            if let Some(max) = crate::orgs::users_at_quota(&mut tx, org).await? {
                return Err(StoreError::Invalid(portolan_core::FieldError::new(
                    "identifier",
                    format!("the organization's quota of {max} users is reached; ask the operator to raise it"),
                )));
            }
            crate::accounts::insert_user(db, &mut tx, user).await?;
            tx.q("UPDATE users SET kind = ? WHERE org_id = ? AND id = ?")
                .bind(system::SERVICE_ACCOUNT)
                .bind(&org.0)
                .bind(&user.id)
                .execute(&mut tx)
                .await?;
            let rec = ctx.record(
                "user",
                "CREATE",
                &user.email,
                None,
                Some(&serde_json::json!({
                "email": user.email, "role": user.role, "type": system::SERVICE_ACCOUNT})),
            );
            crate::audit::insert(&mut tx, org, &[rec]).await?;
            crate::orgs::set_user_credential_in(&mut tx, org, &user.email, client_id, secret_hash, ctx).await?;
            crate::teams::update_person_in(db, &mut tx, org, &user.email, edit, ctx).await?;
        }
        Some(SystemChange::Person { email, edit }) => {
            crate::teams::update_person_in(db, &mut tx, org, email, edit, ctx).await?;
        }
        Some(SystemChange::Team { current, write, mode }) => {
            crate::teams::save_team_in(db, &mut tx, org, current.as_deref(), write, *mode, ctx).await?;
        }
    }
    let mut seq = crate::entities::Sequential::start(&mut tx, org).await?;
    if let Err(rej) = seq.write(db, &mut tx, org, w, ctx).await? {
        return Ok(Err(rej));
    }
    seq.finish(db, &mut tx, org).await?;
    if key.0 == USER {
        sync_people(db, &mut tx, org, std::slice::from_ref(&key.1), ctx).await?;
    } else {
        sync_teams(db, &mut tx, org, std::slice::from_ref(&key.1), ctx).await?;
    }
    let entity = get_in_tx(db, &mut tx, org, &key.0, &key.1).await?.map(|(_, e)| e);
    tx.commit().await?;
    let entity = entity.ok_or_else(|| StoreError::NotFound(format!("entity {:?} of blueprint {:?}", key.1, key.0)))?;
    Ok(Ok(crate::Written { entity, created }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::{Accounts, Blueprints, Entities, Orgs, SaveMode, SqlStore, TeamWrite, Teams, User};

    /// A database from before the system blueprints (their rows removed by hand) gets them, and
    /// the entities of its people and teams, when the store is opened; a second pass is a no-op.
    #[tokio::test]
    async fn ensure_all_backfills_organizations_made_before() {
        let s = SqlStore::in_memory().await.unwrap();
        let org = s.create_org(&OrgId("org_a".into()), "a", "2024-01-01T00:00:00.000Z").await.unwrap().id;
        let user = User {
            id: "usr_p".into(),
            org: org.clone(),
            email: "p@example.com".into(),
            password_hash: "$argon2id$x".into(),
            role: "admin".into(),
            created_at: "2024-01-01T00:00:00.000Z".into(),
        };
        s.create_user(&user).await.unwrap();
        let team = TeamWrite {
            name: "core".into(),
            id: "team_core".into(),
            description: None,
            provider: "Port".into(),
            members: Some(vec!["p@example.com".into()]),
        };
        s.save_team(&org, None, &team, SaveMode::Create, &system_ctx("2024-01-01T00:00:00.000Z")).await.unwrap();
        for sql in ["DELETE FROM entities WHERE blueprint IN ('_user', '_team')", "DELETE FROM blueprints"] {
            s.db.q(sql).execute(s.db.write()).await.unwrap();
        }
        assert!(s.get_blueprint(&org, USER).await.unwrap().is_none());
        for _ in 0..2 {
            ensure_all(&s.db).await.unwrap();
            assert!(s.get_blueprint(&org, TEAM).await.unwrap().is_some());
            let u = s.get_entity(&org, USER, "p@example.com").await.unwrap().expect("_user entity");
            assert_eq!(
                (u.team.as_slice(), &u.properties["port_role"]),
                (&["core".to_string()][..], &serde_json::json!("Admin"))
            );
            assert!(s.get_entity(&org, TEAM, "core").await.unwrap().is_some());
        }
    }
}
