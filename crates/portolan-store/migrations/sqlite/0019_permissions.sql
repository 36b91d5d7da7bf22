-- Roles and permissions (port-api.md §8.1–8.3).
-- A personal credential acts as its user (NULL: an organization credential, an administrator machine).
ALTER TABLE credentials ADD COLUMN user_email TEXT;
CREATE INDEX credentials_user ON credentials(org_id, user_email);
-- The blueprints a user moderates (`<blueprint>-moderator`), a JSON array of identifiers.
ALTER TABLE users ADD COLUMN moderates TEXT NOT NULL DEFAULT '[]';
-- A blueprint's permission document (Port's {entities: {…}}); NULL: the defaults.
ALTER TABLE blueprints ADD COLUMN permissions TEXT;
-- A self-service action's permission document (Port's {execute, approve}); NULL: the defaults.
ALTER TABLE actions ADD COLUMN permissions TEXT;
-- A page's permission document (Port's {read, update}); NULL: the defaults.
ALTER TABLE pages ADD COLUMN permissions TEXT;
