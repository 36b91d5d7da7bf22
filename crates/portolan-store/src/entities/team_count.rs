//! Counting one blueprint's entities under a team-scoped read restriction from `entity_teams`
//! alone (migration 0027). A member whose `read` permission is `ownedByTeam` counts a
//! blueprint's entities (the catalog's count, `GET …/entities-count`) with the restriction
//! `$team containsAny [their teams]` and no other filter: the answer is the number of distinct
//! row ids in the teams' ranges of the key `(org_id, team, blueprint, rid)`, read without
//! visiting a single entity. Anything else is counted the usual way. A reader in one team also
//! pages by walking that team's key range in row order ([`walk_sql`]).

use portolan_core::search::{Literal, MetaProperty, PropertyOp, PropertyRef, Query, Rule};

use crate::SearchRequest;
use crate::db::Db;
use crate::sql::{Dialect, SqlFrag, SqlParam};

/// What a read restriction admits of one blueprint's entities.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Admits {
    /// Every entity.
    All,
    /// None.
    Nothing,
    /// The entities any of these teams own.
    Teams(Vec<String>),
}

/// What `visible` admits of blueprint `bp`'s entities, when it has the read restriction's shape
/// (`access::Reader::restriction` in the server): rules about other blueprints
/// (`$blueprint != X`), `$blueprint != bp` itself (nothing), and `$team containsAny [teams]`,
/// combined by AND and OR. `None` for any other rule, or for two team rules that must both
/// hold (an intersection: counted the usual way).
pub(crate) fn admits(visible: &Query, bp: &str) -> Option<Admits> {
    match visible {
        Query::Rule(Rule::Property { property: PropertyRef::Meta(MetaProperty::Blueprint), op: PropertyOp::Ne(l) }) => {
            match l {
                Literal::String(x) if x == bp => Some(Admits::Nothing),
                Literal::String(_) => Some(Admits::All),
                _ => None,
            }
        }
        Query::Rule(Rule::Property {
            property: PropertyRef::Meta(MetaProperty::Team),
            op: PropertyOp::ContainsAny(l),
        }) => {
            let teams: Option<Vec<String>> = l.iter().map(|t| t.as_str().map(str::to_string)).collect();
            teams.map(Admits::Teams)
        }
        Query::Rule(_) => None,
        Query::Group { combinator, rules } => {
            let parts: Option<Vec<Admits>> = rules.iter().map(|r| admits(r, bp)).collect();
            let parts = parts?;
            let (unit, absorbing) = match combinator {
                portolan_core::search::Combinator::And => (Admits::All, Admits::Nothing),
                portolan_core::search::Combinator::Or => (Admits::Nothing, Admits::All),
            };
            if parts.contains(&absorbing) {
                return Some(absorbing);
            }
            let mut teams: Vec<Admits> = parts.into_iter().filter(|p| *p != unit).collect();
            match teams.len() {
                0 => Some(unit),
                1 => teams.pop(),
                // Two team rules ORed are their union; ANDed, an intersection this count does
                // not read.
                _ if matches!(combinator, portolan_core::search::Combinator::Or) => {
                    let mut all: Vec<String> = Vec::new();
                    for t in teams {
                        if let Admits::Teams(names) = t {
                            all.extend(names);
                        }
                    }
                    Some(Admits::Teams(all))
                }
                _ => None,
            }
        }
    }
}

/// The count of blueprint `bp`'s entities of `org` that `teams` own (at least one team), from
/// the entity_teams rows alone, without a DISTINCT over every row (migration 0028): one index
/// entry per entity whose first team is among `teams` (`is_first = 1`, a key range per team of
/// `entity_teams_first`), plus the entities that one of `teams` owns although their first team
/// is another (rows with `is_first = 0`, few: only entities with several teams have them, in
/// the partial index `entity_teams_others`), counted once each. The test is on `is_first`
/// (migrations 0030, 0031), a column with statistics, rather than on `team = first_team`, whose
/// share of the rows PostgreSQL cannot estimate (it guessed 0.5 % of the first rows and 99.5 %
/// of the others, and scanned the table for the few); the teams are one `text[]` there
/// ([`SqlFrag::in_texts`]). Public for the plan tests (`tests/pg_plans.rs`).
pub fn count_sql(dialect: Dialect, org: &str, bp: &str, teams: &[String]) -> SqlFrag {
    let head = |f: &mut SqlFrag, first: bool| {
        f.push(" FROM entity_teams et");
        // SQLite: each half's index named (the key `(org_id, blueprint, is_first, team)` of
        // migration 0030; the partial index of the other rows, migration 0031), since the
        // planner may take another key for a row of the table otherwise (before 3.45 it did not
        // see that the partial index covers the second half, and read every team's rows).
        if dialect == Dialect::Sqlite {
            f.push(if first { " INDEXED BY entity_teams_first" } else { " INDEXED BY entity_teams_others" });
        }
        f.push(" WHERE et.org_id = ").param(SqlParam::Text(org.to_string()));
        f.push(" AND et.blueprint = ").param(SqlParam::Text(bp.to_string()));
        f.push(if first { " AND et.is_first = 1" } else { " AND et.is_first = 0" });
        f.push(" AND et.team").in_texts(dialect, teams.iter().cloned(), false);
    };
    let mut f = SqlFrag::new("SELECT (SELECT COUNT(*)");
    head(&mut f, true);
    f.push(") + (SELECT COUNT(DISTINCT et.rid)");
    head(&mut f, false);
    f.push(" AND et.first_team").in_texts(dialect, teams.iter().cloned(), true);
    f.push(")");
    f
}

/// The blueprint and the one team whose entities `req`'s read restriction admits, when it is
/// that and the request names the blueprint (`None`: search the usual way).
pub(super) fn one_team<'r>(db: &Db, req: &SearchRequest<'r>) -> Option<(&'r str, String)> {
    let (bp, visible) = (req.blueprint?, req.visible?);
    match admits(visible, bp)? {
        Admits::Teams(mut t) if t.len() == 1 && !db.refuses(bp) && !db.refuses(&t[0]) => Some((bp, t.remove(0))),
        _ => None,
    }
}

/// `select` over the entities of blueprint `bp` of `org` that `team` owns, read by walking the
/// team's range of the entity_teams key in row order (`et.rid`), each entity by primary key.
/// The walk must come first: on SQLite `CROSS JOIN` fixes the order; PostgreSQL reorders joins
/// freely (on tables without statistics it started at the entities and ran a filtered first
/// page at 100,000 entities past the 20-second budget, measured), so there each entity is a
/// `LATERAL` subquery of its key entry, fenced by `OFFSET 0` so that it is not pulled up into
/// a plain join. Conditions on `e` follow with ` AND …`. Public for the plan tests.
pub fn walk_sql(d: Dialect, select: &str, org: &str, bp: &str, team: &str) -> SqlFrag {
    let mut f = SqlFrag::new(select);
    f.push(match d {
        Dialect::Sqlite => " FROM entity_teams et CROSS JOIN entities e",
        Dialect::Postgres => {
            " FROM entity_teams et CROSS JOIN LATERAL (SELECT * FROM entities e0 WHERE e0.rid = et.rid OFFSET 0) e"
        }
    });
    f.push(" WHERE et.org_id = ").param(SqlParam::Text(org.to_string()));
    f.push(" AND et.team = ").param(SqlParam::Text(team.to_string()));
    f.push(" AND et.blueprint = ").param(SqlParam::Text(bp.to_string()));
    if d == Dialect::Sqlite {
        f.push(" AND e.rid = et.rid");
    }
    f.push(" AND e.org_id = ").param(SqlParam::Text(org.to_string()));
    f.push(" AND e.blueprint = ").param(SqlParam::Text(bp.to_string()));
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use portolan_core::search::parse_query;
    use serde_json::json;

    fn q(v: serde_json::Value) -> Query {
        parse_query(&v).unwrap()
    }

    /// The server's restriction: per blueprint, `$blueprint != bp` OR its teams.
    fn restriction(scopes: &[(&str, Option<&[&str]>)]) -> Query {
        let rules: Vec<_> = scopes
            .iter()
            .map(|(bp, teams)| match teams {
                Some(t) => json!({"combinator": "or", "rules": [
                    {"property": "$blueprint", "operator": "!=", "value": bp},
                    {"property": "$team", "operator": "containsAny", "value": t}]}),
                None => json!({"property": "$blueprint", "operator": "!=", "value": bp}),
            })
            .collect();
        q(json!({"combinator": "and", "rules": rules}))
    }

    #[test]
    fn the_read_restriction_reduces_to_the_blueprints_teams() {
        let r = restriction(&[("service", Some(&["a", "b"])), ("domain", None), ("repo", Some(&["c"]))]);
        assert_eq!(admits(&r, "service"), Some(Admits::Teams(vec!["a".into(), "b".into()])));
        assert_eq!(admits(&r, "domain"), Some(Admits::Nothing));
        assert_eq!(admits(&r, "repo"), Some(Admits::Teams(vec!["c".into()])));
        assert_eq!(admits(&r, "other"), Some(Admits::All));
    }

    #[test]
    fn other_rules_and_intersections_are_counted_the_usual_way() {
        let with_filter = q(json!({"combinator": "and", "rules": [
            {"combinator": "or", "rules": [
                {"property": "$blueprint", "operator": "!=", "value": "service"},
                {"property": "$team", "operator": "containsAny", "value": ["a"]}]},
            {"property": "language", "operator": "=", "value": "go"}]}));
        assert_eq!(admits(&with_filter, "service"), None);
        let both = q(json!({"combinator": "and", "rules": [
            {"property": "$team", "operator": "containsAny", "value": ["a"]},
            {"property": "$team", "operator": "containsAny", "value": ["b"]}]}));
        assert_eq!(admits(&both, "service"), None, "an intersection");
        let either = q(json!({"combinator": "or", "rules": [
            {"property": "$team", "operator": "containsAny", "value": ["a"]},
            {"property": "$team", "operator": "containsAny", "value": ["b"]}]}));
        assert_eq!(admits(&either, "service"), Some(Admits::Teams(vec!["a".into(), "b".into()])));
        let eq = q(json!({"combinator": "and", "rules": [{"property": "$team", "operator": "=", "value": "a"}]}));
        assert_eq!(admits(&eq, "service"), None, "only containsAny is read here");
    }
}
