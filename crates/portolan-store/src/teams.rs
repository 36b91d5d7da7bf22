//! Teams and the people of an organization (port-api.md §8.2). Port keys a team by its name:
//! entities' `team` meta-property holds names, membership lists e-mails. Members are kept by
//! lower-cased e-mail, so an invited person is a member before accepting. Renaming a team
//! renames it in every entity's `team`; deleting one removes it from them. Every change is
//! audited (`resourceType` team / user) in its own transaction.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::audit;
use crate::db::{Db, Row, Tx, is_unique_violation};
use crate::sql::{Dialect, SqlFrag};
use crate::{AuditCtx, OrgId, Result, SaveMode, SqlStore, StoreError, mirror};

/// Most teams an organization lists in one answer, and most members a team holds.
pub const MAX_TEAMS: u32 = 10_000;

/// A team with its members' e-mails (sorted).
#[derive(Debug, Clone, PartialEq)]
pub struct Team {
    pub name: String,
    /// `team_<random>`.
    pub id: String,
    pub description: Option<String>,
    /// `Port`, or the SSO provider that manages it.
    pub provider: String,
    pub created_at: String,
    pub updated_at: String,
    pub members: Vec<String>,
}

/// What [`Teams::save_team`] writes.
#[derive(Debug, Clone, PartialEq)]
pub struct TeamWrite {
    /// The name after the write (a rename when it differs from the name saved under).
    pub name: String,
    /// Used when the team is created.
    pub id: String,
    pub description: Option<String>,
    pub provider: String,
    /// Replace the members (lower-cased e-mails); `None` keeps them.
    pub members: Option<Vec<String>>,
}

/// Port's user fields beside the web account ([`crate::User`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Person {
    pub user_id: String,
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// `admin` or `member`.
    pub role: String,
    /// `Active` or `Disabled`.
    pub status: String,
    pub created_at: String,
    pub teams: Vec<String>,
    /// Blueprints this person moderates (`<blueprint>-moderator` roles), sorted.
    pub moderates: Vec<String>,
    /// Port's `port_type`: `Standard`, or `Service Account` (API only).
    pub kind: String,
    /// How the person signs in (Port's `providers`): `port` with a password, then the single
    /// sign-on providers they have signed in through, in the order of their first use.
    pub providers: Vec<String>,
}

#[async_trait]
pub trait Teams: Send + Sync {
    /// The organization's teams by name (at most [`MAX_TEAMS`]).
    async fn list_teams(&self, org: &OrgId) -> Result<Vec<Team>>;
    async fn get_team(&self, org: &OrgId, name: &str) -> Result<Option<Team>>;
    /// Create (`Conflict` when the name is taken) or update (`NotFound` when `current` is
    /// missing) a team. An update to another name renames it, in every entity's `team` too
    /// (`Conflict` when the new name is taken). Audited.
    async fn save_team(
        &self,
        org: &OrgId,
        current: Option<&str>,
        w: &TeamWrite,
        mode: SaveMode,
        ctx: &AuditCtx,
    ) -> Result<Team>;
    /// Delete a team: its memberships go, and it is removed from every entity's `team`.
    async fn delete_team(&self, org: &OrgId, name: &str, ctx: &AuditCtx) -> Result<()>;
    /// The names among `names` that are not teams of `org` (sorted).
    async fn missing_teams(&self, org: &OrgId, names: &[String]) -> Result<Vec<String>>;
    /// The people of `org` (web accounts with Port's fields and their teams), by e-mail.
    async fn list_people(&self, org: &OrgId) -> Result<Vec<Person>>;
    async fn get_person(&self, org: &OrgId, email: &str) -> Result<Option<Person>>;
    /// Change a person's role (`admin` | `member`), names, status and teams (each `None`: kept),
    /// audited (`resourceType` user). `NotFound` when no such user; teams must exist.
    async fn update_person(&self, org: &OrgId, email: &str, edit: &PersonEdit, ctx: &AuditCtx) -> Result<Person>;
    /// Put an e-mail (a person not yet signed up) in teams, replacing its memberships.
    async fn set_member_teams(&self, org: &OrgId, email: &str, teams: &[String], ctx: &AuditCtx) -> Result<()>;
    /// A person or team change made through its `_user` / `_team` entity, with that entity's
    /// write, in one transaction (`mirror::write_system_entity`).
    async fn write_system_entity(
        &self,
        org: &OrgId,
        change: Option<mirror::SystemChange>,
        write: crate::EntityWrite,
        ctx: &AuditCtx,
    ) -> Result<std::result::Result<crate::Written, crate::WriteRejection>>;
}

/// The changes of [`Teams::update_person`]; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PersonEdit {
    pub role: Option<String>,
    pub first_name: Option<Option<String>>,
    pub last_name: Option<Option<String>>,
    pub status: Option<String>,
    pub teams: Option<Vec<String>>,
    /// Replace the moderated blueprints.
    pub moderates: Option<Vec<String>>,
    /// A single sign-on provider the person signed in through (added to `providers` once).
    pub signed_in_with: Option<String>,
}

const TEAM_COLUMNS: &str = "name, id, description, provider, created_at, updated_at";

fn team_from_row(r: &Row, members: Vec<String>) -> Team {
    Team {
        name: r.get("name"),
        id: r.get("id"),
        description: r.get("description"),
        provider: r.get("provider"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
        members,
    }
}

fn team_json(t: &Team) -> Value {
    json!({"name": t.name, "description": t.description, "provider": t.provider, "users": t.members})
}

/// Members of the named teams (one statement), by team.
async fn members_of(
    db: &Db,
    tx: Option<&mut Tx>,
    org: &OrgId,
    teams: &[String],
) -> Result<BTreeMap<String, Vec<String>>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if teams.is_empty() {
        return Ok(out);
    }
    let sql = format!(
        "SELECT team, email FROM team_members WHERE org_id = ? AND team{} ORDER BY team, email",
        db.dialect().any_of()
    );
    let names: Vec<&str> = teams.iter().map(String::as_str).collect();
    let q = db.q(&sql).bind(&org.0).bind_texts(&names);
    let rows = match tx {
        Some(tx) => q.fetch_all(tx).await?,
        None => q.fetch_all(db.read()).await?,
    };
    for r in rows {
        out.entry(r.get("team")).or_default().push(r.get("email"));
    }
    Ok(out)
}

async fn team_for_update(tx: &mut Tx, org: &OrgId, name: &str) -> Result<Option<Team>> {
    let lock = if tx.dialect() == Dialect::Postgres { " FOR UPDATE" } else { "" };
    let sql = format!("SELECT {TEAM_COLUMNS} FROM teams WHERE org_id = ? AND name = ?{lock}");
    let Some(row) = tx.q(&sql).bind(&org.0).bind(name).fetch_optional(&mut *tx).await? else {
        return Ok(None);
    };
    let sql = "SELECT email FROM team_members WHERE org_id = ? AND team = ? ORDER BY email";
    let members = tx.q(sql).bind(&org.0).bind(name).fetch_all(&mut *tx).await?;
    Ok(Some(team_from_row(&row, members.iter().map(|r| r.get("email")).collect())))
}

/// Make `members` the members of `team` (or, by [`set_teams_of`], `teams` the teams of one
/// e-mail): the old rows go, one row per pair is inserted.
async fn replace_members(tx: &mut Tx, org: &OrgId, team: &str, members: &[String]) -> Result<()> {
    tx.q("DELETE FROM team_members WHERE org_id = ? AND team = ?").bind(&org.0).bind(team).execute(&mut *tx).await?;
    let unique: BTreeSet<&str> = members.iter().map(String::as_str).collect();
    insert_members(tx, org, unique.into_iter().map(|email| (team, email))).await
}

async fn set_teams_of(tx: &mut Tx, org: &OrgId, email: &str, teams: &BTreeSet<&str>) -> Result<()> {
    tx.q("DELETE FROM team_members WHERE org_id = ? AND email = ?").bind(&org.0).bind(email).execute(&mut *tx).await?;
    insert_members(tx, org, teams.iter().map(|team| (*team, email))).await
}

async fn insert_members<'a>(tx: &mut Tx, org: &OrgId, pairs: impl Iterator<Item = (&'a str, &'a str)>) -> Result<()> {
    for (team, email) in pairs {
        tx.q("INSERT INTO team_members(org_id, team, email) VALUES (?, ?, ?)")
            .bind(&org.0)
            .bind(team)
            .bind(email)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// Replace team `old` by `new` (or remove it) in the `team` array of every entity holding it.
async fn retarget_entities(tx: &mut Tx, org: &OrgId, old: &str, new: Option<&str>) -> Result<()> {
    let sql = match (tx.dialect(), new.is_some()) {
        (Dialect::Sqlite, true) => {
            "UPDATE entities SET team = (SELECT json_group_array(CASE WHEN j.value = ? THEN ? ELSE j.value END) \
             FROM json_each(entities.team) j) WHERE org_id = ? AND EXISTS \
             (SELECT 1 FROM json_each(entities.team) k WHERE k.value = ?)"
        }
        (Dialect::Sqlite, false) => {
            "UPDATE entities SET team = (SELECT json_group_array(j.value) FROM json_each(entities.team) j \
             WHERE j.value <> ? OR ? IS NOT NULL) WHERE org_id = ? AND EXISTS \
             (SELECT 1 FROM json_each(entities.team) k WHERE k.value = ?)"
        }
        (Dialect::Postgres, true) => {
            "UPDATE entities SET team = (SELECT COALESCE(jsonb_agg(CASE WHEN j.value = to_jsonb(?::text) \
             THEN to_jsonb(?::text) ELSE j.value END), '[]'::jsonb) FROM jsonb_array_elements(entities.team) j) \
             WHERE org_id = ? AND team @> jsonb_build_array(?::text)"
        }
        (Dialect::Postgres, false) => {
            "UPDATE entities SET team = (SELECT COALESCE(jsonb_agg(j.value), '[]'::jsonb) \
             FROM jsonb_array_elements(entities.team) j WHERE j.value <> to_jsonb(?::text) OR ?::text IS NOT NULL) \
             WHERE org_id = ? AND team @> jsonb_build_array(?::text)"
        }
    };
    tx.q(sql).bind(old).bind(new).bind(&org.0).bind(old).execute(&mut *tx).await?;
    Ok(())
}

/// `pw_mark` is `$` for a password (a PHC string); accounts made by single sign-on hold no
/// password: `!sso:PROVIDER` (`made_by`, so the account names its provider from the statement
/// that creates it), or `!sso` when made before that was recorded.
const PERSON_COLUMNS: &str = "id, email, first_name, last_name, role, status, created_at, moderates, sso_providers, kind, \
    substr(password_hash, 1, 1) AS pw_mark, \
    CASE WHEN substr(password_hash, 1, 5) = '!sso:' THEN substr(password_hash, 6) ELSE '' END AS made_by";

/// Port's `providers` of a person: `port` when they have a password, then the provider that
/// made the account, then those they signed in through (each once).
fn providers(has_password: bool, made_by: String, sso: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = has_password.then(|| "port".to_string()).into_iter().collect();
    for p in std::iter::once(made_by).filter(|m| !m.is_empty()).chain(sso) {
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

async fn people(db: &Db, org: &OrgId, email: Option<&str>) -> Result<Vec<Person>> {
    people_in(db, None, org, email).await
}

/// [`people`], inside `tx` when given: then the person's row is locked until it commits
/// (PostgreSQL `FOR UPDATE`; SQLite has one writer), so an edit's audit diff and answer start
/// from what the edit replaces.
async fn people_in(db: &Db, mut tx: Option<&mut Tx>, org: &OrgId, email: Option<&str>) -> Result<Vec<Person>> {
    let mut f = SqlFrag::new(&format!("SELECT {PERSON_COLUMNS} FROM users WHERE org_id = "));
    f.param(org.0.as_str());
    if let Some(email) = email {
        f.push(" AND email = ").param(email);
    }
    f.push(" ORDER BY email LIMIT ").param(i64::from(MAX_TEAMS));
    if tx.is_some() && db.dialect() == Dialect::Postgres {
        f.push(" FOR UPDATE");
    }
    let rows = match tx.as_deref_mut() {
        Some(tx) => db.frag(&f).fetch_all(tx).await?,
        None => db.frag(&f).fetch_all(db.read()).await?,
    };
    let mut f = SqlFrag::new("SELECT email, team FROM team_members WHERE org_id = ");
    f.param(org.0.as_str());
    if let Some(email) = email {
        f.push(" AND email = ").param(email);
    }
    f.push(" ORDER BY team");
    let mut teams: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let members = match tx {
        Some(tx) => db.frag(&f).fetch_all(tx).await?,
        None => db.frag(&f).fetch_all(db.read()).await?,
    };
    for r in members {
        teams.entry(r.get("email")).or_default().push(r.get("team"));
    }
    Ok(rows
        .iter()
        .map(|r| {
            let email: String = r.get("email");
            Person {
                user_id: r.get("id"),
                teams: teams.remove(&email).unwrap_or_default(),
                email,
                first_name: r.get("first_name"),
                last_name: r.get("last_name"),
                role: r.get("role"),
                status: r.get("status"),
                created_at: r.get("created_at"),
                moderates: serde_json::from_str(&r.get::<String, _>("moderates")).unwrap_or_default(),
                kind: r.get("kind"),
                providers: providers(
                    r.get::<String, _>("pw_mark") == "$",
                    r.get("made_by"),
                    serde_json::from_str(&r.get::<String, _>("sso_providers")).unwrap_or_default(),
                ),
            }
        })
        .collect())
}

/// The person `email` of `org`, read (and on PostgreSQL locked) inside `tx`.
pub(crate) async fn person_in(db: &Db, tx: &mut Tx, org: &OrgId, email: &str) -> Result<Option<Person>> {
    Ok(people_in(db, Some(tx), org, Some(email)).await?.into_iter().next())
}

fn person_json(p: &Person) -> Value {
    json!({"email": p.email, "firstName": p.first_name, "lastName": p.last_name, "role": p.role,
           "status": p.status, "teams": p.teams, "moderates": p.moderates, "providers": p.providers})
}

/// Names among `names` that are not teams of `org`, inside a write's transaction.
pub(crate) async fn missing_in(db: &Db, tx: &mut Tx, org: &OrgId, names: &BTreeSet<&str>) -> Result<BTreeSet<String>> {
    if names.is_empty() {
        return Ok(BTreeSet::new());
    }
    let sql = format!("SELECT name FROM teams WHERE org_id = ? AND name{}", db.dialect().any_of());
    let list: Vec<&str> = names.iter().copied().collect();
    let found: BTreeSet<String> =
        tx.q(&sql).bind(&org.0).bind_texts(&list).fetch_all(&mut *tx).await?.iter().map(|r| r.get(0)).collect();
    Ok(names.iter().filter(|n| !found.contains(**n)).map(|n| n.to_string()).collect())
}

pub(crate) async fn save_team_in(
    db: &Db,
    tx: &mut Tx,
    org: &OrgId,
    current: Option<&str>,
    w: &TeamWrite,
    mode: SaveMode,
    ctx: &AuditCtx,
) -> Result<Team> {
    let key = current.unwrap_or(&w.name);
    let old = team_for_update(tx, org, key).await?;
    let taken = |name: &str| StoreError::Conflict(format!("team {name:?}"));
    let map_unique = |e: sqlx::Error, name: &str| if is_unique_violation(&e) { taken(name) } else { e.into() };
    match (mode, &old) {
        (SaveMode::Create, Some(_)) => return Err(taken(&w.name)),
        (SaveMode::Update, None) => return Err(StoreError::NotFound(format!("team {key:?}"))),
        _ => {}
    }
    let now = ctx.at.clone();
    let members: Vec<String> = match &w.members {
        Some(m) => m.iter().cloned().collect::<BTreeSet<_>>().into_iter().collect(),
        None => old.as_ref().map(|o| o.members.clone()).unwrap_or_default(),
    };
    match &old {
        None => {
            tx.q(&format!("INSERT INTO teams({TEAM_COLUMNS}, org_id) VALUES (?, ?, ?, ?, ?, ?, ?)"))
                .bind(&w.name)
                .bind(&w.id)
                .bind(&w.description)
                .bind(&w.provider)
                .bind(&now)
                .bind(&now)
                .bind(&org.0)
                .run(&mut *tx)
                .await
                .map_err(|e| map_unique(e, &w.name))?;
        }
        Some(o) => {
            tx.q("UPDATE teams SET name = ?, description = ?, updated_at = ? WHERE org_id = ? AND name = ?")
                .bind(&w.name)
                .bind(&w.description)
                .bind(&now)
                .bind(&org.0)
                .bind(&o.name)
                .run(&mut *tx)
                .await
                .map_err(|e| map_unique(e, &w.name))?;
            if o.name != w.name {
                tx.q("DELETE FROM team_members WHERE org_id = ? AND team = ?")
                    .bind(&org.0)
                    .bind(&o.name)
                    .execute(&mut *tx)
                    .await?;
                retarget_entities(tx, org, &o.name, Some(&w.name)).await?;
            }
        }
    }
    replace_members(tx, org, &w.name, &members).await?;
    if let Some(o) = old.as_ref().filter(|o| o.name != w.name) {
        mirror::rename_team(tx, org, &o.name, &w.name, ctx).await?;
    }
    // The people who joined or left, and those whose `$team` names the renamed team.
    let touched: Vec<String> = old.iter().flat_map(|o| o.members.iter()).chain(&members).cloned().collect();
    mirror::sync_people(db, tx, org, &touched, ctx).await?;
    mirror::sync_teams(db, tx, org, std::slice::from_ref(&w.name), ctx).await?;
    let saved = Team {
        name: w.name.clone(),
        id: old.as_ref().map_or_else(|| w.id.clone(), |o| o.id.clone()),
        description: w.description.clone(),
        provider: old.as_ref().map_or_else(|| w.provider.clone(), |o| o.provider.clone()),
        created_at: old.as_ref().map_or_else(|| now.clone(), |o| o.created_at.clone()),
        updated_at: now,
        members,
    };
    let action = if old.is_some() { "UPDATE" } else { "CREATE" };
    let before = old.as_ref().map(team_json);
    let rec = ctx.record("team", action, key, before.as_ref(), Some(&team_json(&saved)));
    audit::insert(tx, org, &[rec]).await?;
    Ok(saved)
}

pub(crate) async fn update_person_in(
    db: &Db,
    tx: &mut Tx,
    org: &OrgId,
    email: &str,
    edit: &PersonEdit,
    ctx: &AuditCtx,
) -> Result<Person> {
    let before = people_in(db, Some(&mut *tx), org, Some(email)).await?.into_iter().next();
    let Some(before) = before else {
        return Err(StoreError::NotFound(format!("user {email:?}")));
    };
    if let Some(teams) = &edit.teams {
        let set: BTreeSet<&str> = teams.iter().map(String::as_str).collect();
        let missing = missing_in(db, tx, org, &set).await?;
        if let Some(m) = missing.into_iter().next() {
            return Err(StoreError::NotFound(format!("team {m:?}")));
        }
        set_teams_of(tx, org, email, &set).await?;
    }
    let after = Person {
        role: edit.role.clone().unwrap_or_else(|| before.role.clone()),
        first_name: edit.first_name.clone().unwrap_or_else(|| before.first_name.clone()),
        last_name: edit.last_name.clone().unwrap_or_else(|| before.last_name.clone()),
        status: edit.status.clone().unwrap_or_else(|| before.status.clone()),
        teams: match &edit.teams {
            Some(t) => t.iter().cloned().collect::<BTreeSet<_>>().into_iter().collect(),
            None => before.teams.clone(),
        },
        moderates: match &edit.moderates {
            Some(m) => m.iter().cloned().collect::<BTreeSet<_>>().into_iter().collect(),
            None => before.moderates.clone(),
        },
        providers: match &edit.signed_in_with {
            Some(p) if !before.providers.contains(p) => {
                before.providers.iter().cloned().chain(std::iter::once(p.clone())).collect()
            }
            _ => before.providers.clone(),
        },
        ..before.clone()
    };
    let sso: Vec<&String> = after.providers.iter().filter(|p| *p != "port").collect();
    // Only the columns the edit names are written (`CASE WHEN <named> THEN <new> ELSE
    // <column>`): `before` is read under the row lock, so this is belt and braces against
    // writing back a column another edit changed.
    tx.q("UPDATE users SET role = CASE WHEN ? THEN ? ELSE role END, \
          first_name = CASE WHEN ? THEN ? ELSE first_name END, last_name = CASE WHEN ? THEN ? ELSE last_name END, \
          status = CASE WHEN ? THEN ? ELSE status END, moderates = CASE WHEN ? THEN ? ELSE moderates END, \
          sso_providers = CASE WHEN ? THEN ? ELSE sso_providers END \
          WHERE org_id = ? AND email = ?")
        .bind(edit.role.is_some())
        .bind(&after.role)
        .bind(edit.first_name.is_some())
        .bind(&after.first_name)
        .bind(edit.last_name.is_some())
        .bind(&after.last_name)
        .bind(edit.status.is_some())
        .bind(&after.status)
        .bind(edit.moderates.is_some())
        .bind(serde_json::to_string(&after.moderates).unwrap_or_else(|_| "[]".into()))
        .bind(edit.signed_in_with.is_some())
        .bind(serde_json::to_string(&sso).unwrap_or_else(|_| "[]".into()))
        .bind(&org.0)
        .bind(email)
        .execute(&mut *tx)
        .await?;
    if after.status == "Disabled" {
        tx.q("DELETE FROM sessions WHERE org_id = ? AND user_id = ?")
            .bind(&org.0)
            .bind(&after.user_id)
            .execute(&mut *tx)
            .await?;
    }
    let rec = ctx.record("user", "UPDATE", email, Some(&person_json(&before)), Some(&person_json(&after)));
    audit::insert(tx, org, &[rec]).await?;
    mirror::sync_people(db, tx, org, &[email.to_string()], ctx).await?;
    if edit.teams.is_some() {
        let sizes: Vec<String> = before.teams.iter().chain(&after.teams).cloned().collect();
        mirror::sync_teams(db, tx, org, &sizes, ctx).await?;
    }
    Ok(after)
}

#[async_trait]
impl Teams for SqlStore {
    async fn list_teams(&self, org: &OrgId) -> Result<Vec<Team>> {
        let db = &self.db;
        let sql = format!("SELECT {TEAM_COLUMNS} FROM teams WHERE org_id = ? ORDER BY name LIMIT ?");
        let rows = db.q(&sql).bind(&org.0).bind(i64::from(MAX_TEAMS)).fetch_all(db.read()).await?;
        let names: Vec<String> = rows.iter().map(|r| r.get("name")).collect();
        let mut members = members_of(db, None, org, &names).await?;
        Ok(rows
            .iter()
            .map(|r| {
                let name: String = r.get("name");
                team_from_row(r, members.remove(&name).unwrap_or_default())
            })
            .collect())
    }

    async fn get_team(&self, org: &OrgId, name: &str) -> Result<Option<Team>> {
        let db = &self.db;
        if db.refuses(name) {
            return Ok(None);
        }
        let sql = format!("SELECT {TEAM_COLUMNS} FROM teams WHERE org_id = ? AND name = ?");
        let Some(row) = db.q(&sql).bind(&org.0).bind(name).fetch_optional(db.read()).await? else {
            return Ok(None);
        };
        let mut members = members_of(db, None, org, &[name.to_string()]).await?;
        Ok(Some(team_from_row(&row, members.remove(name).unwrap_or_default())))
    }

    async fn save_team(
        &self,
        org: &OrgId,
        current: Option<&str>,
        w: &TeamWrite,
        mode: SaveMode,
        ctx: &AuditCtx,
    ) -> Result<Team> {
        let mut tx = self.db.begin().await?;
        mirror::lock_people(&mut tx, org).await?;
        let saved = save_team_in(&self.db, &mut tx, org, current, w, mode, ctx).await?;
        tx.commit().await?;
        Ok(saved)
    }

    async fn delete_team(&self, org: &OrgId, name: &str, ctx: &AuditCtx) -> Result<()> {
        let db = &self.db;
        let mut tx = db.begin().await?;
        mirror::lock_people(&mut tx, org).await?;
        let Some(old) = team_for_update(&mut tx, org, &db.storable(name)).await? else {
            return Err(StoreError::NotFound(format!("team {name:?}")));
        };
        for sql in [
            "DELETE FROM team_members WHERE org_id = ? AND team = ?",
            "DELETE FROM teams WHERE org_id = ? AND name = ?",
        ] {
            tx.q(sql).bind(&org.0).bind(&old.name).execute(&mut tx).await?;
        }
        retarget_entities(&mut tx, org, &old.name, None).await?;
        mirror::sync_people(db, &mut tx, org, &old.members, ctx).await?;
        mirror::sync_teams(db, &mut tx, org, std::slice::from_ref(&old.name), ctx).await?;
        let rec = ctx.record("team", "DELETE", &old.name, Some(&team_json(&old)), None);
        audit::insert(&mut tx, org, &[rec]).await?;
        tx.commit().await
    }

    async fn missing_teams(&self, org: &OrgId, names: &[String]) -> Result<Vec<String>> {
        let db = &self.db;
        let mut tx = db.begin().await?;
        let set: BTreeSet<&str> = names.iter().map(String::as_str).collect();
        let missing = missing_in(db, &mut tx, org, &set).await?;
        tx.commit().await?;
        Ok(missing.into_iter().collect())
    }

    async fn list_people(&self, org: &OrgId) -> Result<Vec<Person>> {
        people(&self.db, org, None).await
    }

    async fn get_person(&self, org: &OrgId, email: &str) -> Result<Option<Person>> {
        Ok(people(&self.db, org, Some(email)).await?.into_iter().next())
    }

    async fn update_person(&self, org: &OrgId, email: &str, edit: &PersonEdit, ctx: &AuditCtx) -> Result<Person> {
        let mut tx = self.db.begin().await?;
        mirror::lock_people(&mut tx, org).await?;
        let after = update_person_in(&self.db, &mut tx, org, email, edit, ctx).await?;
        tx.commit().await?;
        Ok(after)
    }

    async fn set_member_teams(&self, org: &OrgId, email: &str, teams: &[String], ctx: &AuditCtx) -> Result<()> {
        let db = &self.db;
        let mut tx = db.begin().await?;
        mirror::lock_people(&mut tx, org).await?;
        let set: BTreeSet<&str> = teams.iter().map(String::as_str).collect();
        if let Some(m) = missing_in(db, &mut tx, org, &set).await?.into_iter().next() {
            return Err(StoreError::NotFound(format!("team {m:?}")));
        }
        let old: Vec<String> = tx
            .q("SELECT team FROM team_members WHERE org_id = ? AND email = ?")
            .bind(&org.0)
            .bind(email)
            .fetch_all(&mut tx)
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        set_teams_of(&mut tx, org, email, &set).await?;
        mirror::sync_people(db, &mut tx, org, &[email.to_string()], ctx).await?;
        let sizes: Vec<String> = old.into_iter().chain(teams.iter().cloned()).collect();
        mirror::sync_teams(db, &mut tx, org, &sizes, ctx).await?;
        tx.commit().await
    }

    async fn write_system_entity(
        &self,
        org: &OrgId,
        change: Option<mirror::SystemChange>,
        write: crate::EntityWrite,
        ctx: &AuditCtx,
    ) -> Result<std::result::Result<crate::Written, crate::WriteRejection>> {
        mirror::write_system_entity(&self.db, org, change, write, ctx).await
    }
}
