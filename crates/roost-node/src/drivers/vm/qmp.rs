//! Clients for QEMU's two JSON sockets: QMP (the monitor: status, power button, pause)
//! and qemu-guest-agent (exec, files inside the guest), each one JSON object per line.
//!
//! Both sockets are single-client chardevs, so every call opens its own connection and
//! closes it fully when done. The guest-agent socket is never half-closed: QEMU drops
//! the client on EOF and the reply would be lost.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

use crate::{Error, Result};

/// How long one reply may take (the guest agent runs under TCG in a busy guest).
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Conn {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    what: &'static str,
}

fn err(what: &str, message: impl std::fmt::Display) -> Error {
    Error::io(format!("talking to {what}"), std::io::Error::other(message.to_string()))
}

impl Conn {
    async fn connect(path: &Path, what: &'static str) -> Result<Conn> {
        let stream = UnixStream::connect(path).await.map_err(|e| Error::io(format!("connecting to {what}"), e))?;
        let (r, w) = stream.into_split();
        Ok(Conn { reader: BufReader::new(r), writer: w, what })
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.writer.write_all(bytes).await.map_err(|e| err(self.what, e))
    }

    async fn line(&mut self) -> Result<Value> {
        let mut line = String::new();
        loop {
            line.clear();
            let n = tokio::time::timeout(REPLY_TIMEOUT, self.reader.read_line(&mut line))
                .await
                .map_err(|_| err(self.what, "no reply"))?
                .map_err(|e| err(self.what, e))?;
            if n == 0 {
                return Err(err(self.what, "connection closed"));
            }
            let text = line.trim_matches(|c: char| c.is_whitespace() || c == '\u{ff}');
            if text.is_empty() {
                continue;
            }
            if let Ok(v) = serde_json::from_str::<Value>(text) {
                return Ok(v);
            }
        }
    }

    /// Sends a command and returns its `return`, skipping asynchronous events.
    pub async fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value> {
        let mut msg = json!({ "execute": command });
        if let Some(a) = arguments {
            msg["arguments"] = a;
        }
        let mut bytes = serde_json::to_vec(&msg).expect("json");
        bytes.push(b'\n');
        self.send(&bytes).await?;
        loop {
            let v = self.line().await?;
            if v.get("event").is_some() {
                continue;
            }
            if let Some(r) = v.get("return") {
                return Ok(r.clone());
            }
            if let Some(e) = v.get("error") {
                let desc = e.get("desc").and_then(Value::as_str).unwrap_or("unknown error");
                return Err(Error::tool(
                    if self.what == "QMP" { "qemu" } else { "qemu-guest-agent" },
                    desc.to_string(),
                ));
            }
        }
    }
}

/// A QMP session, past the greeting and capability negotiation.
pub async fn qmp(path: &Path) -> Result<Conn> {
    let mut c = Conn::connect(path, "QMP").await?;
    let greeting = c.line().await?;
    if greeting.get("QMP").is_none() {
        return Err(err("QMP", "no greeting"));
    }
    c.execute("qmp_capabilities", None).await?;
    Ok(c)
}

/// A guest-agent session, synchronised: a `0xFF` resets the agent's parser, and
/// `guest-sync-delimited` with a fresh id is answered with `0xFF` before its reply, so
/// anything stale on the socket (a reply to an earlier client) is skipped.
pub async fn qga(path: &Path, timeout: Duration) -> Result<Conn> {
    let mut c = Conn::connect(path, "the guest agent").await?;
    let id: u32 = (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos()
        as u32)
        & 0x7fff_ffff;
    let msg = format!("\u{ff}{{\"execute\":\"guest-sync-delimited\",\"arguments\":{{\"id\":{id}}}}}\n");
    // The agent answers only once it runs; until then the bytes wait in the port.
    let mut bytes = vec![0xffu8];
    bytes.extend_from_slice(&msg.as_bytes()[2..]);
    c.send(&bytes).await?;
    let synced = async {
        loop {
            // Up to the delimiter.
            let mut byte = [0u8; 1];
            loop {
                let n = c.reader.read(&mut byte).await.map_err(|e| err("the guest agent", e))?;
                if n == 0 {
                    return Err(err("the guest agent", "connection closed"));
                }
                if byte[0] == 0xff {
                    break;
                }
            }
            let v = c.line().await?;
            if v.get("return").and_then(Value::as_u64) == Some(id as u64) {
                return Ok(());
            }
        }
    };
    tokio::time::timeout(timeout, synced).await.map_err(|_| err("the guest agent", "it did not answer"))??;
    Ok(c)
}
