//! `/v1/projects`: tenancy — projects, members, quotas and usage.

use axum::extract::State;
use axum::http::StatusCode;
use roost_api::projects::{
    CreateProjectRequest, Member, Project, Quota, SetMemberRequest, UpdateProjectRequest, Usage,
};
use roost_api::{ErrorResponse, ListParams, Page};

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::etag::IfMatch;
use crate::extract::{Ctx, Json, Path, Query};

type ApiResult<T> = Result<axum::Json<T>, ApiError>;

/// List projects (admins: all; others: those they belong to).
#[utoipa::path(get, path = "/v1/projects", tag = "projects", params(ListParams),
    responses((status = 200, body = Page<Project>), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse)))]
pub async fn list(State(s): State<AppState>, auth: Auth, Query(params): Query<ListParams>) -> ApiResult<Page<Project>> {
    Ok(axum::Json(s.control.list_projects(&auth, &params).await?))
}

/// Create a project (admins).
#[utoipa::path(post, path = "/v1/projects", operation_id = "project.create", tag = "projects", request_body = CreateProjectRequest,
    responses((status = 201, body = Project), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 409, body = ErrorResponse)))]
pub async fn create(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Json(req): Json<CreateProjectRequest>,
) -> Result<(StatusCode, axum::Json<Project>), ApiError> {
    Ok((StatusCode::CREATED, axum::Json(s.control.create_project(&ctx, &auth, req).await?)))
}

/// Show a project you belong to, by id or name.
#[utoipa::path(get, path = "/v1/projects/{id}", tag = "projects", params(("id" = String, Path, description = "Project id or name")),
    responses((status = 200, body = Project)))]
pub async fn get(State(s): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<Project> {
    Ok(axum::Json(s.control.get_project(&auth, &id).await?))
}

/// Change a project's description (admins).
#[utoipa::path(patch, path = "/v1/projects/{id}", operation_id = "project.update", tag = "projects", params(("id" = String, Path, description = "Project id or name"), IfMatch),
    request_body = UpdateProjectRequest,
    responses((status = 200, body = Project), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse),
        (status = 412, description = "If-Match is not current", body = ErrorResponse)))]
pub async fn update(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(id): Path<String>,
    if_match: IfMatch,
    Json(req): Json<UpdateProjectRequest>,
) -> ApiResult<Project> {
    Ok(axum::Json(s.control.update_project(&ctx, &auth, &id, req, if_match.as_deref()).await?))
}

/// Delete an empty project (admins); `default` cannot be deleted.
#[utoipa::path(delete, path = "/v1/projects/{id}", operation_id = "project.delete", tag = "projects", params(IfMatch, ("id" = String, Path, description = "Project id or name")),
    responses((status = 204, description = "Deleted"), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse)))]
pub async fn delete(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(id): Path<String>,
    if_match: IfMatch,
) -> Result<StatusCode, ApiError> {
    s.control.delete_project(&ctx, &auth, &id, if_match.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// List a project's members, by user name unless `sort` says otherwise (`created_at` is
/// when they joined).
#[utoipa::path(get, path = "/v1/projects/{id}/members", tag = "projects",
    params(("id" = String, Path, description = "Project id or name"), ListParams),
    responses((status = 200, body = Page<Member>)))]
pub async fn members(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Query(params): Query<ListParams>,
) -> ApiResult<Page<Member>> {
    Ok(axum::Json(s.control.list_members(&auth, &id, &params).await?))
}

/// Add a member or change their role (admins).
#[utoipa::path(put, path = "/v1/projects/{id}/members/{user}", operation_id = "project.member.set", tag = "projects",
    params(("id" = String, Path, description = "Project id or name"), ("user" = String, Path, description = "User id or name")),
    request_body = SetMemberRequest,
    responses((status = 200, body = Member), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn set_member(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path((id, user)): Path<(String, String)>,
    Json(req): Json<SetMemberRequest>,
) -> ApiResult<Member> {
    Ok(axum::Json(s.control.set_member(&ctx, &auth, &id, &user, req).await?))
}

/// Remove a member (admins).
#[utoipa::path(delete, path = "/v1/projects/{id}/members/{user}", operation_id = "project.member.remove", tag = "projects",
    params(("id" = String, Path, description = "Project id or name"), ("user" = String, Path, description = "User id or name")),
    responses((status = 204, description = "Removed"), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse)))]
pub async fn remove_member(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path((id, user)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    s.control.remove_member(&ctx, &auth, &id, &user).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A project's quota: limits by resource (absent: unlimited).
#[utoipa::path(get, path = "/v1/projects/{id}/quota", tag = "projects", params(("id" = String, Path, description = "Project id or name")),
    responses((status = 200, body = Quota), (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn quota(State(s): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<Quota> {
    Ok(axum::Json(s.control.get_quota(&auth, &id).await?))
}

/// Set limits (admins): `{"instances": 10, "memory_bytes": 17179869184, "vcpus": null}`;
/// `null` removes a limit, absent resources stay as they are.
#[utoipa::path(put, path = "/v1/projects/{id}/quota", operation_id = "project.quota.set", tag = "projects", params(("id" = String, Path, description = "Project id or name")),
    request_body = Quota,
    responses((status = 200, body = Quota), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn set_quota(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(id): Path<String>,
    Json(req): Json<Quota>,
) -> ApiResult<Quota> {
    Ok(axum::Json(s.control.set_quota(&ctx, &auth, &id, req).await?))
}

/// What a project uses of each quota resource, and the limits.
#[utoipa::path(get, path = "/v1/projects/{id}/usage", tag = "projects", params(("id" = String, Path, description = "Project id or name")),
    responses((status = 200, body = Usage), (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn usage(State(s): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<Usage> {
    Ok(axum::Json(s.control.usage(&auth, &id).await?))
}
