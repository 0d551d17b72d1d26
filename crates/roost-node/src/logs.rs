//! An instance's output on disk, with no process in between.
//!
//! The instance's stdout and stderr are opened by us, `O_APPEND`, on `stdout.log` and
//! `stderr.log` and handed to its init directly, so nothing has to stay alive to carry
//! them (and nothing is lost while the server restarts). What a file cannot carry is
//! each line's time; the driver's keeper task notes every second how far each file has
//! grown (`stdout.idx`: `<end offset> <unix ms>` per line), so a line's time is when the
//! node first saw it, within about a second. Lines written since the last note get the
//! file's modification time, and lines a follower reads get the time it read them.
//!
//! Rotation is copy-truncate, done by the keeper when a file passes its cap: the file is
//! copied to `stdout.1.log` (replacing the older one) and truncated; thanks to
//! `O_APPEND` the writer simply continues at the new end. Bytes written between the copy
//! and the truncation are lost; the window is one `copy_file_range`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::driver::{LogLine, LogLines, LogQuery, LogStream};
use crate::error::IoContext;

const STREAMS: [LogStream; 2] = [LogStream::Stdout, LogStream::Stderr];
/// How often a follower looks for new output.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(200);

/// The log files of one instance, in its directory.
#[derive(Debug, Clone)]
pub struct LogFiles {
    dir: PathBuf,
}

impl LogFiles {
    pub fn new(dir: impl Into<PathBuf>) -> LogFiles {
        LogFiles { dir: dir.into() }
    }

    fn path(&self, stream: LogStream, generation: u8, ext: &str) -> PathBuf {
        match generation {
            0 => self.dir.join(format!("{}.{ext}", stream.as_str())),
            g => self.dir.join(format!("{}.{g}.{ext}", stream.as_str())),
        }
    }

    /// Opens both files for the instance to write: `O_APPEND`, created when missing.
    pub fn open_writers(&self) -> crate::Result<(File, File)> {
        let open = |stream| {
            let path = self.path(stream, 0, "log");
            OpenOptions::new().append(true).create(true).mode(0o640).open(&path).at("opening", &path)
        };
        Ok((open(LogStream::Stdout)?, open(LogStream::Stderr)?))
    }

    /// Notes the current sizes with the current time (at a start, so output before it is
    /// not dated later).
    pub fn mark(&self) -> io::Result<()> {
        let now = unix_ms(SystemTime::now());
        for stream in STREAMS {
            let size = file_len(&self.path(stream, 0, "log"));
            let idx = self.path(stream, 0, "idx");
            if last_record(&idx).is_none_or(|(end, _)| end != size) {
                append_record(&idx, size, now)?;
            }
        }
        Ok(())
    }

    /// The keeper's work for one instance: note growth, rotate past `max_bytes`.
    pub fn maintain(&self, max_bytes: u64) -> io::Result<()> {
        let now = unix_ms(SystemTime::now());
        for stream in STREAMS {
            let log = self.path(stream, 0, "log");
            let idx = self.path(stream, 0, "idx");
            let Ok(meta) = fs::metadata(&log) else { continue };
            let size = meta.len();
            match last_record(&idx) {
                Some((end, _)) if end == size => {}
                // Shrunk: someone truncated it; start the index over.
                Some((end, _)) if end > size => {
                    fs::write(&idx, "")?;
                    append_record(&idx, size, now)?;
                }
                _ => append_record(&idx, size, now)?,
            }
            if size > max_bytes {
                fs::copy(&log, self.path(stream, 1, "log"))?;
                fs::rename(&idx, self.path(stream, 1, "idx"))?;
                OpenOptions::new().write(true).open(&log)?.set_len(0)?;
            }
        }
        Ok(())
    }

    /// All lines on disk, oldest first, as `query` selects them (`follow` aside). With
    /// `complete_only`, a last line without its newline is left out and the returned
    /// offsets point at its start, so a follower picks it up once it is complete.
    fn history(&self, query: &LogQuery, complete_only: bool) -> (Vec<LogLine>, [u64; 2]) {
        let mut lines = Vec::new();
        let mut ends = [0u64; 2];
        for (i, stream) in STREAMS.into_iter().enumerate() {
            for generation in [1, 0] {
                let log = self.path(stream, generation, "log");
                let Ok(content) = fs::read(&log) else { continue };
                let mtime = fs::metadata(&log).and_then(|m| m.modified()).unwrap_or_else(|_| SystemTime::now());
                let index = read_index(&self.path(stream, generation, "idx"));
                let consumed = split_lines(&content, &index, mtime, stream, !complete_only, &mut lines);
                if generation == 0 {
                    ends[i] = consumed as u64;
                }
            }
        }
        // Stable: lines of one stream keep their order (their times never decrease).
        lines.sort_by_key(|l| l.time);
        if let Some(since) = query.since {
            lines.retain(|l| l.time >= since);
        }
        if let Some(tail) = query.tail {
            let skip = lines.len().saturating_sub(tail);
            lines.drain(..skip);
        }
        (lines, ends)
    }

    /// The lines `query` asks for; with `follow`, new ones until `alive` says the
    /// instance stopped (and its last output was read). What is on disk is read now, so
    /// a follower sees every line written after this call, however late it polls.
    pub async fn read(&self, query: LogQuery, alive: Box<dyn Fn() -> bool + Send + Sync>) -> crate::Result<LogLines> {
        let files = self.clone();
        let (history, mut positions) = {
            let files = files.clone();
            let query = query.clone();
            tokio::task::spawn_blocking(move || files.history(&query, query.follow))
                .await
                .map_err(|e| crate::Error::io("reading logs", io::Error::other(e)))?
        };
        Ok(Box::pin(async_stream::try_stream! {
            for line in history {
                yield line;
            }
            if query.follow {
                let mut partial: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
                loop {
                    let running = alive();
                    let mut got = Vec::new();
                    for (i, stream) in STREAMS.into_iter().enumerate() {
                        let bytes = files.read_new(stream, &mut positions[i])
                            .map_err(|e| crate::Error::io("reading logs", e))?;
                        partial[i].extend_from_slice(&bytes);
                        let now = SystemTime::now();
                        while let Some(n) = partial[i].iter().position(|&b| b == b'\n') {
                            let line: Vec<u8> = partial[i].drain(..=n).collect();
                            got.push(LogLine { stream, time: now, line: decode(&line[..n]) });
                        }
                    }
                    let idle = got.is_empty();
                    for line in got {
                        yield line;
                    }
                    if !running && idle {
                        for (i, stream) in STREAMS.into_iter().enumerate() {
                            if !partial[i].is_empty() {
                                yield LogLine { stream, time: SystemTime::now(), line: decode(&partial[i]) };
                            }
                        }
                        break;
                    }
                    tokio::time::sleep(FOLLOW_INTERVAL).await;
                }
            }
        }))
    }

    /// Bytes appended since `position`, following a rotation: when the file shrank, the
    /// rest of the old content is in `.1.log`.
    fn read_new(&self, stream: LogStream, position: &mut u64) -> io::Result<Vec<u8>> {
        let log = self.path(stream, 0, "log");
        let size = file_len(&log);
        let mut out = Vec::new();
        if size < *position {
            let rotated = self.path(stream, 1, "log");
            if file_len(&rotated) > *position {
                let mut f = File::open(&rotated)?;
                f.seek(SeekFrom::Start(*position))?;
                f.read_to_end(&mut out)?;
            }
            *position = 0;
        }
        if size > *position {
            let mut f = File::open(&log)?;
            f.seek(SeekFrom::Start(*position))?;
            let read = f.take(size - *position).read_to_end(&mut out)?;
            *position += read as u64;
        }
        Ok(out)
    }
}

/// Splits `content` into lines dated by `index` (see the module doc); returns how many
/// bytes it consumed.
fn split_lines(
    content: &[u8],
    index: &[(u64, u64)],
    mtime: SystemTime,
    stream: LogStream,
    include_partial: bool,
    out: &mut Vec<LogLine>,
) -> usize {
    let mut start = 0usize;
    let mut record = 0usize;
    while start < content.len() {
        let end = match content[start..].iter().position(|&b| b == b'\n') {
            Some(n) => start + n,
            None if include_partial => content.len(),
            None => break,
        };
        // The first note that saw this line's first byte.
        while record < index.len() && index[record].0 <= start as u64 {
            record += 1;
        }
        let time = match index.get(record) {
            Some(&(_, ms)) => UNIX_EPOCH + Duration::from_millis(ms),
            None => mtime,
        };
        out.push(LogLine { stream, time, line: decode(&content[start..end]) });
        start = end + 1;
    }
    start.min(content.len())
}

fn decode(bytes: &[u8]) -> String {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    String::from_utf8_lossy(bytes).into_owned()
}

fn read_index(path: &Path) -> Vec<(u64, u64)> {
    let Ok(text) = fs::read_to_string(path) else { return Vec::new() };
    text.lines().filter_map(parse_record).collect()
}

fn parse_record(line: &str) -> Option<(u64, u64)> {
    let (end, ms) = line.split_once(' ')?;
    Some((end.parse().ok()?, ms.parse().ok()?))
}

/// The last note, read from the end of the file (it grows all day).
fn last_record(path: &Path) -> Option<(u64, u64)> {
    let mut f = File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(64))).ok()?;
    let mut tail = String::new();
    f.read_to_string(&mut tail).ok()?;
    tail.lines().last().and_then(parse_record)
}

fn append_record(path: &Path, end: u64, ms: u64) -> io::Result<()> {
    let mut f = OpenOptions::new().append(true).create(true).open(path)?;
    f.write_all(format!("{end} {ms}\n").as_bytes())
}

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

pub(crate) fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    #[test]
    fn lines_take_the_time_of_the_first_note_that_saw_them() {
        let content = b"a\nbb\nccc\npartial";
        // Noted 5 bytes (a, bb) at t=100, then 9 (ccc) at t=200; "partial" is newer.
        let index = [(0, 50), (5, 100), (9, 200)];
        let mut out = Vec::new();
        let consumed = split_lines(content, &index, at(300), LogStream::Stdout, true, &mut out);
        let got: Vec<(String, SystemTime)> = out.into_iter().map(|l| (l.line, l.time)).collect();
        assert_eq!(
            got,
            vec![("a".into(), at(100)), ("bb".into(), at(100)), ("ccc".into(), at(200)), ("partial".into(), at(300))]
        );
        assert_eq!(consumed, content.len());
        let mut out = Vec::new();
        assert_eq!(split_lines(content, &index, at(300), LogStream::Stdout, false, &mut out), 9);
        assert_eq!(out.len(), 3);
    }

    #[tokio::test]
    async fn rotates_and_reads_across_generations() {
        let dir = tempfile::tempdir().unwrap();
        let files = LogFiles::new(dir.path());
        let (mut out, mut err) = files.open_writers().unwrap();
        files.mark().unwrap();
        out.write_all(b"one\ntwo\n").unwrap();
        err.write_all(b"oops\n").unwrap();
        files.maintain(4).unwrap(); // both past 4 bytes: rotated
        out.write_all(b"three\n").unwrap();
        assert_eq!(fs::read(dir.path().join("stdout.log")).unwrap(), b"three\n");
        assert_eq!(fs::read(dir.path().join("stdout.1.log")).unwrap(), b"one\ntwo\n");

        let all: Vec<String> = files
            .read(LogQuery::default(), Box::new(|| false))
            .await
            .unwrap()
            .map(|l| l.unwrap().line)
            .collect::<Vec<_>>()
            .await;
        for want in ["one", "two", "three", "oops"] {
            assert!(all.contains(&want.to_string()), "{want} in {all:?}");
        }
        let query = LogQuery { tail: Some(1), ..LogQuery::default() };
        let last: Vec<LogLine> =
            files.read(query, Box::new(|| false)).await.unwrap().map(|l| l.unwrap()).collect().await;
        assert_eq!(last.len(), 1);
        assert_eq!(last[0].line, "three");

        let future = LogQuery { since: Some(SystemTime::now() + Duration::from_secs(60)), ..LogQuery::default() };
        assert_eq!(files.read(future, Box::new(|| false)).await.unwrap().count().await, 0);
    }

    #[tokio::test]
    async fn follow_sees_new_lines_and_ends_when_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let files = LogFiles::new(dir.path());
        let (mut out, _) = files.open_writers().unwrap();
        out.write_all(b"old\nhalf").unwrap();
        let running = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let flag = running.clone();
        let query = LogQuery { follow: true, ..LogQuery::default() };
        let mut stream =
            files.read(query, Box::new(move || flag.load(std::sync::atomic::Ordering::SeqCst))).await.unwrap();
        assert_eq!(stream.next().await.unwrap().unwrap().line, "old");
        out.write_all(b" done\nnew\n").unwrap();
        assert_eq!(stream.next().await.unwrap().unwrap().line, "half done");
        assert_eq!(stream.next().await.unwrap().unwrap().line, "new");
        running.store(false, std::sync::atomic::Ordering::SeqCst);
        assert!(stream.next().await.is_none());
    }
}
