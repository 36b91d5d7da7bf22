-- Teams and the people in them (the same tables as migrations/sqlite/0015_teams.sql).

CREATE TABLE teams (
    org_id      TEXT NOT NULL REFERENCES organizations(id),
    name        TEXT COLLATE "C" NOT NULL,
    id          TEXT NOT NULL UNIQUE,
    description TEXT,
    provider    TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (org_id, name)
);

CREATE TABLE team_members (
    org_id  TEXT NOT NULL,
    team    TEXT COLLATE "C" NOT NULL,
    email   TEXT NOT NULL,                  -- lower-cased; a user, or an invitation not yet accepted
    PRIMARY KEY (org_id, team, email)
);
CREATE INDEX team_members_email ON team_members(org_id, email);

ALTER TABLE users ADD COLUMN first_name TEXT;
ALTER TABLE users ADD COLUMN last_name TEXT;
ALTER TABLE users ADD COLUMN status TEXT NOT NULL DEFAULT 'Active';
