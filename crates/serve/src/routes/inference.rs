//! `/v1/models/{name}/infer` and `/infer-batch`: encrypted requests run with a registered key.
//! A call names its model and key, takes a place in the queue, and only then sends its body,
//! which runs on the FHE pool.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use infer::{BatchError, StageTimings};

use crate::admission::Admitted;
use crate::error::ApiError;
use crate::observe::{note_key, note_model, note_stages};
use crate::routes::message::{KEY_HEADER, binary, read_body};
use crate::state::{AppState, LoadedModel, unknown_key};
use crate::store::KeyId;

/// `POST /v1/models/{name}/infer`: one request, answered with its stages in `server-timing`.
pub(crate) async fn infer_one(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (model, key, admitted, bytes) = accept_call(&state, &name, &headers, body, 1).await?;
    let mut answers = run(&state, &admitted, model, key, vec![bytes]).await?;
    let (response, timings) = answers.pop().expect("one request gives one answer");
    Ok(binary(response, Some(&timings)))
}

/// `POST /v1/models/{name}/infer-batch`: requests in the batch framing, answered in order.
pub(crate) async fn infer_batch(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let max_items = state.limits.max_batch;
    let (model, key, admitted, bytes) =
        accept_call(&state, &name, &headers, body, max_items).await?;
    let requests: Vec<Bytes> = infer::decode_batch(&bytes, max_items)?
        .into_iter()
        .map(|item| bytes.slice_ref(item))
        .collect();
    let answers = run(&state, &admitted, model, key, requests).await?;
    let responses: Vec<Vec<u8>> = answers.into_iter().map(|(bytes, _)| bytes).collect();
    Ok(binary(infer::encode_batch(&responses), None))
}

/// The common start of an inference call: the model, its key, a place in the queue, then the
/// body (read only once admitted, under a limit of `items` requests).
async fn accept_call(
    state: &AppState,
    name: &str,
    headers: &HeaderMap,
    body: Body,
    items: usize,
) -> Result<(Arc<LoadedModel>, KeyId, Admitted, Bytes), ApiError> {
    let model = state.model(name)?;
    note_model(&model.name);
    let key = registered_key(state, headers, &model)?;
    note_key(&key);
    let admitted = state.admission.admit()?;
    let limit = match items {
        1 => model.max_request_bytes,
        n => n * (model.max_request_bytes + 8) + 16,
    };
    let bytes = read_body(body, headers, limit, state.limits.body_timeout).await?;
    Ok((model, key, admitted, bytes))
}

/// The registered key named by the call's header, checked against the model's parameter set.
fn registered_key(
    state: &AppState,
    headers: &HeaderMap,
    model: &LoadedModel,
) -> Result<KeyId, ApiError> {
    let text = headers
        .get(KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "missing_key_id",
                format!("name the registered server key in the `{KEY_HEADER}` header"),
            )
        })?;
    let id: KeyId = text.parse()?;
    let entry = state.store.entry(&id)?.ok_or_else(|| unknown_key(&id))?;
    let expected = model.server.interface().parameter_set;
    if entry.parameter_set != expected {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "wrong_parameter_set",
            format!(
                "key {id} is for parameter set {}, model `{}` uses {expected}",
                entry.parameter_set, model.name
            ),
        ));
    }
    Ok(id)
}

/// Runs `requests` (encrypted request bytes) with the key on the FHE pool once a worker is free,
/// and records their stages.
async fn run(
    state: &AppState,
    admitted: &Admitted,
    model: Arc<LoadedModel>,
    key: KeyId,
    requests: Vec<Bytes>,
) -> Result<Vec<(Vec<u8>, StageTimings)>, ApiError> {
    let shared = state.clone();
    let answers = admitted
        .run(move || {
            let key = shared.server_key(&key)?;
            let answers = model
                .server
                .infer_batch_bytes(&key, &requests)
                .map_err(|error| batch_error(error, requests.len() > 1))?;
            for (_, timings) in &answers {
                shared.metrics.record_stages(&model.name, timings);
            }
            Ok::<_, ApiError>(answers)
        })
        .await??;
    note_stages(answers.iter().map(|(_, timings)| timings));
    Ok(answers)
}

/// A request that does not decode is the client's error (with its index in a batch of
/// several); a failure running decoded requests is the service's.
fn batch_error(error: BatchError, batch: bool) -> ApiError {
    match error {
        BatchError::Request { index, source } => {
            let mut error = ApiError::from(source);
            if batch {
                error.message = format!("request {index}: {}", error.message);
            }
            error
        }
        BatchError::Execution(source) => ApiError::internal(source.to_string()),
    }
}
