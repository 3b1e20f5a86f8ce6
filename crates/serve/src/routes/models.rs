//! `/v1/models`: the served models, and everything a client needs to build requests for one.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use fhe::ParameterSetId;
use infer::ModelInterface;
use serde::Serialize;

use crate::error::ApiError;
use crate::observe::note_model;
use crate::routes::message::{BINARY, KEY_HEADER};
use crate::state::{AppState, LoadedModel};

/// What `GET /v1/models` lists per model.
#[derive(Serialize)]
struct ModelSummary<'a> {
    name: &'a str,
    model_id: &'a str,
    parameter_set: ParameterSetId,
    dense_features: usize,
    tables: usize,
    bootstraps: usize,
    /// Whether `POST /v1/models/{name}/rank` serves the model.
    ranks: bool,
}

/// What `GET /v1/models/{name}` returns: everything a client needs to build requests.
#[derive(Serialize)]
struct ModelDescription<'a> {
    name: &'a str,
    interface: &'a ModelInterface,
    request: RequestLayout,
    /// The ranked requests' layout; `None` when the model takes none.
    rank: Option<RankLayout>,
    plan: PlanSummary<'a>,
}

#[derive(Serialize)]
struct RankLayout {
    /// Dense-feature GLWE ciphertexts, then the private tables' query GLWE ciphertexts.
    dense_glwes: usize,
    query_glwes: usize,
    /// The public tables, whose ids each candidate carries in this order.
    public_tables: Vec<usize>,
    max_candidates: usize,
    max_request_bytes: usize,
}

#[derive(Serialize)]
struct RequestLayout {
    /// Dense-feature GLWE ciphertexts, then query GLWE ciphertexts (digit one-hots, packed).
    dense_glwes: usize,
    query_glwes: usize,
    max_request_bytes: usize,
    key_header: &'static str,
    content_type: &'static str,
}

#[derive(Serialize)]
struct PlanSummary<'a> {
    bootstraps: usize,
    layers: &'a [infer::LayerPlan],
    lookup: &'a infer::LookupSummary,
}

fn summary(model: &LoadedModel) -> ModelSummary<'_> {
    let interface = model.server.interface();
    ModelSummary {
        name: &model.name,
        model_id: &interface.model_id,
        parameter_set: interface.parameter_set,
        dense_features: interface.dense_features,
        tables: interface.tables.len(),
        bootstraps: model.server.plan().bootstraps(),
        ranks: model.max_rank_request_bytes.is_some(),
    }
}

fn description(
    model: &LoadedModel,
    max_candidates: usize,
) -> Result<ModelDescription<'_>, ApiError> {
    let interface = model.server.interface();
    let plan = model.server.plan();
    let (dense_glwes, query_glwes) = interface.request_glwe_counts()?;
    let rank = match model.max_rank_request_bytes {
        Some(max_request_bytes) => {
            let (dense_glwes, query_glwes) = interface.rank_request_glwe_counts()?;
            Some(RankLayout {
                dense_glwes,
                query_glwes,
                public_tables: interface.roles.public_tables(interface.tables.len()),
                max_candidates,
                max_request_bytes,
            })
        }
        None => None,
    };
    Ok(ModelDescription {
        name: &model.name,
        interface,
        request: RequestLayout {
            dense_glwes,
            query_glwes,
            max_request_bytes: model.max_request_bytes,
            key_header: KEY_HEADER,
            content_type: BINARY,
        },
        rank,
        plan: PlanSummary {
            bootstraps: plan.bootstraps(),
            layers: &plan.layers,
            lookup: &plan.lookup,
        },
    })
}

/// `GET /v1/models`.
pub(crate) async fn list_models(State(state): State<AppState>) -> Response {
    let summaries: Vec<ModelSummary> = state.models.values().map(|m| summary(m)).collect();
    axum::Json(summaries).into_response()
}

/// `GET /v1/models/{name}`.
pub(crate) async fn describe_model(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let model = state.model(&name)?;
    note_model(&model.name);
    let max_candidates = state.limits.max_candidates;
    Ok(axum::Json(description(&model, max_candidates)?).into_response())
}
