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

fn actions() -> Vec<Value> {
    vec![
        json!({
            "id": "action_34aweFQtayw7SCVb", "createdAt": "2024-01-01T00:00:00.000Z", "createdBy": "t",
            "updatedAt": "2024-01-01T00:00:00.000Z", "updatedBy": "t",
            "identifier": "scaffold_service", "title": "Scaffold a service", "icon": "Microservice",
            "description": "Creates a repo costing ${var.x}",
            "trigger": {
                "type": "self-service", "operation": "CREATE", "blueprintIdentifier": "service",
                "actionCardButtonText": "Create",
                "userInputs": {
                    "properties": {
                        "name": {"type": "string", "title": "Name", "pattern": "^[a-z-]+$", "maxLength": 32},
                        "language": {"type": "string", "enum": ["go", "rust"], "default": "go"},
                        "sdk": {"type": "string", "enum": {"jqQuery": "[\"1.22\"]"}, "dependsOn": ["language"]},
                        "domain": {"type": "string", "format": "entity", "blueprint": "domain",
                            "dataset": {"combinator": "and", "rules": [{"property": "$team", "operator": "containsAny",
                                "value": {"jqQuery": "[.user.teams[].name]"}}]},
                            "sort": {"property": "$title", "order": "ASC"}},
                        "replicas": {"type": "number", "minimum": 1, "maximum": 9, "default": 2},
                        "public": {"type": "boolean", "default": false, "visible": {"jqQuery": ".form.language == \"go\""}},
                        "config": {"type": "object", "default": {"a": 1}, "encryption": "aes256-gcm"},
                        "deps": {"type": "array", "items": {"type": "string", "format": "entity", "blueprint": "service"},
                                 "default": ["auth"], "maxItems": 3}
                    },
                    "required": ["name", "language"],
                    "order": ["name", "language", "sdk", "domain", "replicas", "public", "config", "deps"]
                }
            },
            "invocationMethod": {"type": "WEBHOOK", "url": "https://backend.example.com/scaffold", "agent": false,
                "method": "POST", "headers": {"RUN_ID": "{{ .run.id }}"},
                "body": {"{{ spreadValue() }}": "{{ .inputs }}", "runId": "{{ .run.id }}"}},
            "requiredApproval": {"type": "ANY"},
            "approvalNotification": {"type": "email"},
            "publish": true
        }),
        json!({
            "identifier": "expire_env", "title": "Expire environments",
            "trigger": {"type": "automation",
                "event": {"type": "TIMER_PROPERTY_EXPIRED", "blueprintIdentifier": "service", "propertyIdentifier": "ttl"},
                "condition": {"type": "JQ", "expressions": [".diff.after.properties.public"], "combinator": "and"}},
            "invocationMethod": {"type": "UPSERT_ENTITY", "blueprintIdentifier": "domain",
                "mapping": {"identifier": "{{ .event.context.entityIdentifier }}", "title": "Expired",
                            "team": "core", "properties": {"owner": "{{ .trigger.by.user.email }}"}}},
            "publish": false
        }),
    ]
}

#[test]
fn json_export_with_actions_round_trips() {
    let (bps, es) = model();
    let acts = actions();
    let v: Value = serde_json::from_str(&export_with_actions(Format::Json, &bps, &es, &acts)).unwrap();
    let back = v["actions"].as_array().unwrap();
    assert_eq!(back.len(), 2);
    // The server-kept keys are gone, everything else is as it was.
    let mut first = acts[0].clone();
    for k in ["id", "createdAt", "createdBy", "updatedAt", "updatedBy"] {
        first.as_object_mut().unwrap().remove(k);
    }
    assert_eq!(back[0], first);
    assert_eq!(back[1], acts[1]);
    // What came out is a valid action body again.
    for a in back {
        crate::action::check_action(a).unwrap();
    }
    assert_eq!(v["blueprints"][1]["identifier"], "service");
    // Without actions the export keeps its old shape.
    let plain: Value = serde_json::from_str(&export(Format::Json, &bps, &es)).unwrap();
    assert!(plain.get("actions").is_none());
    let none: Value = serde_json::from_str(&export_with_actions(Format::Json, &bps, &es, &[])).unwrap();
    assert_eq!(none["actions"], json!([]));
}

#[test]
fn yaml_export_with_actions_reads_back_as_the_json_document() {
    let (bps, es) = model();
    let acts = actions();
    let y = export_with_actions(Format::Yaml, &bps, &es, &acts);
    let back: Value = serde_saphyr::from_str(&y).unwrap();
    let json: Value = serde_json::from_str(&export_with_actions(Format::Json, &bps, &es, &acts)).unwrap();
    assert_eq!(back, json);
}

#[test]
fn hcl_export_with_actions_matches_the_golden_file() {
    let (bps, es) = model();
    let hcl = export_with_actions(Format::Hcl, &bps, &es, &actions());
    assert!(hcl.starts_with(&to_hcl(&bps, &es)));
    golden("actions.tf", &hcl[to_hcl(&bps, &es).len()..]);
}

/// `terraform fmt -check` accepts the action resources (skipped, saying so, without terraform).
#[test]
fn hcl_actions_pass_terraform_fmt_check() {
    let Some(tf) =
        ["/usr/local/bin/terraform", "/usr/bin/terraform"].into_iter().find(|p| std::path::Path::new(p).exists())
    else {
        eprintln!("SKIPPED hcl_actions_pass_terraform_fmt_check: terraform is not installed");
        return;
    };
    let (bps, es) = model();
    let dir = std::env::temp_dir().join(format!("portolan-tf-actions-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("main.tf");
    std::fs::write(&file, export_with_actions(Format::Hcl, &bps, &es, &actions())).unwrap();
    let out = std::process::Command::new(tf).arg("fmt").arg("-check").arg("-diff").arg(&file).output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "terraform fmt -check failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
