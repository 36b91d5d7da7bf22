//! Golden tests of the exports: the files under `golden/` are the expected output
//! (`PORTOLAN_UPDATE_GOLDEN=1 cargo test -p portolan-core export` rewrites them), and the HCL
//! must pass `terraform fmt -check` where terraform is installed.

use super::*;
use serde_json::json;

fn model() -> (Vec<Blueprint>, Vec<Entity>) {
    let bps: Vec<Blueprint> = vec![
        serde_json::from_value(json!({"identifier": "domain", "title": "Domain",
            "schema": {"properties": {"owner": {"type": "string", "format": "email", "title": "Owner"}}}}))
        .unwrap(),
        serde_json::from_value(json!({"identifier": "service", "title": "Service", "icon": "Microservice",
            "description": "A deployable \"unit\" costing ${var.x}",
            "schema": {"properties": {
                "language": {"type": "string", "enum": ["go", "rust"], "enumColors": {"go": "blue", "rust": "red"}},
                "cpu": {"type": "number", "maximum": 64, "minimum": 0},
                "public": {"type": "boolean", "default": false},
                "tags": {"type": "array", "items": {"type": "string"}},
                "meta": {"type": "object", "default": {"a": 1}},
                "readme": {"type": "string", "format": "markdown", "maxLength": 10000}
            }, "required": ["language"]},
            "relations": {"domain": {"title": "Domain", "target": "domain", "required": false, "many": false},
                          "deps": {"target": "service", "required": false, "many": true}},
            "mirrorProperties": {"domainOwner": {"path": "domain.owner"}},
            "calculationProperties": {"docs": {"type": "string", "format": "url",
                "calculation": "'https://docs/' + .identifier"}}}))
        .unwrap(),
    ];
    let entity = |v: Value| -> Entity {
        let mut e: Entity = serde_json::from_value(json!({
            "identifier": "", "title": null, "icon": null, "blueprint": "", "team": [], "properties": {},
            "relations": {}, "createdAt": "2024-01-01T00:00:00.000Z", "createdBy": "t",
            "updatedAt": "2024-01-01T00:00:00.000Z", "updatedBy": "t"}))
        .unwrap();
        let o = v.as_object().unwrap();
        e.identifier = o["identifier"].as_str().unwrap().into();
        e.blueprint = o["blueprint"].as_str().unwrap().into();
        e.title = o.get("title").and_then(Value::as_str).map(str::to_string);
        e.team = o.get("team").map(|t| serde_json::from_value(t.clone()).unwrap()).unwrap_or_default();
        e.properties = o.get("properties").and_then(Value::as_object).cloned().unwrap_or_default();
        e.relations = o.get("relations").and_then(Value::as_object).cloned().unwrap_or_default();
        e
    };
    let es = vec![
        entity(json!({"identifier": "payments", "blueprint": "domain", "title": "Payments",
            "properties": {"owner": "ana@example.com"}})),
        entity(json!({"identifier": "cart", "blueprint": "service", "title": "Cart \"v2\"", "team": ["core"],
            "properties": {"language": "go", "cpu": 4.5, "public": true, "tags": ["a", "b,c"],
                           "meta": {"nested": {"x": [1, 2]}}, "readme": "# Cart\nline two with %{ and ${x}"},
            "relations": {"domain": "payments", "deps": ["1st-dep", "auth"]}})),
        entity(json!({"identifier": "1st-dep", "blueprint": "service", "properties": {"language": "rust"}})),
    ];
    (bps, es)
}

fn golden(name: &str, actual: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/export/golden").join(name);
    if std::env::var_os("PORTOLAN_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(actual, expected, "{name} differs from the golden file (PORTOLAN_UPDATE_GOLDEN=1 rewrites it)");
}

#[test]
fn hcl_export_matches_the_golden_file() {
    let (bps, es) = model();
    golden("model.tf", &to_hcl(&bps, &es));
}

#[test]
fn yaml_export_matches_the_golden_file() {
    let (bps, es) = model();
    golden("model.yaml", &to_yaml(&bps, &es));
}

#[test]
fn json_export_round_trips() {
    let (bps, es) = model();
    let v: Value = serde_json::from_str(&to_json(&bps, &es)).unwrap();
    assert_eq!(v["entities"][1]["properties"]["tags"], json!(["a", "b,c"]));
    assert_eq!(v["blueprints"][1]["identifier"], "service");
    let back: Vec<Blueprint> = serde_json::from_value(v["blueprints"].clone()).unwrap();
    assert_eq!(back, bps);
}

#[test]
fn yaml_export_reads_back_as_the_same_document() {
    let (bps, es) = model();
    let y = to_yaml(&bps, &es);
    let back: Value = serde_saphyr::from_str(&y).unwrap();
    let json: Value = serde_json::from_str(&to_json(&bps, &es)).unwrap();
    assert_eq!(back, json);
}

#[test]
fn hcl_escapes_templates_and_quotes() {
    assert_eq!(hcl_string("a\"b\\c\n${x} %{y} $z"), r#""a\"b\\c\n$${x} %%{y} $z""#);
    assert_eq!(hcl_key("ok_key-1"), "ok_key-1");
    assert_eq!(hcl_key("1abc"), "\"1abc\"");
    assert_eq!(hcl_key("a.b"), "\"a.b\"");
    assert_eq!(resource_name("service_1st.dep"), "service_1st_dep");
    assert_eq!(resource_name("9x"), "_9x");
}

/// `terraform fmt -check` accepts the HCL as written (skipped, saying so, without terraform).
#[test]
fn hcl_export_passes_terraform_fmt_check() {
    let Some(tf) =
        ["/usr/local/bin/terraform", "/usr/bin/terraform"].into_iter().find(|p| std::path::Path::new(p).exists())
    else {
        eprintln!("SKIPPED hcl_export_passes_terraform_fmt_check: terraform is not installed");
        return;
    };
    let (bps, es) = model();
    let dir = std::env::temp_dir().join(format!("portolan-tf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("main.tf");
    std::fs::write(&file, to_hcl(&bps, &es)).unwrap();
    let out = std::process::Command::new(tf).arg("fmt").arg("-check").arg("-diff").arg(&file).output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "terraform fmt -check failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn csv_quotes_what_needs_quoting() {
    let header = vec!["id".to_string(), "note".to_string()];
    let rows = vec![
        vec!["a".into(), "plain".into()],
        vec!["b".into(), "comma, here".into()],
        vec!["c".into(), "say \"hi\"".into()],
        vec!["d".into(), "two\nlines".into()],
        vec!["e".into(), " padded".into()],
        vec!["f".into(), String::new()],
    ];
    assert_eq!(
        csv(&header, &rows),
        "id,note\r\na,plain\r\nb,\"comma, here\"\r\nc,\"say \"\"hi\"\"\"\r\nd,\"two\nlines\"\r\ne,\" padded\"\r\nf,\r\n"
    );
    assert_eq!(cell_text(&json!(null)), "");
    assert_eq!(cell_text(&json!(["x", 1])), "[\"x\",1]");
}
