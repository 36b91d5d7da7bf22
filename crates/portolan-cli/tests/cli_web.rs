//! The CLI's web-UI commands on a real binary: `portolan init` prints a one-time admin setup
//! link (once), and `portolan export` writes the catalog as JSON, YAML or Terraform HCL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

fn portolan(data: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_portolan"))
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env_remove("PORTOLAN_DATABASE_URL")
        .env("PORTOLAN_PUBLIC_URL", "https://portal.example.com")
        .output()
        .expect("run portolan")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn init_prints_a_setup_link_once_and_export_writes_every_format() {
    let data = std::env::temp_dir().join(format!("portolan-cli-web-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let first = portolan(&data, &["init", "--admin-email", "Boss@Example.com"]);
    assert!(first.status.success(), "{}", text(&first));
    let out = text(&first);
    assert!(out.contains("https://portal.example.com/ui/invite/"), "{out}");
    // Until the link is used, init prints a fresh one; the JSON form carries it too.
    let json = portolan(&data, &["init", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    assert!(v["adminSetupLink"].as_str().unwrap().starts_with("https://portal.example.com/ui/invite/"));

    // An empty catalog exports as empty documents.
    let j = portolan(&data, &["export", "--format", "json"]);
    assert!(j.status.success(), "{}", text(&j));
    let v: serde_json::Value = serde_json::from_slice(&j.stdout).unwrap();
    assert_eq!(v, serde_json::json!({"blueprints": [], "entities": [], "actions": []}));
    let bad = portolan(&data, &["export", "--format", "xml"]);
    assert!(!bad.status.success());
    assert!(text(&bad).contains("expected json, yaml or hcl"), "{}", text(&bad));
    let missing = portolan(&data, &["export", "--format", "hcl", "--blueprint", "nope"]);
    assert!(!missing.status.success());
    assert!(text(&missing).contains("no blueprint \"nope\""), "{}", text(&missing));
    seed(&data, 1203);
    let y = portolan(&data, &["export", "--format", "yaml", "--blueprint", "svc"]);
    assert!(y.status.success(), "{}", text(&y));
    let yaml = String::from_utf8_lossy(&y.stdout);
    assert_eq!(yaml.matches("blueprint: svc").count(), 1203, "every entity, across pages of 1000");
    let file = data.join("out.tf");
    let hcl = portolan(&data, &["export", "--format", "hcl", "-o", file.to_str().unwrap()]);
    assert!(hcl.status.success(), "{}", text(&hcl));
    let tf = std::fs::read_to_string(&file).unwrap();
    assert!(tf.starts_with("resource \"port_blueprint\" \"svc\" {"), "{}", &tf[..200.min(tf.len())]);
    assert_eq!(tf.matches("resource \"port_entity\"").count(), 1203);
    let only = portolan(&data, &["export", "--format", "hcl", "--no-entities"]);
    assert_eq!(String::from_utf8_lossy(&only.stdout).matches("resource").count(), 1);
    let _ = std::fs::remove_dir_all(&data);
}

/// A blueprint `svc` with `n` entities in the default organization, written through the store.
fn seed(data: &std::path::Path, n: usize) {
    use portolan_store::{AuditCtx, EntityWrite, SqliteStore};
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let store = SqliteStore::open(&data.join("portolan.sqlite")).await.unwrap();
        let org = store.org_by_name("default").await.unwrap().unwrap().id;
        let ctx =
            AuditCtx { user_id: "t".into(), origin: "test".into(), at: "2024-01-01T00:00:00.000Z".into(), depth: 0 };
        let bp: portolan_core::Blueprint =
            serde_json::from_value(serde_json::json!({"identifier": "svc", "title": "Service",
            "schema": {"properties": {"n": {"type": "number"}}}}))
            .unwrap();
        store.create_blueprint(&org, &bp, &ctx).await.unwrap();
        let writes: Vec<EntityWrite> = (0..n)
            .map(|i| {
                let e: portolan_core::Entity = serde_json::from_value(serde_json::json!({
                    "identifier": format!("e{i}"), "title": null, "icon": null, "blueprint": "svc", "team": [],
                    "properties": {"n": i}, "relations": {}, "createdAt": "2024-01-01T00:00:00.000Z", "createdBy": "t",
                    "updatedAt": "2024-01-01T00:00:00.000Z", "updatedBy": "t"}))
                .unwrap();
                EntityWrite {
                    blueprint: "svc".into(),
                    identifier: e.identifier.clone(),
                    build: Box::new(move |_| Ok((e, vec![]))),
                    create_missing_related: false,
                }
            })
            .collect();
        for r in store.write_entities(&org, writes, &ctx).await.unwrap() {
            r.unwrap();
        }
        store.close().await;
    });
}
