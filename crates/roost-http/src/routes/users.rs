//! `/v1/users`: accounts (admins manage; everyone sees and edits themselves as `me`).

use axum::extract::State;
use axum::http::StatusCode;
use roost_api::users::{
    CreateUserRequest, CreatedUser, ResetPasswordRequest, ResetPasswordResponse, UpdateUserRequest, UserDetails,
};
use roost_api::{ErrorResponse, ListParams, Page};

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::etag::IfMatch;
use crate::extract::{Ctx, Json, Path, Query};

type ApiResult<T> = Result<axum::Json<T>, ApiError>;

/// List users (admins: everyone; others: themselves).
#[utoipa::path(get, path = "/v1/users", tag = "users", params(ListParams),
    responses((status = 200, body = Page<UserDetails>), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse)))]
pub async fn list(
    State(s): State<AppState>,
    auth: Auth,
    Query(params): Query<ListParams>,
) -> ApiResult<Page<UserDetails>> {
    Ok(axum::Json(s.control.list_users(&auth, &params).await?))
}

/// Create a user (admins). Without a password, one is generated and returned once. The
/// user joins the `default` project unless `projects` says otherwise.
#[utoipa::path(post, path = "/v1/users", operation_id = "user.create", tag = "users", request_body = CreateUserRequest,
    responses((status = 201, body = CreatedUser), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 409, body = ErrorResponse)))]
pub async fn create(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Json(req): Json<CreateUserRequest>,
) -> Result<(StatusCode, axum::Json<CreatedUser>), ApiError> {
    Ok((StatusCode::CREATED, axum::Json(s.control.create_user(&ctx, &auth, req).await?)))
}

/// Show a user by id or name (`me`: yourself).
#[utoipa::path(get, path = "/v1/users/{id}", tag = "users", params(("id" = String, Path, description = "User id, name or `me`")),
    responses((status = 200, body = UserDetails)))]
pub async fn get(State(s): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<UserDetails> {
    Ok(axum::Json(s.control.get_user(&auth, &id).await?))
}

/// Change a profile (yourself: email and display name; admins: anyone, and the role).
#[utoipa::path(patch, path = "/v1/users/{id}", operation_id = "user.update", tag = "users", params(("id" = String, Path, description = "User id, name or `me`"), IfMatch),
    request_body = UpdateUserRequest,
    responses((status = 200, body = UserDetails), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse),
        (status = 412, description = "If-Match is not current", body = ErrorResponse)))]
pub async fn update(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(id): Path<String>,
    if_match: IfMatch,
    Json(req): Json<UpdateUserRequest>,
) -> ApiResult<UserDetails> {
    Ok(axum::Json(s.control.update_user(&ctx, &auth, &id, req, if_match.as_deref()).await?))
}

/// Delete a user (admins); their sessions, tokens and memberships go too.
#[utoipa::path(delete, path = "/v1/users/{id}", operation_id = "user.delete", tag = "users", params(IfMatch, ("id" = String, Path, description = "User id or name")),
    responses((status = 204, description = "Deleted"), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse)))]
pub async fn delete(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(id): Path<String>,
    if_match: IfMatch,
) -> Result<StatusCode, ApiError> {
    s.control.delete_user(&ctx, &auth, &id, if_match.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Disable a user (admins): their sessions end and their tokens stop working at once.
#[utoipa::path(post, path = "/v1/users/{id}/disable", operation_id = "user.disable", tag = "users", params(("id" = String, Path, description = "User id or name")),
    responses((status = 200, body = UserDetails), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse)))]
pub async fn disable(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<UserDetails> {
    Ok(axum::Json(s.control.set_user_disabled(&ctx, &auth, &id, true).await?))
}

/// Enable a disabled user (admins).
#[utoipa::path(post, path = "/v1/users/{id}/enable", operation_id = "user.enable", tag = "users", params(("id" = String, Path, description = "User id or name")),
    responses((status = 200, body = UserDetails), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse)))]
pub async fn enable(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<UserDetails> {
    Ok(axum::Json(s.control.set_user_disabled(&ctx, &auth, &id, false).await?))
}

/// Reset a user's password (admins): set the given one or generate one (returned once);
/// their sessions end.
#[utoipa::path(post, path = "/v1/users/{id}/password", operation_id = "user.password.reset", tag = "users", params(("id" = String, Path, description = "User id or name")),
    request_body = ResetPasswordRequest,
    responses((status = 200, body = ResetPasswordResponse), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn reset_password(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(id): Path<String>,
    Json(req): Json<ResetPasswordRequest>,
) -> ApiResult<ResetPasswordResponse> {
    Ok(axum::Json(s.control.reset_password(&ctx, &auth, &id, req).await?))
}
