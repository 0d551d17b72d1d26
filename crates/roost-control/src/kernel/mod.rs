//! The service kernel: the one way a change reaches the store. A service proves who may
//! make the change (an [`Authorized`] value, which only the access checks of this crate
//! hand out), writes its rows through a [`Change`], names its audit entry and its
//! events, and commits: rows, audit entry and events land in one transaction or not at
//! all, whichever door the request came through (REST, S3, E2B, a background task).
//! After the commit the event reader is woken, which fans the events out from the log.
//! Optimistic concurrency (`If-Match`) is checked inside the change too ([`etag`]).

pub mod etag;

use roost_store::WriteTx;
use roost_store::events::NewEvent;
use roost_store::now_ms;
use serde::Serialize;

use crate::events::Audience;
use crate::{Control, RequestContext, Result, audit};

/// Who makes a change, as the audit log records it: a user (and the API token used, if
/// any) or the server itself. Only this crate makes one, from an access check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    user_id: String,
    token_id: Option<String>,
}

impl Actor {
    pub(crate) fn user(user_id: impl Into<String>, token_id: Option<String>) -> Actor {
        Actor { user_id: user_id.into(), token_id }
    }

    /// The server acting on its own (bootstrap, a sandbox's TTL, a background task).
    pub(crate) fn system() -> Actor {
        Actor { user_id: audit::SYSTEM_ACTOR.to_string(), token_id: None }
    }

    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    pub(crate) fn audit_actor(&self) -> (String, Option<String>) {
        (self.user_id.clone(), self.token_id.clone())
    }
}

mod sealed {
    pub trait Sealed {}
}

/// Proof that an access check passed, carrying who passed it. Implemented only by this
/// crate's proof types ([`crate::policy::ProjectWrite`], [`crate::auth::AdminProof`],
/// [`crate::auth::OwnerProof`], [`SystemProof`]), each made only by the check it stands
/// for, so a front door cannot open a change without one.
pub trait Authorized: sealed::Sealed + Send + Sync {
    fn actor(&self) -> Actor;
}

/// The server acting on its own behalf.
#[derive(Debug, Clone)]
pub struct SystemProof(());

impl SystemProof {
    pub(crate) fn new() -> SystemProof {
        SystemProof(())
    }
}

impl sealed::Sealed for SystemProof {}
impl Authorized for SystemProof {
    fn actor(&self) -> Actor {
        Actor::system()
    }
}

/// Proof that its actor authenticated: a verified password at login, or any accepted
/// credential acting on the credential itself (logging out).
#[derive(Debug, Clone)]
pub struct AuthenticatedProof(Actor);

impl AuthenticatedProof {
    pub(crate) fn new(actor: Actor) -> AuthenticatedProof {
        AuthenticatedProof(actor)
    }
}

impl sealed::Sealed for AuthenticatedProof {}
impl Authorized for AuthenticatedProof {
    fn actor(&self) -> Actor {
        self.0.clone()
    }
}

impl sealed::Sealed for crate::policy::ProjectWrite {}
impl sealed::Sealed for crate::auth::AdminProof {}
impl sealed::Sealed for crate::auth::OwnerProof {}

/// A change in progress: a write transaction that also collects the change's audit entry
/// and events. Dropping it rolls everything back.
pub struct Change<'c> {
    control: &'c Control,
    tx: WriteTx,
    ctx: RequestContext,
    actor: Actor,
    events: Vec<NewEvent>,
}

impl Control {
    /// Opens a change made by whoever `proof` stands for.
    pub async fn change(&self, ctx: &RequestContext, proof: &(impl Authorized + ?Sized)) -> Result<Change<'_>> {
        let actor = if ctx.by_server { Actor::system() } else { proof.actor() };
        Ok(Change { control: self, tx: self.store().write().await?, ctx: ctx.clone(), actor, events: Vec::new() })
    }

    /// Opens a change the server makes on its own (status it observed, work it finished).
    pub async fn system_change(&self) -> Result<Change<'_>> {
        self.change(&RequestContext::default(), &SystemProof::new()).await
    }
}

impl Change<'_> {
    /// The transaction's connection, for the store's write functions.
    pub fn conn(&mut self) -> &mut roost_store::sqlx::AnyConnection {
        self.tx.conn()
    }

    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    /// Locks a row (`table` is one of ours) until the change ends, so what is read of it
    /// next is what the change's writes apply to; whether the row exists.
    pub async fn lock_row(&mut self, table: &'static str, id: &str) -> Result<bool> {
        Ok(self.tx.lock_row(table, id).await?)
    }

    /// Appends the change's audit entry (`action` like `token.create`), with a digest of
    /// `body` (secrets redacted), and marks the request as audited.
    pub async fn audit(
        &mut self,
        action: &str,
        resource: Option<(&str, &str)>,
        body: Option<&serde_json::Value>,
    ) -> Result<()> {
        audit::record_as(self.tx.conn(), &self.ctx, self.actor.audit_actor(), action, resource, body).await
    }

    /// Raises an event (`kind` like `token.created`) carrying `data`, the resource as
    /// the API shows it after the change. It is appended to the log at the commit.
    pub fn event<T: Serialize + ?Sized>(
        &mut self,
        kind: &str,
        resource_type: &str,
        resource_id: &str,
        data: &T,
        audience: Audience,
    ) {
        let data = serde_json::to_string(data).ok();
        self.push_event(kind, resource_type, resource_id, data, audience);
    }

    /// Raises an event without data (a deletion, or a change whose data the stream
    /// does not need).
    pub fn bare_event(&mut self, kind: &str, resource_type: &str, resource_id: &str, audience: Audience) {
        self.push_event(kind, resource_type, resource_id, None, audience);
    }

    fn push_event(
        &mut self,
        kind: &str,
        resource_type: &str,
        resource_id: &str,
        data: Option<String>,
        audience: Audience,
    ) {
        self.events.push(NewEvent {
            time: now_ms(),
            kind: kind.to_string(),
            resource_type: resource_type.to_string(),
            resource_id: resource_id.to_string(),
            audience: audience.to_stored(),
            data,
        });
    }

    /// Commits rows, audit entry and events together, then wakes the event reader.
    pub async fn commit(mut self) -> Result<()> {
        let backend = self.control.store().backend();
        roost_store::events::append(self.tx.conn(), backend, &self.events).await?;
        self.tx.commit().await?;
        if !self.events.is_empty() {
            self.control.events().wake();
        }
        Ok(())
    }
}
