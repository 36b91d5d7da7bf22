//! `migrate::sqlite_to_postgres` on a catalog of 10,000 entities with relations, updates,
//! deletions and their audit history, in two organizations; then a second organization added
//! to the non-empty target, and a tampered row caught by the checksums. Skipped (with a note
//! on stderr) without `PORTOLAN_TEST_DATABASE_URL`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/pg.rs"]
mod pg;

use std::collections::HashMap;

use portolan_core::{Blueprint, Entity};
use portolan_store::conformance::{ctx, entity, model, org, put};
use portolan_store::migrate::{CopyOptions, MigrateError, sqlite_to_postgres, verify};
use portolan_store::{AuditFilter, OrgId, SearchRequest, SqliteStore, Store};
use serde_json::json;

fn temp_db() -> std::path::PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let dir = std::env::temp_dir().join(format!("portolan-migrate-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("portolan.sqlite")
}

async fn write_all(s: &dyn Store, o: &OrgId, m: &HashMap<String, Blueprint>, es: Vec<Entity>) {
    for chunk in es.chunks(500) {
        let writes = chunk.iter().cloned().map(|e| put(e, m, false)).collect();
        for r in s.write_entities(o, writes, &ctx()).await.unwrap() {
            r.expect("write accepted");
        }
    }
}

/// n/90 teams, n/10 domains, n services with relations; every 4th service updated, every 18th deleted.
async fn catalog(s: &dyn Store, o: &OrgId, m: &HashMap<String, Blueprint>, n_services: usize) {
    let teams = (0..n_services / 90).map(|i| entity("team", &format!("t{i}"), json!({}), json!({}))).collect();
    write_all(s, o, m, teams).await;
    let domains = (0..n_services / 10)
        .map(|i| entity("domain", &format!("d{i}"), json!({"owner": format!("o{}", i % 7)}), json!({})))
        .collect();
    write_all(s, o, m, domains).await;
    let service = |i: usize, cpu: f64| {
        let lang = ["go", "rust", "python"][i % 3];
        let mut e = entity(
            "service",
            &format!("s{i}"),
            json!({"cpu": cpu, "lang": lang}),
            json!({"domain": format!("d{}", i % (n_services / 10)), "team": format!("t{}", i % (n_services / 90))}),
        );
        e.team = vec![format!("team-{}", i % 5)];
        e.datasource = i.is_multiple_of(4).then(|| "port-ocean/github/0.1".to_string());
        e
    };
    write_all(s, o, m, (0..n_services).map(|i| service(i, (i % 64) as f64)).collect()).await;
    write_all(s, o, m, (0..n_services).step_by(4).map(|i| service(i, 1.5)).collect()).await;
    let gone: Vec<String> = (0..n_services).skip(1).step_by(18).map(|i| format!("s{i}")).collect();
    s.delete_entities(o, "service", &gone, false, &ctx()).await.unwrap();
}

async fn all_entities(s: &dyn Store, o: &OrgId, m: &HashMap<String, Blueprint>) -> Vec<Entity> {
    let mut out = Vec::new();
    let mut req = SearchRequest::new(m, None, None, 1000);
    loop {
        let page = s.search(o, &req).await.unwrap();
        out.extend(page.entities);
        match page.next {
            Some(n) => req.after = Some(n),
            None => return out,
        }
    }
}

#[tokio::test]
async fn copies_a_catalog_of_10000_entities_and_verifies_it() {
    let Some(pg) = pg::fresh().await else { return };
    let path = temp_db();
    let src = SqliteStore::open(&path).await.unwrap();
    src.setting_or_init("token_signing_key", "the-old-key").await.unwrap();
    let acme = org(&src, "acme").await;
    src.add_credential(&acme, "acme-client", "hash-of-acme-secret", "default", "2026-01-01T00:00:00.000Z")
        .await
        .unwrap();
    let m = model(&src, &acme).await;
    catalog(&src, &acme, &m, 9000).await;
    let small = org(&src, "small").await;
    let ms = model(&src, &small).await;
    catalog(&src, &small, &ms, 900).await;

    let report = sqlite_to_postgres(&src, &pg, &CopyOptions::default()).await.unwrap();
    assert_eq!(report.organizations, vec!["acme".to_string(), "small".to_string()]);
    assert!(report.settings_copied && report.committed);
    for t in &report.tables {
        assert!(t.matches(), "{t:?}");
    }
    let count = |t: &str| report.tables.iter().find(|c| c.table == t).unwrap().target_rows;
    assert_eq!(count("entities"), (100 + 900 + 9000 - 500) + (10 + 90 + 900 - 50));
    assert_eq!(count("entity_relations"), 2 * (9000 - 500) + 2 * (900 - 50));
    assert_eq!(count("credentials"), 1);
    assert_eq!(count("blueprints"), 6);
    // Every create (11,000 entities, 6 blueprints), update (2,250 + 225) and delete (500 + 50).
    assert_eq!(count("audit_log"), 11_000 + 6 + 2_475 + 550);

    // Read back through the PostgreSQL store: the same entities in the same (cursor) order.
    let (before, after) = (all_entities(&src, &acme, &m).await, all_entities(&*pg, &acme, &m).await);
    assert_eq!(before.len(), 9500);
    assert_eq!(before, after);
    let filter = AuditFilter { limit: 100_000, ..AuditFilter::default() };
    let (a, b) = (src.list_audit(&acme, &filter).await.unwrap(), pg.list_audit(&acme, &filter).await.unwrap());
    assert_eq!(a.len(), b.len());
    assert!(a.iter().zip(&b).all(|(x, y)| x.id == y.id && x.at == y.at && x.diff == y.diff && x.action == y.action));
    assert_eq!(pg.credential("acme-client").await.unwrap().unwrap().1, "hash-of-acme-secret");
    assert_eq!(pg.setting_or_init("token_signing_key", "new").await.unwrap(), "the-old-key");
    // The identity sequences continue after the copied ids: new writes work.
    let e = entity("team", "t-new", json!({}), json!({}));
    pg.write_entities(&acme, vec![put(e, &m, false)], &ctx()).await.unwrap().pop().unwrap().unwrap();
    let last = all_entities(&*pg, &acme, &m).await.pop().unwrap();
    assert_eq!(last.identifier, "t-new", "the new entity sorts after every copied one");

    // A non-empty target is refused, and nothing is written.
    let err = sqlite_to_postgres(&src, &pg, &CopyOptions::default()).await.unwrap_err();
    assert!(matches!(&err, MigrateError::Refused(m) if m.contains("not empty") && m.contains("--allow-non-empty")));
    let opts = CopyOptions { organizations: vec!["acme".into()], allow_non_empty: true };
    let err = sqlite_to_postgres(&src, &pg, &opts).await.unwrap_err();
    assert!(matches!(&err, MigrateError::Refused(m) if m.contains("already exists")), "{err}");
    let opts = CopyOptions { organizations: vec!["nope".into()], allow_non_empty: true };
    let err = sqlite_to_postgres(&src, &pg, &opts).await.unwrap_err();
    assert!(matches!(&err, MigrateError::Refused(m) if m.contains("acme, small")), "{err}");

    // Another organization added to the non-empty target: ids shift past the target's own.
    let late = org(&src, "late").await;
    let ml = model(&src, &late).await;
    catalog(&src, &late, &ml, 180).await;
    let opts = CopyOptions { organizations: vec!["late".into()], allow_non_empty: true };
    let report = sqlite_to_postgres(&src, &pg, &opts).await.unwrap();
    assert!(!report.settings_copied);
    assert!(report.rid_offset > 0 && report.audit_offset > 0);
    assert!(report.verified(), "{:?}", report.tables);
    assert_eq!(all_entities(&src, &late, &ml).await, all_entities(&*pg, &late, &ml).await);

    // The checksums are not decorative: one changed property is caught.
    let mut conn = {
        use sqlx::Connection;
        sqlx::PgConnection::connect(&pg.url()).await.unwrap()
    };
    sqlx::query("UPDATE entities SET properties = jsonb_set(properties, '{cpu}', '999') WHERE identifier = 's2' AND org_id = $1")
        .bind(&late.0)
        .execute(&mut conn)
        .await
        .unwrap();
    let checks = verify(&src, &pg, &report).await.unwrap();
    let bad: Vec<&str> = checks.iter().filter(|c| !c.matches()).map(|c| c.table).collect();
    assert_eq!(bad, vec!["entities"]);
    pg.close().await;
    src.close().await;
}
