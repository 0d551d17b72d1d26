//! A small server-sent-events reader for `/v1/events`.

use futures_util::{Stream, StreamExt};
use roost_api::events::Event;

use crate::{ClientError, Result};

/// Turns the response body into events; comments, keep-alives and control messages
/// (such as `lagged`) whose data is not an event are skipped. A `closed` message (the
/// credential was revoked or expired) ends the stream with its error.
pub fn events(response: reqwest::Response) -> impl Stream<Item = Result<Event>> {
    let status = response.status();
    let mut body = response.bytes_stream();
    async_stream::stream! {
        let mut buf = String::new();
        let mut data = String::new();
        let mut name = String::new();
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    yield Err(ClientError::Http(e));
                    return;
                }
            };
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(pos) = buf.find('\n') {
                let line = buf[..pos].trim_end_matches('\r').to_string();
                buf.drain(..=pos);
                if line.is_empty() {
                    if name == "closed" {
                        match serde_json::from_str::<roost_api::ErrorResponse>(&data) {
                            Ok(e) => {
                                let status = reqwest::StatusCode::from_u16(e.error.code.status()).unwrap_or(status);
                                yield Err(ClientError::Api { status, body: e.error });
                            }
                            Err(_) => yield Err(ClientError::Unexpected { status, detail: format!("the stream closed: {data}") }),
                        }
                        return;
                    }
                    if let Ok(event) = serde_json::from_str::<Event>(&data) {
                        yield Ok(event);
                    }
                    data.clear();
                    name.clear();
                } else if let Some(n) = line.strip_prefix("event:") {
                    name = n.trim().to_string();
                } else if let Some(d) = line.strip_prefix("data:") {
                    if !data.is_empty() {
                        data.push('\n');
                    }
                    data.push_str(d.strip_prefix(' ').unwrap_or(d));
                }
            }
        }
    }
}

/// Turns a JSON-lines body into items.
pub fn json_lines<T: serde::de::DeserializeOwned>(response: reqwest::Response) -> impl Stream<Item = Result<T>> {
    let mut body = response.bytes_stream();
    async_stream::stream! {
        let mut buf: Vec<u8> = Vec::new();
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(c) => buf.extend_from_slice(&c),
                Err(e) => {
                    yield Err(ClientError::Http(e));
                    return;
                }
            }
            while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=pos).collect();
                if line.len() > 1 {
                    match serde_json::from_slice::<T>(&line[..line.len() - 1]) {
                        Ok(item) => yield Ok(item),
                        Err(e) => yield Err(ClientError::Unexpected { status: reqwest::StatusCode::OK, detail: format!("bad line: {e}") }),
                    }
                }
            }
        }
    }
}
