//! Authentication: passwords (argon2id), login sessions and API tokens (random secrets
//! stored only as SHA-256), and the principal every request acts as.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use roost_api::ErrorCode;
use roost_api::auth::{AuthMethod, LoginRequest, LoginResponse, Role, WhoAmI};
use roost_api::ids::{IdKind, push_random};
use roost_api::tokens::Scope;
use roost_store::sessions::SessionRow;
use roost_store::users::UserRow;
use roost_store::{now_ms, to_time};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::kernel::{Actor, AuthenticatedProof, Authorized};
use crate::{Control, Error, RequestContext, Result};

/// Prefix of API token secrets (`rst_…`) and of session secrets (`rss_…`), so a leaked
/// one is recognisable (and secret scanners can match it).
pub const TOKEN_PREFIX: &str = "rst_";
pub const SESSION_PREFIX: &str = "rss_";
const SECRET_LEN: usize = 32; // base32 characters: 160 bits
/// How long a resolved credential is trusted before the store is asked again. Revoking
/// through this server evicts at once; this bounds staleness for other servers.
const CACHE_TTL: Duration = Duration::from_secs(10);
/// The window of the per-account login limit (`login_failures_per_account` failures in
/// it and the account waits).
pub const ACCOUNT_LOCK_WINDOW: Duration = Duration::from_secs(15 * 60);
/// `last_used_at` is written at most this often per token.
const TOUCH_EVERY_MS: i64 = 60_000;

/// Who a request acts as. Only [`Control::authenticate`] (and the server's own helpers)
/// make one: no front door can make one up (`non_exhaustive` keeps other crates from
/// building it).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Principal {
    pub user_id: String,
    pub user_name: String,
    pub role: Role,
    pub method: AuthMethod,
    /// What this credential may do; sessions carry the user's full rights.
    pub scope: Scope,
    pub token_id: Option<String>,
    pub token_name: Option<String>,
    pub session_id: Option<String>,
    /// SHA-256 of the session's CSRF token (cookie-authenticated mutations must match).
    pub csrf_hash: Option<String>,
    pub expires_at: Option<i64>,
    /// An API token restricted to one project acts only there.
    pub project_id: Option<String>,
    pub user: UserRow,
}

impl Principal {
    /// An admin user acting with full, unrestricted rights (sees every project).
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin && self.scope == Scope::Admin && self.project_id.is_none()
    }

    /// Whether the user is an admin, whatever the credential (admins see all projects
    /// even with a read-scoped token; what they may change is the scope's business).
    pub fn sees_everything(&self) -> bool {
        self.role == Role::Admin && self.project_id.is_none()
    }

    /// Fails unless the credential's scope reaches `needed`.
    pub fn require_scope(&self, needed: Scope) -> Result<()> {
        if self.scope >= needed {
            return Ok(());
        }
        Err(Error::forbidden(format!("this token has scope '{}'; the request needs '{}'", self.scope, needed)))
    }

    /// Fails unless the user is an admin acting with an admin-scoped credential; the
    /// proof opens changes of server-wide resources.
    pub fn require_admin(&self) -> Result<AdminProof> {
        if self.role != Role::Admin {
            return Err(Error::forbidden(format!("user '{}' is not an admin", self.user_name)));
        }
        self.require_scope(Scope::Admin)?;
        if self.project_id.is_some() {
            return Err(Error::forbidden(
                "this token is restricted to one project; server administration needs an unrestricted credential",
            ));
        }
        Ok(AdminProof(self.actor()))
    }

    /// Fails unless the credential may write; the proof opens changes of the user's own
    /// resources (tokens, keys, their password).
    pub fn require_owner(&self) -> Result<OwnerProof> {
        self.require_scope(Scope::Write)?;
        Ok(OwnerProof(self.actor()))
    }

    /// Proof of who this principal is, for changes every authenticated user may make
    /// (logging out, minting a read-only URL): no right beyond the credential itself.
    pub(crate) fn identity_proof(&self) -> AuthenticatedProof {
        AuthenticatedProof::new(self.actor())
    }

    /// Who this principal is, as a change records it.
    pub(crate) fn actor(&self) -> Actor {
        Actor::user(self.user_id.clone(), self.token_id.clone())
    }

    /// Admins with any scope may read server-wide records (audit log, metrics).
    pub fn require_admin_read(&self) -> Result<()> {
        if self.role != Role::Admin || self.project_id.is_some() {
            return Err(Error::forbidden("only admins may read this"));
        }
        Ok(())
    }

    /// The limits a credential made with this one inherits (expiry, project): a key made
    /// with an API token ends when the token ends and reaches only the token's project;
    /// one made in a session (a person at the console or CLI) has neither limit, as a
    /// token made in a session does not.
    pub fn credential_limits(&self) -> (Option<i64>, Option<String>) {
        match self.method {
            AuthMethod::Token => (self.expires_at, self.project_id.clone()),
            AuthMethod::Session => (None, None),
        }
    }

    /// The user id as the audit log records it.
    pub fn audit_actor(&self) -> (String, Option<String>) {
        (self.user_id.clone(), self.token_id.clone())
    }

    pub fn whoami(&self) -> WhoAmI {
        WhoAmI {
            user: self.user.to_api(),
            auth: self.method,
            scope: self.scope,
            token_id: self.token_id.clone(),
            token_name: self.token_name.clone(),
            expires_at: self.expires_at.map(to_time),
            project_id: self.project_id.clone(),
        }
    }
}

/// Proof that its actor is an admin acting with full rights ([`Principal::require_admin`]).
#[derive(Debug, Clone)]
pub struct AdminProof(Actor);

impl Authorized for AdminProof {
    fn actor(&self) -> Actor {
        self.0.clone()
    }
}

/// Proof that its actor may change their own resources ([`Principal::require_owner`]).
#[derive(Debug, Clone)]
pub struct OwnerProof(Actor);

impl Authorized for OwnerProof {
    fn actor(&self) -> Actor {
        self.0.clone()
    }
}

/// Resolved credentials by secret hash.
pub struct AuthCache {
    entries: RwLock<HashMap<String, CacheEntry>>,
    /// Counts evictions: every change to someone's credentials or rights (a revoked
    /// token, an ended session, a disabled user, a membership) passes through `evict`,
    /// so long-lived responses (the event stream) watch this to check theirs again.
    changes: tokio::sync::watch::Sender<u64>,
}

impl Default for AuthCache {
    fn default() -> Self {
        AuthCache { entries: RwLock::default(), changes: tokio::sync::watch::channel(0).0 }
    }
}

struct CacheEntry {
    principal: Arc<Principal>,
    cached: Instant,
    last_used_at: i64,
}

impl AuthCache {
    fn get(&self, hash: &str) -> Option<(Arc<Principal>, i64)> {
        let entries = self.entries.read().expect("auth cache poisoned");
        let entry = entries.get(hash)?;
        (entry.cached.elapsed() < CACHE_TTL).then(|| (entry.principal.clone(), entry.last_used_at))
    }

    fn put(&self, hash: String, principal: Arc<Principal>, last_used_at: i64) {
        let mut entries = self.entries.write().expect("auth cache poisoned");
        if entries.len() > 10_000 {
            entries.retain(|_, e| e.cached.elapsed() < CACHE_TTL);
        }
        entries.insert(hash, CacheEntry { principal, cached: Instant::now(), last_used_at });
    }

    /// When this server last saw the credential used (its store write may still be on
    /// its way: it is recorded in the background).
    pub(crate) fn last_used(&self, hash: &str) -> Option<i64> {
        let entries = self.entries.read().expect("auth cache poisoned");
        entries.get(hash).map(|e| e.last_used_at).filter(|&at| at > 0)
    }

    fn mark_used(&self, hash: &str, at: i64) {
        if let Some(entry) = self.entries.write().expect("auth cache poisoned").get_mut(hash) {
            entry.last_used_at = at;
        }
    }

    /// Forgets every cached credential matching `pred` (revocation, logout, disable),
    /// and tells the watchers of [`AuthCache::changes`].
    pub fn evict(&self, pred: impl Fn(&Principal) -> bool) {
        self.entries.write().expect("auth cache poisoned").retain(|_, e| !pred(&e.principal));
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Changes whenever credentials or rights may have changed (see `evict`).
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }
}

/// SHA-256 of a secret, hex: what the store keeps.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A new random secret with a recognisable prefix.
pub fn new_secret(prefix: &str) -> String {
    let mut s = String::with_capacity(prefix.len() + SECRET_LEN);
    s.push_str(prefix);
    push_random(&mut s, SECRET_LEN);
    s
}

/// A readable random password for generated accounts (20 characters, 100 bits).
pub fn new_password() -> String {
    let mut s = String::new();
    push_random(&mut s, 20);
    s
}

/// argon2id with the crate's defaults (19 MiB, 2 passes), on a blocking thread.
pub async fn hash_password(password: String) -> Result<String> {
    tokio::task::spawn_blocking(move || {
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt).map_err(|e| Error::internal(format!("random source: {e}")))?;
        let salt = SaltString::encode_b64(&salt).map_err(|e| Error::internal(e.to_string()))?;
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| Error::internal(format!("password hashing: {e}")))
    })
    .await
    .map_err(|e| Error::internal(e.to_string()))?
}

/// Checks a password against a stored hash on a blocking thread.
pub async fn verify_password(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .map(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

/// Verified against when the user does not exist, so both cases take the same time.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$ZvTnXo4Ss5KS4hq9VpnvbHkYzDO1rl3lrMv8ue3lVxY";

pub fn validate_password(password: &str) -> Result<()> {
    if password.chars().count() < 8 {
        return Err(Error::validation(vec![roost_api::FieldError {
            field: "password".into(),
            message: "must be at least 8 characters".into(),
        }]));
    }
    Ok(())
}

impl Control {
    /// Creates the `admin` user on the first start. Returns the generated password when
    /// none was given, so the caller can print it once.
    pub async fn bootstrap_admin(&self, given_password: Option<String>) -> Result<Option<String>> {
        if self.store().user_count().await? > 0 {
            return Ok(None);
        }
        let (password, generated) = match given_password {
            Some(p) => {
                validate_password(&p)
                    .map_err(|_| Error::invalid("ROOST_ADMIN_PASSWORD must be at least 8 characters"))?;
                (p, false)
            }
            None => (new_password(), true),
        };
        let now = now_ms();
        let user = UserRow {
            id: IdKind::User.generate(),
            name: "admin".into(),
            email: None,
            display_name: Some("Administrator".into()),
            role: Role::Admin.as_str().into(),
            password_hash: hash_password(password.clone()).await?,
            disabled: 0,
            created_at: now,
            updated_at: now,
        };
        let mut tx = self.system_change().await?;
        roost_store::users::insert(tx.conn(), &user).await?;
        tx.audit("user.create", Some(("user", &user.id)), None).await?;
        tx.event("user.created", "user", &user.id, &user.to_api(), crate::events::Audience::Admins);
        tx.commit().await?;
        tracing::info!(user = %user.id, "created the admin user");
        Ok(generated.then_some(password))
    }

    /// Logs in with a password; rate-limited per client address, and per account name
    /// after repeated failures (whether or not the account exists, so a lock tells
    /// nothing; while locked the password is not even checked).
    pub async fn login(&self, ctx: &RequestContext, req: LoginRequest) -> Result<(LoginResponse, String)> {
        let source = ctx.source.clone().unwrap_or_default();
        if let Err(wait) = self.inner.login_limiter.check(&source) {
            return Err(Error::rate_limited(wait));
        }
        let name = req.username.trim();
        let account = name.to_lowercase();
        if let Err(wait) = self.inner.login_failures.check(&account) {
            let user = self.store().user_by_name(name).await?;
            let actor = user.map(|u| u.id).unwrap_or_else(|| "anonymous".into());
            self.audit_standalone(ctx, &actor, None, "auth.login", None, "failure: locked").await;
            let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
            let mut e = Error::new(ErrorCode::RateLimited, "too many failed logins for this account; try again later");
            e.retry_after = Some(Duration::from_secs(secs));
            return Err(e);
        }
        let user = self.store().user_by_name(name).await?;
        let hash = user.as_ref().map(|u| u.password_hash.clone()).unwrap_or_else(|| DUMMY_HASH.to_string());
        let password_ok = verify_password(req.password, hash).await;
        let user = match user {
            Some(user) if password_ok => user,
            other => {
                self.inner.login_failures.fail(&account);
                let actor = other.map(|u| u.id).unwrap_or_else(|| "anonymous".into());
                self.audit_standalone(ctx, &actor, None, "auth.login", None, "failure: invalid_credentials").await;
                return Err(Error::unauthorized("invalid username or password"));
            }
        };
        self.inner.login_failures.succeed(&account);
        if user.disabled != 0 {
            self.audit_standalone(ctx, &user.id, None, "auth.login", None, "failure: user_disabled").await;
            return Err(Error::forbidden(format!("user '{}' is disabled", user.name)));
        }
        let token = new_secret(SESSION_PREFIX);
        let csrf = new_secret("csrf_");
        let now = now_ms();
        let session = SessionRow {
            id: IdKind::Session.generate(),
            user_id: user.id.clone(),
            token_hash: hash_secret(&token),
            csrf_hash: hash_secret(&csrf),
            source: ctx.source.clone(),
            created_at: now,
            expires_at: now + self.settings().session_ttl.as_millis() as i64,
            last_seen_at: None,
        };
        let proof = AuthenticatedProof::new(Actor::user(user.id.clone(), None));
        let mut tx = self.change(ctx, &proof).await?;
        roost_store::sessions::insert(tx.conn(), &session).await?;
        tx.audit("auth.login", Some(("session", &session.id)), None).await?;
        tx.commit().await?;
        let response = LoginResponse {
            token,
            csrf_token: csrf.clone(),
            expires_at: to_time(session.expires_at),
            user: user.to_api(),
        };
        Ok((response, csrf))
    }

    /// Ends the principal's session (a no-op for API tokens, which are deleted instead).
    pub async fn logout(&self, ctx: &RequestContext, principal: &Principal) -> Result<()> {
        let Some(session_id) = &principal.session_id else {
            return Err(Error::unprocessable(
                "this request uses an API token; delete the token instead of logging out",
            ));
        };
        let mut tx = self.change(ctx, &principal.identity_proof()).await?;
        roost_store::sessions::delete(tx.conn(), session_id).await?;
        tx.audit("auth.logout", Some(("session", session_id)), None).await?;
        tx.commit().await?;
        self.inner.auth_cache.evict(|p| p.session_id.as_deref() == Some(session_id));
        Ok(())
    }

    /// Resolves a bearer secret (session or API token) to its principal.
    pub async fn authenticate(&self, secret: &str) -> Result<Arc<Principal>> {
        let is_token = secret.starts_with(TOKEN_PREFIX);
        if !is_token && !secret.starts_with(SESSION_PREFIX) {
            return Err(Error::unauthorized("malformed credential: expected a Roost token (rst_…) or session"));
        }
        let hash = hash_secret(secret);
        let now = now_ms();
        if let Some((principal, last_used)) = self.inner.auth_cache.get(&hash) {
            if principal.expires_at.is_some_and(|at| at <= now) {
                return Err(expired(&principal));
            }
            if is_token && now - last_used >= TOUCH_EVERY_MS {
                self.touch_token(&hash, &principal, now);
            }
            return Ok(principal);
        }
        let (principal, stored_hash, last_used) = if is_token {
            let Some((token, user)) = self.store().token_by_hash(&hash).await? else {
                return Err(Error::unauthorized("unknown or revoked token"));
            };
            let principal = Principal {
                user_id: user.id.clone(),
                user_name: user.name.clone(),
                role: user.role(),
                method: AuthMethod::Token,
                scope: token.scope(),
                token_id: Some(token.id.clone()),
                token_name: Some(token.name.clone()),
                session_id: None,
                csrf_hash: None,
                expires_at: token.expires_at,
                project_id: token.project_id.clone(),
                user,
            };
            (principal, token.token_hash, token.last_used_at.unwrap_or(0))
        } else {
            let Some((session, user)) = self.store().session_by_hash(&hash).await? else {
                return Err(Error::unauthorized("unknown or ended session; log in again"));
            };
            let principal = Principal {
                user_id: user.id.clone(),
                user_name: user.name.clone(),
                role: user.role(),
                method: AuthMethod::Session,
                scope: Scope::Admin,
                token_id: None,
                token_name: None,
                session_id: Some(session.id.clone()),
                csrf_hash: Some(session.csrf_hash.clone()),
                expires_at: Some(session.expires_at),
                project_id: None,
                user,
            };
            (principal, session.token_hash, i64::MAX)
        };
        // The lookup was by hash; compare again in constant time all the same.
        if !bool::from(stored_hash.as_bytes().ct_eq(hash.as_bytes())) {
            return Err(Error::unauthorized("unknown or revoked token"));
        }
        if principal.user.disabled != 0 {
            return Err(Error::unauthorized(format!("user '{}' is disabled", principal.user_name)));
        }
        if principal.expires_at.is_some_and(|at| at <= now) {
            return Err(expired(&principal));
        }
        let principal = Arc::new(principal);
        self.inner.auth_cache.put(hash.clone(), principal.clone(), last_used);
        if is_token && now - last_used >= TOUCH_EVERY_MS {
            self.touch_token(&hash, &principal, now);
        }
        Ok(principal)
    }

    /// Checks the CSRF token a cookie-authenticated mutation sent.
    pub fn verify_csrf(&self, principal: &Principal, sent: Option<&str>) -> Result<()> {
        let expected = principal.csrf_hash.as_deref().unwrap_or_default();
        let ok = sent.is_some_and(|s| bool::from(hash_secret(s).as_bytes().ct_eq(expected.as_bytes())));
        if ok {
            Ok(())
        } else {
            Err(Error::new(
                ErrorCode::Forbidden,
                "missing or wrong X-CSRF-Token header (required with cookie sessions)",
            ))
        }
    }

    fn touch_token(&self, hash: &str, principal: &Principal, now: i64) {
        self.inner.auth_cache.mark_used(hash, now);
        let store = self.store().clone();
        let id = principal.token_id.clone().unwrap_or_default();
        tokio::spawn(async move {
            if let Err(err) = store.touch_token(&id, now).await {
                tracing::debug!(error = %err, token = %id, "could not record token use");
            }
        });
    }

    pub(crate) fn auth_cache(&self) -> &AuthCache {
        &self.inner.auth_cache
    }

    /// A receiver that changes whenever a credential may have been revoked or someone's
    /// rights changed (token deleted, session ended, user disabled or re-roled, a
    /// membership changed, a project deleted): what a long-lived response re-checks on.
    pub fn credential_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.auth_cache.changes()
    }

    /// What an event stream opened with `secret` may receive now: its principal (as
    /// any request would get it) and the projects it sees. Fails once the credential
    /// is revoked or expired or its user disabled.
    pub async fn event_stream_access(
        &self,
        secret: &str,
    ) -> Result<(Arc<Principal>, std::collections::HashSet<String>)> {
        let principal = self.authenticate(secret).await?;
        let projects = self.visible_project_ids(&principal).await?;
        Ok((principal, projects))
    }
}

fn expired(p: &Principal) -> Error {
    let at = p.expires_at.map(to_time).map(|t| t.to_rfc3339()).unwrap_or_default();
    match &p.token_name {
        Some(name) => Error::unauthorized(format!("token '{name}' expired at {at}")),
        None => Error::unauthorized(format!("session expired at {at}; log in again")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passwords_hash_and_verify() {
        let hash = hash_password("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse".into(), hash.clone()).await);
        assert!(!verify_password("wrong horse".into(), hash).await);
        assert!(!verify_password("x".into(), DUMMY_HASH.into()).await);
    }

    #[test]
    fn secrets_are_prefixed_and_distinct() {
        let a = new_secret(TOKEN_PREFIX);
        assert!(a.starts_with("rst_") && a.len() == 4 + SECRET_LEN);
        assert_ne!(a, new_secret(TOKEN_PREFIX));
        assert_eq!(hash_secret(&a).len(), 64);
    }
}
