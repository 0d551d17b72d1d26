//! `/v1/auth`: login, logout, whoami.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use roost_api::ErrorResponse;
use roost_api::auth::{LoginRequest, LoginResponse, WhoAmI};

use crate::AppState;
use crate::auth::{Auth, CSRF_COOKIE, SESSION_COOKIE};
use crate::error::ApiError;
use crate::extract::{Ctx, Https, Json};

/// Log in with a username and password.
///
/// Returns a session token (for `Authorization: Bearer`) and also sets it as an httpOnly,
/// SameSite=Strict cookie for the console, with a readable CSRF cookie whose value must
/// accompany cookie-authenticated mutations as `X-CSRF-Token`. Rate-limited per client
/// address.
#[utoipa::path(post, path = "/v1/auth/login", operation_id = "auth.login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, body = LoginResponse),
        (status = 400, body = ErrorResponse),
        (status = 401, description = "Wrong username or password", body = ErrorResponse),
        (status = 429, description = "Too many attempts; see Retry-After", body = ErrorResponse),
    ),
    security(()))]
pub async fn login(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Https(https): Https,
    Json(req): Json<LoginRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let (response, csrf) = state.control.login(&ctx, req).await?;
    let max_age = state.control.settings().session_ttl.as_secs();
    let mut headers = HeaderMap::new();
    let secure = secure_attribute(https);
    let session =
        format!("{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}", response.token);
    let csrf = format!("{CSRF_COOKIE}={csrf}; Path=/; SameSite=Strict; Max-Age={max_age}{secure}");
    for cookie in [session, csrf] {
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            headers.append(header::SET_COOKIE, v);
        }
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok((headers, axum::Json(response)))
}

/// End the current session (and clear the console's cookies).
#[utoipa::path(post, path = "/v1/auth/logout", operation_id = "auth.logout", tag = "auth",
    responses((status = 204, description = "Logged out"), (status = 401, body = ErrorResponse), (status = 422, body = ErrorResponse)))]
pub async fn logout(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Https(https): Https,
    auth: Auth,
) -> Result<impl IntoResponse, ApiError> {
    state.control.logout(&ctx, &auth).await?;
    let mut headers = HeaderMap::new();
    let secure = secure_attribute(https);
    for name in [SESSION_COOKIE, CSRF_COOKIE] {
        if let Ok(v) = HeaderValue::from_str(&format!("{name}=; Path=/; SameSite=Strict; Max-Age=0{secure}")) {
            headers.append(header::SET_COOKIE, v);
        }
    }
    Ok((StatusCode::NO_CONTENT, headers))
}

/// Cookies sent over HTTPS are `Secure`: a browser never sends them back in clear.
fn secure_attribute(https: bool) -> &'static str {
    if https { "; Secure" } else { "" }
}

/// Who the credential of this request belongs to, and what it may do.
#[utoipa::path(get, path = "/v1/auth/whoami", tag = "auth",
    responses((status = 200, body = WhoAmI), (status = 401, body = ErrorResponse)))]
pub async fn whoami(auth: Auth) -> axum::Json<WhoAmI> {
    axum::Json(auth.whoami())
}

/// Change your own password; your other sessions end.
#[utoipa::path(post, path = "/v1/auth/password", operation_id = "user.password.change", tag = "auth", request_body = roost_api::users::ChangePasswordRequest,
    responses((status = 204, description = "Changed"), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse)))]
pub async fn change_password(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Json(req): Json<roost_api::users::ChangePasswordRequest>,
) -> Result<StatusCode, ApiError> {
    state.control.change_own_password(&ctx, &auth, req).await?;
    Ok(StatusCode::NO_CONTENT)
}
