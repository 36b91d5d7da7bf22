#![doc = include_str!("../README.md")]

mod config;
mod keys;
mod migrate;
mod tls;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use portolan_server::auth::{hash_secret, new_credentials};
use portolan_server::{ApiConfig, AppState};
use portolan_store::{OrgId, PgStore, SqliteStore, Store};
use serde_json::json;

use crate::config::{Config, LogFormat, Overrides};

/// The name of the organization `portolan init` creates.
const DEFAULT_ORG: &str = "default";

#[derive(Parser, Debug)]
#[command(name = "portolan", version, about = "A self-hosted internal developer portal that speaks Port's API")]
struct Cli {
    /// TOML configuration file [env: PORTOLAN_CONFIG]
    #[arg(long, global = true)]
    config: Option<std::path::PathBuf>,
    /// Directory of the embedded database [env: PORTOLAN_DATA_DIR] [default: ./portolan-data]
    #[arg(long, global = true)]
    data_dir: Option<std::path::PathBuf>,
    /// PostgreSQL instead of the embedded database: postgres://user:password@host:5432/db
    /// [env: PORTOLAN_DATABASE_URL]
    #[arg(long, global = true)]
    database_url: Option<String>,
    /// Log format: text or json [env: PORTOLAN_LOG_FORMAT]
    #[arg(long, global = true)]
    log_format: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server.
    Serve {
        /// Address to listen on [env: PORTOLAN_LISTEN] [default: 127.0.0.1:7070]
        #[arg(long)]
        listen: Option<String>,
        /// Serve HTTPS with this PEM certificate chain (server certificate first, then its
        /// intermediates) [env: PORTOLAN_TLS_CERT]
        #[arg(long)]
        tls_cert: Option<PathBuf>,
        /// The PEM private key of that certificate [env: PORTOLAN_TLS_KEY]
        #[arg(long)]
        tls_key: Option<PathBuf>,
    },
    /// Create the default organization and print its API credentials (idempotent), and, while
    /// the organization has no user, a one-time link that sets the first admin's password.
    Init {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// E-mail of the first admin of the web UI.
        #[arg(long, default_value = "admin@localhost.localdomain")]
        admin_email: String,
    },
    /// Export blueprints and their entities: JSON, GitOps YAML, or Terraform HCL in the shapes
    /// of Port's Terraform provider (port_blueprint, port_entity).
    Export {
        /// json, yaml or hcl.
        #[arg(long, default_value = "json")]
        format: String,
        /// Export this blueprint (repeatable); default: every blueprint.
        #[arg(long = "blueprint")]
        blueprints: Vec<String>,
        /// The organization (default: the one `portolan init` created).
        #[arg(long, default_value = DEFAULT_ORG)]
        org: String,
        /// Blueprints only, no entities.
        #[arg(long)]
        no_entities: bool,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<std::path::PathBuf>,
    },
    /// Manage organizations.
    Org {
        #[command(subcommand)]
        command: OrgCommand,
    },
    /// Print the effective configuration (secrets redacted) and exit.
    Config,
    /// Copy an embedded (SQLite) install into PostgreSQL: catalog, audit log and credentials,
    /// verified by counts and checksums printed at the end. Stop the server first.
    MigrateData {
        /// The SQLite database file, or the data directory holding portolan.sqlite.
        #[arg(long)]
        from: std::path::PathBuf,
        /// The target: postgres://user:password@host:5432/db (migrations are applied to it).
        #[arg(long)]
        to: String,
        /// Copy only this organization (repeatable); default: every organization.
        #[arg(long = "org")]
        orgs: Vec<String>,
        /// Add to a target that already has organizations (the copied ones must not exist there).
        #[arg(long)]
        allow_non_empty: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum OrgCommand {
    /// Create an organization and print its API credentials.
    Create {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Show or set an organization's quotas (web users and entities; `none` = unlimited). The
    /// organization cannot change them itself.
    Quota {
        name: String,
        /// Most web users (a number, or `none`).
        #[arg(long, value_parser = parse_limit)]
        max_users: Option<Limit>,
        /// Most entities (a number, or `none`).
        #[arg(long, value_parser = parse_limit)]
        max_entities: Option<Limit>,
        #[arg(long)]
        json: bool,
    },
}

/// A quota given on the command line: a number, or `none` (unlimited).
#[derive(Debug, Clone, Copy)]
struct Limit(Option<u64>);

fn parse_limit(s: &str) -> Result<Limit, String> {
    if s.eq_ignore_ascii_case("none") {
        return Ok(Limit(None));
    }
    s.parse::<u64>().map(|n| Limit(Some(n))).map_err(|_| format!("{s:?} is not a number or `none`"))
}

/// mimalloc for the server and its jq worker processes (the same binary): see the workspace's
/// `Cargo.toml`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The hidden argument that makes this binary a jq worker process (`portolan_jq::Isolation`).
const JQ_WORKER_ARG: &str = "__jq-worker";

fn main() -> std::process::ExitCode {
    // A jq worker process of a serving node: no configuration, no logging, no runtime.
    if std::env::args_os().nth(1).is_some_and(|a| a == JQ_WORKER_ARG) {
        return portolan_jq::worker_main();
    }
    let cli = Cli::parse();
    let over = Overrides {
        config_file: cli.config.clone(),
        listen: match &cli.command {
            Command::Serve { listen, .. } => listen.clone(),
            _ => None,
        },
        tls_cert: match &cli.command {
            Command::Serve { tls_cert, .. } => tls_cert.clone(),
            _ => None,
        },
        tls_key: match &cli.command {
            Command::Serve { tls_key, .. } => tls_key.clone(),
            _ => None,
        },
        data_dir: cli.data_dir.clone(),
        log_format: cli.log_format.clone(),
        database_url: cli.database_url.clone(),
    };
    let cfg = match config::load(&over) {
        Ok(c) => c,
        Err(problems) => {
            eprintln!(
                "portolan: the configuration is invalid ({} problem{}):",
                problems.len(),
                if problems.len() == 1 { "" } else { "s" }
            );
            for p in problems {
                eprintln!("  - {p}");
            }
            return std::process::ExitCode::from(2);
        }
    };
    init_logging(&cfg);
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("portolan: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli.command, cfg)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("portolan: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging(cfg: &Config) {
    // PostgreSQL's notices ("relation … already exists, skipping" on every migration check) are
    // not news; a log_level naming sqlx explicitly still overrides this.
    let filter = tracing_subscriber::EnvFilter::try_new(format!("sqlx::postgres::notice=warn,{}", cfg.log_level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match cfg.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// The database this node uses: the embedded SQLite file, or PostgreSQL.
enum Db {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl Db {
    fn shared(&self) -> Arc<dyn Store> {
        match self {
            Db::Sqlite(s) => Arc::new(s.clone()),
            Db::Postgres(s) => Arc::new(s.clone()),
        }
    }

    async fn close(&self) {
        match self {
            Db::Sqlite(s) => s.close().await,
            Db::Postgres(s) => s.close().await,
        }
    }

    /// Where the data lives, for logs (no password).
    fn describe(cfg: &Config) -> String {
        match &cfg.database_url {
            Some(url) => config::redact_url(url),
            None => cfg.data_dir.join("portolan.sqlite").display().to_string(),
        }
    }
}

impl std::ops::Deref for Db {
    type Target = dyn Store;
    fn deref(&self) -> &(dyn Store + 'static) {
        match self {
            Db::Sqlite(s) => s,
            Db::Postgres(s) => s,
        }
    }
}

async fn open_store(cfg: &Config) -> anyhow::Result<Db> {
    if let Some(url) = &cfg.database_url {
        // sqlx's errors do not echo the URL; ours name it without the password.
        let store = PgStore::connect_with_pool_size(url, cfg.database_pool_size)
            .await
            .with_context(|| format!("cannot open the PostgreSQL database {}", config::redact_url(url)))?;
        return Ok(Db::Postgres(store));
    }
    let data_dir: &Path = &cfg.data_dir;
    let path = data_dir.join("portolan.sqlite");
    owner_only(data_dir, &path)?;
    let store =
        SqliteStore::open(&path).await.with_context(|| format!("cannot open the database {}", path.display()))?;
    Ok(Db::Sqlite(store))
}

/// The data directory (0700) and the database with its WAL and shared-memory files (0600) are
/// readable by this user only: they hold every organization's data and the keys. SQLite gives
/// `-wal` and `-shm` the database file's mode, so the database is created 0600 before SQLite
/// opens it. An existing installation with looser modes is tightened, and the log says so.
fn owner_only(data_dir: &Path, db: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(data_dir)
            .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(db)
            .with_context(|| format!("cannot create the database file {}", db.display()))?;
        let name = db.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let files = [
            (data_dir.to_path_buf(), 0o700),
            (db.to_path_buf(), 0o600),
            (data_dir.join(format!("{name}-wal")), 0o600),
            (data_dir.join(format!("{name}-shm")), 0o600),
            (data_dir.join(keys::KEY_FILE), 0o600),
        ];
        for (path, mode) in files {
            let Ok(meta) = std::fs::metadata(&path) else { continue };
            let current = meta.permissions().mode() & 0o777;
            if current & !mode != 0 {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                    .with_context(|| format!("cannot restrict {} to its owner", path.display()))?;
                tracing::warn!(file = %path.display(), from = format!("{current:o}"), to = format!("{mode:o}"), "restricted a data file to its owner");
            }
        }
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    Ok(())
}

fn now_iso() -> String {
    portolan_server::ops::audit::now_iso()
}

async fn run(command: Command, cfg: Config) -> anyhow::Result<()> {
    match command {
        Command::Config => {
            println!("{cfg:#?}");
            Ok(())
        }
        Command::Serve { .. } => serve(cfg).await,
        Command::MigrateData { from, to, orgs, allow_non_empty, json } => {
            migrate::migrate_data(&from, &to, orgs, allow_non_empty, json).await
        }
        Command::Init { json, admin_email } => {
            let store = open_store(&cfg).await?;
            let key = keys::resolve(&cfg, &*store, matches!(store, Db::Postgres(_))).await?;
            let out = init_default(&*store).await?;
            if let Some(secret) = &out.client_secret {
                keys::keep_signing_secret(&*store, key.as_ref(), &OrgId(out.org_id.clone()), &out.client_id, secret)
                    .await?;
            }
            let setup = init_admin(&*store, &cfg, &OrgId(out.org_id.clone()), &admin_email).await;
            store.close().await;
            let setup = setup?;
            print_credentials(&out, json, setup.as_deref());
            Ok(())
        }
        Command::Export { format, blueprints, org, no_entities, output } => {
            let store = open_store(&cfg).await?;
            let res = export(&*store, &format, &blueprints, &org, no_entities).await;
            store.close().await;
            let text = res?;
            match output {
                Some(path) => {
                    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?
                }
                None => print!("{text}"),
            }
            Ok(())
        }
        Command::Org { command: OrgCommand::Quota { name, max_users, max_entities, json } } => {
            let store = open_store(&cfg).await?;
            let Some(org) = store.org_by_name(&name).await? else {
                bail!("there is no organization named {name:?}");
            };
            let mut q = store.quotas(&org.id).await?;
            if let Some(Limit(n)) = max_users {
                q.max_users = n;
            }
            if let Some(Limit(n)) = max_entities {
                q.max_entities = n;
            }
            if max_users.is_some() || max_entities.is_some() {
                store.set_quotas(&org.id, &q).await?;
            }
            let usage = store.usage(&org.id).await?;
            store.close().await;
            if json {
                println!(
                    "{}",
                    json!({"organization": name, "quotas": {"maxUsers": q.max_users, "maxEntities": q.max_entities},
                           "usage": {"users": usage.users, "entities": usage.entities}})
                );
            } else {
                let show = |n: Option<u64>| n.map_or_else(|| "unlimited".to_string(), |n| n.to_string());
                println!("Organization {name:?}:");
                println!("  users:    {} of {}", usage.users, show(q.max_users));
                println!("  entities: {} of {}", usage.entities, show(q.max_entities));
            }
            Ok(())
        }
        Command::Org { command: OrgCommand::Create { name, json } } => {
            let store = open_store(&cfg).await?;
            if store.org_by_name(&name).await?.is_some() {
                bail!("an organization named {name:?} already exists");
            }
            let key = keys::resolve(&cfg, &*store, matches!(store, Db::Postgres(_))).await?;
            let org = store.create_org(&OrgId(new_org_id()), &name, &now_iso()).await?;
            let (id, secret) = new_credentials();
            store.add_credential(&org.id, &id, &hash_secret(&secret), "default", &now_iso()).await?;
            keys::keep_signing_secret(&*store, key.as_ref(), &org.id, &id, &secret).await?;
            store.close().await;
            print_credentials(
                &Created { org: name, org_id: org.id.0, client_id: id, client_secret: Some(secret) },
                json,
                None,
            );
            Ok(())
        }
    }
}

struct Created {
    org: String,
    org_id: String,
    client_id: String,
    client_secret: Option<String>,
}

fn print_credentials(c: &Created, as_json: bool, admin_setup: Option<&str>) {
    if as_json {
        println!(
            "{}",
            json!({"organization": c.org, "organizationId": c.org_id, "clientId": c.client_id, "clientSecret": c.client_secret, "created": c.client_secret.is_some(), "adminSetupLink": admin_setup})
        );
        return;
    }
    if let Some(link) = admin_setup {
        println!("Open this link once to set the first admin's password (valid 7 days):");
        println!("  {link}");
    }
    match &c.client_secret {
        Some(secret) => {
            println!("Organization {:?} ({}) is ready.", c.org, c.org_id);
            println!("  client id:     {}", c.client_id);
            println!("  client secret: {secret}");
            println!("The secret is stored hashed and is shown only now.");
        }
        None => {
            println!("Organization {:?} ({}) already exists.", c.org, c.org_id);
            println!("  client id:     {}", c.client_id);
            println!("  client secret: (shown when it was created; it is stored hashed and cannot be shown again)");
        }
    }
}

fn new_org_id() -> String {
    format!("org_{}", portolan_server::auth::hex(&portolan_server::auth::random_bytes::<8>()))
}

/// Create the default organization with one credential, or report the existing one.
async fn init_default(store: &dyn Store) -> anyhow::Result<Created> {
    if let Some(org) = store.org_by_name(DEFAULT_ORG).await? {
        let creds = store.list_credentials(&org.id).await?;
        let client_id = creds.first().map(|c| c.0.clone()).unwrap_or_default();
        return Ok(Created { org: org.name, org_id: org.id.0, client_id, client_secret: None });
    }
    let org = store.create_org(&OrgId(new_org_id()), DEFAULT_ORG, &now_iso()).await?;
    let (id, secret) = new_credentials();
    store.add_credential(&org.id, &id, &hash_secret(&secret), "default", &now_iso()).await?;
    Ok(Created { org: org.name, org_id: org.id.0, client_id: id, client_secret: Some(secret) })
}

/// `PORTOLAN_BOOTSTRAP_CLIENT_ID/SECRET`: make sure that credential exists in the default org.
async fn bootstrap(store: &dyn Store, cfg: &Config) -> anyhow::Result<()> {
    let (Some(id), Some(secret)) = (&cfg.bootstrap_client_id, &cfg.bootstrap_client_secret) else { return Ok(()) };
    if store.credential(id).await?.is_some() {
        return Ok(());
    }
    // Several nodes may start together on an empty database: whoever loses a race to create
    // the organization or the credential uses the winner's.
    let org = match store.org_by_name(DEFAULT_ORG).await? {
        Some(o) => o,
        None => match store.create_org(&OrgId(new_org_id()), DEFAULT_ORG, &now_iso()).await {
            Ok(o) => o,
            Err(portolan_store::StoreError::Conflict(_)) => {
                store.org_by_name(DEFAULT_ORG).await?.context("the default organization vanished")?
            }
            Err(e) => return Err(e.into()),
        },
    };
    if let Err(e) = store.add_credential(&org.id, id, &hash_secret(secret), "bootstrap", &now_iso()).await {
        if store.credential(id).await?.is_some() {
            return Ok(());
        }
        return Err(e.into());
    }
    tracing::info!(org.id = %org.id.0, "created the bootstrap API credential from PORTOLAN_BOOTSTRAP_CLIENT_ID");
    Ok(())
}

/// The URL people reach this server at.
fn public_url(cfg: &Config) -> String {
    cfg.public_url.clone().unwrap_or_else(|| format!("http://{}", cfg.listen))
}

/// While `org` has no user: an invitation for its first admin, as a one-time setup link.
async fn init_admin(store: &dyn Store, cfg: &Config, org: &OrgId, email: &str) -> anyhow::Result<Option<String>> {
    use portolan_server::web::session;
    if !store.list_users(org).await?.is_empty() {
        return Ok(None);
    }
    let email = session::normalize_email(email);
    if !session::valid_email(&email) {
        bail!("--admin-email {email:?} is not an e-mail address");
    }
    let token = session::new_token();
    let now = chrono_now();
    store
        .create_invitation(&portolan_store::Invitation {
            token_hash: hash_secret(&token),
            org: org.clone(),
            email,
            role: "admin".into(),
            created_by: "portolan init".into(),
            created_at: now,
            expires_at: now + 7 * 24 * 3600,
            used_at: None,
        })
        .await?;
    Ok(Some(format!("{}/ui/invite/{token}", public_url(cfg))))
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// `PORTOLAN_BOOTSTRAP_ADMIN_EMAIL/PASSWORD`: make sure that admin exists in the default org.
async fn bootstrap_admin(store: &dyn Store, cfg: &Config) -> anyhow::Result<()> {
    let (Some(email), Some(password)) = (&cfg.bootstrap_admin_email, &cfg.bootstrap_admin_password) else {
        return Ok(());
    };
    if store.user_by_email(email).await?.is_some() {
        return Ok(());
    }
    let org = match store.org_by_name(DEFAULT_ORG).await? {
        Some(o) => o,
        None => match store.create_org(&OrgId(new_org_id()), DEFAULT_ORG, &now_iso()).await {
            Ok(o) => o,
            Err(portolan_store::StoreError::Conflict(_)) => {
                store.org_by_name(DEFAULT_ORG).await?.context("the default organization vanished")?
            }
            Err(e) => return Err(e.into()),
        },
    };
    let hash = portolan_server::web::session::hash_password_with(ApiConfig::default().password_cost, password)
        .map_err(|e| anyhow::anyhow!("cannot hash the bootstrap admin password: {e}"))?;
    let user = portolan_store::User {
        id: portolan_server::web::session::new_user_id(),
        org: org.id.clone(),
        email: email.clone(),
        password_hash: hash,
        role: "admin".into(),
        created_at: now_iso(),
    };
    match store.create_user(&user).await {
        Ok(()) => tracing::info!(email = %email, "created the bootstrap admin from PORTOLAN_BOOTSTRAP_ADMIN_EMAIL"),
        // Another node created it first.
        Err(portolan_store::StoreError::Conflict(_)) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

/// `portolan export`: blueprints and entities of one organization, entities read 1000 at a time.
async fn export(
    store: &dyn Store,
    format: &str,
    chosen: &[String],
    org: &str,
    no_entities: bool,
) -> anyhow::Result<String> {
    use portolan_core::export::Format;
    let format = Format::parse(format).with_context(|| format!("--format {format:?}: expected json, yaml or hcl"))?;
    let org = store.org_by_name(org).await?.with_context(|| format!("there is no organization named {org:?}"))?;
    let all: std::collections::HashMap<String, portolan_core::Blueprint> = store
        .list_blueprints(&org.id)
        .await?
        .into_iter()
        .map(|b| (b.blueprint.identifier.clone(), b.blueprint))
        .collect();
    if let Some(missing) = chosen.iter().find(|c| !all.contains_key(*c)) {
        bail!("there is no blueprint {missing:?}");
    }
    let ids = portolan_core::export::selection(all.keys(), chosen);
    let blueprints: Vec<portolan_core::Blueprint> = ids.iter().map(|i| all[*i].clone()).collect();
    let mut entities = Vec::new();
    if !no_entities {
        for id in &ids {
            let mut after = None;
            loop {
                let req = portolan_store::SearchRequest {
                    after,
                    ..portolan_store::SearchRequest::new(&all, Some(id.as_str()), None, 1000)
                };
                let page = store.search(&org.id, &req).await?;
                entities.extend(page.entities);
                match page.next {
                    Some(n) => after = Some(n),
                    None => break,
                }
            }
        }
    }
    let actions: Vec<serde_json::Value> = store.list_actions(&org.id).await?.into_iter().map(|a| a.data).collect();
    let actions = portolan_core::export::actions_for(&blueprints, &actions);
    Ok(portolan_core::export::export_with_actions(format, &blueprints, &entities, &actions))
}

async fn serve(cfg: Config) -> anyhow::Result<()> {
    // TLS first: a broken chain is explained before anything else happens.
    let tls = match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(cert), Some(key)) => Some(tls::load(cert, key, chrono_now()).map_err(|e| anyhow::anyhow!("TLS: {e}"))?),
        _ => None,
    };
    let store = open_store(&cfg).await?;
    bootstrap(&*store, &cfg).await?;
    bootstrap_admin(&*store, &cfg).await?;
    if store.org_by_name(DEFAULT_ORG).await?.is_none() {
        tracing::warn!("there is no organization yet: run `portolan init` to create one and get API credentials");
    }
    // Webhooks: the master key of secrets at rest (keys.rs).
    let secrets_key = keys::resolve(&cfg, &*store, matches!(store, Db::Postgres(_))).await?;
    // The bootstrap credential signs action webhooks (its secret is known here).
    if let (Some(id), Some(secret)) = (&cfg.bootstrap_client_id, &cfg.bootstrap_client_secret)
        && let Some(portolan_store::Credential { org, .. }) = store.credential(id).await?
    {
        keys::keep_signing_secret(&*store, secrets_key.as_ref(), &org, id, secret).await?;
    }
    let defaults = ApiConfig::default();
    let api = ApiConfig {
        secrets_key,
        public_url: cfg.public_url.clone(),
        max_bulk_entities: cfg.max_bulk_entities,
        rate_limit_per_minute: cfg.rate_limit_per_minute,
        job_workers: cfg.job_workers,
        job_lease: std::time::Duration::from_secs(cfg.job_lease_seconds),
        job_yield: std::time::Duration::from_millis(cfg.job_yield_ms),
        node_id: cfg.node_id.clone().unwrap_or_else(|| defaults.node_id.clone()),
        delete_chunk_size: cfg.delete_chunk_size,
        session_idle: std::time::Duration::from_secs(cfg.session_idle_hours * 3600),
        session_absolute: std::time::Duration::from_secs(cfg.session_absolute_hours * 3600),
        secure_cookies: cfg.secure_cookies || cfg.tls_cert.is_some(),
        jq: jq_config(&cfg)?,
        jq_delivery_budget: std::time::Duration::from_secs(cfg.jq_delivery_budget_seconds),
        shutdown_grace: std::time::Duration::from_secs(cfg.shutdown_grace_seconds),
        job_workers_per_org: cfg.job_workers_per_org,
        jobs_per_org_cluster: cfg.jobs_per_org_cluster,
        metrics_token: cfg.metrics_token.clone(),
        smtp: cfg.smtp.clone(),
        outbound: portolan_server::outbound::Outbound::new(&portolan_server::outbound::OutboundConfig {
            timeout: std::time::Duration::from_secs(cfg.outbound_timeout_seconds),
            connect_timeout: std::time::Duration::from_secs(cfg.outbound_connect_timeout_seconds),
            max_response_bytes: cfg.outbound_max_response_bytes,
            ca_bundle: cfg.outbound_ca_bundle.clone(),
            allow_metadata_addresses: cfg.outbound_allow_metadata_addresses,
            proxy: None,
        })
        .map_err(|e| anyhow::anyhow!(e))?,
        ..defaults
    };
    store.set_query_budget(std::time::Duration::from_secs(cfg.query_budget_seconds));
    let share = api.job_share();
    tracing::info!(
        node = %api.node_id,
        job_workers = api.job_workers,
        per_org_on_node = share.per_org_on_node,
        per_org_in_cluster = share.per_org,
        "job workers configured"
    );
    let state = AppState::new(store.shared(), api).await?;
    let listener =
        tokio::net::TcpListener::bind(cfg.listen).await.with_context(|| format!("cannot listen on {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(listen = %addr, database = %Db::describe(&cfg), "portolan is serving");
    // Machine-readable line for scripts and tests that start the server on port 0.
    match tls {
        Some(tls) => {
            println!("listening on https://{addr}");
            let listener = portolan_server::tls::TlsListener::new(listener, tls)?;
            portolan_server::serve(listener, state, shutdown_signal()).await?;
        }
        None => {
            println!("listening on http://{addr}");
            portolan_server::serve(listener, state, shutdown_signal()).await?;
        }
    }
    // Closing stops running searches and waits for connections to come back: bounded, so a
    // statement the database will not give up cannot keep the process alive.
    if tokio::time::timeout(std::time::Duration::from_secs(5), store.close()).await.is_err() {
        tracing::warn!("the database did not close within 5 s; exiting anyway");
    }
    tracing::info!("portolan stopped");
    Ok(())
}

/// jq settings of a serving node: worker processes (this binary with [`JQ_WORKER_ARG`]) unless
/// `jq_isolation = "thread"`.
fn jq_config(cfg: &Config) -> anyhow::Result<portolan_jq::JqConfig> {
    let mut jq = portolan_jq::JqConfig::default();
    if cfg.jq_process_isolation {
        let program = std::env::current_exe().context("cannot find this program's path to start jq workers")?;
        jq.isolation = portolan_jq::Isolation::Process { program, args: vec![JQ_WORKER_ARG.to_string()] };
    }
    tracing::info!(
        isolation = if cfg.jq_process_isolation { "process" } else { "thread" },
        workers = jq.workers,
        "jq evaluation"
    );
    Ok(jq)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down: finishing in-flight requests (PORTOLAN_SHUTDOWN_GRACE_SECONDS at most)");
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_valid() {
        super::Cli::command().debug_assert();
    }
}
