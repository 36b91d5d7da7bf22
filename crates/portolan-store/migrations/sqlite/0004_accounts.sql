-- Local accounts of the web UI: users (argon2 password hashes), server-side sessions and
-- invitation links. Tokens (session ids, invitation tokens) are stored as their SHA-256 only.
-- Times of sessions and invitations are Unix seconds, so expiry is a comparison of integers.

CREATE TABLE users (
    id            TEXT PRIMARY KEY NOT NULL,            -- usr_<hex>
    org_id        TEXT NOT NULL REFERENCES organizations(id),
    email         TEXT NOT NULL UNIQUE,                 -- lower-cased; sign-in finds the org by it
    password_hash TEXT NOT NULL,                        -- argon2id, PHC string
    role          TEXT NOT NULL,                        -- admin | member
    created_at    TEXT NOT NULL
);
CREATE INDEX users_org ON users(org_id);

CREATE TABLE sessions (
    id_hash    TEXT PRIMARY KEY NOT NULL,               -- SHA-256 of the cookie's session id
    org_id     TEXT NOT NULL REFERENCES organizations(id),
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf       TEXT NOT NULL,                           -- the session's CSRF token
    created_at INTEGER NOT NULL,                        -- Unix seconds: absolute expiry counts from here
    last_seen  INTEGER NOT NULL                         -- Unix seconds: idle expiry counts from here
);
CREATE INDEX sessions_user ON sessions(user_id);

CREATE TABLE invitations (
    token_hash TEXT PRIMARY KEY NOT NULL,               -- SHA-256 of the link's token
    org_id     TEXT NOT NULL REFERENCES organizations(id),
    email      TEXT NOT NULL,
    role       TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
);
CREATE INDEX invitations_org ON invitations(org_id);
