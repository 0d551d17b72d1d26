//! Jobs: multi-step work as named steps, each with its undo, persisted on the
//! operation that reports it (a job IS an operation: `operations.job_*`).
//!
//! A job kind ([`JobKind`]) declares its parameters, the state its steps accumulate and
//! an ordered list of [`Step`]s. The engine runs the steps in order; after each one it
//! writes the step reached and the state to the operation's row, so the row always tells
//! what has been done. When a step fails, the engine undoes that step (it may be half
//! done) and every completed one in reverse, then marks the operation failed with the
//! step's error and audits the failure. At start ([`Control::resume_jobs`]) every job a
//! stopped server left unfinished is resumed from its step when its kind says its steps
//! may run again (`RESUMABLE`), and otherwise unwound the same way; so after a crash or
//! `kill -9` nothing half-made stays.
//!
//! Writing a step: `run` does one thing by calling one existing function, records in
//! the state what a later step or its own undo needs, and must leave things so that its
//! `undo` can remove them. `undo` must be idempotent and tolerate a step that never ran
//! or stopped half-way (ids an undo needs are chosen in the parameters, before any step
//! runs, so a step cut off before its state was saved is still undone).
//!
//! Test hooks (read from the environment, see docs/operations.md): `ROOST_JOB_FAIL_AT`
//! makes a step fail after it ran, `ROOST_JOB_CRASH_AT` aborts the process right after
//! a step's state is saved.

pub(crate) mod clone_instance;
mod hooks;
pub(crate) use hooks::JobHookEntries;
pub(crate) mod image_build;
pub(crate) mod instance_snapshot;
pub(crate) mod template_build;
pub(crate) mod volume_resize;
pub(crate) mod volume_restore;

use std::future::Future;
use std::pin::Pin;

use roost_api::ErrorCode;
use roost_api::operations::Operation;
use roost_store::operations::OperationRow;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::kernel::Change;
use crate::operations::OperationHandle;
use crate::{Control, Error, Principal, RequestContext, Result};

/// What a step's `run` and `undo` return.
pub(crate) type StepFuture<'a, T = ()> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;
/// A step's `run` or `undo`.
pub(crate) type StepFn<K> = for<'a> fn(&'a mut JobContext<K>) -> StepFuture<'a>;

/// One named step of a job kind.
pub(crate) struct Step<K: JobKind> {
    /// For people: "copy root filesystem" (the operation shows "step 2/4: copy root filesystem").
    pub name: &'static str,
    pub run: StepFn<K>,
    /// Removes what `run` made; idempotent, and fine on a step that never ran or stopped
    /// half-way.
    pub undo: StepFn<K>,
}

/// A kind of job: its operation kind, parameters, state and steps.
pub(crate) trait JobKind: Sized + Send + Sync + 'static {
    /// The operation's kind, e.g. `instance.clone`.
    const KIND: &'static str;
    /// Whether a restart may run the step it stopped in again and go on (each `run` is
    /// then idempotent); otherwise a restart unwinds the job.
    const RESUMABLE: bool;
    const STEPS: &'static [Step<Self>];
    /// Chosen when the job is asked for; stored with the operation.
    type Params: Serialize + DeserializeOwned + Send + Sync;
    /// What the steps found and made, saved after each step.
    type State: Serialize + DeserializeOwned + Default + Send + Sync;

    /// The operation's result once every step has run (nothing is undone after this).
    fn finish(cx: &mut JobContext<Self>) -> StepFuture<'_, Option<serde_json::Value>>;
}

/// What a step is given: the control plane, the parameters and the state of earlier steps.
pub(crate) struct JobContext<K: JobKind> {
    pub control: Control,
    pub params: K::Params,
    pub state: K::State,
    /// Who asked, while the server that took the request runs it; `None` for a job
    /// taken over after a restart (its steps run as the server, or are undone).
    pub principal: Option<Principal>,
    /// The job's operation, for progress within a long step.
    pub op: OperationHandle,
}

impl<K: JobKind> JobContext<K> {
    /// The user who asked for the job (steps that act with their rights need it).
    pub fn principal(&self) -> Result<&Principal> {
        self.principal.as_ref().ok_or_else(|| Error::internal(format!("{}: no requester after a restart", K::KIND)))
    }
}

/// A job being run.
pub(crate) struct Job<K: JobKind> {
    cx: JobContext<K>,
    /// The next step to run (the one running, while a step runs).
    next: usize,
    hooks: hooks::JobHooks,
}

impl Control {
    /// Records a new job as part of `change` (its operation, with the parameters) and
    /// returns it; nothing runs until [`Job::run_until`] or [`Job::spawn`].
    pub(crate) async fn new_job<K: JobKind>(
        &self,
        change: &mut Change<'_>,
        principal: &Principal,
        resource: Option<(&str, &str)>,
        params: K::Params,
    ) -> Result<Job<K>> {
        let encoded =
            serde_json::to_string(&params).map_err(|e| Error::internal(format!("{} parameters: {e}", K::KIND)))?;
        let op = self
            .new_job_operation(change, principal, K::KIND, resource, (encoded, K::STEPS.len(), K::STEPS[0].name))
            .await?;
        let cx = JobContext {
            control: self.clone(),
            params,
            state: K::State::default(),
            principal: Some(principal.clone()),
            op,
        };
        Ok(Job { cx, next: 0, hooks: self.inner_job_hooks().take(K::KIND) })
    }

    fn inner_job_hooks(&self) -> &JobHookEntries {
        &self.inner.job_hooks
    }

    /// A test hook: the next jobs of `kind` fail right after the given (1-based) steps,
    /// one entry per job in order (`0` lets one through), as `ROOST_JOB_FAIL_AT` does
    /// for a server's process; for tests that run the control plane in their process.
    pub fn inject_job_failures(&self, kind: &str, steps: &[usize]) {
        self.inner_job_hooks().inject(kind, steps);
    }

    /// Takes over the jobs a stopped server left unfinished: each is resumed or unwound,
    /// one after the other, in a task (call once the node is attached: undoing needs it).
    pub fn resume_jobs(&self) {
        let control = self.clone();
        tokio::spawn(async move {
            let jobs = match control.store().unfinished_jobs().await {
                Ok(jobs) => jobs,
                Err(e) => {
                    tracing::error!(error = %e, "cannot list the jobs a restart interrupted");
                    return;
                }
            };
            for row in jobs {
                tracing::warn!(operation = %row.id, kind = %row.kind, step = ?row.job_step, "taking over a job a restart interrupted");
                match row.kind.as_str() {
                    clone_instance::CloneInstance::KIND => {
                        control.take_over::<clone_instance::CloneInstance>(row).await
                    }
                    template_build::TemplateBuild::KIND => {
                        control.take_over::<template_build::TemplateBuild>(row).await
                    }
                    volume_resize::VolumeResize::KIND => control.take_over::<volume_resize::VolumeResize>(row).await,
                    volume_restore::VolumeRestore::KIND => {
                        control.take_over::<volume_restore::VolumeRestore>(row).await
                    }
                    instance_snapshot::InstanceSnapshotJob::KIND => {
                        control.take_over::<instance_snapshot::InstanceSnapshotJob>(row).await
                    }
                    image_build::ImageBuild::KIND => control.take_over::<image_build::ImageBuild>(row).await,
                    _ => {
                        let mut op = OperationHandle::from_row(&control, row);
                        op.set_error("interrupted", "the server stopped before the operation finished");
                        op.finish_failed().await;
                    }
                }
            }
        });
    }

    async fn take_over<K: JobKind>(&self, row: OperationRow) {
        let decoded = (|| {
            let params: K::Params = serde_json::from_str(row.job_params.as_deref().unwrap_or("null"))?;
            let state = match serde_json::from_str(row.job_state.as_deref().unwrap_or("null"))? {
                serde_json::Value::Null => K::State::default(),
                state => serde_json::from_value(state)?,
            };
            Ok::<_, serde_json::Error>((params, state))
        })();
        let step = row.job_step.unwrap_or(0).clamp(0, K::STEPS.len() as i64) as usize;
        let unwinding = row.job_unwinding != 0;
        let mut op = OperationHandle::from_row(self, row);
        let (params, state) = match decoded {
            Ok(decoded) => decoded,
            Err(e) => {
                tracing::error!(operation = %op.id(), error = %e, "an interrupted job's parameters cannot be read; it is not undone");
                op.set_error("interrupted", "the server stopped before the operation finished");
                op.finish_failed().await;
                return;
            }
        };
        let cx = JobContext { control: self.clone(), params, state, principal: None, op };
        let mut job = Job::<K> { cx, next: step, hooks: hooks::JobHooks::default() };
        let n = K::STEPS.len();
        if unwinding {
            // Its error was recorded when the undo began.
            job.unwind(step, None).await;
        } else if step >= n {
            let _ = job.finish().await;
        } else if K::RESUMABLE {
            job.run_to_end().await;
        } else {
            let error = format!(
                "the server stopped during step {}/{n} ({}); the job's steps were undone",
                step + 1,
                K::STEPS[step].name
            );
            job.unwind(step, Some(("interrupted", error))).await;
        }
    }
}

impl<K: JobKind> Job<K> {
    pub fn operation(&self) -> Operation {
        self.cx.op.to_api()
    }

    pub fn params(&self) -> &K::Params {
        &self.cx.params
    }

    /// Runs the steps before `until` (in the request, for steps whose outcome the
    /// response must tell). When one fails, the job is unwound and failed, and the
    /// step's error is returned: the job is over.
    pub async fn run_until(&mut self, until: usize) -> Result<()> {
        let n = K::STEPS.len();
        while self.next < until.min(n) {
            let i = self.next;
            let step = &K::STEPS[i];
            let percent = (i * 100 / n).min(99) as u8;
            self.cx.op.set_job_position(i, step.name, false, None);
            let mut result = self.cx.op.progress_checked(percent, &format!("step {}/{n}: {}", i + 1, step.name)).await;
            if result.is_ok() {
                result = (step.run)(&mut self.cx).await;
            }
            if result.is_ok() && self.hooks.fail_at == Some(i + 1) {
                result = Err(Error::new(
                    ErrorCode::Unavailable,
                    format!("injected failure after step {}/{n} ({}) by ROOST_JOB_FAIL_AT", i + 1, step.name),
                ));
            }
            if result.is_ok() {
                // What the step made is known to the store before the next one starts.
                result = match serde_json::to_string(&self.cx.state) {
                    Ok(state) => {
                        let name = K::STEPS.get(i + 1).map_or(step.name, |s| s.name);
                        self.cx.op.set_job_position(i + 1, name, false, Some(state));
                        self.cx
                            .op
                            .progress_checked(
                                (((i + 1) * 100 / n).min(99)) as u8,
                                &format!("step {}/{n} done: {}", i + 1, step.name),
                            )
                            .await
                    }
                    Err(e) => Err(Error::internal(format!("{} state: {e}", K::KIND))),
                };
            }
            if let Err(e) = result {
                tracing::warn!(operation = %self.cx.op.id(), kind = K::KIND, step = step.name, error = %e.message, "a job's step failed; undoing its steps");
                self.unwind(i, Some((e.code.as_str(), e.public_message().to_string()))).await;
                return Err(e);
            }
            self.next = i + 1;
            if self.hooks.crash_at == Some(i + 1) {
                // A test hook: as `kill -9` would, right after the step's state is saved.
                tracing::warn!(kind = K::KIND, step = i + 1, "ROOST_JOB_CRASH_AT: aborting the process");
                std::process::abort();
            }
        }
        Ok(())
    }

    /// Runs the remaining steps in a task of its own and finishes the operation.
    pub fn spawn(self) {
        tokio::spawn(self.run_to_end());
    }

    /// The remaining steps, then the result.
    pub async fn run_to_end(self) {
        let _ = self.run_inline().await;
    }

    /// Runs the remaining steps in the caller's task and finishes the operation: for a
    /// request whose answer is the job's outcome (it answered synchronously before it
    /// was a job). Returns the operation's result, or the failed step's error once the
    /// job is unwound.
    pub async fn run_inline(mut self) -> Result<Option<serde_json::Value>> {
        self.run_until(usize::MAX).await?;
        self.finish().await
    }

    async fn finish(mut self) -> Result<Option<serde_json::Value>> {
        match K::finish(&mut self.cx).await {
            Ok(result) => {
                self.cx.op.succeed(result.clone()).await;
                Ok(result)
            }
            Err(e) => {
                let last = K::STEPS.len() - 1;
                self.unwind(last, Some((e.code.as_str(), e.public_message().to_string()))).await;
                Err(e)
            }
        }
    }

    /// Undoes step `from` (which may be half done) and every one before it, in reverse,
    /// then fails the operation with `error` (`None`: the one recorded when an earlier
    /// run began the undo) and audits the failure.
    async fn unwind(&mut self, from: usize, error: Option<(&str, String)>) {
        let n = K::STEPS.len();
        let from = from.min(n - 1);
        if let Some((code, message)) = &error {
            self.cx.op.set_error(code, message);
        }
        let mut undo_failed = None;
        for i in (0..=from).rev() {
            let step = &K::STEPS[i];
            let state = serde_json::to_string(&self.cx.state).ok();
            self.cx.op.set_job_position(i, step.name, true, state);
            let percent = (i * 100 / n).min(99) as u8;
            if let Err(e) =
                self.cx.op.progress_checked(percent, &format!("undoing step {}/{n}: {}", i + 1, step.name)).await
            {
                tracing::warn!(operation = %self.cx.op.id(), error = %e.message, "cannot record a job's undo");
            }
            if let Err(e) = (step.undo)(&mut self.cx).await {
                tracing::error!(operation = %self.cx.op.id(), kind = K::KIND, step = step.name, error = %e.message, "undoing a job's step failed; what it made may remain");
                undo_failed.get_or_insert((i, e.public_message().to_string()));
            }
        }
        let row = self.cx.op.row();
        let (code, message) = (
            row.error_code.clone().unwrap_or_else(|| "interrupted".into()),
            row.error_message.clone().unwrap_or_default(),
        );
        let mut note = format!(
            "step {}/{n} ({}) failed; its work and the steps before it were undone",
            from + 1,
            K::STEPS[from].name
        );
        if let Some((i, e)) = undo_failed {
            note = format!(
                "step {}/{n} ({}) failed; undoing step {} failed too ({e})",
                from + 1,
                K::STEPS[from].name,
                i + 1
            );
        }
        // The operation shows the step the job failed at.
        self.cx.op.set_job_position(from, K::STEPS[from].name, false, None);
        self.cx.op.set_error(&code, &message);
        self.cx.op.set_message(&note);
        let (actor, token) = match &self.cx.principal {
            Some(p) => (p.user_id.clone(), p.token_id.clone()),
            None => (self.cx.op.row().created_by.clone().unwrap_or_else(|| crate::audit::SYSTEM_ACTOR.into()), None),
        };
        let ctx = RequestContext::default();
        let op_id = self.cx.op.id().to_string();
        self.cx
            .control
            .audit_failure(&ctx, &actor, token, K::KIND, Some(("operation", &op_id)), &format!("failure: {code}"), None)
            .await;
        // Final last: whoever waits for the operation finds the audit entry there.
        self.cx.op.finish_failed().await;
    }
}
