//! `instance.clone` as a job: the clone's rows, a copy of the root filesystem's changes,
//! a copy of each volume, the start. Not resumable (the source may have changed while
//! the server was down): a restart unwinds it.

use serde::{Deserialize, Serialize};

use super::{JobContext, JobKind, Step, StepFuture};
use crate::volumes::CloneParams;

pub(crate) struct CloneInstance;

/// The clone job keeps no state of its own: every id it makes is in its parameters.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct CloneState {}

type Cx = JobContext<CloneInstance>;

impl JobKind for CloneInstance {
    const KIND: &'static str = "instance.clone";
    const RESUMABLE: bool = false;
    const STEPS: &'static [Step<Self>] = &[
        Step { name: "create the instance", run: insert, undo: purge },
        Step { name: "copy root filesystem", run: copy_rootfs, undo: remove_rootfs },
        Step { name: "copy volumes", run: copy_volumes, undo: remove_volumes },
        Step { name: "start", run: start, undo: stop },
    ];
    type Params = CloneParams;
    type State = CloneState;

    fn finish(cx: &mut Cx) -> StepFuture<'_, Option<serde_json::Value>> {
        Box::pin(async move { Ok(Some(serde_json::json!({"instance_id": cx.params.clone_id}))) })
    }
}

fn insert(cx: &mut Cx) -> StepFuture<'_> {
    Box::pin(async move { cx.control.insert_clone(cx.principal()?, &cx.params).await })
}

fn purge(cx: &mut Cx) -> StepFuture<'_> {
    Box::pin(async move { cx.control.purge_instance(&cx.params.clone_id).await })
}

fn copy_rootfs(cx: &mut Cx) -> StepFuture<'_> {
    Box::pin(async move { cx.control.copy_clone_rootfs(&cx.params.source_id, &cx.params.clone_id).await })
}

fn remove_rootfs(cx: &mut Cx) -> StepFuture<'_> {
    Box::pin(async move { cx.control.remove_clone_rootfs(&cx.params.clone_id).await })
}

fn copy_volumes(cx: &mut Cx) -> StepFuture<'_> {
    Box::pin(async move { cx.control.copy_clone_volumes(&cx.params).await })
}

fn remove_volumes(cx: &mut Cx) -> StepFuture<'_> {
    Box::pin(async move { cx.control.remove_clone_volumes(&cx.params).await })
}

fn start(cx: &mut Cx) -> StepFuture<'_> {
    Box::pin(async move {
        if !cx.params.start {
            return Ok(());
        }
        cx.control.start_and_wait(&cx.params.clone_id).await
    })
}

/// The container goes (its volumes unmount) before the volume copies are removed.
fn stop(cx: &mut Cx) -> StepFuture<'_> {
    Box::pin(async move { cx.control.delete_from_node(&cx.params.clone_id).await })
}
