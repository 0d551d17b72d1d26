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

/// The longest reply line accepted. The largest legitimate ones are guest-exec-status
/// with the agent's 16 MiB of captured output and a 1 MiB guest-file-read, in base64;
/// a guest that sends more, or never a newline, gets its connection dropped instead of
/// the server's memory.
const MAX_LINE: usize = 32 << 20;

/// Reads up to and including a newline into `line`; fails past `max` bytes or at EOF.
async fn read_line_capped<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<()> {
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed"));
        }
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        if line.len() + take > max {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("a reply line longer than {max} bytes (no newline): dropping the connection"),
            ));
        }
        line.extend_from_slice(&buf[..take]);
        reader.consume(take);
        if done {
            return Ok(());
        }
    }
}

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
        let mut line = Vec::new();
        loop {
            line.clear();
            tokio::time::timeout(REPLY_TIMEOUT, read_line_capped(&mut self.reader, &mut line, MAX_LINE))
                .await
                .map_err(|_| err(self.what, "no reply"))?
                .map_err(|e| err(self.what, e))?;
            let line = String::from_utf8_lossy(&line);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer that sends more than [`MAX_LINE`] without a newline (a hostile guest agent)
    /// gets an error once the cap is reached, not a line buffered without end.
    #[tokio::test]
    async fn a_reply_without_a_newline_is_capped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qga.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let chunk = vec![b'x'; 1 << 20];
            // 64 MiB, no newline, then the socket stays open.
            for _ in 0..64 {
                if s.write_all(&chunk).await.is_err() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_secs(120)).await;
        });
        let mut c = Conn::connect(&path, "the guest agent").await.unwrap();
        let e = c.line().await.unwrap_err().to_string();
        assert!(e.contains("longer than"), "{e}");
        assert!(c.reader.buffer().len() <= 64 << 10);
        server.abort();

        let mut reader = BufReader::new(&b"{\"return\": 1}\n{\"a\":2}"[..]);
        let mut line = Vec::new();
        read_line_capped(&mut reader, &mut line, 64).await.unwrap();
        assert_eq!(line, b"{\"return\": 1}\n");
        line.clear();
        assert!(read_line_capped(&mut reader, &mut line, 64).await.is_err(), "EOF before a newline");
        line.clear();
        let mut reader = BufReader::new(&[b'y'; 100][..]);
        assert!(read_line_capped(&mut reader, &mut line, 64).await.unwrap_err().to_string().contains("longer than"));
    }
}
