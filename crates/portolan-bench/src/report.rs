//! The run's context (machine, commit, command, date) and its Markdown / JSON report.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::baseline::{BaselineResult, Variant};
use crate::latency::{LatencyResult, Stats};
use crate::load::LoadResult;
use crate::model::Dataset;

/// Ingest target: entities per second through the bulk API.
pub const TARGET_INGEST_PER_SEC: f64 = 5_000.0;
/// Filtered-search target: p50 of one page, in milliseconds.
pub const TARGET_FILTERED_P50_MS: f64 = 20.0;
/// Catalog-page target (issue 5): p50 of the full HTML of the first page and of a filtered
/// page, in milliseconds.
pub const TARGET_CATALOG_P50_MS: f64 = 150.0;

pub struct Context {
    pub date: String,
    pub commit: String,
    pub command: String,
    pub cpus: usize,
    pub cpu_model: String,
    pub memory: String,
    /// `/proc/loadavg` when the run started: other work on the machine skews the numbers.
    pub load_avg: String,
}

impl Context {
    /// The date, commit, command and machine lines every report starts with.
    pub fn markdown_header(&self) -> String {
        format!(
            "# Portolan benchmark\n\n- date: {}\n- commit: {}\n- command: `{}`\n- machine: {} CPUs, {}, {} RAM; load average at start {}\n",
            self.date, self.commit, self.command, self.cpus, self.cpu_model, self.memory, self.load_avg
        )
    }

    pub fn collect() -> Context {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, m)| m.trim()))
            .unwrap_or("unknown")
            .to_string();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or_else(|| "unknown".to_string(), |kib| format!("{:.1} GiB", kib / 1_048_576.0));
        Context {
            date: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            commit: commit(),
            command: command_line(),
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
            cpu_model,
            memory,
            load_avg: std::fs::read_to_string("/proc/loadavg")
                .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
                .unwrap_or_else(|_| "unknown".into()),
        }
    }
}

/// Run git in the source tree this command was built from (not the current directory).
fn git(args: &[&str]) -> Option<String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = std::process::Command::new("git").arg("-C").arg(root).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `git rev-parse --short HEAD`, with `-dirty` when the work tree has changes.
fn commit() -> String {
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(c) if git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty()) => {
            format!("{c}-dirty")
        }
        Some(c) => c,
        None => "unknown (not a git checkout)".into(),
    }
}

/// The exact command line, shell-quoted where needed.
fn command_line() -> String {
    std::env::args()
        .map(|a| {
            if !a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,".contains(c)) {
                a
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub struct Report {
    pub ctx: Context,
    /// Which backend the server ran on.
    pub database: String,
    pub data: Dataset,
    pub batch: usize,
    pub concurrency: usize,
    pub samples: usize,
    pub load: LoadResult,
    pub latency: LatencyResult,
    /// The web UI's catalog pages (first page, filtered page).
    pub web: Vec<Stats>,
    pub baseline: Option<BaselineResult>,
    pub peak_rss_kib: u64,
    /// `--curve`: only the load was measured; print its curve instead of latencies.
    pub curve_only: bool,
    /// With `--database-url`: the raw PostgreSQL insert of the same rows (`pg_baseline.rs`).
    pub pg_baseline: Option<Variant>,
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}

/// `12345.6` → `12,346`.
fn thousands(x: f64) -> String {
    let s = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl Report {
    fn filtered_p50(&self) -> f64 {
        self.latency.stats.iter().find(|s| s.name.contains("/service/entities/search")).map_or(f64::NAN, |s| s.p50_ms)
    }

    pub fn markdown(&self) -> String {
        let (c, d) = (&self.ctx, &self.data);
        let mut s = c.markdown_header();
        let _ = writeln!(s, "- database: {}", self.database);
        let _ = writeln!(
            s,
            "- data: {} entities ({} team, {} domain, {} service); batch {}, concurrency {}, {} samples per query\n",
            thousands(d.total() as f64),
            d.teams,
            d.domains,
            d.services,
            self.batch,
            self.concurrency,
            self.samples
        );
        let l = &self.load;
        let _ = writeln!(s, "| Measure | Result | Target |");
        let _ = writeln!(s, "|---|---|---|");
        let phases: Vec<String> =
            l.phases.iter().map(|(bp, n, secs)| format!("{bp} {}/s", thousands(*n as f64 / secs))).collect();
        let _ = writeln!(
            s,
            "| Bulk load through the API | **{} entities/s** ({} entities, {} requests, {:.1} s; {}) | ≥ {} /s: {} |",
            thousands(l.per_sec()),
            thousands(l.entities as f64),
            l.requests,
            l.elapsed.as_secs_f64(),
            phases.join(", "),
            thousands(TARGET_INGEST_PER_SEC),
            verdict(l.per_sec() >= TARGET_INGEST_PER_SEC)
        );
        if let Some(v) = &self.pg_baseline {
            let label = format!(
                "Raw PostgreSQL insert (multi-row, {} per transaction, {} connections; entity + relation + audit rows, the store's schema)",
                self.batch, self.concurrency
            );
            baseline_row(&mut s, &label, v);
            let _ = writeln!(
                s,
                "| API / raw PostgreSQL | {:.2}× (of {} rows/s) | ≥ 0.5×: {} |",
                l.per_sec() / v.per_sec(),
                thousands(v.per_sec()),
                verdict(l.per_sec() >= 0.5 * v.per_sec())
            );
        }
        match &self.baseline {
            Some(b) => {
                for (label, v) in [("row at a time", &b.row_at_a_time), ("multi-row", &b.multi_row)] {
                    baseline_row(&mut s, &format!("Raw SQLite insert ({label})"), v);
                }
                let _ = writeln!(
                    s,
                    "| API / baseline ceiling | {:.1} % (of {} rows/s) | |",
                    100.0 * l.per_sec() / b.ceiling().per_sec(),
                    thousands(b.ceiling().per_sec())
                );
                let label = format!(
                    "Raw SQLite insert (multi-row, {} per transaction; entity + relation + audit rows, the store's schema)",
                    self.batch
                );
                baseline_row(&mut s, &label, &b.store_schema);
                let _ = writeln!(
                    s,
                    "| API / raw SQLite, the store's schema | {:.2}× (of {} rows/s) | ≥ 0.7×: {} |",
                    l.per_sec() / b.store_schema.per_sec(),
                    thousands(b.store_schema.per_sec()),
                    verdict(l.per_sec() >= 0.7 * b.store_schema.per_sec())
                );
            }
            None if self.pg_baseline.is_some() => {}
            None => {
                let _ = writeln!(s, "| Raw baseline | skipped (--no-baseline) | |");
            }
        }
        if self.curve_only {
            let _ = writeln!(s, "\n| Entities loaded | Rate over the last slice (entities/s) |");
            let _ = writeln!(s, "|---:|---:|");
            for (at, rate) in &l.curve {
                let _ = writeln!(s, "| {} | {} |", thousands(*at as f64), thousands(*rate));
            }
            return s;
        }
        let p50 = self.filtered_p50();
        let _ = writeln!(
            s,
            "| Filtered search page, p50 | {p50:.2} ms ({} matches, {} pages of 1000 walked) | ≤ {TARGET_FILTERED_P50_MS} ms: {} |",
            thousands(self.latency.filtered_total as f64),
            self.latency.filtered_pages,
            verdict(p50 <= TARGET_FILTERED_P50_MS)
        );
        for st in &self.web {
            let _ = writeln!(
                s,
                "| Catalog page `{}`, p50 (p99) | {:.2} ms ({:.2} ms) | ≤ {TARGET_CATALOG_P50_MS} ms: {} |",
                st.name.trim_start_matches("GET "),
                st.p50_ms,
                st.p99_ms,
                verdict(st.p50_ms <= TARGET_CATALOG_P50_MS)
            );
        }
        let _ = writeln!(s, "| Server peak RSS (VmHWM) | {:.1} MiB | |\n", self.peak_rss_kib as f64 / 1024.0);
        let _ = writeln!(s, "| Request (sequential) | Samples | p50 ms | p99 ms | Mean ms | Notes |");
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---|");
        for st in self.latency.stats.iter().chain(&self.web) {
            let _ = writeln!(
                s,
                "| `{}` | {} | {:.2} | {:.2} | {:.2} | {} |",
                st.name, st.samples, st.p50_ms, st.p99_ms, st.mean_ms, st.note
            );
        }
        s
    }

    pub fn json(&self) -> Value {
        let (c, d, l) = (&self.ctx, &self.data, &self.load);
        let p50 = self.filtered_p50();
        json!({
            "date": c.date, "commit": c.commit, "command": c.command, "database": self.database,
            "machine": {"cpus": c.cpus, "cpuModel": c.cpu_model, "memory": c.memory, "loadAvgAtStart": c.load_avg},
            "data": {"entities": d.total(), "teams": d.teams, "domains": d.domains, "services": d.services, "seed": d.seed},
            "batch": self.batch, "concurrency": self.concurrency, "samples": self.samples,
            "load": {
                "entities": l.entities, "requests": l.requests, "seconds": l.elapsed.as_secs_f64(),
                "entitiesPerSec": l.per_sec(),
                "phases": l.phases.iter().map(|(bp, n, secs)| json!({"blueprint": bp, "entities": n, "seconds": secs})).collect::<Vec<_>>(),
                "curve": l.curve.iter().map(|(at, rate)| json!({"entities": at, "entitiesPerSec": rate})).collect::<Vec<_>>()
            },
            "baseline": self.baseline.as_ref().map(|b| {
                let v = |v: &Variant| json!({
                    "rows": v.rows, "relationRows": v.relation_rows, "seconds": v.elapsed.as_secs_f64(), "rowsPerSec": v.per_sec()
                });
                json!({
                    "rowAtATime": v(&b.row_at_a_time), "multiRow": v(&b.multi_row),
                    "ceilingRowsPerSec": b.ceiling().per_sec(), "apiRatio": l.per_sec() / b.ceiling().per_sec()
                })
            }),
            "pgBaseline": self.pg_baseline.as_ref().map(|v| json!({
                "rows": v.rows, "relationRows": v.relation_rows, "seconds": v.elapsed.as_secs_f64(),
                "rowsPerSec": v.per_sec(), "apiRatio": l.per_sec() / v.per_sec()
            })),
            "latency": self.latency.stats.iter().chain(&self.web).map(|s| json!({
                "request": s.name, "samples": s.samples, "p50Ms": s.p50_ms, "p99Ms": s.p99_ms, "meanMs": s.mean_ms, "note": s.note
            })).collect::<Vec<_>>(),
            "filteredMatches": self.latency.filtered_total,
            "serverPeakRssKib": self.peak_rss_kib,
            "targets": {
                "ingestPerSec": {"target": TARGET_INGEST_PER_SEC, "actual": l.per_sec(), "met": l.per_sec() >= TARGET_INGEST_PER_SEC},
                "filteredP50Ms": {"target": TARGET_FILTERED_P50_MS, "actual": p50, "met": p50 <= TARGET_FILTERED_P50_MS},
                "catalogPageP50Ms": self.web.iter().map(|s| json!({
                    "request": s.name, "target": TARGET_CATALOG_P50_MS, "actual": s.p50_ms, "met": s.p50_ms <= TARGET_CATALOG_P50_MS
                })).collect::<Vec<_>>()
            }
        })
    }
}

/// One baseline's row of the load table: its rate and what it inserted.
fn baseline_row(s: &mut String, label: &str, v: &Variant) {
    let _ = writeln!(
        s,
        "| {label} | {} rows/s ({} entity + {} relation rows, {:.2} s) | |",
        thousands(v.per_sec()),
        thousands(v.rows as f64),
        thousands(v.relation_rows as f64),
        v.elapsed.as_secs_f64()
    );
}
