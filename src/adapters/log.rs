//! The log writer: every line Sluice logs passes through the process's [`Redactor`] on its way to
//! stderr, so a known secret (or an encoded form of one, see [`crate::core::plan::redact`])
//! never reaches the logs, whatever message or error happened to carry it.
//!
//! Logging starts before the settings are read; the secrets arrive later, once, through
//! [`known_secrets::register`] (called where the secret values are known: when the runner is
//! built from the settings). Until then lines are written as they are — nothing secret is
//! known yet.
//! This module owns only the writer; what is logged is the callers' business.

use std::io::{self, Write};
use std::sync::Arc;

use tracing_subscriber::fmt::MakeWriter;

use super::known_secrets::{self, KnownSecrets};
use crate::core::plan::Redactor;

/// A [`MakeWriter`] for `tracing_subscriber::fmt` that redacts every event before writing it
/// to its target (stderr in the binary).
#[derive(Clone)]
pub struct RedactingWriter<W = StderrTarget> {
    target: W,
    secrets: KnownSecrets,
}

impl RedactingWriter<StderrTarget> {
    /// Stderr, redacted of what [`known_secrets::register`] was last given.
    pub fn stderr() -> Self {
        RedactingWriter {
            target: StderrTarget,
            secrets: known_secrets::process().clone(),
        }
    }
}

impl<W> RedactingWriter<W> {
    /// `target`, redacted of `secrets`.
    pub fn new(target: W, secrets: KnownSecrets) -> Self {
        RedactingWriter { target, secrets }
    }
}

/// Where a [`RedactingWriter`] writes: something that hands out a fresh [`Write`] per event.
pub trait Target: Clone + Send + Sync + 'static {
    type Out: Write;
    fn open(&self) -> Self::Out;
}

/// The process's stderr.
#[derive(Debug, Clone, Copy, Default)]
pub struct StderrTarget;

impl Target for StderrTarget {
    type Out = io::Stderr;
    fn open(&self) -> io::Stderr {
        io::stderr()
    }
}

impl<'a, W: Target> MakeWriter<'a> for RedactingWriter<W> {
    type Writer = EventWriter<W::Out>;

    fn make_writer(&'a self) -> Self::Writer {
        EventWriter {
            out: self.target.open(),
            buf: Vec::new(),
            redactor: self.secrets.redactor(),
        }
    }
}

/// Collects one event's bytes and writes them, redacted, when dropped (the formatter writes an
/// event in one or more `write` calls and then drops the writer), so a secret split across two
/// `write` calls is still found.
pub struct EventWriter<O: Write> {
    out: O,
    buf: Vec<u8>,
    redactor: Arc<Redactor>,
}

impl<O: Write> Write for EventWriter<O> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<O: Write> Drop for EventWriter<O> {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.buf);
        // Nothing can be reported if stderr fails: the log is where it would go.
        let _ = self.out.write_all(self.redactor.redact(&text).as_bytes());
        let _ = self.out.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Clone, Default)]
    struct Memory(Arc<Mutex<Vec<u8>>>);

    struct MemoryOut(Arc<Mutex<Vec<u8>>>);

    impl Write for MemoryOut {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Target for Memory {
        type Out = MemoryOut;
        fn open(&self) -> MemoryOut {
            MemoryOut(self.0.clone())
        }
    }

    #[test]
    fn log_lines_are_redacted_of_secrets_and_their_encodings() {
        use base64::Engine as _;
        let secret = "log-secret-0123456789";
        let mem = Memory::default();
        let secrets = KnownSecrets::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(RedactingWriter::new(mem.clone(), secrets.clone()))
            .with_ansi(false)
            .json()
            .finish();
        let encoded = base64::engine::general_purpose::STANDARD.encode(secret);
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(error = "before the secrets are known", "first");
            secrets.set([secret.to_string()]);
            tracing::warn!(error = %format!("token {secret} failed"), "second");
            tracing::warn!(detail = %encoded, "third, base64 of it");
            tracing::warn!("fourth: \"{secret}\" quoted and {}", secret.to_uppercase());
        });
        let text = String::from_utf8(mem.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 4, "{text}");
        assert!(!text.contains(secret) && !text.contains(&encoded), "{text}");
        assert_eq!(
            text.matches(crate::core::plan::redact::REDACTED).count(),
            3,
            "{text}"
        );
        assert!(text.contains("before the secrets are known"), "{text}");
        // A transformation that is not an encoding is not covered (documented).
        assert!(text.contains(&secret.to_uppercase()), "{text}");
    }
}
