//! The pure part of a batched entity write, shared by both backends: compose each write against
//! the stored entity, drop writes whose relation targets exist neither in the database nor in the
//! batch, make stubs for targets the writer asked to create, and turn the outcome into edges,
//! audit records and per-entity results. `entities/write.rs` does the IO around it: load the
//! stored rows, check which targets exist, upsert, commit.

use std::collections::{BTreeSet, HashMap, HashSet};

use portolan_core::{Entity, FieldErrors, system};
use serde_json::Map;

use crate::{AuditCtx, AuditRecord, EntityWrite, RelTarget, WriteRejection, Written};

/// (blueprint, identifier).
pub(crate) type Key = (String, String);
pub(crate) type Outcome = std::result::Result<Written, WriteRejection>;

/// One write of the batch, composed and not (yet) rejected.
pub(crate) struct Built {
    pub entity: Entity,
    pub edges: Vec<RelTarget>,
    /// The stored row (row id, entity) this write replaces.
    pub before: Option<(i64, Entity)>,
    create_missing: bool,
    /// Which of the batch's audit contexts wrote it (a group of requests has one each).
    ctx: usize,
}

impl Built {
    pub fn key(&self) -> Key {
        (self.entity.blueprint.clone(), self.entity.identifier.clone())
    }
}

/// An empty entity the batch makes for a missing relation target, and which audit context
/// (of the write that named it first) makes it.
pub(crate) struct Stub {
    pub entity: Entity,
    pub ctx: usize,
}

/// A batch in flight: for each write, in order, either its rejection or what it will write.
pub(crate) struct Plan {
    results: Vec<Option<Outcome>>,
    built: Vec<Option<Built>>,
}

impl Plan {
    /// Compose every write against its stored entity (taken out of `stored`). Each write comes
    /// with the index of its audit context (the one request's 0, or its request's in a group).
    /// `refuse` may turn a composed entity into a rejection (PostgreSQL refuses NUL characters).
    pub fn compose(
        writes: impl ExactSizeIterator<Item = (EntityWrite, usize)>,
        stored: &mut HashMap<Key, (i64, Entity)>,
        refuse: impl Fn(&Entity) -> Option<WriteRejection>,
    ) -> Plan {
        let mut results = Vec::with_capacity(writes.len());
        let mut built = Vec::with_capacity(writes.len());
        for (w, ctx) in writes {
            let before = stored.remove(&(w.blueprint.clone(), w.identifier.clone()));
            let composed =
                (w.build)(before.as_ref().map(|(_, e)| e)).and_then(|(entity, edges)| match refuse(&entity) {
                    Some(rejection) => Err(rejection),
                    None if before.is_none() => match system_creation(&entity.blueprint, &entity.identifier) {
                        Some(rejection) => Err(rejection),
                        None => Ok((entity, edges)),
                    },
                    None => Ok((entity, edges)),
                });
            match composed {
                Ok((entity, edges)) => {
                    results.push(None);
                    built.push(Some(Built { entity, edges, before, create_missing: w.create_missing_related, ctx }));
                }
                Err(rejection) => {
                    results.push(Some(Err(rejection)));
                    built.push(None);
                }
            }
        }
        Plan { results, built }
    }

    /// The writes still accepted.
    pub fn accepted(&self) -> impl Iterator<Item = &Built> {
        self.built.iter().flatten()
    }

    fn accepted_keys(&self) -> HashSet<Key> {
        self.accepted().map(Built::key).collect()
    }

    /// Every relation target of the accepted writes (to look up in the database).
    pub fn targets(&self) -> Vec<Key> {
        self.accepted()
            .flat_map(|b| b.edges.iter())
            .map(|e| (e.target_blueprint.clone(), e.target_identifier.clone()))
            .collect()
    }

    /// The teams the accepted writes add to their entities (each must exist).
    pub fn added_teams(&self) -> BTreeSet<&str> {
        self.accepted().flat_map(|b| added_teams(&b.entity, b.before.as_ref().map(|(_, e)| e))).collect()
    }

    /// Reject writes that add a team in `missing`.
    pub fn reject_missing_teams(&mut self, missing: &BTreeSet<String>) {
        if missing.is_empty() {
            return;
        }
        for (i, slot) in self.built.iter_mut().enumerate() {
            let Some(b) = slot else { continue };
            if let Some(rej) = team_rejection(&b.entity, b.before.as_ref().map(|(_, e)| e), missing) {
                self.results[i] = Some(Err(rej));
                *slot = None;
            }
        }
    }

    /// Reject writes with a relation target that is neither in `existing` nor written by the
    /// batch (unless they asked for missing targets to be created). A rejection can make another
    /// write's target disappear, so this repeats until nothing changes.
    pub fn reject_missing_targets(&mut self, existing: &HashSet<Key>) {
        loop {
            let accepted = self.accepted_keys();
            let mut changed = false;
            for (i, slot) in self.built.iter_mut().enumerate() {
                let Some(b) = slot else { continue };
                // A missing `_user` / `_team` target is never made as a stub (a person or a
                // team is not an empty entity).
                let missing = b.edges.iter().find(|e| {
                    let k = (e.target_blueprint.clone(), e.target_identifier.clone());
                    !existing.contains(&k)
                        && !accepted.contains(&k)
                        && (!b.create_missing || system::is_system(&e.target_blueprint))
                });
                if let Some(e) = missing {
                    self.results[i] = Some(Err(WriteRejection::MissingTarget {
                        relation: e.relation.clone(),
                        blueprint: e.target_blueprint.clone(),
                        identifier: e.target_identifier.clone(),
                    }));
                    *slot = None;
                    changed = true;
                }
            }
            if !changed {
                return;
            }
        }
    }

    /// Empty entities for the missing targets of writes that asked for them, each once, made by
    /// the context (an index into `ctxs`) of the first write that names it.
    pub fn stubs(&self, existing: &HashSet<Key>, ctxs: &[&AuditCtx]) -> Vec<Stub> {
        self.stub_keys(existing)
            .into_iter()
            .map(|((blueprint, identifier), ctx)| Stub {
                entity: empty_entity(&blueprint, &identifier, ctxs[ctx], None),
                ctx,
            })
            .collect()
    }

    /// The keys of [`Plan::stubs`], each with the context of the first write that names it.
    fn stub_keys(&self, existing: &HashSet<Key>) -> Vec<(Key, usize)> {
        let accepted = self.accepted_keys();
        let mut seen = HashSet::new();
        let mut keys = Vec::new();
        for b in self.accepted().filter(|b| b.create_missing) {
            for e in &b.edges {
                let k = (e.target_blueprint.clone(), e.target_identifier.clone());
                if !existing.contains(&k) && !accepted.contains(&k) && seen.insert(k.clone()) {
                    keys.push((k, b.ctx));
                }
            }
        }
        keys
    }

    /// How many accepted writes create their entity.
    pub fn creating(&self) -> usize {
        self.accepted().filter(|b| b.before.is_none()).count()
    }

    /// The entity quota `max` has room for `left` more entities, fewer than the batch would
    /// create. Each context's writes (one request's, in a group) create theirs, in order, while
    /// they fit; a context that does not fit has every accepted write rejected that would create
    /// an entity (its own, or a stub for a missing target), and then writes left without a
    /// target are rejected. Repeated until what is left fits: a rejection can turn another
    /// write's target into a stub.
    pub fn reject_creating(&mut self, existing: &HashSet<Key>, max: u64, left: u64) {
        loop {
            let contexts = self.built.iter().flatten().map(|b| b.ctx + 1).max().unwrap_or(0);
            let mut creating = vec![0u64; contexts];
            for b in self.accepted().filter(|b| b.before.is_none()) {
                creating[b.ctx] += 1;
            }
            for (_, ctx) in self.stub_keys(existing) {
                creating[ctx] += 1;
            }
            let mut used = 0;
            let over: Vec<bool> = creating
                .iter()
                .map(|&n| {
                    let fits = used + n <= left;
                    if fits {
                        used += n;
                    }
                    !fits
                })
                .collect();
            if !over.contains(&true) {
                return;
            }
            // A write makes a stub when its context is the one the stub is counted for: a stub
            // another request also names and makes is not this one's creation.
            let stubs: HashSet<(Key, usize)> = self.stub_keys(existing).into_iter().collect();
            for (i, slot) in self.built.iter_mut().enumerate() {
                let Some(b) = slot else { continue };
                let makes_stub = b.create_missing
                    && b.edges
                        .iter()
                        .any(|e| stubs.contains(&((e.target_blueprint.clone(), e.target_identifier.clone()), b.ctx)));
                if over[b.ctx] && (b.before.is_none() || makes_stub) {
                    self.results[i] = Some(Err(quota_rejection(max)));
                    *slot = None;
                }
            }
            self.reject_missing_targets(existing);
        }
    }

    /// Row ids of the stored entities the batch replaces (their old edges go).
    pub fn replaced(&self) -> Vec<i64> {
        self.accepted().filter_map(|b| b.before.as_ref().map(|(rid, _)| *rid)).collect()
    }

    /// The relation edges to insert, by the source's row id (`rids` from the upsert).
    pub fn edges<'a>(&'a self, rids: &HashMap<Key, i64>) -> Vec<(i64, &'a RelTarget)> {
        let mut edges = Vec::new();
        for b in self.accepted() {
            let rid = rids[&b.key()];
            edges.extend(b.edges.iter().map(|e| (rid, e)));
        }
        edges
    }

    /// Audit records, each by its write's context in `ctxs`: a CREATE per stub, then a CREATE
    /// or UPDATE per accepted write.
    pub fn audit_records(&self, stubs: &[Stub], ctxs: &[&AuditCtx]) -> Vec<AuditRecord> {
        let mut records: Vec<AuditRecord> = stubs
            .iter()
            .map(|s| {
                let e = &s.entity;
                entity_record(ctxs[s.ctx], "CREATE", &e.blueprint, &e.identifier, None, Some(e))
            })
            .collect();
        for b in self.accepted() {
            let action = if b.before.is_some() { "UPDATE" } else { "CREATE" };
            let before = b.before.as_ref().map(|(_, e)| e);
            records.push(entity_record(
                ctxs[b.ctx],
                action,
                &b.entity.blueprint,
                &b.entity.identifier,
                before,
                Some(&b.entity),
            ));
        }
        records
    }

    /// Each write's outcome, in the order of the batch.
    pub fn finish(self) -> Vec<Outcome> {
        self.results
            .into_iter()
            .zip(self.built)
            .map(|(r, b)| match (r, b) {
                (Some(r), _) => r,
                (None, Some(b)) => Ok(Written { created: b.before.is_none(), entity: b.entity }),
                (None, None) => Err(WriteRejection::NotFound("internal: write lost".into())),
            })
            .collect()
    }
}

/// An entity with nothing but its key, made now by `ctx` (a stub for a missing relation target;
/// a new `_user` / `_team` entity before the mirror fills it).
pub(crate) fn empty_entity(bp: &str, id: &str, ctx: &AuditCtx, datasource: Option<String>) -> Entity {
    Entity {
        identifier: id.into(),
        title: None,
        icon: None,
        blueprint: bp.into(),
        team: vec![],
        properties: Map::new(),
        relations: Map::new(),
        created_at: ctx.at.clone(),
        created_by: ctx.user_id.clone(),
        updated_at: ctx.at.clone(),
        updated_by: ctx.user_id.clone(),
        datasource,
    }
}

/// The rejection of a write that would create an entity of a system blueprint: `_user` and
/// `_team` entities are made by making the person or team (`mirror`).
pub(crate) fn system_creation(bp: &str, id: &str) -> Option<WriteRejection> {
    let how = match bp {
        system::USER => {
            "a service account is made one at a time (POST /v1/blueprints/_user/entities), a person by invitation"
        }
        system::TEAM => "make the team (POST /v1/teams or POST /v1/blueprints/_team/entities)",
        _ => return None,
    };
    let msg = format!(
        "{id:?} is not one of the organization's {}: {bp} entities are made by Portolan; {how}",
        if bp == system::USER { "people" } else { "teams" }
    );
    Some(WriteRejection::Invalid(portolan_core::FieldError::new("identifier", msg).into()))
}

/// The audit record of an entity write.
pub(crate) fn entity_record(
    ctx: &AuditCtx,
    action: &str,
    bp: &str,
    id: &str,
    before: Option<&Entity>,
    after: Option<&Entity>,
) -> AuditRecord {
    AuditRecord {
        blueprint: Some(bp.into()),
        entity: Some(id.into()),
        ..ctx.record("entity", action, id, before, after)
    }
}

/// A value as JSON text (`null` if it cannot be serialized, which our types never fail).
pub(crate) fn json_text<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

/// The teams `entity` holds that `before` did not: a write may keep a team it already had, and
/// must name existing teams to add one.
pub(crate) fn added_teams<'a>(entity: &'a Entity, before: Option<&'a Entity>) -> impl Iterator<Item = &'a str> {
    entity.team.iter().filter(move |t| before.is_none_or(|b| !b.team.contains(t))).map(String::as_str)
}

/// The rejection of a write that adds a team in `missing`, every such team at its path.
pub(crate) fn team_rejection(
    entity: &Entity,
    before: Option<&Entity>,
    missing: &BTreeSet<String>,
) -> Option<WriteRejection> {
    let added: Vec<&str> = added_teams(entity, before).filter(|t| missing.contains(*t)).collect();
    if added.is_empty() {
        return None;
    }
    let mut errs = FieldErrors::default();
    for t in added {
        let path = match entity.team.iter().position(|x| x == t) {
            Some(j) if entity.team.len() > 1 => format!("team[{j}]"),
            _ => "team".to_string(),
        };
        errs.push(
            path,
            format!("{t:?} is not a team of this organization; create it first (POST /v1/teams) or leave it out"),
        );
    }
    Some(WriteRejection::Invalid(errs))
}

/// The rejection of a write that would take the organization past its entity quota.
pub(crate) fn quota_rejection(max: u64) -> WriteRejection {
    let msg = format!(
        "the organization's quota of {max} entities is reached: delete entities, or ask the operator \
         to raise it (portolan org quota)"
    );
    let mut errs = FieldErrors::default();
    errs.push("", msg);
    WriteRejection::Invalid(errs)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ent(id: &str) -> Entity {
        let ctx = AuditCtx { user_id: "u".into(), origin: "API".into(), at: "t".into(), depth: 0 };
        empty_entity("svc", id, &ctx, None)
    }

    /// A write of `id` whose relation names `target` (missing targets become stubs).
    fn write(id: &str, target: &str) -> EntityWrite {
        let edge = RelTarget {
            relation: "dep".into(),
            target_blueprint: "svc".into(),
            target_identifier: target.into(),
            required: false,
        };
        let e = ent(id);
        EntityWrite {
            blueprint: "svc".into(),
            identifier: id.into(),
            build: Box::new(move |_| Ok((e, vec![edge]))),
            create_missing_related: true,
        }
    }

    /// Two requests in one group, room for two more entities. The first creates `a` and a stub
    /// `x` (two: it fits). The second creates `n` (over: refused) and updates the stored `u`,
    /// whose relation names the same missing `x`: that update creates nothing of its own and
    /// stands, as it would if the requests ran one after the other.
    #[test]
    fn a_request_over_the_quota_keeps_updates_that_name_another_requests_stub() {
        let mut stored = HashMap::from([(("svc".to_string(), "u".to_string()), (1, ent("u")))]);
        let writes = vec![(write("a", "x"), 0), (write("n", "y"), 1), (write("u", "x"), 1)];
        let mut plan = Plan::compose(writes.into_iter(), &mut stored, |_| None);
        let existing = HashSet::new();
        plan.reject_creating(&existing, 10, 2);
        let ctx = AuditCtx { user_id: "u".into(), origin: "API".into(), at: "t".into(), depth: 0 };
        let stubs = plan.stubs(&existing, &[&ctx, &ctx]);
        assert_eq!(stubs.iter().map(|s| (s.entity.identifier.as_str(), s.ctx)).collect::<Vec<_>>(), [("x", 0)]);
        let out = plan.finish();
        assert!(out[0].as_ref().is_ok_and(|w| w.created), "{:?}", out[0]);
        assert!(
            matches!(&out[1], Err(WriteRejection::Invalid(_))) && format!("{:?}", out[1]).contains("quota"),
            "{:?}",
            out[1]
        );
        assert!(out[2].as_ref().is_ok_and(|w| !w.created), "{:?}", out[2]);
    }
}
