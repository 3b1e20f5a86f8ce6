//! `POST /v1/models/{name}/rank`: one user's encrypted private inputs and K candidates' public
//! ids (an `infer::RankRequest`), answered with K encrypted logit numerators. The call follows
//! the inference route's path (the key header, the tenant's place, the body under a limit, then
//! a queue place and a worker on the FHE pool); the model must take ranked requests, the body
//! is at most the largest ranked request of `Limits::max_candidates` candidates, and more
//! candidates than that are refused before any FHE work.

use std::time::Instant;

use axum::body::Body;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use infer::{RankRequest, StageTimings};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::observe::{note_candidates, note_stages};
use crate::routes::inference::{AcceptedCall, accept_call, execution_error, named_model};
use crate::routes::message::binary;
use crate::state::{AppState, LoadedModel};

/// `POST /v1/models/{name}/rank`: a ranked request, answered with the candidates' encrypted
/// numerators in request order (packed when the key carries a packing key) and the server's
/// stages in `server-timing`.
pub(crate) async fn rank(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let model = named_model(&state, &name)?;
    let limit = body_limit(&model)?;
    let max_candidates = state.limits.max_candidates;
    let call = accept_call(&state, &caller, model, &headers, body, limit)
        .await
        .map_err(|mut error| {
            if error.code == "body_too_large" {
                error.message = format!(
                    "{}: a ranked request of this model with at most {max_candidates} \
                     candidates takes at most {limit} bytes",
                    error.message
                );
            }
            error
        })?;
    let (answer, timings, candidates) = run(&state, &call, max_candidates).await?;
    note_candidates(candidates);
    note_stages([&timings]);
    Ok(binary(answer, Some(&timings)))
}

/// The body limit of the model's ranked requests, or why the model takes none: 400
/// `no_public_tables` for a model whose every feature is private (nothing to rank: every
/// candidate would be a whole encrypted row), 400 `rank_unsupported` for a model with public
/// tables that the executor cannot rank (none today: concat and dot both rank).
fn body_limit(model: &LoadedModel) -> Result<usize, ApiError> {
    if let Some(limit) = model.max_rank_request_bytes {
        return Ok(limit);
    }
    let reason = match model.server.takes_ranked_requests() {
        Err(error) => error.to_string(),
        Ok(()) => "its ranked requests have no body limit".into(),
    };
    let (code, hint) = match model.server.interface().ranks() {
        false => (
            "no_public_tables",
            "score each candidate with /infer, or serve a model with public tables",
        ),
        true => ("rank_unsupported", "score each candidate with /infer"),
    };
    Err(ApiError::new(
        StatusCode::BAD_REQUEST,
        code,
        format!(
            "model `{}` takes no ranked request ({reason}); {hint}",
            model.name
        ),
    ))
}

/// Decodes the request (at most `max_candidates` candidates; the sender's errors answer 4xx),
/// runs it with the caller's key on the FHE pool once a worker is free (stopping early if the
/// caller leaves) and records its stages; returns the answer's bytes, the stages and the
/// candidate count.
async fn run(
    state: &AppState,
    call: &AcceptedCall,
    max_candidates: usize,
) -> Result<(Vec<u8>, StageTimings, usize), ApiError> {
    let shared = state.clone();
    let (model, owner, key) = (call.model.clone(), call.owner.clone(), call.key.clone());
    let body = call.body.clone();
    call.admitted
        .run(move |caller_gone| {
            let started = Instant::now();
            // Decoded before the key is loaded: a malformed request costs no decompression.
            let request = RankRequest::from_bytes(&body, model.server.interface(), max_candidates)?;
            let decode = started.elapsed();
            let key = shared.server_key(&owner, &key)?;
            let (response, mut timings) = model
                .server
                .rank_until(&key, &request, caller_gone)
                .map_err(|error| execution_error(error, &shared))?;
            timings.decode += decode;
            let started = Instant::now();
            let answer = response
                .to_bytes()
                .map_err(|error| ApiError::internal(error.to_string()))?;
            timings.encode += started.elapsed();
            let candidates = request.candidates.len();
            shared
                .metrics
                .record_rank(&model.name, candidates, &timings);
            Ok::<_, ApiError>((answer, timings, candidates))
        })
        .await?
}
