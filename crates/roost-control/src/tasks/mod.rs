//! The background-task driver: every periodic loop of the control plane is a task here.
//!
//! A task implements [`BackgroundTask`]: one `activate` that does a round of work and
//! returns a short JSON summary (`{"expired": 2}`). The driver owns the rest: it activates
//! the task every period and whenever its [`Activator`] is woken, never two activations
//! of one task at once (wakes during an activation coalesce into one more), logs a
//! failure once, records each activation's start, duration and outcome, and stops at
//! shutdown.
//!
//! Several servers may share one PostgreSQL store; each task then runs on exactly one of
//! them. A server activates a task only while it holds the task's **lease**, a row of
//! `background_tasks` (holder, expiry) taken or renewed by one conditional upsert. The
//! holder renews it every third of its length (with each recorded activation, or on its
//! own between them and during long ones); another server takes it once it has expired,
//! so a crashed holder is replaced within one lease length. The same row carries the
//! last activation's status, so every server shows the same list, and a run asked of a
//! server that does not hold the lease is passed to the holder through it. The driver
//! knows nothing about Roost's resources: the tasks live next to their modules.

use std::collections::BTreeMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use roost_store::Store;
use roost_store::tasks::{Held, TaskRunRecord};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::Result;

/// Periodic work of the control plane. One activation is one round of it.
pub trait BackgroundTask: Send + 'static {
    /// Does one round of work; the summary (a small JSON object) or the error is kept
    /// in the task's status.
    fn activate(&mut self) -> impl Future<Output = Result<serde_json::Value>> + Send;
}

/// What a task is, as listed.
#[derive(Debug, Clone, Copy)]
pub struct TaskSpec {
    /// Stable snake_case name (`instance_reconciler`): the API and CLI use it.
    pub name: &'static str,
    pub description: &'static str,
    /// Time from the start of one activation to the next, when nothing wakes it sooner.
    pub period: Duration,
}

/// Wakes a task now (an activation soon after, or one more after the running one).
/// Cheap; wakes that arrive before the task gets to run coalesce into one activation.
#[derive(Clone)]
pub struct Activator(Arc<Notify>);

impl Activator {
    pub fn activate(&self) {
        self.0.notify_one();
    }
}

/// The registry of this server's tasks. Cheap to clone.
#[derive(Clone)]
pub struct Tasks {
    inner: Arc<Shared>,
}

struct Shared {
    server_id: String,
    leases: Leases,
    shutdown: CancellationToken,
    entries: Mutex<BTreeMap<&'static str, Entry>>,
    loops: TaskTracker,
}

#[derive(Default)]
struct Entry {
    spec: Option<TaskSpec>,
    notify: Arc<Notify>,
    /// Until when this server holds the lease, as far as it knows (measured from before
    /// the statement that took it, so it ends no later than the stored one).
    held_until: Arc<Mutex<Option<Instant>>>,
}

/// Where leases and statuses live.
enum Leases {
    Store {
        store: Store,
        ttl: Duration,
    },
    /// Unit tests of the driver's own logic: this server always holds every lease and
    /// nothing is recorded.
    #[cfg(test)]
    Always,
}

impl Leases {
    fn store(&self) -> Option<&Store> {
        match self {
            Leases::Store { store, .. } => Some(store),
            #[cfg(test)]
            Leases::Always => None,
        }
    }

    fn ttl(&self) -> Duration {
        match self {
            Leases::Store { ttl, .. } => *ttl,
            #[cfg(test)]
            Leases::Always => Duration::from_secs(30),
        }
    }

    async fn acquire(&self, spec: &TaskSpec, server: &str) -> roost_store::Result<Option<Held>> {
        match self {
            Leases::Store { store, ttl } => {
                let now = roost_store::now_ms();
                let period = spec.period.as_millis() as i64;
                store.acquire_task_lease(spec.name, spec.description, period, server, now, now + ms(*ttl)).await
            }
            #[cfg(test)]
            Leases::Always => Ok(Some(Held { wake_requested_at: None })),
        }
    }

    async fn record(&self, name: &str, run: TaskRunRecord<'_>) -> roost_store::Result<Option<Held>> {
        match self {
            Leases::Store { store, .. } => store.record_task_run(name, &run).await,
            #[cfg(test)]
            Leases::Always => Ok(Some(Held { wake_requested_at: None })),
        }
    }

    /// Passes a wake to whichever server holds the lease.
    async fn forward(&self, name: &str) -> roost_store::Result<()> {
        match self {
            Leases::Store { store, .. } => {
                let mut tx = store.write().await?;
                roost_store::tasks::request_run(tx.conn(), name, roost_store::now_ms()).await?;
                tx.commit().await
            }
            #[cfg(test)]
            Leases::Always => Ok(()),
        }
    }

    async fn release(&self, name: &str, server: &str) -> roost_store::Result<()> {
        match self {
            Leases::Store { store, .. } => store.release_task_lease(name, server).await,
            #[cfg(test)]
            Leases::Always => Ok(()),
        }
    }
}

fn ms(d: Duration) -> i64 {
    d.as_millis() as i64
}

impl Tasks {
    /// The driver of this server (`server_id`, new at each start), keeping leases of
    /// `lease` length in `store`; every task stops at `shutdown`.
    pub fn new(store: Store, lease: Duration, server_id: String, shutdown: CancellationToken) -> Tasks {
        Tasks::with_leases(Leases::Store { store, ttl: lease }, server_id, shutdown)
    }

    fn with_leases(leases: Leases, server_id: String, shutdown: CancellationToken) -> Tasks {
        Tasks {
            inner: Arc::new(Shared {
                server_id,
                leases,
                shutdown,
                entries: Mutex::new(BTreeMap::new()),
                loops: TaskTracker::new(),
            }),
        }
    }

    /// This server's id (`srv-…`), the holder named in leases and statuses.
    pub fn server_id(&self) -> &str {
        &self.inner.server_id
    }

    /// The lease length.
    pub fn lease(&self) -> Duration {
        self.inner.leases.ttl()
    }

    /// Gives up the leases of the previous process on this data directory, whose id
    /// `id_file` holds, and writes this server's id there for the next start. A server
    /// that crashed or was killed keeps its leases until they expire; its successor on
    /// the same data directory (the only kind a single-server install has) knows it is
    /// gone and takes its tasks over at once instead of waiting. Call before any task is
    /// registered.
    pub async fn take_over_previous_run(&self, id_file: &std::path::Path) -> Result<()> {
        let previous = std::fs::read_to_string(id_file).unwrap_or_default();
        let previous = previous.trim();
        if roost_api::ids::IdKind::Server.matches(previous)
            && previous != self.server_id()
            && let Some(store) = self.inner.leases.store()
        {
            let released = store.release_task_leases_of(previous).await?;
            if released > 0 {
                tracing::info!(previous, released, "released the task leases of this data directory's previous run");
            }
        }
        let tmp = id_file.with_extension("tmp");
        std::fs::write(&tmp, format!("{}\n", self.server_id()))
            .and_then(|()| std::fs::rename(&tmp, id_file))
            .map_err(|e| crate::Error::internal(format!("cannot write {}: {e}", id_file.display())))
    }

    /// Starts driving `task`: a first activation as soon as this server holds its lease,
    /// then every period and on every wake, until shutdown. Returns its activator.
    pub fn register(&self, spec: TaskSpec, task: impl BackgroundTask) -> Activator {
        let (notify, held) = {
            let mut entries = self.inner.entries.lock().expect("tasks");
            let entry = entries.entry(spec.name).or_default();
            assert!(entry.spec.is_none(), "background task {} registered twice", spec.name);
            entry.spec = Some(spec);
            (entry.notify.clone(), entry.held_until.clone())
        };
        let shared = self.inner.clone();
        self.inner.loops.spawn(drive(shared, spec, task, notify.clone(), held));
        Activator(notify)
    }

    /// The activator of a task by name, whether or not it is registered yet (a wake
    /// before its registration is kept for its first round).
    pub fn activator(&self, name: &'static str) -> Activator {
        Activator(self.inner.entries.lock().expect("tasks").entry(name).or_default().notify.clone())
    }

    /// The tasks registered on this server.
    pub fn specs(&self) -> Vec<TaskSpec> {
        self.inner.entries.lock().expect("tasks").values().filter_map(|e| e.spec).collect()
    }

    /// Whether this server holds the task's lease now (so it is the one to run it).
    pub fn holds(&self, name: &str) -> bool {
        let entries = self.inner.entries.lock().expect("tasks");
        let Some(entry) = entries.get(name) else { return false };
        entry.held_until.lock().expect("lease").is_some_and(|until| until > Instant::now())
    }

    /// Waits up to `grace` for every task to finish its running activation and give up
    /// its lease (call after the shutdown token is cancelled). A task still running then
    /// keeps its lease until it expires, so no other server starts it meanwhile.
    pub async fn stop(&self, grace: Duration) {
        self.inner.loops.close();
        if tokio::time::timeout(grace, self.inner.loops.wait()).await.is_err() {
            tracing::warn!("background tasks still running after {}s; stopping anyway", grace.as_secs());
        }
    }
}

/// The loop of one task.
async fn drive<T: BackgroundTask>(
    shared: Arc<Shared>,
    spec: TaskSpec,
    mut task: T,
    notify: Arc<Notify>,
    held_until: Arc<Mutex<Option<Instant>>>,
) {
    let name = spec.name;
    let ttl = shared.leases.ttl();
    let renew_every = ttl / 3;
    let holds = |now: Instant| held_until.lock().expect("lease").is_some_and(|until| until > now);
    let set_held = |until: Option<Instant>| *held_until.lock().expect("lease") = until;
    let mut next_due = Instant::now();
    let mut next_lease = Instant::now();
    // The start of the last activation here (ms): a run asked for after it is still owed.
    let mut last_start = 0i64;
    let mut last_error: Option<String> = None;
    loop {
        let mut woken = false;
        tokio::select! {
            biased;
            _ = shared.shutdown.cancelled() => break,
            _ = notify.notified() => woken = true,
            _ = tokio::time::sleep_until(next_due.min(next_lease)) => {}
        }
        let now = Instant::now();
        let mut due = woken || now >= next_due;
        if now >= next_lease || (due && !holds(now)) {
            let had = holds(now);
            match shared.leases.acquire(&spec, &shared.server_id).await {
                Ok(Some(held)) => {
                    set_held(Some(now + ttl));
                    if !had {
                        // Taken over (or first taken): whatever the last holder left, run now.
                        tracing::debug!(task = name, server = %shared.server_id, "background task lease taken");
                        due = true;
                    }
                    due |= held.wake_requested_at.is_some_and(|at| at > last_start);
                }
                Ok(None) => {
                    if had {
                        tracing::info!(task = name, "another server took this background task's lease");
                    }
                    set_held(None);
                    if woken && let Err(e) = shared.leases.forward(name).await {
                        tracing::warn!(task = name, error = %e, "cannot pass a wake to the lease holder");
                    }
                }
                // The lease (if any) lapses on its own time; the next try is a third of it away.
                Err(e) => tracing::warn!(task = name, error = %e, "cannot take or renew a background task's lease"),
            }
            next_lease = now + renew_every;
        }
        if !due {
            continue;
        }
        if !holds(Instant::now()) {
            next_due = now + spec.period;
            continue;
        }

        let started = Instant::now();
        let started_at = roost_store::now_ms();
        last_start = started_at;
        tracing::debug!(task = name, server = %shared.server_id, "background task activation started");
        let activation = AssertUnwindSafe(task.activate()).catch_unwind();
        tokio::pin!(activation);
        // Long activations keep the lease.
        let result = loop {
            tokio::select! {
                result = &mut activation => break result,
                _ = tokio::time::sleep(renew_every) => {
                    let now = Instant::now();
                    match shared.leases.acquire(&spec, &shared.server_id).await {
                        Ok(Some(_)) => set_held(Some(now + ttl)),
                        Ok(None) => {
                            set_held(None);
                            tracing::error!(task = name, "lost a background task's lease while running it");
                        }
                        Err(e) => tracing::warn!(task = name, error = %e, "cannot renew a background task's lease"),
                    }
                }
            }
        };
        let elapsed = started.elapsed();
        let result = result.unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(crate::Error::internal(format!("the task panicked: {what}")))
        });
        tracing::debug!(
            task = name,
            elapsed_ms = elapsed.as_millis() as u64,
            ok = result.is_ok(),
            "background task activation finished"
        );
        let (ok, details) = match &result {
            Ok(summary) => {
                if last_error.take().is_some() {
                    tracing::info!(task = name, "background task recovered");
                }
                (true, summary.to_string())
            }
            Err(e) => {
                // Once per distinct error, not every period while it persists.
                if last_error.as_deref() == Some(e.message.as_str()) {
                    tracing::debug!(task = name, error = %e.message, "background task failed again");
                } else {
                    tracing::warn!(task = name, error = %e.message, "background task failed");
                    last_error = Some(e.message.clone());
                }
                (false, e.message.clone())
            }
        };
        next_due = started + spec.period;
        let now = Instant::now();
        let record = TaskRunRecord {
            server: &shared.server_id,
            started_at,
            elapsed_ms: elapsed.as_millis() as i64,
            ok,
            details: &details,
            next_run_at: started_at + ms(spec.period),
            lease_until: roost_store::now_ms() + ms(ttl),
        };
        match shared.leases.record(name, record).await {
            Ok(Some(held)) => {
                set_held(Some(now + ttl));
                // Asked for (here or on another server) while this one ran: go again.
                if held.wake_requested_at.is_some_and(|at| at > started_at) {
                    notify.notify_one();
                }
            }
            Ok(None) => {
                set_held(None);
                tracing::warn!(task = name, "another server took this background task's lease while it ran");
            }
            Err(e) => tracing::warn!(task = name, error = %e, "cannot record a background task's activation"),
        }
        next_lease = now + renew_every;
    }
    if held_until.lock().expect("lease").take().is_some()
        && let Err(e) = shared.leases.release(name, &shared.server_id).await
    {
        tracing::warn!(task = name, error = %e, "cannot release a background task's lease");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Counts its activations and how many ran at once; each takes `takes`.
    #[derive(Clone, Default)]
    struct Probe {
        runs: Arc<AtomicUsize>,
        running: Arc<AtomicUsize>,
        most_at_once: Arc<AtomicUsize>,
        takes: Duration,
    }

    impl BackgroundTask for Probe {
        async fn activate(&mut self) -> Result<serde_json::Value> {
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_at_once.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(self.takes).await;
            self.running.fetch_sub(1, Ordering::SeqCst);
            let n = self.runs.fetch_add(1, Ordering::SeqCst) + 1;
            Ok(serde_json::json!({ "runs": n }))
        }
    }

    fn driver() -> (Tasks, CancellationToken) {
        let shutdown = CancellationToken::new();
        (Tasks::with_leases(Leases::Always, "srv-test".into(), shutdown.clone()), shutdown)
    }

    fn spec(period: Duration) -> TaskSpec {
        TaskSpec { name: "probe", description: "counts", period }
    }

    /// Lets the driver's loop run up to `t` of (paused) time from now.
    async fn advance(t: Duration) {
        tokio::time::sleep(t).await;
    }

    #[tokio::test(start_paused = true)]
    async fn runs_at_once_then_every_period() {
        let (tasks, _) = driver();
        let probe = Probe::default();
        tasks.register(spec(Duration::from_secs(10)), probe.clone());
        advance(Duration::from_millis(1)).await;
        assert_eq!(probe.runs.load(Ordering::SeqCst), 1, "the first activation comes at once");
        advance(Duration::from_secs(35)).await;
        // At 0, 10, 20 and 30 s.
        assert_eq!(probe.runs.load(Ordering::SeqCst), 4);
        assert!(tasks.holds("probe"));
    }

    #[tokio::test(start_paused = true)]
    async fn wakes_during_an_activation_coalesce_into_one_more() {
        let (tasks, _) = driver();
        let probe = Probe { takes: Duration::from_secs(5), ..Default::default() };
        let activator = tasks.register(spec(Duration::from_secs(3600)), probe.clone());
        advance(Duration::from_secs(1)).await;
        assert_eq!(probe.running.load(Ordering::SeqCst), 1, "the first activation is running");
        for _ in 0..10 {
            activator.activate();
        }
        advance(Duration::from_secs(60)).await;
        assert_eq!(probe.runs.load(Ordering::SeqCst), 2, "ten wakes during a run make one more run");
        assert_eq!(probe.most_at_once.load(Ordering::SeqCst), 1);
        // A wake when idle runs it at once, without waiting for the period.
        activator.activate();
        advance(Duration::from_secs(6)).await;
        assert_eq!(probe.runs.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn activations_never_overlap() {
        let (tasks, _) = driver();
        // Activations longer than the period, and wakes all the time.
        let probe = Probe { takes: Duration::from_millis(300), ..Default::default() };
        let activator = tasks.register(spec(Duration::from_millis(100)), probe.clone());
        for _ in 0..50 {
            activator.activate();
            advance(Duration::from_millis(70)).await;
        }
        assert!(probe.runs.load(Ordering::SeqCst) >= 10);
        assert_eq!(probe.most_at_once.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_wake_before_registration_is_kept() {
        let (tasks, _) = driver();
        let early = tasks.activator("probe");
        early.activate();
        let probe = Probe::default();
        tasks.register(spec(Duration::from_secs(3600)), probe.clone());
        advance(Duration::from_secs(1)).await;
        // The first activation, and the one the early wake asked for (it may be the same
        // round or one more; never none).
        assert!(probe.runs.load(Ordering::SeqCst) >= 1);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_finishes_the_running_activation_and_stops() {
        let (tasks, shutdown) = driver();
        let probe = Probe { takes: Duration::from_secs(2), ..Default::default() };
        let activator = tasks.register(spec(Duration::from_secs(1)), probe.clone());
        advance(Duration::from_millis(500)).await;
        shutdown.cancel();
        tasks.stop(Duration::from_secs(30)).await;
        assert_eq!(probe.runs.load(Ordering::SeqCst), 1, "the running activation finished");
        assert_eq!(probe.running.load(Ordering::SeqCst), 0);
        activator.activate();
        advance(Duration::from_secs(10)).await;
        assert_eq!(probe.runs.load(Ordering::SeqCst), 1, "nothing runs after shutdown");
        assert!(!tasks.holds("probe"), "the lease is given up");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_or_panic_is_an_outcome_not_the_end() {
        struct Flaky(Arc<AtomicUsize>);
        impl BackgroundTask for Flaky {
            async fn activate(&mut self) -> Result<serde_json::Value> {
                match self.0.fetch_add(1, Ordering::SeqCst) + 1 {
                    1 => Err(crate::Error::internal("first round fails")),
                    2 => panic!("second round panics"),
                    n => Ok(serde_json::json!({ "round": n })),
                }
            }
        }
        let (tasks, _) = driver();
        let rounds = Arc::new(AtomicUsize::new(0));
        let activator = tasks.register(spec(Duration::from_secs(3600)), Flaky(rounds.clone()));
        for _ in 0..3 {
            advance(Duration::from_secs(1)).await;
            activator.activate();
        }
        advance(Duration::from_secs(1)).await;
        // Still driven after both: the loop survived.
        assert_eq!(rounds.load(Ordering::SeqCst), 4);
        assert!(tasks.holds("probe"));
    }
}
