//! API tokens: create (secret shown once), list, show, delete. A token is its owner's:
//! every query is limited to the caller's user id.

use chrono::Utc;
use roost_api::ids::IdKind;
use roost_api::tokens::{CreateTokenRequest, CreatedToken, Scope, Token, UpdateTokenRequest};
use roost_api::{ListParams, Page};
use roost_store::tokens::{SORT_KEYS, TokenRow};
use roost_store::{StoreError, now_ms, to_ms};

use crate::auth::{TOKEN_PREFIX, hash_secret, new_secret};
use crate::error::{Validator, check_name};
use crate::events::Audience;
use crate::list::list_query;
use crate::{Control, Error, Principal, RequestContext, Result};

/// Characters of the secret kept for display (`rst_` and 8 more).
const DISPLAY_PREFIX_LEN: usize = 12;

impl Control {
    pub async fn create_token(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        req: CreateTokenRequest,
    ) -> Result<CreatedToken> {
        let owner = principal.require_owner()?;
        let mut v = Validator::default();
        check_name(&mut v, "name", &req.name);
        let scope = req.scope.unwrap_or(Scope::Read);
        v.check(
            scope <= principal.scope,
            "scope",
            format!("cannot exceed the scope of the credential creating it ('{}')", principal.scope),
        );
        let now = now_ms();
        let expires_at = match (&req.expires_in, req.expires_at) {
            (Some(_), Some(_)) => {
                v.add("expires_in", "give either expires_in or expires_at, not both");
                None
            }
            (Some(text), None) => match humantime::parse_duration(text) {
                Ok(d) if d.as_secs() >= 60 => Some(now + d.as_millis() as i64),
                Ok(_) => {
                    v.add("expires_in", "must be at least 1m");
                    None
                }
                Err(_) => {
                    v.add("expires_in", format!("'{text}' is not a duration like 30d, 12h or 90m"));
                    None
                }
            },
            (None, Some(at)) => {
                v.check(at > Utc::now(), "expires_at", "must be in the future");
                Some(to_ms(at))
            }
            (None, None) => None,
        };
        // A token never outlives the session or token that created it.
        let expires_at = match (expires_at, principal.expires_at) {
            (Some(t), Some(limit)) if principal.token_id.is_some() => Some(t.min(limit)),
            (None, Some(limit)) if principal.token_id.is_some() => Some(limit),
            (t, _) => t,
        };
        v.finish()?;
        // A project restriction must name a project the caller may act in; a restricted
        // credential can only make tokens restricted to its own project.
        let project_id = match (req.project.as_deref().filter(|p| !p.is_empty()), &principal.project_id) {
            (Some(key), _) => Some(self.project_access(principal, key).await?.project.id),
            (None, Some(own)) => Some(own.clone()),
            (None, None) => None,
        };

        let secret = new_secret(TOKEN_PREFIX);
        let row = TokenRow {
            id: IdKind::Token.generate(),
            user_id: principal.user_id.clone(),
            name: req.name.clone(),
            prefix: secret[..DISPLAY_PREFIX_LEN].to_string(),
            token_hash: hash_secret(&secret),
            scope: scope.as_str().to_string(),
            created_at: now,
            expires_at,
            last_used_at: None,
            project_id,
        };
        let body = serde_json::to_value(&req).ok();
        let token = row.to_api();
        let mut change = self.change(ctx, &owner).await?;
        roost_store::tokens::insert(change.conn(), &row).await.map_err(|e| match e {
            StoreError::Conflict(_) => Error::conflict(format!("a token named '{}' already exists", req.name)),
            e => e.into(),
        })?;
        change.audit("token.create", Some(("token", &row.id)), body.as_ref()).await?;
        change.event("token.created", "token", &token.id, &token, Audience::User(token.user_id.clone()));
        change.commit().await?;
        Ok(CreatedToken { token, secret })
    }

    pub async fn list_tokens(&self, principal: &Principal, params: &ListParams) -> Result<Page<Token>> {
        let query = list_query(params, SORT_KEYS)?;
        let (rows, next_cursor) = self.store().list_tokens(&principal.user_id, &query).await?;
        Ok(Page { items: rows.iter().map(|r| self.token_api(r)).collect(), next_cursor })
    }

    /// A token of the caller's, by id or name.
    pub async fn get_token(&self, principal: &Principal, key: &str) -> Result<Token> {
        match self.store().token_by_key(&principal.user_id, key).await? {
            Some(row) => Ok(self.token_api(&row)),
            None => Err(Error::not_found("token", key)),
        }
    }

    /// Renames a token of the caller's (what it may do never changes).
    pub async fn update_token(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        key: &str,
        req: UpdateTokenRequest,
        if_match: Option<&str>,
    ) -> Result<Token> {
        let owner = principal.require_owner()?;
        let token = self.get_token(principal, key).await?;
        let mut v = Validator::default();
        if let Some(name) = &req.name {
            check_name(&mut v, "name", name);
        }
        v.finish()?;
        let body = serde_json::to_value(&req).ok();
        let mut change = self.change(ctx, &owner).await?;
        change.check_if_match("api_tokens", &token.id, if_match, self.get_token(principal, &token.id)).await?;
        let mut updated = token.clone();
        if let Some(name) = &req.name {
            roost_store::tokens::rename(change.conn(), &principal.user_id, &token.id, name).await.map_err(
                |e| match e {
                    StoreError::Conflict(_) => Error::conflict(format!("a token named '{name}' already exists")),
                    e => e.into(),
                },
            )?;
            updated.name = name.clone();
        }
        change.audit("token.update", Some(("token", &token.id)), body.as_ref()).await?;
        change.event("token.updated", "token", &token.id, &updated, Audience::User(token.user_id.clone()));
        change.commit().await?;
        self.get_token(principal, &token.id).await
    }

    /// Deletes (revokes) a token of the caller's; it stops working at once.
    pub async fn delete_token(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        key: &str,
        if_match: Option<&str>,
    ) -> Result<()> {
        let owner = principal.require_owner()?;
        let token = self.get_token(principal, key).await?;
        let mut change = self.change(ctx, &owner).await?;
        change.check_if_match("api_tokens", &token.id, if_match, self.get_token(principal, &token.id)).await?;
        if !roost_store::tokens::delete(change.conn(), &principal.user_id, &token.id).await? {
            return Err(Error::not_found("token", key));
        }
        change.audit("token.delete", Some(("token", &token.id)), None).await?;
        change.bare_event("token.deleted", "token", &token.id, Audience::User(token.user_id.clone()));
        change.commit().await?;
        self.auth_cache().evict(|p| p.token_id.as_deref() == Some(token.id.as_str()));
        Ok(())
    }

    /// The API view of a token, with its last use as this server saw it (the store's
    /// copy is written in the background, at most once a minute).
    fn token_api(&self, row: &TokenRow) -> Token {
        let mut token = row.to_api();
        let seen = self.auth_cache().last_used(&row.token_hash);
        if let Some(at) = seen.filter(|&at| Some(at) > row.last_used_at) {
            token.last_used_at = Some(roost_store::to_time(at));
        }
        token
    }
}
