//! Sandbox templates Roost ships: Debian images defined here, built offline from Debian
//! packages (the host's apt mirror) on first use, so `Sandbox.create()` works without
//! anyone running `roost image build` by hand. Their names are reserved: no project
//! image may take one.

use roost_store::images::ImageRow;

use crate::images::node_error;
use crate::operations::OperationHandle;
use crate::{Control, Error, Principal, Result};

/// One builtin template: a Debian suite plus packages.
pub struct BuiltinTemplate {
    pub name: &'static str,
    pub description: &'static str,
    pub packages: &'static [&'static str],
}

/// The Debian suite every builtin template is built from.
pub const TEMPLATE_SUITE: &str = "bookworm";

/// The E2B SDK's default template (`base`) and the code interpreter SDK's
/// (`code-interpreter-v1`). Commands run as `bash -l -c`; files use coreutils, `find`;
/// `inotifywait` serves file watches; the code interpreter needs IPython and matplotlib.
pub const BUILTIN_TEMPLATES: &[BuiltinTemplate] = &[
    BuiltinTemplate {
        name: "base",
        description: "sandbox template: Debian bookworm with bash, python3, pip and common tools",
        packages: &[
            "bash",
            "ca-certificates",
            "curl",
            "findutils",
            "inotify-tools",
            "procps",
            "python3",
            "python3-pip",
        ],
    },
    BuiltinTemplate {
        name: "code-interpreter-v1",
        description: "sandbox template: python3 with IPython, matplotlib and numpy for Roost's code interpreter",
        packages: &[
            "bash",
            "ca-certificates",
            "curl",
            "findutils",
            "inotify-tools",
            "procps",
            "python3",
            "python3-pip",
            "python3-ipython",
            "python3-matplotlib",
            "python3-numpy",
        ],
    },
];

pub fn builtin_template(name: &str) -> Option<&'static BuiltinTemplate> {
    BUILTIN_TEMPLATES.iter().find(|t| t.name == name)
}

impl Control {
    /// Builds a builtin template's image (once per node; concurrent callers wait for the
    /// same build), logging its progress. Returns the image. When the build
    /// really runs (not a cache hit) and a `requester` waits for it, its progress is an
    /// operation of theirs (`template.build`, on the template's image), so a client shows
    /// it as it does an `image build`'s.
    pub(crate) async fn build_builtin_template(
        &self,
        t: &'static BuiltinTemplate,
        row: &ImageRow,
        requester: Option<&Principal>,
    ) -> Result<roost_node::api::ImageInfo> {
        let node = self.node()?;
        let packages: Vec<String> = t.packages.iter().map(|p| p.to_string()).collect();
        let name = t.name;
        let (progress_tx, mut progress_rx) = tokio::sync::mpsc::unbounded_channel();
        let progress = Box::new(move |p: roost_node::api::BuildProgress| {
            tracing::info!(template = name, percent = p.percent, "template build: {}", p.message);
            let _ = progress_tx.send(p);
        });
        let build = node.build_debian_image(name, TEMPLATE_SUITE, &packages, progress);
        tokio::pin!(build);
        // Made on the first progress report: a build already in the store reports none.
        let mut op: Option<OperationHandle> = None;
        let result = loop {
            tokio::select! {
                result = &mut build => break result,
                Some(p) = progress_rx.recv() => {
                    let Some(requester) = requester else { continue };
                    if op.is_none() {
                        tracing::info!(template = name, "building the sandbox template from Debian packages (first use)");
                        op = self.template_build_operation(requester, row).await;
                    }
                    if let Some(op) = op.as_mut() {
                        op.progress(p.percent.clamp(1, 99), &format!("building template '{name}': {}", p.message)).await;
                    }
                }
            }
        };
        let result = result.map_err(|e| {
            let e = node_error(e);
            tracing::error!(template = name, error = %e.message, "building the sandbox template failed");
            Error::new(e.code, format!("building template '{name}' failed: {}", e.message))
        });
        match (&result, op) {
            (Ok(image), Some(op)) => {
                tracing::info!(template = name, digest = %image.digest, "sandbox template ready");
                let done =
                    serde_json::json!({"image_id": row.id, "digest": image.digest, "size_bytes": image.size_bytes});
                op.succeed(Some(done)).await
            }
            (Err(e), Some(op)) => op.fail(e).await,
            _ => {}
        }
        result
    }

    async fn template_build_operation(&self, requester: &Principal, row: &ImageRow) -> Option<OperationHandle> {
        let made = async {
            let mut tx = self.system_change().await?;
            let op = self.new_operation(&mut tx, requester, "template.build", Some(("image", &row.id))).await?;
            tx.commit().await?;
            Ok::<_, Error>(op)
        };
        match made.await {
            Ok(op) => Some(op),
            Err(e) => {
                // Progress is a courtesy: the build goes on without it.
                tracing::warn!(template = %row.name, error = %e, "cannot record the template build's operation");
                None
            }
        }
    }

    /// The image a sandbox of `project_id` starts from for `template` (a builtin one or one
    /// of that project, never another project's), made ready first: a builtin template is
    /// built now on first use, so the instance does not time out waiting for it.
    pub(crate) async fn prepare_template(&self, p: &Principal, project_id: &str, template: &str) -> Result<ImageRow> {
        let row =
            self.image_for_project(project_id, template).await.map_err(|_| Error::not_found("template", template))?;
        if row.source == "builtin" && builtin_template(&row.name).is_some() {
            self.image_digest_for(&row, Some(p)).await?;
        }
        if row.source == crate::sandbox_templates::SOURCE {
            // "Last used" is bookkeeping: written off the create's path (a store write is
            // a sync), like a sandbox's command counter.
            let control = self.clone();
            let (id, name) = (row.id.clone(), row.name.clone());
            tokio::spawn(async move {
                if let Err(e) = control.store().touch_sandbox_template(&id, roost_store::now_ms()).await {
                    tracing::debug!(template = %name, error = %e, "cannot note the template's last use");
                }
            });
        }
        Ok(row)
    }
}
