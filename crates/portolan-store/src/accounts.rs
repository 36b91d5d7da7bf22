//! Users, sessions and invitations of the web UI.

use crate::db::{Conn, Db, Q, Row, is_unique_violation};
use crate::{OrgId, Result, SqlStore, StoreError, mirror};
use async_trait::async_trait;

/// A person who signs in to the web UI.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    /// `usr_<hex>`.
    pub id: String,
    pub org: OrgId,
    /// Lower-cased.
    pub email: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// `admin` or `member`.
    pub role: String,
    pub created_at: String,
}

/// A signed-in browser. Times are Unix seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// SHA-256 (hex) of the session id the cookie holds; the id itself is never stored.
    pub id_hash: String,
    pub org: OrgId,
    pub user_id: String,
    /// The token every state-changing request of this session must carry.
    pub csrf: String,
    pub created_at: i64,
    pub last_seen: i64,
}

/// An invitation link. Times are Unix seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Invitation {
    /// SHA-256 (hex) of the link's token.
    pub token_hash: String,
    pub org: OrgId,
    pub email: String,
    pub role: String,
    pub created_by: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

#[async_trait]
pub trait Accounts: Send + Sync {
    /// Create a user; `Conflict` when the e-mail is taken (in any organization).
    async fn create_user(&self, user: &User) -> Result<()>;
    /// The user with this (lower-cased) e-mail, in any organization: sign-in finds the
    /// organization through it (as [`crate::Orgs::credential`] does through a client id).
    async fn user_by_email(&self, email: &str) -> Result<Option<User>>;
    async fn get_user(&self, org: &OrgId, id: &str) -> Result<Option<User>>;
    /// Users of `org`, by e-mail.
    async fn list_users(&self, org: &OrgId) -> Result<Vec<User>>;
    /// Remove a web user of `org` and end their sessions at once; `false` when there is none.
    /// Their `_user` entity goes too (audited as `ctx`'s).
    async fn delete_user(&self, org: &OrgId, user_id: &str, ctx: &crate::AuditCtx) -> Result<bool>;
    async fn create_session(&self, session: &Session) -> Result<()>;
    /// The session whose id hashes to `id_hash` (the cookie names it, in any organization).
    async fn session(&self, id_hash: &str) -> Result<Option<Session>>;
    /// Record activity on a session (idle expiry counts from `last_seen`).
    async fn touch_session(&self, id_hash: &str, last_seen: i64) -> Result<()>;
    async fn delete_session(&self, id_hash: &str) -> Result<()>;
    /// Spend the single sign-on answer `id` of `org` (a sign-in flow's request ID), remembered
    /// until `expires_at` (Unix seconds): `true` the first time, `false` when it was spent
    /// already (a replayed answer), on any node. Spent ids past their expiry at `now` are
    /// forgotten on the way.
    async fn spend_sso_answer(&self, org: &OrgId, id: &str, expires_at: i64, now: i64) -> Result<bool>;
    async fn create_invitation(&self, invitation: &Invitation) -> Result<()>;
    /// The invitation whose token hashes to `token_hash`, used or not.
    async fn invitation(&self, token_hash: &str) -> Result<Option<Invitation>>;
    /// Use an unused invitation that has not expired at `now`: creates the user (`user.id`,
    /// `password_hash` and `created_at`; organization, e-mail and role from the invitation) and
    /// marks the invitation used, in one transaction. `NotFound` when no usable invitation has
    /// this hash, `Conflict` when the e-mail already has a user.
    async fn accept_invitation(&self, token_hash: &str, user: &User, now: i64) -> Result<User>;
}

const USER_COLUMNS: &str = "id, org_id, email, password_hash, role, created_at";
const SESSION_COLUMNS: &str = "id_hash, org_id, user_id, csrf, created_at, last_seen";
const INVITATION_COLUMNS: &str = "token_hash, org_id, email, role, created_by, created_at, expires_at, used_at";

fn user(r: &Row) -> User {
    User {
        id: r.get(0),
        org: OrgId(r.get(1)),
        email: r.get(2),
        password_hash: r.get(3),
        role: r.get(4),
        created_at: r.get(5),
    }
}

fn session(r: &Row) -> Session {
    Session {
        id_hash: r.get(0),
        org: OrgId(r.get(1)),
        user_id: r.get(2),
        csrf: r.get(3),
        created_at: r.get(4),
        last_seen: r.get(5),
    }
}

fn invitation(r: &Row) -> Invitation {
    Invitation {
        token_hash: r.get(0),
        org: OrgId(r.get(1)),
        email: r.get(2),
        role: r.get(3),
        created_by: r.get(4),
        created_at: r.get(5),
        expires_at: r.get(6),
        used_at: r.get(7),
    }
}

fn conflict(e: sqlx::Error, email: &str) -> StoreError {
    if is_unique_violation(&e) { StoreError::Conflict(format!("user {email:?}")) } else { e.into() }
}

pub(crate) async fn insert_user<'c>(db: &Db, c: impl Into<Conn<'c>>, u: &User) -> Result<()> {
    Q::new(
        db.dialect(),
        "INSERT INTO users(id, org_id, email, password_hash, role, created_at) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(&u.id)
    .bind(&u.org.0)
    .bind(&u.email)
    .bind(&u.password_hash)
    .bind(&u.role)
    .bind(&u.created_at)
    .run(c)
    .await
    .map_err(|e| conflict(e, &u.email))?;
    Ok(())
}

#[async_trait]
impl Accounts for SqlStore {
    async fn create_user(&self, user: &User) -> Result<()> {
        let mut tx = self.db.begin().await?;
        mirror::lock_people(&mut tx, &user.org).await?;
        insert_user(&self.db, &mut tx, user).await?;
        let ctx = mirror::system_ctx(&user.created_at);
        mirror::sync_people(&self.db, &mut tx, &user.org, std::slice::from_ref(&user.email), &ctx).await?;
        tx.commit().await
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<User>> {
        let db = &self.db;
        let row = db
            .q(&format!("SELECT {USER_COLUMNS} FROM users WHERE email = ?"))
            .bind(email)
            .fetch_optional(db.write())
            .await?;
        Ok(row.as_ref().map(user))
    }

    async fn get_user(&self, org: &OrgId, id: &str) -> Result<Option<User>> {
        let db = &self.db;
        let row = db
            .q(&format!("SELECT {USER_COLUMNS} FROM users WHERE org_id = ? AND id = ?"))
            .bind(&org.0)
            .bind(id)
            .fetch_optional(db.read())
            .await?;
        Ok(row.as_ref().map(user))
    }

    async fn list_users(&self, org: &OrgId) -> Result<Vec<User>> {
        let db = &self.db;
        let rows = db
            .q(&format!("SELECT {USER_COLUMNS} FROM users WHERE org_id = ? ORDER BY email LIMIT 10000"))
            .bind(&org.0)
            .fetch_all(db.read())
            .await?;
        Ok(rows.iter().map(user).collect())
    }

    async fn delete_user(&self, org: &OrgId, user_id: &str, ctx: &crate::AuditCtx) -> Result<bool> {
        let mut tx = self.db.begin().await?;
        mirror::lock_people(&mut tx, org).await?;
        let email: Option<String> = tx
            .q("SELECT email FROM users WHERE org_id = ? AND id = ?")
            .bind(&org.0)
            .bind(user_id)
            .fetch_optional(&mut tx)
            .await?
            .map(|r| r.get(0));
        let teams: Vec<String> = tx
            .q("SELECT team FROM team_members WHERE org_id = ? AND email IN (SELECT email FROM users WHERE org_id = ? AND id = ?)")
            .bind(&org.0)
            .bind(&org.0)
            .bind(user_id)
            .fetch_all(&mut tx)
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        tx.q("DELETE FROM sessions WHERE org_id = ? AND user_id = ?")
            .bind(&org.0)
            .bind(user_id)
            .execute(&mut tx)
            .await?;
        tx.q("DELETE FROM team_members WHERE org_id = ? AND email IN (SELECT email FROM users WHERE org_id = ? AND id = ?)")
            .bind(&org.0)
            .bind(&org.0)
            .bind(user_id)
            .execute(&mut tx)
            .await?;
        tx.q("DELETE FROM credentials WHERE org_id = ? AND user_email IN (SELECT email FROM users WHERE org_id = ? AND id = ?)")
            .bind(&org.0)
            .bind(&org.0)
            .bind(user_id)
            .execute(&mut tx)
            .await?;
        let done =
            tx.q("DELETE FROM users WHERE org_id = ? AND id = ?").bind(&org.0).bind(user_id).execute(&mut tx).await?;
        mirror::sync_people(&self.db, &mut tx, org, &email.into_iter().collect::<Vec<_>>(), ctx).await?;
        mirror::sync_teams(&self.db, &mut tx, org, &teams, ctx).await?;
        tx.commit().await?;
        Ok(done > 0)
    }

    async fn create_session(&self, s: &Session) -> Result<()> {
        let db = &self.db;
        db.q("INSERT INTO sessions(id_hash, org_id, user_id, csrf, created_at, last_seen) VALUES (?, ?, ?, ?, ?, ?)")
            .bind(&s.id_hash)
            .bind(&s.org.0)
            .bind(&s.user_id)
            .bind(&s.csrf)
            .bind(s.created_at)
            .bind(s.last_seen)
            .execute(db.write())
            .await?;
        Ok(())
    }

    async fn session(&self, id_hash: &str) -> Result<Option<Session>> {
        let db = &self.db;
        let row = db
            .q(&format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id_hash = ?"))
            .bind(id_hash)
            .fetch_optional(db.write())
            .await?;
        Ok(row.as_ref().map(session))
    }

    async fn touch_session(&self, id_hash: &str, last_seen: i64) -> Result<()> {
        let db = &self.db;
        db.q("UPDATE sessions SET last_seen = ? WHERE id_hash = ? AND last_seen < ?")
            .bind(last_seen)
            .bind(id_hash)
            .bind(last_seen)
            .execute(db.write())
            .await?;
        Ok(())
    }

    async fn delete_session(&self, id_hash: &str) -> Result<()> {
        let db = &self.db;
        db.q("DELETE FROM sessions WHERE id_hash = ?").bind(id_hash).execute(db.write()).await?;
        Ok(())
    }

    async fn spend_sso_answer(&self, org: &OrgId, id: &str, expires_at: i64, now: i64) -> Result<bool> {
        let db = &self.db;
        let mut tx = db.begin().await?;
        tx.q("DELETE FROM sso_spent WHERE expires_at < ?").bind(now).execute(&mut tx).await?;
        let rows = tx
            .q("INSERT INTO sso_spent(org_id, id, expires_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING RETURNING id")
            .bind(&org.0)
            .bind(db.storable(id).into_owned())
            .bind(expires_at)
            .fetch_all(&mut tx)
            .await?;
        tx.commit().await?;
        Ok(!rows.is_empty())
    }

    async fn create_invitation(&self, i: &Invitation) -> Result<()> {
        let db = &self.db;
        db.q("INSERT INTO invitations(token_hash, org_id, email, role, created_by, created_at, expires_at, used_at) \
              VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
            .bind(&i.token_hash)
            .bind(&i.org.0)
            .bind(&i.email)
            .bind(&i.role)
            .bind(&i.created_by)
            .bind(i.created_at)
            .bind(i.expires_at)
            .bind(i.used_at)
            .execute(db.write())
            .await?;
        Ok(())
    }

    async fn invitation(&self, token_hash: &str) -> Result<Option<Invitation>> {
        let db = &self.db;
        let row = db
            .q(&format!("SELECT {INVITATION_COLUMNS} FROM invitations WHERE token_hash = ?"))
            .bind(token_hash)
            .fetch_optional(db.write())
            .await?;
        Ok(row.as_ref().map(invitation))
    }

    async fn accept_invitation(&self, token_hash: &str, u: &User, now: i64) -> Result<User> {
        let mut tx = self.db.begin().await?;
        let claimed = tx
            .q("UPDATE invitations SET used_at = ? WHERE token_hash = ? AND used_at IS NULL AND expires_at > ? \
                RETURNING org_id, email, role")
            .bind(now)
            .bind(token_hash)
            .bind(now)
            .fetch_optional(&mut tx)
            .await?;
        let Some(row) = claimed else {
            return Err(StoreError::NotFound("invitation".into()));
        };
        let created = User { org: OrgId(row.get(0)), email: row.get(1), role: row.get(2), ..u.clone() };
        mirror::lock_people(&mut tx, &created.org).await?;
        if let Some(max) = crate::orgs::users_at_quota(&mut tx, &created.org).await? {
            return Err(StoreError::Invalid(portolan_core::FieldError::new(
                "",
                format!("the organization's quota of {max} users is reached; ask the operator to raise it"),
            )));
        }
        insert_user(&self.db, &mut tx, &created).await?;
        let ctx = mirror::system_ctx(&created.created_at);
        mirror::sync_people(&self.db, &mut tx, &created.org, std::slice::from_ref(&created.email), &ctx).await?;
        tx.commit().await?;
        Ok(created)
    }
}
