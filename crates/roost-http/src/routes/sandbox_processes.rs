//! `/v1/sandboxes/{id}/processes`, `/files`, `/dirs`: background processes (list,
//! start, signal, re-attach) and the files of a sandbox, on Roost's own API.

use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use roost_api::ErrorResponse;
use roost_api::instances::ExecControl;
use roost_api::sandboxes::{
    SandboxFileEntry, SandboxMkdirRequest, SandboxMoveRequest, SandboxPathParams, SandboxProcess,
    SignalSandboxProcessRequest, StartSandboxProcessRequest,
};
use roost_control::Error;
use roost_control::sandboxes::ProcessEvent;

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::extract::{Ctx, Json, Path, Query};

/// Largest upload through `PUT /v1/sandboxes/{id}/files` (streamed into the sandbox,
/// never held here).
const MAX_UPLOAD: u64 = 4 << 30;

/// Processes running in the sandbox.
#[utoipa::path(get, path = "/v1/sandboxes/{id}/processes", tag = "sandboxes",
    params(("id" = String, Path, description = "Sandbox id")),
    responses((status = 200, body = Vec<SandboxProcess>), (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn list(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<axum::Json<Vec<SandboxProcess>>, ApiError> {
    Ok(axum::Json(s.control.list_sandbox_processes(&auth, &id).await?))
}

/// Start a process in the background; returns its pid at once. The last 64 KiB of each
/// of its streams are kept, so an attach replays what it printed before.
#[utoipa::path(post, path = "/v1/sandboxes/{id}/processes", operation_id = "sandbox.process.start", tag = "sandboxes", request_body = StartSandboxProcessRequest,
    params(("id" = String, Path, description = "Sandbox id")),
    responses((status = 201, body = SandboxProcess), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse)))]
pub async fn start(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(id): Path<String>,
    Json(req): Json<StartSandboxProcessRequest>,
) -> Result<(StatusCode, axum::Json<SandboxProcess>), ApiError> {
    let started = s.control.start_background_process(&ctx, &auth, &id, req).await?;
    Ok((StatusCode::CREATED, axum::Json(started)))
}

/// Send a signal (`{"signal": "TERM"}`, `"KILL"`, a number) to a running process.
#[utoipa::path(post, path = "/v1/sandboxes/{id}/processes/{pid}/signal", operation_id = "sandbox.process.signal", tag = "sandboxes",
    request_body = SignalSandboxProcessRequest,
    params(("id" = String, Path, description = "Sandbox id"), ("pid" = u32, Path, description = "Process id (as listed)")),
    responses((status = 204), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn signal(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path((id, pid)): Path<(String, u32)>,
    Json(req): Json<SignalSandboxProcessRequest>,
) -> Result<StatusCode, ApiError> {
    s.control.signal_sandbox_process(&ctx, &auth, &id, pid, &req.signal).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Attach to a process over a WebSocket: first what it printed recently (up to 64 KiB
/// per stream, kept since it started), then its output as it comes, then its exit code.
///
/// Frames as on `/v1/instances/{id}/exec`: binary messages from the server are output,
/// their first byte naming the stream (1 stdout, 2 stderr); a text `{"type":"exit",
/// "code":…}` ends it. Binary messages from the client go to the process's stdin (when
/// it was started with `stdin: true`), a text `{"type":"eof"}` closes it. Closing the
/// socket detaches: the process keeps running. A process that ended recently can still
/// be attached to: its output's tail and its exit code are sent, then the socket closes.
#[utoipa::path(get, path = "/v1/sandboxes/{id}/processes/{pid}/attach", tag = "sandboxes",
    params(("id" = String, Path, description = "Sandbox id"), ("pid" = u32, Path, description = "Process id")),
    responses((status = 101, description = "Switching to the WebSocket protocol"), (status = 400, body = ErrorResponse),
        (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn attach(
    State(s): State<AppState>,
    auth: Auth,
    Path((id, pid)): Path<(String, u32)>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    auth.require_same_origin(&headers)?;
    let process = s.control.attach_sandbox_process(&auth, &id, pid).await?;
    let ws = ws.map_err(|_| Error::invalid("this endpoint speaks WebSocket: send an upgrade request"))?;
    Ok(ws.on_upgrade(move |socket| async move {
        if let Err(e) = run_attach(process, socket).await {
            tracing::debug!(error = %e, "attach ended with an error");
        }
    }))
}

fn frame(event: &ProcessEvent) -> Option<Message> {
    let (tag, data) = match event {
        ProcessEvent::Stdout(d) => (1u8, d),
        ProcessEvent::Stderr(d) => (2u8, d),
        ProcessEvent::End(_) => return None,
    };
    let mut f = Vec::with_capacity(data.len() + 1);
    f.push(tag);
    f.extend_from_slice(data);
    Some(Message::Binary(f.into()))
}

async fn run_attach(
    process: std::sync::Arc<roost_control::sandboxes::SandboxProcess>,
    socket: WebSocket,
) -> Result<(), axum::Error> {
    let (mut tx, mut rx) = socket.split();
    let (replay, mut live) = process.attach();
    let mut code = None;
    for event in &replay {
        match event {
            ProcessEvent::End(c) => code = Some(*c),
            e => tx.send(frame(e).expect("output")).await?,
        }
    }
    while code.is_none() {
        tokio::select! {
            event = live.recv() => match event {
                Ok(ProcessEvent::End(c)) => code = Some(c),
                Ok(e) => tx.send(frame(&e).expect("output")).await?,
                // Too slow a reader misses output rather than holding the process up.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            },
            msg = rx.next() => match msg {
                Some(Ok(Message::Binary(data))) => {
                    if let Err(e) = process.write_stdin(&data).await {
                        let err = ExecControl::Error { code: e.code.as_str().into(), message: e.public_message().to_string() };
                        tx.send(Message::Text(serde_json::to_string(&err).unwrap_or_default().into())).await?;
                    }
                }
                Some(Ok(Message::Text(t))) => {
                    if let Ok(ExecControl::Eof) = serde_json::from_str::<ExecControl>(&t) {
                        process.close_stdin().await;
                    }
                }
                // Detach: the process goes on.
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Ok(()),
                Some(Ok(_)) => {}
            },
        }
    }
    let code = code.or_else(|| process.exit_code()).unwrap_or(-1);
    let exit = ExecControl::Exit { code };
    tx.send(Message::Text(serde_json::to_string(&exit).unwrap_or_default().into())).await?;
    let _ = tx.send(Message::Close(None)).await;
    // Read what the client still sends until its Close, so the exit code is not lost to
    // a reset connection.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(msg)) = rx.next().await {
            if matches!(msg, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
    Ok(())
}

/// The entries of a directory of the sandbox, directories first.
#[utoipa::path(get, path = "/v1/sandboxes/{id}/dirs", tag = "sandboxes",
    params(("id" = String, Path, description = "Sandbox id"), SandboxPathParams),
    responses((status = 200, body = Vec<SandboxFileEntry>), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn list_dir(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<SandboxPathParams>,
) -> Result<axum::Json<Vec<SandboxFileEntry>>, ApiError> {
    Ok(axum::Json(s.control.sandbox_list_dir(&auth, &id, &q.path).await?))
}

/// Make a directory (and its parents); 409 if the path exists.
#[utoipa::path(post, path = "/v1/sandboxes/{id}/dirs", operation_id = "sandbox.files.mkdir", tag = "sandboxes", request_body = SandboxMkdirRequest,
    params(("id" = String, Path, description = "Sandbox id")),
    responses((status = 201, body = SandboxFileEntry), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse)))]
pub async fn mkdir(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(id): Path<String>,
    Json(req): Json<SandboxMkdirRequest>,
) -> Result<(StatusCode, axum::Json<SandboxFileEntry>), ApiError> {
    let entry = s.control.sandbox_mkdir(&ctx, &auth, &id, &req.path).await?;
    Ok((StatusCode::CREATED, axum::Json(entry)))
}

/// Download a file of the sandbox.
#[utoipa::path(get, path = "/v1/sandboxes/{id}/files", tag = "sandboxes",
    params(("id" = String, Path, description = "Sandbox id"), SandboxPathParams),
    responses((status = 200, description = "The file's bytes", content_type = "application/octet-stream"),
        (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse)))]
pub async fn download(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<SandboxPathParams>,
) -> Result<Response, ApiError> {
    let chunks = s.control.sandbox_download(&auth, &id, &q.path).await?;
    let name = q.path.rsplit('/').next().unwrap_or("file").replace(['"', '\\', '\r', '\n'], "_");
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
        ],
        crate::e2b::file_body(chunks),
    )
        .into_response())
}

/// Upload a file (the request body, its bytes) to the sandbox; parents are made.
#[utoipa::path(put, path = "/v1/sandboxes/{id}/files", operation_id = "sandbox.files.write", tag = "sandboxes",
    params(("id" = String, Path, description = "Sandbox id"), SandboxPathParams),
    request_body(content = Vec<u8>, description = "The file's bytes", content_type = "application/octet-stream"),
    responses((status = 204), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 413, body = ErrorResponse)))]
pub async fn upload(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<SandboxPathParams>,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let mut data = crate::e2b::body_reader(body);
    s.control.sandbox_upload(&ctx, &auth, &id, &q.path, &mut data, MAX_UPLOAD).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Remove a file, or a directory with its contents.
#[utoipa::path(delete, path = "/v1/sandboxes/{id}/files", operation_id = "sandbox.files.remove", tag = "sandboxes",
    params(("id" = String, Path, description = "Sandbox id"), SandboxPathParams),
    responses((status = 204), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn remove(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<SandboxPathParams>,
) -> Result<StatusCode, ApiError> {
    s.control.sandbox_remove(&ctx, &auth, &id, &q.path).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Move or rename a file or directory.
#[utoipa::path(post, path = "/v1/sandboxes/{id}/files/move", operation_id = "sandbox.files.move", tag = "sandboxes", request_body = SandboxMoveRequest,
    params(("id" = String, Path, description = "Sandbox id")),
    responses((status = 200, body = SandboxFileEntry), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn rename(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(id): Path<String>,
    Json(req): Json<SandboxMoveRequest>,
) -> Result<axum::Json<SandboxFileEntry>, ApiError> {
    Ok(axum::Json(s.control.sandbox_move(&ctx, &auth, &id, &req.from, &req.to).await?))
}
