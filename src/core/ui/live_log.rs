//! The live log's pure parts: what a running job's log page subscribes to, where a viewer
//! resumes, and the Server-Sent Events it is sent.
//!
//! The hub (in the HTTP layer) keeps one [`LiveLog`] per running job and a wake-up signal;
//! the job's worker publishes what its [`LogChunker`](super::job_log::LogChunker) emits —
//! chunks that are already redacted, numbered and stored. Viewers hold only a cursor (the
//! last `seq` they were sent), never a copy of the output, so memory is one bounded buffer per
//! running job however many watch it ([`LiveLog::buffered_bytes`]), plus a cursor per viewer.
//!
//! * **Order**: [`LiveLog::publish`] takes chunks in `seq` order without gaps, as the
//!   chunker numbers them, and refuses anything else (a chunk from another source, a replay).
//! * **Resume**: a viewer asks for everything after a `seq` ([`resume_after`]: the browser's
//!   `Last-Event-ID` on a reconnect, else the page's `after`). [`LiveLog::since`] answers from
//!   the buffer, or says to read the store first when the buffer no longer goes back that far
//!   (the server restarted, or the viewer fell behind): the store holds every chunk, so
//!   nothing is skipped.
//! * **Redaction** happened before anything reaches this module (the chunker redacts before a
//!   chunk exists); events are written from stored chunks only ([`sse_event`]).
//!
//! No I/O, no clock: the HTTP layer owns the channel, the store reads and the timers.

use std::collections::VecDeque;

use super::job_log::{ChunkKind, LogChunk};

/// The buffer a running job's [`LiveLog`] keeps by default (256 KiB of text): enough for a
/// viewer that opens the page or reconnects within a few seconds to catch up from memory.
pub const DEFAULT_BUFFER_BYTES: usize = 256 << 10;

/// The most a viewer is sent in one batch (64 KiB of text), so one slow viewer never makes the
/// server format the whole buffer at once.
pub const MAX_BATCH_BYTES: usize = 64 << 10;

/// Why a `Last-Event-ID` or `after` value was refused (answer 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResumeError {
    #[error("the log position `{0}` is not a chunk number")]
    NotANumber(String),
}

/// Where a viewer resumes: after the `seq` in `Last-Event-ID` (sent by the browser when it
/// reconnects, so it wins), else after the page's `after` query value, else from the start
/// (0). Surrounding spaces are ignored; anything but a decimal number is refused.
pub fn resume_after(last_event_id: Option<&str>, after: Option<&str>) -> Result<u64, ResumeError> {
    match last_event_id.or(after).map(str::trim) {
        None | Some("") => Ok(0),
        Some(v) => v
            .parse::<u64>()
            .map_err(|_| ResumeError::NotANumber(v.chars().take(32).collect())),
    }
}

/// Why a chunk was not published.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    #[error("chunk {got} published after {last}: chunks must come in order without gaps")]
    OutOfOrder { last: u64, got: u64 },
    #[error("the log has ended; nothing more is published")]
    Ended,
}

/// The recent chunks of one running job's log, for its viewers.
#[derive(Debug, Clone)]
pub struct LiveLog {
    chunks: VecDeque<LogChunk>,
    bytes: usize,
    max_bytes: usize,
    last_seq: u64,
    ended: bool,
}

/// What a viewer at some `seq` gets next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Since<'a> {
    /// These chunks, in order (possibly none: wait for the next publish, unless `ended`).
    Chunks {
        chunks: Vec<&'a LogChunk>,
        ended: bool,
    },
    /// The buffer starts after the viewer's position: read chunks `after+1 ..= until` from the
    /// store, send them, then ask again from `until`.
    FromStore { after: u64, until: u64 },
}

impl LiveLog {
    /// A log whose chunks up to `last_seq` are already stored (0 for a job that has not
    /// written any; a restarted server passes the store's last `seq`). Keeps at most
    /// `max_bytes` of chunk text (at least the latest chunk).
    pub fn new(last_seq: u64, max_bytes: usize) -> LiveLog {
        LiveLog {
            chunks: VecDeque::new(),
            bytes: 0,
            max_bytes,
            last_seq,
            ended: false,
        }
    }

    /// Adds the next chunk (after it is stored). Drops the oldest chunks beyond the buffer.
    pub fn publish(&mut self, chunk: LogChunk) -> Result<(), PublishError> {
        if self.ended {
            return Err(PublishError::Ended);
        }
        if chunk.seq != self.last_seq + 1 {
            return Err(PublishError::OutOfOrder {
                last: self.last_seq,
                got: chunk.seq,
            });
        }
        self.last_seq = chunk.seq;
        self.ended = chunk.kind == ChunkKind::End;
        self.bytes += chunk.text.len();
        self.chunks.push_back(chunk);
        while self.bytes > self.max_bytes && self.chunks.len() > 1 {
            if let Some(old) = self.chunks.pop_front() {
                self.bytes -= old.text.len();
            }
        }
        Ok(())
    }

    /// The last `seq` published.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Whether the `End` chunk was published.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Bytes of chunk text held (at most the buffer size, or one chunk).
    pub fn buffered_bytes(&self) -> usize {
        self.bytes
    }

    /// What a viewer who has everything up to `after` gets next: at most `max_bytes` of text
    /// (at least one chunk).
    pub fn since(&self, after: u64, max_bytes: usize) -> Since<'_> {
        let first = self.chunks.front().map_or(self.last_seq + 1, |c| c.seq);
        if after + 1 < first {
            return Since::FromStore {
                after,
                until: first - 1,
            };
        }
        // Seqs in the buffer are consecutive: the viewer's next chunk is at a known index.
        let start = usize::try_from(after + 1 - first).unwrap_or(usize::MAX);
        let mut out = Vec::new();
        let mut bytes = 0;
        for c in self.chunks.range(start.min(self.chunks.len())..) {
            if !out.is_empty() && bytes + c.text.len() > max_bytes {
                break;
            }
            bytes += c.text.len();
            out.push(c);
        }
        let reached = out.last().map_or(after, |c| c.seq);
        Since::Chunks {
            chunks: out,
            ended: self.ended && reached >= self.last_seq,
        }
    }
}

/// One Server-Sent Event for `chunk`: `id` is its `seq` (what the browser sends back as
/// `Last-Event-ID`), `event: chunk`, and `data` a one-line JSON object
/// `{"seq","step","stream","kind","text"}` (JSON escapes newlines, so the text cannot end the
/// event or forge another field). Format: WHATWG HTML, "Server-sent events".
pub fn sse_event(chunk: &LogChunk) -> String {
    // `LogChunk`'s serde form, fields in declaration order.
    let data = serde_json::to_string(chunk).expect("a chunk always serialises");
    format!("id: {}\nevent: chunk\ndata: {data}\n\n", chunk.seq)
}

/// A comment line that keeps idle connections (and proxies) from timing out; send it when no
/// chunk went out for a while (15 s is usual).
pub const SSE_KEEPALIVE: &str = ": keep-alive\n\n";

/// How long the browser waits before reconnecting, in ms (`retry:` field), sent first.
pub fn sse_retry(ms: u64) -> String {
    format!("retry: {ms}\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::plan::redact::Redactor;
    use crate::core::ui::job_log::{LogChunker, LogLimits, LogStep, LogStream};

    fn chunk(seq: u64, text: &str) -> LogChunk {
        LogChunk {
            seq,
            step: LogStep::Plan,
            stream: LogStream::Stdout,
            kind: ChunkKind::Output,
            text: text.to_string(),
        }
    }

    fn seqs(s: &Since<'_>) -> (Vec<u64>, bool) {
        match s {
            Since::Chunks { chunks, ended } => (chunks.iter().map(|c| c.seq).collect(), *ended),
            Since::FromStore { .. } => panic!("{s:?}"),
        }
    }

    #[test]
    fn resume_positions() {
        type Case = (
            Option<&'static str>,
            Option<&'static str>,
            Result<u64, ResumeError>,
        );
        let cases: &[Case] = &[
            (None, None, Ok(0)),
            (None, Some("12"), Ok(12)),
            (Some("40"), Some("12"), Ok(40)),
            (Some(" 7 "), None, Ok(7)),
            (Some(""), None, Ok(0)),
            (Some("-1"), None, Err(ResumeError::NotANumber("-1".into()))),
            (
                None,
                Some("1e3"),
                Err(ResumeError::NotANumber("1e3".into())),
            ),
            (
                Some("<script>"),
                None,
                Err(ResumeError::NotANumber("<script>".into())),
            ),
        ];
        for (id, after, want) in cases {
            assert_eq!(&resume_after(*id, *after), want, "{id:?} {after:?}");
        }
    }

    #[test]
    fn publishing_keeps_order() {
        let mut l = LiveLog::new(3, 1000);
        assert_eq!(
            l.publish(chunk(5, "x")),
            Err(PublishError::OutOfOrder { last: 3, got: 5 })
        );
        assert_eq!(
            l.publish(chunk(3, "x")),
            Err(PublishError::OutOfOrder { last: 3, got: 3 })
        );
        l.publish(chunk(4, "a")).unwrap();
        let mut end = chunk(5, "");
        end.kind = ChunkKind::End;
        l.publish(end).unwrap();
        assert!(l.ended());
        assert_eq!(l.publish(chunk(6, "late")), Err(PublishError::Ended));
        assert_eq!(l.last_seq(), 5);
    }

    /// Viewers resume from any position: from the buffer when it reaches back, else from the
    /// store first; batches are bounded; the end is reported once everything was sent.
    #[test]
    fn resuming_from_buffer_or_store() {
        let mut l = LiveLog::new(10, 10);
        // Nothing published yet: a viewer at 10 waits, one at 4 reads 5..=10 from the store.
        assert_eq!(seqs(&l.since(10, 100)), (vec![], false));
        assert_eq!(
            l.since(4, 100),
            Since::FromStore {
                after: 4,
                until: 10
            }
        );
        for (i, t) in ["aaaa", "bbbb", "cccc", "dddd"].iter().enumerate() {
            l.publish(chunk(11 + i as u64, t)).unwrap();
        }
        // 10 bytes of buffer: 13 and 14 are kept.
        assert_eq!(l.buffered_bytes(), 8);
        assert_eq!(
            l.since(11, 100),
            Since::FromStore {
                after: 11,
                until: 12
            }
        );
        assert_eq!(seqs(&l.since(12, 100)), (vec![13, 14], false));
        assert_eq!(seqs(&l.since(13, 100)), (vec![14], false));
        assert_eq!(seqs(&l.since(14, 100)), (vec![], false));
        // A bounded batch still makes progress (at least one chunk).
        assert_eq!(seqs(&l.since(12, 5)), (vec![13], false));
        assert_eq!(seqs(&l.since(12, 1)), (vec![13], false));
        let mut end = chunk(15, "");
        end.kind = ChunkKind::End;
        l.publish(end).unwrap();
        assert_eq!(seqs(&l.since(13, 3)), (vec![14], false));
        assert_eq!(seqs(&l.since(13, 4)), (vec![14, 15], true));
        assert_eq!(seqs(&l.since(14, 100)), (vec![15], true));
        assert_eq!(seqs(&l.since(15, 100)), (vec![], true));
        // A chunk bigger than the buffer is still kept alone.
        let mut big = LiveLog::new(0, 2);
        big.publish(chunk(1, "0123456789")).unwrap();
        assert_eq!(seqs(&big.since(0, 100)), (vec![1], false));
    }

    /// Many viewers share the one buffer: their state is a cursor each.
    #[test]
    fn viewers_hold_cursors_not_copies() {
        let mut l = LiveLog::new(0, DEFAULT_BUFFER_BYTES);
        let mut cursors = vec![0u64; 200];
        let mut received = vec![String::new(); 200];
        for i in 1..=500u64 {
            l.publish(chunk(i, &format!("line {i}\n"))).unwrap();
            // Every viewer catches up in bounded batches.
            for (cur, got) in cursors.iter_mut().zip(received.iter_mut()) {
                loop {
                    match l.since(*cur, MAX_BATCH_BYTES) {
                        Since::Chunks { chunks, .. } if chunks.is_empty() => break,
                        Since::Chunks { chunks, .. } => {
                            for c in chunks {
                                got.push_str(&c.text);
                                *cur = c.seq;
                            }
                        }
                        Since::FromStore { .. } => panic!("the buffer covers them"),
                    }
                }
            }
        }
        let want: String = (1..=500).map(|i| format!("line {i}\n")).collect();
        assert!(received.iter().all(|r| *r == want));
        assert!(l.buffered_bytes() <= DEFAULT_BUFFER_BYTES);
        assert_eq!(std::mem::size_of_val(&cursors[0]), 8);
    }

    /// From the process's bytes to the event a browser reads: a secret split across reads is
    /// never in any event, and each event is one `data:` line.
    #[test]
    fn events_carry_only_redacted_text() {
        let secret = "tok-9f8e7d6c5b4a";
        let mut chunker =
            LogChunker::new(Redactor::new([secret.to_string()]), LogLimits::default());
        let mut live = LiveLog::new(0, DEFAULT_BUFFER_BYTES);
        let output = format!("password = \"{secret}\"\n<script>alert(1)</script>\nend\n");
        let (a, b) = output.as_bytes().split_at(18);
        let mut chunks = chunker.push(LogStep::Apply, LogStream::Stdout, a);
        chunks.extend(chunker.tick());
        chunks.extend(chunker.push(LogStep::Apply, LogStream::Stdout, b));
        chunks.extend(chunker.tick());
        let (rest, _) = chunker.finish();
        chunks.extend(rest);
        for c in chunks {
            live.publish(c).unwrap();
        }
        let Since::Chunks { chunks, ended } = live.since(0, usize::MAX) else {
            panic!("all buffered");
        };
        assert!(ended);
        let events: String = chunks.iter().map(|c| sse_event(c)).collect();
        assert!(!events.contains("tok-"), "{events}");
        assert!(!events.contains("9f8e"), "{events}");
        assert!(events.contains("***"), "{events}");
        for e in events.split_terminator("\n\n") {
            let lines: Vec<&str> = e.lines().collect();
            assert_eq!(lines.len(), 3, "{e}");
            assert!(lines[0].starts_with("id: ") && lines[1] == "event: chunk");
            assert!(lines[2].starts_with("data: {"), "{e}");
        }
        assert_eq!(
            sse_event(&chunk(7, "a\nb\r\n")),
            "id: 7\nevent: chunk\ndata: {\"seq\":7,\"step\":\"plan\",\"stream\":\"stdout\",\"kind\":\"output\",\"text\":\"a\\nb\\r\\n\"}\n\n"
        );
        assert_eq!(sse_retry(3000), "retry: 3000\n\n");
    }
}
