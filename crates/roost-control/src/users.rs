//! Users: admins create, change, disable and remove them; everyone reads and edits
//! their own profile and changes their own password.

use roost_api::auth::Role;
use roost_api::ids::IdKind;
use roost_api::projects::DEFAULT_PROJECT;
use roost_api::users::{
    ChangePasswordRequest, CreateUserRequest, CreatedUser, ResetPasswordRequest, ResetPasswordResponse,
    UpdateUserRequest, UserDetails,
};
use roost_api::{FieldError, ListParams, Page};
use roost_store::users::{SORT_KEYS, UserRow};
use roost_store::{StoreError, now_ms, to_time};

use crate::auth::{hash_password, new_password, validate_password, verify_password};
use crate::error::{Validator, check_name};
use crate::events::Audience;
use crate::kernel::Authorized;
use crate::list::list_query;
use crate::{Control, Error, Principal, RequestContext, Result};

fn details(row: &UserRow) -> UserDetails {
    UserDetails { user: row.to_api(), disabled: row.disabled != 0, updated_at: to_time(row.updated_at) }
}

fn check_profile(v: &mut Validator, email: Option<&str>, display_name: Option<&str>) {
    if let Some(email) = email {
        let ok = email.len() <= 254 && email.split_once('@').is_some_and(|(a, b)| !a.is_empty() && b.contains('.'));
        v.check(ok, "email", "must be an address like alice@example.com");
    }
    if let Some(name) = display_name {
        v.check(name.chars().count() <= 100, "display_name", "must be at most 100 characters");
    }
}

impl Control {
    /// `me` stands for the caller; admins reach anyone, others only themselves (404 for
    /// anyone else: no existence leak).
    async fn visible_user(&self, p: &Principal, key: &str) -> Result<UserRow> {
        let key = if key == "me" { p.user_id.as_str() } else { key };
        let user = self.store().user_by_key(key).await?.ok_or_else(|| Error::not_found("user", key))?;
        if user.id != p.user_id && !p.sees_everything() {
            return Err(Error::not_found("user", key));
        }
        Ok(user)
    }

    pub async fn create_user(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        req: CreateUserRequest,
    ) -> Result<CreatedUser> {
        let proof = p.require_admin()?;
        let mut v = Validator::default();
        check_name(&mut v, "name", &req.name);
        v.check(req.name != "me", "name", "'me' is reserved");
        check_profile(&mut v, req.email.as_deref(), req.display_name.as_deref());
        if let Some(pw) = &req.password {
            v.check(pw.chars().count() >= 8, "password", "must be at least 8 characters");
        }
        v.finish()?;
        let role = req.role.unwrap_or(Role::Viewer);
        let project_keys = req.projects.clone().unwrap_or_else(|| vec![DEFAULT_PROJECT.to_string()]);
        let mut projects = Vec::new();
        for key in &project_keys {
            let project = self.store().project_by_key(key).await?.ok_or_else(|| Error::not_found("project", key))?;
            projects.push(project);
        }
        let (password, generated) = match req.password.clone() {
            Some(pw) => (pw, false),
            None => (new_password(), true),
        };
        let now = now_ms();
        let row = UserRow {
            id: IdKind::User.generate(),
            name: req.name.clone(),
            email: req.email.clone(),
            display_name: req.display_name.clone(),
            role: role.as_str().into(),
            password_hash: hash_password(password.clone()).await?,
            disabled: 0,
            created_at: now,
            updated_at: now,
        };
        let body = serde_json::to_value(&req).ok();
        let member_role = role.min(Role::Operator);
        let mut tx = self.change(ctx, &proof).await?;
        roost_store::users::insert(tx.conn(), &row).await.map_err(|e| match e {
            StoreError::Conflict(_) => Error::conflict(format!("a user named '{}' already exists", req.name)),
            e => e.into(),
        })?;
        for project in &projects {
            roost_store::projects::upsert_member(tx.conn(), &project.id, &row.id, member_role.as_str(), now).await?;
        }
        tx.audit("user.create", Some(("user", &row.id)), body.as_ref()).await?;
        let user = row.to_api();
        tx.event("user.created", "user", &user.id, &user, Audience::Admins);
        tx.commit().await?;
        Ok(CreatedUser { user, password: generated.then_some(password) })
    }

    pub async fn list_users(&self, p: &Principal, params: &ListParams) -> Result<Page<UserDetails>> {
        if !p.sees_everything() {
            // Everyone else sees exactly themselves.
            let me = self.visible_user(p, "me").await?;
            return Ok(Page { items: vec![details(&me)], next_cursor: None });
        }
        let query = list_query(params, SORT_KEYS)?;
        let (rows, next_cursor) = self.store().list_users(&query).await?;
        Ok(Page { items: rows.iter().map(details).collect(), next_cursor })
    }

    pub async fn get_user(&self, p: &Principal, key: &str) -> Result<UserDetails> {
        Ok(details(&self.visible_user(p, key).await?))
    }

    /// Own profile fields for everyone; the role only by admins (never demoting the last
    /// admin).
    pub async fn update_user(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        key: &str,
        req: UpdateUserRequest,
        if_match: Option<&str>,
    ) -> Result<UserDetails> {
        let user = self.visible_user(p, key).await?;
        // Others' profiles and anyone's role are the admins' business.
        let proof: Box<dyn Authorized> = if user.id != p.user_id || req.role.is_some() {
            Box::new(p.require_admin()?)
        } else {
            Box::new(p.require_owner()?)
        };
        let mut v = Validator::default();
        check_profile(&mut v, req.email.clone().flatten().as_deref(), req.display_name.clone().flatten().as_deref());
        v.finish()?;
        let body = serde_json::to_value(&req).ok();
        let mut tx = self.change(ctx, proof.as_ref()).await?;
        tx.check_if_match("users", &user.id, if_match, self.get_user(p, &user.id)).await?;
        if user.role() == Role::Admin && req.role.is_some_and(|r| r != Role::Admin) {
            self.keep_an_admin(tx.conn()).await?;
        }
        roost_store::users::update_profile(
            tx.conn(),
            &user.id,
            req.display_name.as_ref().map(|d| d.as_deref()),
            req.email.as_ref().map(|e| e.as_deref()),
            req.role.map(Role::as_str),
            now_ms(),
        )
        .await?;
        tx.audit("user.update", Some(("user", &user.id)), body.as_ref()).await?;
        let fresh =
            roost_store::users::get_in(tx.conn(), &user.id).await?.ok_or_else(|| Error::not_found("user", key))?;
        tx.event("user.updated", "user", &user.id, &fresh.to_api(), Audience::Admins);
        tx.commit().await?;
        self.forget_cached_credentials(&user.id);
        self.get_user(p, &user.id).await
    }

    /// Disabling ends the user's sessions and stops their tokens at once.
    pub async fn set_user_disabled(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        key: &str,
        disabled: bool,
    ) -> Result<UserDetails> {
        let user = self.visible_user(p, key).await?;
        let proof = p.require_admin()?;
        if disabled && user.id == p.user_id {
            return Err(Error::conflict("you cannot disable yourself"));
        }
        let mut tx = self.change(ctx, &proof).await?;
        if disabled && user.role() == Role::Admin {
            self.keep_an_admin(tx.conn()).await?;
        }
        roost_store::users::set_disabled(tx.conn(), &user.id, disabled, now_ms()).await?;
        if disabled {
            roost_store::sessions::delete_for_user(tx.conn(), &user.id, None).await?;
        }
        let action = if disabled { "user.disable" } else { "user.enable" };
        tx.audit(action, Some(("user", &user.id)), None).await?;
        tx.bare_event(&format!("{action}d"), "user", &user.id, Audience::Admins);
        tx.commit().await?;
        self.forget_cached_credentials(&user.id);
        self.get_user(p, &user.id).await
    }

    pub async fn delete_user(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        key: &str,
        if_match: Option<&str>,
    ) -> Result<()> {
        let user = self.visible_user(p, key).await?;
        let proof = p.require_admin()?;
        if user.id == p.user_id {
            return Err(Error::conflict("you cannot delete yourself"));
        }
        let mut tx = self.change(ctx, &proof).await?;
        tx.check_if_match("users", &user.id, if_match, self.get_user(p, &user.id)).await?;
        if user.role() == Role::Admin {
            self.keep_an_admin(tx.conn()).await?;
        }
        roost_store::users::delete(tx.conn(), &user.id).await?;
        tx.audit("user.delete", Some(("user", &user.id)), None).await?;
        tx.bare_event("user.deleted", "user", &user.id, Audience::Admins);
        tx.commit().await?;
        self.forget_cached_credentials(&user.id);
        Ok(())
    }

    /// Admins set or generate someone's password; their sessions end.
    pub async fn reset_password(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        key: &str,
        req: ResetPasswordRequest,
    ) -> Result<ResetPasswordResponse> {
        let user = self.visible_user(p, key).await?;
        let proof = p.require_admin()?;
        if let Some(pw) = &req.password {
            validate_password(pw)?;
        }
        let (password, generated) = match req.password {
            Some(pw) => (pw, false),
            None => (new_password(), true),
        };
        let hash = hash_password(password.clone()).await?;
        let mut tx = self.change(ctx, &proof).await?;
        roost_store::users::set_password(tx.conn(), &user.id, &hash, now_ms()).await?;
        roost_store::sessions::delete_for_user(
            tx.conn(),
            &user.id,
            p.session_id.as_deref().filter(|_| user.id == p.user_id),
        )
        .await?;
        tx.audit("user.password.reset", Some(("user", &user.id)), None).await?;
        tx.commit().await?;
        self.auth_cache().evict(|q| q.user_id == user.id && q.session_id.is_some());
        Ok(ResetPasswordResponse { password: generated.then_some(password) })
    }

    /// Changes the caller's own password after checking the current one; their other
    /// sessions end.
    pub async fn change_own_password(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        req: ChangePasswordRequest,
    ) -> Result<()> {
        let user = self.visible_user(p, "me").await?;
        let proof = p.require_owner()?;
        if !verify_password(req.current_password.clone(), user.password_hash.clone()).await {
            return Err(Error::validation(vec![FieldError {
                field: "current_password".into(),
                message: "is not your current password".into(),
            }]));
        }
        validate_password(&req.new_password).map_err(|_| {
            Error::validation(vec![FieldError {
                field: "new_password".into(),
                message: "must be at least 8 characters".into(),
            }])
        })?;
        let hash = hash_password(req.new_password.clone()).await?;
        let mut tx = self.change(ctx, &proof).await?;
        roost_store::users::set_password(tx.conn(), &user.id, &hash, now_ms()).await?;
        let ended = roost_store::sessions::delete_for_user(tx.conn(), &user.id, p.session_id.as_deref()).await?;
        tx.audit("user.password.change", Some(("user", &user.id)), None).await?;
        tx.commit().await?;
        self.auth_cache().evict(|q| q.session_id.as_ref().is_some_and(|s| ended.contains(s)));
        Ok(())
    }

    /// Refuses a change that would leave no enabled admin.
    async fn keep_an_admin(&self, conn: &mut roost_store::sqlx::AnyConnection) -> Result<()> {
        if roost_store::users::enabled_admins(conn).await? <= 1 {
            return Err(Error::conflict("this is the last enabled admin; make another admin first"));
        }
        Ok(())
    }
}
