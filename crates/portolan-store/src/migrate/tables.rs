//! What `migrate-data` copies: one [`TableSpec`] per tenant table, in an order that satisfies
//! foreign keys, beside the tables copied by hand (`organizations`, `settings`) and the ones
//! not copied ([`NOT_COPIED`]). `tests/schema_parity.rs` migrates a fresh SQLite and a fresh
//! PostgreSQL database and fails when a table or column of the schema is in none of these
//! lists, so a migration that adds one must say here how it moves.

/// `cols![name: Kind, …]`: a table's columns and how each is copied (names are the schema's).
macro_rules! cols {
    ($($name:ident: $kind:ident $(($space:literal))?),* $(,)?) => {
        &[$((stringify!($name), Col::$kind $(($space))?)),*]
    };
}

/// The tables copied, in an order that satisfies foreign keys.
pub(super) const TABLES: &[&TableSpec] = &[
    &CREDENTIALS,
    &BLUEPRINTS,
    &ENTITIES,
    &RELATIONS,
    &AUDIT,
    &INTEGRATIONS,
    &CONFIG_VERSIONS,
    &EXAMPLES,
    &RESYNCS,
    &INTEGRATION_LOGS,
    &INTEGRATION_CURSORS,
    &WEBHOOKS,
    &WEBHOOK_DELIVERIES,
    &WEBHOOK_LOGS,
    &USERS,
    &SESSIONS,
    &INVITATIONS,
    &UI_INITIAL_FILTERS,
    &ACTIONS,
    &ACTION_RUNS,
    &ACTION_RUN_LOGS,
    &ACTION_RUN_ENTITIES,
    &ORG_SECRETS,
    &PAGES,
    &SCORECARDS,
    &SCORECARD_RESULTS,
    &SCORECARD_LEVEL_HISTORY,
    &AGGREGATION_VALUES,
    &TEAMS,
    &TEAM_MEMBERS,
    &AUTOMATION_TIMER_CURSORS,
];

/// Identity columns (table, column): their ids are shifted past the target's largest.
pub(super) const ID_SPACES: &[(&str, &str)] = &[
    ("entities", "rid"),
    ("audit_log", "id"),
    ("integration_resyncs", "id"),
    ("integration_logs", "id"),
    ("webhook_logs", "id"),
    ("action_runs", "rid"),
    ("action_run_logs", "id"),
    ("scorecard_level_history", "id"),
];

/// How a column is read from SQLite and written to PostgreSQL.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Col {
    /// Text (nullable).
    Text,
    /// JSON text into a `json`/`jsonb` column (nullable).
    Json,
    /// An id (nullable) of the named id space (`ID_SPACES`), shifted by that space's offset.
    Id(&'static str),
    /// An integer (nullable), copied as it is.
    Int,
    /// SQLite integer 0/1 into a boolean.
    Bool,
    /// A floating-point number (nullable), copied as it is.
    Real,
    /// `audit_log.event_depth`: a waiting automation event's depth, copied only while the event
    /// waits (on SQLite, a mark at or below its organization's `automation_cursors` position was
    /// dispatched; PostgreSQL, which clears the marks instead, would dispatch it again).
    EventMark,
}

/// One tenant table: its name, columns, the key its rows are paged by (an integer when the
/// table has one) and the order that makes checksums comparable.
pub(super) struct TableSpec {
    pub(super) table: &'static str,
    pub(super) cols: &'static [(&'static str, Col)],
    /// The PostgreSQL type of its JSON columns: `json` keeps the text (key order is the API's
    /// order), `jsonb` normalizes it.
    pub(super) json_type: &'static str,
    /// `OVERRIDING SYSTEM VALUE` (an identity column is written).
    pub(super) overriding: bool,
    /// Checksum order (each column compared in byte order on both sides).
    pub(super) order: &'static [&'static str],
}

const CREDENTIALS: TableSpec = TableSpec {
    table: "credentials",
    json_type: "jsonb",
    cols: cols![client_id: Text, secret_hash: Text, name: Text, created_at: Text, secret_enc: Text,
        secret_key_id: Text, user_email: Text],
    overriding: false,
    order: &["client_id"],
};

const BLUEPRINTS: TableSpec = TableSpec {
    table: "blueprints",
    json_type: "json",
    cols: cols![identifier: Text, body: Json, created_at: Text, created_by: Text, updated_at: Text,
        updated_by: Text, permissions: Text],
    overriding: false,
    order: &["identifier"],
};

const ENTITIES: TableSpec = TableSpec {
    table: "entities",
    json_type: "jsonb",
    cols: cols![rid: Id("entities"), blueprint: Text, identifier: Text, title: Text, icon: Text, team: Json,
        properties: Json, relations: Json, created_at: Text, created_by: Text, updated_at: Text,
        updated_by: Text, datasource: Text],
    overriding: true,
    order: &["rid"],
};

const RELATIONS: TableSpec = TableSpec {
    table: "entity_relations",
    json_type: "jsonb",
    cols: cols![src_rid: Id("entities"), relation: Text, target_blueprint: Text, target_identifier: Text,
        required: Bool],
    overriding: false,
    order: &["src_rid", "relation", "target_blueprint", "target_identifier"],
};

const AUDIT: TableSpec = TableSpec {
    table: "audit_log",
    json_type: "json",
    cols: cols![id: Id("audit_log"), at: Text, resource_type: Text, action: Text, status: Text,
        identifier: Text, blueprint: Text, entity: Text, origin: Text, user_id: Text, diff: Json, message: Text,
        event_depth: EventMark],
    overriding: true,
    order: &["id"],
};

const INTEGRATIONS: TableSpec = TableSpec {
    table: "integrations",
    json_type: "json",
    cols: cols![identifier: Text, data: Json, config_version: Int, confirm_next: Bool, created_at: Text,
        created_by: Text, updated_at: Text, updated_by: Text],
    overriding: false,
    order: &["identifier"],
};

const CONFIG_VERSIONS: TableSpec = TableSpec {
    table: "integration_config_versions",
    json_type: "json",
    cols: cols![integration: Text, version: Int, config: Json, created_at: Text, created_by: Text],
    overriding: false,
    order: &["integration", "version"],
};

const EXAMPLES: TableSpec = TableSpec {
    table: "integration_examples",
    json_type: "json",
    cols: cols![integration: Text, kind: Text, examples: Json, updated_at: Text],
    overriding: false,
    order: &["integration", "kind"],
};

const RESYNCS: TableSpec = TableSpec {
    table: "integration_resyncs",
    json_type: "json",
    cols: cols![id: Id("integration_resyncs"), integration: Text, status: Text, started_at: Text,
        ended_at: Text, entities_at_start: Int, deleted: Int, refused: Int, tripped: Bool, confirmed: Bool],
    overriding: true,
    order: &["id"],
};

const INTEGRATION_LOGS: TableSpec = TableSpec {
    table: "integration_logs",
    json_type: "json",
    cols: cols![id: Id("integration_logs"), integration: Text, resync_id: Id("integration_resyncs"), at: Text,
        level: Text, source: Text, event: Text, message: Text, extra: Json],
    overriding: true,
    order: &["id"],
};

/// Incremental sync cursors of the latest Ocean (migration 0007).
const INTEGRATION_CURSORS: TableSpec = TableSpec {
    table: "integration_cursors",
    json_type: "json",
    cols: cols![integration: Text, kind: Text, idx: Text, cursor: Json, updated_at: Text],
    overriding: false,
    order: &["integration", "kind", "idx"],
};

/// Webhook secrets stay encrypted as they are: the target's nodes need the same master key
/// (`PORTOLAN_SECRETS_KEY`; on SQLite it was generated into `<data dir>/secrets.key`).
const WEBHOOKS: TableSpec = TableSpec {
    table: "webhooks",
    json_type: "json",
    cols: cols![identifier: Text, data: Json, webhook_key: Text, secret: Text, secret_key_id: Text,
        created_at: Text, created_by: Text, updated_at: Text, updated_by: Text],
    overriding: false,
    order: &["identifier"],
};

/// Request ids already received (replays stay de-duplicated after the move). `job_id` names
/// the delivery's job, which is history: jobs are not copied.
const WEBHOOK_DELIVERIES: TableSpec = TableSpec {
    table: "webhook_deliveries",
    json_type: "json",
    cols: cols![webhook: Text, request_id: Text, job_id: Int, received_at: Text],
    overriding: false,
    order: &["webhook", "request_id"],
};

const WEBHOOK_LOGS: TableSpec = TableSpec {
    table: "webhook_logs",
    json_type: "json",
    cols: cols![id: Id("webhook_logs"), webhook: Text, delivery: Int, at: Text, level: Text, source: Text,
        event: Text, message: Text, extra: Json],
    overriding: true,
    order: &["id"],
};

/// Web UI: the saved initial filter of each catalog page (`filter` is JSON kept as text).
const UI_INITIAL_FILTERS: TableSpec = TableSpec {
    table: "ui_initial_filters",
    json_type: "json",
    cols: cols![blueprint: Text, filter: Text, updated_at: Text, updated_by: Text],
    overriding: false,
    order: &["blueprint"],
};

/// Actions (migration 0012).
const ACTIONS: TableSpec = TableSpec {
    table: "actions",
    json_type: "json",
    cols: cols![identifier: Text, id: Text, data: Json, created_at: Text, created_by: Text, updated_at: Text,
        updated_by: Text, permissions: Text, trigger_event: Text, trigger_target: Text],
    overriding: false,
    order: &["identifier"],
};

/// Runs keep their ids; a claim's lease (`claimed_until`) is copied as it is.
const ACTION_RUNS: TableSpec = TableSpec {
    table: "action_runs",
    json_type: "json",
    cols: cols![rid: Id("action_runs"), id: Text, action: Text, blueprint: Text, entity: Text, status: Text,
        external_run_id: Text, data: Json, trace: Json, pending_execution: Bool, claimed_until: Text,
        installation_id: Text, ended_by_log: Bool, created_by: Text, created_at: Text, updated_by: Text,
        updated_at: Text, ended_at: Text, timeout_at: Text],
    overriding: true,
    order: &["rid"],
};

const ACTION_RUN_LOGS: TableSpec = TableSpec {
    table: "action_run_logs",
    json_type: "json",
    cols: cols![id: Id("action_run_logs"), run_rid: Id("action_runs"), at: Text, message: Text,
        termination_status: Text, status_label: Text, user_id: Text],
    overriding: true,
    order: &["id"],
};

const ACTION_RUN_ENTITIES: TableSpec = TableSpec {
    table: "action_run_entities",
    json_type: "json",
    cols: cols![run_rid: Id("action_runs"), blueprint: Text, identifier: Text, at: Text],
    overriding: false,
    order: &["run_rid", "blueprint", "identifier"],
};

/// How far each watched timer property has fired (migration 0023).
const AUTOMATION_TIMER_CURSORS: TableSpec = TableSpec {
    table: "automation_timer_cursors",
    json_type: "json",
    cols: cols![blueprint: Text, property: Text, checked_until: Text],
    overriding: false,
    order: &["blueprint", "property"],
};

/// Teams and their members (migration 0015).
const TEAMS: TableSpec = TableSpec {
    table: "teams",
    json_type: "json",
    cols: cols![name: Text, id: Text, description: Text, provider: Text, created_at: Text, updated_at: Text],
    overriding: false,
    order: &["name"],
};

const TEAM_MEMBERS: TableSpec = TableSpec {
    table: "team_members",
    json_type: "json",
    cols: cols![team: Text, email: Text],
    overriding: false,
    order: &["team", "email"],
};

/// Pages (migration 0014).
const PAGES: TableSpec = TableSpec {
    table: "pages",
    json_type: "json",
    cols: cols![identifier: Text, data: Json, created_at: Text, created_by: Text, updated_at: Text, updated_by: Text,
        permissions: Text],
    overriding: false,
    order: &["identifier"],
};

/// Organization secrets stay encrypted: the target needs the same master key.
const ORG_SECRETS: TableSpec = TableSpec {
    table: "org_secrets",
    json_type: "json",
    cols: cols![name: Text, value: Text, key_id: Text, description: Text, created_at: Text, created_by: Text,
        updated_at: Text, updated_by: Text],
    overriding: false,
    order: &["name"],
};

const USERS: TableSpec = TableSpec {
    table: "users",
    json_type: "json",
    cols: cols![id: Text, email: Text, password_hash: Text, role: Text, created_at: Text, first_name: Text,
        last_name: Text, status: Text, moderates: Text, sso_providers: Text, kind: Text],
    overriding: false,
    order: &["id"],
};

const SESSIONS: TableSpec = TableSpec {
    table: "sessions",
    json_type: "json",
    cols: cols![id_hash: Text, user_id: Text, csrf: Text, created_at: Int, last_seen: Int],
    overriding: false,
    order: &["id_hash"],
};

const INVITATIONS: TableSpec = TableSpec {
    table: "invitations",
    json_type: "json",
    cols: cols![token_hash: Text, email: Text, role: Text, created_by: Text, created_at: Int, expires_at: Int,
        used_at: Int],
    overriding: false,
    order: &["token_hash"],
};

/// Tables copied by `sqlite_to_postgres` itself, not through a [`TableSpec`]: (table, columns).
const COPIED_BY_HAND: &[(&str, &[&str])] = &[
    // The chosen organizations, before their rows.
    ("organizations", &["id", "name", "created_at", "settings", "max_users", "max_entities"]),
    // Only into an empty target (the token signing key, so issued tokens stay valid).
    ("settings", &["key", "value"]),
];

/// Columns of copied tables that `migrate-data` does not copy, and why: the target computes them
/// from the copied ones (table, column, reason).
pub const DERIVED_COLUMNS: &[(&str, &str, &str)] = &[
    (
        "blueprints",
        "aggregates",
        "computed from the body on both databases (migration 0035: a generated column on PostgreSQL, triggers on SQLite)",
    ),
    (
        "blueprints",
        "changelog_webhook",
        "computed from the body on both databases (migration 0035: a generated column on PostgreSQL, triggers on SQLite)",
    ),
];

/// Tables of the schema that `migrate-data` does not copy, and why.
pub const NOT_COPIED: &[(&str, &str)] = &[
    ("_sqlx_migrations", "sqlx's own record of applied migrations: each database migrates itself"),
    ("jobs", "background jobs are not copied: move an install with no job queued or running"),
    (
        "automation_cursors",
        "SQLite's automation dispatch position: the audit log is copied with only the events after it marked \
         (PostgreSQL clears the marks of dispatched events instead)",
    ),
    (
        "automation_events",
        "events wait only until their dispatch job runs: move an install with no job queued, and none are left",
    ),
    (
        "changelog_events",
        "changes wait only until they are delivered: move an install once GET /v1/blueprints/{id}/changelog shows \
         none pending",
    ),
    ("entity_teams", "derived from entities.team by triggers on both databases: copying the entities fills it"),
    (
        "sso_spent",
        "single sign-on answers already used, kept only for the 10 minutes a sign-in may take: move an install \
         with no sign-in under way",
    ),
    (
        "blueprint_versions",
        "a per-organization change counter for caches; the target starts its own, and every node of the \
         target starts with empty caches",
    ),
];

/// Every table `migrate-data` copies with the columns it copies (`org_id` included where the
/// table is tenant-owned), in copy order.
pub fn copied_columns() -> Vec<(&'static str, Vec<&'static str>)> {
    let by_hand = COPIED_BY_HAND.iter().map(|(t, cols)| (*t, cols.to_vec()));
    let specs =
        TABLES.iter().map(|s| (s.table, std::iter::once("org_id").chain(s.cols.iter().map(|(c, _)| *c)).collect()));
    by_hand.chain(specs).collect()
}

/// Scorecards (migration 0013).
const SCORECARDS: TableSpec = TableSpec {
    table: "scorecards",
    json_type: "json",
    cols: cols![blueprint: Text, identifier: Text, id: Text, data: Json, created_at: Text, created_by: Text,
        updated_at: Text, updated_by: Text],
    overriding: false,
    order: &["blueprint", "identifier"],
};

const SCORECARD_RESULTS: TableSpec = TableSpec {
    table: "scorecard_results",
    json_type: "json",
    cols: cols![blueprint: Text, entity: Text, scorecard: Text, level: Text, rules: Json, updated_at: Text],
    overriding: false,
    order: &["blueprint", "entity", "scorecard"],
};

const SCORECARD_LEVEL_HISTORY: TableSpec = TableSpec {
    table: "scorecard_level_history",
    json_type: "json",
    cols: cols![id: Id("scorecard_level_history"), blueprint: Text, entity: Text, scorecard: Text, level: Text,
        at: Text],
    overriding: true,
    order: &["id"],
};

/// Computed aggregation values (migration 0017): copied, so answers and searches on the target
/// have them before any recompute.
const AGGREGATION_VALUES: TableSpec = TableSpec {
    table: "aggregation_values",
    json_type: "json",
    cols: cols![blueprint: Text, entity: Text, property: Text, value: Real, computed_at: Text],
    overriding: false,
    order: &["blueprint", "entity", "property"],
};
