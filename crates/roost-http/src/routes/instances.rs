//! `/v1/instances`: lifecycle, wait, exec (WebSocket), logs, files, stats, metrics.

use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt, TryStreamExt};
use roost_api::instances::{
    CreateInstanceRequest, CreatedInstance, ExecControl, ExecStart, Instance, InstanceListParams, InstanceStats,
    InstanceStatus, LogEntry, MetricSeries, StopRequest, UpdateInstanceRequest, WaitStatusParams,
};
use roost_api::operations::Operation;
use roost_api::{ErrorCode, ErrorResponse, Page};
use roost_control::Error;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use utoipa::IntoParams;

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::etag::IfMatch;
use crate::extract::{Ctx, Json, Path, Query};

type ApiResult<T> = Result<axum::Json<T>, ApiError>;

/// `?project=` narrows a name lookup to one project.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProjectParam {
    #[serde(default)]
    pub project: Option<String>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteParams {
    #[serde(default)]
    pub project: Option<String>,
    /// Delete even while running (it is killed).
    #[serde(default)]
    pub force: Option<bool>,
}

fn accepted<T: Serialize>(op_id: &str, body: T) -> Response {
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/operations/{op_id}")) {
        headers.insert(header::LOCATION, v);
    }
    (StatusCode::ACCEPTED, headers, axum::Json(body)).into_response()
}

/// List instances in your projects; filter by project, status, label and name.
#[utoipa::path(get, path = "/v1/instances", tag = "instances", params(InstanceListParams),
    responses((status = 200, body = Page<Instance>), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn list(
    State(s): State<AppState>,
    auth: Auth,
    Query(q): Query<InstanceListParams>,
) -> ApiResult<Page<Instance>> {
    Ok(axum::Json(s.control.list_instances(&auth, &q).await?))
}

/// Create an instance. Returns 202 with the instance (`pending`) and the operation that
/// succeeds once it runs; `GET /v1/instances/{id}/wait?status=running` waits too.
#[utoipa::path(post, path = "/v1/instances", operation_id = "instance.create", tag = "instances", request_body = CreateInstanceRequest,
    responses((status = 202, body = CreatedInstance), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, description = "Role or quota", body = ErrorResponse), (status = 404, body = ErrorResponse),
        (status = 409, body = ErrorResponse), (status = 422, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
pub async fn create(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Json(req): Json<CreateInstanceRequest>,
) -> Result<Response, ApiError> {
    let (instance, operation) = s.control.create_instance(&ctx, &auth, req).await?;
    Ok(accepted(&operation.id.clone(), CreatedInstance { instance, operation }))
}

/// Show an instance by id or name.
#[utoipa::path(get, path = "/v1/instances/{id}", tag = "instances",
    params(("id" = String, Path, description = "Instance id or name"), ProjectParam),
    responses((status = 200, body = Instance), (status = 409, description = "The name is ambiguous across your projects", body = ErrorResponse)))]
pub async fn get(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<ProjectParam>,
) -> ApiResult<Instance> {
    Ok(axum::Json(s.control.get_instance(&auth, &id, q.project.as_deref()).await?))
}

/// Change an instance's labels (merged: `null` removes one) or restart policy.
#[utoipa::path(patch, path = "/v1/instances/{id}", operation_id = "instance.update", tag = "instances", request_body = UpdateInstanceRequest,
    params(("id" = String, Path, description = "Instance id or name"), ProjectParam, IfMatch),
    responses((status = 200, body = Instance)))]
pub async fn update(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<ProjectParam>,
    if_match: IfMatch,
    Json(req): Json<UpdateInstanceRequest>,
) -> ApiResult<Instance> {
    Ok(axum::Json(s.control.update_instance(&ctx, &auth, &id, q.project.as_deref(), req, if_match.as_deref()).await?))
}

/// Delete an instance (202 + operation); a running one only with `?force=true`.
#[utoipa::path(delete, path = "/v1/instances/{id}", operation_id = "instance.delete", tag = "instances",
    params(IfMatch, ("id" = String, Path, description = "Instance id or name"), DeleteParams),
    responses((status = 202, body = Operation), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse)))]
pub async fn delete(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<DeleteParams>,
    if_match: IfMatch,
) -> Result<Response, ApiError> {
    let op = s
        .control
        .delete_instance(&ctx, &auth, &id, q.project.as_deref(), q.force.unwrap_or(false), if_match.as_deref())
        .await?;
    Ok(accepted(&op.id.clone(), op))
}

/// Start a stopped instance (202 + operation).
#[utoipa::path(post, path = "/v1/instances/{id}/start", operation_id = "instance.start", tag = "instances",
    params(("id" = String, Path, description = "Instance id or name"), ProjectParam),
    responses((status = 202, body = Operation), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse)))]
pub async fn start(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<ProjectParam>,
) -> Result<Response, ApiError> {
    let op = s.control.start_instance(&ctx, &auth, &id, q.project.as_deref()).await?;
    Ok(accepted(&op.id.clone(), op))
}

fn grace(req: &Option<Json<StopRequest>>) -> Duration {
    req.as_ref()
        .and_then(|r| r.0.timeout_secs)
        .map(|s| Duration::from_secs(s.min(3600)))
        .unwrap_or(roost_control::instances::DEFAULT_STOP_TIMEOUT)
}

/// Stop an instance: SIGTERM, then SIGKILL after `timeout_secs` (202 + operation).
#[utoipa::path(post, path = "/v1/instances/{id}/stop", operation_id = "instance.stop", tag = "instances",
    params(("id" = String, Path, description = "Instance id or name"), ProjectParam), request_body(content = StopRequest, description = "Optional"),
    responses((status = 202, body = Operation), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse)))]
pub async fn stop(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<ProjectParam>,
    body: Option<Json<StopRequest>>,
) -> Result<Response, ApiError> {
    let op = s.control.stop_instance(&ctx, &auth, &id, q.project.as_deref(), grace(&body)).await?;
    Ok(accepted(&op.id.clone(), op))
}

/// Restart an instance (stop as above, then start; 202 + operation).
#[utoipa::path(post, path = "/v1/instances/{id}/restart", operation_id = "instance.restart", tag = "instances",
    params(("id" = String, Path, description = "Instance id or name"), ProjectParam), request_body(content = StopRequest, description = "Optional"),
    responses((status = 202, body = Operation), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse)))]
pub async fn restart(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<ProjectParam>,
    body: Option<Json<StopRequest>>,
) -> Result<Response, ApiError> {
    let op = s.control.restart_instance(&ctx, &auth, &id, q.project.as_deref(), grace(&body)).await?;
    Ok(accepted(&op.id.clone(), op))
}

/// Block (server-side, up to 60 s) until the instance reaches `status`, then return it.
#[utoipa::path(get, path = "/v1/instances/{id}/wait", tag = "instances",
    params(("id" = String, Path, description = "Instance id or name"), WaitStatusParams),
    responses((status = 200, body = Instance), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn wait(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<WaitStatusParams>,
) -> ApiResult<Instance> {
    let status = InstanceStatus::parse(&q.status)
        .ok_or_else(|| Error::invalid(format!("status: unknown status '{}'", q.status)))?;
    let timeout = match q.timeout.as_deref() {
        Some(t) => crate::routes::operations::parse_wait(t)?,
        None => Duration::from_secs(30),
    };
    Ok(axum::Json(s.control.wait_instance(&auth, &id, None, status, timeout).await?))
}

/// Current resource use.
#[utoipa::path(get, path = "/v1/instances/{id}/stats", tag = "instances",
    params(("id" = String, Path, description = "Instance id or name"), ProjectParam),
    responses((status = 200, body = InstanceStats), (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse)))]
pub async fn stats(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<ProjectParam>,
) -> ApiResult<InstanceStats> {
    Ok(axum::Json(s.control.instance_stats(&auth, &id, q.project.as_deref()).await?))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MetricsParams {
    /// `5m`, `1h` (default), `1d`, `30d`.
    #[serde(default)]
    pub period: Option<String>,
}

/// The recorded CPU, memory, pids and network series over a period.
#[utoipa::path(get, path = "/v1/instances/{id}/metrics", tag = "instances",
    params(("id" = String, Path, description = "Instance id or name"), MetricsParams),
    responses((status = 200, body = MetricSeries), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn metrics(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<MetricsParams>,
) -> ApiResult<MetricSeries> {
    Ok(axum::Json(s.control.instance_metrics(&auth, &id, None, q.period.as_deref().unwrap_or("1h")).await?))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogParams {
    /// Only lines of the last duration (`10m`) or since an RFC 3339 time.
    #[serde(default)]
    pub since: Option<String>,
    /// Only the last N lines.
    #[serde(default)]
    pub tail: Option<usize>,
    /// Keep streaming new lines.
    #[serde(default)]
    pub follow: Option<bool>,
}

/// The instance's stdout and stderr as JSON lines (`application/x-ndjson`); with
/// `follow=true` the stream stays open.
#[utoipa::path(get, path = "/v1/instances/{id}/logs", tag = "instances",
    params(("id" = String, Path, description = "Instance id or name"), LogParams),
    responses((status = 200, description = "One LogEntry per line", content_type = "application/x-ndjson", body = LogEntry),
        (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn logs(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<LogParams>,
) -> Result<Response, ApiError> {
    let since = match q.since.as_deref() {
        Some(text) => Some(parse_since(text)?),
        None => None,
    };
    let query = roost_node::LogQuery { since, tail: q.tail, follow: q.follow.unwrap_or(false) };
    let lines = s.control.instance_logs(&auth, &id, None, query).await?;
    let shutdown = s.control.shutdown().clone();
    let body = lines
        .map_ok(|l| {
            let entry = LogEntry { time: l.time.into(), stream: l.stream.as_str().into(), line: l.line };
            let mut out = serde_json::to_vec(&entry).unwrap_or_default();
            out.push(b'\n');
            out
        })
        .map_err(std::io::Error::other)
        .take_until(async move { shutdown.cancelled().await });
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(body)).into_response())
}

fn parse_since(text: &str) -> Result<SystemTime, Error> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(SystemTime::from(t.with_timezone(&chrono::Utc)));
    }
    humantime::parse_duration(text)
        .map(|d| SystemTime::now() - d)
        .map_err(|_| Error::invalid(format!("since: '{text}' is neither a duration like 10m nor an RFC 3339 time")))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FilesParams {
    /// In the instance: the directory to unpack into (PUT), or the file or directory to
    /// pack (GET).
    pub path: String,
}

/// A tar archive of a file or directory of the instance.
#[utoipa::path(get, path = "/v1/instances/{id}/files", tag = "instances",
    params(("id" = String, Path, description = "Instance id or name"), FilesParams),
    responses((status = 200, description = "A tar archive", content_type = "application/x-tar"), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse)))]
pub async fn files_get(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<FilesParams>,
) -> Result<Response, ApiError> {
    let reader = s.control.copy_out(&auth, &id, None, &q.path).await?;
    let stream = tokio_util::io::ReaderStream::new(reader);
    Ok(([(header::CONTENT_TYPE, "application/x-tar")], Body::from_stream(stream)).into_response())
}

/// Unpack a tar archive (the request body) into a directory of the instance.
#[utoipa::path(put, path = "/v1/instances/{id}/files", operation_id = "instance.files.write", tag = "instances",
    params(("id" = String, Path, description = "Instance id or name"), FilesParams),
    request_body(content = Vec<u8>, description = "A tar archive", content_type = "application/x-tar"),
    responses((status = 204, description = "Unpacked"), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse), (status = 422, body = ErrorResponse)))]
pub async fn files_put(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<FilesParams>,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let reader = tokio_util::io::StreamReader::new(stream);
    s.control.copy_in(&ctx, &auth, &id, None, &q.path, Box::new(reader)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Run a command in the instance over a WebSocket.
///
/// The client's first (text) message is an `ExecStart`. Then binary messages from the
/// client are stdin; binary messages from the server are output, their first byte
/// naming the stream (1 stdout, 2 stderr). Text messages carry `ExecControl`: `resize`
/// and `eof` from the client, `exit` (with the exit code) or `error` from the server,
/// after which the server closes.
#[utoipa::path(get, path = "/v1/instances/{id}/exec", tag = "instances",
    params(("id" = String, Path, description = "Instance id or name")),
    responses((status = 101, description = "Switching to the WebSocket protocol"), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse)))]
pub async fn exec(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    auth.require_same_origin(&headers)?;
    let instance = s.control.instance_for_exec(&auth, &id, None).await?;
    let ws = ws.map_err(|_| Error::invalid("this endpoint speaks WebSocket: send an upgrade request"))?;
    let control = s.control.clone();
    Ok(ws.on_upgrade(move |socket| async move {
        if let Err(e) = run_exec(control, instance, socket).await {
            tracing::debug!(error = %e, "exec session ended with an error");
        }
    }))
}

async fn send_control(
    socket: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    c: &ExecControl,
) -> Result<(), axum::Error> {
    socket.send(Message::Text(serde_json::to_string(c).unwrap_or_default().into())).await
}

async fn run_exec(control: roost_control::Control, id: String, socket: WebSocket) -> Result<(), axum::Error> {
    let (mut tx, mut rx) = socket.split();
    let start: ExecStart = loop {
        match rx.next().await {
            Some(Ok(Message::Text(t))) => match serde_json::from_str(&t) {
                Ok(start) => break start,
                Err(e) => {
                    let err = ExecControl::Error {
                        code: ErrorCode::InvalidRequest.as_str().into(),
                        message: format!("the first message must be an ExecStart: {e}"),
                    };
                    return send_control(&mut tx, &err).await;
                }
            },
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            _ => return Ok(()),
        }
    };
    if start.cmd.is_empty() {
        let err =
            ExecControl::Error { code: ErrorCode::InvalidRequest.as_str().into(), message: "cmd is empty".into() };
        return send_control(&mut tx, &err).await;
    }
    let request = roost_node::ExecRequest {
        cmd: start.cmd,
        env: start.env.into_iter().collect(),
        cwd: start.cwd,
        tty: start.tty,
        rows: start.rows.unwrap_or(24),
        cols: start.cols.unwrap_or(80),
        console: start.console,
    };
    let mut session = match control.exec(&id, request).await {
        Ok(s) => s,
        Err(e) => {
            let err = ExecControl::Error { code: e.code.as_str().into(), message: e.public_message().to_string() };
            return send_control(&mut tx, &err).await;
        }
    };
    let (out_tx, mut out_rx) = tokio::sync::mpsc::channel::<(u8, Vec<u8>)>(64);
    let mut pumps = Vec::new();
    for (tag, reader) in [(1u8, session.stdout.take()), (2u8, session.stderr.take())] {
        if let Some(mut reader) = reader {
            let out_tx = out_tx.clone();
            pumps.push(tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    match reader.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if out_tx.send((tag, buf[..n].to_vec())).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            }));
        }
    }
    drop(out_tx);
    let mut stdin = session.stdin.take();
    // Output and input run until the output ends (the command exited) or the client
    // goes away.
    let mut client_gone = false;
    loop {
        tokio::select! {
            out = out_rx.recv() => match out {
                Some((tag, data)) => {
                    let mut frame = Vec::with_capacity(data.len() + 1);
                    frame.push(tag);
                    frame.extend_from_slice(&data);
                    if tx.send(Message::Binary(frame.into())).await.is_err() {
                        client_gone = true;
                        break;
                    }
                }
                None => break,
            },
            msg = rx.next(), if !client_gone => match msg {
                Some(Ok(Message::Binary(data))) => {
                    if let Some(w) = stdin.as_mut()
                        && (w.write_all(&data).await.is_err() || w.flush().await.is_err()) {
                            stdin = None;
                        }
                }
                Some(Ok(Message::Text(t))) => match serde_json::from_str::<ExecControl>(&t) {
                    Ok(ExecControl::Resize { rows, cols }) => {
                        let _ = session.resize(rows, cols);
                    }
                    Ok(ExecControl::Eof) => {
                        if let Some(mut w) = stdin.take() {
                            let _ = w.shutdown().await;
                        }
                    }
                    _ => {}
                },
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    client_gone = true;
                    break;
                }
                Some(Ok(_)) => {}
            },
        }
    }
    drop(stdin);
    if client_gone {
        // Nobody to report to: end the command's input and let it finish on its own.
        let _ = session.wait().await;
        return Ok(());
    }
    for p in pumps {
        let _ = p.await;
    }
    let code = session.wait().await.unwrap_or(-1);
    send_control(&mut tx, &ExecControl::Exit { code }).await?;
    let _ = tx.send(Message::Close(None)).await;
    // Finish the closing handshake: read what the client still sends (a late `eof`)
    // until its Close, so the socket never closes with unread data, which would reset
    // the connection and could lose the exit code in flight.
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
