#![doc = include_str!("../README.md")]

mod aggregation;
mod api;
mod automation;
mod baseline;
mod dashboard;
mod latency;
mod load;
mod member_read;
mod model;
mod pg_baseline;
mod report;
mod runs;
mod scorecard;
mod server;
mod web;
mod webhook;

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::Parser;

use crate::model::Dataset;
use crate::report::{Context, Report};
use crate::server::{Server, TempDir};

const DEFAULT_BIN: &str = "target/release/portolan";

#[derive(Parser, Debug)]
#[command(name = "portolan-bench", about = "Benchmark a real `portolan serve`: bulk load, query latency, memory")]
struct Args {
    /// Entities to load in all: 1 % team, 4 % domain, the rest service.
    #[arg(long, default_value_t = 100_000)]
    entities: usize,
    /// Entities per bulk request; also the server's PORTOLAN_MAX_BULK_ENTITIES (Port's is 20).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(20..=10_000))]
    batch: u32,
    /// Bulk requests in flight at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256))]
    concurrency: u32,
    /// Sequential requests per latency measurement.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..))]
    samples: u32,
    /// The `portolan` binary to benchmark (built beforehand, never by this command).
    #[arg(long, default_value = DEFAULT_BIN)]
    bin: PathBuf,
    /// Seed of the generated data and of the random keys.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Skip the raw baseline (SQLite: a raw insert into a fresh file; with --database-url: a raw
    /// multi-row insert into a fresh PostgreSQL database with the store's schema).
    #[arg(long)]
    no_baseline: bool,
    /// Run the server on PostgreSQL: an admin URL (postgres://postgres@127.0.0.1:5432/test) on
    /// which the benchmark creates a fresh database, dropped afterwards. Default: SQLite.
    #[arg(long)]
    database_url: Option<String>,
    /// With --database-url: keep the benchmark's database afterwards (its name is printed), to
    /// look at query plans.
    #[arg(long, requires = "database_url")]
    keep_database: bool,
    /// Measure only the bulk load (no latencies, no baseline) and print its rate per
    /// 10,000-entity slice: a rate that falls as the tables grow shows as a falling curve.
    #[arg(long)]
    curve: bool,
    /// Measure only self-service action runs: N runs of a synchronized WEBHOOK action against a
    /// local backend, one at a time and with --concurrency clients (no entity load).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    action_runs: Option<u32>,
    /// Measure only the cost of an automation: N entities updated in bulk (--batch per
    /// request, --concurrency in flight) without, with and again without one ENTITY_UPDATED
    /// automation whose condition holds for a tenth of them (a local webhook); write throughput
    /// of each round and write → webhook latency.
    #[arg(long, value_parser = clap::value_parser!(u32).range(10..=1_000_000), conflicts_with_all = ["action_runs", "curve"])]
    automation_updates: Option<u32>,
    /// With --automation-updates: do not wait for the webhook calls (each automated round
    /// deletes the automation as it ends). Run with PORTOLAN_JOB_WORKERS=0, nothing is
    /// dispatched, so the cost printed is what recording the events costs the writes alone.
    #[arg(long, requires = "automation_updates")]
    record_only: bool,
    /// Load, then measure one scorecard's recompute over every service (a filter and four
    /// rules), beside reading every service once through the paginated search.
    #[arg(long, conflicts_with_all = ["action_runs", "curve"])]
    scorecard: bool,
    /// Load with services owned by ten teams, then measure reads under a team-scoped `read`
    /// permission (a member of every owning team, a member of one) beside the unrestricted
    /// organization credential: filtered search, count, every service page by page. With
    /// --database-url, the readers are measured again after `VACUUM (ANALYZE)` (a fresh load has
    /// no visibility map yet; autovacuum makes one a little later).
    #[arg(long, conflicts_with_all = ["action_runs", "curve", "scorecard"])]
    member_read: bool,
    /// Load, then rewrite every service twice through the bulk API — without and then with
    /// aggregation properties on `domain` (count and cpu sum of its services) — and time each
    /// pass and how long the aggregation jobs take to catch up (issue 15).
    #[arg(long, conflicts_with_all = ["action_runs", "curve", "scorecard"])]
    aggregation: bool,
    /// Load, then time a six-widget dashboard page beside the catalog page (no API latencies).
    #[arg(long, conflicts_with_all = ["action_runs", "curve", "scorecard"])]
    dashboard: bool,
    /// Measure only the custom webhook path: N deliveries of --webhook-items items posted to a
    /// webhook's ingest URL and mapped with an 11-field app mapping; the rate from the first
    /// POST until every entity is counted (no entity load).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000), conflicts_with_all = ["action_runs", "curve", "automation_updates"])]
    webhook_deliveries: Option<u32>,
    /// Items per delivery with --webhook-deliveries (a webhook maps at most 500 per delivery).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=500))]
    webhook_items: u32,
    /// Print the report as JSON instead of Markdown.
    #[arg(long)]
    json: bool,
}

/// The binary to run: `--bin` as given, or the default relative to the workspace root when
/// the command is not started from there.
fn resolve_bin(bin: PathBuf) -> anyhow::Result<PathBuf> {
    if bin.is_file() {
        return Ok(bin);
    }
    if bin.as_os_str() == DEFAULT_BIN {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(DEFAULT_BIN);
        if root.is_file() {
            return Ok(root);
        }
    }
    bail!("{} does not exist: run `cargo build --release -p portolan-cli` first (or pass --bin PATH)", bin.display())
}

fn progress(msg: &str) {
    eprintln!("[portolan-bench] {msg}");
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("portolan-bench: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("portolan-bench: FAILED: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let bin = resolve_bin(args.bin.clone())?;
    let mut data = Dataset::new(args.entities, args.seed)?;
    if args.member_read {
        data.owner_teams = member_read::TEAMS;
    }
    let (batch, concurrency, samples) = (args.batch as usize, args.concurrency as usize, args.samples as usize);
    let ctx = Context::collect();
    // Declared before the server so that it is removed after the server has stopped.
    let tmp = TempDir::new()?;
    let data_dir = tmp.0.join("data");
    progress(&format!("binary {}, data in {}", bin.display(), tmp.0.display()));

    let pg = match &args.database_url {
        Some(admin) => Some(server::FreshPg::create(admin).await?),
        None => None,
    };
    let db_url = pg.as_ref().map(|p| p.url.clone());
    if let Some(p) = &pg {
        progress(&format!("PostgreSQL database {}", p.name));
    }
    let creds = server::init(&bin, &data_dir, db_url.as_deref()).await?;
    let srv = Server::start(&bin, &data_dir, batch, db_url.as_deref()).await?;
    progress(&format!("server pid {} on {}", srv.pid, srv.base));
    let database = if args.database_url.is_some() { "PostgreSQL" } else { "SQLite" };
    if args.scorecard {
        let measured = async {
            let (loaded, _, _) = load_only(&srv, &creds, &data, batch, concurrency).await?;
            let api = api::Api::connect(&srv.base, &creds.client_id, &creds.client_secret).await?;
            progress("creating a scorecard on service and waiting for its recompute");
            Ok::<_, anyhow::Error>((loaded, scorecard::run(&api, data.services).await?))
        }
        .await;
        let log = srv.log_tail();
        srv.stop().await.context("stopping the server")?;
        let (loaded, result) = measured.map_err(|e| e.context(format!("server log (last lines):\n{log}")))?;
        if let Some(p) = pg {
            p.drop_database().await?;
        }
        print!(
            "{}\n- database: {}\n- load: {} entities in {:.1} s ({:.0}/s), batch {batch}, {concurrency} in flight\n{}",
            ctx.markdown_header(),
            if args.database_url.is_some() { "PostgreSQL" } else { "SQLite" },
            data.total(),
            loaded.elapsed.as_secs_f64(),
            loaded.per_sec(),
            scorecard::markdown(&result)
        );
        return Ok(());
    }
    if args.member_read {
        let measured = async {
            let api = api::Api::connect(&srv.base, &creds.client_id, &creds.client_secret).await?;
            member_read::create_teams(&api).await?;
            let (loaded, _, _) = load_only(&srv, &creds, &data, batch, concurrency).await?;
            progress("team-scoped read: inviting two members, measuring three readers");
            let members = member_read::prepare(&api, &srv.base).await?;
            let fresh = member_read::run(&api, &members, &data, samples).await?;
            // PostgreSQL, again once vacuumed (what autovacuum leaves a minute or so later): a
            // fresh load has no visibility map yet, so index-only scans still fetch heap pages.
            let vacuumed = match &pg {
                Some(p) => {
                    progress("VACUUM (ANALYZE), then the three readers again");
                    p.vacuum_analyze().await?;
                    Some(member_read::run(&api, &members, &data, samples).await?)
                }
                None => None,
            };
            Ok::<_, anyhow::Error>((loaded, fresh, vacuumed))
        }
        .await;
        let log = srv.log_tail();
        srv.stop().await.context("stopping the server")?;
        let (loaded, readers, vacuumed) =
            measured.map_err(|e| e.context(format!("server log (last lines):\n{log}")))?;
        match pg {
            Some(p) if args.keep_database => eprintln!("[portolan-bench] kept the database {}", p.name),
            Some(p) => p.drop_database().await?,
            None => {}
        }
        print!(
            "{}\n- database: {}\n- load: {} entities in {:.1} s, batch {batch}; {samples} samples per latency\n{}",
            ctx.markdown_header(),
            if args.database_url.is_some() { "PostgreSQL" } else { "SQLite" },
            data.total(),
            loaded.elapsed.as_secs_f64(),
            member_read::markdown(&readers)
        );
        if let Some(v) = vacuumed {
            print!("\nThe same readers after `VACUUM (ANALYZE)`:\n{}", member_read::markdown(&v));
        }
        return Ok(());
    }
    if args.aggregation {
        let measured = async {
            let (loaded, _, _) = load_only(&srv, &creds, &data, batch, concurrency).await?;
            let api = api::Api::connect(&srv.base, &creds.client_id, &creds.client_secret).await?;
            Ok::<_, anyhow::Error>((loaded, aggregation::run(&api, &data, batch, concurrency).await?))
        }
        .await;
        let log = srv.log_tail();
        srv.stop().await.context("stopping the server")?;
        let (loaded, result) = measured.map_err(|e| e.context(format!("server log (last lines):\n{log}")))?;
        if let Some(p) = pg {
            p.drop_database().await?;
        }
        print!(
            "{}\n- database: {}\n- load: {} entities in {:.1} s ({:.0}/s), batch {batch}, {concurrency} in flight\n{}",
            ctx.markdown_header(),
            if args.database_url.is_some() { "PostgreSQL" } else { "SQLite" },
            data.total(),
            loaded.elapsed.as_secs_f64(),
            loaded.per_sec(),
            aggregation::markdown(&result)
        );
        return Ok(());
    }
    if args.dashboard {
        let measured = async {
            let (loaded, _, _) = load_only(&srv, &creds, &data, batch, concurrency).await?;
            let api = api::Api::connect(&srv.base, &creds.client_id, &creds.client_secret).await?;
            dashboard::create(&api).await?;
            let browser = web::Web::sign_in(&srv.base, server::WEB_EMAIL, server::WEB_PASSWORD).await?;
            progress(&format!("dashboard and catalog pages, {samples} samples each"));
            Ok::<_, anyhow::Error>((loaded, dashboard::run(&browser, &data, samples).await?))
        }
        .await;
        let log = srv.log_tail();
        srv.stop().await.context("stopping the server")?;
        let (loaded, st) = measured.map_err(|e| e.context(format!("server log (last lines):\n{log}")))?;
        if let Some(p) = pg {
            p.drop_database().await?;
        }
        print!(
            "{}\n- database: {}\n- load: {} entities in {:.1} s ({:.0}/s)\n{}",
            ctx.markdown_header(),
            if args.database_url.is_some() { "PostgreSQL" } else { "SQLite" },
            data.total(),
            loaded.elapsed.as_secs_f64(),
            loaded.per_sec(),
            dashboard::markdown(&st, data.total())
        );
        return Ok(());
    }
    if let Some(n) = args.automation_updates {
        progress(&format!("automation cost: {n} updates per round, {batch} per request, {concurrency} in flight"));
        let measured = async {
            let api = api::Api::connect(&srv.base, &creds.client_id, &creds.client_secret).await?;
            automation::run(&api, n as usize, batch, concurrency, !args.record_only).await
        }
        .await;
        let result = finish(srv, pg, measured).await?;
        print!("{}\n{}", ctx.markdown_header(), automation::markdown(&result, database));
        return Ok(());
    }
    if let Some(n) = args.webhook_deliveries {
        let k = args.webhook_items as usize;
        progress(&format!("custom webhook: {n} deliveries of {k} items"));
        let measured = async {
            let api = api::Api::connect(&srv.base, &creds.client_id, &creds.client_secret).await?;
            webhook::run(&api, n as usize, k).await
        }
        .await;
        let result = finish(srv, pg, measured).await?;
        print!("{}\n{}", ctx.markdown_header(), webhook::markdown(&result, database));
        return Ok(());
    }
    if let Some(n) = args.action_runs {
        progress(&format!("action runs: {n} one at a time, then {n} with {concurrency} clients"));
        let measured = async {
            let api = api::Api::connect(&srv.base, &creds.client_id, &creds.client_secret).await?;
            runs::run(&api, n as usize, concurrency).await
        }
        .await;
        let result = finish(srv, pg, measured).await?;
        print!("{}\n{}", ctx.markdown_header(), runs::markdown(&result, database));
        return Ok(());
    }
    let measured = if args.curve {
        load_only(&srv, &creds, &data, batch, concurrency).await
    } else {
        measure(&srv, &creds, &data, batch, concurrency, samples, pg.as_ref()).await
    };
    let peak_rss_kib = srv.peak_rss_kib();
    let log = srv.log_tail();
    let stopped = srv.stop().await;
    let (load, latency, web) = match measured {
        Ok(m) => m,
        Err(e) => return Err(e.context(format!("server log (last lines):\n{log}"))),
    };
    stopped.context("stopping the server")?;
    if let Some(p) = pg {
        if args.keep_database {
            eprintln!("[portolan-bench] kept the database {}", p.name);
        } else {
            p.drop_database().await?;
        }
    }
    let peak_rss_kib = peak_rss_kib?;

    let pg_baseline = match (&args.database_url, args.no_baseline) {
        (Some(admin), false) => {
            progress(&format!(
                "raw PostgreSQL baseline: {} rows, {batch} per transaction, {concurrency} connections",
                data.total()
            ));
            Some(pg_baseline::run(admin, &data, batch, concurrency).await?)
        }
        _ => None,
    };
    let baseline = if args.no_baseline || args.database_url.is_some() {
        None
    } else {
        progress(&format!("raw SQLite baseline: {} rows, {batch} per transaction", data.total()));
        Some(baseline::run(&tmp.0, &data, batch).await?)
    };
    let database = match &args.database_url {
        Some(_) => "PostgreSQL (a fresh database on the server of --database-url; VACUUM ANALYZE after the load, \
                    as autovacuum would do shortly after it)"
            .to_string(),
        None => "SQLite (a fresh file)".to_string(),
    };
    let report = Report {
        ctx,
        database,
        data,
        batch,
        concurrency,
        samples,
        load,
        latency,
        web,
        baseline,
        peak_rss_kib,
        curve_only: args.curve,
        pg_baseline,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.json())?);
    } else {
        print!("{}", report.markdown());
    }
    drop(tmp);
    Ok(())
}

/// `--curve`: blueprints, load, count check; no latencies.
async fn load_only(
    srv: &Server,
    creds: &server::Credentials,
    data: &Dataset,
    batch: usize,
    concurrency: usize,
) -> anyhow::Result<(load::LoadResult, latency::LatencyResult, Vec<latency::Stats>)> {
    let api = api::Api::connect(&srv.base, &creds.client_id, &creds.client_secret).await?;
    load::create_blueprints(&api).await?;
    progress(&format!("loading {} entities: batches of {batch}, {concurrency} in flight", data.total()));
    let loaded = load::load(&api, data, batch, concurrency).await?;
    progress(&format!("loaded in {:.1} s ({:.0} entities/s)", loaded.elapsed.as_secs_f64(), loaded.per_sec()));
    load::verify_counts(&api, data).await?;
    Ok((loaded, latency::LatencyResult::default(), Vec::new()))
}

/// Everything that talks to the server: blueprints, load, count check, API latencies, then the
/// web UI's catalog pages.
async fn measure(
    srv: &Server,
    creds: &server::Credentials,
    data: &Dataset,
    batch: usize,
    concurrency: usize,
    samples: usize,
    pg: Option<&server::FreshPg>,
) -> anyhow::Result<(load::LoadResult, latency::LatencyResult, Vec<latency::Stats>)> {
    let (loaded, _, _) = load_only(srv, creds, data, batch, concurrency).await?;
    let api = api::Api::connect(&srv.base, &creds.client_id, &creds.client_secret).await?;
    if let Some(pg) = pg {
        // What autovacuum does on its own shortly after a bulk load (planner statistics and the
        // visibility map for index-only scans), done now so the reads are measured as they run
        // in steady state rather than in autovacuum's first minute.
        progress("VACUUM ANALYZE (as autovacuum would after a bulk load)");
        pg.vacuum_analyze().await?;
    }
    progress(&format!("counts verified; measuring latencies ({samples} samples each)"));
    let lat = latency::run(&api, data, samples).await?;
    progress(&format!("signing in to the web UI; timing catalog pages ({samples} samples each)"));
    let browser = web::Web::sign_in(&srv.base, server::WEB_EMAIL, server::WEB_PASSWORD).await?;
    let pages = web::run(&browser, data, samples).await?;
    Ok((loaded, lat, pages))
}

/// After a measurement: stop the server and drop the benchmark's PostgreSQL database; a failed
/// measurement carries the server log's last lines.
async fn finish<T>(srv: Server, pg: Option<server::FreshPg>, measured: anyhow::Result<T>) -> anyhow::Result<T> {
    let log = srv.log_tail();
    srv.stop().await.context("stopping the server")?;
    let result = measured.map_err(|e| e.context(format!("server log (last lines):\n{log}")))?;
    if let Some(p) = pg {
        p.drop_database().await?;
    }
    Ok(result)
}
