//! A job's log as the store keeps it: terraform's output, step by step and stream by stream,
//! cut into numbered chunks — redacted before anything is stored, and capped.
//!
//! [`LogChunker`] takes output as it is read from the processes and gives [`LogChunk`]s for
//! the store (and the live view) to append, numbered from 1 without gaps:
//! * **Redaction** with the job's [`Redactor`] (the same known secrets as comments). A secret
//!   may arrive split across two reads, so the chunker holds back the last
//!   `longest_pattern_bytes - 1` bytes of each stream until more output shows whether a secret
//!   starts there ([`Redactor::redact_prefix`]); the stored text is exactly `redact` of the
//!   whole stream. Invalid UTF-8 becomes U+FFFD; a character split across reads is kept whole.
//! * **Chunking**: [`LogChunker::push`] emits full chunks (about [`LogLimits::chunk_bytes`],
//!   cut after a newline when there is one in the second half) as soon as they are safe;
//!   [`LogChunker::tick`], called by the worker every second or so while output is pending,
//!   emits what is safe now, whole lines first (so a live viewer sees a slow line within two
//!   ticks, and a chatty step does not become one row per line); [`LogChunker::flush`] at the end of a process
//!   emits everything held back.
//! * **The cap**: at most [`LogLimits::max_bytes`] are stored per job. The first
//!   `max_bytes - tail_bytes` stream live; then one [`ChunkKind::CapReached`] notice, and only
//!   the last `tail_bytes` are kept (terraform's errors are at the end), emitted by
//!   [`LogChunker::finish`] after an [`ChunkKind::Omitted`] notice saying how much was left out.
//! * **The end**: [`LogChunker::finish`] ends with a [`ChunkKind::End`] chunk, which tells a
//!   live viewer (and a viewer resuming after a restart) that nothing more will come.
//!
//! Stdout and stderr are redacted separately (each is its own byte stream); chunks keep their
//! order of emission, which is the order the page shows them in.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::core::plan::redact::Redactor;

/// Which command of the job produced the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStep {
    /// Sluice's own lines about the job (checkout, policy checks, why it stopped).
    Sluice,
    Init,
    Plan,
    Show,
    Apply,
}

impl LogStep {
    pub const ALL: [LogStep; 5] = [
        LogStep::Sluice,
        LogStep::Init,
        LogStep::Plan,
        LogStep::Show,
        LogStep::Apply,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LogStep::Sluice => "sluice",
            LogStep::Init => "init",
            LogStep::Plan => "plan",
            LogStep::Show => "show",
            LogStep::Apply => "apply",
        }
    }

    pub fn parse(s: &str) -> Option<LogStep> {
        LogStep::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    Stdout,
    Stderr,
}

impl LogStream {
    pub fn as_str(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
        }
    }

    pub fn parse(s: &str) -> Option<LogStream> {
        match s {
            "stdout" => Some(LogStream::Stdout),
            "stderr" => Some(LogStream::Stderr),
            _ => None,
        }
    }

    fn index(self) -> usize {
        match self {
            LogStream::Stdout => 0,
            LogStream::Stderr => 1,
        }
    }
}

/// What a chunk is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChunkKind {
    /// Output of the step's process, redacted.
    Output,
    /// The cap was reached: the text says what happens to the rest.
    CapReached,
    /// Output left out between the capped head and the kept tail; the text says how much.
    Omitted,
    /// A step's process ended: the text says which, after how long and how (e.g.
    /// `[init: 2.3 s, ok]`). Written even past the cap (it is short), so every step's duration
    /// is in the log.
    StepEnd,
    /// The last chunk of the job (empty text).
    End,
}

impl ChunkKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChunkKind::Output => "output",
            ChunkKind::CapReached => "cap_reached",
            ChunkKind::Omitted => "omitted",
            ChunkKind::StepEnd => "step_end",
            ChunkKind::End => "end",
        }
    }

    pub fn parse(s: &str) -> Option<ChunkKind> {
        [
            ChunkKind::Output,
            ChunkKind::CapReached,
            ChunkKind::Omitted,
            ChunkKind::StepEnd,
            ChunkKind::End,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// One stored piece of a job's log. `(job_id, seq)` is its key in the store; `seq` is also
/// the live view's SSE event id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogChunk {
    /// From 1, without gaps, per job.
    pub seq: u64,
    pub step: LogStep,
    pub stream: LogStream,
    pub kind: ChunkKind,
    /// Redacted UTF-8; at most about [`LogLimits::chunk_bytes`].
    pub text: String,
}

/// How much of a job's output is kept, and in what pieces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLimits {
    /// Bytes of output stored per job, head and tail together (default 4 MiB).
    pub max_bytes: usize,
    /// Of those, the bytes kept from the end once the cap is reached (default 256 KiB; at
    /// most half of `max_bytes`).
    pub tail_bytes: usize,
    /// The size of a full chunk (default 16 KiB).
    pub chunk_bytes: usize,
}

impl Default for LogLimits {
    fn default() -> Self {
        LogLimits {
            max_bytes: 4 << 20,
            tail_bytes: 256 << 10,
            chunk_bytes: 16 << 10,
        }
    }
}

/// What the chunker did over a job, for the job's row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogTotals {
    /// Chunks emitted, notices and the end included (= the last seq).
    pub chunks: u64,
    /// Bytes of output stored (redacted).
    pub stored_bytes: u64,
    /// Bytes of output left out over the cap (redacted).
    pub omitted_bytes: u64,
}

#[derive(Debug)]
struct Pending {
    step: LogStep,
    /// Decoded, not yet emitted.
    text: String,
    /// The start of a UTF-8 character whose other bytes have not arrived (at most 3 bytes).
    partial: Vec<u8>,
}

/// Cuts one job's output into redacted, capped, numbered chunks (see the module docs).
#[derive(Debug)]
pub struct LogChunker {
    redactor: Redactor,
    limits: LogLimits,
    /// Bytes held back at the end of each stream (`longest_pattern_bytes - 1`).
    hold: usize,
    next_seq: u64,
    pending: [Pending; 2],
    last_step: LogStep,
    head_used: usize,
    capped: bool,
    tail: VecDeque<(LogStep, LogStream, String)>,
    tail_len: usize,
    totals: LogTotals,
}

impl LogChunker {
    pub fn new(redactor: Redactor, limits: LogLimits) -> LogChunker {
        let limits = LogLimits {
            max_bytes: limits.max_bytes.max(1),
            tail_bytes: limits.tail_bytes.min(limits.max_bytes / 2),
            chunk_bytes: limits.chunk_bytes.max(64),
        };
        let pending = |_| Pending {
            step: LogStep::Sluice,
            text: String::new(),
            partial: Vec::new(),
        };
        LogChunker {
            hold: redactor.longest_pattern_bytes().saturating_sub(1),
            redactor,
            limits,
            next_seq: 1,
            pending: [pending(0), pending(1)],
            last_step: LogStep::Sluice,
            head_used: 0,
            capped: false,
            tail: VecDeque::new(),
            tail_len: 0,
            totals: LogTotals::default(),
        }
    }

    /// Takes output `bytes` of `step` on `stream`; returns the chunks that are ready. Output of
    /// another step first flushes what the previous step left pending (its process is over).
    pub fn push(&mut self, step: LogStep, stream: LogStream, bytes: &[u8]) -> Vec<LogChunk> {
        let mut out = Vec::new();
        let i = stream.index();
        if step != self.last_step {
            self.flush_stream(LogStream::Stdout, &mut out);
            self.flush_stream(LogStream::Stderr, &mut out);
            self.last_step = step;
        }
        self.pending[i].step = step;
        decode_into(&mut self.pending[i], bytes);
        // Emit whole chunks while more than a chunk is safe.
        loop {
            let safe = self.safe_len(i);
            if safe < self.limits.chunk_bytes {
                break;
            }
            let cut = piece_end(&self.pending[i].text, self.limits.chunk_bytes.min(safe));
            self.emit_prefix(stream, cut, &mut out);
        }
        out
    }

    /// Emits what is safe to emit now on both streams, however short: up to the last safe
    /// newline, or the whole safe part when it holds none (call it about every second while
    /// output is pending, so a live viewer sees slow output).
    pub fn tick(&mut self) -> Vec<LogChunk> {
        let mut out = Vec::new();
        for stream in [LogStream::Stdout, LogStream::Stderr] {
            let i = stream.index();
            let safe = self.safe_len(i);
            if safe > 0 {
                let text = &self.pending[i].text;
                let safe = floor_boundary(text, safe);
                // Whole lines when there are some, so a tick does not cut a line that is still
                // arriving; a partial line alone goes out whole (at the next tick at the latest).
                let cut = text[..safe].rfind('\n').map_or(safe, |nl| nl + 1);
                self.emit_prefix(stream, cut, &mut out);
            }
        }
        out
    }

    /// Emits everything pending on both streams, held-back bytes included (call it when a
    /// step's process has exited: nothing more can complete a secret).
    pub fn flush(&mut self) -> Vec<LogChunk> {
        let mut out = Vec::new();
        self.flush_stream(LogStream::Stdout, &mut out);
        self.flush_stream(LogStream::Stderr, &mut out);
        out
    }

    /// Ends step `step` (its process exited after `duration_ms`, `ok` or not): flushes what
    /// it left pending and emits its [`ChunkKind::StepEnd`] chunk.
    pub fn end_step(&mut self, step: LogStep, duration_ms: u64, ok: bool) -> Vec<LogChunk> {
        let mut out = self.flush();
        let text = format!(
            "[{}: {}, {}]\n",
            step.as_str(),
            super::pages::duration(duration_ms),
            if ok { "ok" } else { "failed" }
        );
        self.last_step = step;
        self.chunk(step, LogStream::Stdout, ChunkKind::StepEnd, text, &mut out);
        out
    }

    /// Ends the job: flushes, emits the kept tail after an `Omitted` notice when output was
    /// left out, and the `End` chunk.
    pub fn finish(mut self) -> (Vec<LogChunk>, LogTotals) {
        let mut out = self.flush();
        if self.capped {
            if self.totals.omitted_bytes > 0 {
                let text = format!(
                    "[{} bytes of output omitted here: the log keeps {} bytes per job. The end of the output follows.]\n",
                    self.totals.omitted_bytes, self.limits.max_bytes
                );
                self.chunk(
                    self.last_step,
                    LogStream::Stdout,
                    ChunkKind::Omitted,
                    text,
                    &mut out,
                );
            }
            let tail = std::mem::take(&mut self.tail);
            for (step, stream, text) in tail {
                self.totals.stored_bytes += text.len() as u64;
                self.chunk(step, stream, ChunkKind::Output, text, &mut out);
            }
        }
        self.chunk(
            self.last_step,
            LogStream::Stdout,
            ChunkKind::End,
            String::new(),
            &mut out,
        );
        self.totals.chunks = self.next_seq - 1;
        (out, self.totals)
    }

    /// Bytes at the start of stream `i`'s pending text that no later output can change.
    fn safe_len(&self, i: usize) -> usize {
        self.pending[i].text.len().saturating_sub(self.hold)
    }

    fn flush_stream(&mut self, stream: LogStream, out: &mut Vec<LogChunk>) {
        let i = stream.index();
        if !self.pending[i].partial.is_empty() {
            // A character that never completed.
            self.pending[i].partial.clear();
            self.pending[i].text.push(char::REPLACEMENT_CHARACTER);
        }
        while !self.pending[i].text.is_empty() {
            let len = self.pending[i].text.len();
            let cut = piece_end(&self.pending[i].text, self.limits.chunk_bytes.min(len));
            self.emit_prefix(stream, cut, out);
        }
    }

    /// Redacts and emits the pending text of `stream` up to `cut` (or past it, through a
    /// secret that starts before it).
    fn emit_prefix(&mut self, stream: LogStream, cut: usize, out: &mut Vec<LogChunk>) {
        let i = stream.index();
        let step = self.pending[i].step;
        let text = std::mem::take(&mut self.pending[i].text);
        let (redacted, consumed) = self.redactor.redact_prefix(&text, cut);
        let redacted = redacted.into_owned();
        self.pending[i].text = text[consumed..].to_string();
        self.store(step, stream, redacted, out);
    }

    /// Applies the cap to redacted output and emits (or keeps for the tail) what it allows.
    fn store(&mut self, step: LogStep, stream: LogStream, text: String, out: &mut Vec<LogChunk>) {
        if text.is_empty() {
            return;
        }
        let mut text = text;
        if !self.capped {
            let budget = self.limits.max_bytes - self.limits.tail_bytes - self.head_used;
            if text.len() <= budget {
                self.head_used += text.len();
                self.totals.stored_bytes += text.len() as u64;
                self.chunk(step, stream, ChunkKind::Output, text, out);
                return;
            }
            let cut = floor_boundary(&text, budget);
            let rest = text.split_off(cut);
            self.head_used += text.len();
            self.totals.stored_bytes += text.len() as u64;
            self.chunk(step, stream, ChunkKind::Output, text, out);
            self.capped = true;
            let notice = format!(
                "[Output exceeded the log's cap of {} bytes: the rest is not streamed. The last {} bytes are kept and shown when the job ends.]\n",
                self.limits.max_bytes, self.limits.tail_bytes
            );
            self.chunk(step, stream, ChunkKind::CapReached, notice, out);
            text = rest;
        }
        self.keep_tail(step, stream, text);
    }

    fn keep_tail(&mut self, step: LogStep, stream: LogStream, text: String) {
        self.tail_len += text.len();
        match self.tail.back_mut() {
            Some((s, st, t))
                if *s == step
                    && *st == stream
                    && t.len() + text.len() <= self.limits.chunk_bytes =>
            {
                t.push_str(&text)
            }
            _ => self.tail.push_back((step, stream, text)),
        }
        while self.tail_len > self.limits.tail_bytes {
            let over = self.tail_len - self.limits.tail_bytes;
            let Some(front) = self.tail.front_mut() else {
                break;
            };
            if front.2.len() <= over {
                self.tail_len -= front.2.len();
                self.totals.omitted_bytes += front.2.len() as u64;
                self.tail.pop_front();
            } else {
                let mut cut = over;
                while !front.2.is_char_boundary(cut) {
                    cut += 1;
                }
                front.2.drain(..cut);
                self.tail_len -= cut;
                self.totals.omitted_bytes += cut as u64;
            }
        }
    }

    fn chunk(
        &mut self,
        step: LogStep,
        stream: LogStream,
        kind: ChunkKind,
        text: String,
        out: &mut Vec<LogChunk>,
    ) {
        // Output longer than a chunk (a tail piece, a long redacted run) is split.
        let mut text = text;
        while kind == ChunkKind::Output && text.len() > self.limits.chunk_bytes {
            let cut = piece_end(&text, self.limits.chunk_bytes);
            let rest = text.split_off(cut);
            self.push_chunk(step, stream, kind, text, out);
            text = rest;
        }
        self.push_chunk(step, stream, kind, text, out);
    }

    fn push_chunk(
        &mut self,
        step: LogStep,
        stream: LogStream,
        kind: ChunkKind,
        text: String,
        out: &mut Vec<LogChunk>,
    ) {
        out.push(LogChunk {
            seq: self.next_seq,
            step,
            stream,
            kind,
            text,
        });
        self.next_seq += 1;
    }
}

/// Appends `bytes` to the pending text, keeping an incomplete trailing character for later and
/// replacing invalid sequences with U+FFFD.
fn decode_into(p: &mut Pending, bytes: &[u8]) {
    p.partial.extend_from_slice(bytes);
    let mut rest: &[u8] = &p.partial;
    let mut keep = Vec::new();
    loop {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                p.text.push_str(s);
                break;
            }
            Err(e) => {
                let valid = e.valid_up_to();
                p.text
                    .push_str(std::str::from_utf8(&rest[..valid]).expect("checked valid"));
                match e.error_len() {
                    None => {
                        keep = rest[valid..].to_vec();
                        break;
                    }
                    Some(n) => {
                        p.text.push(char::REPLACEMENT_CHARACTER);
                        rest = &rest[valid + n..];
                    }
                }
            }
        }
    }
    p.partial = keep;
}

/// The largest char boundary `<= at`.
fn floor_boundary(s: &str, at: usize) -> usize {
    let mut i = at.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Where a piece of at most `max` bytes of `s` ends: after the last newline in its second half
/// when there is one, else at a char boundary (at least one character).
fn piece_end(s: &str, max: usize) -> usize {
    let max = max.min(s.len());
    if max == s.len() {
        return max;
    }
    let end = floor_boundary(s, max);
    if let Some(nl) = s[..end].rfind('\n')
        && nl + 1 >= end / 2
    {
        return nl + 1;
    }
    if end == 0 {
        // A single character longer than `max`: take it whole.
        return s.chars().next().map_or(0, char::len_utf8);
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "s3cr3t-T0KEN-value";

    fn redactor() -> Redactor {
        Redactor::new([SECRET.to_string(), "hunter22".to_string()])
    }

    fn big() -> LogLimits {
        LogLimits {
            max_bytes: 1 << 20,
            tail_bytes: 1 << 10,
            chunk_bytes: 64,
        }
    }

    /// Feeds `pieces` (stdout of `plan`) with a tick after each, finishes, and returns the
    /// chunks.
    fn run(limits: LogLimits, pieces: &[&[u8]]) -> (Vec<LogChunk>, LogTotals) {
        let mut c = LogChunker::new(redactor(), limits);
        let mut out = Vec::new();
        for p in pieces {
            out.extend(c.push(LogStep::Plan, LogStream::Stdout, p));
            out.extend(c.tick());
        }
        let (rest, totals) = c.finish();
        out.extend(rest);
        (out, totals)
    }

    fn output_text(chunks: &[LogChunk]) -> String {
        chunks
            .iter()
            .filter(|c| c.kind == ChunkKind::Output)
            .map(|c| c.text.as_str())
            .collect()
    }

    fn check_numbering(chunks: &[LogChunk]) {
        for (i, c) in chunks.iter().enumerate() {
            assert_eq!(c.seq, i as u64 + 1, "{chunks:#?}");
        }
        assert_eq!(chunks.last().unwrap().kind, ChunkKind::End);
    }

    /// The secret split at every possible point across two reads (and three) is never stored,
    /// not even partly: the stored text equals the redaction of the whole stream.
    #[test]
    fn a_secret_split_across_reads_is_redacted() {
        let line = format!("token = \"{SECRET}\"\nnext line hunter22 end\n");
        let bytes = line.as_bytes();
        let whole = redactor().redact(&line).into_owned();
        assert!(!whole.contains("T0KEN"));
        for i in 0..=bytes.len() {
            let (chunks, _) = run(big(), &[&bytes[..i], &bytes[i..]]);
            check_numbering(&chunks);
            assert_eq!(output_text(&chunks), whole, "split at {i}");
            for c in &chunks {
                for part in ["s3cr3t", "T0KEN", "-value", "hunter"] {
                    assert!(!c.text.contains(part), "split at {i}: {c:?}");
                }
            }
            for j in i..=bytes.len() {
                let (chunks, _) = run(big(), &[&bytes[..i], &bytes[i..j], &bytes[j..]]);
                assert_eq!(output_text(&chunks), whole, "split at {i}, {j}");
            }
        }
    }

    /// Each step's output is its own, flushed (held-back bytes included) when the step ends,
    /// and followed by its duration; past the cap the step ends are still written.
    #[test]
    fn each_step_ends_with_its_duration_even_past_the_cap() {
        let mut c = LogChunker::new(redactor(), big());
        let mut out = c.push(LogStep::Init, LogStream::Stdout, b"Initializing...\nheld");
        out.extend(c.end_step(LogStep::Init, 2300, true));
        out.extend(c.push(LogStep::Plan, LogStream::Stdout, b"Plan: 1 to add\n"));
        out.extend(c.end_step(LogStep::Plan, 850, false));
        let (rest, _) = c.finish();
        out.extend(rest);
        check_numbering(&out);
        let seen: Vec<(LogStep, ChunkKind, &str)> = out
            .iter()
            .map(|c| (c.step, c.kind, c.text.as_str()))
            .collect();
        assert_eq!(
            seen,
            vec![
                (LogStep::Init, ChunkKind::Output, "Initializing...\nheld"),
                (LogStep::Init, ChunkKind::StepEnd, "[init: 2.3 s, ok]\n"),
                (LogStep::Plan, ChunkKind::Output, "Plan: 1 to add\n"),
                (
                    LogStep::Plan,
                    ChunkKind::StepEnd,
                    "[plan: 850 ms, failed]\n"
                ),
                (LogStep::Plan, ChunkKind::End, ""),
            ]
        );
        // Over the cap: the step's end is still there.
        let small = LogLimits {
            max_bytes: 256,
            tail_bytes: 64,
            chunk_bytes: 64,
        };
        let mut c = LogChunker::new(redactor(), small);
        let mut out = c.push(
            LogStep::Apply,
            LogStream::Stdout,
            "y".repeat(2000).as_bytes(),
        );
        out.extend(c.end_step(LogStep::Apply, 61_000, true));
        assert!(out.iter().any(|c| c.kind == ChunkKind::CapReached));
        assert_eq!(
            out.last().map(|c| (c.kind, c.text.as_str())),
            Some((ChunkKind::StepEnd, "[apply: 1m 01s, ok]\n"))
        );
        assert_eq!(ChunkKind::parse("step_end"), Some(ChunkKind::StepEnd));
    }

    /// Byte by byte, chunks still carry the text as soon as nothing can complete a secret.
    #[test]
    fn ticks_emit_all_but_the_held_back_bytes() {
        let mut c = LogChunker::new(redactor(), big());
        // The longest form of a secret the redactor matches (an encoding or a hash of it).
        let hold = redactor().longest_pattern_bytes() - 1;
        assert!(hold >= SECRET.len() - 1);
        let text = "x".repeat(hold + 100);
        let mut emitted = String::new();
        for b in text.as_bytes() {
            for ch in c.push(LogStep::Init, LogStream::Stdout, &[*b]) {
                emitted.push_str(&ch.text);
            }
            for ch in c.tick() {
                emitted.push_str(&ch.text);
            }
        }
        assert_eq!(emitted.len(), 100);
        let rest: String = c.flush().into_iter().map(|c| c.text).collect();
        assert_eq!(rest.len(), hold);
        // Without secrets nothing is held back.
        let mut plain = LogChunker::new(Redactor::none(), big());
        assert_eq!(plain.push(LogStep::Init, LogStream::Stdout, b"ab").len(), 0);
        assert_eq!(plain.tick()[0].text, "ab");
    }

    #[test]
    fn utf8_split_across_reads_and_invalid_bytes() {
        let s = "añ→€😀\n".as_bytes();
        for i in 0..=s.len() {
            let (chunks, _) = run(big(), &[&s[..i], &s[i..]]);
            assert_eq!(output_text(&chunks), "añ→€😀\n", "split at {i}");
        }
        let (chunks, _) = run(big(), &[b"a\xffb", b"\xe2\x82"]);
        assert_eq!(output_text(&chunks), "a\u{fffd}b\u{fffd}");
    }

    #[test]
    fn streams_and_steps_stay_apart() {
        let mut c = LogChunker::new(redactor(), big());
        let mut out = Vec::new();
        // A secret's halves on different streams are not a secret (nor joined).
        out.extend(c.push(LogStep::Init, LogStream::Stdout, b"init out hunt"));
        out.extend(c.push(LogStep::Init, LogStream::Stderr, b"er22 warn\n"));
        out.extend(c.push(LogStep::Plan, LogStream::Stdout, b"plan out\n"));
        let (rest, totals) = c.finish();
        out.extend(rest);
        check_numbering(&out);
        let got: Vec<(&str, &str, &str)> = out
            .iter()
            .map(|c| (c.step.as_str(), c.stream.as_str(), c.text.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("init", "stdout", "init out hunt"),
                ("init", "stderr", "er22 warn\n"),
                ("plan", "stdout", "plan out\n"),
                ("plan", "stdout", ""),
            ]
        );
        assert_eq!(totals.chunks, 4);
        assert_eq!(totals.omitted_bytes, 0);
    }

    #[test]
    fn chunks_are_bounded_and_cut_after_newlines() {
        let text: String = (0..40)
            .map(|i| format!("line {i:02} of the plan\n"))
            .collect();
        // Without ticks: a tick may send a partial line on purpose (slow output is shown as
        // it comes), and where it falls depends on how much the redactor holds back.
        let mut c = LogChunker::new(redactor(), big());
        let mut chunks = c.push(LogStep::Plan, LogStream::Stdout, text.as_bytes());
        let (rest, totals) = c.finish();
        chunks.extend(rest);
        check_numbering(&chunks);
        assert_eq!(output_text(&chunks), text);
        for c in &chunks[..chunks.len() - 1] {
            assert!(c.text.len() <= 64, "{c:?}");
            assert!(c.text.ends_with('\n'), "{c:?}");
        }
        assert_eq!(totals.stored_bytes, text.len() as u64);
    }

    /// Over the cap: the head streams, one notice, the tail at the end after an omission
    /// notice; nothing stored beyond `max_bytes`.
    #[test]
    fn the_cap_keeps_head_and_tail() {
        let limits = LogLimits {
            max_bytes: 1000,
            tail_bytes: 200,
            chunk_bytes: 100,
        };
        let lines: Vec<String> = (0..100)
            .map(|i| format!("line {i:03} hunter22\n"))
            .collect();
        let mut c = LogChunker::new(redactor(), limits);
        let mut live = Vec::new();
        for l in &lines {
            live.extend(c.push(LogStep::Apply, LogStream::Stdout, l.as_bytes()));
            live.extend(c.tick());
        }
        let notices: Vec<&LogChunk> = live
            .iter()
            .filter(|c| c.kind == ChunkKind::CapReached)
            .collect();
        assert_eq!(notices.len(), 1);
        assert!(
            notices[0].text.contains("cap of 1000 bytes"),
            "{}",
            notices[0].text
        );
        let head = output_text(&live);
        assert_eq!(head.len(), 800);
        assert!(head.starts_with("line 000 ***\n"));
        let (end, totals) = c.finish();
        let mut all = live.clone();
        all.extend(end.clone());
        check_numbering(&all);
        let kinds: Vec<ChunkKind> = end.iter().map(|c| c.kind).collect();
        assert_eq!(kinds.first(), Some(&ChunkKind::Omitted));
        assert!(
            end[0]
                .text
                .contains(&format!("{} bytes of output omitted", totals.omitted_bytes))
        );
        let tail = output_text(&end);
        assert_eq!(tail.len(), 200);
        assert!(tail.ends_with("line 099 ***\n"), "{tail}");
        let total: usize = lines.iter().map(|l| redactor().redact(l).len()).sum();
        assert_eq!(totals.stored_bytes, 1000);
        assert_eq!(totals.stored_bytes + totals.omitted_bytes, total as u64);
        assert!(!all.iter().any(|c| c.text.contains("hunter")));
    }

    /// Just over the head budget but within the tail: no omission notice, nothing lost.
    #[test]
    fn the_cap_without_omission() {
        let limits = LogLimits {
            max_bytes: 1000,
            tail_bytes: 200,
            chunk_bytes: 100,
        };
        let text = "y".repeat(900);
        let (chunks, totals) = run(limits, &[text.as_bytes()]);
        check_numbering(&chunks);
        assert!(chunks.iter().any(|c| c.kind == ChunkKind::CapReached));
        assert!(!chunks.iter().any(|c| c.kind == ChunkKind::Omitted));
        assert_eq!(output_text(&chunks), text);
        assert_eq!(totals.omitted_bytes, 0);
    }

    #[test]
    fn names_round_trip() {
        for s in LogStep::ALL {
            assert_eq!(LogStep::parse(s.as_str()), Some(s));
        }
        for s in [LogStream::Stdout, LogStream::Stderr] {
            assert_eq!(LogStream::parse(s.as_str()), Some(s));
        }
        for k in [
            ChunkKind::Output,
            ChunkKind::CapReached,
            ChunkKind::Omitted,
            ChunkKind::End,
        ] {
            assert_eq!(ChunkKind::parse(k.as_str()), Some(k));
        }
    }
}
