//! Several `portolan serve` processes on one PostgreSQL database behave as one portal: writes
//! through one node are read through another at once, blueprint changes are enforced by every
//! node at once, a job whose node is killed mid-way is finished by another node, and nodes
//! starting together on an empty database all come up.
//!
//! Each test creates its own database from `PORTOLAN_TEST_DATABASE_URL`
//! (`postgres://postgres@127.0.0.1:5432/test`) and drops it afterwards; without the variable each
//! test says on stderr that it was skipped and passes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

const CLIENT_ID: &str = "multinode-client";
const CLIENT_SECRET: &str = "multinode-secret-0123456789";

/// A fresh database, dropped (forcibly) when the guard goes.
struct TestDb {
    admin: String,
    name: String,
    url: String,
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async move {
                use sqlx::Connection;
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await;
                }
            });
        })
        .join();
    }
}

/// `None` (after saying so on stderr) when `PORTOLAN_TEST_DATABASE_URL` is not set.
async fn fresh_db(tag: &str) -> Option<TestDb> {
    use sqlx::Connection;
    let Ok(admin) = std::env::var("PORTOLAN_TEST_DATABASE_URL") else {
        eprintln!("skipped: PORTOLAN_TEST_DATABASE_URL not set (multi-node tests need PostgreSQL)");
        return None;
    };
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let name = format!("portolan_mn_{tag}_{}_{nanos}", std::process::id());
    let mut conn = sqlx::PgConnection::connect(&admin).await.expect("connect to PORTOLAN_TEST_DATABASE_URL");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await.unwrap();
    let (base, query) = admin.split_once('?').map_or((admin.as_str(), None), |(b, q)| (b, Some(q)));
    let base = &base[..base.rfind('/').unwrap()];
    let url = match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    };
    Some(TestDb { admin, name, url })
}

/// A running `portolan serve` process; killed when dropped.
struct Node {
    child: Child,
    base: String,
    log: PathBuf,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    fn spawn(db: &TestDb, node_id: &str, env: &[(&str, &str)]) -> Child {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_portolan"));
        for (k, _) in std::env::vars() {
            if k.starts_with("PORTOLAN_") {
                cmd.env_remove(k);
            }
        }
        let log = log_path(node_id);
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .env("PORTOLAN_DATABASE_URL", &db.url)
            .env("PORTOLAN_DATABASE_POOL_SIZE", "4")
            .env("PORTOLAN_NODE_ID", node_id)
            .env("PORTOLAN_BOOTSTRAP_CLIENT_ID", CLIENT_ID)
            .env("PORTOLAN_BOOTSTRAP_CLIENT_SECRET", CLIENT_SECRET)
            .env("PORTOLAN_LOG_LEVEL", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            // A file, not a pipe nobody reads: a full pipe would block the node.
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()));
        cmd.spawn().unwrap()
    }

    /// Wait for the `listening on` line of a spawned node.
    fn ready(mut child: Child, node_id: &str) -> Node {
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let log = log_path(node_id);
        let Some(base) = line.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("node {node_id} did not start: {}", std::fs::read_to_string(&log).unwrap_or_default());
        };
        Node { base: base.to_string(), child, log }
    }

    fn start(db: &TestDb, node_id: &str, env: &[(&str, &str)]) -> Node {
        Self::ready(Self::spawn(db, node_id, env), node_id)
    }

    fn kill9(&mut self) {
        let status = Command::new("kill").args(["-KILL", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let _ = self.child.wait();
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn log_path(node_id: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let dir = std::env::temp_dir().join(format!("portolan-multinode-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(format!("{node_id}-{}.log", nanos / 1_000_000_000))
}

/// HTTP to the nodes with one token (issued by one node, accepted by all: the signing key is in
/// the shared settings table).
struct Client {
    http: reqwest::Client,
    token: String,
}

impl Client {
    async fn new(node: &Node) -> Client {
        let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(60)).build().unwrap();
        let r = http
            .post(format!("{}/v1/auth/access_token", node.base))
            .json(&json!({"clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let token = r.json::<Value>().await.unwrap()["accessToken"].as_str().unwrap().to_string();
        Client { http, token }
    }

    async fn req(&self, node: &Node, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut rb = self.http.request(method, format!("{}{path}", node.base)).bearer_auth(&self.token);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn count(&self, node: &Node, bp: &str) -> u64 {
        let (s, b) = self.req(node, "GET", &format!("/v1/blueprints/{bp}/entities-count"), None).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        b["count"].as_u64().unwrap()
    }
}

#[tokio::test]
async fn writes_and_blueprint_changes_through_one_node_are_seen_by_the_other_at_once() {
    let Some(db) = fresh_db("rw").await else { return };
    let n1 = Node::start(&db, "node-1", &[]);
    let n2 = Node::start(&db, "node-2", &[]);
    let c = Client::new(&n1).await;
    let svc = json!({"identifier": "service", "title": "Service",
        "schema": {"properties": {"cpu": {"type": "number"}, "lang": {"type": "string"}}}});
    let (s, b) = c.req(&n1, "POST", "/v1/blueprints", Some(svc)).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    // Node 2 sees the blueprint and the entity written through node 1.
    let (s, b) = c.req(&n2, "GET", "/v1/blueprints/service", None).await;
    assert_eq!((s, &b["blueprint"]["title"]), (StatusCode::OK, &json!("Service")), "{b}");
    let cart = json!({"identifier": "cart", "properties": {"cpu": 5, "lang": "go"}});
    let (s, b) = c.req(&n1, "POST", "/v1/blueprints/service/entities", Some(cart)).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, b) = c.req(&n2, "GET", "/v1/blueprints/service/entities/cart", None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["entity"]["properties"], json!({"cpu": 5, "lang": "go"}));
    // Node 2 validates (and caches the blueprint) ...
    let big = json!({"identifier": "big", "properties": {"cpu": 8}});
    let (s, b) = c.req(&n2, "POST", "/v1/blueprints/service/entities?validation_only=true", Some(big.clone())).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // ... node 1 tightens the schema ...
    let tighter = json!({"identifier": "service", "title": "Service v2",
        "schema": {"properties": {"cpu": {"type": "number", "maximum": 4}, "lang": {"type": "string"}}}});
    let (s, b) = c.req(&n1, "PUT", "/v1/blueprints/service", Some(tighter)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // ... and node 2 enforces it on its very next request.
    let (s, b) = c.req(&n2, "POST", "/v1/blueprints/service/entities", Some(big)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "node 2 used a stale blueprint: {b}");
    assert_eq!(b["ok"], json!(false));
    let (_, b) = c.req(&n2, "GET", "/v1/blueprints/service", None).await;
    assert_eq!(b["blueprint"]["title"], json!("Service v2"));
    // Deletes too.
    let (s, _) = c.req(&n2, "DELETE", "/v1/blueprints/service/entities/cart", None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = c.req(&n1, "GET", "/v1/blueprints/service/entities/cart", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_job_of_a_killed_node_is_finished_by_another_node() {
    let Some(db) = fresh_db("job").await else { return };
    let job_env =
        [("PORTOLAN_JOB_WORKERS", "1"), ("PORTOLAN_JOB_LEASE_SECONDS", "2"), ("PORTOLAN_DELETE_CHUNK_SIZE", "3")];
    let mut n1 = Node::start(&db, "node-1", &job_env);
    let c = Client::new(&n1).await;
    let (s, b) = c.req(&n1, "POST", "/v1/blueprints", Some(json!({"identifier": "pkg", "title": "Package"}))).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    const TOTAL: u64 = 3000;
    for batch in 0..TOTAL / 1000 {
        let entities: Vec<Value> =
            (0..1000).map(|i| json!({"identifier": format!("p{batch}-{i}"), "title": "p"})).collect();
        let (s, b) = c.req(&n1, "POST", "/v1/blueprints/pkg/entities/bulk", Some(json!({"entities": entities}))).await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    assert_eq!(c.count(&n1, "pkg").await, TOTAL);

    // Node 1 enqueues the job and its own worker claims it at once.
    let deleting = {
        let (http, token, url) =
            (c.http.clone(), c.token.clone(), format!("{}/v1/blueprints/pkg/all-entities", n1.base));
        tokio::spawn(async move { http.delete(url).bearer_auth(token).send().await })
    };
    let started = Instant::now();
    let job = loop {
        let (s, b) = c.req(&n1, "GET", "/v1/jobs?kind=delete_all_entities", None).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        if let Some(j) = b["jobs"].as_array().and_then(|a| a.first())
            && j["status"] == json!("running")
            && j["progress"]["deleted"].as_u64().unwrap_or(0) > 0
        {
            break j.clone();
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the job never ran on node 1: {b}\n{}", n1.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(job["node"], json!("node-1"), "{job}");
    assert_eq!(job["attempts"], json!(1));
    let id = job["id"].as_str().unwrap().to_string();

    // Node 1 dies mid-job; node 2 (started afterwards, so it cannot have claimed the job first)
    // takes it over once node 1's lease expires and finishes it from the checkpoint.
    n1.kill9();
    let _ = deleting.await;
    let n2 = Node::start(&db, "node-2", &job_env);
    let (s, b) = c.req(&n2, "GET", &format!("/v1/jobs/{id}"), None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(b["job"]["progress"]["deleted"].as_u64().unwrap() > 0, "{b}");
    let started = Instant::now();
    let done = loop {
        let (s, b) = c.req(&n2, "GET", &format!("/v1/jobs/{id}"), None).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        if b["job"]["status"] != json!("running") && b["job"]["status"] != json!("queued") {
            break b["job"].clone();
        }
        assert!(started.elapsed() < Duration::from_secs(60), "node 2 did not finish the job: {b}\n{}", n2.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(done["status"], json!("succeeded"), "{done}\n{}", n2.logs());
    assert_eq!(done["node"], json!("node-2"), "{done}");
    assert_eq!(done["attempts"], json!(2), "{done}");
    assert_eq!(c.count(&n2, "pkg").await, 0);
    // The checkpoint carried over: node 2 resumed from node 1's count. At most the chunk node 1
    // deleted after its last checkpoint went uncounted.
    let deleted = done["progress"]["deleted"].as_u64().unwrap();
    assert!((TOTAL - 3..=TOTAL).contains(&deleted), "{done}");
    assert_eq!(done["result"]["deleted"], json!(deleted));
}

#[tokio::test]
async fn two_nodes_starting_together_on_an_empty_database_both_serve() {
    let Some(db) = fresh_db("start").await else { return };
    let (c1, c2) = (Node::spawn(&db, "node-1", &[]), Node::spawn(&db, "node-2", &[]));
    let (n1, n2) = (Node::ready(c1, "node-1"), Node::ready(c2, "node-2"));
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    for n in [&n1, &n2] {
        let r = http.get(format!("{}/readyz", n.base)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{}", n.logs());
    }
    // One organization, one credential and one signing key: a token of either node works on both.
    for (issuer, other) in [(&n1, &n2), (&n2, &n1)] {
        let c = Client::new(issuer).await;
        let (s, b) = c.req(other, "GET", "/v1/blueprints", None).await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    let c = Client::new(&n2).await;
    let (s, b) = c.req(&n2, "POST", "/v1/blueprints", Some(json!({"identifier": "team", "title": "Team"}))).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, b) = c.req(&n1, "GET", "/v1/blueprints/team", None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
}
