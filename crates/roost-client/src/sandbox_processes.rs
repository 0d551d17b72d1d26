//! A sandbox's background processes and files on Roost's own API.

use reqwest::Method;
use roost_api::sandboxes::{
    ProcessSignal, SandboxFileEntry, SandboxMkdirRequest, SandboxMoveRequest, SandboxProcess,
    SignalSandboxProcessRequest, StartSandboxProcessRequest,
};

use crate::{Client, Result, encode, exec};

impl Client {
    pub async fn list_sandbox_processes(&self, id: &str) -> Result<Vec<SandboxProcess>> {
        self.get(&format!("/v1/sandboxes/{}/processes", encode(id))).await
    }

    /// Starts a process in the background; its pid is in the answer.
    pub async fn start_sandbox_process(&self, id: &str, req: &StartSandboxProcessRequest) -> Result<SandboxProcess> {
        self.post(&format!("/v1/sandboxes/{}/processes", encode(id)), req).await
    }

    pub async fn signal_sandbox_process(&self, id: &str, pid: u32, signal: ProcessSignal) -> Result<()> {
        let path = format!("/v1/sandboxes/{}/processes/{pid}/signal", encode(id));
        self.send(self.request(Method::POST, &path).json(&SignalSandboxProcessRequest { signal })).await?;
        Ok(())
    }

    /// Re-attaches to a process: what it printed recently, then its output as it comes,
    /// then its exit code (the exec framing; writes go to its stdin).
    pub async fn attach_sandbox_process(&self, id: &str, pid: u32) -> Result<exec::ExecConnection> {
        exec::connect_path(self, &format!("/v1/sandboxes/{}/processes/{pid}/attach", encode(id)), None).await
    }

    pub async fn list_sandbox_dir(&self, id: &str, path: &str) -> Result<Vec<SandboxFileEntry>> {
        let req = self.request(Method::GET, &format!("/v1/sandboxes/{}/dirs", encode(id))).query(&[("path", path)]);
        self.json(req).await
    }

    pub async fn sandbox_mkdir(&self, id: &str, path: &str) -> Result<SandboxFileEntry> {
        self.post(&format!("/v1/sandboxes/{}/dirs", encode(id)), &SandboxMkdirRequest { path: path.into() }).await
    }

    pub async fn download_sandbox_file(&self, id: &str, path: &str) -> Result<Vec<u8>> {
        let req = self.request(Method::GET, &format!("/v1/sandboxes/{}/files", encode(id))).query(&[("path", path)]);
        Ok(self.send(req).await?.bytes().await?.to_vec())
    }

    pub async fn upload_sandbox_file(&self, id: &str, path: &str, data: Vec<u8>) -> Result<()> {
        let req = self
            .request(Method::PUT, &format!("/v1/sandboxes/{}/files", encode(id)))
            .query(&[("path", path)])
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(data);
        self.send(req).await?;
        Ok(())
    }

    pub async fn remove_sandbox_file(&self, id: &str, path: &str) -> Result<()> {
        let req = self.request(Method::DELETE, &format!("/v1/sandboxes/{}/files", encode(id))).query(&[("path", path)]);
        self.send(req).await?;
        Ok(())
    }

    pub async fn move_sandbox_file(&self, id: &str, from: &str, to: &str) -> Result<SandboxFileEntry> {
        let body = SandboxMoveRequest { from: from.into(), to: to.into() };
        self.post(&format!("/v1/sandboxes/{}/files/move", encode(id)), &body).await
    }
}
