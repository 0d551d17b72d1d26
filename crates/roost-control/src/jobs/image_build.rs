//! `image.build` as a job: the Debian build on the node, then the image's row made
//! ready. The row itself is made by the request (it answers with the image building);
//! the first step's undo marks it failed with the job's error, as a failed build always
//! showed. Resumable: a build is reused when its contents exist and recording is
//! written again, so a restart finishes a build a crash cut short.

use serde::{Deserialize, Serialize};

use super::{JobContext, JobKind, Step, StepFuture};

pub(crate) struct ImageBuild;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ImageBuildParams {
    pub image_id: String,
    pub project_id: String,
    pub name: String,
    pub suite: String,
    pub packages: Vec<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct ImageBuildState {
    pub digest: Option<String>,
    pub size_bytes: u64,
}

type Cx = JobContext<ImageBuild>;

impl JobKind for ImageBuild {
    const KIND: &'static str = "image.build";
    const RESUMABLE: bool = true;
    const STEPS: &'static [Step<Self>] = &[
        Step { name: "register the image", run: registered, undo: fail_image },
        Step { name: "build the Debian image", run: build, undo: remove_contents },
        Step { name: "record the image", run: record, undo: unrecord },
    ];
    type Params = ImageBuildParams;
    type State = ImageBuildState;

    fn finish(cx: &mut Cx) -> StepFuture<'_, Option<serde_json::Value>> {
        Box::pin(async move {
            Ok(Some(serde_json::json!({
                "image_id": cx.params.image_id,
                "digest": cx.state.digest,
                "size_bytes": cx.state.size_bytes,
            })))
        })
    }
}

/// The request inserted the row (`building`) with the job.
fn registered(_: &mut Cx) -> StepFuture<'_> {
    Box::pin(async { Ok(()) })
}

fn fail_image(cx: &mut Cx) -> StepFuture<'_> {
    Box::pin(async move {
        let reason = cx.op.row().error_message.clone().unwrap_or_else(|| "the build failed".into());
        cx.control.fail_image_build(&cx.params.image_id, &reason).await
    })
}

fn build(cx: &mut Cx) -> StepFuture<'_> {
    Box::pin(async move {
        let (digest, size) = cx.control.build_debian_contents(&cx.params, &mut cx.op).await?;
        (cx.state.digest, cx.state.size_bytes) = (Some(digest), size);
        Ok(())
    })
}

/// A build cut short leaves no contents (the node builds into a temporary directory).
fn remove_contents(cx: &mut Cx) -> StepFuture<'_> {
    Box::pin(async move {
        let Some(digest) = &cx.state.digest else { return Ok(()) };
        cx.control.remove_unshared_contents(&cx.params.image_id, digest).await
    })
}

fn record(cx: &mut Cx) -> StepFuture<'_> {
    Box::pin(async move {
        let digest = cx.state.digest.clone().ok_or_else(|| crate::Error::internal("the build made no contents"))?;
        cx.control.record_image_build(&cx.params.image_id, &digest, cx.state.size_bytes).await
    })
}

fn unrecord(cx: &mut Cx) -> StepFuture<'_> {
    Box::pin(async move { cx.control.unrecord_image_build(&cx.params.image_id).await })
}
