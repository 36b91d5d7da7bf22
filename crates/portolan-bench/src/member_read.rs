//! `--member-read`: the cost of a team-scoped `read` permission (issue 13). Services are owned
//! by ten teams; after the load, the service blueprint's `read` grant becomes "Admin, and members
//! of the entity's team" (`ownedByTeam`), and two members get personal credentials: one in every
//! team (they see every service, so the work is the same as unrestricted and only the
//! permission's cost differs) and one in a single team (they see a tenth). Each reads, beside
//! the organization's credential (unrestricted) in the same run: the first page of the
//! filtered search, the count, and every service page by page (what an export does).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::Method;
use serde_json::json;

use crate::api::{Api, short};
use crate::latency::{Stats, filtered_query, stats};
use crate::model::{Dataset, owner_team};

/// Teams owning the services.
pub const TEAMS: usize = 10;
const PASSWORD: &str = "bench-member-password";

/// Create the owning teams (before the load: entities may name only existing teams).
pub async fn create_teams(api: &Api) -> anyhow::Result<()> {
    for i in 0..TEAMS {
        let r = api.post("/v1/teams", &json!({"name": owner_team(i)})).await?;
        if !r.status.is_success() {
            bail!("POST /v1/teams answered {}: {}", r.status, short(&r.body));
        }
    }
    Ok(())
}

/// A member in `teams` with a personal credential, through the invitation flow.
async fn member(admin: &Api, base: &str, email: &str, teams: &[String]) -> anyhow::Result<Api> {
    let r = admin
        .post("/v1/users/invite", &json!({"invitee": {"email": email, "roles": ["Member"], "teams": teams}}))
        .await?;
    let path = r.body["invitation"]["path"].as_str().with_context(|| format!("invite {email}: {}", short(&r.body)))?;
    crate::web::Web::accept_invitation(base, path, PASSWORD).await?;
    let r = admin.post(&format!("/v1/rotate-credentials/{email}"), &json!({})).await?;
    let c = &r.body["credentials"];
    let (Some(id), Some(secret)) = (c["clientId"].as_str(), c["clientSecret"].as_str()) else {
        bail!("rotate-credentials {email}: {}", short(&r.body));
    };
    Api::connect(base, id, secret).await
}

/// Every service page by page (1,000 per page): the time and how many were read.
async fn read_all(api: &Api) -> anyhow::Result<(Duration, usize)> {
    let started = Instant::now();
    let mut from: Option<String> = None;
    let mut n = 0;
    loop {
        let mut body = json!({"limit": 1000});
        if let Some(f) = &from {
            body["from"] = json!(f);
        }
        let page = api.ok(Method::POST, "/v1/blueprints/service/entities/search", Some(&body)).await?;
        n += page["entities"].as_array().map_or(0, Vec::len);
        match page["next"].as_str() {
            Some(next) => from = Some(next.to_string()),
            None => break,
        }
    }
    Ok((started.elapsed(), n))
}

/// One reader's figures.
#[derive(Debug, Clone)]
pub struct Reader {
    pub who: &'static str,
    pub visible: usize,
    pub search: Stats,
    pub count: Stats,
    /// Median of three full reads.
    pub read_all: Duration,
}

/// The two members the readers are measured as (every owning team, one owning team), after the
/// services' read permission is made `ownedByTeam`.
pub struct Members {
    every: Api,
    one: Api,
}

pub async fn prepare(admin: &Api, base: &str) -> anyhow::Result<Members> {
    let r = admin
        .send(
            Method::PATCH,
            "/v1/blueprints/service/permissions",
            Some(json!({"entities": {"read": {"roles": ["Admin"], "ownedByTeam": true}}}).to_string()),
        )
        .await?;
    if !r.status.is_success() {
        bail!("PATCH permissions answered {}: {}", r.status, short(&r.body));
    }
    let all: Vec<String> = (0..TEAMS).map(owner_team).collect();
    let every = member(admin, base, "every-team@bench.example", &all).await?;
    let one = member(admin, base, "one-team@bench.example", &[owner_team(3)]).await?;
    Ok(Members { every, one })
}

/// Measure the three readers (the organization credential as the unrestricted baseline).
pub async fn run(admin: &Api, members: &Members, data: &Dataset, samples: usize) -> anyhow::Result<Vec<Reader>> {
    let (every, one) = (&members.every, &members.one);
    let in_team_3 = (0..data.services).filter(|i| i % TEAMS == 3).count();
    let mut out = Vec::new();
    for (who, api, visible) in [
        ("organization credential (unrestricted)", admin, data.services),
        ("member of every owning team", every, data.services),
        ("member of one owning team", one, in_team_3),
    ] {
        let count = api.count("service").await?;
        if count != visible as u64 {
            bail!("{who}: counted {count} services, expected {visible}");
        }
        let mut search = Vec::with_capacity(samples);
        let mut counts = Vec::with_capacity(samples);
        for _ in 0..samples {
            let t = Instant::now();
            let page =
                api.ok(Method::POST, "/v1/blueprints/service/entities/search", Some(&filtered_query(200))).await?;
            search.push(t.elapsed());
            if page["entities"].as_array().is_none_or(Vec::is_empty) {
                bail!("{who}: the filtered search found nothing");
            }
            let t = Instant::now();
            api.count("service").await?;
            counts.push(t.elapsed());
        }
        let mut reads = Vec::new();
        for _ in 0..3 {
            let (d, n) = read_all(api).await?;
            if n != visible {
                bail!("{who}: read {n} services page by page, expected {visible}");
            }
            reads.push(d);
        }
        reads.sort();
        out.push(Reader {
            who,
            visible,
            search: stats("filtered search, first page of 200", search, String::new()),
            count: stats("count", counts, String::new()),
            read_all: reads[1],
        });
    }
    Ok(out)
}

pub fn markdown(readers: &[Reader]) -> String {
    let base = &readers[0];
    let ratio = |a: f64, b: f64| if b > 0.0 { format!("{:.2}×", a / b) } else { "—".into() };
    let mut s = String::from(
        "\n| Reader | Services visible | Filtered search p50 / p99 (ms) | Count p50 / p99 (ms) | Every service, 1,000 per page (s) | vs unrestricted: search p50, count p50, read all |\n|---|---|---|---|---|---|\n",
    );
    for r in readers {
        s.push_str(&format!(
            "| {} | {} | {:.1} / {:.1} | {:.1} / {:.1} | {:.2} | {}, {}, {} |\n",
            r.who,
            r.visible,
            r.search.p50_ms,
            r.search.p99_ms,
            r.count.p50_ms,
            r.count.p99_ms,
            r.read_all.as_secs_f64(),
            ratio(r.search.p50_ms, base.search.p50_ms),
            ratio(r.count.p50_ms, base.count.p50_ms),
            ratio(r.read_all.as_secs_f64(), base.read_all.as_secs_f64()),
        ));
    }
    s
}
