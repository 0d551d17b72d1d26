//! `volume.resize` as a job: a copy of the volume kept, the growth, the new size
//! recorded. Resumable: each step may run again (the copy is taken again, growing to a
//! size the volume has is nothing, the size is written again), so a restart finishes a
//! resize a crash cut short. A failure restores the copy, so the volume is as it was;
//! a volume grown online (its instance runs) has no copy, and stays grown.

use serde::{Deserialize, Serialize};

use super::{JobContext, JobKind, Step, StepFuture};

pub(crate) struct VolumeResize;

/// What a resize is given (the copy's id chosen before any step runs).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct VolumeResizeParams {
    pub volume_id: String,
    pub from_size: i64,
    pub size: i64,
    /// The hidden snapshot that keeps the volume as it was; `None` for a volume in use
    /// (grown online, which cannot be undone).
    pub backup_id: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct VolumeResizeState {}

type Cx = JobContext<VolumeResize>;

impl JobKind for VolumeResize {
    const KIND: &'static str = "volume.resize";
    const RESUMABLE: bool = true;
    const STEPS: &'static [Step<Self>] = &[
        Step { name: "keep a copy of the volume", run: keep_copy, undo: drop_copy },
        Step { name: "grow the volume", run: grow, undo: put_copy_back },
        Step { name: "record the size", run: record, undo: unrecord },
    ];
    type Params = VolumeResizeParams;
    type State = VolumeResizeState;

    fn finish(cx: &mut Cx) -> StepFuture<'_, Option<serde_json::Value>> {
        Box::pin(async move {
            // The copy is not needed any more; a copy left by a failed removal is
            // removed by the volume cleanup at the next start (it has no row).
            if let Err(e) = cx.control.drop_volume_copy(cx.params.backup_id.as_deref()).await {
                tracing::warn!(volume = %cx.params.volume_id, error = %e.message, "cannot remove a resize's copy");
            }
            Ok(Some(serde_json::json!({"volume_id": cx.params.volume_id, "size_bytes": cx.params.size})))
        })
    }
}

fn keep_copy(cx: &mut Cx) -> StepFuture<'_> {
    Box::pin(async move { cx.control.keep_volume_copy(&cx.params.volume_id, cx.params.backup_id.as_deref()).await })
}

fn drop_copy(cx: &mut Cx) -> StepFuture<'_> {
    Box::pin(async move { cx.control.drop_volume_copy(cx.params.backup_id.as_deref()).await })
}

fn grow(cx: &mut Cx) -> StepFuture<'_> {
    Box::pin(async move { cx.control.grow_volume(&cx.params.volume_id, cx.params.from_size, cx.params.size).await })
}

fn put_copy_back(cx: &mut Cx) -> StepFuture<'_> {
    Box::pin(async move { cx.control.put_volume_copy_back(&cx.params.volume_id, cx.params.backup_id.as_deref()).await })
}

fn record(cx: &mut Cx) -> StepFuture<'_> {
    Box::pin(async move { cx.control.record_volume_size(&cx.params.volume_id, cx.params.size).await })
}

fn unrecord(cx: &mut Cx) -> StepFuture<'_> {
    Box::pin(async move { cx.control.record_volume_size(&cx.params.volume_id, cx.params.from_size).await })
}
