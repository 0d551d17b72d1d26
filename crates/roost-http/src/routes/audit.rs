//! `/v1/audit`: the append-only audit log (admins). No route edits or deletes entries.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use roost_api::audit::{AuditEntry, AuditQuery, AuditVerification};
use roost_api::{ErrorResponse, Page};

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::extract::Query;

/// List entries, newest first; filter by actor, action, resource and time.
#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = Page<AuditEntry>), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse)))]
pub async fn list(
    State(s): State<AppState>,
    auth: Auth,
    Query(q): Query<AuditQuery>,
) -> Result<axum::Json<Page<AuditEntry>>, ApiError> {
    Ok(axum::Json(s.control.list_audit(&auth, &q).await?))
}

/// Export matching entries, oldest first, as CSV.
#[utoipa::path(get, path = "/v1/audit/export", tag = "audit", params(AuditQuery),
    responses((status = 200, description = "CSV with a header row", content_type = "text/csv"), (status = 400, body = ErrorResponse),
        (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse)))]
pub async fn export(
    State(s): State<AppState>,
    auth: Auth,
    Query(q): Query<AuditQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let csv = s.control.export_audit_csv(&auth, &q).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"roost-audit.csv\""),
        ],
        csv,
    ))
}

/// Check the hash chain; reports the first entry that was altered, removed or moved.
#[utoipa::path(get, path = "/v1/audit/verify", tag = "audit",
    responses((status = 200, body = AuditVerification), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse)))]
pub async fn verify(State(s): State<AppState>, auth: Auth) -> Result<axum::Json<AuditVerification>, ApiError> {
    Ok(axum::Json(s.control.verify_audit(&auth).await?))
}
