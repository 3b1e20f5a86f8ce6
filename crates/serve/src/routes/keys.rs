//! `/v1/keys`: registering, listing, describing and deleting server keys.

use axum::body::Body;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use fhe::{CompressedServerKey, ParameterSetId};
use serde::{Deserialize, Serialize};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::observe::note_key;
use crate::routes::message::read_body;
use crate::state::{AppState, Shared, unknown_key};
use crate::store::{KeyEntry, KeyId};

#[derive(Deserialize)]
pub(crate) struct KeyQuery {
    parameter_set: Option<String>,
}

/// What `POST /v1/keys` answers.
#[derive(Serialize)]
struct Registered {
    #[serde(flatten)]
    entry: KeyEntry,
    /// False when the same key was registered before.
    created: bool,
}

/// `POST /v1/keys`: checks the key against its parameter set, then stores it.
pub(crate) async fn register_key(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(query): Query<KeyQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let parameter_set = match query.parameter_set {
        None => ParameterSetId::default(),
        Some(name) => name.parse().map_err(|e: fhe::FheError| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "unknown_parameter_set",
                e.to_string(),
            )
        })?,
    };
    // Taken before the body is read, so concurrent uploads cannot exhaust memory.
    let _upload = state.admission.admit_key_upload()?;
    let limit = (state.limits.max_key_bytes as u64)
        .min(CompressedServerKey::max_bytes(parameter_set))
        .try_into()
        .unwrap_or(usize::MAX);
    let bytes = read_body(body, &headers, limit, &state.limits).await?;
    let shared = state.clone();
    let registered = tokio::task::spawn_blocking(move || {
        CompressedServerKey::from_bytes(&bytes, parameter_set)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_key", e.to_string()))?;
        let key_id = KeyId::of(parameter_set, &bytes);
        let owner = caller.owner();
        let _registering = shared.registration.lock().expect("registration lock");
        if shared.store.entry(&owner, &key_id)?.is_none() {
            check_quotas(&shared, &caller, bytes.len() as u64)?;
        }
        let created = shared.store.put(&owner, &key_id, parameter_set, &bytes)?;
        Ok::<_, ApiError>(Registered {
            entry: KeyEntry {
                key_id,
                parameter_set,
                bytes: bytes.len() as u64,
            },
            created,
        })
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    note_key(&registered.entry.key_id);
    let status = if registered.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(registered)).into_response())
}

/// A new key of `bytes` must fit the tenant's key count and bytes (429 `key_quota`, 413
/// `key_bytes_quota`) and the store-wide cap (413 `store_full`).
fn check_quotas(state: &Shared, caller: &Caller, bytes: u64) -> Result<(), ApiError> {
    if let Some(tenant) = &caller.tenant {
        let held = state.store.list(&caller.owner())?;
        let quotas = tenant.quotas;
        if held.len() >= quotas.max_keys as usize {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "key_quota",
                format!(
                    "tenant `{}` has {} keys registered, its quota: delete one first",
                    tenant.name, quotas.max_keys
                ),
            ));
        }
        let held_bytes: u64 = held.iter().map(|e| e.bytes).sum();
        if held_bytes + bytes > quotas.max_key_bytes {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "key_bytes_quota",
                format!(
                    "tenant `{}` holds {held_bytes} key bytes; {bytes} more exceed its quota of {}",
                    tenant.name, quotas.max_key_bytes
                ),
            ));
        }
    }
    if state.store.totals()?.1 + bytes > state.limits.max_store_bytes {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "store_full",
            "the key store is full",
        ));
    }
    Ok(())
}

/// `GET /v1/keys`: the caller's keys.
pub(crate) async fn list_keys(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    Ok(axum::Json(state.store.list(&caller.owner())?).into_response())
}

/// `GET /v1/keys/{id}`: one of the caller's keys (another tenant's answers 404, as if absent).
pub(crate) async fn get_key(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id: KeyId = id.parse()?;
    note_key(&id);
    let entry = state
        .store
        .entry(&caller.owner(), &id)?
        .ok_or_else(|| unknown_key(&id))?;
    Ok(axum::Json(entry).into_response())
}

/// `DELETE /v1/keys/{id}`: from the store and from memory (the caller's keys only).
pub(crate) async fn delete_key(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id: KeyId = id.parse()?;
    note_key(&id);
    let owner = caller.owner();
    if !state.store.delete(&owner, &id)? {
        return Err(unknown_key(&id));
    }
    state.forget_key(&owner, &id);
    Ok(StatusCode::NO_CONTENT.into_response())
}
