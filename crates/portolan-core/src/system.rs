//! Port's system blueprints `_user` and `_team` (port-api.md §8.2): every organization has
//! them, and their entities mirror its people and teams both ways. Their own properties are
//! Portolan's to write; an organization may extend them with properties and relations of its
//! own, but not change or remove theirs, nor delete them.

use serde_json::{Map, Value, json};

use crate::blueprint_check::parse_blueprint;
use crate::{Blueprint, FieldErrors};

/// The blueprint whose entities are the organization's people (identifier: the e-mail).
pub const USER: &str = "_user";
/// The blueprint whose entities are the organization's teams (identifier: the team's name).
pub const TEAM: &str = "_team";
/// A service account's e-mail ends with `@` and this (Port's rule, which scripts rely on).
pub const SERVICE_ACCOUNT_DOMAIN: &str = "serviceaccounts.getport.io";
/// `port_type` of a person who signs in.
pub const STANDARD: &str = "Standard";
/// `port_type` of an API-only account.
pub const SERVICE_ACCOUNT: &str = "Service Account";

/// The properties Portolan writes on `bp`'s entities (a system blueprint; none otherwise).
pub fn own_properties(bp: &str) -> &'static [&'static str] {
    match bp {
        USER => &["port_role", "port_type", "status", "moderated_blueprints"],
        TEAM => &["description", "size"],
        _ => &[],
    }
}

/// Is `bp` one of the system blueprints?
pub fn is_system(bp: &str) -> bool {
    bp == USER || bp == TEAM
}

fn user_json() -> Value {
    json!({
        "identifier": USER, "title": "User", "icon": "User",
        "description": "The people of the organization (kept by Portolan: change them here or under Users)",
        "schema": {"properties": {
            "port_role": {"type": "string", "title": "Port Role", "enum": ["Admin", "Moderator", "Member"]},
            "port_type": {"type": "string", "title": "Port Type", "enum": [STANDARD, SERVICE_ACCOUNT]},
            "status": {"type": "string", "title": "Status", "enum": ["Active", "Disabled"]},
            "moderated_blueprints": {"type": "array", "title": "Moderated Blueprints",
                                     "items": {"type": "string", "format": "blueprints"}}
        }, "required": []},
        "relations": {}, "mirrorProperties": {}, "calculationProperties": {}, "aggregationProperties": {}
    })
}

fn team_json() -> Value {
    json!({
        "identifier": TEAM, "title": "Team", "icon": "Team",
        "description": "The teams of the organization (kept by Portolan: change them here or under Teams)",
        "schema": {"properties": {
            "description": {"type": "string", "title": "Description"},
            "size": {"type": "number", "title": "Size"}
        }, "required": []},
        "relations": {}, "mirrorProperties": {}, "calculationProperties": {}, "aggregationProperties": {}
    })
}

/// The structure Portolan gives system blueprint `id` (`GET /v1/blueprints/system/{id}/structure`).
pub fn structure(id: &str) -> Option<Value> {
    match id {
        USER => Some(user_json()),
        TEAM => Some(team_json()),
        _ => None,
    }
}

/// System blueprint `id` as Portolan creates it (both parse: unit test).
pub fn blueprint(id: &str) -> Option<Blueprint> {
    structure(id).and_then(|v| parse_blueprint(&v).ok())
}

/// Why a new version of system blueprint `new.identifier` is refused: a system property
/// changed or removed, or something required (Portolan writes these entities itself when
/// people change, with nothing but its own properties).
pub fn check_change(new: &Blueprint) -> Result<(), FieldErrors> {
    let Some(sys) = blueprint(&new.identifier) else { return Ok(()) };
    let mut errs = FieldErrors::default();
    let what = format!("the system blueprint {:?}", sys.identifier);
    for (k, p) in &sys.schema.properties {
        match new.schema.properties.get(k) {
            None => {
                errs.push(format!("schema.properties.{k}"), format!("is {what}'s own property and cannot be removed"))
            }
            Some(q) if q.ty != p.ty || q.enum_values != p.enum_values || q.format != p.format || q.items != p.items => {
                errs.push(
                    format!("schema.properties.{k}"),
                    format!("is {what}'s own property: its type, enum, format and items cannot change"),
                );
            }
            Some(_) => {}
        }
    }
    if !new.schema.required.is_empty() {
        errs.push(
            "schema.required",
            format!("must be empty: Portolan writes {what}'s entities itself when people and teams change"),
        );
    }
    for (k, r) in &new.relations {
        if r.required {
            errs.push(format!("relations.{k}.required"), format!("must be false on {what}"));
        }
    }
    errs.into_result()
}

/// Port's `port_role` of a stored role (`admin` / `member`) and moderated blueprints.
pub fn port_role(role: &str, moderates: &[String]) -> &'static str {
    match (role, moderates.is_empty()) {
        ("admin", _) => "Admin",
        (_, false) => "Moderator",
        _ => "Member",
    }
}

/// The properties Portolan writes on a person's `_user` entity.
pub fn user_properties(role: &str, kind: &str, status: &str, moderates: &[String]) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("port_role".into(), json!(port_role(role, moderates)));
    m.insert("port_type".into(), json!(kind));
    m.insert("status".into(), json!(status));
    m.insert("moderated_blueprints".into(), json!(moderates));
    m
}

/// The properties Portolan writes on a team's `_team` entity.
pub fn team_properties(description: Option<&str>, size: usize) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("description".into(), description.map_or(Value::Null, |d| json!(d)));
    m.insert("size".into(), json!(size));
    m
}

/// The title of a person's `_user` entity: their full name, else the e-mail.
pub fn user_title(email: &str, first: Option<&str>, last: Option<&str>) -> String {
    let name = [first, last].into_iter().flatten().filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" ");
    if name.is_empty() { email.to_string() } else { name }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_blueprints_parse_and_accept_themselves() {
        for id in [USER, TEAM] {
            let bp = blueprint(id).unwrap();
            assert_eq!(bp.identifier, id);
            check_change(&bp).unwrap();
        }
        assert!(blueprint("service").is_none());
    }

    #[test]
    fn extending_is_allowed_changing_is_not() {
        let mut v = user_json();
        v["schema"]["properties"]["slack"] = json!({"type": "string"});
        check_change(&parse_blueprint(&v).unwrap()).unwrap();
        v["schema"]["properties"]["status"] = json!({"type": "string"});
        v["schema"]["properties"].as_object_mut().unwrap().remove("port_type");
        v["schema"]["required"] = json!(["slack"]);
        let errs = check_change(&parse_blueprint(&v).unwrap()).unwrap_err();
        let paths: Vec<&str> = errs.0.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["schema.properties.port_type", "schema.properties.status", "schema.required"], "{errs:?}");
    }

    #[test]
    fn roles_and_titles() {
        assert_eq!(port_role("admin", &["svc".into()]), "Admin");
        assert_eq!(port_role("member", &["svc".into()]), "Moderator");
        assert_eq!(port_role("member", &[]), "Member");
        assert_eq!(user_title("a@b.c", Some("Ada"), Some("Lovelace")), "Ada Lovelace");
        assert_eq!(user_title("a@b.c", None, Some("")), "a@b.c");
    }
}
