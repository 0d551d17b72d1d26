//! `/v1/sandbox-templates`: the builtin sandbox templates and those projects build from
//! a base template plus setup commands (with a content-addressed build cache).

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use roost_api::operations::Operation;
use roost_api::sandbox_templates::{BuildSandboxTemplateRequest, SandboxTemplate, SandboxTemplateDetail};
use roost_api::{ErrorResponse, Page, ProjectListParams};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::etag::IfMatch;
use crate::extract::{Ctx, Json, Path, Query};

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TemplateParams {
    /// Only this project's templates (and the builtin ones); by name, for `{id}`.
    #[serde(default)]
    pub project: Option<String>,
}

/// List the builtin templates and those of your projects, with their cache counters.
#[utoipa::path(get, path = "/v1/sandbox-templates", tag = "sandboxes", params(ProjectListParams),
    responses((status = 200, body = Page<SandboxTemplate>)))]
pub async fn list(
    State(s): State<AppState>,
    auth: Auth,
    Query(q): Query<ProjectListParams>,
) -> Result<axum::Json<Page<SandboxTemplate>>, ApiError> {
    Ok(axum::Json(s.control.list_sandbox_templates(&auth, &q).await?))
}

/// Build a template: the base's root filesystem, each `run` command in order with
/// `sh -c` in a throwaway container, then a snapshot. 202 + operation; its result holds
/// `cache` (`hit` when a template with the same cache key exists: nothing runs), the
/// template and the commands' output.
#[utoipa::path(post, path = "/v1/sandbox-templates", operation_id = "sandbox_template.build", tag = "sandboxes", request_body = BuildSandboxTemplateRequest,
    responses((status = 202, body = Operation), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse),
        (status = 422, body = ErrorResponse)))]
pub async fn build(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Json(req): Json<BuildSandboxTemplateRequest>,
) -> Result<Response, ApiError> {
    let op = s.control.build_sandbox_template(&ctx, &auth, req).await?;
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/operations/{}", op.id)) {
        headers.insert(header::LOCATION, v);
    }
    Ok((StatusCode::ACCEPTED, headers, axum::Json(op)).into_response())
}

/// Show a template by name or id, with its last build's output.
#[utoipa::path(get, path = "/v1/sandbox-templates/{id}", tag = "sandboxes",
    params(("id" = String, Path, description = "Template name or image id"), TemplateParams),
    responses((status = 200, body = SandboxTemplateDetail), (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn get(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<TemplateParams>,
) -> Result<axum::Json<SandboxTemplateDetail>, ApiError> {
    Ok(axum::Json(s.control.get_sandbox_template(&auth, &id, q.project.as_deref()).await?))
}

/// Delete a built template. Refused (409) while a sandbox or instance uses it; builtin
/// templates stay (403).
#[utoipa::path(delete, path = "/v1/sandbox-templates/{id}", operation_id = "sandbox_template.delete", tag = "sandboxes",
    params(IfMatch, ("id" = String, Path, description = "Template name or image id"), TemplateParams),
    responses((status = 204, description = "Deleted"), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse), (status = 409, description = "In use", body = ErrorResponse)))]
pub async fn delete(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<TemplateParams>,
    if_match: IfMatch,
) -> Result<StatusCode, ApiError> {
    s.control.delete_sandbox_template(&ctx, &auth, &id, q.project.as_deref(), if_match.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}
