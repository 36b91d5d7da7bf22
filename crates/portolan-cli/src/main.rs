#![doc = include_str!("../README.md")]

mod config;

use std::path::Path;
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
    },
    /// Create the default organization and print its API credentials (idempotent).
    Init {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
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
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let over = Overrides {
        config_file: cli.config.clone(),
        listen: match &cli.command {
            Command::Serve { listen } => listen.clone(),
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
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    let path = data_dir.join("portolan.sqlite");
    let store =
        SqliteStore::open(&path).await.with_context(|| format!("cannot open the database {}", path.display()))?;
    Ok(Db::Sqlite(store))
}

fn now_iso() -> String {
    portolan_server::handlers::now_iso()
}

async fn run(command: Command, cfg: Config) -> anyhow::Result<()> {
    match command {
        Command::Config => {
            println!("{cfg:#?}");
            Ok(())
        }
        Command::Serve { .. } => serve(cfg).await,
        Command::MigrateData { from, to, orgs, allow_non_empty, json } => {
            migrate_data(&from, &to, orgs, allow_non_empty, json).await
        }
        Command::Init { json } => {
            let store = open_store(&cfg).await?;
            let out = init_default(&*store).await?;
            store.close().await;
            print_credentials(&out, json);
            Ok(())
        }
        Command::Org { command: OrgCommand::Create { name, json } } => {
            let store = open_store(&cfg).await?;
            if store.org_by_name(&name).await?.is_some() {
                bail!("an organization named {name:?} already exists");
            }
            let org = store.create_org(&OrgId(new_org_id()), &name, &now_iso()).await?;
            let (id, secret) = new_credentials();
            store.add_credential(&org.id, &id, &hash_secret(&secret), "default", &now_iso()).await?;
            store.close().await;
            print_credentials(
                &Created { org: name, org_id: org.id.0, client_id: id, client_secret: Some(secret) },
                json,
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

fn print_credentials(c: &Created, as_json: bool) {
    if as_json {
        println!(
            "{}",
            json!({"organization": c.org, "organizationId": c.org_id, "clientId": c.client_id, "clientSecret": c.client_secret, "created": c.client_secret.is_some()})
        );
        return;
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
    let org = match store.org_by_name(DEFAULT_ORG).await? {
        Some(o) => o,
        None => store.create_org(&OrgId(new_org_id()), DEFAULT_ORG, &now_iso()).await?,
    };
    store.add_credential(&org.id, id, &hash_secret(secret), "bootstrap", &now_iso()).await?;
    tracing::info!(org.id = %org.id.0, "created the bootstrap API credential from PORTOLAN_BOOTSTRAP_CLIENT_ID");
    Ok(())
}

async fn serve(cfg: Config) -> anyhow::Result<()> {
    let store = open_store(&cfg).await?;
    bootstrap(&*store, &cfg).await?;
    if store.org_by_name(DEFAULT_ORG).await?.is_none() {
        tracing::warn!("there is no organization yet: run `portolan init` to create one and get API credentials");
    }
    let api = ApiConfig {
        max_bulk_entities: cfg.max_bulk_entities,
        rate_limit_per_minute: cfg.rate_limit_per_minute,
        ..ApiConfig::default()
    };
    let state = AppState::new(store.shared(), api).await?;
    let listener =
        tokio::net::TcpListener::bind(cfg.listen).await.with_context(|| format!("cannot listen on {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(listen = %addr, database = %Db::describe(&cfg), "portolan is serving");
    // Machine-readable line for scripts and tests that start the server on port 0.
    println!("listening on http://{addr}");
    portolan_server::serve(listener, state, shutdown_signal()).await?;
    store.close().await;
    tracing::info!("portolan stopped");
    Ok(())
}

async fn migrate_data(
    from: &Path,
    to: &str,
    organizations: Vec<String>,
    allow_non_empty: bool,
    as_json: bool,
) -> anyhow::Result<()> {
    use portolan_store::migrate::{CopyOptions, sqlite_to_postgres};
    let file = if from.is_dir() { from.join("portolan.sqlite") } else { from.to_path_buf() };
    if !file.is_file() {
        bail!(
            "--from {}: no SQLite database there (give the file or the data directory holding portolan.sqlite)",
            from.display()
        );
    }
    if !(to.starts_with("postgres://") || to.starts_with("postgresql://")) {
        bail!("--to {}: expected a postgres:// or postgresql:// URL", config::redact_url(to));
    }
    let src = SqliteStore::open(&file).await.with_context(|| format!("cannot open {}", file.display()))?;
    let dst = PgStore::connect(to)
        .await
        .with_context(|| format!("cannot open the PostgreSQL database {}", config::redact_url(to)))?;
    let started = std::time::Instant::now();
    let result = sqlite_to_postgres(&src, &dst, &CopyOptions { organizations, allow_non_empty }).await;
    src.close().await;
    dst.close().await;
    let report = result.context("nothing was copied")?;
    let secs = started.elapsed().as_secs_f64();
    if as_json {
        let tables: Vec<_> = report
            .tables
            .iter()
            .map(|t| {
                json!({"table": t.table, "sourceRows": t.source_rows, "targetRows": t.target_rows,
                       "sourceSha256": t.source_sha256, "targetSha256": t.target_sha256, "matches": t.matches()})
            })
            .collect();
        println!(
            "{}",
            json!({"organizations": report.organizations, "settingsCopied": report.settings_copied,
                   "verified": report.verified(), "committed": report.committed, "seconds": secs, "tables": tables})
        );
    } else {
        println!(
            "Copied {} organization(s) ({}) from {} to {} in {secs:.1} s.",
            report.organizations.len(),
            report.organizations.join(", "),
            file.display(),
            config::redact_url(to)
        );
        println!(
            "{:<18} {:>10} {:>10}  {:<16} {:<16}  check",
            "table", "source", "target", "source sha256", "target sha256"
        );
        for t in &report.tables {
            println!(
                "{:<18} {:>10} {:>10}  {:<16} {:<16}  {}",
                t.table,
                t.source_rows,
                t.target_rows,
                &t.source_sha256[..16],
                &t.target_sha256[..16],
                if t.matches() { "ok" } else { "MISMATCH" }
            );
        }
        if report.settings_copied {
            println!("The token signing key was copied: API tokens issued before the move stay valid.");
        } else {
            println!("The target kept its own token signing key: clients fetch new API tokens.");
        }
    }
    if !report.verified() {
        bail!("the copy did not match the source (see MISMATCH above), so it was rolled back: nothing was written");
    }
    Ok(())
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
    tracing::info!("shutting down: finishing in-flight requests");
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_valid() {
        super::Cli::command().debug_assert();
    }
}
