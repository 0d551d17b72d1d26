//! envd's messages (`process/process.proto`, `filesystem/filesystem.proto` as the pinned
//! SDKs ship them), one Rust type per message serving both Connect codecs: prost for
//! `application/proto` (field numbers and oneofs as in the protos) and serde for
//! `application/json` with protobuf's JSON mapping (lowerCamelCase names, oneof members
//! inline, 64-bit integers as strings, bytes as base64, enums by name, timestamps as
//! RFC 3339).

use std::collections::BTreeMap;

use axum::body::Bytes;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The codec of one call, from its content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Json,
    Proto,
}

impl Codec {
    /// `(codec, streaming)` from a Connect content type: `application/{json,proto}` for
    /// unary calls, `application/connect+{json,proto}` for streams.
    pub fn from_content_type(ct: &str) -> Option<(Codec, bool)> {
        let ct = ct.split(';').next().unwrap_or("").trim();
        let (name, streaming) = match ct.strip_prefix("application/connect+") {
            Some(n) => (n, true),
            None => (ct.strip_prefix("application/")?, false),
        };
        match name {
            "json" => Some((Codec::Json, streaming)),
            "proto" => Some((Codec::Proto, streaming)),
            _ => None,
        }
    }

    pub fn content_type(self, streaming: bool) -> &'static str {
        match (self, streaming) {
            (Codec::Json, false) => "application/json",
            (Codec::Proto, false) => "application/proto",
            (Codec::Json, true) => "application/connect+json",
            (Codec::Proto, true) => "application/connect+proto",
        }
    }

    pub fn encode<T: prost::Message + Serialize>(self, msg: &T) -> Vec<u8> {
        match self {
            Codec::Json => serde_json::to_vec(msg).expect("messages serialize"),
            Codec::Proto => msg.encode_to_vec(),
        }
    }

    /// An empty body is the default message in both codecs.
    pub fn decode<T: prost::Message + DeserializeOwned + Default>(self, body: &[u8]) -> Result<T, String> {
        match self {
            Codec::Json if body.iter().all(u8::is_ascii_whitespace) => Ok(T::default()),
            Codec::Json => serde_json::from_slice(body).map_err(|e| format!("invalid JSON message: {e}")),
            Codec::Proto => T::decode(body).map_err(|e| format!("invalid protobuf message: {e}")),
        }
    }
}

/// One Connect envelope: flags, big-endian length, message.
pub fn envelope(flags: u8, msg: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(5 + msg.len());
    out.push(flags);
    out.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    out.extend_from_slice(msg);
    Bytes::from(out)
}

/// The first message of an enveloped request body (server streams send exactly one).
pub fn unenvelope(body: &[u8]) -> Result<&[u8], String> {
    if body.len() < 5 {
        return Err("missing envelope".into());
    }
    if body[0] & 1 != 0 {
        return Err("compressed messages are not supported".into());
    }
    let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    body.get(5..5 + len).ok_or_else(|| "truncated envelope".to_string())
}

/// The largest message of a client stream (one `StreamInput` envelope): what a
/// unary request body may be. A length above it is refused when its header arrives,
/// before any of its bytes are buffered.
pub const MAX_ENVELOPE: usize = 16 << 20;

/// Splits a client stream's body into messages as its bytes arrive.
#[derive(Default)]
pub struct EnvelopeReader {
    buf: Vec<u8>,
}

impl EnvelopeReader {
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next whole message, if one has arrived: `(flags, message)`; an error for a
    /// message longer than [`MAX_ENVELOPE`] (the stream cannot go on after it).
    pub fn next_message(&mut self) -> Result<Option<(u8, Vec<u8>)>, String> {
        if self.buf.len() < 5 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if len > MAX_ENVELOPE {
            return Err(format!("a message of {len} bytes; at most {MAX_ENVELOPE} are accepted"));
        }
        if self.buf.len() < 5 + len {
            return Ok(None);
        }
        let flags = self.buf[0];
        let msg = self.buf[5..5 + len].to_vec();
        self.buf.drain(..5 + len);
        Ok(Some((flags, msg)))
    }

    /// Bytes of a message that never completed.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

mod b64 {
    use super::*;
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(v))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        // protobuf's JSON accepts standard or URL-safe base64, padded or not.
        let t = text.trim_end_matches('=').replace('-', "+").replace('_', "/");
        base64::engine::general_purpose::STANDARD_NO_PAD.decode(t).map_err(serde::de::Error::custom)
    }
}

/// int64 as a JSON string (numbers are accepted too).
mod i64_str {
    use super::*;
    pub fn serialize<S: Serializer>(v: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum N {
            S(String),
            I(i64),
        }
        match N::deserialize(d)? {
            N::S(s) => s.parse().map_err(serde::de::Error::custom),
            N::I(i) => Ok(i),
        }
    }
}

/// A protobuf enum field (i32) as its value name in JSON (numbers are accepted too).
macro_rules! enum_json {
    ($module:ident, $($name:literal = $value:literal),+ $(,)?) => {
        mod $module {
            use super::*;
            pub fn serialize<S: Serializer>(v: &i32, s: S) -> Result<S::Ok, S::Error> {
                match *v {
                    $($value => s.serialize_str($name),)+
                    other => s.serialize_i32(other),
                }
            }
            pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
                #[derive(Deserialize)]
                #[serde(untagged)]
                enum V {
                    S(String),
                    I(i32),
                }
                match V::deserialize(d)? {
                    $(V::S(s) if s == $name => Ok($value),)+
                    V::S(s) => Err(serde::de::Error::custom(format!("unknown enum value {s}"))),
                    V::I(i) => Ok(i),
                }
            }
        }
    };
}

enum_json!(signal_json, "SIGNAL_UNSPECIFIED" = 0, "SIGNAL_SIGTERM" = 15, "SIGNAL_SIGKILL" = 9);
enum_json!(
    file_type_json,
    "FILE_TYPE_UNSPECIFIED" = 0,
    "FILE_TYPE_FILE" = 1,
    "FILE_TYPE_DIRECTORY" = 2,
    "FILE_TYPE_SYMLINK" = 3,
);
enum_json!(
    event_type_json,
    "EVENT_TYPE_UNSPECIFIED" = 0,
    "EVENT_TYPE_CREATE" = 1,
    "EVENT_TYPE_WRITE" = 2,
    "EVENT_TYPE_REMOVE" = 3,
    "EVENT_TYPE_RENAME" = 4,
    "EVENT_TYPE_CHMOD" = 5,
);

pub const FILE_TYPE_FILE: i32 = 1;
pub const FILE_TYPE_DIRECTORY: i32 = 2;
pub const FILE_TYPE_SYMLINK: i32 = 3;

/// The name of an `EventType` value (`EVENT_TYPE_CREATE` → 1).
pub fn event_type(name: &str) -> i32 {
    match name {
        "EVENT_TYPE_CREATE" => 1,
        "EVENT_TYPE_WRITE" => 2,
        "EVENT_TYPE_REMOVE" => 3,
        "EVENT_TYPE_RENAME" => 4,
        "EVENT_TYPE_CHMOD" => 5,
        _ => 0,
    }
}

/// `google.protobuf.Timestamp`; an RFC 3339 string in JSON.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct Timestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = chrono::DateTime::from_timestamp(self.seconds, self.nanos.max(0) as u32).unwrap_or_default();
        s.serialize_str(&t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let t = chrono::DateTime::parse_from_rfc3339(&text).map_err(serde::de::Error::custom)?;
        Ok(Timestamp { seconds: t.timestamp(), nanos: t.timestamp_subsec_nanos() as i32 })
    }
}

/// Declares messages: prost for the binary codec, serde (camelCase, defaults for
/// missing fields) for JSON.
macro_rules! messages {
    ($($(#[$meta:meta])* pub struct $name:ident { $($body:tt)* })+) => {
        $(
            $(#[$meta])*
            #[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
            #[serde(rename_all = "camelCase", default)]
            pub struct $name { $($body)* }
        )+
    };
}

// process/process.proto

messages! {
    pub struct PtySize {
        #[prost(uint32, tag = "1")]
        pub cols: u32,
        #[prost(uint32, tag = "2")]
        pub rows: u32,
    }

    pub struct Pty {
        #[prost(message, optional, tag = "1")]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub size: Option<PtySize>,
    }

    pub struct ProcessConfig {
        #[prost(string, tag = "1")]
        pub cmd: String,
        #[prost(string, repeated, tag = "2")]
        pub args: Vec<String>,
        #[prost(btree_map = "string, string", tag = "3")]
        pub envs: BTreeMap<String, String>,
        #[prost(string, optional, tag = "4")]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub cwd: Option<String>,
    }

    pub struct ListRequest {}

    pub struct ProcessInfo {
        #[prost(message, optional, tag = "1")]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub config: Option<ProcessConfig>,
        #[prost(uint32, tag = "2")]
        pub pid: u32,
        #[prost(string, optional, tag = "3")]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub tag: Option<String>,
    }

    pub struct ListResponse {
        #[prost(message, repeated, tag = "1")]
        pub processes: Vec<ProcessInfo>,
    }

    pub struct StartRequest {
        #[prost(message, optional, tag = "1")]
        pub process: Option<ProcessConfig>,
        #[prost(message, optional, tag = "2")]
        pub pty: Option<Pty>,
        #[prost(string, optional, tag = "3")]
        pub tag: Option<String>,
        #[prost(bool, optional, tag = "4")]
        pub stdin: Option<bool>,
    }

    pub struct UpdateRequest {
        #[prost(message, optional, tag = "1")]
        pub process: Option<ProcessSelector>,
        #[prost(message, optional, tag = "2")]
        pub pty: Option<Pty>,
    }

    pub struct UpdateResponse {}

    pub struct ProcessEvent {
        #[prost(oneof = "process_event::Event", tags = "1, 2, 3, 4")]
        #[serde(flatten, skip_serializing_if = "Option::is_none")]
        pub event: Option<process_event::Event>,
    }

    pub struct StartEvent {
        #[prost(uint32, tag = "1")]
        pub pid: u32,
    }

    pub struct DataEvent {
        #[prost(oneof = "process_event::Output", tags = "1, 2, 3")]
        #[serde(flatten, skip_serializing_if = "Option::is_none")]
        pub output: Option<process_event::Output>,
    }

    pub struct EndEvent {
        #[prost(sint32, tag = "1")]
        pub exit_code: i32,
        #[prost(bool, tag = "2")]
        pub exited: bool,
        #[prost(string, tag = "3")]
        pub status: String,
        #[prost(string, optional, tag = "4")]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub error: Option<String>,
    }

    pub struct Empty {}

    /// `StartResponse` and `ConnectResponse` alike.
    pub struct EventResponse {
        #[prost(message, optional, tag = "1")]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub event: Option<ProcessEvent>,
    }

    pub struct SendInputRequest {
        #[prost(message, optional, tag = "1")]
        pub process: Option<ProcessSelector>,
        #[prost(message, optional, tag = "2")]
        pub input: Option<ProcessInput>,
    }

    pub struct ProcessInput {
        #[prost(oneof = "process_input::Input", tags = "1, 2")]
        #[serde(flatten, skip_serializing_if = "Option::is_none")]
        pub input: Option<process_input::Input>,
    }

    pub struct SendSignalRequest {
        #[prost(message, optional, tag = "1")]
        pub process: Option<ProcessSelector>,
        #[prost(enumeration = "Signal", tag = "2")]
        #[serde(with = "signal_json")]
        pub signal: i32,
    }

    /// `CloseStdinRequest` and `ConnectRequest` alike.
    pub struct SelectorRequest {
        #[prost(message, optional, tag = "1")]
        pub process: Option<ProcessSelector>,
    }

    pub struct ProcessSelector {
        #[prost(oneof = "process_selector::Selector", tags = "1, 2")]
        #[serde(flatten, skip_serializing_if = "Option::is_none")]
        pub selector: Option<process_selector::Selector>,
    }

    /// One message of the client stream `StreamInput`.
    pub struct StreamInputRequest {
        #[prost(oneof = "stream_input_request::Event", tags = "1, 2, 3")]
        #[serde(flatten, skip_serializing_if = "Option::is_none")]
        pub event: Option<stream_input_request::Event>,
    }

    pub struct StreamInputStart {
        #[prost(message, optional, tag = "1")]
        pub process: Option<ProcessSelector>,
    }

    pub struct StreamInputData {
        #[prost(message, optional, tag = "2")]
        pub input: Option<ProcessInput>,
    }
}

pub mod stream_input_request {
    use super::*;

    #[derive(Clone, PartialEq, prost::Oneof, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub enum Event {
        #[prost(message, tag = "1")]
        Start(StreamInputStart),
        #[prost(message, tag = "2")]
        Data(StreamInputData),
        #[prost(message, tag = "3")]
        Keepalive(Empty),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Signal {
    Unspecified = 0,
    Sigterm = 15,
    Sigkill = 9,
}

pub mod process_event {
    use super::*;

    #[derive(Clone, PartialEq, prost::Oneof, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub enum Event {
        #[prost(message, tag = "1")]
        Start(StartEvent),
        #[prost(message, tag = "2")]
        Data(DataEvent),
        #[prost(message, tag = "3")]
        End(EndEvent),
        #[prost(message, tag = "4")]
        Keepalive(Empty),
    }

    #[derive(Clone, PartialEq, prost::Oneof, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub enum Output {
        #[prost(bytes, tag = "1")]
        Stdout(#[serde(with = "b64")] Vec<u8>),
        #[prost(bytes, tag = "2")]
        Stderr(#[serde(with = "b64")] Vec<u8>),
        #[prost(bytes, tag = "3")]
        Pty(#[serde(with = "b64")] Vec<u8>),
    }
}

pub mod process_input {
    use super::*;

    #[derive(Clone, PartialEq, prost::Oneof, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub enum Input {
        #[prost(bytes, tag = "1")]
        Stdin(#[serde(with = "b64")] Vec<u8>),
        #[prost(bytes, tag = "2")]
        Pty(#[serde(with = "b64")] Vec<u8>),
    }
}

pub mod process_selector {
    use super::*;

    #[derive(Clone, PartialEq, prost::Oneof, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub enum Selector {
        #[prost(uint32, tag = "1")]
        Pid(u32),
        #[prost(string, tag = "2")]
        Tag(String),
    }
}

impl ProcessSelector {
    /// `(pid, tag)`.
    pub fn parts(selector: &Option<ProcessSelector>) -> (Option<u32>, Option<String>) {
        match selector.as_ref().and_then(|s| s.selector.clone()) {
            Some(process_selector::Selector::Pid(p)) => (Some(p), None),
            Some(process_selector::Selector::Tag(t)) => (None, Some(t)),
            None => (None, None),
        }
    }
}

impl EventResponse {
    pub fn of(event: process_event::Event) -> EventResponse {
        EventResponse { event: Some(ProcessEvent { event: Some(event) }) }
    }
}

// filesystem/filesystem.proto

messages! {
    pub struct MoveRequest {
        #[prost(string, tag = "1")]
        pub source: String,
        #[prost(string, tag = "2")]
        pub destination: String,
    }

    /// `path` requests: Stat, MakeDir, Remove.
    pub struct PathRequest {
        #[prost(string, tag = "1")]
        pub path: String,
    }

    /// `StatResponse`, `MakeDirResponse`, `MoveResponse`.
    pub struct EntryResponse {
        #[prost(message, optional, tag = "1")]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub entry: Option<EntryInfo>,
    }

    pub struct EntryInfo {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(enumeration = "FileType", tag = "2")]
        #[serde(with = "file_type_json")]
        pub r#type: i32,
        #[prost(string, tag = "3")]
        pub path: String,
        #[prost(int64, tag = "4")]
        #[serde(with = "i64_str")]
        pub size: i64,
        #[prost(uint32, tag = "5")]
        pub mode: u32,
        #[prost(string, tag = "6")]
        pub permissions: String,
        #[prost(string, tag = "7")]
        pub owner: String,
        #[prost(string, tag = "8")]
        pub group: String,
        #[prost(message, optional, tag = "9")]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub modified_time: Option<Timestamp>,
        #[prost(string, optional, tag = "10")]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub symlink_target: Option<String>,
        #[prost(btree_map = "string, string", tag = "11")]
        pub metadata: BTreeMap<String, String>,
        #[prost(bool, tag = "12")]
        pub is_symlink: bool,
    }

    pub struct ListDirRequest {
        #[prost(string, tag = "1")]
        pub path: String,
        #[prost(uint32, tag = "2")]
        pub depth: u32,
    }

    pub struct ListDirResponse {
        #[prost(message, repeated, tag = "1")]
        pub entries: Vec<EntryInfo>,
    }

    /// `WatchDirRequest` and `CreateWatcherRequest` alike.
    pub struct WatchRequest {
        #[prost(string, tag = "1")]
        pub path: String,
        #[prost(bool, tag = "2")]
        pub recursive: bool,
        #[prost(bool, tag = "3")]
        pub include_entry: bool,
        #[prost(bool, tag = "4")]
        pub allow_network_mounts: bool,
    }

    pub struct FilesystemEvent {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(enumeration = "EventType", tag = "2")]
        #[serde(with = "event_type_json")]
        pub r#type: i32,
        #[prost(message, optional, tag = "3")]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub entry: Option<EntryInfo>,
    }

    pub struct WatchDirResponse {
        #[prost(oneof = "watch_dir_response::Event", tags = "1, 2, 3")]
        #[serde(flatten, skip_serializing_if = "Option::is_none")]
        pub event: Option<watch_dir_response::Event>,
    }

    /// `CreateWatcherResponse`, `GetWatcherEventsRequest`, `RemoveWatcherRequest`.
    pub struct WatcherId {
        #[prost(string, tag = "1")]
        pub watcher_id: String,
    }

    pub struct GetWatcherEventsResponse {
        #[prost(message, repeated, tag = "1")]
        pub events: Vec<FilesystemEvent>,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum FileType {
    Unspecified = 0,
    File = 1,
    Directory = 2,
    Symlink = 3,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum EventType {
    Unspecified = 0,
    Create = 1,
    Write = 2,
    Remove = 3,
    Rename = 4,
    Chmod = 5,
}

pub mod watch_dir_response {
    use super::*;

    // One short-lived message per event: boxing the big variant would only add an allocation.
    #[allow(clippy::large_enum_variant)]
    #[derive(Clone, PartialEq, prost::Oneof, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub enum Event {
        #[prost(message, tag = "1")]
        Start(Empty),
        #[prost(message, tag = "2")]
        Filesystem(FilesystemEvent),
        #[prost(message, tag = "3")]
        Keepalive(Empty),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use serde_json::json;

    #[test]
    fn content_types_name_codec_and_streaming() {
        assert_eq!(Codec::from_content_type("application/json"), Some((Codec::Json, false)));
        assert_eq!(Codec::from_content_type("application/proto"), Some((Codec::Proto, false)));
        assert_eq!(Codec::from_content_type("application/connect+proto"), Some((Codec::Proto, true)));
        assert_eq!(Codec::from_content_type("application/connect+json; charset=utf-8"), Some((Codec::Json, true)));
        assert_eq!(Codec::from_content_type("text/plain"), None);
    }

    #[test]
    fn json_follows_the_protobuf_mapping() {
        let start: StartRequest = serde_json::from_value(json!({
            "process": {"cmd": "/bin/bash", "args": ["-i"], "envs": {"TERM": "xterm"}},
            "pty": {"size": {"cols": 80, "rows": 24}},
            "tag": "t",
        }))
        .unwrap();
        assert_eq!(start.pty.unwrap().size.unwrap(), PtySize { cols: 80, rows: 24 });
        assert_eq!(start.process.unwrap().envs["TERM"], "xterm");
        assert_eq!(start.stdin, None);
        let input: SendInputRequest =
            serde_json::from_value(json!({"process": {"pid": 1000}, "input": {"pty": "aGk="}})).unwrap();
        assert_eq!(ProcessSelector::parts(&input.process), (Some(1000), None));
        assert_eq!(input.input.unwrap().input, Some(process_input::Input::Pty(b"hi".to_vec())));
        let empty: SendInputRequest = serde_json::from_value(json!({})).unwrap();
        assert!(empty.process.is_none() && empty.input.is_none());
        let sig: SendSignalRequest = serde_json::from_value(json!({"signal": "SIGNAL_SIGKILL"})).unwrap();
        assert_eq!(sig.signal, 9);

        let out = EventResponse::of(process_event::Event::Data(DataEvent {
            output: Some(process_event::Output::Pty(b"hi".to_vec())),
        }));
        assert_eq!(serde_json::to_value(&out).unwrap(), json!({"event": {"data": {"pty": "aGk="}}}));
        let end = EventResponse::of(process_event::Event::End(EndEvent {
            exit_code: 3,
            exited: true,
            status: "exit status 3".into(),
            error: None,
        }));
        assert_eq!(
            serde_json::to_value(&end).unwrap(),
            json!({"event": {"end": {"exitCode": 3, "exited": true, "status": "exit status 3"}}})
        );
        let entry = EntryInfo {
            name: "a".into(),
            r#type: FILE_TYPE_DIRECTORY,
            size: 4096,
            modified_time: Some(Timestamp { seconds: 1_700_000_000, nanos: 500_000_000 }),
            ..Default::default()
        };
        let v = serde_json::to_value(&entry).unwrap();
        assert_eq!(v["type"], "FILE_TYPE_DIRECTORY");
        assert_eq!(v["size"], "4096");
        assert_eq!(v["modifiedTime"], "2023-11-14T22:13:20.500Z");
        assert_eq!(v["isSymlink"], false);
        let back: EntryInfo = serde_json::from_value(v).unwrap();
        assert_eq!(back, entry);
    }

    #[test]
    fn binary_follows_the_proto_field_numbers() {
        // ProcessSelector{pid: 1000} inside SendInputRequest field 1, ProcessInput{pty: "hi"}
        // (field 2 of ProcessInput) inside field 2.
        let msg = SendInputRequest {
            process: Some(ProcessSelector { selector: Some(process_selector::Selector::Pid(1000)) }),
            input: Some(ProcessInput { input: Some(process_input::Input::Pty(b"hi".to_vec())) }),
        };
        let bytes = msg.encode_to_vec();
        assert_eq!(bytes, [0x0a, 0x03, 0x08, 0xe8, 0x07, 0x12, 0x04, 0x12, 0x02, b'h', b'i']);
        assert_eq!(SendInputRequest::decode(&bytes[..]).unwrap(), msg);
        // EndEvent's exit_code is sint32 (zigzag): -1 is 1.
        let end = EndEvent { exit_code: -1, ..Default::default() };
        assert_eq!(end.encode_to_vec(), [0x08, 0x01]);
    }

    #[test]
    fn envelopes_carry_flags_and_big_endian_length() {
        let e = envelope(2, b"{}");
        assert_eq!(&e[..], &[2, 0, 0, 0, 2, b'{', b'}']);
        assert_eq!(unenvelope(&e).unwrap(), b"{}");
        assert!(unenvelope(&[0, 0, 0, 0, 9, 1]).is_err());
        assert!(unenvelope(&[1, 0, 0, 0, 0]).is_err());
        let mut r = EnvelopeReader::default();
        let two = [envelope(0, b"ab"), envelope(0, b"")].concat();
        r.push(&two[..3]);
        assert_eq!(r.next_message(), Ok(None));
        r.push(&two[3..]);
        assert_eq!(r.next_message(), Ok(Some((0, b"ab".to_vec()))));
        assert_eq!(r.next_message(), Ok(Some((0, Vec::new()))));
        assert!(r.next_message().unwrap().is_none() && r.is_empty());
    }

    #[test]
    fn an_envelope_over_the_cap_is_refused_at_its_header() {
        let mut r = EnvelopeReader::default();
        let mut header = vec![0u8];
        header.extend_from_slice(&u32::MAX.to_be_bytes());
        r.push(&header);
        assert!(r.next_message().unwrap_err().contains("at most"));
        let mut r = EnvelopeReader::default();
        r.push(&envelope(0, &vec![7u8; MAX_ENVELOPE]));
        assert_eq!(r.next_message().unwrap().unwrap().1.len(), MAX_ENVELOPE);
    }
}
