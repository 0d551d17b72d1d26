//! The control plane: every rule about who may do what, and every change to the store,
//! goes through the services here. The HTTP layer only translates.

pub mod audit;
pub mod auth;
pub mod buckets;
pub mod error;
pub mod events;
pub mod images;
pub mod instances;
pub(crate) mod jobs;
pub mod kernel;
pub mod list;
pub mod networks;
pub mod node;
pub mod objects;
pub mod operations;
pub mod policy;
pub mod presign;
pub mod projects;
pub mod ratelimit;
mod reconciler;
mod samples;
pub mod sandbox_pool;
pub mod sandbox_processes;
pub mod sandbox_templates;
pub mod sandbox_urls;
pub mod sandbox_watch;
pub mod sandboxes;
pub mod secrets;
pub mod ssh_keys;
pub mod system;
pub mod tasks;
pub mod templates;
pub mod timing;
pub mod tokens;
pub mod users;
pub mod volumes;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use roost_store::Store;
use tokio_util::sync::CancellationToken;

pub use auth::Principal;
pub use error::{Error, Result};

/// Settings the services need (the server's configuration owns their defaults).
#[derive(Debug, Clone)]
pub struct ControlSettings {
    pub data_dir: PathBuf,
    /// How long a login session lasts.
    pub session_ttl: Duration,
    /// Logins allowed per client address per minute.
    pub login_per_minute: u32,
    /// Failed logins per account per 15 minutes before the account waits; 0: no limit.
    pub login_failures_per_account: u32,
    /// The URL people reach the API and console at; `https://…` makes cookies `Secure`.
    pub public_url: Option<String>,
    /// Believe `X-Forwarded-Proto` and `X-Forwarded-For` from the peer (a reverse proxy).
    pub trust_proxy: bool,
    /// Largest image upload, in bytes.
    pub image_import_max_size: u64,
    /// Most an imported image may unpack to, in bytes.
    pub image_import_max_unpacked: u64,
    /// Mutating requests allowed per user per minute.
    pub mutations_per_minute: u32,
    /// Audit entries older than this are archived to a file and removed from the store
    /// (`None`: kept forever).
    pub audit_retention: Option<Duration>,
    /// The S3 endpoint's base URL (`http://127.0.0.1:7701`) for presigned URLs; `None`
    /// when the endpoint is off.
    pub s3_endpoint: Option<String>,
    /// The region S3 clients sign for.
    pub s3_region: String,
    /// How long a background task's lease lasts without renewal: the time another
    /// server waits before it takes over the tasks of a server that died.
    pub task_lease: Duration,
}

/// Who is asking, from where: carried into audit entries.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    pub request_id: Option<String>,
    pub source: Option<String>,
    /// The server acting on its own (a sandbox's TTL running out), with the rights of
    /// the principal it acts as: audited as `system`, not as that user.
    pub by_server: bool,
    /// Set once a service has written this request's audit entry, so the HTTP layer
    /// records one itself only for requests that failed before reaching that point.
    pub audited: Arc<std::sync::atomic::AtomicBool>,
}

/// The control plane's shared state. Cheap to clone.
#[derive(Clone)]
pub struct Control {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    settings: ControlSettings,
    events: Arc<events::EventBus>,
    auth_cache: auth::AuthCache,
    login_limiter: ratelimit::KeyedLimiter,
    /// Failed logins per account name (`login_failures_per_account` per 15 minutes).
    login_failures: ratelimit::FailureLimiter,
    mutation_limiter: ratelimit::KeyedLimiter,
    compute: instances::Compute,
    shutdown: CancellationToken,
    master_key: std::sync::OnceLock<secrets::MasterKey>,
    s3_keys: buckets::S3KeyCache,
    sandboxes: sandboxes::Sandboxes,
    e2b_address: std::sync::OnceLock<std::net::SocketAddr>,
    sandbox_url_secret: std::sync::OnceLock<[u8; 32]>,
    envd_token_secret: std::sync::OnceLock<[u8; 32]>,
    watchers: sandbox_watch::Watchers,
    tasks: tasks::Tasks,
    job_hooks: jobs::JobHookEntries,
}

impl Control {
    /// Makes the control plane and starts its event reader (call inside the runtime).
    pub fn new(store: Store, settings: ControlSettings, shutdown: CancellationToken) -> Control {
        let login_limiter = ratelimit::KeyedLimiter::per_minute(settings.login_per_minute);
        let login_failures =
            ratelimit::FailureLimiter::new(settings.login_failures_per_account, auth::ACCOUNT_LOCK_WINDOW);
        let mutation_limiter = ratelimit::KeyedLimiter::per_minute(settings.mutations_per_minute);
        let events = Arc::new(events::EventBus::new());
        tokio::spawn(events.clone().run_reader(store.clone(), shutdown.clone()));
        let server_id = roost_api::ids::IdKind::Server.generate();
        let tasks = tasks::Tasks::new(store.clone(), settings.task_lease, server_id, shutdown.clone());
        Control {
            inner: Arc::new(Inner {
                store,
                settings,
                events,
                auth_cache: auth::AuthCache::default(),
                login_limiter,
                login_failures,
                mutation_limiter,
                compute: Default::default(),
                shutdown,
                master_key: Default::default(),
                s3_keys: Default::default(),
                sandboxes: Default::default(),
                e2b_address: Default::default(),
                sandbox_url_secret: Default::default(),
                envd_token_secret: Default::default(),
                watchers: Default::default(),
                tasks,
                job_hooks: Default::default(),
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn settings(&self) -> &ControlSettings {
        &self.inner.settings
    }

    pub fn events(&self) -> &events::EventBus {
        &self.inner.events
    }

    /// This server's background tasks (and its server id).
    pub fn tasks(&self) -> &tasks::Tasks {
        &self.inner.tasks
    }

    /// Cancelled when the server begins to shut down: long polls and streams end.
    pub fn shutdown(&self) -> &CancellationToken {
        &self.inner.shutdown
    }

    /// Work to do once at start: take over the task leases of this data directory's
    /// previous run, finish what a crash interrupted, make sure the default project
    /// exists, apply audit retention.
    pub async fn recover(&self) -> Result<()> {
        self.tasks().take_over_previous_run(&self.settings().data_dir.join("server-id")).await?;
        self.ensure_default_project().await?;
        self.master_key()?;
        self.ensure_builtin_images().await?;
        self.apply_audit_retention().await?;
        let interrupted = self.store().fail_interrupted_operations(roost_store::now_ms()).await?;
        for op in interrupted {
            tracing::warn!(operation = %op.id, kind = %op.kind, "operation interrupted by a restart, marked failed");
        }
        Ok(())
    }

    /// Counts a mutating request against the user's rate; 429 when over.
    pub fn check_mutation_rate(&self, principal: &Principal) -> Result<()> {
        self.inner.mutation_limiter.check(&principal.user_id).map_err(Error::rate_limited)
    }
}
