//! What `migrate-data` copies: one [`TableSpec`] per tenant table, in an order that satisfies
//! foreign keys, beside the tables copied by hand (`organizations`, `settings`) and the ones
//! not copied ([`NOT_COPIED`]). `tests/schema_parity.rs` migrates a fresh SQLite and a fresh
//! PostgreSQL database and fails when a table or column of the schema is in none of these
//! lists, so a migration that adds one must say here how it moves.

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
];

/// Identity columns (table, column): their ids are shifted past the target's largest.
pub(super) const ID_SPACES: &[(&str, &str)] = &[
    ("entities", "rid"),
    ("audit_log", "id"),
    ("integration_resyncs", "id"),
    ("integration_logs", "id"),
    ("webhook_logs", "id"),
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
    cols: &[("client_id", Col::Text), ("secret_hash", Col::Text), ("name", Col::Text), ("created_at", Col::Text)],
    overriding: false,
    order: &["client_id"],
};

const BLUEPRINTS: TableSpec = TableSpec {
    table: "blueprints",
    json_type: "json",
    cols: &[
        ("identifier", Col::Text),
        ("body", Col::Json),
        ("created_at", Col::Text),
        ("created_by", Col::Text),
        ("updated_at", Col::Text),
        ("updated_by", Col::Text),
    ],
    overriding: false,
    order: &["identifier"],
};

const ENTITIES: TableSpec = TableSpec {
    table: "entities",
    json_type: "jsonb",
    cols: &[
        ("rid", Col::Id("entities")),
        ("blueprint", Col::Text),
        ("identifier", Col::Text),
        ("title", Col::Text),
        ("icon", Col::Text),
        ("team", Col::Json),
        ("properties", Col::Json),
        ("relations", Col::Json),
        ("created_at", Col::Text),
        ("created_by", Col::Text),
        ("updated_at", Col::Text),
        ("updated_by", Col::Text),
        ("datasource", Col::Text),
    ],
    overriding: true,
    order: &["rid"],
};

const RELATIONS: TableSpec = TableSpec {
    table: "entity_relations",
    json_type: "jsonb",
    cols: &[
        ("src_rid", Col::Id("entities")),
        ("relation", Col::Text),
        ("target_blueprint", Col::Text),
        ("target_identifier", Col::Text),
        ("required", Col::Bool),
    ],
    overriding: false,
    order: &["src_rid", "relation", "target_blueprint", "target_identifier"],
};

const AUDIT: TableSpec = TableSpec {
    table: "audit_log",
    json_type: "json",
    cols: &[
        ("id", Col::Id("audit_log")),
        ("at", Col::Text),
        ("resource_type", Col::Text),
        ("action", Col::Text),
        ("status", Col::Text),
        ("identifier", Col::Text),
        ("blueprint", Col::Text),
        ("entity", Col::Text),
        ("origin", Col::Text),
        ("user_id", Col::Text),
        ("diff", Col::Json),
        ("message", Col::Text),
    ],
    overriding: true,
    order: &["id"],
};

const INTEGRATIONS: TableSpec = TableSpec {
    table: "integrations",
    json_type: "json",
    cols: &[
        ("identifier", Col::Text),
        ("data", Col::Json),
        ("config_version", Col::Int),
        ("confirm_next", Col::Bool),
        ("created_at", Col::Text),
        ("created_by", Col::Text),
        ("updated_at", Col::Text),
        ("updated_by", Col::Text),
    ],
    overriding: false,
    order: &["identifier"],
};

const CONFIG_VERSIONS: TableSpec = TableSpec {
    table: "integration_config_versions",
    json_type: "json",
    cols: &[
        ("integration", Col::Text),
        ("version", Col::Int),
        ("config", Col::Json),
        ("created_at", Col::Text),
        ("created_by", Col::Text),
    ],
    overriding: false,
    order: &["integration", "version"],
};

const EXAMPLES: TableSpec = TableSpec {
    table: "integration_examples",
    json_type: "json",
    cols: &[("integration", Col::Text), ("kind", Col::Text), ("examples", Col::Json), ("updated_at", Col::Text)],
    overriding: false,
    order: &["integration", "kind"],
};

const RESYNCS: TableSpec = TableSpec {
    table: "integration_resyncs",
    json_type: "json",
    cols: &[
        ("id", Col::Id("integration_resyncs")),
        ("integration", Col::Text),
        ("status", Col::Text),
        ("started_at", Col::Text),
        ("ended_at", Col::Text),
        ("entities_at_start", Col::Int),
        ("deleted", Col::Int),
        ("refused", Col::Int),
        ("tripped", Col::Bool),
        ("confirmed", Col::Bool),
    ],
    overriding: true,
    order: &["id"],
};

const INTEGRATION_LOGS: TableSpec = TableSpec {
    table: "integration_logs",
    json_type: "json",
    cols: &[
        ("id", Col::Id("integration_logs")),
        ("integration", Col::Text),
        ("resync_id", Col::Id("integration_resyncs")),
        ("at", Col::Text),
        ("level", Col::Text),
        ("source", Col::Text),
        ("event", Col::Text),
        ("message", Col::Text),
        ("extra", Col::Json),
    ],
    overriding: true,
    order: &["id"],
};

/// Incremental sync cursors of the latest Ocean (migration 0007).
const INTEGRATION_CURSORS: TableSpec = TableSpec {
    table: "integration_cursors",
    json_type: "json",
    cols: &[
        ("integration", Col::Text),
        ("kind", Col::Text),
        ("idx", Col::Text),
        ("cursor", Col::Json),
        ("updated_at", Col::Text),
    ],
    overriding: false,
    order: &["integration", "kind", "idx"],
};

/// Webhook secrets stay encrypted as they are: the target's nodes need the same master key
/// (`PORTOLAN_SECRETS_KEY`; on SQLite it was generated into `<data dir>/secrets.key`).
const WEBHOOKS: TableSpec = TableSpec {
    table: "webhooks",
    json_type: "json",
    cols: &[
        ("identifier", Col::Text),
        ("data", Col::Json),
        ("webhook_key", Col::Text),
        ("secret", Col::Text),
        ("secret_key_id", Col::Text),
        ("created_at", Col::Text),
        ("created_by", Col::Text),
        ("updated_at", Col::Text),
        ("updated_by", Col::Text),
    ],
    overriding: false,
    order: &["identifier"],
};

/// Request ids already received (replays stay de-duplicated after the move). `job_id` names
/// the delivery's job, which is history: jobs are not copied.
const WEBHOOK_DELIVERIES: TableSpec = TableSpec {
    table: "webhook_deliveries",
    json_type: "json",
    cols: &[("webhook", Col::Text), ("request_id", Col::Text), ("job_id", Col::Int), ("received_at", Col::Text)],
    overriding: false,
    order: &["webhook", "request_id"],
};

const WEBHOOK_LOGS: TableSpec = TableSpec {
    table: "webhook_logs",
    json_type: "json",
    cols: &[
        ("id", Col::Id("webhook_logs")),
        ("webhook", Col::Text),
        ("delivery", Col::Int),
        ("at", Col::Text),
        ("level", Col::Text),
        ("source", Col::Text),
        ("event", Col::Text),
        ("message", Col::Text),
        ("extra", Col::Json),
    ],
    overriding: true,
    order: &["id"],
};

/// Web UI: the saved initial filter of each catalog page (`filter` is JSON kept as text).
const UI_INITIAL_FILTERS: TableSpec = TableSpec {
    table: "ui_initial_filters",
    json_type: "json",
    cols: &[("blueprint", Col::Text), ("filter", Col::Text), ("updated_at", Col::Text), ("updated_by", Col::Text)],
    overriding: false,
    order: &["blueprint"],
};

const USERS: TableSpec = TableSpec {
    table: "users",
    json_type: "json",
    cols: &[
        ("id", Col::Text),
        ("email", Col::Text),
        ("password_hash", Col::Text),
        ("role", Col::Text),
        ("created_at", Col::Text),
    ],
    overriding: false,
    order: &["id"],
};

const SESSIONS: TableSpec = TableSpec {
    table: "sessions",
    json_type: "json",
    cols: &[
        ("id_hash", Col::Text),
        ("user_id", Col::Text),
        ("csrf", Col::Text),
        ("created_at", Col::Int),
        ("last_seen", Col::Int),
    ],
    overriding: false,
    order: &["id_hash"],
};

const INVITATIONS: TableSpec = TableSpec {
    table: "invitations",
    json_type: "json",
    cols: &[
        ("token_hash", Col::Text),
        ("email", Col::Text),
        ("role", Col::Text),
        ("created_by", Col::Text),
        ("created_at", Col::Int),
        ("expires_at", Col::Int),
        ("used_at", Col::Int),
    ],
    overriding: false,
    order: &["token_hash"],
};

/// Tables copied by `sqlite_to_postgres` itself, not through a [`TableSpec`]: (table, columns).
const COPIED_BY_HAND: &[(&str, &[&str])] = &[
    // The chosen organizations, before their rows.
    ("organizations", &["id", "name", "created_at"]),
    // Only into an empty target (the token signing key, so issued tokens stay valid).
    ("settings", &["key", "value"]),
];

/// Tables of the schema that `migrate-data` does not copy, and why.
pub const NOT_COPIED: &[(&str, &str)] = &[
    ("_sqlx_migrations", "sqlx's own record of applied migrations: each database migrates itself"),
    ("jobs", "background jobs are not copied: move an install with no job queued or running"),
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
