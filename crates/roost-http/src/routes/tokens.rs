//! `/v1/tokens`: the caller's API tokens.

use axum::extract::State;
use axum::http::StatusCode;
use roost_api::tokens::{CreateTokenRequest, CreatedToken, Token, UpdateTokenRequest};
use roost_api::{ErrorResponse, ListParams, Page};

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::etag::IfMatch;
use crate::extract::{Ctx, Json, Path, Query};

/// List your API tokens.
#[utoipa::path(get, path = "/v1/tokens", tag = "tokens", params(ListParams),
    responses((status = 200, body = Page<Token>), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse)))]
pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<Page<Token>>, ApiError> {
    Ok(axum::Json(state.control.list_tokens(&auth, &params).await?))
}

/// Create an API token. The response holds its secret: the only time it is shown.
#[utoipa::path(post, path = "/v1/tokens", operation_id = "token.create", tag = "tokens", request_body = CreateTokenRequest,
    responses(
        (status = 201, body = CreatedToken),
        (status = 400, body = ErrorResponse),
        (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse),
        (status = 409, description = "A token with this name exists", body = ErrorResponse),
    ))]
pub async fn create(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Json(req): Json<CreateTokenRequest>,
) -> Result<(StatusCode, axum::Json<CreatedToken>), ApiError> {
    let created = state.control.create_token(&ctx, &auth, req).await?;
    Ok((StatusCode::CREATED, axum::Json(created)))
}

/// Show one of your tokens, by id or name.
#[utoipa::path(get, path = "/v1/tokens/{id}", tag = "tokens",
    params(("id" = String, Path, description = "Token id or name")),
    responses((status = 200, body = Token), (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn get(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<axum::Json<Token>, ApiError> {
    Ok(axum::Json(state.control.get_token(&auth, &id).await?))
}

/// Rename one of your tokens (its scope and expiry never change).
#[utoipa::path(patch, path = "/v1/tokens/{id}", operation_id = "token.update", tag = "tokens", request_body = UpdateTokenRequest,
    params(("id" = String, Path, description = "Token id or name"), IfMatch),
    responses((status = 200, body = Token)))]
pub async fn update(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(id): Path<String>,
    if_match: IfMatch,
    Json(req): Json<UpdateTokenRequest>,
) -> Result<axum::Json<Token>, ApiError> {
    Ok(axum::Json(state.control.update_token(&ctx, &auth, &id, req, if_match.as_deref()).await?))
}

/// Delete (revoke) one of your tokens, by id or name. It stops working at once.
#[utoipa::path(delete, path = "/v1/tokens/{id}", operation_id = "token.delete", tag = "tokens",
    params(IfMatch, ("id" = String, Path, description = "Token id or name")),
    responses((status = 204, description = "Deleted"), (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn delete(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(id): Path<String>,
    if_match: IfMatch,
) -> Result<StatusCode, ApiError> {
    state.control.delete_token(&ctx, &auth, &id, if_match.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}
