//! `sandbox_template.build` as a job: plan (cache lookup), the build container, the
//! commands, the snapshot into the image store, the container's removal, the template's
//! rows. Not resumable (the container's processes died with the server): a restart
//! unwinds it. A cache hit skips the container steps.

use super::{JobContext, JobKind, Step, StepFuture};
use crate::Error;
use crate::sandbox_templates::{Built, TemplateBuildParams, TemplateBuildState};

pub(crate) struct TemplateBuild;

type Cx = JobContext<TemplateBuild>;

impl JobKind for TemplateBuild {
    const KIND: &'static str = "sandbox_template.build";
    const RESUMABLE: bool = false;
    const STEPS: &'static [Step<Self>] = &[
        Step { name: "look up the build cache", run: plan, undo: nothing },
        Step { name: "start the build container", run: start_container, undo: remove_container },
        Step { name: "run the commands", run: run_commands, undo: nothing },
        Step { name: "save the root filesystem", run: save_rootfs, undo: remove_contents },
        Step { name: "remove the build container", run: remove_container, undo: nothing },
        Step { name: "record the template", run: record, undo: unrecord },
    ];
    type Params = TemplateBuildParams;
    type State = TemplateBuildState;

    fn finish(cx: &mut Cx) -> StepFuture<'_, Option<serde_json::Value>> {
        Box::pin(async move {
            let done = cx.control.finish_template_build(cx.principal.as_ref(), &cx.params, &cx.state).await?;
            Ok(serde_json::to_value(&done).ok())
        })
    }
}

fn nothing(_: &mut Cx) -> StepFuture<'_> {
    Box::pin(async { Ok(()) })
}

fn plan(cx: &mut Cx) -> StepFuture<'_> {
    Box::pin(async move {
        cx.state = cx.control.plan_template_build(&cx.params, &mut cx.op).await?;
        Ok(())
    })
}

fn start_container(cx: &mut Cx) -> StepFuture<'_> {
    Box::pin(async move {
        if cx.state.hit {
            return Ok(());
        }
        cx.state.build_started_at = roost_store::now_ms();
        let p = cx.principal()?.clone();
        let id = cx.control.start_build_container(&p, &cx.params, &cx.state, &mut cx.op).await?;
        cx.state.instance_id = Some(id);
        Ok(())
    })
}

fn remove_container(cx: &mut Cx) -> StepFuture<'_> {
    Box::pin(async move { cx.control.remove_build_container(&cx.params).await })
}

fn run_commands(cx: &mut Cx) -> StepFuture<'_> {
    Box::pin(async move {
        let Some(id) = cx.state.instance_id.clone().filter(|_| !cx.state.hit) else { return Ok(()) };
        cx.state.log = cx.control.run_build_commands(&id, &cx.params.commands, &cx.state, &mut cx.op).await?;
        Ok(())
    })
}

fn save_rootfs(cx: &mut Cx) -> StepFuture<'_> {
    Box::pin(async move {
        if cx.state.hit {
            return Ok(());
        }
        let id = cx.state.instance_id.clone().ok_or_else(|| Error::internal("no build container"))?;
        let (digest, size) = cx.control.save_build_rootfs(&id, &cx.params, &cx.state, &mut cx.op).await?;
        let build_ms = roost_store::now_ms() - cx.state.build_started_at;
        cx.state.built = Some(Built::new(digest, size, std::mem::take(&mut cx.state.log), build_ms));
        Ok(())
    })
}

fn remove_contents(cx: &mut Cx) -> StepFuture<'_> {
    Box::pin(async move {
        if cx.state.hit || cx.state.digest.is_empty() {
            return Ok(());
        }
        cx.control.remove_build_contents(&cx.state.digest).await
    })
}

fn record(cx: &mut Cx) -> StepFuture<'_> {
    Box::pin(async move { cx.control.record_template_build(&cx.params, &mut cx.state).await })
}

fn unrecord(cx: &mut Cx) -> StepFuture<'_> {
    Box::pin(async move { cx.control.unrecord_template_build(&cx.params, &cx.state).await })
}
