//! Automations' events (port-api.md §5.3; issue 14), recorded in the transaction of the change
//! itself: an entity change an automation listens to is its own audit record, marked with the
//! event's depth (`audit_log.event_depth`, migration 0033; [`audit_and_record`]); a run change
//! or a timer's expiry is a row of `automation_events` holding Port's event object (migration
//! 0022; [`record_run`], [`Automations::fire_timers`]). The organization's queued
//! [`AUTOMATION_JOB`] then hands the events, in order, to the server, which evaluates each
//! automation's condition and creates its runs with [`Automations::dispatch_events`]: the runs,
//! their invocation jobs and the events' taking are one transaction, so an event starts each
//! automation exactly once, whichever node dispatches it and whenever a process dies. Taking an
//! entity event: on PostgreSQL its mark is cleared; on SQLite, which commits in id order, the
//! organization's cursor moves past it (`automation_cursors`, migration 0034: rewriting each
//! audit record was most of the dispatch's hold on the one writer). A marked record is waiting
//! while it is above its organization's cursor ([`waiting`]).
//!
//! Writes of organizations without automations on the written blueprints pay one indexed probe
//! of `actions` per transaction ([`listening`]) and write nothing more.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::audit;
use crate::changelog;
use crate::db::{Db, Q, Tx};
use crate::jobs;
use crate::sql::Dialect;
use crate::ui::parse_json;
use crate::{AuditRecord, NewJob, OrgId, Result, Run, SqlStore, StoreError, run_json};

/// The condition (on `audit_log a`) of an entity change of organization `org` (an SQL
/// expression: `?`, bound twice, or a column) still waiting for its dispatch: marked, and above
/// the organization's cursor (SQLite's; none on PostgreSQL, whose dispatch clears the marks).
fn waiting(org: &str) -> String {
    format!(
        "a.org_id = {org} AND a.event_depth IS NOT NULL \
         AND a.id > COALESCE((SELECT c.audit_id FROM automation_cursors c WHERE c.org_id = {org}), 0)"
    )
}

/// The organizations whose oldest waiting entity change was recorded before `?` (as
/// `org_id`): one probe of the partial index of events per organization.
fn oldest_waiting_before() -> String {
    format!(
        "SELECT o.id AS org_id FROM organizations o WHERE \
         (SELECT a.at FROM audit_log a WHERE {} ORDER BY a.id LIMIT 1) < ?",
        waiting("o.id")
    )
}

/// The job kind that dispatches an organization's automation events.
pub const AUTOMATION_JOB: &str = "automation_dispatch";

/// An event waiting to be dispatched.
#[derive(Debug, Clone)]
pub struct AutomationEvent {
    /// Which event: an entity change's is its audit record's id, negated (the record is the
    /// event, migration 0033); others are rows of `automation_events`. Opaque to callers, who
    /// hand it back to [`Automations::dispatch_events`].
    pub id: i64,
    /// `ENTITY_CREATED`, `ENTITY_UPDATED`, `ENTITY_DELETED` (or a run event).
    pub kind: String,
    /// The blueprint (entity events) or action (run events).
    pub target: String,
    /// Port's event object (§5.3), as JSON text: the automations' conditions receive it as it
    /// is, and [`value`](Self::value) parses it only for the runs it starts. An entity change's
    /// is written around its audit record's diff, never parsed on the way.
    pub event: Box<RawValue>,
    /// Its context's blueprint and entity (entity and timer events) and timer property.
    pub blueprint: Option<String>,
    pub entity: Option<String>,
    pub property: Option<String>,
    /// How many automation runs led to it.
    pub depth: u32,
}

impl AutomationEvent {
    /// The event object, parsed.
    pub fn value(&self) -> Result<Value> {
        parse_json("automation event", self.event.get())
    }
}

/// One event's dispatch: its id and the runs it starts (each with its invocation job, if any).
pub type Dispatch = (i64, Vec<(Run, Option<NewJob>)>);

#[async_trait]
pub trait Automations: Send + Sync {
    /// The oldest events of `org` waiting to be dispatched, at most `limit`.
    async fn pending_events(&self, org: &OrgId, limit: u32) -> Result<Vec<AutomationEvent>>;
    /// Dispatch events: take each (entity changes: SQLite moves the organization's cursor past
    /// it, PostgreSQL clears its mark; run and timer events: deleted) and store its runs with
    /// their invocation jobs, all in one transaction. An event already taken (another
    /// dispatcher took it first) stores nothing; on SQLite entity events are taken in order, so
    /// one given while an older one still waits, not given, is not taken (and waits). The ids
    /// of the events dispatched here.
    async fn dispatch_events(&self, org: &OrgId, events: &[Dispatch]) -> Result<Vec<i64>>;
    /// Fire the timers of every organization: for each timer property a
    /// `TIMER_PROPERTY_EXPIRED` automation watches, record an event for each entity whose
    /// value fell after the property's cursor and at or before `now` (the store's timestamp
    /// format; compared as text, so timers are UTC ISO 8601), and move the cursor to `now`, in
    /// one transaction per property. A property first watched starts at its earliest
    /// automation's creation. At most [`MAX_TIMERS_PER_TICK`] entities per property per call
    /// (the cursor then stops at the last one fired). How many events were recorded.
    async fn fire_timers(&self, now: &str) -> Result<u64>;
    /// Queue the dispatch job ([`AUTOMATION_JOB`]) of every organization whose oldest waiting
    /// automation event was recorded before `before`, and the delivery job
    /// ([`crate::CHANGELOG_JOB`]) of every organization with a changelog change due before it,
    /// where no such job is queued or running: on PostgreSQL a write whose transaction commits
    /// after the organization's job read (and found nothing, so ended) is left with no job; it
    /// would otherwise wait for the organization's next write. How many jobs were queued.
    async fn requeue_stranded(&self, before: &str) -> Result<u64>;
}

/// Most timer events one property records per [`Automations::fire_timers`] call.
pub const MAX_TIMERS_PER_TICK: usize = 1000;

/// An automation's `(event type, blueprint or action)` from its stored definition (`None` for
/// a self-service action): the `trigger_event` and `trigger_target` columns.
pub(crate) fn trigger_of(data: &Value) -> Option<(String, String)> {
    let t = data.get("trigger")?;
    if t.get("type")?.as_str()? != "automation" {
        return None;
    }
    let e = t.get("event")?;
    let target = e.get("blueprintIdentifier").or_else(|| e.get("actionIdentifier"))?.as_str()?;
    Some((e.get("type")?.as_str()?.to_string(), target.to_string()))
}

/// Which entity events the organization's automations listen to: blueprint → event types.
#[derive(Debug, Default)]
pub(crate) struct Listening(HashMap<String, HashSet<String>>);

impl Listening {
    /// Does an automation listen to `kind` events of `target` (a blueprint or an action)?
    fn hears(&self, target: &str, kind: &str) -> bool {
        let any = if kind.starts_with("RUN_") { "ANY_RUN_CHANGE" } else { "ANY_ENTITY_CHANGE" };
        self.0.get(target).is_some_and(|kinds| kinds.contains(kind) || kinds.contains(any))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A row of [`listening_sql`].
    pub(crate) fn add(&mut self, target: String, event: String) {
        self.0.entry(target).or_default().insert(event);
    }

    /// Do the changes of blueprint `bp` go to a changelog destination?
    fn changelog(&self, bp: &str) -> bool {
        self.0.get(bp).is_some_and(|kinds| kinds.contains("CHANGELOG"))
    }
}

/// The entity events `org`'s automations listen to, and the blueprints with a changelog
/// destination (`CHANGELOG`), in one statement read in the writing transaction (so an
/// automation or destination saved concurrently is either seen or saved after the write).
pub(crate) async fn listening(tx: &mut Tx, org: &OrgId) -> Result<Listening> {
    let mut out = Listening::default();
    let rows = tx.q(&listening_sql(tx.dialect())).bind(&org.0).bind(&org.0).fetch_all(&mut *tx).await?;
    for r in rows {
        out.add(r.get(0), r.get(1));
    }
    Ok(out)
}

/// [`listening`]'s statement: `(target, event)` rows; two parameters, the organization twice.
pub(crate) fn listening_sql(d: Dialect) -> String {
    format!(
        "SELECT trigger_target, trigger_event FROM actions WHERE org_id = ? AND trigger_event IS NOT NULL \
         UNION ALL {}",
        changelog::destinations_sql(d)
    )
}

/// The event type of an entity audit record's action.
fn entity_kind(action: &str) -> Option<&'static str> {
    match action {
        "CREATE" => Some("ENTITY_CREATED"),
        "UPDATE" => Some("ENTITY_UPDATED"),
        "DELETE" => Some("ENTITY_DELETED"),
        _ => None,
    }
}

/// Append the audit records of entity changes `records`, those an automation listens to marked
/// as pending automation events (their `event_depth`: the record holds the diff, so an event
/// costs the write no statement of its own), and queue the organization's dispatch job, all in
/// the caller's transaction. Updates that changed nothing are no event. Changelog messages take
/// their record's time; `depth` is how many automation runs led to the changes (the same for
/// all of them). Whether it gave a job work (events for the dispatch, changes for the
/// changelog delivery): a worker is to be woken once the transaction commits.
pub(crate) async fn audit_and_record(
    tx: &mut Tx,
    org: &OrgId,
    listening: &Listening,
    records: &[AuditRecord],
    depth: u32,
) -> Result<bool> {
    if listening.is_empty() {
        audit::insert(tx, org, records).await?;
        return Ok(false);
    }
    let mut depths: Vec<Option<u32>> = Vec::with_capacity(records.len());
    let mut changes: Vec<(&str, &str, &str)> = Vec::new();
    for r in records {
        let mut event = None;
        if let (Some(kind), Some(bp), Some(entity)) = (entity_kind(&r.action), &r.blueprint, &r.entity)
            && r.resource_type == "entity"
            && !(kind == "ENTITY_UPDATED" && r.diff.as_ref().is_some_and(unchanged))
        {
            event = listening.hears(bp, kind).then_some(depth);
            if listening.changelog(bp) {
                changes.push((bp.as_str(), entity.as_str(), r.at.as_str()));
            }
        }
        depths.push(event);
    }
    let ids = audit::insert_returning(tx, org, records, &depths, !changes.is_empty()).await?;
    let id_of = |bp: &str, entity: &str| ids.get(&(bp.to_string(), entity.to_string())).copied();
    let changes: Vec<(&str, &str, i64, &str)> =
        changes.into_iter().filter_map(|(bp, e, at)| id_of(bp, e).map(|id| (bp, e, id, at))).collect();
    let mut work = changelog::record(tx, org, &changes).await?;
    if depths.iter().any(Option::is_some) {
        enqueue_dispatch(tx, org).await?;
        work = true;
    }
    Ok(work)
}

/// An entity change as JSON text, from its audit record's columns (`a_action`, `a_user`,
/// `a_origin`, `a_at`, `a_diff`; with `context`, also `a_blueprint` and `a_entity`):
/// `{action, resourceType, trigger, diff}`, and for an automation event its `context` — the one
/// definition of the object, shared by automation events and changelog messages. The stored
/// diff is embedded as it is, once checked to be one JSON value.
fn change_text(org: &OrgId, r: &crate::db::Row, context: bool) -> Result<String> {
    let quoted = |s: Option<&str>| serde_json::to_string(&s).unwrap_or_else(|_| "null".into());
    let text = |c: &str| quoted(r.get::<Option<String>, _>(c).as_deref());
    let diff = match r.get::<Option<String>, _>("a_diff") {
        // Checked to be one JSON value, so that it cannot add fields to the object around it.
        Some(d) => {
            serde_json::from_str::<&RawValue>(&d)
                .map_err(|e| StoreError::Db(format!("stored audit diff is not JSON: {e}").into()))?;
            d
        }
        None => r#"{"before":null,"after":null}"#.to_string(),
    };
    let mut out = format!(
        r#"{{"action":{},"resourceType":"entity","trigger":{{"by":{{"orgId":{},"userId":{}}},"origin":{},"at":{}}},"diff":{diff}"#,
        text("a_action"),
        quoted(Some(&org.0)),
        text("a_user"),
        text("a_origin"),
        text("a_at"),
    );
    if context {
        out.push_str(&format!(
            r#","context":{{"blueprintIdentifier":{},"entityIdentifier":{},"propertyIdentifier":null}}"#,
            text("a_blueprint"),
            text("a_entity")
        ));
    }
    out.push('}');
    Ok(out)
}

/// [`change_text`] without its context, parsed (a changelog message's start).
pub(crate) fn audited_change(org: &OrgId, r: &crate::db::Row) -> Result<Value> {
    parse_json("audited change", &change_text(org, r, false)?)
}

/// Port's event object of an entity change ([`change_text`] with its context), checked, not
/// parsed into values.
fn entity_event(org: &OrgId, r: &crate::db::Row) -> Result<Box<RawValue>> {
    raw_json(change_text(org, r, true)?)
}

/// Checked JSON text (one pass, nothing built).
fn raw_json(text: String) -> Result<Box<RawValue>> {
    RawValue::from_string(text).map_err(|e| StoreError::Db(format!("stored automation event is not JSON: {e}").into()))
}

/// SQLite: take the entity events `ids` by moving the organization's cursor past them, in
/// order: the waiting events, oldest first, from the first on up to the first not in `ids`
/// (one left out stays waiting, and so do all after it). The ids taken.
async fn take_in_order(tx: &mut Tx, org: &OrgId, ids: &[i64]) -> Result<Vec<i64>> {
    let given: HashSet<i64> = ids.iter().copied().collect();
    // A write first, so the transaction holds the write lock before it reads (a read first
    // could be overtaken by another process's commit: SQLITE_BUSY_SNAPSHOT at the write).
    tx.q("INSERT INTO automation_cursors(org_id, audit_id) VALUES (?, 0) ON CONFLICT (org_id) DO NOTHING")
        .bind(&org.0)
        .execute(&mut *tx)
        .await?;
    let sql = format!("SELECT a.id FROM audit_log a WHERE {} ORDER BY a.id LIMIT ?", waiting("?"));
    let limit = i64::try_from(ids.len()).unwrap_or(i64::MAX);
    let waiting = tx.q(&sql).bind(&org.0).bind(&org.0).bind(limit).fetch_all(&mut *tx).await?;
    let taken: Vec<i64> = waiting.iter().map(|r| r.get::<i64, _>(0)).take_while(|id| given.contains(id)).collect();
    if let Some(last) = taken.last() {
        tx.q("UPDATE automation_cursors SET audit_id = ? WHERE org_id = ?")
            .bind(*last)
            .bind(&org.0)
            .execute(&mut *tx)
            .await?;
    }
    Ok(taken)
}

/// The runs of `events`, with the statements inserting them and their invocation jobs.
fn dispatch_statements<'a>(db: &Db, org: &OrgId, events: &[&'a Dispatch]) -> (Vec<&'a Run>, Vec<Q>, Vec<Q>) {
    let runs: Vec<&Run> = events.iter().flat_map(|(_, runs)| runs.iter().map(|(run, _)| run)).collect();
    let invocations: Vec<&NewJob> =
        events.iter().flat_map(|(_, runs)| runs.iter().filter_map(|(_, j)| j.as_ref())).collect();
    let inserts = crate::actions::run_inserts(db, org, &runs);
    let jobs = jobs::enqueue_statements(db, org, &invocations);
    (runs, inserts, jobs)
}

async fn insert_event(
    tx: &mut Tx,
    org: &OrgId,
    kind: &str,
    target: &str,
    event: &Value,
    depth: u32,
    at: &str,
) -> Result<()> {
    let json = tx.dialect().json_cast();
    let sql = format!(
        "INSERT INTO automation_events(org_id, kind, target, event, depth, created_at) VALUES (?, ?, ?, ?{json}, ?, ?)"
    );
    tx.q(&sql)
        .bind(&org.0)
        .bind(kind)
        .bind(target)
        .bind(event.to_string())
        .bind(i64::from(depth))
        .bind(at)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Did an update change what a run's reader sees (status, label, link, summary, external id)?
/// Trace, payload and claim bookkeeping are no `RUN_UPDATED`.
fn run_changed(before: &Run, after: &Run) -> bool {
    before.status != after.status
        || before.external_run_id != after.external_run_id
        || ["statusLabel", "link", "summary"].iter().any(|k| before.data.get(*k) != after.data.get(*k))
}

/// Record the `RUN_CREATED` (no `before`) or `RUN_UPDATED` event of run `after`, in the
/// transaction that writes it, when an automation listens to its action's runs. Its depth is
/// one more than the run's own (`_depth`: an automation's run), so chains of automations
/// reacting to each other's runs are cut like entity loops.
pub(crate) async fn record_run(tx: &mut Tx, org: &OrgId, before: Option<&Run>, after: &Run) -> Result<()> {
    if before.is_some_and(|b| !run_changed(b, after)) {
        return Ok(());
    }
    let heard = listening(tx, org).await?;
    record_run_heard(tx, org, &heard, before, after).await
}

/// [`record_run`] with what the organization's automations listen to read already (one probe
/// for a transaction that writes many runs).
async fn record_run_heard(
    tx: &mut Tx,
    org: &OrgId,
    heard: &Listening,
    before: Option<&Run>,
    after: &Run,
) -> Result<()> {
    let kind = if before.is_some() { "RUN_UPDATED" } else { "RUN_CREATED" };
    if before.is_some_and(|b| !run_changed(b, after)) || !heard.hears(&after.action, kind) {
        return Ok(());
    }
    let def = tx
        .q("SELECT CAST(data AS TEXT) FROM actions WHERE org_id = ? AND identifier = ?")
        .bind(&org.0)
        .bind(after.action.as_str())
        .fetch_optional(&mut *tx)
        .await?;
    let action = match def {
        Some(r) => parse_json("action", &r.get::<String, _>(0))?,
        None => json!({"identifier": after.action}),
    };
    let depth =
        after.data.get("_depth").and_then(Value::as_u64).map_or(0, |d| u32::try_from(d + 1).unwrap_or(u32::MAX));
    let event = json!({
        "action": if before.is_some() { "UPDATE" } else { "CREATE" }, "resourceType": "run",
        "trigger": {"by": {"orgId": org.0, "userId": after.updated_by}, "origin": "API", "at": after.updated_at},
        "context": {"action": action},
        "diff": {"before": before.map(run_json), "after": run_json(after)},
    });
    insert_event(tx, org, kind, &after.action, &event, depth, &after.updated_at).await?;
    enqueue_dispatch(tx, org).await
}

/// An update whose entity is the same before and after, apart from its update stamps.
fn unchanged(diff: &Value) -> bool {
    let stamp = |k: &str| k == "updatedAt" || k == "updatedBy";
    match (diff["before"].as_object(), diff["after"].as_object()) {
        (Some(b), Some(a)) => {
            let count = |m: &serde_json::Map<String, Value>| m.keys().filter(|k| !stamp(k)).count();
            count(b) == count(a) && b.iter().filter(|(k, _)| !stamp(k)).all(|(k, v)| a.get(k) == Some(v))
        }
        _ => diff["before"] == diff["after"],
    }
}

/// Queue the organization's dispatch job unless one is queued and not yet claimed (it will see
/// the new events: it reads them when it runs) — one statement, as it runs in every write that
/// records events.
pub(crate) async fn enqueue_dispatch(tx: &mut Tx, org: &OrgId) -> Result<()> {
    jobs::enqueue_once(tx, org, AUTOMATION_JOB).await
}

#[async_trait]
impl Automations for SqlStore {
    async fn pending_events(&self, org: &OrgId, limit: u32) -> Result<Vec<AutomationEvent>> {
        let db = &self.db;
        let limit = i64::from(limit.clamp(1, 1000));
        // Entity changes: audit records still waiting as events (migrations 0033 and 0034).
        let sql = format!(
            "SELECT -a.id AS id, a.action AS a_action, a.user_id AS a_user, a.origin AS a_origin, a.at AS a_at, \
             a.blueprint AS a_blueprint, a.entity AS a_entity, CAST(a.diff AS TEXT) AS a_diff, a.event_depth \
             FROM audit_log a WHERE {} ORDER BY a.id LIMIT ?",
            waiting("?")
        );
        let audited = db.q(&sql).bind(&org.0).bind(&org.0).bind(limit).fetch_all(db.read()).await?;
        let mut out = Vec::with_capacity(audited.len());
        for r in &audited {
            let kind = r.get::<Option<String>, _>("a_action").as_deref().and_then(entity_kind).unwrap_or_default();
            let blueprint = r.get::<Option<String>, _>("a_blueprint");
            out.push(AutomationEvent {
                id: r.get(0),
                kind: kind.to_string(),
                target: blueprint.clone().unwrap_or_default(),
                event: entity_event(org, r)?,
                blueprint,
                entity: r.get("a_entity"),
                property: None,
                depth: u32::try_from(r.get::<i64, _>("event_depth")).unwrap_or(0),
            });
        }
        // Run and timer events (and entity events recorded before migration 0033, which name
        // their audit record).
        let rows = db
            .q("SELECT e.id, e.kind, e.target, CAST(e.event AS TEXT) AS event, e.depth, a.action AS a_action, \
                a.user_id AS a_user, a.origin AS a_origin, a.at AS a_at, a.blueprint AS a_blueprint, \
                a.entity AS a_entity, CAST(a.diff AS TEXT) AS a_diff, e.created_at FROM automation_events e \
                LEFT JOIN audit_log a ON a.id = e.audit_id AND a.org_id = e.org_id \
                WHERE e.org_id = ? ORDER BY e.id LIMIT ?")
            .bind(&org.0)
            .bind(limit)
            .fetch_all(db.read())
            .await?;
        if rows.is_empty() {
            return Ok(out);
        }
        // Both sources are in commit order (by id); merged head by head, the older (by time)
        // first and the audit records on ties, so each source's order is kept — one entity's
        // changes stay in commit order even where their request times do not — and what the
        // limit leaves out is the newest of each.
        let audit_at: Vec<String> =
            audited.iter().map(|r| r.get::<Option<String>, _>("a_at").unwrap_or_default()).collect();
        let mut queued = Vec::with_capacity(rows.len());
        for r in &rows {
            // Run and timer events are few: their context is read from the parsed object.
            let (event, blueprint, entity, property) = match r.get::<Option<String>, _>("event") {
                Some(e) => {
                    let v = parse_json("automation event", &e)?;
                    let field = |k: &str| v["context"][k].as_str().map(str::to_string);
                    let context =
                        (field("blueprintIdentifier"), field("entityIdentifier"), field("propertyIdentifier"));
                    (raw_json(e)?, context.0, context.1, context.2)
                }
                None => (entity_event(org, r)?, r.get("a_blueprint"), r.get("a_entity"), None),
            };
            let ev = AutomationEvent {
                id: r.get(0),
                kind: r.get(1),
                target: r.get(2),
                event,
                blueprint,
                entity,
                property,
                depth: u32::try_from(r.get::<i64, _>(4)).unwrap_or(0),
            };
            queued.push((r.get::<String, _>("created_at"), ev));
        }
        let mut a = out.into_iter().zip(audit_at).peekable();
        let mut q = queued.into_iter().peekable();
        let mut merged = Vec::new();
        while merged.len() < limit as usize {
            let audit_first = match (a.peek(), q.peek()) {
                (Some((_, at_a)), Some((at_q, _))) => at_a <= at_q,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let next = if audit_first { a.next().map(|(ev, _)| ev) } else { q.next().map(|(_, ev)| ev) };
            merged.extend(next);
        }
        Ok(merged)
    }

    async fn dispatch_events(&self, org: &OrgId, events: &[Dispatch]) -> Result<Vec<i64>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let db = &self.db;
        // The runs' and jobs' statements are built before the writer is taken (the runs'
        // texts hold their events), for the usual case: every event is taken here.
        let all: Vec<&Dispatch> = events.iter().collect();
        let mut statements = dispatch_statements(db, org, &all);
        let mut tx = db.begin().await?;
        // Take each event: the dispatcher whose statement takes it creates its runs, so each
        // automation runs once per event however many nodes dispatch.
        let (audited, queued): (Vec<i64>, Vec<i64>) = events.iter().map(|(id, _)| *id).partition(|id| *id < 0);
        let mut mine: std::collections::HashSet<i64> = std::collections::HashSet::new();
        if !audited.is_empty() {
            let ids: Vec<i64> = audited.iter().map(|id| -id).collect();
            match tx.dialect() {
                Dialect::Postgres => {
                    let sql = format!(
                        "UPDATE audit_log SET event_depth = NULL WHERE org_id = ? AND event_depth IS NOT NULL AND id{} \
                         RETURNING id",
                        tx.dialect().any_of()
                    );
                    let rows = tx.q(&sql).bind(&org.0).bind_ints(&ids).fetch_all(&mut tx).await?;
                    mine.extend(rows.iter().map(|r| -r.get::<i64, _>(0)));
                }
                Dialect::Sqlite => mine.extend(take_in_order(&mut tx, org, &ids).await?.into_iter().map(|id| -id)),
            }
        }
        if !queued.is_empty() {
            let sql =
                format!("DELETE FROM automation_events WHERE org_id = ? AND id{} RETURNING id", tx.dialect().any_of());
            let rows = tx.q(&sql).bind(&org.0).bind_ints(&queued).fetch_all(&mut tx).await?;
            mine.extend(rows.iter().map(|r| r.get::<i64, _>(0)));
        }
        let taken: Vec<&Dispatch> = events.iter().filter(|(id, _)| mine.contains(id)).collect();
        if taken.len() < events.len() {
            // Some were not taken (another dispatcher took them first, or, on SQLite, an older
            // event waits that was not given): the runs of the rest.
            statements = dispatch_statements(db, org, &taken);
        }
        // The runs and their jobs in a few multi-row statements: this transaction holds
        // SQLite's one writer, which every entity write waits for.
        let (runs, inserts, invocations) = statements;
        if !runs.is_empty() {
            crate::actions::run_inserts_in(&mut tx, inserts).await?;
            // Read once for every run this dispatch creates (their RUN_CREATED events).
            let heard = listening(&mut tx, org).await?;
            for run in &runs {
                record_run_heard(&mut tx, org, &heard, None, run).await?;
            }
            for q in invocations {
                q.execute(&mut tx).await?;
            }
        }
        tx.commit().await?;
        let done = taken.iter().map(|(id, _)| *id).collect();
        Ok(done)
    }

    async fn requeue_stranded(&self, before: &str) -> Result<u64> {
        let db = &self.db;
        let no_job = "NOT EXISTS (SELECT 1 FROM jobs j WHERE j.status = 'queued' AND j.kind = ? AND j.org_id = p.org_id) \
             AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.status = 'running' AND j.org_id = p.org_id AND j.kind = ?)";
        // The oldest waiting event of each organization, from the partial index of events.
        let events = format!(
            "SELECT DISTINCT p.org_id FROM ({} \
             UNION SELECT org_id FROM automation_events WHERE created_at < ?) p WHERE {no_job}",
            oldest_waiting_before()
        );
        let changes = format!(
            "SELECT DISTINCT p.org_id FROM changelog_events p WHERE p.next_at < ? \
             AND (p.claimed_until IS NULL OR p.claimed_until < ?) AND {no_job}"
        );
        let mut queued = 0;
        for (sql, kind) in [(events, AUTOMATION_JOB), (changes, changelog::CHANGELOG_JOB)] {
            let rows = db.q(&sql).bind(before).bind(before).bind(kind).bind(kind).fetch_all(db.read()).await?;
            for r in rows {
                let org = OrgId(r.get(0));
                let mut tx = db.begin().await?;
                jobs::enqueue_once(&mut tx, &org, kind).await?;
                tx.commit().await?;
                tracing::info!(org.id = %org.0, job.kind = kind, "work waited with no job to do it (a write that \
                    committed after its organization's job had looked): queued one");
                queued += 1;
            }
        }
        Ok(queued)
    }

    async fn fire_timers(&self, now: &str) -> Result<u64> {
        let db = &self.db;
        let rows = db
            .q("SELECT org_id, trigger_target, CAST(data AS TEXT), created_at FROM actions \
                WHERE trigger_event = 'TIMER_PROPERTY_EXPIRED'")
            .fetch_all(db.read())
            .await?;
        // (org, blueprint, property) → the earliest automation's creation.
        let mut watched: HashMap<(String, String, String), String> = HashMap::new();
        for r in &rows {
            let data = parse_json("action", &r.get::<String, _>(2))?;
            let Some(prop) = data["trigger"]["event"]["propertyIdentifier"].as_str() else { continue };
            let created: String = r.get(3);
            let key = (r.get::<String, _>(0), r.get::<String, _>(1), prop.to_string());
            let at = watched.entry(key).or_insert_with(|| created.clone());
            if created < *at {
                *at = created;
            }
        }
        let mut fired = 0;
        for ((org, bp, prop), since) in watched {
            fired += fire_property(db, &OrgId(org), &bp, &prop, &since, now).await?;
        }
        Ok(fired)
    }
}

/// [`Automations::fire_timers`] for one property.
async fn fire_property(db: &Db, org: &OrgId, bp: &str, prop: &str, since: &str, now: &str) -> Result<u64> {
    let mut tx = db.begin().await?;
    let d = tx.dialect();
    let lock = if d == Dialect::Postgres { " FOR UPDATE" } else { "" };
    // The cursor row first (two nodes that both find none: the second's insert waits for the
    // first's commit and does nothing), then read and lock it, so the second sees the moved
    // cursor instead of starting again from `since`.
    tx.q("INSERT INTO automation_timer_cursors(org_id, blueprint, property, checked_until) VALUES (?, ?, ?, ?) \
          ON CONFLICT DO NOTHING")
        .bind(&org.0)
        .bind(bp)
        .bind(prop)
        .bind(since)
        .execute(&mut tx)
        .await?;
    let from: String = tx
        .q(&format!(
            "SELECT checked_until FROM automation_timer_cursors WHERE org_id = ? AND blueprint = ? AND property = ?{lock}"
        ))
        .bind(&org.0)
        .bind(bp)
        .bind(prop)
        .fetch_one(&mut tx)
        .await?
        .get(0);
    if from.as_str() >= now {
        return Ok(0);
    }
    let (value, key) = match d {
        Dialect::Sqlite => ("json_extract(e.properties, ?)", crate::sql::json_key_path(prop)),
        Dialect::Postgres => ("(e.properties ->> CAST(? AS TEXT))", prop.to_string()),
    };
    let sql = format!(
        "SELECT {}, {value} AS timer_value FROM entities e WHERE e.org_id = ? AND e.blueprint = ? \
         AND {value} > ? AND {value} <= ? ORDER BY timer_value LIMIT ?",
        crate::entities::COLUMNS
    );
    let limit = i64::try_from(MAX_TIMERS_PER_TICK).unwrap_or(i64::MAX);
    let rows = tx
        .q(&sql)
        .bind(key.as_str())
        .bind(&org.0)
        .bind(bp)
        .bind(key.as_str())
        .bind(from.as_str())
        .bind(key.as_str())
        .bind(now)
        .bind(limit)
        .fetch_all(&mut tx)
        .await?;
    let mut until = now.to_string();
    if rows.len() == MAX_TIMERS_PER_TICK
        && let Some(last) = rows.last()
    {
        until = last.get("timer_value");
    }
    for r in &rows {
        let (_, e) = crate::entities::from_row(r);
        let event = json!({
            "action": "UPDATE", "resourceType": "entity",
            "trigger": {"by": {"orgId": org.0, "userId": "portolan-timer"}, "origin": "AUTOMATION", "at": now},
            "context": {"blueprintIdentifier": bp, "entityIdentifier": e.identifier, "propertyIdentifier": prop},
            "diff": {"before": null, "after": e},
        });
        insert_event(&mut tx, org, "TIMER_PROPERTY_EXPIRED", bp, &event, 0, now).await?;
    }
    tx.q("UPDATE automation_timer_cursors SET checked_until = ? WHERE org_id = ? AND blueprint = ? AND property = ?")
        .bind(until.as_str())
        .bind(&org.0)
        .bind(bp)
        .bind(prop)
        .execute(&mut tx)
        .await?;
    if !rows.is_empty() {
        enqueue_dispatch(&mut tx, org).await?;
    }
    tx.commit().await?;
    Ok(rows.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::plans;

    /// On SQLite the partial index of events keeps every event ever recorded (the dispatch
    /// moves a cursor instead of clearing marks): the reads of waiting events must seek past
    /// the cursor in it, never scan an organization's events. Checked with 6,000 audit records
    /// of two organizations, every other one an event, the cursor half-way, before and after
    /// `ANALYZE`.
    #[tokio::test]
    async fn waiting_events_are_read_from_the_cursor_in_the_partial_index() {
        let store = plans::store_of_two_orgs().await;
        let db = &store.db;
        db.q("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 6000) \
              INSERT INTO audit_log(org_id, at, resource_type, action, status, identifier, blueprint, entity, origin, \
              user_id, diff, event_depth) SELECT CASE WHEN x % 3 = 0 THEN 'org_b' ELSE 'org_a' END, '2026-01-01', \
              'entity', 'UPDATE', 'SUCCESS', 'e', 'bp', 'e', 'API', 'u', '{}', CASE WHEN x % 2 = 0 THEN 0 END FROM c")
            .execute(db.write())
            .await
            .unwrap();
        db.q("INSERT INTO automation_cursors(org_id, audit_id) VALUES ('org_a', 3000)")
            .execute(db.write())
            .await
            .unwrap();
        let reads = [
            ("waiting events", format!("SELECT a.id FROM audit_log a WHERE {} ORDER BY a.id LIMIT 1000", waiting("?"))),
            ("oldest waiting", oldest_waiting_before()),
        ];
        for analyzed in [false, true] {
            if analyzed {
                db.q("ANALYZE").execute(db.write()).await.unwrap();
            }
            for (name, sql) in &reads {
                let q = db.q(&format!("EXPLAIN QUERY PLAN {sql}"));
                let q = if sql.contains("LIMIT 1000") { q.bind("org_a").bind("org_a") } else { q.bind("2027") };
                let plan = plans::lines(db, q).await;
                let audit: Vec<&String> = plan.iter().filter(|l| l.contains(" a ") || l.ends_with(" a")).collect();
                assert!(
                    !audit.is_empty()
                        && audit.iter().all(|l| l.contains("USING INDEX audit_log_events (org_id=? AND id>?)")),
                    "{name} (analyzed: {analyzed}) reads audit_log otherwise:\n{}",
                    plan.join("\n")
                );
            }
        }
    }
}
