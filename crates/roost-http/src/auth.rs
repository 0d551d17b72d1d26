//! The `Auth` extractor: every handler that takes it requires a valid credential. It
//! reads `Authorization: Bearer …` or the console's session cookie, and for cookie
//! sessions demands the CSRF header on anything that is not a read.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Method, header};
use roost_api::tokens::Scope;
use roost_control::{Error, Principal};

use crate::AppState;
use crate::error::ApiError;

pub const SESSION_COOKIE: &str = "roost_session";
pub const CSRF_COOKIE: &str = "roost_csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The authenticated principal of a request.
pub struct Auth(pub Arc<Principal>, Credential);

/// The secret a request authenticated with, kept so a long-lived response (the event
/// stream) can check that it is still accepted. Never printed (no `Debug`).
pub struct Credential(String);

impl Auth {
    /// The bearer token or session secret this request authenticated with.
    pub fn credential(&self) -> &str {
        &self.1.0
    }

    /// A WebSocket opened with a browser session must come from our own pages: browsers
    /// send the cookie on cross-site WebSocket upgrades, and CSRF tokens do not apply to
    /// them.
    pub fn require_same_origin(&self, headers: &axum::http::HeaderMap) -> Result<(), Error> {
        if self.method == roost_api::auth::AuthMethod::Session
            && let (Some(origin), Some(host)) = (headers.get(header::ORIGIN), headers.get(header::HOST))
        {
            let origin = origin.to_str().unwrap_or_default();
            let host = host.to_str().unwrap_or_default();
            if origin.split("://").nth(1) != Some(host) {
                return Err(Error::forbidden("cross-origin WebSocket refused"));
            }
        }
        Ok(())
    }
}

impl std::ops::Deref for Auth {
    type Target = Principal;

    fn deref(&self) -> &Principal {
        &self.0
    }
}

fn is_read(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(|v| match v.split_once(' ') {
                Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => Ok(rest.trim()),
                _ => Err(Error::unauthorized("the Authorization header must be 'Bearer <token>'")),
            })
            .transpose()?;
        let (secret, via_cookie) = match bearer {
            Some(secret) => (secret.to_string(), false),
            None => match cookie(parts, SESSION_COOKIE) {
                Some(secret) => (secret, true),
                None => {
                    return Err(Error::unauthorized(
                        "authentication required: send 'Authorization: Bearer <token>' or log in",
                    )
                    .into());
                }
            },
        };
        // Counted apart: what a request costs the store should not depend on whether its
        // credential was still cached.
        let principal = roost_store::counted::apart(state.control.authenticate(&secret)).await?;
        if let Some(audit) = parts.extensions.get::<crate::audit_trail::RequestAudit>() {
            *audit.actor.lock().expect("audit actor") = Some(principal.audit_actor());
        }
        if !is_read(&parts.method) {
            state.control.check_mutation_rate(&principal)?;
            if via_cookie {
                let sent = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
                state.control.verify_csrf(&principal, sent)?;
            }
            principal
                .require_scope(Scope::Write)
                .map_err(|_| Error::forbidden(format!("token scope '{}' allows only reads", principal.scope)))?;
        }
        Ok(Auth(principal, Credential(secret)))
    }
}

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie(parts: &Parts, name: &str) -> Option<String> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}
