-- Teams and the people in them (port-api.md §8.2). Port keys a team by its name: entities'
-- `team` meta-property holds team names, and every one must be a row here.
-- PostgreSQL: migrations/postgres/0015_teams.sql.

CREATE TABLE teams (
    org_id      TEXT NOT NULL REFERENCES organizations(id),
    name        TEXT NOT NULL,
    id          TEXT NOT NULL UNIQUE,        -- team_<random>
    description TEXT,
    provider    TEXT NOT NULL,               -- Port, or the SSO provider that owns it
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (org_id, name)
);

CREATE TABLE team_members (
    org_id  TEXT NOT NULL,
    team    TEXT NOT NULL,
    email   TEXT NOT NULL,                  -- lower-cased; a user, or an invitation not yet accepted
    PRIMARY KEY (org_id, team, email)
);
CREATE INDEX team_members_email ON team_members(org_id, email);

-- Port's user fields: names and status (Active | Disabled).
ALTER TABLE users ADD COLUMN first_name TEXT;
ALTER TABLE users ADD COLUMN last_name TEXT;
ALTER TABLE users ADD COLUMN status TEXT NOT NULL DEFAULT 'Active';
