//! Organizations and their API credentials.

use async_trait::async_trait;

use crate::db::{Row, Tx, is_unique_violation};
use crate::sql::Dialect;
use crate::{OrgId, Result, SqlStore, StoreError};

#[derive(Debug, Clone)]
pub struct Org {
    pub id: OrgId,
    pub name: String,
    pub created_at: String,
}

/// An organization's limits (`None`: unlimited), set by the operator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quotas {
    pub max_users: Option<u64>,
    pub max_entities: Option<u64>,
}

/// What an organization uses of its [`Quotas`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub users: u64,
    pub entities: u64,
}

/// An API credential as [`Orgs::credential`] finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub org: OrgId,
    pub secret_hash: String,
    /// A personal credential acts as this user (lower-cased e-mail); `None`: an organization
    /// credential, an administrator machine.
    pub user_email: Option<String>,
    /// Its organization's blueprint version ([`crate::Blueprints::blueprints_version`]), read
    /// in the same statement: a request authenticated with the credential checks its cached
    /// blueprints against this instead of reading the version again.
    pub blueprints_version: i64,
}

#[async_trait]
pub trait Orgs: Send + Sync {
    /// Set an organization's quotas (`NotFound` when there is no such organization). Lowering
    /// a quota below the usage refuses new users / entities; nothing is removed.
    async fn set_quotas(&self, org: &OrgId, quotas: &Quotas) -> Result<()>;
    async fn quotas(&self, org: &OrgId) -> Result<Quotas>;
    /// Users and entities counted now.
    async fn usage(&self, org: &OrgId) -> Result<Usage>;
    async fn create_org(&self, id: &OrgId, name: &str, now: &str) -> Result<Org>;
    async fn org_by_name(&self, name: &str) -> Result<Option<Org>>;
    /// The organization with this id.
    async fn get_org(&self, org: &OrgId) -> Result<Option<Org>>;
    async fn add_credential(
        &self,
        org: &OrgId,
        client_id: &str,
        secret_hash: &str,
        name: &str,
        now: &str,
    ) -> Result<()>;
    /// The credential of a client id (organization and personal ones).
    async fn credential(&self, client_id: &str) -> Result<Option<Credential>>;
    /// Give the user `email` a new personal credential, replacing (revoking) the one it had;
    /// audited (`resourceType` credential, the client ids before and after).
    async fn set_user_credential(
        &self,
        org: &OrgId,
        email: &str,
        client_id: &str,
        secret_hash: &str,
        ctx: &crate::AuditCtx,
    ) -> Result<()>;
    /// The client id and creation time of the personal credential of `email`, if it has one.
    async fn user_credential(&self, org: &OrgId, email: &str) -> Result<Option<(String, String)>>;
    /// The organization's own credentials (not the personal ones): (client id, name, created at).
    async fn list_credentials(&self, org: &OrgId) -> Result<Vec<(String, String, String)>>;
    /// Rename a credential and/or replace its secret hash (rotation); `false` when `org` has
    /// no such credential.
    async fn update_credential(
        &self,
        org: &OrgId,
        client_id: &str,
        name: Option<&str>,
        secret_hash: Option<&str>,
    ) -> Result<bool>;
    /// Delete a credential of `org`; `false` when there is none.
    async fn delete_credential(&self, org: &OrgId, client_id: &str) -> Result<bool>;
}

fn org(r: &Row) -> Org {
    Org { id: OrgId(r.get(0)), name: r.get(1), created_at: r.get(2) }
}

/// The row's quota column as a limit.
pub(crate) fn limit(v: Option<i64>) -> Option<u64> {
    v.map(|n| u64::try_from(n).unwrap_or(0))
}

/// An entity quota, and how many more entities it has room for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Room {
    pub max: u64,
    pub left: u64,
}

/// `Some` when `org`'s entity quota `max` (`None`: no quota; entity writes read it in their
/// transaction with their configuration, `entities::OrgWrites`) would be exceeded by `adding`
/// more entities, counted inside the write's transaction. On PostgreSQL the check holds a
/// per-organization advisory lock until commit, so concurrent batches cannot both pass it;
/// SQLite's single writer serializes anyway. The count reads at most `max + 1` rows, so it
/// costs what the quota allows.
pub(crate) async fn entity_room(tx: &mut Tx, org: &OrgId, max: Option<u64>, adding: usize) -> Result<Option<Room>> {
    let Some(max) = max.filter(|_| adding > 0) else {
        return Ok(None);
    };
    if tx.dialect() == Dialect::Postgres {
        let key = crate::dialect::entity_locks(org, std::iter::once(("", "quota"))).into_iter().collect();
        crate::dialect::lock_entities(tx, key).await?;
    }
    let cap = i64::try_from(max.saturating_add(1)).unwrap_or(i64::MAX);
    let n: i64 = tx
        .q("SELECT COUNT(*) FROM (SELECT 1 FROM entities WHERE org_id = ? AND blueprint NOT IN ('_user', '_team') \
                  LIMIT ?) c")
        .bind(&org.0)
        .bind(cap)
        .fetch_one(&mut *tx)
        .await?
        .get(0);
    let n = u64::try_from(n).unwrap_or(0);
    Ok((n.saturating_add(adding as u64) > max).then_some(Room { max, left: max.saturating_sub(n) }))
}

/// `Some(max)` when `org` has a user quota it has reached (checked in the caller's transaction).
pub(crate) async fn users_at_quota(tx: &mut Tx, org: &OrgId) -> Result<Option<u64>> {
    let row = tx.q("SELECT max_users FROM organizations WHERE id = ?").bind(&org.0).fetch_optional(&mut *tx).await?;
    let Some(max) = row.and_then(|r| limit(r.get::<Option<i64>, _>(0))) else {
        return Ok(None);
    };
    let n: i64 = tx.q("SELECT COUNT(*) FROM users WHERE org_id = ?").bind(&org.0).fetch_one(&mut *tx).await?.get(0);
    Ok((u64::try_from(n).unwrap_or(0) >= max).then_some(max))
}

/// [`Orgs::set_user_credential`] inside the caller's transaction (also a new service account's).
pub(crate) async fn set_user_credential_in(
    tx: &mut Tx,
    org: &OrgId,
    email: &str,
    client_id: &str,
    secret_hash: &str,
    ctx: &crate::AuditCtx,
) -> Result<()> {
    let before: Option<String> = tx
        .q("SELECT client_id FROM credentials WHERE org_id = ? AND user_email = ?")
        .bind(&org.0)
        .bind(email)
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| r.get(0));
    tx.q("DELETE FROM credentials WHERE org_id = ? AND user_email = ?")
        .bind(&org.0)
        .bind(email)
        .execute(&mut *tx)
        .await?;
    tx.q("INSERT INTO credentials(client_id, org_id, secret_hash, name, created_at, user_email) \
          VALUES (?, ?, ?, ?, ?, ?)")
        .bind(client_id)
        .bind(&org.0)
        .bind(secret_hash)
        .bind(format!("personal: {email}"))
        .bind(&ctx.at)
        .bind(email)
        .execute(&mut *tx)
        .await?;
    let (b, a) = (serde_json::json!({"clientId": before}), serde_json::json!({"clientId": client_id}));
    let rec = ctx.record("credential", if before.is_some() { "UPDATE" } else { "CREATE" }, email, Some(&b), Some(&a));
    crate::audit::insert(tx, org, &[rec]).await?;
    Ok(())
}

#[async_trait]
impl Orgs for SqlStore {
    async fn set_quotas(&self, org: &OrgId, q: &Quotas) -> Result<()> {
        let db = &self.db;
        let as_i64 = |v: Option<u64>| v.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
        let n = db
            .q("UPDATE organizations SET max_users = ?, max_entities = ? WHERE id = ?")
            .bind(as_i64(q.max_users))
            .bind(as_i64(q.max_entities))
            .bind(&org.0)
            .execute(db.write())
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("organization {:?}", org.0)));
        }
        Ok(())
    }

    async fn quotas(&self, org: &OrgId) -> Result<Quotas> {
        let db = &self.db;
        let row = db
            .q("SELECT max_users, max_entities FROM organizations WHERE id = ?")
            .bind(&org.0)
            .fetch_optional(db.read())
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("organization {:?}", org.0)))?;
        Ok(Quotas { max_users: limit(row.get(0)), max_entities: limit(row.get(1)) })
    }

    async fn usage(&self, org: &OrgId) -> Result<Usage> {
        let db = &self.db;
        let count = |sql: &'static str| async move {
            let n: i64 = db.q(sql).bind(&org.0).fetch_one(db.read()).await?.get(0);
            Ok::<u64, StoreError>(u64::try_from(n).unwrap_or(0))
        };
        Ok(Usage {
            users: count("SELECT COUNT(*) FROM users WHERE org_id = ?").await?,
            // As the quota counts: not the `_user` and `_team` entities.
            entities: count("SELECT COUNT(*) FROM entities WHERE org_id = ? AND blueprint NOT IN ('_user', '_team')")
                .await?,
        })
    }

    async fn create_org(&self, id: &OrgId, name: &str, now: &str) -> Result<Org> {
        let db = &self.db;
        let mut tx = db.begin().await?;
        let res = tx
            .q("INSERT INTO organizations(id, name, created_at) VALUES (?, ?, ?)")
            .bind(&id.0)
            .bind(name)
            .bind(now)
            .run(&mut tx)
            .await;
        match res {
            Err(e) if is_unique_violation(&e) => return Err(StoreError::Conflict(format!("organization {name:?}"))),
            Err(e) => return Err(e.into()),
            Ok(_) => {}
        }
        // Port's system blueprints `_user` and `_team`, from the start.
        crate::mirror::create_blueprints(&mut tx, id, now).await?;
        tx.commit().await?;
        Ok(Org { id: id.clone(), name: name.to_string(), created_at: now.to_string() })
    }

    async fn org_by_name(&self, name: &str) -> Result<Option<Org>> {
        let db = &self.db;
        let row = db
            .q("SELECT id, name, created_at FROM organizations WHERE name = ?")
            .bind(name)
            .fetch_optional(db.write())
            .await?;
        Ok(row.as_ref().map(org))
    }

    async fn get_org(&self, id: &OrgId) -> Result<Option<Org>> {
        let db = &self.db;
        let row = db
            .q("SELECT id, name, created_at FROM organizations WHERE id = ?")
            .bind(&id.0)
            .fetch_optional(db.read())
            .await?;
        Ok(row.as_ref().map(org))
    }

    async fn add_credential(
        &self,
        org: &OrgId,
        client_id: &str,
        secret_hash: &str,
        name: &str,
        now: &str,
    ) -> Result<()> {
        let db = &self.db;
        db.q("INSERT INTO credentials(client_id, org_id, secret_hash, name, created_at) VALUES (?, ?, ?, ?, ?)")
            .bind(client_id)
            .bind(&org.0)
            .bind(secret_hash)
            .bind(name)
            .bind(now)
            .execute(db.write())
            .await?;
        Ok(())
    }

    async fn credential(&self, client_id: &str) -> Result<Option<Credential>> {
        let db = &self.db;
        let row = db
            .q("SELECT c.org_id, c.secret_hash, c.user_email, COALESCE(v.version, 0) FROM credentials c \
                LEFT JOIN blueprint_versions v ON v.org_id = c.org_id WHERE c.client_id = ?")
            .bind(client_id)
            .fetch_optional(db.read())
            .await?;
        Ok(row.map(|r| Credential {
            org: OrgId(r.get(0)),
            secret_hash: r.get(1),
            user_email: r.get(2),
            blueprints_version: r.get(3),
        }))
    }

    async fn set_user_credential(
        &self,
        org: &OrgId,
        email: &str,
        client_id: &str,
        secret_hash: &str,
        ctx: &crate::AuditCtx,
    ) -> Result<()> {
        let mut tx = self.db.begin().await?;
        set_user_credential_in(&mut tx, org, email, client_id, secret_hash, ctx).await?;
        tx.commit().await
    }

    async fn user_credential(&self, org: &OrgId, email: &str) -> Result<Option<(String, String)>> {
        let db = &self.db;
        let row = db
            .q("SELECT client_id, created_at FROM credentials WHERE org_id = ? AND user_email = ?")
            .bind(&org.0)
            .bind(email)
            .fetch_optional(db.read())
            .await?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
    }

    async fn list_credentials(&self, org: &OrgId) -> Result<Vec<(String, String, String)>> {
        let db = &self.db;
        let rows = db
            .q("SELECT client_id, name, created_at FROM credentials WHERE org_id = ? AND user_email IS NULL \
                ORDER BY created_at")
            .bind(&org.0)
            .fetch_all(db.read())
            .await?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
    }

    async fn update_credential(
        &self,
        org: &OrgId,
        client_id: &str,
        name: Option<&str>,
        secret_hash: Option<&str>,
    ) -> Result<bool> {
        let db = &self.db;
        let done = db
            .q("UPDATE credentials SET name = COALESCE(?, name), secret_hash = COALESCE(?, secret_hash) \
                WHERE org_id = ? AND client_id = ? AND user_email IS NULL")
            .bind(name)
            .bind(secret_hash)
            .bind(&org.0)
            .bind(client_id)
            .execute(db.write())
            .await?;
        Ok(done > 0)
    }

    async fn delete_credential(&self, org: &OrgId, client_id: &str) -> Result<bool> {
        let db = &self.db;
        let done = db
            .q("DELETE FROM credentials WHERE org_id = ? AND client_id = ? AND user_email IS NULL")
            .bind(&org.0)
            .bind(client_id)
            .execute(db.write())
            .await?;
        Ok(done > 0)
    }
}
