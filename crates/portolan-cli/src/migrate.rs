//! `portolan migrate-data`: copy organizations from the embedded SQLite database into
//! PostgreSQL (`portolan_store::migrate`), verify the copy table by table, and print the report.

use std::path::Path;

use anyhow::{Context, bail};
use portolan_store::{PgStore, SqliteStore};
use serde_json::json;

use crate::config;

pub async fn migrate_data(
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
            println!(
                "The token signing key was copied: API tokens issued before the move stay valid. It is stored \
                 encrypted with this installation's secrets key (secrets.key in the data directory, or \
                 PORTOLAN_SECRETS_KEY): give the PostgreSQL nodes that same key."
            );
        } else {
            println!("The target kept its own token signing key: clients fetch new API tokens.");
        }
    }
    if !report.verified() {
        bail!("the copy did not match the source (see MISMATCH above), so it was rolled back: nothing was written");
    }
    Ok(())
}
