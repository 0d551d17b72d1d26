//! The client side of the exec WebSocket (`/v1/instances/{id}/exec`), also spoken by a
//! sandbox process's attach (`/v1/sandboxes/{id}/processes/{pid}/attach`).

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use roost_api::instances::{ExecControl, ExecStart};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::{Client, ClientError, Result, encode};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What the command sends back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecEvent {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    Exit(i32),
}

/// A running exec; split it to read and write at once.
pub struct ExecConnection {
    ws: Ws,
}

pub struct ExecWriter {
    sink: SplitSink<Ws, Message>,
}

pub struct ExecReader {
    stream: SplitStream<Ws>,
}

/// Everything a finished command wrote, and its exit code.
#[derive(Debug, Clone, Default)]
pub struct ExecOutput {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub code: i32,
}

pub(crate) async fn connect(client: &Client, key: &str, start: &ExecStart) -> Result<ExecConnection> {
    connect_path(client, &format!("/v1/instances/{}/exec", encode(key)), Some(start)).await
}

/// Opens a WebSocket speaking the exec framing at `path`, sending `start` first if given
/// (a sandbox process's attach needs none).
pub(crate) async fn connect_path(client: &Client, path: &str, start: Option<&ExecStart>) -> Result<ExecConnection> {
    let base = client.base_url();
    let ws_base = if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        return Err(ClientError::Unexpected {
            status: reqwest::StatusCode::NOT_IMPLEMENTED,
            detail: "exec over https is not supported by this client yet; use http on a trusted network or a tunnel"
                .into(),
        });
    };
    let url = format!("{ws_base}{path}");
    let mut request = url.into_client_request().map_err(|_| ClientError::InvalidUrl(base.to_string()))?;
    if let Some(token) = client.token() {
        let value = format!("Bearer {token}").parse().map_err(|_| ClientError::InvalidUrl(base.to_string()))?;
        request.headers_mut().insert("authorization", value);
    }
    let (mut ws, _) = match tokio_tungstenite::connect_async(request).await {
        Ok(ok) => ok,
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            // The server refused the upgrade with an API error: surface it as one.
            let status =
                reqwest::StatusCode::from_u16(response.status().as_u16()).unwrap_or(reqwest::StatusCode::BAD_GATEWAY);
            let body = response.body().as_deref().unwrap_or_default();
            return Err(match serde_json::from_slice::<roost_api::ErrorResponse>(body) {
                Ok(err) => ClientError::Api { status, body: err.error },
                Err(_) => ClientError::Unexpected { status, detail: String::from_utf8_lossy(body).into_owned() },
            });
        }
        Err(e) => {
            return Err(ClientError::Unexpected { status: reqwest::StatusCode::BAD_GATEWAY, detail: e.to_string() });
        }
    };
    if let Some(start) = start {
        let first = serde_json::to_string(start).unwrap_or_default();
        ws.send(Message::Text(first.into()))
            .await
            .map_err(|e| ClientError::Unexpected { status: reqwest::StatusCode::BAD_GATEWAY, detail: e.to_string() })?;
    }
    Ok(ExecConnection { ws })
}

fn ws_error(e: tokio_tungstenite::tungstenite::Error) -> ClientError {
    ClientError::Unexpected { status: reqwest::StatusCode::BAD_GATEWAY, detail: format!("exec connection: {e}") }
}

impl ExecConnection {
    pub fn split(self) -> (ExecWriter, ExecReader) {
        let (sink, stream) = self.ws.split();
        (ExecWriter { sink }, ExecReader { stream })
    }

    /// Sends `stdin` (then end of input) and collects the output until the command ends.
    pub async fn run(self, stdin: Option<Vec<u8>>) -> Result<ExecOutput> {
        let (mut writer, mut reader) = self.split();
        if let Some(data) = stdin {
            writer.stdin(&data).await?;
        }
        writer.eof().await?;
        let mut out = ExecOutput::default();
        while let Some(event) = reader.next().await? {
            match event {
                ExecEvent::Stdout(d) => out.stdout.extend(d),
                ExecEvent::Stderr(d) => out.stderr.extend(d),
                ExecEvent::Exit(code) => {
                    out.code = code;
                    return Ok(out);
                }
            }
        }
        Err(ClientError::Unexpected {
            status: reqwest::StatusCode::BAD_GATEWAY,
            detail: "the exec ended without an exit code".into(),
        })
    }
}

impl ExecWriter {
    pub async fn stdin(&mut self, data: &[u8]) -> Result<()> {
        self.sink.send(Message::Binary(data.to_vec().into())).await.map_err(ws_error)
    }

    pub async fn resize(&mut self, rows: u16, cols: u16) -> Result<()> {
        self.control(&ExecControl::Resize { rows, cols }).await
    }

    pub async fn eof(&mut self) -> Result<()> {
        self.control(&ExecControl::Eof).await
    }

    async fn control(&mut self, c: &ExecControl) -> Result<()> {
        self.sink.send(Message::Text(serde_json::to_string(c).unwrap_or_default().into())).await.map_err(ws_error)
    }
}

impl ExecReader {
    /// The next output or the exit; `None` when the connection closed without one.
    pub async fn next(&mut self) -> Result<Option<ExecEvent>> {
        while let Some(msg) = self.stream.next().await {
            match msg.map_err(ws_error)? {
                Message::Binary(data) if !data.is_empty() => {
                    let payload = data[1..].to_vec();
                    return Ok(Some(if data[0] == 2 {
                        ExecEvent::Stderr(payload)
                    } else {
                        ExecEvent::Stdout(payload)
                    }));
                }
                Message::Text(t) => match serde_json::from_str::<ExecControl>(&t) {
                    Ok(ExecControl::Exit { code }) => return Ok(Some(ExecEvent::Exit(code))),
                    Ok(ExecControl::Error { code, message }) => {
                        let code = serde_json::from_value(serde_json::Value::String(code))
                            .unwrap_or(roost_api::ErrorCode::Unknown);
                        return Err(ClientError::Api {
                            status: reqwest::StatusCode::from_u16(code.status())
                                .unwrap_or(reqwest::StatusCode::BAD_GATEWAY),
                            body: roost_api::ErrorBody { code, message, request_id: None, details: Vec::new() },
                        });
                    }
                    _ => {}
                },
                Message::Close(_) => return Ok(None),
                _ => {}
            }
        }
        Ok(None)
    }
}
