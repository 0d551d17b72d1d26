//! `volume.restore` as a job: a copy of the volume kept, the snapshot's content copied
//! over it, the snapshot's size recorded. Not resumable (the volume's instance may be
//! started again after a restart): a restart unwinds it, putting the copy back.

use serde::{Deserialize, Serialize};

use super::{JobContext, JobKind, Step, StepFuture};

pub(crate) struct VolumeRestore;

/// What a restore is given (the copy's id chosen before any step runs).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct VolumeRestoreParams {
    pub volume_id: String,
    pub snapshot_id: String,
    pub from_size: i64,
    /// The snapshot's size, the volume's after the restore.
    pub size: i64,
    /// The hidden snapshot that keeps the volume as it was.
    pub backup_id: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct VolumeRestoreState {}

type Cx = JobContext<VolumeRestore>;

impl JobKind for VolumeRestore {
    const KIND: &'static str = "volume.restore";
    const RESUMABLE: bool = false;
    const STEPS: &'static [Step<Self>] = &[
        Step { name: "keep a copy of the volume", run: keep_copy, undo: drop_copy },
        Step { name: "restore the snapshot", run: restore, undo: put_copy_back },
        Step { name: "record the size", run: record, undo: unrecord },
    ];
    type Params = VolumeRestoreParams;
    type State = VolumeRestoreState;

    fn finish(cx: &mut Cx) -> StepFuture<'_, Option<serde_json::Value>> {
        Box::pin(async move {
            if let Err(e) = cx.control.drop_volume_copy(Some(&cx.params.backup_id)).await {
                tracing::warn!(volume = %cx.params.volume_id, error = %e.message, "cannot remove a restore's copy");
            }
            Ok(Some(serde_json::json!({"volume_id": cx.params.volume_id, "snapshot_id": cx.params.snapshot_id})))
        })
    }
}

fn keep_copy(cx: &mut Cx) -> StepFuture<'_> {
    Box::pin(async move { cx.control.keep_volume_copy(&cx.params.volume_id, Some(&cx.params.backup_id)).await })
}

fn drop_copy(cx: &mut Cx) -> StepFuture<'_> {
    Box::pin(async move { cx.control.drop_volume_copy(Some(&cx.params.backup_id)).await })
}

fn restore(cx: &mut Cx) -> StepFuture<'_> {
    Box::pin(async move { cx.control.restore_volume_content(&cx.params.volume_id, &cx.params.snapshot_id).await })
}

fn put_copy_back(cx: &mut Cx) -> StepFuture<'_> {
    Box::pin(async move { cx.control.put_volume_copy_back(&cx.params.volume_id, Some(&cx.params.backup_id)).await })
}

fn record(cx: &mut Cx) -> StepFuture<'_> {
    Box::pin(async move { cx.control.record_volume_size(&cx.params.volume_id, cx.params.size).await })
}

fn unrecord(cx: &mut Cx) -> StepFuture<'_> {
    Box::pin(async move { cx.control.record_volume_size(&cx.params.volume_id, cx.params.from_size).await })
}
