//! `/v1/keys`: registering, listing, describing and deleting server keys.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use fhe::{CompressedServerKey, ParameterSetId};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::observe::note_key;
use crate::routes::message::read_body;
use crate::state::{AppState, unknown_key};
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
    let bytes = read_body(
        body,
        &headers,
        state.limits.max_key_bytes,
        state.limits.body_timeout,
    )
    .await?;
    let store = state.store.clone();
    let registered = tokio::task::spawn_blocking(move || {
        CompressedServerKey::from_bytes(&bytes, parameter_set)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_key", e.to_string()))?;
        let key_id = KeyId::of(parameter_set, &bytes);
        let created = store.put(&key_id, parameter_set, &bytes)?;
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

/// `GET /v1/keys`.
pub(crate) async fn list_keys(State(state): State<AppState>) -> Result<Response, ApiError> {
    Ok(axum::Json(state.store.list()?).into_response())
}

/// `GET /v1/keys/{id}`.
pub(crate) async fn get_key(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id: KeyId = id.parse()?;
    note_key(&id);
    let entry = state.store.entry(&id)?.ok_or_else(|| unknown_key(&id))?;
    Ok(axum::Json(entry).into_response())
}

/// `DELETE /v1/keys/{id}`: from the store and from memory.
pub(crate) async fn delete_key(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id: KeyId = id.parse()?;
    note_key(&id);
    if !state.store.delete(&id)? {
        return Err(unknown_key(&id));
    }
    state.forget_key(&id);
    Ok(StatusCode::NO_CONTENT.into_response())
}
