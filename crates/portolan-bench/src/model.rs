//! The benchmark's data model: three blueprints (`team` ← `domain` ← `service`) and a
//! deterministic generator of their entities.
//!
//! Every entity is a pure function of its index and the seed, so the API load, the raw-SQLite
//! baseline and the result checks all see exactly the same data without keeping it in memory.

use chrono::{DateTime, SecondsFormat};
use serde_json::{Value, json};

/// The `language` enum of `service`; the filtered search asks for `"go"`.
pub const LANGUAGES: [&str; 5] = ["go", "rust", "python", "java", "typescript"];
const TIERS: [&str; 3] = ["gold", "silver", "bronze"];
/// 2024-01-01T00:00:00Z; `deployedAt` falls within the year after it.
const EPOCH_2024: i64 = 1_704_067_200;

/// SplitMix64: small, fast and reproducible across platforms and crate versions.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`; the modulo bias is irrelevant here).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// How many entities of each blueprint a run creates, and the seed of their values.
#[derive(Debug, Clone, Copy)]
pub struct Dataset {
    pub teams: usize,
    pub domains: usize,
    pub services: usize,
    pub seed: u64,
    /// `--member-read`: services are owned (the `team` meta-property) by one of this many teams,
    /// `owners-{i mod n}`; 0: services have no owning team.
    pub owner_teams: usize,
}

/// The fields of one service, as generated (the JSON is built from these).
#[derive(Debug, Clone)]
pub struct ServiceSpec {
    pub language: &'static str,
    pub cpu: u32,
    pub public: bool,
    pub tier: &'static str,
    pub deployed_at: String,
    pub domain: usize,
    pub team: usize,
}

impl Dataset {
    /// 1 % teams, 4 % domains (each at least one), the rest services.
    pub fn new(total: usize, seed: u64) -> anyhow::Result<Self> {
        anyhow::ensure!(total >= 10, "--entities must be at least 10 (got {total})");
        let teams = (total / 100).max(1);
        let domains = (total * 4 / 100).max(1);
        Ok(Dataset { teams, domains, services: total - teams - domains, seed, owner_teams: 0 })
    }

    pub fn total(&self) -> usize {
        self.teams + self.domains + self.services
    }

    /// The blueprints and their entity counts, in load order (targets before sources).
    pub fn order(&self) -> [(&'static str, usize); 3] {
        [("team", self.teams), ("domain", self.domains), ("service", self.services)]
    }

    fn rng(&self, kind: u64, i: usize) -> Rng {
        Rng::new(self.seed ^ kind.wrapping_mul(0xA24B_AED4_963E_E407) ^ (i as u64).wrapping_mul(0x9FB2_1C65_1E98_DF25))
    }

    /// The domain's owning team.
    pub fn domain_team(&self, i: usize) -> usize {
        self.rng(2, i).below(self.teams)
    }

    pub fn service_spec(&self, i: usize) -> ServiceSpec {
        let mut r = self.rng(3, i);
        let secs = EPOCH_2024 + r.below(365 * 86_400) as i64;
        let deployed_at = DateTime::from_timestamp(secs, 0)
            .map(|d| d.to_rfc3339_opts(SecondsFormat::Millis, true))
            .unwrap_or_else(|| "2024-01-01T00:00:00.000Z".into());
        ServiceSpec {
            language: LANGUAGES[r.below(LANGUAGES.len())],
            cpu: 1 + r.below(64) as u32,
            public: r.below(2) == 1,
            tier: TIERS[r.below(TIERS.len())],
            deployed_at,
            domain: r.below(self.domains),
            team: r.below(self.teams),
        }
    }

    /// Entity `i` of `blueprint` as sent to the bulk API.
    pub fn entity(&self, blueprint: &str, i: usize) -> Value {
        match blueprint {
            "team" => json!({
                "identifier": team_id(i),
                "title": format!("Team {i}"),
                "properties": {"slack": format!("#team-{i}")},
                "relations": {}
            }),
            "domain" => json!({
                "identifier": domain_id(i),
                "title": format!("Domain {i}"),
                "properties": {"owner": format!("owner-{i}@example.com")},
                "relations": {"team": team_id(self.domain_team(i))}
            }),
            _ => {
                let s = self.service_spec(i);
                let mut e = json!({
                    "identifier": service_id(i),
                    "title": format!("Service {i}"),
                    "properties": {
                        "language": s.language,
                        "cpu": s.cpu,
                        "public": s.public,
                        "tier": s.tier,
                        "deployedAt": s.deployed_at
                    },
                    "relations": {"domain": domain_id(s.domain), "team": team_id(s.team)}
                });
                if self.owner_teams > 0 {
                    e["team"] = json!([owner_team(i % self.owner_teams)]);
                }
                e
            }
        }
    }

    /// How many services the filtered search (`language = go AND cpu > 16`) must return.
    pub fn expected_filtered(&self) -> usize {
        (0..self.services).map(|i| self.service_spec(i)).filter(|s| s.language == "go" && s.cpu > 16).count()
    }

    /// How many services relate to each domain (index = domain).
    pub fn services_per_domain(&self) -> Vec<usize> {
        let mut v = vec![0; self.domains];
        for i in 0..self.services {
            v[self.service_spec(i).domain] += 1;
        }
        v
    }
}

pub fn team_id(i: usize) -> String {
    format!("team-{i:05}")
}

pub fn domain_id(i: usize) -> String {
    format!("dom-{i:06}")
}

/// The owning team of `--member-read`'s services.
pub fn owner_team(i: usize) -> String {
    format!("owners-{i}")
}

pub fn service_id(i: usize) -> String {
    format!("svc-{i:07}")
}

/// The three blueprints, in creation order.
pub fn blueprints() -> [Value; 3] {
    [
        json!({
            "identifier": "team", "title": "Team", "icon": "Team",
            "schema": {"properties": {"slack": {"type": "string", "title": "Slack channel"}}, "required": []},
            "relations": {}
        }),
        json!({
            "identifier": "domain", "title": "Domain", "icon": "Domain",
            "schema": {"properties": {"owner": {"type": "string", "format": "email", "title": "Owner"}}, "required": []},
            "relations": {"team": {"title": "Team", "target": "team", "required": false, "many": false}}
        }),
        json!({
            "identifier": "service", "title": "Service", "icon": "Microservice",
            "schema": {"properties": {
                "language": {"type": "string", "title": "Language", "enum": LANGUAGES},
                "cpu": {"type": "number", "title": "CPU", "minimum": 0, "maximum": 64},
                "public": {"type": "boolean", "title": "Public"},
                "tier": {"type": "string", "title": "Tier"},
                "deployedAt": {"type": "string", "format": "date-time", "title": "Deployed at"}
            }, "required": ["language"]},
            "relations": {
                "domain": {"title": "Domain", "target": "domain", "required": false, "many": false},
                "team": {"title": "Team", "target": "team", "required": false, "many": false}
            }
        }),
    ]
}
