//! Users, sessions and invitations of the web UI (PostgreSQL).

use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};

use super::pgq;

use crate::{Invitation, OrgId, Result, Session, StoreError, User};

const USER_COLUMNS: &str = "id, org_id, email, password_hash, role, created_at";
const SESSION_COLUMNS: &str = "id_hash, org_id, user_id, csrf, created_at, last_seen";
const INVITATION_COLUMNS: &str = "token_hash, org_id, email, role, created_by, created_at, expires_at, used_at";

fn user(r: &PgRow) -> User {
    User {
        id: r.get(0),
        org: OrgId(r.get(1)),
        email: r.get(2),
        password_hash: r.get(3),
        role: r.get(4),
        created_at: r.get(5),
    }
}

fn session(r: &PgRow) -> Session {
    Session {
        id_hash: r.get(0),
        org: OrgId(r.get(1)),
        user_id: r.get(2),
        csrf: r.get(3),
        created_at: r.get(4),
        last_seen: r.get(5),
    }
}

fn invitation(r: &PgRow) -> Invitation {
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
    match e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict(format!("user {email:?}")),
        e => e.into(),
    }
}

pub(crate) async fn create_user(pool: &PgPool, u: &User) -> Result<()> {
    pgq("INSERT INTO users(id, org_id, email, password_hash, role, created_at) VALUES (?, ?, ?, ?, ?, ?)")
        .bind(&u.id)
        .bind(&u.org.0)
        .bind(&u.email)
        .bind(&u.password_hash)
        .bind(&u.role)
        .bind(&u.created_at)
        .execute(pool)
        .await
        .map_err(|e| conflict(e, &u.email))?;
    Ok(())
}

pub(crate) async fn user_by_email(pool: &PgPool, email: &str) -> Result<Option<User>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE email = ?");
    let row = pgq(&sql).bind(email).fetch_optional(pool).await?;
    Ok(row.as_ref().map(user))
}

pub(crate) async fn get_user(pool: &PgPool, org: &OrgId, id: &str) -> Result<Option<User>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE org_id = ? AND id = ?");
    let row = pgq(&sql).bind(&org.0).bind(id).fetch_optional(pool).await?;
    Ok(row.as_ref().map(user))
}

pub(crate) async fn list_users(pool: &PgPool, org: &OrgId) -> Result<Vec<User>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE org_id = ? ORDER BY email LIMIT 10000");
    let rows = pgq(&sql).bind(&org.0).fetch_all(pool).await?;
    Ok(rows.iter().map(user).collect())
}

pub(crate) async fn create_session(pool: &PgPool, s: &Session) -> Result<()> {
    pgq("INSERT INTO sessions(id_hash, org_id, user_id, csrf, created_at, last_seen) VALUES (?, ?, ?, ?, ?, ?)")
        .bind(&s.id_hash)
        .bind(&s.org.0)
        .bind(&s.user_id)
        .bind(&s.csrf)
        .bind(s.created_at)
        .bind(s.last_seen)
        .execute(pool)
        .await?;
    Ok(())
}

pub(crate) async fn get_session(pool: &PgPool, id_hash: &str) -> Result<Option<Session>> {
    let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id_hash = ?");
    let row = pgq(&sql).bind(id_hash).fetch_optional(pool).await?;
    Ok(row.as_ref().map(session))
}

pub(crate) async fn touch_session(pool: &PgPool, id_hash: &str, last_seen: i64) -> Result<()> {
    pgq("UPDATE sessions SET last_seen = ? WHERE id_hash = ? AND last_seen < ?")
        .bind(last_seen)
        .bind(id_hash)
        .bind(last_seen)
        .execute(pool)
        .await?;
    Ok(())
}

pub(crate) async fn delete_session(pool: &PgPool, id_hash: &str) -> Result<()> {
    pgq("DELETE FROM sessions WHERE id_hash = ?").bind(id_hash).execute(pool).await?;
    Ok(())
}

pub(crate) async fn create_invitation(pool: &PgPool, i: &Invitation) -> Result<()> {
    pgq("INSERT INTO invitations(token_hash, org_id, email, role, created_by, created_at, expires_at, used_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
    .bind(&i.token_hash)
    .bind(&i.org.0)
    .bind(&i.email)
    .bind(&i.role)
    .bind(&i.created_by)
    .bind(i.created_at)
    .bind(i.expires_at)
    .bind(i.used_at)
    .execute(pool)
    .await?;
    Ok(())
}

pub(crate) async fn get_invitation(pool: &PgPool, token_hash: &str) -> Result<Option<Invitation>> {
    let sql = format!("SELECT {INVITATION_COLUMNS} FROM invitations WHERE token_hash = ?");
    let row = pgq(&sql).bind(token_hash).fetch_optional(pool).await?;
    Ok(row.as_ref().map(invitation))
}

pub(crate) async fn accept_invitation(pool: &PgPool, token_hash: &str, u: &User, now: i64) -> Result<User> {
    let mut tx = pool.begin().await?;
    let claimed =
        pgq("UPDATE invitations SET used_at = ? WHERE token_hash = ? AND used_at IS NULL AND expires_at > ? \
         RETURNING org_id, email, role")
        .bind(now)
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(row) = claimed else {
        return Err(StoreError::NotFound("invitation".into()));
    };
    let created = User { org: OrgId(row.get(0)), email: row.get(1), role: row.get(2), ..u.clone() };
    pgq("INSERT INTO users(id, org_id, email, password_hash, role, created_at) VALUES (?, ?, ?, ?, ?, ?)")
        .bind(&created.id)
        .bind(&created.org.0)
        .bind(&created.email)
        .bind(&created.password_hash)
        .bind(&created.role)
        .bind(&created.created_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| conflict(e, &created.email))?;
    tx.commit().await?;
    Ok(created)
}
