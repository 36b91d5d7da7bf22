//! Fuzz targets for the code that reads what tenants and the internet send: the search
//! language (parser and SQL compiler), blueprint and entity validation, the jq engine with its
//! limits, the `{{ }}` template renderer, webhook ingest (signature check, header and query
//! parsing) and the delivery mapping engine.
//!
//! Each target is a plain `fn(&[u8])` that panics on a finding: a panic of the code under test,
//! or a broken invariant asserted here (compiled SQL never contains a user string; validation
//! errors name a path; jq limits end evaluations). [`fuzz`] is a small stable mutation driver
//! (no coverage feedback; seeds from the repository's tests and the Ocean mapping corpus, byte
//! and token mutations, splicing), so the targets build and run in `cargo test` on stable. The
//! same functions can be driven by a coverage-guided fuzzer; docs/fuzzing.md has the commands and
//! the recorded runs.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use portolan_core::Blueprint;
use portolan_jq::{Isolation, JqBudget, JqConfig, JqEngine};
use serde_json::{Value, json};

mod saml;

/// A fuzz target.
pub struct Target {
    pub name: &'static str,
    /// Starting inputs.
    pub seeds: fn() -> Vec<Vec<u8>>,
    /// Runs one input; panics on a finding.
    pub run: fn(&[u8]),
    /// Tokens the mutator inserts.
    pub dictionary: &'static [&'static str],
}

const JSON_TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "null",
    "true",
    "false",
    "0",
    "-1",
    "1e308",
    "1.5",
    "\"\\u0000\"",
    "\"\\ud800\"",
];

pub const TARGETS: &[Target] = &[
    Target { name: "search", seeds: seeds_search, run: search, dictionary: SEARCH_TOKENS },
    Target { name: "blueprint", seeds: seeds_blueprint, run: blueprint, dictionary: BLUEPRINT_TOKENS },
    Target { name: "entity", seeds: seeds_entity, run: entity, dictionary: JSON_TOKENS },
    Target { name: "jq", seeds: seeds_jq, run: jq, dictionary: JQ_TOKENS },
    Target { name: "template", seeds: seeds_template, run: template, dictionary: TEMPLATE_TOKENS },
    Target { name: "webhook_ingest", seeds: seeds_ingest, run: webhook_ingest, dictionary: JSON_TOKENS },
    Target { name: "mapping", seeds: seeds_mapping, run: mapping, dictionary: JQ_TOKENS },
    Target {
        name: "saml_response",
        seeds: portolan_server::fuzzing::saml_seeds,
        run: saml::saml_response,
        dictionary: saml::XML_TOKENS,
    },
];

// ---- driver ----

/// How long a run lasts.
#[derive(Debug, Clone, Copy)]
pub enum Budget {
    Time(Duration),
    Execs(u64),
}

/// An input that made a target panic.
#[derive(Debug, Clone)]
pub struct Finding {
    pub input: Vec<u8>,
    pub message: String,
}

#[derive(Debug, Default)]
pub struct Report {
    pub execs: u64,
    pub elapsed: Duration,
    pub findings: Vec<Finding>,
}

/// FNV-1a, to name finding files and de-duplicate messages.
pub fn hash(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| (h ^ u64::from(x)).wrapping_mul(0x100_0000_01b3))
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }
}

/// A node `depth` random steps below `v` (or the deepest reached).
fn pick<'a>(rng: &mut Rng, v: &'a mut Value, depth: usize) -> &'a mut Value {
    if depth == 0 {
        return v;
    }
    let len = match &*v {
        Value::Array(a) => a.len(),
        Value::Object(m) => m.len(),
        _ => 0,
    };
    if len == 0 {
        return v;
    }
    let i = rng.below(len);
    match v {
        Value::Array(a) => pick(rng, &mut a[i], depth - 1),
        Value::Object(m) => match m.values_mut().nth(i) {
            Some(x) => pick(rng, x, depth - 1),
            None => unreachable!("index below the length"),
        },
        _ => unreachable!("a container"),
    }
}

/// A structural mutation of a JSON input: a random node replaced by an edge value, a token, a
/// piece of another seed, or wrapped (deeper nesting); array items duplicated; keys dropped.
fn mutate_json(rng: &mut Rng, v: &mut Value, donor: &Value, dict: &[&str]) {
    let depth = rng.below(6);
    let node = pick(rng, v, depth);
    match rng.below(9) {
        0 => *node = Value::String(dict[rng.below(dict.len())].trim_matches('"').to_string()),
        1 => {
            *node = [
                json!(null),
                json!(""),
                json!(-1),
                json!(0.5),
                json!(1e300),
                json!(u64::MAX),
                json!([]),
                json!({}),
                json!("x".repeat(1 + rng.below(5000))),
            ][rng.below(9)]
            .clone()
        }
        2 => *node = json!([node.clone()]),
        3 => *node = json!({"combinator": "and", "rules": [node.clone()]}),
        4 => {
            if let Value::Array(a) = node
                && !a.is_empty()
            {
                let x = a[rng.below(a.len())].clone();
                for _ in 0..=rng.below(64) {
                    a.push(x.clone());
                }
            }
        }
        5 => {
            if let Value::Object(m) = node
                && !m.is_empty()
            {
                let k = m.keys().nth(rng.below(m.len())).cloned().unwrap_or_default();
                m.remove(&k);
            }
        }
        6 => *node = donor.clone(),
        7 => {
            if let Value::Object(m) = node {
                let k = dict[rng.below(dict.len())]
                    .split(':')
                    .next()
                    .unwrap_or("k")
                    .trim_matches(|c| c == '"' || c == '{')
                    .to_string();
                m.insert(k, donor.clone());
            }
        }
        _ => {
            if let Value::String(s) = node {
                s.push_str(dict[rng.below(dict.len())]);
            }
        }
    }
}

fn mutate(rng: &mut Rng, input: &[u8], pool: &[Vec<u8>], dict: &[&str]) -> Vec<u8> {
    if rng.below(2) == 0
        && let Ok(mut v) = serde_json::from_slice::<Value>(input)
    {
        let donor = serde_json::from_slice::<Value>(&pool[rng.below(pool.len())]).unwrap_or(Value::Null);
        for _ in 0..=rng.below(3) {
            mutate_json(rng, &mut v, &donor, dict);
        }
        return v.to_string().into_bytes();
    }
    let mut out = input.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(8) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 if !out.is_empty() => {
                let end = (at + 1 + rng.below(8)).min(out.len());
                out.drain(at.min(out.len())..end);
            }
            2 => out.insert(at, rng.next() as u8),
            3 | 4 => {
                let tok = dict[rng.below(dict.len())];
                out.splice(at..at, tok.bytes());
            }
            5 => {
                let other = &pool[rng.below(pool.len())];
                let from = rng.below(other.len() + 1);
                let to = (from + rng.below(32)).min(other.len());
                out.splice(at..at, other[from..to].iter().copied());
            }
            6 if !out.is_empty() => {
                // Repeat a slice (depth and length).
                let end = (at + 1 + rng.below(16)).min(out.len());
                let piece: Vec<u8> = out[at.min(out.len())..end].to_vec();
                for _ in 0..rng.below(8) {
                    out.splice(at..at, piece.iter().copied());
                }
            }
            _ => {
                let digits = ["0", "-0", "1e9", "255", "65536", "4294967296", "-1", "1000000"];
                out.splice(at..at, digits[rng.below(digits.len())].bytes());
            }
        }
    }
    out.truncate(64 * 1024);
    out
}

/// Run `target` on its seeds, then on mutations, until the budget ends.
pub fn fuzz(target: &Target, budget: Budget, seed: u64) -> Report {
    let started = Instant::now();
    let mut rng = Rng(seed.max(1));
    let mut pool = (target.seeds)();
    if pool.is_empty() {
        pool.push(Vec::new());
    }
    let mut report = Report::default();
    let mut seen = std::collections::HashSet::new();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut i = 0usize;
    loop {
        let done = match budget {
            Budget::Time(d) => started.elapsed() >= d,
            Budget::Execs(n) => report.execs >= n,
        };
        if done {
            break;
        }
        let input = if i < pool.len() {
            pool[i].clone()
        } else {
            let parent = rng.below(pool.len());
            mutate(&mut rng, &pool[parent], &pool, target.dictionary)
        };
        i += 1;
        report.execs += 1;
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| (target.run)(&input))) {
            let message = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".to_string());
            if seen.insert(hash(message.as_bytes())) {
                report.findings.push(Finding { input: input.clone(), message });
            }
        } else if pool.len() < 4096 && rng.below(64) == 0 {
            // Keep some survivors as parents (no coverage signal: a random sample).
            pool.push(input);
        }
    }
    std::panic::set_hook(previous);
    report.elapsed = started.elapsed();
    report
}

// ---- shared fixtures ----

fn model() -> &'static HashMap<String, Blueprint> {
    static MODEL: OnceLock<HashMap<String, Blueprint>> = OnceLock::new();
    MODEL.get_or_init(|| {
        let svc: Blueprint = serde_json::from_value(json!({
            "identifier": "service", "title": "Service",
            "schema": {"properties": {
                "name": {"type": "string"}, "tier": {"type": "string", "enum": ["a", "b"]},
                "cpu": {"type": "number", "minimum": 0, "maximum": 64}, "on": {"type": "boolean"},
                "tags": {"type": "array", "items": {"type": "string"}}, "meta": {"type": "object"},
                "at": {"type": "string", "format": "date-time"}, "url": {"type": "string", "format": "url"},
                "mail": {"type": "string", "format": "email"}, "re": {"type": "string", "pattern": "^[a-z]+$"}
            }, "required": ["name"]},
            "relations": {"team": {"title": "Team", "target": "team", "many": false, "required": false},
                          "deps": {"title": "Deps", "target": "service", "many": true, "required": false}},
            "mirrorProperties": {"teamName": {"path": "team.$title"}}
        }))
        .unwrap_or_else(|e| panic!("fixture: {e}"));
        let team: Blueprint = serde_json::from_value(json!({"identifier": "team", "title": "Team",
            "schema": {"properties": {"size": {"type": "number"}}}}))
        .unwrap_or_else(|e| panic!("fixture: {e}"));
        HashMap::from([("service".to_string(), svc), ("team".to_string(), team)])
    })
}

static JQ_WORKER: OnceLock<PathBuf> = OnceLock::new();

/// The jq worker program for the `jq`, `template` and `mapping` targets (tests pass
/// `CARGO_BIN_EXE_portolan-fuzz-jq-worker`; the driver binary finds it beside itself).
pub fn set_jq_worker(path: PathBuf) {
    let _ = JQ_WORKER.set(path);
}

fn engine() -> &'static JqEngine {
    static ENGINE: OnceLock<JqEngine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let worker = JQ_WORKER.get().cloned().or_else(|| {
            let exe = std::env::current_exe().ok()?;
            let dir = exe.parent()?;
            [dir.join("portolan-fuzz-jq-worker"), dir.parent()?.join("portolan-fuzz-jq-worker")]
                .into_iter()
                .find(|p| p.is_file())
        });
        let isolation = match worker {
            Some(program) => Isolation::Process { program, args: vec![] },
            None => Isolation::Threads,
        };
        JqEngine::with_config(JqConfig {
            timeout: Duration::from_millis(250),
            workers: 1,
            tenant_share: 1,
            isolation,
            ..JqConfig::default()
        })
    })
}

fn json_or_string(data: &[u8]) -> Value {
    serde_json::from_slice(data).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(data).into_owned()))
}

fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(m) => m.iter().for_each(|(k, x)| {
            out.push(k.clone());
            strings(x, out)
        }),
        _ => {}
    }
}

// ---- targets ----

const SEARCH_TOKENS: &[&str] = &[
    "\"combinator\":\"and\"",
    "\"combinator\":\"or\"",
    "\"rules\":[",
    "\"property\":",
    "\"operator\":\"=\"",
    "\"operator\":\"contains\"",
    "\"operator\":\"in\"",
    "\"operator\":\"between\"",
    "\"operator\":\"relatedTo\"",
    "\"operator\":\"matchAny\"",
    "\"value\":",
    "\"$identifier\"",
    "\"$title\"",
    "\"tier\"",
    "\"cpu\"",
    "\"deps\"",
    "\"blueprint\":\"service\"",
    "\"preset\":\"lastWeek\"",
    "\"direction\":\"upstream\"",
    "\"required\":true",
    "'; DROP TABLE entities; --",
    "%_\\",
];

fn seeds_search() -> Vec<Vec<u8>> {
    [
        json!({"combinator": "and", "rules": [{"property": "$blueprint", "operator": "=", "value": "service"}]}),
        json!({"combinator": "or", "rules": [{"property": "tier", "operator": "in", "value": ["a", "b"]},
                                             {"property": "cpu", "operator": ">", "value": 3}]}),
        json!({"combinator": "and", "rules": [{"property": "name", "operator": "contains", "value": "pay%_'"},
            {"property": "at", "operator": "between", "value": {"preset": "lastWeek"}},
            {"combinator": "or", "rules": [{"property": "$identifier", "operator": "isNotEmpty"}]}]}),
        json!({"combinator": "and", "rules": [{"operator": "relatedTo", "blueprint": "team", "value": "t1", "direction": "upstream"},
            {"property": "deps", "operator": "matchAny", "value": ["x"]}]}),
        json!({"combinator": "and", "rules": [{"property": {"path": ["deps", "deps", "team"]}, "operator": "=", "value": "x"}]}),
    ]
    .iter()
    .map(|v| v.to_string().into_bytes())
    .collect()
}

/// Parse and compile for both dialects; user strings reach SQL only as bound parameters.
pub fn search(data: &[u8]) {
    let Ok(v) = serde_json::from_slice::<Value>(data) else { return };
    let Ok(q) = portolan_core::search::parse_query(&v) else { return };
    let now = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
    let mut user = Vec::new();
    strings(&v, &mut user);
    let modes = [portolan_store::sql::Dialect::Sqlite, portolan_store::sql::Dialect::Postgres]
        .into_iter()
        .flat_map(|d| [(d, false), (d, true)]);
    for (dialect, team_rows) in modes {
        let ctx = portolan_store::query::CompileCtx {
            org_id: "org_fuzz",
            now,
            blueprints: model(),
            dialect,
            scorecards: Some(&[]),
            team_rows,
            reader: None,
        };
        let Ok(frag) = portolan_store::query::compile_where(&q, &ctx) else { continue };
        for s in &user {
            // Identifier-like strings may name columns; anything else is data.
            if s.len() >= 4 && s.chars().any(|c| !(c.is_ascii_alphanumeric() || c == '_' || c == '$')) {
                assert!(!frag.sql.contains(s.as_str()), "user string {s:?} in SQL text: {}", frag.sql);
            }
        }
    }
}

const BLUEPRINT_TOKENS: &[&str] = &[
    "\"identifier\":",
    "\"title\":",
    "\"schema\":{\"properties\":{",
    "\"type\":\"string\"",
    "\"type\":\"number\"",
    "\"type\":\"array\"",
    "\"format\":\"date-time\"",
    "\"enum\":[",
    "\"relations\":{",
    "\"target\":",
    "\"mirrorProperties\":{",
    "\"path\":\"team.$title\"",
    "\"calculationProperties\":{",
    "\"calculation\":\".\"",
    "\"required\":[",
    "\"many\":true",
    "\"pattern\":\"(a+)+$\"",
];

fn seeds_blueprint() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = model().values().filter_map(|b| serde_json::to_vec(b).ok()).collect();
    out.push(
        json!({"identifier": "x", "title": "X", "schema": {"properties": {"a": {"type": "string", "format": "url"}},
        "required": ["a", "b"]}, "relations": {"r": {"target": "x", "many": true, "title": "R"}},
        "calculationProperties": {"c": {"title": "C", "type": "string", "calculation": ".title"}}})
        .to_string()
        .into_bytes(),
    );
    out
}

pub fn blueprint(data: &[u8]) {
    let Ok(v) = serde_json::from_slice::<Value>(data) else { return };
    match portolan_core::blueprint_check::parse_blueprint(&v) {
        Err(errs) => assert!(!errs.0.is_empty(), "a refused blueprint names at least one error"),
        Ok(bp) => {
            struct Lookup<'a>(&'a Blueprint);
            impl portolan_core::blueprint_check::BlueprintLookup for Lookup<'_> {
                fn blueprint(&self, id: &str) -> Option<&Blueprint> {
                    (id == self.0.identifier).then_some(self.0).or_else(|| model().get(id))
                }
            }
            if let Err(errs) = portolan_core::blueprint_check::check_blueprint(&bp, &Lookup(&bp)) {
                assert!(!errs.0.is_empty());
            }
            // What was accepted round-trips.
            let again = serde_json::to_value(&bp).unwrap_or_default();
            assert!(
                portolan_core::blueprint_check::parse_blueprint(&again).is_ok(),
                "accepted blueprint does not re-parse: {again}"
            );
        }
    }
}

fn seeds_entity() -> Vec<Vec<u8>> {
    [
        json!({"name": "svc", "tier": "a", "cpu": 2, "on": true, "tags": ["x"], "meta": {"k": 1},
               "at": "2024-01-01T00:00:00Z", "url": "https://e.com", "mail": "a@b.co", "re": "abc"}),
        json!({"name": 3, "tier": "c", "cpu": -1, "on": "yes", "tags": [1], "meta": [], "at": "yesterday",
               "url": "javascript:x", "mail": "nope", "re": "ABC"}),
    ]
    .iter()
    .map(|v| v.to_string().into_bytes())
    .collect()
}

/// Every property of the fixture blueprint checked against the values of a JSON object.
pub fn entity(data: &[u8]) {
    let Ok(Value::Object(values)) = serde_json::from_slice::<Value>(data) else { return };
    let bp = &model()["service"];
    for (key, prop) in &bp.schema.properties {
        let Some(v) = values.get(key) else { continue };
        let mut errs = portolan_core::FieldErrors::default();
        portolan_core::entity::check_value(&mut errs, &format!("properties.{key}"), prop, v);
        for e in &errs.0 {
            assert!(e.path.starts_with("properties."), "error without its field path: {e:?}");
        }
    }
}

const JQ_TOKENS: &[&str] = &[
    ".",
    "|",
    "[",
    "]",
    "{",
    "}",
    "(",
    ")",
    ",",
    ".a",
    ".[]",
    "map(",
    "select(",
    "reduce ",
    "foreach ",
    " as $x ",
    "range(",
    "setpath(",
    "getpath(",
    "paths",
    "..",
    "tojson",
    "fromjson",
    "tostring",
    "tonumber",
    "test(",
    "sub(",
    "gsub(",
    "capture(",
    "split(",
    "join(",
    "@base64d",
    "@csv",
    "def f: ",
    "f;",
    "limit(",
    "until(",
    "repeat(",
    "recurse",
    "env",
    "$ENV",
    "input",
    "halt",
    "error(",
    "try ",
    "catch ",
    "//",
    "'single'",
    "\"\\(.)\"",
    "1e1000",
    "-",
    "*",
    "/",
    "%",
    "==",
    "<",
    "and",
    "or",
    "not",
    "if ",
    "then ",
    "else ",
    "end",
    "ltrimstr(",
    "splits(",
    "ascii_downcase",
    "to_entries",
    "from_entries",
    "with_entries(",
    "walk(",
    "flatten",
    "sort_by(",
    "group_by(",
];

fn seeds_jq() -> Vec<Vec<u8>> {
    let corpus: Value =
        serde_json::from_str(include_str!("../../portolan-jq/tests/data/ocean-mappings.json")).unwrap_or_default();
    let mut filters = Vec::new();
    strings(&corpus, &mut filters);
    filters.retain(|f| f.starts_with('.') || f.contains('|') || f.starts_with('"') || f.starts_with('['));
    filters.truncate(400);
    filters.extend(
        [
            ".a + 1",
            "[.[] | select(.x)] | length",
            "reduce range(10) as $i (0; . + $i)",
            "def f: if . > 3 then . else (. + 1 | f) end; 0 | f",
            ".name | test(\"^a\")",
            "to_entries | map(.key) | join(\",\")",
            "'x' + .identifier",
        ]
        .map(String::from),
    );
    filters.into_iter().map(String::into_bytes).collect()
}

fn jq_input() -> &'static Value {
    static INPUT: OnceLock<Value> = OnceLock::new();
    INPUT.get_or_init(|| {
        json!({"identifier": "svc-1", "title": "Service", "a": 1, "name": "abc", "x": true,
               "properties": {"cpu": 2, "tags": ["a", "b"]}, "item": {"id": 7, "labels": {"k": "v"}},
               "list": [1, 2, 3, {"a": null}]})
    })
}

/// Any filter: an answer or an error, within the time limit (process isolation: a crash of the
/// worker is an error too), and the engine keeps answering.
pub fn jq(data: &[u8]) {
    let filter = String::from_utf8_lossy(data);
    let jq = engine();
    let started = Instant::now();
    let _ = jq.first(&filter, jq_input());
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "jq evaluation outlived its 250 ms limit: {took:?} for {filter:?}");
    if matches!(jq.config().isolation, Isolation::Process { .. }) {
        assert_eq!(jq.process_stats().busy, 0, "a worker is still busy after the evaluation returned");
    }
}

const TEMPLATE_TOKENS: &[&str] = &[
    "{{",
    "}}",
    "{{ .entity.identifier }}",
    "{{ spreadValue() }}",
    "\"",
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    "{{ . }}",
    "\"{{\"",
    "'}}'",
    "{{ \"}}\" }}",
];

fn seeds_template() -> Vec<Vec<u8>> {
    [
        json!({"url": "https://x/{{ .entity.identifier }}", "body": {"n": "{{ .inputs.n }}", "{{ spreadValue() }}": "{{ .inputs }}"}}),
        json!("{{ .trigger.by.user.email }} ran {{ .action.identifier }}"),
        json!({"headers": {"X-{{ .inputs.k }}": "{{ .inputs.v | tostring }}"}, "list": ["{{ 1, 2 }}", "{{ \"}}\" }}"]}),
    ]
    .iter()
    .map(|v| v.to_string().into_bytes())
    .collect()
}

/// Templates render or fail with a path; never a panic or a hang.
pub fn template(data: &[u8]) {
    let tpl = json_or_string(data);
    let ctx = json!({"entity": jq_input(), "inputs": {"n": 3, "k": "a", "v": [1]}, "action": {"identifier": "deploy"},
                     "trigger": {"by": {"user": {"email": "a@b.c"}}}});
    if let Err(e) = portolan_jq::template::render_strict(engine(), &engine().budget_for("fuzz"), &tpl, &ctx) {
        let _ = e.to_string();
    }
}

fn seeds_ingest() -> Vec<Vec<u8>> {
    [
        json!({"security": {"signatureAlgorithm": "sha256", "signatureHeaderName": "X-Hub-Signature-256", "signaturePrefix": "sha256="},
               "secret": "s", "headers": [["x-hub-signature-256", "sha256=00"], ["content-type", "application/json"]],
               "query": "a=1&b=%20x&c", "body": "{\"id\": 1}"}),
        json!({"security": {"signatureAlgorithm": "plain", "signatureHeaderName": "token"}, "secret": "t",
               "headers": [["token", "t"], ["TOKEN", "u"]], "query": "%zz=&=&&", "body": ""}),
        json!({"security": {"signatureAlgorithm": "sha1", "signatureHeaderName": "x-sig"}, "secret": null,
               "headers": [], "query": null, "body": "x"}),
    ]
    .iter()
    .map(|v| v.to_string().into_bytes())
    .collect()
}

/// The signature check and the header/query maps of the ingest URL; a correct signature passes.
pub fn webhook_ingest(data: &[u8]) {
    let Ok(v) = serde_json::from_slice::<Value>(data) else { return };
    let security = v.get("security").and_then(Value::as_object).cloned().unwrap_or_default();
    let secret = v.get("secret").and_then(Value::as_str);
    let headers: Vec<(String, String)> = v
        .get("headers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter().filter_map(|p| Some((p.get(0)?.as_str()?.to_string(), p.get(1)?.as_str()?.to_string()))).collect()
        })
        .unwrap_or_default();
    let body = v.get("body").and_then(Value::as_str).unwrap_or("").as_bytes().to_vec();
    let (verdict, hmap, qmap) = portolan_server::fuzzing::webhook_ingest(
        &security,
        secret,
        &headers,
        v.get("query").and_then(Value::as_str),
        &body,
    );
    if let Err(m) = verdict {
        assert!(!m.is_empty());
    }
    for k in hmap.keys() {
        assert_eq!(k, &k.to_ascii_lowercase(), "header names are lower-cased");
    }
    let _ = qmap;
}

fn seeds_mapping() -> Vec<Vec<u8>> {
    let corpus: Value =
        serde_json::from_str(include_str!("../../portolan-jq/tests/data/ocean-mappings.json")).unwrap_or_default();
    let mut out: Vec<Vec<u8>> = Vec::new();
    fn find(v: &Value, out: &mut Vec<Vec<u8>>) {
        match v {
            Value::Object(m) if m.contains_key("entity") || m.contains_key("itemsToParse") => {
                out.push(Value::Array(vec![v.clone()]).to_string().into_bytes());
            }
            Value::Object(m) => m.values().for_each(|x| find(x, out)),
            Value::Array(a) => a.iter().for_each(|x| find(x, out)),
            _ => {}
        }
    }
    find(&corpus, &mut out);
    out.truncate(100);
    out.push(
        json!([{"blueprint": "service", "filter": ".body.ok", "itemsToParse": ".body.items",
                "entity": {"identifier": ".item.id | tostring", "title": ".item.name", "properties": {"n": ".item.n"},
                           "relations": {"team": ".body.team"}}},
               {"blueprint": "service", "operation": "delete", "entity": {"identifier": ".body.gone"}}])
        .to_string()
        .into_bytes(),
    );
    out
}

/// Any mapping over a fixed delivery: entities or counted failures, within the delivery budget.
pub fn mapping(data: &[u8]) {
    let Ok(Value::Array(mappings)) = serde_json::from_slice::<Value>(data) else { return };
    let input = json!({"body": {"ok": true, "team": "t1", "gone": "x", "items": [{"id": 1, "name": "a", "n": 2}, {"id": "b"}, {}],
                                "id": "svc", "env": "prod"},
                       "headers": {"x-github-event": "push"}, "queryParams": {}});
    let budget = JqBudget::new("fuzz", Duration::from_millis(500));
    let started = Instant::now();
    for (items, failed, entities) in portolan_server::fuzzing::map_delivery(engine(), &budget, &mappings, &input) {
        assert!(failed <= items.max(1), "more failures ({failed}) than items ({items})");
        for e in entities {
            assert!(
                matches!(e.get("identifier"), Some(Value::String(s)) if !s.trim().is_empty()),
                "entity without identifier: {e}"
            );
        }
    }
    assert!(started.elapsed() < Duration::from_secs(5), "a delivery outlived its budget: {:?}", started.elapsed());
}
