//! Application state shared by every handler.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use portolan_core::Blueprint;
use portolan_jq::JqEngine;
use portolan_store::{OrgId, Store, StoredBlueprint};

use crate::auth::TokenSigner;
use crate::error::ApiResult;
use crate::ratelimit::RateLimiter;

/// Limits and switches of the HTTP API.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Most entities accepted by one bulk-create request (Port: 20).
    pub max_bulk_entities: usize,
    /// Most entities a non-paginated read (`GET …/entities`, `POST /v1/entities/search`) returns.
    pub max_unpaginated: u32,
    /// Requests per organization per minute before 429.
    pub rate_limit_per_minute: u32,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig { max_bulk_entities: 1000, max_unpaginated: 10_000, rate_limit_per_minute: 60_000 }
    }
}

/// One organization's blueprints, by identifier.
pub type Blueprints = Arc<HashMap<String, Blueprint>>;

#[derive(Clone)]
pub struct AppState {
    /// The database, behind the storage trait (SQLite or, later, PostgreSQL).
    pub store: Arc<dyn Store>,
    /// Port's jq dialect with its compiled-filter cache (calculation properties).
    pub jq: Arc<JqEngine>,
    /// Signs and verifies bearer tokens.
    pub tokens: TokenSigner,
    pub config: Arc<ApiConfig>,
    /// Blueprints per organization, dropped whenever this node changes one.
    blueprints: Arc<Mutex<HashMap<OrgId, Blueprints>>>,
    pub rate_limiter: Arc<RateLimiter>,
}

impl AppState {
    pub async fn new(store: Arc<dyn Store>, config: ApiConfig) -> Result<Self, portolan_store::StoreError> {
        let tokens = TokenSigner::load(store.as_ref()).await?;
        Ok(AppState {
            store,
            jq: Arc::new(JqEngine::new()),
            tokens,
            rate_limiter: Arc::new(RateLimiter::new(config.rate_limit_per_minute)),
            config: Arc::new(config),
            blueprints: Arc::default(),
        })
    }

    /// All blueprints of `org`, by identifier (cached).
    pub async fn blueprints(&self, org: &OrgId) -> ApiResult<Arc<HashMap<String, Blueprint>>> {
        if let Some(m) = self.blueprints.lock().ok().and_then(|c| c.get(org).cloned()) {
            return Ok(m);
        }
        let list: Vec<StoredBlueprint> = self.store.list_blueprints(org).await?;
        let map: Arc<HashMap<String, Blueprint>> =
            Arc::new(list.into_iter().map(|b| (b.blueprint.identifier.clone(), b.blueprint)).collect());
        if let Ok(mut c) = self.blueprints.lock() {
            c.insert(org.clone(), map.clone());
        }
        Ok(map)
    }

    /// Forget the cached blueprints of `org` after a change.
    pub fn blueprints_changed(&self, org: &OrgId) {
        if let Ok(mut c) = self.blueprints.lock() {
            c.remove(org);
        }
    }
}
