//! The server under test: `portolan init` and `portolan serve` as a child process in a
//! temporary data directory, stopped with SIGTERM.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// `PORTOLAN_RATE_LIMIT_PER_MINUTE` for the run: far above anything the benchmark sends.
const RATE_LIMIT: &str = "1000000000";
/// The web UI's admin, created by `serve` from `PORTOLAN_BOOTSTRAP_ADMIN_EMAIL/PASSWORD`: the
/// catalog-page measurements sign in as it.
pub const WEB_EMAIL: &str = "bench@example.com";
pub const WEB_PASSWORD: &str = "portolan-bench-password";

/// A temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> anyhow::Result<TempDir> {
        let nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
        let dir = std::env::temp_dir().join(format!("portolan-bench-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub struct Credentials {
    pub client_id: String,
    pub client_secret: String,
}

/// `portolan init --json --data-dir <dir>`.
pub async fn init(bin: &Path, data_dir: &Path, database_url: Option<&str>) -> anyhow::Result<Credentials> {
    let mut cmd = Command::new(bin);
    if let Some(url) = database_url {
        cmd.env("PORTOLAN_DATABASE_URL", url);
    }
    let out = cmd
        .args(["init", "--json", "--data-dir"])
        .arg(data_dir)
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("cannot run {} init", bin.display()))?;
    if !out.status.success() {
        bail!("{} init failed ({}): {}", bin.display(), out.status, String::from_utf8_lossy(&out.stderr));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .with_context(|| format!("portolan init --json printed no JSON: {stdout}"))?;
    let field = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    match (field("clientId"), field("clientSecret")) {
        (Some(client_id), Some(client_secret)) => Ok(Credentials { client_id, client_secret }),
        _ => bail!("portolan init --json printed no clientId/clientSecret: {v}"),
    }
}

/// A running `portolan serve`.
pub struct Server {
    child: Child,
    pub pid: u32,
    pub base: String,
    log: PathBuf,
}

impl Server {
    /// Start `portolan serve` on a free port and wait for its `listening on http://ADDR` line.
    pub async fn start(
        bin: &Path,
        data_dir: &Path,
        max_bulk: usize,
        database_url: Option<&str>,
    ) -> anyhow::Result<Server> {
        std::fs::create_dir_all(data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
        let log = data_dir.join("server.log");
        let log_file = std::fs::File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
        let mut cmd = Command::new(bin);
        if let Some(url) = database_url {
            cmd.env("PORTOLAN_DATABASE_URL", url);
        }
        let mut child = cmd
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env("PORTOLAN_MAX_BULK_ENTITIES", max_bulk.to_string())
            .env("PORTOLAN_RATE_LIMIT_PER_MINUTE", RATE_LIMIT)
            .env("PORTOLAN_BOOTSTRAP_ADMIN_EMAIL", WEB_EMAIL)
            .env("PORTOLAN_BOOTSTRAP_ADMIN_PASSWORD", WEB_PASSWORD)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {} serve", bin.display()))?;
        let pid = child.id().context("the server exited at once")?;
        let stdout = child.stdout.take().context("no stdout pipe")?;
        let mut lines = BufReader::new(stdout).lines();
        let wait = async {
            while let Some(line) = lines.next_line().await? {
                if let Some(addr) = line.trim().strip_prefix("listening on ") {
                    return Ok::<_, std::io::Error>(Some(addr.to_string()));
                }
            }
            Ok(None)
        };
        let failure = match tokio::time::timeout(Duration::from_secs(60), wait).await {
            Ok(Ok(Some(base))) => Ok(base),
            Ok(Ok(None)) => Err("exited before listening".to_string()),
            Ok(Err(e)) => Err(format!("stdout could not be read: {e}")),
            Err(_) => Err("did not print `listening on …` within 60 s".to_string()),
        };
        let base = match failure {
            Ok(base) => base,
            Err(why) => {
                let _ = child.kill().await;
                bail!("portolan serve {why}; its log:\n{}", tail(&log));
            }
        };
        // Keep draining stdout so the server can never block on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Server { child, pid, base, log })
    }

    /// Peak resident set size of the server process (`VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> anyhow::Result<u64> {
        let path = format!("/proc/{}/status", self.pid);
        let status = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("no VmHWM line in {path}"))
    }

    /// The last lines of the server's log (stderr).
    pub fn log_tail(&self) -> String {
        tail(&self.log)
    }

    /// SIGTERM (via `kill -TERM`), then wait up to 30 s for a clean exit; SIGKILL after that.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let sent = std::process::Command::new("kill").arg("-TERM").arg(self.pid.to_string()).status();
        if !matches!(sent, Ok(s) if s.success()) {
            self.child.kill().await.context("cannot kill the server")?;
            bail!("`kill -TERM {}` failed; the server was killed", self.pid);
        }
        match tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await {
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => bail!("the server exited with {status} after SIGTERM; its log:\n{}", tail(&self.log)),
            Ok(Err(e)) => bail!("cannot wait for the server: {e}"),
            Err(_) => {
                let _ = self.child.kill().await;
                bail!("the server did not stop within 30 s of SIGTERM and was killed")
            }
        }
    }
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// A fresh PostgreSQL database for one benchmark run, created through an admin URL.
pub struct FreshPg {
    admin: String,
    pub name: String,
    /// The URL of the fresh database.
    pub url: String,
}

impl FreshPg {
    pub async fn create(admin: &str) -> anyhow::Result<FreshPg> {
        use sqlx::Connection;
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos();
        let name = format!("portolan_bench_{}_{nanos}", std::process::id());
        let mut conn = sqlx::PgConnection::connect(admin).await.context("cannot connect to --database-url")?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .context("cannot create the benchmark database")?;
        let (base, query) = admin.split_once('?').map_or((admin, None), |(b, q)| (b, Some(q)));
        let scheme_end = base.find("://").map_or(0, |i| i + 3);
        let base = match base[scheme_end..].find('/') {
            Some(i) => &base[..scheme_end + i],
            None => base,
        };
        let url = match query {
            Some(q) => format!("{base}/{name}?{q}"),
            None => format!("{base}/{name}"),
        };
        Ok(FreshPg { admin: admin.to_string(), name, url })
    }

    /// `VACUUM ANALYZE` the benchmark database.
    pub async fn vacuum_analyze(&self) -> anyhow::Result<()> {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&self.url).await?;
        sqlx::raw_sql("VACUUM ANALYZE").execute(&mut conn).await.context("VACUUM ANALYZE")?;
        Ok(())
    }

    pub async fn drop_database(self) -> anyhow::Result<()> {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&self.admin).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)))
            .execute(&mut conn)
            .await
            .context("cannot drop the benchmark database")?;
        Ok(())
    }
}
