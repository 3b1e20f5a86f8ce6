//! `/v1/models/{name}/infer` and `/infer-batch`: encrypted requests run with a registered key.
//! A call names its model and key, takes a place among its tenant's calls, sends its body, and
//! only then takes a place in the queue; it runs on the FHE pool.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::{Body, Bytes};
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use infer::{BatchError, InferError, StageTimings};

use crate::admission::Admitted;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::observe::{note_key, note_model, note_stages};
use crate::routes::message::{KEY_HEADER, binary, read_body};
use crate::state::{AppState, LoadedModel, unknown_key};
use crate::store::{KeyId, Owner};
use tokio::sync::OwnedSemaphorePermit;

/// `POST /v1/models/{name}/infer`: one request, answered with its stages in `server-timing`.
pub(crate) async fn infer_one(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let model = named_model(&state, &name)?;
    let limit = model.max_request_bytes;
    let call = accept_call(&state, &caller, model, &headers, body, limit).await?;
    let bytes = call.body.clone();
    let mut answers = run(&state, &call, vec![bytes]).await?;
    let (response, timings) = answers.pop().expect("one request gives one answer");
    Ok(binary(response, Some(&timings)))
}

/// `POST /v1/models/{name}/infer-batch`: requests in the batch framing, answered in order.
pub(crate) async fn infer_batch(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let max_items = state.limits.max_batch;
    let model = named_model(&state, &name)?;
    let limit = max_items * (model.max_request_bytes + 8) + 16;
    let call = accept_call(&state, &caller, model, &headers, body, limit).await?;
    let bytes = &call.body;
    let requests: Vec<Bytes> = infer::decode_batch(bytes, max_items)?
        .into_iter()
        .map(|item| bytes.slice_ref(item))
        .collect();
    let answers = run(&state, &call, requests).await?;
    let responses: Vec<Vec<u8>> = answers.into_iter().map(|(bytes, _)| bytes).collect();
    Ok(binary(infer::encode_batch(&responses), None))
}

/// An inference call ready to run: its model, the caller's key, its body and its places.
pub(crate) struct AcceptedCall {
    pub(crate) model: Arc<LoadedModel>,
    pub(crate) owner: Owner,
    pub(crate) key: KeyId,
    pub(crate) body: Bytes,
    pub(crate) admitted: Admitted,
    /// The caller's place among its tenant's calls, held until the answer.
    _tenant_call: Option<OwnedSemaphorePermit>,
}

/// The model served as `name`, named in the call's log line.
pub(crate) fn named_model(state: &AppState, name: &str) -> Result<Arc<LoadedModel>, ApiError> {
    let model = state.model(name)?;
    note_model(&model.name);
    Ok(model)
}

/// The common start of an inference call (single, batch or ranked) on `model`: the caller's
/// key, a place among the tenant's calls, the body (at most `limit` bytes), and only then a
/// place in the queue, so a slow upload holds no queue slot other callers need.
pub(crate) async fn accept_call(
    state: &AppState,
    caller: &Caller,
    model: Arc<LoadedModel>,
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<AcceptedCall, ApiError> {
    let owner = caller.owner();
    let key = registered_key(state, &owner, headers, &model)?;
    note_key(&key);
    let tenant_call = state.tenant_call(caller.tenant.as_ref())?;
    let body = read_body(body, headers, limit, &state.limits).await?;
    let admitted = state.admission.admit()?;
    Ok(AcceptedCall {
        model,
        owner,
        key,
        body,
        admitted,
        _tenant_call: tenant_call,
    })
}

/// The registered key named by the call's header, checked against the model's parameter set.
fn registered_key(
    state: &AppState,
    owner: &Owner,
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
    let entry = state
        .store
        .entry(owner, &id)?
        .ok_or_else(|| unknown_key(&id))?;
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
    call: &AcceptedCall,
    requests: Vec<Bytes>,
) -> Result<Vec<(Vec<u8>, StageTimings)>, ApiError> {
    let shared = state.clone();
    let (model, owner, key) = (call.model.clone(), call.owner.clone(), call.key.clone());
    let answers = call
        .admitted
        .run(move |caller_gone| {
            let key = shared.server_key(&owner, &key)?;
            let answers = model
                .server
                .infer_batch_bytes_until(&key, &requests, caller_gone)
                .map_err(|error| batch_error(error, requests.len() > 1, &shared))?;
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
/// several); a failure running decoded requests is the service's, unless the client left.
fn batch_error(error: BatchError, batch: bool, state: &AppState) -> ApiError {
    match error {
        BatchError::Request { index, source } => {
            let mut error = ApiError::from(source);
            if batch {
                error.message = format!("request {index}: {}", error.message);
            }
            error
        }
        BatchError::Execution(source) => execution_error(source, state),
    }
}

/// A failure running a decoded request: 499 `client_left` (counted) when its client left and
/// it stopped early, the service's own error otherwise.
pub(crate) fn execution_error(error: InferError, state: &AppState) -> ApiError {
    match error {
        InferError::Abandoned { stage } => {
            state.metrics.abandoned.fetch_add(1, Ordering::Relaxed);
            // Nobody reads this answer; the log line keeps its code.
            ApiError::new(
                StatusCode::from_u16(499).expect("a valid status"),
                "client_left",
                format!("the client left; stopped before the {stage} stage"),
            )
        }
        source => ApiError::internal(source.to_string()),
    }
}
