//! Who is calling: the bearer token of every `/v1` call checked against the tenants (401
//! `unauthenticated` otherwise), and the caller handed to the handlers.

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::config::Access;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::Owner;
use crate::tenants::Tenant;

/// The authenticated caller of a `/v1` call (a request extension).
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    /// The tenant whose token the call carries; `None` with open access.
    pub(crate) tenant: Option<Tenant>,
}

impl Caller {
    /// Whose keys the call may see.
    pub(crate) fn owner(&self) -> Owner {
        match &self.tenant {
            Some(tenant) => Owner::Tenant(tenant.name.clone()),
            None => Owner::Open,
        }
    }
}

/// Middleware of the `/v1` routes: finds the caller or answers 401.
pub(crate) async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let tenant = match &state.access {
        Access::Open { .. } => None,
        Access::Tenants(tenants) => {
            let token = request
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.strip_prefix("Bearer "));
            match token.and_then(|token| tenants.authenticate(token.trim())) {
                Some(tenant) => Some(tenant.clone()),
                None => return unauthenticated(token.is_some()),
            }
        }
    };
    request.extensions_mut().insert(Caller { tenant });
    next.run(request).await
}

fn unauthenticated(had_token: bool) -> Response {
    let message = if had_token {
        "the bearer token is not valid"
    } else {
        "send `Authorization: Bearer <token>` (see `dlrm-he token add`)"
    };
    let mut response =
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", message).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    response
}
