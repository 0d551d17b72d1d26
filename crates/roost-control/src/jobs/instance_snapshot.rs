//! `instance.snapshot` as a job: the archive of the container's changes, the instance
//! snapshot's row, a snapshot of each attached volume. Not resumable (the instance may
//! have changed while the server was down, so a resumed snapshot would mix two moments):
//! a restart unwinds it.

use serde::{Deserialize, Serialize};

use super::{JobContext, JobKind, Step, StepFuture};

pub(crate) struct InstanceSnapshotJob;

/// What an instance snapshot is given (every id chosen before any step runs).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct InstanceSnapshotParams {
    pub id: String,
    pub instance_id: String,
    pub project_id: String,
    pub name: String,
    pub description: Option<String>,
    pub user_id: String,
    pub volumes: Vec<VolumeSnapshotPlan>,
}

/// One attached volume and the id and name of its snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct VolumeSnapshotPlan {
    pub volume_id: String,
    pub snapshot_id: String,
    pub name: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct InstanceSnapshotState {
    pub rootfs_bytes: u64,
}

type Cx = JobContext<InstanceSnapshotJob>;

impl JobKind for InstanceSnapshotJob {
    const KIND: &'static str = "instance.snapshot";
    const RESUMABLE: bool = false;
    const STEPS: &'static [Step<Self>] = &[
        Step { name: "archive the root filesystem changes", run: archive, undo: remove_archive },
        Step { name: "record the instance snapshot", run: record, undo: unrecord },
        Step { name: "snapshot the volumes", run: snapshot_volumes, undo: remove_volume_snapshots },
    ];
    type Params = InstanceSnapshotParams;
    type State = InstanceSnapshotState;

    fn finish(cx: &mut Cx) -> StepFuture<'_, Option<serde_json::Value>> {
        Box::pin(async move { Ok(Some(serde_json::json!({"instance_snapshot_id": cx.params.id}))) })
    }
}

fn archive(cx: &mut Cx) -> StepFuture<'_> {
    Box::pin(async move {
        cx.state.rootfs_bytes = cx.control.archive_instance(&cx.params.instance_id, &cx.params.id).await?;
        Ok(())
    })
}

fn remove_archive(cx: &mut Cx) -> StepFuture<'_> {
    Box::pin(async move { cx.control.remove_instance_archive(&cx.params.id).await })
}

fn record(cx: &mut Cx) -> StepFuture<'_> {
    Box::pin(async move { cx.control.record_instance_snapshot(&cx.params, cx.state.rootfs_bytes).await })
}

fn unrecord(cx: &mut Cx) -> StepFuture<'_> {
    Box::pin(async move { cx.control.unrecord_instance_snapshot(&cx.params.id).await })
}

fn snapshot_volumes(cx: &mut Cx) -> StepFuture<'_> {
    Box::pin(async move { cx.control.snapshot_instance_volumes(&cx.params).await })
}

fn remove_volume_snapshots(cx: &mut Cx) -> StepFuture<'_> {
    Box::pin(async move { cx.control.remove_instance_volume_snapshots(&cx.params).await })
}
