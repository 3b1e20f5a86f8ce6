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
}

/// What `GET /v1/models/{name}` returns: everything a client needs to build requests.
#[derive(Serialize)]
struct ModelDescription<'a> {
    name: &'a str,
    interface: &'a ModelInterface,
    request: RequestLayout,
    plan: PlanSummary<'a>,
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
    }
}

fn description(model: &LoadedModel) -> Result<ModelDescription<'_>, ApiError> {
    let interface = model.server.interface();
    let plan = model.server.plan();
    let (dense_glwes, query_glwes) = interface.request_glwe_counts()?;
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
    Ok(axum::Json(description(&model)?).into_response())
}
