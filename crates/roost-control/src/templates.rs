//! Sandbox templates Roost ships: Debian images defined here, built offline from Debian
//! packages (the host's apt mirror) on first use, so `Sandbox.create()` works without
//! anyone running `roost image build` by hand. A project image of the same name shadows
//! a builtin template.

use crate::images::node_error;
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
    /// same build), logging its progress. Returns its root filesystem.
    pub(crate) async fn build_builtin_template(
        &self,
        t: &'static BuiltinTemplate,
    ) -> Result<roost_node::images::Image> {
        let node = self.node()?;
        let packages: Vec<String> = t.packages.iter().map(|p| p.to_string()).collect();
        let name = t.name;
        tracing::info!(template = name, "building the sandbox template from Debian packages (first use)");
        let image = node
            .images
            .build_debian(name, TEMPLATE_SUITE, &packages, move |p| {
                tracing::info!(template = name, percent = p.percent, "template build: {}", p.message);
            })
            .await
            .map_err(|e| {
                let e = node_error(e);
                tracing::error!(template = name, error = %e.message, "building the sandbox template failed");
                Error::new(e.code, format!("building template '{name}' failed: {}", e.message))
            })?;
        tracing::info!(template = name, digest = %image.digest, "sandbox template ready");
        Ok(image)
    }

    /// Makes sure the sandbox's template is there before its instance is created: a
    /// builtin template is built now on first use, so the instance does not time out
    /// waiting for it.
    pub(crate) async fn prepare_template(&self, p: &Principal, template: &str) -> Result<()> {
        let row = self.image_row(p, template).await.map_err(|_| Error::not_found("template", template))?;
        if row.source == "builtin" && builtin_template(&row.name).is_some() {
            self.image_rootfs(&row).await?;
        }
        if row.source == crate::sandbox_templates::SOURCE {
            // "Last used" is bookkeeping: written off the create's path (a store write is
            // a sync), like a sandbox's command counter.
            let control = self.clone();
            tokio::spawn(async move {
                if let Err(e) = control.store().touch_sandbox_template(&row.id, roost_store::now_ms()).await {
                    tracing::debug!(template = %row.name, error = %e, "cannot note the template's last use");
                }
            });
        }
        Ok(())
    }
}
