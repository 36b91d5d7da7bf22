//! Webhooks: the master key webhook secrets are encrypted with at rest
//! (`portolan_server::secrets`), resolved on `serve`.
//!
//! From `PORTOLAN_SECRETS_KEY` (base64 of 32 bytes), or `PORTOLAN_SECRETS_KEY_FILE`, or — on the
//! embedded SQLite database only — `<data_dir>/secrets.key`, generated (mode 0600) on first start.
//! With PostgreSQL several nodes share the data, so the key must be given explicitly: without
//! one, a node starts only while no encrypted secret is stored (and cannot store one), and any
//! node refuses to start with a key that did not encrypt the stored secrets.

use std::path::Path;

use anyhow::{Context, bail};
use portolan_server::secrets::SecretsKey;
use portolan_store::Store;

use crate::config::Config;

/// The key file's name in the data directory (SQLite only).
pub const KEY_FILE: &str = "secrets.key";

fn read_key(path: &Path, what: &str) -> anyhow::Result<SecretsKey> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {what} {}", path.display()))?;
    SecretsKey::from_base64(&text).map_err(|e| anyhow::anyhow!("{what} {}: the key {e}", path.display()))
}

fn generate(path: &Path) -> anyhow::Result<SecretsKey> {
    use std::io::Write;
    let key = SecretsKey::generate();
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).with_context(|| format!("cannot create the secrets key file {}", path.display()))?;
    writeln!(f, "{}", key.to_base64()).with_context(|| format!("cannot write {}", path.display()))?;
    f.sync_all()?;
    tracing::info!(key_id = key.id(), file = %path.display(), "generated the master key for secrets at rest; back it up with the database");
    Ok(key)
}

/// The key this node uses, checked against the secrets the database holds.
pub async fn resolve(cfg: &Config, store: &dyn Store, postgres: bool) -> anyhow::Result<Option<SecretsKey>> {
    let key = if let Some(k) = &cfg.secrets_key {
        Some(SecretsKey::from_base64(k).map_err(|e| anyhow::anyhow!("PORTOLAN_SECRETS_KEY {e}"))?)
    } else if let Some(file) = &cfg.secrets_key_file {
        Some(read_key(file, "PORTOLAN_SECRETS_KEY_FILE")?)
    } else if !postgres {
        let path = cfg.data_dir.join(KEY_FILE);
        Some(if path.exists() { read_key(&path, "the secrets key file")? } else { generate(&path)? })
    } else {
        None
    };
    let mut stored = store.webhook_secret_key_ids().await?;
    stored.extend(store.secrets_key_ids().await?);
    stored.sort();
    stored.dedup();
    match &key {
        None if !stored.is_empty() => bail!(
            "secrets in the database (webhook, organization or signing secrets) are encrypted with master key {}, and this node has no key: set \
             PORTOLAN_SECRETS_KEY (or PORTOLAN_SECRETS_KEY_FILE) to that key on every node",
            stored.join(", ")
        ),
        None => tracing::warn!(
            "PORTOLAN_SECRETS_KEY is not set: webhook signing secrets, organization secrets and signed action webhooks \
             are unavailable until every node has one"
        ),
        Some(k) => {
            let foreign: Vec<&str> = stored.iter().map(String::as_str).filter(|id| *id != k.id()).collect();
            if !foreign.is_empty() {
                bail!(
                    "secrets in the database (webhook, organization or signing secrets) are encrypted with master key {}, but the configured key is {}: \
                     set PORTOLAN_SECRETS_KEY (or PORTOLAN_SECRETS_KEY_FILE, or restore {}/{KEY_FILE}) to the key they were encrypted with",
                    foreign.join(", "),
                    k.id(),
                    cfg.data_dir.display()
                );
            }
            tracing::info!(key_id = k.id(), "master key for secrets at rest loaded");
        }
    }
    Ok(key)
}

/// Keep a credential's client secret encrypted under `key`, so action webhooks can be signed
/// with it (port-api.md §5.8); nothing without a key.
pub async fn keep_signing_secret(
    store: &dyn Store,
    key: Option<&SecretsKey>,
    org: &portolan_store::OrgId,
    client_id: &str,
    secret: &str,
) -> anyhow::Result<()> {
    if let Some(k) = key {
        let enc = k.encrypt(secret, &portolan_server::ops::action::credential_aad(org, client_id));
        store.set_credential_secret(org, client_id, &enc, k.id()).await?;
    }
    Ok(())
}
