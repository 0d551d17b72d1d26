//! `/v1/images`: the builtin images and those projects build or import.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;
use roost_api::images::{BuildImageRequest, Image, UpdateImageRequest};
use roost_api::operations::Operation;
use roost_api::{ErrorResponse, Page, ProjectListParams};
use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use utoipa::IntoParams;

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::etag::IfMatch;
use crate::extract::{Ctx, Json, Path, Query};

/// List the builtin images and those of your projects (`?project=`: the builtin ones
/// and that project's), by name unless `sort` says otherwise.
#[utoipa::path(get, path = "/v1/images", tag = "images", params(ProjectListParams),
    responses((status = 200, body = Page<Image>)))]
pub async fn list(
    State(s): State<AppState>,
    auth: Auth,
    Query(q): Query<ProjectListParams>,
) -> Result<axum::Json<Page<Image>>, ApiError> {
    Ok(axum::Json(s.control.list_images(&auth, &q).await?))
}

/// Build a Debian image from packages (202 + operation with progress). The result is
/// content-addressed: the same suite and packages reuse the first build.
#[utoipa::path(post, path = "/v1/images", operation_id = "image.build", tag = "images", request_body = BuildImageRequest,
    responses((status = 202, body = Operation), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse)))]
pub async fn build(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Json(req): Json<BuildImageRequest>,
) -> Result<Response, ApiError> {
    let op = s.control.build_image(&ctx, &auth, req).await?;
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/operations/{}", op.id)) {
        headers.insert(header::LOCATION, v);
    }
    Ok((StatusCode::ACCEPTED, headers, axum::Json(op)).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportParams {
    pub name: String,
    #[serde(default)]
    pub project: Option<String>,
}

/// Import a root filesystem tarball (`.tar`, `.tar.gz`, `.tar.zst`) sent as the body.
///
/// The caller's right to import into the project is checked before the body is read. The
/// upload may be at most `image_import_max_size` bytes and may unpack to at most
/// `image_import_max_unpacked` (413 otherwise, with nothing kept).
#[utoipa::path(post, path = "/v1/images/import", operation_id = "image.import", tag = "images", params(ImportParams),
    request_body(content = Vec<u8>, description = "The tarball", content_type = "application/octet-stream"),
    responses((status = 201, body = Image), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse),
        (status = 413, description = "Too large, sent or unpacked", body = ErrorResponse),
        (status = 422, body = ErrorResponse)))]
pub async fn import(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    headers: HeaderMap,
    Query(q): Query<ImportParams>,
    body: Body,
) -> Result<(StatusCode, axum::Json<Image>), ApiError> {
    // Who may import, and under which name, is settled before a byte of the upload is read.
    s.control.authorize_image_import(&auth, &q.name, q.project.as_deref()).await?;
    let max = s.control.settings().image_import_max_size;
    let too_large = || {
        ApiError::from(roost_control::Error::new(
            roost_api::ErrorCode::PayloadTooLarge,
            format!("the upload is larger than {max} bytes (image_import_max_size)"),
        ))
    };
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(too_large());
    }
    let dir = s.control.settings().data_dir.join("tmp");
    tokio::fs::create_dir_all(&dir).await.map_err(|e| roost_control::Error::internal(e.to_string()))?;
    let mut name = String::from("upload-");
    roost_api::ids::push_random(&mut name, 12);
    let path = dir.join(name);
    let mut over = false;
    let written = async {
        let mut file = tokio::fs::File::create(&path).await?;
        let mut stream = body.into_data_stream().map_err(std::io::Error::other);
        let mut total: u64 = 0;
        while let Some(chunk) = stream.try_next().await? {
            total += chunk.len() as u64;
            if total > max {
                over = true;
                return Ok(());
            }
            file.write_all(&chunk).await?;
        }
        file.sync_all().await
    }
    .await;
    if over || written.is_err() {
        let _ = tokio::fs::remove_file(&path).await;
    }
    if over {
        return Err(too_large());
    }
    if let Err(e) = written {
        return Err(roost_control::Error::invalid(format!("could not receive the tarball: {e}")).into());
    }
    let image = s.control.import_image(&ctx, &auth, &q.name, q.project.as_deref(), &path).await?;
    Ok((StatusCode::CREATED, axum::Json(image)))
}

/// Show an image by id or name.
#[utoipa::path(get, path = "/v1/images/{id}", tag = "images", params(("id" = String, Path, description = "Image id or name")),
    responses((status = 200, body = Image), (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn get(State(s): State<AppState>, auth: Auth, Path(id): Path<String>) -> Result<axum::Json<Image>, ApiError> {
    Ok(axum::Json(s.control.get_image(&auth, &id).await?))
}

/// Change a project image's description (`null` clears it); builtin images stay (403).
#[utoipa::path(patch, path = "/v1/images/{id}", operation_id = "image.update", tag = "images", request_body = UpdateImageRequest,
    params(("id" = String, Path, description = "Image id or name"), IfMatch),
    responses((status = 200, body = Image)))]
pub async fn update(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(id): Path<String>,
    if_match: IfMatch,
    Json(req): Json<UpdateImageRequest>,
) -> Result<axum::Json<Image>, ApiError> {
    Ok(axum::Json(s.control.update_image(&ctx, &auth, &id, req, if_match.as_deref()).await?))
}

/// Delete an image no instance uses.
#[utoipa::path(delete, path = "/v1/images/{id}", operation_id = "image.delete", tag = "images", params(IfMatch, ("id" = String, Path, description = "Image id or name")),
    responses((status = 204, description = "Deleted"), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse), (status = 409, description = "In use", body = ErrorResponse)))]
pub async fn delete(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(id): Path<String>,
    if_match: IfMatch,
) -> Result<StatusCode, ApiError> {
    s.control.delete_image(&ctx, &auth, &id, if_match.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}
