//! Server-wide administration: consistent backups of the embedded store.

use roost_api::system::BackupResult;
use roost_store::Backend;

use crate::{Control, Error, Principal, RequestContext, Result};
use roost_api::operations::Operation;

impl Control {
    /// Starts a backup of the SQLite store into `<data-dir>/backups/`; returns the
    /// operation that tracks it.
    pub async fn start_backup(&self, ctx: &RequestContext, principal: &Principal) -> Result<Operation> {
        let proof = principal.require_admin()?;
        if self.store().backend() != Backend::Sqlite {
            return Err(Error::unprocessable(
                "backups are for the embedded SQLite store; back PostgreSQL up with pg_dump",
            ));
        }
        let mut tx = self.change(ctx, &proof).await?;
        let op = self.new_operation(&mut tx, principal, "system.backup", None).await?;
        tx.audit("system.backup", Some(("operation", op.id())), None).await?;
        op.announce_in(&mut tx);
        tx.commit().await?;

        let snapshot = op.to_api();
        let control = self.clone();
        tokio::spawn(async move {
            let mut op = op;
            op.progress(10, "copying the store").await;
            match control.backup_now().await {
                Ok(result) => op.succeed(serde_json::to_value(result).ok()).await,
                Err(err) => op.fail(&err).await,
            }
        });
        Ok(snapshot)
    }

    async fn backup_now(&self) -> Result<BackupResult> {
        let dir = self.settings().data_dir.join("backups");
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| Error::internal(format!("cannot create {}: {e}", dir.display())))?;
        let name = format!("roost-{}.db", chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ"));
        let path = dir.join(name);
        self.store().backup_sqlite_to(&path).await?;
        let bytes = tokio::fs::metadata(&path).await.map(|m| m.len()).unwrap_or(0);
        tracing::info!(path = %path.display(), bytes, "store backup written");
        Ok(BackupResult { path: path.display().to_string(), bytes })
    }
}

impl Control {
    /// What the compute node runs and how (any signed-in user: it names no tenant data).
    pub async fn node_info(&self, principal: &Principal) -> Result<roost_api::system::NodeInfo> {
        let _ = principal;
        let Ok(node) = self.node() else {
            return Ok(roost_api::system::NodeInfo::default());
        };
        let mut types = vec!["container".to_string()];
        if node.vm.is_some() {
            types.push("vm".into());
        }
        let facts = node.vm_facts.as_ref().map(|d| d.accel());
        let facts = facts.as_ref();
        Ok(roost_api::system::NodeInfo {
            compute: true,
            instance_types: types,
            accelerator: facts.map(|f| f.accelerator.clone()),
            accelerator_reason: facts.map(|f| f.reason.clone()),
            kvm_usable: facts.map(|f| f.kvm_usable),
            tsc_khz: facts.map(|f| f.tsc_khz),
            kvm_checks: facts
                .map(|f| {
                    f.checks
                        .iter()
                        .map(|c| roost_api::system::KvmCheck {
                            name: c.name.clone(),
                            passed: c.passed,
                            detail: c.detail.clone(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            vm_unavailable: node.vm_unavailable.clone(),
        })
    }
}
