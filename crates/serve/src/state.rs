//! What every route shares: the loaded models, the key store with its cache of decompressed
//! keys, admission control, the metrics and the readiness flag.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroUsize;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use fhe::{CompressedServerKey, ServerKey};
use infer::ServerModel;
use lru::LruCache;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::admission::Admission;
use crate::config::{Access, Limits, NamedModel};
use crate::error::{ApiError, Result, ServeError};
use crate::metrics::ServiceMetrics;
use crate::store::{KeyId, KeyStore, Owner};
use crate::tenants::Tenant;

/// A served model and what the routes need to know about it.
pub(crate) struct LoadedModel {
    pub(crate) name: String,
    pub(crate) server: ServerModel,
    /// The largest body a request for this model can need.
    pub(crate) max_request_bytes: usize,
    /// The largest body a ranked request of at most `Limits::max_candidates` candidates can
    /// need; `None` when the model takes no ranked request.
    pub(crate) max_rank_request_bytes: Option<usize>,
}

/// The state behind every route.
pub(crate) struct Shared {
    pub(crate) models: BTreeMap<String, Arc<LoadedModel>>,
    pub(crate) store: Arc<dyn KeyStore>,
    /// Decompressed server keys, least recently used dropped first (decompressing one costs
    /// far more than a call's lookups in the cache).
    keys: Mutex<LruCache<(Owner, KeyId), Arc<ServerKey>>>,
    /// Held while a key upload checks the quotas and stores the key, so two uploads cannot
    /// both pass a quota only one of them fits.
    pub(crate) registration: Mutex<()>,
    pub(crate) access: Access,
    /// Each tenant's calls admitted at once, by tenant name.
    tenant_calls: HashMap<String, Arc<Semaphore>>,
    pub(crate) limits: Limits,
    pub(crate) admission: Arc<Admission>,
    pub(crate) metrics: Arc<ServiceMetrics>,
    /// False once a shutdown began (`/readyz`).
    pub(crate) ready: AtomicBool,
}

pub(crate) type AppState = Arc<Shared>;

impl Shared {
    /// Checks `limits` and `models` (valid, distinct names) and builds the FHE pool.
    pub(crate) fn new(
        limits: Limits,
        access: Access,
        store: Arc<dyn KeyStore>,
        models: Vec<NamedModel>,
    ) -> Result<Self> {
        limits.check()?;
        let tenant_calls = match &access {
            Access::Tenants(tenants) => tenants
                .iter()
                .map(|t| {
                    let calls = t.quotas.max_concurrent_calls as usize;
                    (t.name.clone(), Arc::new(Semaphore::new(calls)))
                })
                .collect(),
            Access::Open { .. } => HashMap::new(),
        };
        if models.is_empty() {
            return Err(ServeError::Config("no model to serve".into()));
        }
        let mut loaded = BTreeMap::new();
        for model in models {
            model.check_name()?;
            let NamedModel { name, model } = model;
            let max_request_bytes = infer::Request::max_bytes(model.interface())?;
            let max_rank_request_bytes = match model.takes_ranked_requests() {
                Ok(()) => Some(infer::RankRequest::max_bytes(
                    model.interface(),
                    limits.max_candidates,
                )?),
                Err(_) => None,
            };
            let entry = Arc::new(LoadedModel {
                name: name.clone(),
                server: model,
                max_request_bytes,
                max_rank_request_bytes,
            });
            if loaded.insert(name.clone(), entry).is_some() {
                return Err(ServeError::Config(format!("two models are named `{name}`")));
            }
        }
        let key_cache =
            NonZeroUsize::new(limits.key_cache).expect("Limits::check refuses an empty key cache");
        let metrics = Arc::new(ServiceMetrics::default());
        Ok(Shared {
            models: loaded,
            store,
            keys: Mutex::new(LruCache::new(key_cache)),
            registration: Mutex::new(()),
            access,
            tenant_calls,
            admission: Admission::new(&limits, metrics.clone())?,
            limits,
            metrics,
            ready: AtomicBool::new(true),
        })
    }

    /// The model served as `name`.
    pub(crate) fn model(&self, name: &str) -> std::result::Result<Arc<LoadedModel>, ApiError> {
        self.models.get(name).cloned().ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_model",
                format!(
                    "no model named `{}` is loaded",
                    name.chars().take(64).collect::<String>()
                ),
            )
        })
    }

    /// `owner`'s decompressed key `id` (loaded from the store on a miss). Runs on the FHE pool.
    pub(crate) fn server_key(
        &self,
        owner: &Owner,
        id: &KeyId,
    ) -> std::result::Result<Arc<ServerKey>, ApiError> {
        let cached = (owner.clone(), id.clone());
        if let Some(key) = self.key_cache().get(&cached) {
            return Ok(key.clone());
        }
        let (parameter_set, bytes) = self.store.load(owner, id)?.ok_or_else(|| unknown_key(id))?;
        let key = CompressedServerKey::from_bytes(&bytes, parameter_set)
            .map_err(|e| ApiError::internal(format!("stored key {id} does not decode: {e}")))?;
        let key = Arc::new(key.decompress());
        self.key_cache().put(cached, key.clone());
        Ok(key)
    }

    /// Drops `owner`'s decompressed key `id` from memory (after its removal from the store).
    pub(crate) fn forget_key(&self, owner: &Owner, id: &KeyId) {
        self.key_cache().pop(&(owner.clone(), id.clone()));
    }

    /// A place among the calling tenant's calls at once (none to take with open access), or
    /// 429 `tenant_busy`.
    pub(crate) fn tenant_call(
        &self,
        tenant: Option<&Tenant>,
    ) -> std::result::Result<Option<OwnedSemaphorePermit>, ApiError> {
        let Some(tenant) = tenant else {
            return Ok(None);
        };
        let calls = self
            .tenant_calls
            .get(&tenant.name)
            .expect("every tenant has its semaphore");
        match calls.clone().try_acquire_owned() {
            Ok(permit) => Ok(Some(permit)),
            Err(_) => Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "tenant_busy",
                format!(
                    "tenant `{}` already has {} calls running or queued",
                    tenant.name, tenant.quotas.max_concurrent_calls
                ),
            )),
        }
    }

    /// Decompressed keys held in memory.
    pub(crate) fn loaded_keys(&self) -> usize {
        self.key_cache().len()
    }

    fn key_cache(&self) -> std::sync::MutexGuard<'_, LruCache<(Owner, KeyId), Arc<ServerKey>>> {
        self.keys.lock().expect("key cache lock")
    }
}

/// The answer to a call naming a key the store does not have.
pub(crate) fn unknown_key(id: &KeyId) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_key",
        format!("no key {id} is registered"),
    )
}
