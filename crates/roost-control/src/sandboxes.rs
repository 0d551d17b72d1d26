//! Sandboxes: instances with a time to live, created and driven through the
//! E2B-compatible API. A sandbox is an instance (kind and template passed through, so a
//! VM driver serves `--type vm` sandboxes once it implements exec, files and pause) plus
//! a row with its key, TTL and usage. Processes and files are reached through the
//! driver's exec and copy operations: nothing runs inside the sandbox on our behalf.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use roost_api::ErrorCode;
use roost_api::auth::AuthMethod;
use roost_api::ids::IdKind;
use roost_api::instances::InstanceStatus;
use roost_api::projects::DEFAULT_PROJECT;
use roost_api::sandboxes::{
    CreateSandboxKeyRequest, CreatedSandboxKey, DEFAULT_CREATES_PER_MINUTE, DEFAULT_MAX_SANDBOXES, SandboxKey,
};
use roost_api::tokens::Scope;
use roost_store::now_ms;
use roost_store::sandboxes::{SandboxKeyRow, SandboxRow};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::broadcast;

use crate::auth::hash_secret;
use crate::error::{Validator, check_name};
use crate::images::node_error;
use crate::kernel::{Authorized, SystemProof};
use crate::policy::ProjectWrite;
use crate::tasks::{BackgroundTask, TaskSpec};
use crate::{Control, Error, Principal, RequestContext, Result};

/// Longest a sandbox may live without being extended (E2B's own cap is 24 h).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a resolved sandbox key is trusted before the store is asked again (as API
/// tokens and S3 keys): revoking through this server evicts it at once; this bounds how
/// long another server of the same store may still accept it.
const KEY_CACHE_TTL: Duration = Duration::from_secs(10);
/// The audit `source` of what a sandbox's TTL does (ending it, deleting its instance).
pub const TTL_SOURCE: &str = "sandbox-ttl";
/// A sandbox's size unless the template says otherwise.
pub const SANDBOX_CPUS: f64 = 1.0;
pub const SANDBOX_MEMORY: u64 = 512 << 20;

/// What a running sandbox process emits.
#[derive(Debug, Clone)]
pub enum ProcessEvent {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    /// The exit code (128 + signal when killed).
    End(i32),
}

/// How much of each stream of a process is kept for a re-attach to replay.
pub const PROCESS_REPLAY_BYTES: usize = 64 * 1024;
/// Ended processes kept per sandbox, so an attach after the end still gets the tail of
/// the output and the exit code.
const ENDED_KEPT: usize = 16;

/// A process started in a sandbox, until it ends (and a few after that, see `ENDED_KEPT`).
pub struct SandboxProcess {
    pub pid: u32,
    pub tag: Option<String>,
    pub cmd: String,
    pub args: Vec<String>,
    pub envs: BTreeMap<String, String>,
    pub cwd: Option<String>,
    /// Unix milliseconds.
    pub started_at: i64,
    /// Runs on a terminal: its output (both streams) arrives as `Stdout`.
    pub pty: bool,
    signaller: Option<roost_node::api::Signaller>,
    resizer: Option<roost_node::Resizer>,
    events: broadcast::Sender<ProcessEvent>,
    stdin: tokio::sync::Mutex<Option<Box<dyn tokio::io::AsyncWrite + Send + Unpin>>>,
    /// The recent output and, once it ended, the exit code. Events are sent while this
    /// is held, so a replay plus a subscription taken under it miss and repeat nothing.
    recent: Mutex<Recent>,
}

/// The tail of a process's output, in the order it was printed, bounded per stream.
#[derive(Default)]
pub struct Recent {
    /// (stderr?, bytes), oldest first.
    chunks: VecDeque<(bool, Vec<u8>)>,
    sizes: [usize; 2],
    pub exit: Option<i32>,
}

impl Recent {
    pub(crate) fn push(&mut self, stderr: bool, data: &[u8], limit: usize) {
        let s = stderr as usize;
        let data = &data[data.len().saturating_sub(limit)..];
        self.chunks.push_back((stderr, data.to_vec()));
        self.sizes[s] += data.len();
        // Drop (or cut) this stream's oldest chunks until it fits again.
        while self.sizes[s] > limit {
            let over = self.sizes[s] - limit;
            let i = self.chunks.iter().position(|(e, _)| *e == stderr).expect("a chunk of the stream");
            let chunk = &mut self.chunks[i].1;
            if chunk.len() <= over {
                self.sizes[s] -= chunk.len();
                self.chunks.remove(i);
            } else {
                chunk.drain(..over);
                self.sizes[s] -= over;
            }
        }
    }

    /// The kept output as events, oldest first (and the end, if it ended).
    pub fn events(&self) -> Vec<ProcessEvent> {
        let mut out: Vec<ProcessEvent> = self
            .chunks
            .iter()
            .map(|(e, d)| if *e { ProcessEvent::Stderr(d.clone()) } else { ProcessEvent::Stdout(d.clone()) })
            .collect();
        if let Some(code) = self.exit {
            out.push(ProcessEvent::End(code));
        }
        out
    }
}

impl SandboxProcess {
    /// New events from now on (the E2B `Connect`: output from the moment it attaches).
    pub fn subscribe(&self) -> broadcast::Receiver<ProcessEvent> {
        self.events.subscribe()
    }

    /// What it printed recently (up to `PROCESS_REPLAY_BYTES` per stream, with the end
    /// if it ended) and everything after: Roost's own re-attach.
    pub fn attach(&self) -> (Vec<ProcessEvent>, broadcast::Receiver<ProcessEvent>) {
        let recent = self.recent.lock().expect("recent");
        (recent.events(), self.events.subscribe())
    }

    /// The exit code, once it ended.
    pub fn exit_code(&self) -> Option<i32> {
        self.recent.lock().expect("recent").exit
    }

    fn emit(&self, event: ProcessEvent) {
        let mut recent = self.recent.lock().expect("recent");
        match &event {
            ProcessEvent::Stdout(d) => recent.push(false, d, PROCESS_REPLAY_BYTES),
            ProcessEvent::Stderr(d) => recent.push(true, d, PROCESS_REPLAY_BYTES),
            ProcessEvent::End(code) => recent.exit = Some(*code),
        }
        let _ = self.events.send(event);
    }

    pub async fn write_stdin(&self, data: &[u8]) -> Result<()> {
        let mut stdin = self.stdin.lock().await;
        let Some(w) = stdin.as_mut() else { return Err(Error::conflict("the process's stdin is closed")) };
        w.write_all(data).await.map_err(|e| Error::conflict(format!("writing stdin: {e}")))?;
        w.flush().await.map_err(|e| Error::conflict(format!("writing stdin: {e}")))
    }

    pub async fn close_stdin(&self) {
        self.stdin.lock().await.take();
    }

    /// Sets the terminal's size (a process started with a pty).
    pub fn resize(&self, rows: u16, cols: u16) -> Result<()> {
        let resize = self.resizer.as_ref().ok_or_else(|| Error::conflict("the process has no terminal to resize"))?;
        resize(rows, cols).map_err(|e| Error::conflict(e.to_string()))
    }

    pub fn signal(&self, sig: i32) -> Result<()> {
        let signal = self
            .signaller
            .as_ref()
            .ok_or_else(|| Error::unprocessable("this sandbox's driver cannot signal processes"))?;
        signal(sig).map_err(|e| Error::conflict(e.to_string()))
    }
}

/// The sandbox side of the control plane's state.
#[derive(Default)]
pub(crate) struct Sandboxes {
    /// Running processes per sandbox, by the pid we gave them.
    processes: Mutex<HashMap<String, BTreeMap<u32, Arc<SandboxProcess>>>>,
    /// The last few ended processes per sandbox, newest last (for a late attach).
    ended: Mutex<HashMap<String, VecDeque<Arc<SandboxProcess>>>>,
    next_pid: AtomicU32,
    /// Recent creations per key, for the per-minute limit.
    creations: Mutex<HashMap<String, VecDeque<Instant>>>,
    /// Authenticated keys, by the hash of their secret, with when they were resolved:
    /// trusted for `KEY_CACHE_TTL`, evicted at once when revoked through this server.
    keys: Mutex<HashMap<String, CachedKey>>,
    /// Code interpreter contexts per sandbox, by context id.
    kernels: Mutex<HashMap<String, BTreeMap<String, Arc<Kernel>>>>,
    /// The warm pool (`--sandbox-pool`).
    pub(crate) pool: crate::sandbox_pool::Pool,
}

/// A resolved sandbox key: when it was resolved, the key, the principal it acts as.
type CachedKey = (Instant, SandboxKeyRow, Arc<Principal>);

/// What the E2B API needs of a sandbox, its row plus its state.
#[derive(Debug, Clone)]
pub struct SandboxView {
    pub row: SandboxRow,
    pub paused: bool,
    /// Its instance's type: `container` or `vm`.
    pub kind: String,
    /// Present when whoever holds the view may change the sandbox (it was resolved by
    /// [`Control::writable_sandbox`]); the changes it makes are opened with it.
    pub(crate) write: Option<ProjectWrite>,
}

impl SandboxView {
    /// Commands and file operations run in the sandbox, and a paused one runs nothing
    /// until resumed: refuse at once (409) rather than wait for the resume.
    pub fn not_paused(&self) -> Result<()> {
        if self.paused {
            return Err(Error::conflict(format!("sandbox '{}' is paused; resume it first", self.row.id)));
        }
        Ok(())
    }
}

fn key_api(row: &SandboxKeyRow) -> SandboxKey {
    SandboxKey {
        id: row.id.clone(),
        name: row.name.clone(),
        prefix: row.prefix.clone(),
        project_id: row.project_id.clone(),
        max_sandboxes: row.max_sandboxes as u32,
        creates_per_minute: row.creates_per_minute as u32,
        created_at: roost_store::to_time(row.created_at),
        expires_at: row.expires_at.map(roost_store::to_time),
    }
}

/// A key that has ended (made with an expiring token) is refused like an unknown one.
fn check_key_expiry(found: (SandboxKeyRow, Arc<Principal>)) -> Result<(SandboxKeyRow, Arc<Principal>)> {
    match found.0.expires_at {
        Some(at) if at <= now_ms() => {
            Err(Error::unauthorized("this API key has expired (it ended with the token that made it)"))
        }
        _ => Ok(found),
    }
}

/// The server acting for `user` in one project (the TTL reaper, the pool's cleanup).
pub(crate) fn acting_as(
    user: roost_store::users::UserRow,
    project_id: &str,
    token_id: Option<String>,
    why: &str,
) -> Principal {
    Principal {
        user_id: user.id.clone(),
        user_name: user.name.clone(),
        role: user.role(),
        method: AuthMethod::Token,
        scope: Scope::Write,
        token_id,
        token_name: Some(why.into()),
        session_id: None,
        csrf_hash: None,
        expires_at: None,
        project_id: Some(project_id.to_string()),
        user,
    }
}

/// The parameters of a new sandbox (the E2B `NewSandbox` body, minus what Roost ignores).
#[derive(Debug, Clone, Default)]
pub struct NewSandbox {
    pub template: String,
    /// Without a key: the project to run in (default `default`).
    pub project: Option<String>,
    pub timeout: Option<Duration>,
    pub metadata: BTreeMap<String, String>,
    pub env: BTreeMap<String, String>,
    /// `container` (default) or `vm`.
    pub kind: Option<String>,
}

/// Sandbox TTLs: checked every second, so a sandbox lives about as long as it was given.
pub(crate) const SANDBOX_EXPIRY: TaskSpec = TaskSpec {
    name: "sandbox_expiry",
    description: "Kills the sandboxes whose timeout has run out (audited as system, source sandbox-ttl)",
    period: Duration::from_secs(1),
};

pub(crate) struct SandboxExpiry(pub(crate) Control);

impl BackgroundTask for SandboxExpiry {
    async fn activate(&mut self) -> Result<serde_json::Value> {
        self.0.expire_sandboxes().await
    }
}

impl Control {
    fn sandboxes(&self) -> &Sandboxes {
        &self.inner.sandboxes
    }

    /// Makes a key for the E2B API, acting in `project` with the caller's rights there.
    pub async fn create_sandbox_key(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        req: CreateSandboxKeyRequest,
    ) -> Result<CreatedSandboxKey> {
        let access = self.project_access(p, req.project.as_deref().unwrap_or(DEFAULT_PROJECT)).await?;
        let proof = access.require_write()?;
        let mut v = Validator::default();
        check_name(&mut v, "name", &req.name);
        let max = req.max_sandboxes.unwrap_or(DEFAULT_MAX_SANDBOXES);
        v.check((1..=10_000).contains(&max), "max_sandboxes", "must be between 1 and 10000");
        let rate = req.creates_per_minute.unwrap_or(DEFAULT_CREATES_PER_MINUTE);
        v.check((1..=100_000).contains(&rate), "creates_per_minute", "must be between 1 and 100000");
        v.finish()?;
        let mut raw = [0u8; 20];
        getrandom::fill(&mut raw).map_err(|e| Error::internal(format!("random source: {e}")))?;
        let secret = format!("e2b_{}", hex::encode(raw));
        // A key made with an expiring token ends with it (its project is the token's
        // already: `project_access` refuses any other).
        let (expires_at, _) = p.credential_limits();
        let row = SandboxKeyRow {
            id: IdKind::SandboxKey.generate(),
            project_id: access.project.id.clone(),
            user_id: p.user_id.clone(),
            name: req.name.clone(),
            prefix: secret[..10].to_string(),
            key_hash: hash_secret(&secret),
            max_sandboxes: max as i64,
            creates_per_minute: rate as i64,
            created_at: now_ms(),
            revoked_at: None,
            expires_at,
        };
        let body = serde_json::to_value(&req).ok();
        let mut tx = self.change(ctx, &proof).await?;
        roost_store::sandboxes::insert_key(tx.conn(), &row).await?;
        tx.audit("sandbox_key.create", Some(("sandbox_key", &row.id)), body.as_ref()).await?;
        tx.commit().await?;
        Ok(CreatedSandboxKey { key: key_api(&row), secret })
    }

    /// A live key of a project the principal sees.
    pub async fn get_sandbox_key(&self, p: &Principal, id: &str) -> Result<SandboxKey> {
        let key = self.store().sandbox_key(id).await?.ok_or_else(|| Error::not_found("sandbox key", id))?;
        self.project_access(p, &key.project_id).await.map_err(|_| Error::not_found("sandbox key", id))?;
        Ok(key_api(&key))
    }

    /// Renames a key or changes its limits; the next create sees them.
    pub async fn update_sandbox_key(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        id: &str,
        req: roost_api::sandboxes::UpdateSandboxKeyRequest,
        if_match: Option<&str>,
    ) -> Result<SandboxKey> {
        let key = self.store().sandbox_key(id).await?.ok_or_else(|| Error::not_found("sandbox key", id))?;
        let proof = self
            .project_access(p, &key.project_id)
            .await
            .map_err(|_| Error::not_found("sandbox key", id))?
            .require_write()?;
        let mut v = Validator::default();
        if let Some(name) = &req.name {
            check_name(&mut v, "name", name);
        }
        if let Some(max) = req.max_sandboxes {
            v.check((1..=10_000).contains(&max), "max_sandboxes", "must be between 1 and 10000");
        }
        if let Some(rate) = req.creates_per_minute {
            v.check((1..=100_000).contains(&rate), "creates_per_minute", "must be between 1 and 100000");
        }
        v.finish()?;
        let body = serde_json::to_value(&req).ok();
        let mut tx = self.change(ctx, &proof).await?;
        tx.check_if_match("sandbox_keys", &key.id, if_match, self.get_sandbox_key(p, &key.id)).await?;
        let fresh = SandboxKeyRow {
            name: req.name.clone().unwrap_or_else(|| key.name.clone()),
            max_sandboxes: req.max_sandboxes.map(i64::from).unwrap_or(key.max_sandboxes),
            creates_per_minute: req.creates_per_minute.map(i64::from).unwrap_or(key.creates_per_minute),
            ..key.clone()
        };
        roost_store::sandboxes::update_key(
            tx.conn(),
            &key.id,
            &fresh.name,
            fresh.max_sandboxes,
            fresh.creates_per_minute,
        )
        .await?;
        tx.audit("sandbox_key.update", Some(("sandbox_key", &key.id)), body.as_ref()).await?;
        tx.event(
            "sandbox_key.updated",
            "sandbox_key",
            &key.id,
            &key_api(&fresh),
            crate::events::Audience::Project(key.project_id.clone()),
        );
        tx.commit().await?;
        // The cached key carries the limits: the next use reads them again.
        self.sandboxes().keys.lock().expect("keys").remove(&key.key_hash);
        self.get_sandbox_key(p, &key.id).await
    }

    pub async fn list_sandbox_keys(
        &self,
        p: &Principal,
        params: &roost_api::ProjectListParams,
    ) -> Result<roost_api::Page<SandboxKey>> {
        let query = crate::list::list_query(&params.paging(), roost_store::list::CREATED_OR_NAME)?;
        let project_id = match &params.project {
            Some(key) => Some(self.project_access(p, key).await?.project.id),
            None => None,
        };
        let (rows, next_cursor) =
            self.store().sandbox_keys_page(&self.project_scope(p), project_id.as_deref(), &query).await?;
        Ok(roost_api::Page { items: rows.iter().map(key_api).collect(), next_cursor })
    }

    /// The key and the principal it acts as (its creator, write scope, its project only).
    pub async fn authenticate_sandbox_key(&self, secret: &str) -> Result<(SandboxKeyRow, Arc<Principal>)> {
        let bad = || Error::unauthorized("Invalid API key");
        if !secret.starts_with("e2b_") || secret.len() != 44 {
            return Err(bad());
        }
        let hash = hash_secret(secret);
        if let Some(found) = self.cached_sandbox_key(&hash) {
            return check_key_expiry(found);
        }
        let key = self.store().sandbox_key_by_hash(&hash).await?.ok_or_else(bad)?;
        check_key_expiry(self.key_principal(key, bad).await?)
    }

    /// The key that created a sandbox and the principal it acts as, for envd requests
    /// that carry the sandbox's access token instead of the key.
    pub async fn sandbox_key_principal(&self, key_id: &str) -> Result<(SandboxKeyRow, Arc<Principal>)> {
        let revoked = || Error::unauthorized("the sandbox's key was revoked");
        let key = self.store().sandbox_key(key_id).await?.ok_or_else(revoked)?;
        if let Some(found) = self.cached_sandbox_key(&key.key_hash) {
            return check_key_expiry(found);
        }
        check_key_expiry(self.key_principal(key, revoked).await?)
    }

    fn cached_sandbox_key(&self, hash: &str) -> Option<(SandboxKeyRow, Arc<Principal>)> {
        let keys = self.sandboxes().keys.lock().expect("keys");
        let (at, key, principal) = keys.get(hash)?;
        (at.elapsed() < KEY_CACHE_TTL).then(|| (key.clone(), principal.clone()))
    }

    /// Drops a user's sandbox keys from the cache (see `forget_cached_credentials`).
    pub(crate) fn forget_sandbox_keys_of(&self, user_id: &str) {
        self.sandboxes().keys.lock().expect("keys").retain(|_, (_, key, _)| key.user_id != user_id);
    }

    /// Revokes a sandbox key: E2B requests with it (and with the access tokens of its
    /// sandboxes) are refused from now on; its sandboxes run on until killed or timed out.
    /// Its owner or an admin may; other members who see it get 403.
    pub async fn revoke_sandbox_key(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        id: &str,
        if_match: Option<&str>,
    ) -> Result<()> {
        let key = self
            .store()
            .list_sandbox_keys(&self.project_scope(p))
            .await?
            .into_iter()
            .find(|k| k.id == id)
            .ok_or_else(|| Error::not_found("sandbox key", id))?;
        let access = self.project_access(p, &key.project_id).await?;
        if key.user_id != p.user_id && access.role != roost_api::auth::Role::Admin {
            return Err(Error::forbidden(format!(
                "sandbox key '{}' is another user's; its owner or an admin may revoke it",
                key.name
            )));
        }
        // Its owner or an admin (checked above), with a credential that may write.
        let proof = p.require_owner()?;
        let mut tx = self.change(ctx, &proof).await?;
        tx.check_if_match("sandbox_keys", &key.id, if_match, self.get_sandbox_key(p, &key.id)).await?;
        if !roost_store::sandboxes::revoke_key(tx.conn(), &key.id, now_ms()).await? {
            return Err(Error::not_found("sandbox key", id));
        }
        tx.audit("sandbox_key.delete", Some(("sandbox_key", &key.id)), None).await?;
        tx.commit().await?;
        self.sandboxes().keys.lock().expect("keys").retain(|_, (_, k, _)| k.id != key.id);
        Ok(())
    }

    /// The principal a key acts as (its creator, write scope, its project only, until the
    /// key expires), cached by the key's hash; a disabled user's key acts no more.
    async fn key_principal(
        &self,
        key: SandboxKeyRow,
        refuse: impl Fn() -> Error,
    ) -> Result<(SandboxKeyRow, Arc<Principal>)> {
        let user = self.store().user_by_id(&key.user_id).await?.ok_or_else(&refuse)?;
        if user.disabled != 0 {
            return Err(refuse());
        }
        let why = format!("sandbox key {}", key.name);
        let mut principal = acting_as(user, &key.project_id, Some(key.id.clone()), &why);
        principal.expires_at = key.expires_at;
        let principal = Arc::new(principal);
        let mut keys = self.sandboxes().keys.lock().expect("keys");
        if keys.len() > 10_000 {
            keys.retain(|_, (at, _, _)| at.elapsed() < KEY_CACHE_TTL);
        }
        keys.insert(key.key_hash.clone(), (Instant::now(), key.clone(), principal.clone()));
        Ok((key, principal))
    }

    /// The key's limits: sandboxes alive at once, creations per minute.
    async fn check_key_limits(&self, key: &SandboxKeyRow) -> Result<()> {
        if self.store().live_sandbox_count_of_key(&key.id).await? >= key.max_sandboxes {
            let mut e = Error::new(
                ErrorCode::RateLimited,
                format!("this key may run {} sandboxes at once; kill one first", key.max_sandboxes),
            );
            e.retry_after = Some(Duration::from_secs(1));
            return Err(e);
        }
        {
            let mut creations = self.sandboxes().creations.lock().expect("creations");
            let recent = creations.entry(key.id.clone()).or_default();
            let now = Instant::now();
            while recent.front().is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60)) {
                recent.pop_front();
            }
            if recent.len() as i64 >= key.creates_per_minute {
                let wait = Duration::from_secs(60) - now.duration_since(*recent.front().expect("non-empty"));
                return Err(Error::rate_limited(wait));
            }
            recent.push_back(now);
        }
        Ok(())
    }

    /// Creates a sandbox and returns once its instance runs.
    pub async fn create_sandbox(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        key: Option<&SandboxKeyRow>,
        req: NewSandbox,
    ) -> Result<SandboxView> {
        let mut t = crate::timing::Steps::new("sandbox create");
        let timeout = req.timeout.unwrap_or(DEFAULT_TIMEOUT);
        if timeout.is_zero() || timeout > MAX_TIMEOUT {
            return Err(Error::validation(vec![roost_api::FieldError {
                field: "timeout".into(),
                message: "must be between 1 second and 24 hours".into(),
            }]));
        }
        let project = match key {
            Some(k) => k.project_id.as_str(),
            None => req.project.as_deref().unwrap_or(DEFAULT_PROJECT),
        };
        let proof = self.project_access(p, project).await?.require_write()?;
        let project_id = proof.project.id.clone();
        let kind = req.kind.clone().unwrap_or_else(|| "container".into());
        if kind != "container" && kind != "vm" {
            return Err(Error::validation(vec![roost_api::FieldError {
                field: "type".into(),
                message: "must be container or vm".into(),
            }]));
        }
        if let Some(key) = key {
            self.check_key_limits(key).await?;
        }
        t.step("access and limits");
        // The template's image in this project (or a builtin one); builtin templates are
        // built on first use, before the instance waits on them.
        let image = self.prepare_template(p, &project_id, &req.template).await?;
        t.step("template");
        // A frozen sandbox from the warm pool when there is one; env vars are fixed when
        // an instance starts, so a create that sets them is always cold. The pool holds
        // containers only: a VM sandbox always starts cold. Pools are per image, not per
        // name: a name that comes to mean another image never hands out the old one.
        let pool = crate::sandbox_pool::PoolKey::new(&project_id, &image);
        let pooled = if kind == "vm" {
            None
        } else if req.env.is_empty() {
            self.take_pooled(ctx, p, &pool).await
        } else {
            self.note_pool_miss(&pool);
            None
        };
        let from_pool = pooled.is_some();
        t.step("pool");
        let (id, instance_id) = match pooled {
            Some(pooled) => (pooled.id, pooled.instance_id),
            None => {
                let id = IdKind::Sandbox.generate();
                let mut request =
                    crate::sandbox_pool::sandbox_instance_request(&id, &image.id, &project_id, req.env.clone());
                request.kind = Some(kind.clone());
                let (instance, _) = self.create_instance(ctx, p, request).await.map_err(|e| {
                    if e.code == ErrorCode::ValidationFailed { Error::not_found("template", &req.template) } else { e }
                })?;
                (id, instance.id)
            }
        };
        t.step("instance");
        let now = now_ms();
        let row = SandboxRow {
            id: id.clone(),
            project_id: project_id.clone(),
            key_id: key.map(|k| k.id.clone()),
            instance_id: instance_id.clone(),
            template: req.template.clone(),
            metadata: serde_json::to_string(&req.metadata).unwrap_or_else(|_| "{}".into()),
            cpus_milli: (SANDBOX_CPUS * 1000.0) as i64,
            memory_bytes: SANDBOX_MEMORY as i64,
            started_at: now,
            expires_at: now + timeout.as_millis() as i64,
            ended_at: None,
            commands: 0,
        };
        let body =
            serde_json::json!({"template": req.template, "timeout_secs": timeout.as_secs(), "metadata": req.metadata});
        let mut tx = self.change(ctx, &proof).await?;
        roost_store::sandboxes::insert(tx.conn(), &row).await?;
        if from_pool {
            roost_store::instances::set_creator(tx.conn(), &instance_id, &p.user_id, now).await?;
            roost_store::instances::set_status(tx.conn(), &instance_id, InstanceStatus::Running, None, None, None, now)
                .await?;
        }
        tx.audit("sandbox.create", Some(("sandbox", &id)), Some(&body)).await?;
        if from_pool {
            // It runs again, and is someone's now.
            tx.instance_event("instance.updated", &instance_id).await?;
        }
        tx.commit().await?;
        t.step("sandbox row");
        self.refill_sandbox_pool(p, &pool);
        let view = SandboxView { row, paused: false, kind, write: Some(proof) };
        if from_pool {
            return Ok(view);
        }
        let running =
            self.wait_instance(p, &instance_id, None, InstanceStatus::Running, Duration::from_secs(120)).await;
        t.step("wait running");
        match running {
            Ok(i) if i.status == InstanceStatus::Running => Ok(view),
            Ok(i) => {
                let reason = i.status_reason.unwrap_or_default();
                let _ = self.kill_sandbox(ctx, p, &id, None).await;
                Err(Error::new(
                    ErrorCode::Unavailable,
                    format!("the sandbox did not start: {} {reason}", i.status.as_str()),
                ))
            }
            Err(e) => {
                let _ = self.kill_sandbox(ctx, p, &id, None).await;
                Err(e)
            }
        }
    }

    /// A live sandbox the principal may see.
    pub async fn sandbox(&self, p: &Principal, id: &str) -> Result<SandboxView> {
        Ok(self.sandbox_view(p, self.live_sandbox_row(id).await?).await?.0)
    }

    /// A live sandbox the principal may change (kill, pause, run commands in, write
    /// files to): a project viewer sees it but gets a 403.
    pub async fn writable_sandbox(&self, p: &Principal, id: &str) -> Result<SandboxView> {
        self.writable_sandbox_of(p, self.live_sandbox_row(id).await?).await
    }

    /// `writable_sandbox` for a row the caller already read (the E2B listener reads it
    /// to find the sandbox's key): each envd request looks everything up once.
    pub async fn writable_sandbox_of(&self, p: &Principal, row: SandboxRow) -> Result<SandboxView> {
        let (mut view, access) = self.sandbox_view(p, row).await?;
        view.write = Some(access.require_write()?);
        Ok(view)
    }

    async fn live_sandbox_row(&self, id: &str) -> Result<SandboxRow> {
        self.store().sandbox(id).await?.filter(|r| r.ended_at.is_none()).ok_or_else(|| Error::not_found("sandbox", id))
    }

    /// The sandbox's view and the principal's access to its project (a sandbox in a
    /// project one cannot see is not found).
    async fn sandbox_view(
        &self,
        p: &Principal,
        row: SandboxRow,
    ) -> Result<(SandboxView, crate::policy::ProjectAccess)> {
        let access = self.project_access(p, &row.project_id).await.map_err(|_| Error::not_found("sandbox", &row.id))?;
        let instance = self.store().instance(&row.instance_id).await?;
        let paused = instance.as_ref().is_some_and(|i| i.status() == InstanceStatus::Paused);
        let kind = instance.map(|i| i.kind).unwrap_or_else(|| "container".into());
        Ok((SandboxView { row, paused, kind, write: None }, access))
    }

    pub async fn list_sandboxes(&self, p: &Principal) -> Result<Vec<SandboxView>> {
        let rows = self.store().live_sandboxes(&self.project_scope(p)).await?;
        Ok(rows
            .into_iter()
            .map(|s| SandboxView {
                paused: s.instance_status.as_deref() == Some(InstanceStatus::Paused.as_str()),
                kind: s.instance_kind.unwrap_or_else(|| "container".into()),
                row: s.row,
                write: None,
            })
            .collect())
    }

    /// A page of the live sandboxes (`created_at` is when it started, `name` its template).
    pub async fn list_sandboxes_page(
        &self,
        p: &Principal,
        params: &roost_api::ProjectListParams,
    ) -> Result<roost_api::Page<SandboxView>> {
        let query = crate::list::list_query(&params.paging(), roost_store::list::CREATED_OR_NAME)?;
        let project_id = match &params.project {
            Some(key) => Some(self.project_access(p, key).await?.project.id),
            None => None,
        };
        let (rows, next_cursor) =
            self.store().live_sandboxes_page(&self.project_scope(p), project_id.as_deref(), &query).await?;
        let items = rows
            .into_iter()
            .map(|s| SandboxView {
                paused: s.instance_status.as_deref() == Some(InstanceStatus::Paused.as_str()),
                kind: s.instance_kind.unwrap_or_else(|| "container".into()),
                row: s.row,
                write: None,
            })
            .collect();
        Ok(roost_api::Page { items, next_cursor })
    }

    /// Kills a sandbox: its processes, its instance, and ends its row.
    pub async fn kill_sandbox(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        id: &str,
        if_match: Option<&str>,
    ) -> Result<()> {
        let row = self.store().sandbox(id).await?.ok_or_else(|| Error::not_found("sandbox", id))?;
        if row.ended_at.is_some() {
            return Err(Error::not_found("sandbox", id));
        }
        let proof = self
            .project_access(p, &row.project_id)
            .await
            .map_err(|_| Error::not_found("sandbox", id))?
            .require_write()?;
        self.end_sandbox(ctx, p, &proof, &row, "sandbox.kill", if_match).await
    }

    async fn end_sandbox(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        proof: &(impl Authorized + ?Sized),
        row: &SandboxRow,
        action: &str,
        if_match: Option<&str>,
    ) -> Result<()> {
        let mut tx = self.change(ctx, proof).await?;
        let current = async { Ok(self.sandbox(p, &row.id).await?.to_api()) };
        tx.check_if_match("sandboxes", &row.id, if_match, current).await?;
        let ended = roost_store::sandboxes::end(tx.conn(), &row.id, now_ms()).await?;
        tx.audit(action, Some(("sandbox", &row.id)), None).await?;
        tx.commit().await?;
        if !ended {
            return Ok(());
        }
        self.sandboxes().processes.lock().expect("processes").remove(&row.id);
        self.sandboxes().ended.lock().expect("ended").remove(&row.id);
        self.kernels().lock().expect("kernels").remove(&row.id);
        match self.delete_instance(ctx, p, &row.instance_id, None, true, None).await {
            Ok(_) => Ok(()),
            Err(e) if e.code == ErrorCode::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Sets the time left to `timeout` from now.
    pub async fn set_sandbox_timeout(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        id: &str,
        timeout: Duration,
    ) -> Result<()> {
        let view = self.writable_sandbox(p, id).await?;
        let timeout = timeout.min(MAX_TIMEOUT);
        let mut tx = self.change(ctx, view.write_proof()?).await?;
        roost_store::sandboxes::set_expiry(tx.conn(), &view.row.id, now_ms() + timeout.as_millis() as i64).await?;
        let body = serde_json::json!({"timeout_secs": timeout.as_secs()});
        tx.audit("sandbox.timeout", Some(("sandbox", id)), Some(&body)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Freezes (`pause`) or thaws a sandbox's instance; processes and memory are kept.
    pub async fn pause_sandbox(&self, ctx: &RequestContext, p: &Principal, id: &str, pause: bool) -> Result<()> {
        let view = self.writable_sandbox(p, id).await?;
        let instance = &view.row.instance_id;
        let driver = self.driver_of(instance).await?;
        if pause {
            driver.pause(instance).await.map_err(node_error)?;
        } else {
            driver.resume(instance).await.map_err(node_error)?;
        }
        let mut tx = self.change(ctx, view.write_proof()?).await?;
        let action = if pause { "sandbox.pause" } else { "sandbox.resume" };
        tx.audit(action, Some(("sandbox", id)), None).await?;
        tx.commit().await?;
        if let Some(row) = self.store().instance(instance).await? {
            let status = if pause { InstanceStatus::Paused } else { InstanceStatus::Running };
            self.record(&row, status, None, None, row.started_at).await?;
        }
        Ok(())
    }

    /// Kills the sandboxes whose time ran out.
    async fn expire_sandboxes(&self) -> Result<serde_json::Value> {
        let expired = self.store().expired_sandboxes(now_ms()).await?;
        let (mut killed, mut failed) = (0, 0);
        for row in expired {
            match self.expire_sandbox(&row).await {
                Ok(()) => killed += 1,
                Err(e) => {
                    failed += 1;
                    tracing::warn!(sandbox = %row.id, error = %e.message, "cannot kill an expired sandbox");
                }
            }
        }
        Ok(serde_json::json!({ "expired": killed, "failed": failed }))
    }

    async fn expire_sandbox(&self, row: &SandboxRow) -> Result<()> {
        // It acts as whoever made it: the key's user, else the instance's creator.
        let key_user = match &row.key_id {
            Some(k) => self.store().sandbox_key(k).await?.map(|k| k.user_id),
            None => None,
        };
        let creator = match key_user {
            Some(u) => Some(u),
            None => self.store().instance(&row.instance_id).await?.and_then(|i| i.created_by),
        };
        let user = match creator {
            Some(u) => self.store().user_by_id(&u).await?,
            None => None,
        };
        // The server ends it, not the user whose rights it borrows: the audit log says
        // `system` (the dashboard shows "Roost (TTL)").
        let ctx = RequestContext { source: Some(TTL_SOURCE.into()), by_server: true, ..Default::default() };
        let Some(user) = user else {
            // Nobody to act as (the user was deleted): end the row and delete the
            // instance directly.
            let mut tx = self.change(&ctx, &SystemProof::new()).await?;
            roost_store::sandboxes::end(tx.conn(), &row.id, now_ms()).await?;
            tx.audit("sandbox.expire", Some(("sandbox", &row.id)), None).await?;
            tx.commit().await?;
            if let Ok(driver) = self.driver_of(&row.instance_id).await {
                driver.delete(&row.instance_id).await.map_err(node_error)?;
            }
            return Ok(());
        };
        let principal = acting_as(user, &row.project_id, row.key_id.clone(), "sandbox TTL");
        tracing::info!(sandbox = %row.id, "sandbox timed out: killing it");
        self.end_sandbox(&ctx, &principal, &SystemProof::new(), row, "sandbox.expire", None).await
    }

    /// Starts a process in a sandbox, on a terminal of `pty` (rows, cols) when given.
    /// The receiver sees everything it prints.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn start_sandbox_process(
        &self,
        view: &SandboxView,
        cmd: String,
        args: Vec<String>,
        envs: BTreeMap<String, String>,
        cwd: Option<String>,
        tag: Option<String>,
        pty: Option<(u16, u16)>,
    ) -> Result<(Arc<SandboxProcess>, broadcast::Receiver<ProcessEvent>)> {
        view.not_paused()?;
        let mut t = crate::timing::Steps::new("sandbox process");
        let mut argv = vec![cmd.clone()];
        argv.extend(args.iter().cloned());
        let mut session = self
            .exec(
                &view.row.instance_id,
                roost_node::ExecRequest {
                    cmd: argv,
                    env: envs.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                    cwd: cwd.clone(),
                    tty: pty.is_some(),
                    rows: pty.map_or(0, |p| p.0),
                    cols: pty.map_or(0, |p| p.1),
                    console: false,
                },
            )
            .await?;
        t.step("exec");
        // A usage counter: written off the command's path (a store write is a sync).
        let counter = self.clone();
        let counted = view.row.id.clone();
        tokio::spawn(async move {
            let _ = counter.store().count_sandbox_command(&counted).await;
        });
        let pid = 1000 + self.sandboxes().next_pid.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = broadcast::channel(4096);
        let process = Arc::new(SandboxProcess {
            pid,
            tag,
            cmd,
            args,
            envs,
            cwd,
            started_at: now_ms(),
            pty: pty.is_some(),
            signaller: session.signaller(),
            resizer: session.resizer(),
            events: tx,
            stdin: tokio::sync::Mutex::new(session.stdin.take()),
            recent: Mutex::new(Recent::default()),
        });
        self.sandboxes()
            .processes
            .lock()
            .expect("processes")
            .entry(view.row.id.clone())
            .or_default()
            .insert(pid, process.clone());
        let stdout = session.stdout.take();
        let stderr = session.stderr.take();
        let control = self.clone();
        let sandbox = view.row.id.clone();
        let emitter = process.clone();
        let on_terminal = pty.is_some();
        tokio::spawn(async move {
            let pump = |r: Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>, err: bool| {
                let process = emitter.clone();
                async move {
                    let Some(mut r) = r else { return };
                    let mut buf = vec![0u8; 32 * 1024];
                    loop {
                        match r.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                let data = buf[..n].to_vec();
                                process.emit(if err { ProcessEvent::Stderr(data) } else { ProcessEvent::Stdout(data) });
                            }
                        }
                    }
                }
            };
            let pumps = async { tokio::join!(pump(stdout, false), pump(stderr, true)) };
            tokio::pin!(pumps);
            let code = if on_terminal {
                // A terminal stays open while a background job of the shell holds it, so
                // its output need not end when the command does: once the command exits,
                // take what is already there and end.
                let exited = tokio::select! {
                    _ = &mut pumps => None,
                    code = session.wait() => Some(code),
                };
                match exited {
                    Some(code) => {
                        let _ = tokio::time::timeout(Duration::from_millis(200), &mut pumps).await;
                        code
                    }
                    None => session.wait().await,
                }
            } else {
                pumps.await;
                session.wait().await
            }
            .unwrap_or(-1);
            // Kept for a late attach (put there before it leaves the running list, so a
            // lookup always finds it), unless the sandbox itself ended meanwhile.
            let live = control
                .sandboxes()
                .processes
                .lock()
                .expect("processes")
                .get(&sandbox)
                .is_some_and(|m| m.contains_key(&pid));
            if live {
                let mut ended = control.sandboxes().ended.lock().expect("ended");
                let list = ended.entry(sandbox.clone()).or_default();
                list.push_back(emitter.clone());
                while list.len() > ENDED_KEPT {
                    list.pop_front();
                }
            }
            if let Some(map) = control.sandboxes().processes.lock().expect("processes").get_mut(&sandbox) {
                map.remove(&pid);
            }
            emitter.emit(ProcessEvent::End(code));
        });
        Ok((process, rx))
    }

    /// Running processes of a sandbox.
    pub fn sandbox_processes(&self, sandbox: &str) -> Vec<Arc<SandboxProcess>> {
        self.sandboxes()
            .processes
            .lock()
            .expect("processes")
            .get(sandbox)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// A running process by pid or tag.
    pub fn sandbox_process(&self, sandbox: &str, pid: Option<u32>, tag: Option<&str>) -> Result<Arc<SandboxProcess>> {
        self.sandbox_processes(sandbox)
            .into_iter()
            .find(|p| pid.is_some_and(|x| p.pid == x) || (tag.is_some() && p.tag.as_deref() == tag))
            .ok_or_else(|| Error::not_found("process", &pid.map(|p| p.to_string()).unwrap_or_default()))
    }

    /// A running or recently ended process by pid (Roost's attach).
    pub fn sandbox_process_any(&self, sandbox: &str, pid: u32) -> Result<Arc<SandboxProcess>> {
        if let Ok(p) = self.sandbox_process(sandbox, Some(pid), None) {
            return Ok(p);
        }
        self.sandboxes()
            .ended
            .lock()
            .expect("ended")
            .get(sandbox)
            .and_then(|l| l.iter().rev().find(|p| p.pid == pid).cloned())
            .ok_or_else(|| Error::not_found("process", &pid.to_string()))
    }

    /// Runs a command to completion in the sandbox (for file operations): stdout, stderr
    /// and exit code. Output past [`MAX_RUN_OUTPUT`] fails the call (a listing of a
    /// directory with millions of entries, say) rather than filling the server's memory.
    pub(crate) async fn sandbox_run(&self, view: &SandboxView, argv: &[&str]) -> Result<(Vec<u8>, Vec<u8>, i32)> {
        view.not_paused()?;
        let mut session = self
            .exec(
                &view.row.instance_id,
                roost_node::ExecRequest { cmd: argv.iter().map(|s| s.to_string()).collect(), ..Default::default() },
            )
            .await?;
        drop(session.stdin.take());
        let (o, e) = (session.stdout.take(), session.stderr.take());
        let (out, err) = tokio::join!(read_capped(o, MAX_RUN_OUTPUT), read_capped(e, MAX_RUN_OUTPUT));
        let code = session.wait().await.map_err(node_error)?;
        let (Some(out), Some(err)) = (out, err) else {
            return Err(Error::new(
                ErrorCode::ValidationFailed,
                format!("the output of '{}' is larger than {MAX_RUN_OUTPUT} bytes", argv.join(" ")),
            ));
        };
        Ok((out, err, code))
    }

    /// A regular file of the sandbox, streamed as `cat` reads it (through exec, so any
    /// driver that execs serves it, and symlinks resolve inside the sandbox). Chunks come
    /// through a short channel, so a slow client holds the reader, never the server's
    /// memory; a client that goes away ends it. Anything but a regular file (a device
    /// such as `/dev/zero`, a FIFO, a directory) is refused up front.
    pub async fn sandbox_read_file(&self, view: &SandboxView, path: &str) -> Result<FileChunks> {
        view.not_paused()?;
        let script = r#"test -e "$1" || { echo "$1: No such file or directory" >&2; exit 2; }
test -f "$1" || { echo "$1: not a regular file (devices, FIFOs and directories are not read)" >&2; exit 3; }
exec cat -- "$1""#;
        let mut session = self
            .exec(
                &view.row.instance_id,
                roost_node::ExecRequest {
                    cmd: ["sh", "-c", script, "sh", path].iter().map(|s| s.to_string()).collect(),
                    ..Default::default()
                },
            )
            .await?;
        drop(session.stdin.take());
        let stderr = tokio::spawn(read_capped_lossy(session.stderr.take(), 64 << 10));
        let Some(mut out) = session.stdout.take() else {
            return Err(Error::internal("exec without stdout"));
        };
        let mut first = vec![0u8; FILE_CHUNK];
        let n = out.read(&mut first).await.map_err(|e| Error::internal(format!("reading {path}: {e}")))?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        if n == 0 {
            let code = session.wait().await.map_err(node_error)?;
            let err = stderr.await.unwrap_or_default();
            if code != 0 {
                if err.contains("No such file") {
                    return Err(Error::not_found("file", path));
                }
                return Err(Error::new(ErrorCode::ValidationFailed, err.trim().to_string()));
            }
            return Ok(FileChunks { rx });
        }
        first.truncate(n);
        let path = path.to_string();
        tokio::spawn(async move {
            let mut chunk = first;
            loop {
                if tx.send(Ok(chunk)).await.is_err() {
                    break; // the client left: stop reading (cat ends on a broken pipe)
                }
                let mut buf = vec![0u8; FILE_CHUNK];
                match out.read(&mut buf).await {
                    Ok(0) => break,
                    Ok(n) => {
                        buf.truncate(n);
                        chunk = buf;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(std::io::Error::other(format!("reading {path}: {e}")))).await;
                        break;
                    }
                }
            }
            drop(out);
            if let Ok(code) = session.wait().await
                && code != 0
            {
                let err = stderr.await.unwrap_or_default();
                let _ = tx.send(Err(std::io::Error::other(format!("reading {path}: {}", err.trim())))).await;
            }
        });
        Ok(FileChunks { rx })
    }

    /// Writes a file in the sandbox from `data` as it arrives, making its parent
    /// directories; at most `max` bytes. The bytes go to a temporary file beside the
    /// target first (nothing is held here), which replaces the target's content only
    /// once all of them arrived: an upload cut short or too large leaves the target as
    /// it was. Returns the size written.
    pub(crate) async fn sandbox_write_from(
        &self,
        view: &SandboxView,
        path: &str,
        data: &mut (dyn tokio::io::AsyncRead + Send + Unpin),
        max: u64,
    ) -> Result<u64> {
        view.not_paused()?;
        let (dir, name) = match path.rsplit_once('/') {
            Some((dir, name)) => (if dir.is_empty() { "/" } else { dir }, name),
            None => (".", path),
        };
        if name.is_empty() {
            return Err(Error::invalid(format!("'{path}' names a directory, not a file")));
        }
        let mut nonce = [0u8; 8];
        getrandom::fill(&mut nonce).map_err(|e| Error::internal(format!("random source: {e}")))?;
        let tmp = format!("{}/.{name}.roost-upload-{:016x}", dir.trim_end_matches('/'), u64::from_le_bytes(nonce));
        let script = "mkdir -p -- \"$(dirname -- \"$1\")\" && cat > \"$1\"";
        let mut session = self
            .exec(
                &view.row.instance_id,
                roost_node::ExecRequest {
                    cmd: ["sh", "-c", script, "sh", &tmp].iter().map(|s| s.to_string()).collect(),
                    ..Default::default()
                },
            )
            .await?;
        let stdin = session.stdin.take();
        let (o, e) = (session.stdout.take(), session.stderr.take());
        let feed = async move {
            let Some(mut w) = stdin else { return Ok(0) };
            let mut limited = tokio::io::AsyncReadExt::take(data, max.saturating_add(1));
            let copied = tokio::io::copy(&mut limited, &mut w).await;
            let _ = w.shutdown().await;
            copied
        };
        let drain = async {
            if let Some(mut o) = o {
                let _ = tokio::io::copy(&mut o, &mut tokio::io::sink()).await;
            }
            read_capped_lossy(e, 64 << 10).await
        };
        let (copied, err) = tokio::join!(feed, drain);
        let code = session.wait().await.map_err(node_error)?;
        let failure = match &copied {
            _ if code != 0 => Some(Error::new(ErrorCode::ValidationFailed, err.trim().to_string())),
            Ok(n) if *n > max => Some(Error::new(ErrorCode::PayloadTooLarge, format!("files are at most {max} bytes"))),
            Ok(_) => None,
            Err(e) => Some(Error::new(ErrorCode::InvalidRequest, format!("the upload was cut short: {e}"))),
        };
        if let Some(e) = failure {
            let _ = self.sandbox_run(view, &["rm", "-f", "--", &tmp]).await;
            return Err(e);
        }
        let size = copied.unwrap_or(0);
        // `cat` into the target keeps its inode, mode and owner, as a direct write did.
        let (_, err, code) = self
            .sandbox_run(
                view,
                &["sh", "-c", "cat -- \"$1\" > \"$2\"; s=$?; rm -f -- \"$1\"; exit $s", "sh", &tmp, path],
            )
            .await?;
        if code != 0 {
            return Err(Error::new(ErrorCode::ValidationFailed, String::from_utf8_lossy(&err).trim().to_string()));
        }
        Ok(size)
    }

    /// Writes a small file held in memory (the code interpreter's runner: Roost's own
    /// file, not the caller's, so not audited).
    pub(crate) async fn sandbox_put_runner(&self, view: &SandboxView, path: &str, data: Vec<u8>) -> Result<()> {
        self.sandbox_write_from(view, path, &mut &data[..], data.len() as u64).await.map(|_| ())
    }
}

/// Most bytes of output [`Control::sandbox_run`] keeps per stream.
pub const MAX_RUN_OUTPUT: usize = 64 << 20;
/// The chunk a file is read in.
const FILE_CHUNK: usize = 64 << 10;

/// A file's bytes as they are read from the sandbox; an `Err` ends a stream that failed
/// half-way (the response is then cut short rather than completed wrongly).
pub struct FileChunks {
    pub rx: tokio::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>,
}

/// All of a stream, or `None` past `max` bytes (the rest is drained, so the writer
/// never blocks on a full pipe).
async fn read_capped(stream: Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>, max: usize) -> Option<Vec<u8>> {
    let Some(mut stream) = stream else { return Some(Vec::new()) };
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    let mut over = false;
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) if over || out.len() + n > max => over = true,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    (!over).then_some(out)
}

/// Up to `max` bytes of a stream as text (the rest drained): an error message.
async fn read_capped_lossy(stream: Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>, max: usize) -> String {
    let Some(mut stream) = stream else { return String::new() };
    let mut out = Vec::new();
    let mut buf = vec![0u8; 8 << 10];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = max.saturating_sub(out.len()).min(n);
                out.extend_from_slice(&buf[..room]);
            }
        }
    }
    String::from_utf8_lossy(&out).to_string()
}

/// A sandbox's current usage, for the E2B metrics endpoint.
#[derive(Debug, Clone, Default)]
pub struct SandboxMetrics {
    pub cpu_pct: f64,
    pub memory_bytes: u64,
}

impl Control {
    pub async fn sandbox_metrics(&self, view: &SandboxView) -> Result<SandboxMetrics> {
        let id = &view.row.instance_id;
        let stats = self.driver_of(id).await?.stats(id).await.map_err(node_error)?;
        let cpu_pct = self.compute().latest.lock().expect("latest").get(id).map(|s| s.cpu_percent).unwrap_or(0.0);
        Ok(SandboxMetrics { cpu_pct, memory_bytes: stats.memory_bytes })
    }
}

/// The code interpreter runner Roost copies into a sandbox (IPython-based, ours).
pub const CODE_INTERPRETER_RUNNER: &str = include_str!("../assets/code_interpreter.py");
const RUNNER_PATH: &str = "/tmp/.roost/code_interpreter.py";

/// One code interpreter context: a runner process with its own IPython shell.
pub struct Kernel {
    pub id: String,
    pub language: String,
    pub cwd: String,
    io: Arc<tokio::sync::Mutex<KernelIo>>,
}

struct KernelIo {
    stdin: Box<dyn tokio::io::AsyncWrite + Send + Unpin>,
    lines: tokio::io::Lines<tokio::io::BufReader<Box<dyn tokio::io::AsyncRead + Send + Unpin>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    _session: roost_node::ExecSession,
}

impl Control {
    fn kernels(&self) -> &Mutex<HashMap<String, BTreeMap<String, Arc<Kernel>>>> {
        &self.inner.sandboxes.kernels
    }

    /// Starts a context (a runner process) in the sandbox.
    pub async fn create_kernel(
        &self,
        view: &SandboxView,
        language: Option<&str>,
        cwd: Option<&str>,
    ) -> Result<Arc<Kernel>> {
        let language = language.unwrap_or("python").to_string();
        if language != "python" {
            return Err(Error::unprocessable(format!("language '{language}' is not supported (only python)")));
        }
        let id = format!("ctx-{}", 1000 + self.sandboxes().next_pid.fetch_add(1, Ordering::Relaxed));
        self.spawn_kernel(view, id, language, cwd.unwrap_or("/root").to_string()).await
    }

    async fn spawn_kernel(&self, view: &SandboxView, id: String, language: String, cwd: String) -> Result<Arc<Kernel>> {
        self.sandbox_put_runner(view, RUNNER_PATH, CODE_INTERPRETER_RUNNER.as_bytes().to_vec()).await?;
        let mut session = self
            .exec(
                &view.row.instance_id,
                roost_node::ExecRequest {
                    cmd: vec!["python3".into(), "-u".into(), RUNNER_PATH.into()],
                    env: vec![("MPLBACKEND".into(), "Agg".into())],
                    cwd: Some(cwd.clone()),
                    ..Default::default()
                },
            )
            .await?;
        let stdin = session.stdin.take().ok_or_else(|| Error::internal("runner without stdin"))?;
        let stdout = session.stdout.take().ok_or_else(|| Error::internal("runner without stdout"))?;
        let stderr_buf = Arc::new(Mutex::new(Vec::new()));
        if let Some(mut err) = session.stderr.take() {
            let buf = stderr_buf.clone();
            tokio::spawn(async move {
                let mut chunk = [0u8; 4096];
                while let Ok(n) = err.read(&mut chunk).await {
                    if n == 0 {
                        break;
                    }
                    let mut b = buf.lock().expect("stderr");
                    if b.len() < 64 * 1024 {
                        b.extend_from_slice(&chunk[..n]);
                    }
                }
            });
        }
        use tokio::io::AsyncBufReadExt;
        let io =
            KernelIo { stdin, lines: tokio::io::BufReader::new(stdout).lines(), stderr: stderr_buf, _session: session };
        let kernel = Arc::new(Kernel { id: id.clone(), language, cwd, io: Arc::new(tokio::sync::Mutex::new(io)) });
        self.kernels().lock().expect("kernels").entry(view.row.id.clone()).or_default().insert(id, kernel.clone());
        Ok(kernel)
    }

    pub fn list_kernels(&self, sandbox: &str) -> Vec<Arc<Kernel>> {
        self.kernels().lock().expect("kernels").get(sandbox).map(|m| m.values().cloned().collect()).unwrap_or_default()
    }

    /// Ends a context (its runner gets EOF and exits).
    pub fn remove_kernel(&self, sandbox: &str, id: &str) -> Result<()> {
        let removed = self.kernels().lock().expect("kernels").get_mut(sandbox).and_then(|m| m.remove(id));
        removed.map(|_| ()).ok_or_else(|| Error::not_found("context", id))
    }

    pub async fn restart_kernel(&self, view: &SandboxView, id: &str) -> Result<Arc<Kernel>> {
        let old = self.kernels().lock().expect("kernels").get_mut(&view.row.id).and_then(|m| m.remove(id));
        let old = old.ok_or_else(|| Error::not_found("context", id))?;
        self.spawn_kernel(view, old.id.clone(), old.language.clone(), old.cwd.clone()).await
    }

    /// Runs code in a context (the default one when `context` is `None`): the runner's
    /// JSON lines, as they come, ending with its `end_of_execution` (not sent).
    pub async fn execute_code(
        &self,
        view: &SandboxView,
        context: Option<&str>,
        code: &str,
        env_vars: &BTreeMap<String, String>,
    ) -> Result<tokio::sync::mpsc::Receiver<String>> {
        let id = context.unwrap_or("default").to_string();
        let existing = self.kernels().lock().expect("kernels").get(&view.row.id).and_then(|m| m.get(&id).cloned());
        let kernel = match existing {
            Some(k) => k,
            None if context.is_none() => self.spawn_kernel(view, id.clone(), "python".into(), "/root".into()).await?,
            None => return Err(Error::not_found("context", &id)),
        };
        let _ = self.store().count_sandbox_command(&view.row.id).await;
        let mut io = kernel.io.clone().lock_owned().await;
        let request = serde_json::json!({"code": code, "env_vars": env_vars});
        let mut line = serde_json::to_vec(&request).expect("json");
        line.push(b'\n');
        io.stdin.write_all(&line).await.map_err(|e| Error::conflict(format!("the code interpreter is gone: {e}")))?;
        io.stdin.flush().await.map_err(|e| Error::conflict(format!("the code interpreter is gone: {e}")))?;
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        tokio::spawn(async move {
            loop {
                match io.lines.next_line().await {
                    Ok(Some(line)) => {
                        if line.contains("\"end_of_execution\"") {
                            break;
                        }
                        if tx.send(line).await.is_err() {
                            // The client went away: read on to the end so the next
                            // execution starts in step.
                            continue;
                        }
                    }
                    _ => {
                        let stderr = String::from_utf8_lossy(&io.stderr.lock().expect("stderr")).to_string();
                        let error = serde_json::json!({
                            "type": "error",
                            "name": "RuntimeError",
                            "value": format!("the code interpreter exited: {}", stderr.trim()),
                            "traceback": stderr,
                        });
                        let _ = tx.send(error.to_string()).await;
                        break;
                    }
                }
            }
        });
        Ok(rx)
    }
}

impl SandboxView {
    /// The proof that the view's holder may change the sandbox.
    pub(crate) fn write_proof(&self) -> Result<&ProjectWrite> {
        self.write.as_ref().ok_or_else(|| Error::forbidden("read only: you may not change this sandbox"))
    }

    pub fn to_api(&self) -> roost_api::sandboxes::Sandbox {
        roost_api::sandboxes::Sandbox {
            id: self.row.id.clone(),
            template: self.row.template.clone(),
            state: if self.paused { "paused" } else { "running" }.into(),
            kind: self.kind.clone(),
            instance_id: self.row.instance_id.clone(),
            project_id: self.row.project_id.clone(),
            key_id: self.row.key_id.clone(),
            metadata: serde_json::from_str(&self.row.metadata).unwrap_or_default(),
            started_at: roost_store::to_time(self.row.started_at),
            expires_at: roost_store::to_time(self.row.expires_at),
            commands: self.row.commands as u64,
        }
    }
}

impl Control {
    /// Sandbox-seconds, vCPU-seconds and commands per key, of sandboxes the principal
    /// may see that ran at some point in the last `since`.
    pub async fn sandbox_usage(
        &self,
        p: &Principal,
        key: Option<&str>,
        since: Duration,
    ) -> Result<Vec<roost_api::sandboxes::SandboxUsage>> {
        let now = now_ms();
        let from = now - since.as_millis() as i64;
        // Tenancy in the query: one read whatever the number of sandboxes.
        let rows = self.store().sandboxes_since(&self.project_scope(p), key, from).await?;
        let mut by_key: BTreeMap<Option<String>, roost_api::sandboxes::SandboxUsage> = BTreeMap::new();
        for row in rows {
            let start = row.started_at.max(from);
            let end = row.ended_at.unwrap_or(now).min(now);
            let secs = (end - start).max(0) as f64 / 1000.0;
            let u = by_key.entry(row.key_id.clone()).or_insert_with(|| roost_api::sandboxes::SandboxUsage {
                key_id: row.key_id.clone(),
                sandboxes: 0,
                sandbox_seconds: 0.0,
                vcpu_seconds: 0.0,
                commands: 0,
            });
            u.sandboxes += 1;
            u.sandbox_seconds += secs;
            u.vcpu_seconds += secs * row.cpus_milli as f64 / 1000.0;
            u.commands += row.commands as u64;
        }
        Ok(by_key.into_values().collect())
    }
}
