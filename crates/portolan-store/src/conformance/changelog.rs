//! Conformance: changelog destinations — every change of an entity whose blueprint has a
//! webhook `changelogDestination` is kept, with the change, until delivered; each entity's
//! changes come out in order, and a failing one holds back only its own entity.

use serde_json::json;

use super::{bp, ctx, entity, org, write_ok};
use crate::{CHANGELOG_JOB, JobFilter, Store};

const NOW: &str = "2998-01-01T00:00:00.000Z";
const RETRY: &str = "2998-01-01T00:00:30.000Z";
const HELD: &str = "2998-01-01T00:01:00.000Z";
const LATER: &str = "2999-01-01T00:00:00.000Z";

pub async fn changelog_changes_are_kept_with_the_write_and_delivered_in_order_per_entity(s: &dyn Store) {
    let (a, b) = (org(s, "a").await, org(s, "b").await);
    let hooked = bp(json!({"identifier": "vm", "title": "VM", "schema": {"properties": {"size": {"type": "number"}}},
        "changelogDestination": {"type": "WEBHOOK", "url": "https://changes.example/hook"}}));
    let agent = bp(json!({"identifier": "db", "title": "DB",
        "changelogDestination": {"type": "WEBHOOK", "url": "http://private/hook", "agent": true}}));
    let plain = bp(json!({"identifier": "disk", "title": "Disk"}));
    let mut m = std::collections::HashMap::new();
    for x in [hooked, agent, plain] {
        s.create_blueprint(&a, &x, &ctx()).await.unwrap();
        m.insert(x.identifier.clone(), x);
    }
    for id in ["vm-1", "vm-2"] {
        write_ok(s, &a, &m, vec![entity("vm", id, json!({"size": 1}), json!({}))]).await;
    }
    write_ok(s, &a, &m, vec![entity("vm", "vm-1", json!({"size": 2}), json!({}))]).await;
    write_ok(s, &a, &m, vec![entity("vm", "vm-1", json!({"size": 2}), json!({}))]).await; // unchanged
    write_ok(s, &a, &m, vec![entity("db", "db-1", json!({}), json!({})), entity("disk", "d-1", json!({}), json!({}))])
        .await;
    s.delete_entities(&a, "vm", &["vm-2".into()], false, &ctx()).await.unwrap();
    assert!(s.claim_changes(&b, LATER, LATER, 10).await.unwrap().is_empty(), "another organization's changelog");

    // One change per entity at a time, oldest first: vm-1's create, vm-2's create.
    let first = s.claim_changes(&a, NOW, HELD, 10).await.unwrap();
    let seen: Vec<(&str, &str)> =
        first.iter().map(|e| (e.entity.as_str(), e.message["action"].as_str().unwrap())).collect();
    assert_eq!(seen, [("vm-1", "CREATE"), ("vm-2", "CREATE")], "not the agent's nor the plain blueprint's");
    let m0 = &first[0].message;
    assert_eq!((m0["resourceType"].as_str(), m0["status"].as_str()), (Some("entity"), Some("SUCCESS")));
    assert_eq!(m0["context"], json!({"blueprint": "vm", "entity": "vm-1"}));
    assert_eq!(
        (m0["diff"]["before"].clone(), m0["diff"]["after"]["properties"]["size"].clone()),
        (json!(null), json!(1))
    );
    assert_eq!(m0["trigger"]["by"]["userId"], "tester");
    assert!(s.claim_changes(&a, NOW, HELD, 10).await.unwrap().is_empty(), "claimed: another deliverer gets none");
    assert!(
        s.claim_changes(&a, "2000-01-01T00:00:00.000Z", HELD, 10).await.unwrap().is_empty(),
        "nothing is due before it was made"
    );
    let jobs = s.list_jobs(&a, &JobFilter { limit: 100, ..JobFilter::default() }).await.unwrap();
    assert_eq!(jobs.iter().filter(|j| j.kind == CHANGELOG_JOB).count(), 1, "one queued delivery job: {jobs:?}");

    // vm-1's create fails: it is retried later and holds back vm-1's update, not vm-2's delete.
    s.change_failed(&a, first[0].id, "the hook answered 503", RETRY).await.unwrap();
    s.change_delivered(&a, first[1].id).await.unwrap();
    let next = s.claim_changes(&a, NOW, HELD, 10).await.unwrap();
    let seen: Vec<(&str, &str)> =
        next.iter().map(|e| (e.entity.as_str(), e.message["action"].as_str().unwrap())).collect();
    assert_eq!(seen, [("vm-2", "DELETE")]);
    let next_at = s.next_change_at(&a).await.unwrap();
    assert_eq!(next_at.as_deref(), Some(RETRY), "vm-1's retry comes before the end of vm-2's claim (HELD)");
    s.change_delivered(&a, next[0].id).await.unwrap();
    assert_eq!(s.next_change_at(&a).await.unwrap().as_deref(), Some(RETRY), "vm-1's retry; not its update");
    let status = s.changelog_status(&a, "vm").await.unwrap();
    assert_eq!(status.pending, 2);
    assert_eq!(status.failing, [("vm-1".to_string(), 1, "the hook answered 503".to_string(), RETRY.to_string())]);
    assert_eq!(s.changelog_status(&b, "vm").await.unwrap().pending, 0);

    // Once due again it comes first (the failure dropped its claim), then vm-1's update.
    let retry = s.claim_changes(&a, RETRY, LATER, 10).await.unwrap();
    assert_eq!((retry.len(), retry[0].id, retry[0].attempts), (1, first[0].id, 1));
    s.change_delivered(&a, retry[0].id).await.unwrap();
    let update = s.claim_changes(&a, LATER, LATER, 10).await.unwrap();
    assert_eq!(update[0].message["action"], "UPDATE");
    assert_eq!(update[0].message["diff"]["before"]["properties"]["size"], 1);
    s.change_delivered(&a, update[0].id).await.unwrap();
    assert!(s.claim_changes(&a, LATER, LATER, 10).await.unwrap().is_empty());
    assert_eq!(s.next_change_at(&a).await.unwrap(), None);
}
