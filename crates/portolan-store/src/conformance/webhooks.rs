//! Conformance: custom webhook integrations, their deliveries and event log.

use serde_json::json;

use super::{T0, ctx, join_all, org};
use crate::{AuditFilter, JobFilter, NewJob, Store, StoreError};

fn webhook_write(id: &str, key: &str, secret: Option<&str>) -> crate::WebhookWrite {
    crate::WebhookWrite {
        identifier: id.into(),
        data: json!({"title": id, "enabled": true, "mappings": [], "security": {"signatureAlgorithm": "sha256"}}),
        webhook_key: key.into(),
        secret: secret.map(str::to_string),
        secret_key_id: secret.map(|s| s.split(':').nth(1).unwrap_or_default().to_string()),
    }
}

/// Webhooks: the secret is stored as given (opaque ciphertext) and never in the audit log; keys
/// are unique across organizations; a request id is delivered once per webhook, atomically,
/// even when the same delivery arrives many times at once.
pub async fn webhooks_dedupe_deliveries_keep_opaque_secrets_and_are_tenant_scoped(s: &dyn Store) {
    use crate::{Delivery, SaveMode};
    let (a, b) = (org(s, "a").await, org(s, "b").await);
    let w = webhook_write("gh", "key-a", Some("v1:k1:bm9uY2U:Y2lwaGVy"));
    let saved = s.save_webhook(&a, &w, SaveMode::Create, &ctx()).await.unwrap();
    assert_eq!((saved.secret.as_deref(), saved.secret_key_id.as_deref()), (Some("v1:k1:bm9uY2U:Y2lwaGVy"), Some("k1")));
    let got = s.get_webhook(&a, "gh").await.unwrap().unwrap();
    assert_eq!(got, saved);
    let (found_org, found) = s.webhook_by_key("key-a").await.unwrap().unwrap();
    assert_eq!((found_org, found.identifier.as_str()), (a.clone(), "gh"));
    assert!(s.webhook_by_key("key-x").await.unwrap().is_none());
    assert!(matches!(s.save_webhook(&a, &w, SaveMode::Create, &ctx()).await, Err(StoreError::Conflict(_))));
    let stolen_key = webhook_write("other", "key-a", None);
    assert!(matches!(s.save_webhook(&b, &stolen_key, SaveMode::Create, &ctx()).await, Err(StoreError::Conflict(_))));
    s.save_webhook(&b, &webhook_write("gh", "key-b", None), SaveMode::Create, &ctx()).await.unwrap();
    assert!(s.get_webhook(&b, "other").await.unwrap().is_none());
    assert_eq!(s.list_webhooks(&a).await.unwrap().len(), 1);
    assert_eq!(s.webhook_secret_key_ids().await.unwrap(), vec!["k1".to_string()]);
    // An update keeps the key and creation meta; a removed secret takes its key id along.
    let upd = webhook_write("gh", "ignored", None);
    assert!(matches!(
        s.save_webhook(&a, &webhook_write("nope", "k", None), SaveMode::Update, &ctx()).await,
        Err(StoreError::NotFound(_))
    ));
    let saved = s.save_webhook(&a, &upd, SaveMode::Update, &ctx()).await.unwrap();
    assert_eq!(
        (saved.webhook_key.as_str(), saved.secret.as_deref(), saved.secret_key_id.as_deref()),
        ("key-a", None, None)
    );
    assert!(s.webhook_secret_key_ids().await.unwrap().is_empty());
    let audits = s
        .list_audit(&a, &AuditFilter { resources: vec!["webhook".into()], limit: 10, ..AuditFilter::default() })
        .await
        .unwrap();
    assert_eq!(audits.iter().map(|r| r.action.as_str()).collect::<Vec<_>>(), ["UPDATE", "CREATE"]);
    assert!(!format!("{audits:?}").contains("Y2lwaGVy"), "no secret in the audit log");
    assert_eq!(audits[0].message.as_deref(), Some("security.secret changed"));

    // The same request id, eight times at once: one job.
    let job = NewJob { kind: "webhook_delivery".into(), payload: json!({"n": 1}), max_attempts: 3 };
    let outcomes = join_all((0..8).map(|_| s.enqueue_webhook_delivery(&a, "gh", Some("r1"), &job, T0)).collect()).await;
    let outcomes: Vec<Delivery> = outcomes.into_iter().map(Result::unwrap).collect();
    let enqueued: Vec<&crate::Job> =
        outcomes.iter().filter_map(|o| if let Delivery::Enqueued(j) = o { Some(&**j) } else { None }).collect();
    assert_eq!(enqueued.len(), 1, "{outcomes:?}");
    let first = enqueued[0].id.clone();
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Delivery::Enqueued(_)) || *o == Delivery::Duplicate { job_id: first.clone() })
    );
    let filter = JobFilter { kind: Some("webhook_delivery".into()), limit: 100, ..JobFilter::default() };
    assert_eq!(s.list_jobs(&a, &filter).await.unwrap().len(), 1);
    // Per webhook and organization; no request id: no de-duplication.
    assert!(matches!(s.enqueue_webhook_delivery(&b, "gh", Some("r1"), &job, T0).await.unwrap(), Delivery::Enqueued(_)));
    for _ in 0..2 {
        assert!(matches!(s.enqueue_webhook_delivery(&a, "gh", None, &job, T0).await.unwrap(), Delivery::Enqueued(_)));
    }
    assert_eq!(s.list_jobs(&a, &filter).await.unwrap().len(), 3);
    // A request id of any length (a path can select a whole body): the second is a duplicate,
    // another of the same length is not (PostgreSQL cannot index such a key; before, a 500).
    // Text that does not compress (PostgreSQL compresses an index entry before it refuses it).
    let wide = |salt: u32| -> String {
        (0..3000u32).map(|i| char::from_u32(0x4e00 + (i * 7919 + salt) % 20000).unwrap_or('x')).collect()
    };
    let (long, other) = (wide(0), wide(1));
    assert!(matches!(
        s.enqueue_webhook_delivery(&a, "gh", Some(&long), &job, T0).await.unwrap(),
        Delivery::Enqueued(_)
    ));
    let again = s.enqueue_webhook_delivery(&a, "gh", Some(&long), &job, T0).await.unwrap();
    assert!(matches!(again, Delivery::Duplicate { .. }), "{again:?}");
    assert!(matches!(
        s.enqueue_webhook_delivery(&a, "gh", Some(&other), &job, T0).await.unwrap(),
        Delivery::Enqueued(_)
    ));
    assert_eq!(s.list_jobs(&a, &filter).await.unwrap().len(), 5);

    // The event log, by delivery.
    let line = |delivery: Option<&str>, msg: &str| crate::IntegrationLog {
        id: String::new(),
        at: T0.into(),
        level: "INFO".into(),
        source: "server".into(),
        event: "delivery_received".into(),
        resync_id: delivery.map(str::to_string),
        message: msg.into(),
        extra: json!({}),
    };
    s.append_webhook_logs(&a, "gh", &[line(Some(&first), "one"), line(None, "two")]).await.unwrap();
    let all = s.list_webhook_logs(&a, "gh", &crate::LogFilter { limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(all.iter().map(|l| l.message.as_str()).collect::<Vec<_>>(), ["two", "one"]);
    assert!(all[0].id.starts_with("wl_"));
    let one = crate::LogFilter { resync_id: Some(first.clone()), limit: 10, ..Default::default() };
    let by_delivery = s.list_webhook_logs(&a, "gh", &one).await.unwrap();
    assert_eq!((by_delivery.len(), by_delivery[0].resync_id.as_deref()), (1, Some(first.as_str())));
    assert!(
        s.list_webhook_logs(&b, "gh", &crate::LogFilter { limit: 10, ..Default::default() }).await.unwrap().is_empty()
    );

    // Deleting a webhook takes its deliveries and log along (audited).
    s.delete_webhook(&a, "gh", &ctx()).await.unwrap();
    assert!(s.get_webhook(&a, "gh").await.unwrap().is_none());
    assert!(matches!(s.delete_webhook(&a, "gh", &ctx()).await, Err(StoreError::NotFound(_))));
    assert!(
        s.list_webhook_logs(&a, "gh", &crate::LogFilter { limit: 10, ..Default::default() }).await.unwrap().is_empty()
    );
    assert!(s.get_webhook(&b, "gh").await.unwrap().is_some(), "the other organization's webhook stays");
}
