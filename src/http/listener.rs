//! The HTTP listener: accepts connections and serves the router over HTTP/1.1 with budgets an
//! unauthenticated sender cannot get around.
//!
//! `axum::serve` has no header-read timeout and no connection cap, so one client opening
//! hundreds of connections and sending headers a byte at a time kept them all forever and
//! starved real deliveries. Here every connection holds a slot of a semaphore (`max_connections`;
//! when all are taken, new connections wait in the kernel's accept queue), at most
//! `max_connections_per_ip` come from one peer address (more are closed at once), and hyper
//! closes any connection that has not sent a complete request head within
//! `header_read_timeout` — from its start, and again after each response on a kept-alive
//! connection, so an idle connection is closed too. Below hyper, every read and write of the
//! connection has a timeout of its own (`idle_timeout`, `write_timeout`): a write that makes no
//! progress — a client pipelining requests without reading the responses — ends the
//! connection and frees its slot. A connection buffers at most
//! [`READ_BUFFER_BYTES`] (a larger request head is refused). Body budgets are the webhook handler's
//! (see [`super::webhook`]): only it knows which bodies it must buffer.
//!
//! HTTP/2 is not offered: GitHub delivers webhooks over HTTP/1.1, and one protocol means one set
//! of limits to get right. Shutdown is graceful: on `stop`, accepting ends, idle connections
//! close, requests in progress finish (bounded by the header and body timeouts).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::HttpSettings;

/// The most a connection buffers before the router sees it: the largest request head accepted
/// (a larger one is refused with 431), and the piece size in which bodies are read.
pub const READ_BUFFER_BYTES: usize = 32 * 1024;

/// The connection-level budgets, from [`HttpSettings`].
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    /// A write that makes no progress for this long closes the connection.
    pub write_timeout: Duration,
    /// A read that gets no byte for this long closes the connection.
    pub idle_timeout: Duration,
    pub max_connections: usize,
    /// `0`: no per-address cap.
    pub max_connections_per_ip: usize,
    /// How long requests in progress get to finish after `stop`.
    pub drain: Duration,
}

impl ConnectionLimits {
    pub fn from_settings(s: &HttpSettings) -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(s.header_read_timeout_secs),
            write_timeout: Duration::from_secs(s.write_timeout_secs),
            idle_timeout: Duration::from_secs(s.idle_timeout_secs),
            max_connections: s.max_connections,
            max_connections_per_ip: s.max_connections_per_ip,
            // A request in progress has at most the header and body timeouts left, plus the
            // handler's own (short) work.
            drain: Duration::from_secs(s.header_read_timeout_secs + s.body_read_timeout_secs + 5),
        }
    }
}

/// Open connections per peer address. A [`PeerSlot`] gives its place back when dropped.
#[derive(Default)]
struct PerPeer {
    open: Mutex<HashMap<IpAddr, usize>>,
}

struct PeerSlot {
    peers: Arc<PerPeer>,
    ip: IpAddr,
}

impl PerPeer {
    /// A slot for `ip`, or `None` when it already has `max` connections open.
    fn take(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<PeerSlot> {
        let mut open = self.open.lock().expect("per-peer map");
        let n = open.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(PeerSlot {
            peers: self.clone(),
            ip,
        })
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut open = self.peers.open.lock().expect("per-peer map");
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Serves `app` on `listener` until `stop` is cancelled, then drains (see the module docs).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    stop: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let peers = Arc::new(PerPeer::default());
    let connections = TaskTracker::new();
    // Refusals are logged at most once a second: a flood must not flood the logs too.
    let refusal_log = governor::RateLimiter::direct(governor::Quota::per_second(
        std::num::NonZeroU32::new(1).expect("non-zero"),
    ));
    loop {
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => s.expect("the semaphore is never closed"),
            _ = stop.cancelled() => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => break,
        };
        let peer_slot = if limits.max_connections_per_ip == 0 {
            None
        } else {
            match peers.take(peer.ip(), limits.max_connections_per_ip) {
                Some(s) => Some(s),
                None => {
                    if refusal_log.check().is_ok() {
                        tracing::warn!(peer = %peer.ip(), max = limits.max_connections_per_ip, "connection refused: too many open connections from this address");
                    }
                    drop(stream);
                    continue;
                }
            }
        };
        let app = app.clone();
        let stop = stop.clone();
        connections.spawn(async move {
            serve_connection(stream, peer, app, limits, stop).await;
            drop(peer_slot);
            drop(slot);
        });
    }
    connections.close();
    if tokio::time::timeout(limits.drain, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain period; dropping them");
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: ConnectionLimits,
    stop: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // hyper buffers up to ~400 KB per connection by default; with a thousand connections
        // that is 400 MB a slow sender can make the server hold. GitHub's request heads are a
        // few KB; bodies stream through this buffer in pieces of at most this size.
        .max_buf_size(READ_BUFFER_BYTES)
        .max_header_size(READ_BUFFER_BYTES)
        .keep_alive(true);
    // Every read and write of the connection within its timeout: hyper bounds the time to a
    // request head only, and a client that never reads its responses would otherwise block
    // hyper's writes (and hold the connection's slot) for ever.
    let mut stream = tokio_io_timeout::TimeoutStream::new(stream);
    stream.set_write_timeout(Some(limits.write_timeout));
    stream.set_read_timeout(Some(limits.idle_timeout));
    let conn = builder.serve_connection(
        TokioIo::new(Box::pin(stream)),
        TowerToHyperService::new(app),
    );
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.as_mut().await
        }
    };
    if let Err(e) = result {
        // Timeouts, resets, malformed requests: the peer's problem, worth a debug line only.
        tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_peer_slots_are_counted_and_given_back() {
        let peers = Arc::new(PerPeer::default());
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        let one = peers.take(a, 2).expect("first");
        let two = peers.take(a, 2).expect("second");
        assert!(peers.take(a, 2).is_none(), "third from the same address");
        let other = peers.take(b, 2).expect("another address has its own count");
        drop(one);
        let three = peers.take(a, 2).expect("a slot came back");
        drop((two, three, other));
        assert!(
            peers.open.lock().unwrap().is_empty(),
            "no entry is left behind"
        );
    }
}
