//! Organizations and their API credentials.

use async_trait::async_trait;

use crate::db::{Row, is_unique_violation};
use crate::{OrgId, Result, SqlStore, StoreError};

#[derive(Debug, Clone)]
pub struct Org {
    pub id: OrgId,
    pub name: String,
    pub created_at: String,
}

#[async_trait]
pub trait Orgs: Send + Sync {
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
    /// The organization and secret hash of a client id.
    async fn credential(&self, client_id: &str) -> Result<Option<(OrgId, String)>>;
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

#[async_trait]
impl Orgs for SqlStore {
    async fn create_org(&self, id: &OrgId, name: &str, now: &str) -> Result<Org> {
        let db = &self.db;
        let res = db
            .q("INSERT INTO organizations(id, name, created_at) VALUES (?, ?, ?)")
            .bind(&id.0)
            .bind(name)
            .bind(now)
            .run(db.write())
            .await;
        match res {
            Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(format!("organization {name:?}"))),
            Err(e) => Err(e.into()),
            Ok(_) => Ok(Org { id: id.clone(), name: name.to_string(), created_at: now.to_string() }),
        }
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

    async fn credential(&self, client_id: &str) -> Result<Option<(OrgId, String)>> {
        let db = &self.db;
        let row = db
            .q("SELECT org_id, secret_hash FROM credentials WHERE client_id = ?")
            .bind(client_id)
            .fetch_optional(db.read())
            .await?;
        Ok(row.map(|r| (OrgId(r.get(0)), r.get(1))))
    }

    async fn list_credentials(&self, org: &OrgId) -> Result<Vec<(String, String, String)>> {
        let db = &self.db;
        let rows = db
            .q("SELECT client_id, name, created_at FROM credentials WHERE org_id = ? ORDER BY created_at")
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
                WHERE org_id = ? AND client_id = ?")
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
            .q("DELETE FROM credentials WHERE org_id = ? AND client_id = ?")
            .bind(&org.0)
            .bind(client_id)
            .execute(db.write())
            .await?;
        Ok(done > 0)
    }
}
