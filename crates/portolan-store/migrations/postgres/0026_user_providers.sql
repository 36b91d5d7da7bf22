-- How each person signs in (Port's `providers` of a user): the single sign-on providers a
-- person has signed in through. "port" (a password) is not stored: it is read from
-- password_hash, a PHC string ("$argon2id$…") for a password and "!sso" for an account made
-- just in time by single sign-on, which has none.
ALTER TABLE users ADD COLUMN sso_providers TEXT NOT NULL DEFAULT '[]';
UPDATE users SET sso_providers = '["OIDC"]' WHERE password_hash = '!sso';
