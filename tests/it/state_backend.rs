//! A real remote state for drift tests: terraform's `http` backend protocol (GET/POST the state,
//! DELETE, LOCK/UNLOCK with a lock body) served by a small HTTP/1.1 server on the host's own
//! non-loopback address — runs reach it through the sandbox's egress (`runner.egress_allow`), as
//! a run reaches a cloud API. The state survives between runs and can be changed behind Sluice's
//! back ([`StateBackend::edit`]) or made unreachable ([`StateBackend::stop`]).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Shared {
    /// State per path (`/state/NAME`).
    states: BTreeMap<String, Vec<u8>>,
    /// Lock body per path, while held.
    locks: BTreeMap<String, Vec<u8>>,
    /// `METHOD path` of every request, in order.
    requests: Vec<String>,
}

/// The server; stops when dropped.
pub struct StateBackend {
    pub addr: Ipv4Addr,
    pub port: u16,
    shared: Arc<Mutex<Shared>>,
    stopped: Arc<AtomicBool>,
    /// While set: every connection is closed at once (an unreachable backend).
    paused: Arc<AtomicBool>,
    /// Milliseconds every GET of a state waits before it is answered (a slow backend).
    slow_get_ms: Arc<AtomicU64>,
}

/// The host's first non-loopback IPv4 address.
pub fn host_addr() -> Ipv4Addr {
    nix::ifaddrs::getifaddrs()
        .expect("getifaddrs")
        .filter_map(|a| a.address?.as_sockaddr_in().map(|s| s.ip()))
        .find(|ip| !ip.is_loopback())
        .expect("drift tests need a non-loopback IPv4 address on this machine")
}

impl StateBackend {
    pub fn start() -> StateBackend {
        let addr = host_addr();
        let listener = TcpListener::bind((addr, 0)).expect("bind state backend");
        let port = listener.local_addr().expect("addr").port();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let stopped = Arc::new(AtomicBool::new(false));
        let paused = Arc::new(AtomicBool::new(false));
        let slow_get_ms = Arc::new(AtomicU64::new(0));
        let (s, stop, pause, slow) = (
            shared.clone(),
            stopped.clone(),
            paused.clone(),
            slow_get_ms.clone(),
        );
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                if pause.load(Ordering::SeqCst) {
                    drop(conn);
                    continue;
                }
                let (s, slow) = (s.clone(), slow.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, &s, &slow);
                });
            }
        });
        StateBackend {
            addr,
            port,
            shared,
            stopped,
            paused,
            slow_get_ms,
        }
    }

    /// The `terraform { backend "http" { … } }` block for state `name`.
    pub fn backend_block(&self, name: &str) -> String {
        let base = format!("http://{}:{}/state/{name}", self.addr, self.port);
        format!(
            "terraform {{\n  backend \"http\" {{\n    address        = \"{base}\"\n    lock_address   = \"{base}\"\n    unlock_address = \"{base}\"\n  }}\n}}\n"
        )
    }

    /// The state JSON of `name`, if any.
    pub fn state(&self, name: &str) -> Option<serde_json::Value> {
        let s = self.shared.lock().expect("lock");
        s.states
            .get(&format!("/state/{name}"))
            .map(|b| serde_json::from_slice(b).expect("state is JSON"))
    }

    /// Changes the state behind terraform's back (and bumps its serial).
    pub fn edit(&self, name: &str, f: impl FnOnce(&mut serde_json::Value)) {
        let mut s = self.shared.lock().expect("lock");
        let key = format!("/state/{name}");
        let mut state: serde_json::Value =
            serde_json::from_slice(s.states.get(&key).expect("state exists")).expect("JSON");
        f(&mut state);
        let serial = state["serial"].as_u64().expect("serial");
        state["serial"] = (serial + 1).into();
        s.states
            .insert(key, serde_json::to_vec_pretty(&state).expect("JSON"));
    }

    /// An outside change the null provider's refresh sees: a trigger key named `%` (which the
    /// provider drops on refresh) on `null_resource.<resource>`.
    pub fn change_outside(&self, name: &str, resource: &str, value: &str) {
        self.edit(name, |state| {
            let res = state["resources"]
                .as_array_mut()
                .expect("resources")
                .iter_mut()
                .find(|r| r["name"] == resource)
                .expect("resource in state");
            res["instances"][0]["attributes"]["triggers"]["%"] = value.into();
        });
    }

    /// Whether a lock is held on `name`.
    pub fn locked(&self, name: &str) -> bool {
        let s = self.shared.lock().expect("lock");
        s.locks.contains_key(&format!("/state/{name}"))
    }

    /// `METHOD path` of every request so far.
    pub fn requests(&self) -> Vec<String> {
        self.shared.lock().expect("lock").requests.clone()
    }

    /// Closes every connection at once until [`StateBackend::resume`].
    pub fn pause(&self) {
        self.paused.store(true, Ordering::SeqCst);
    }

    pub fn resume(&self) {
        self.paused.store(false, Ordering::SeqCst);
    }

    /// Every GET of a state waits `ms` before it is answered.
    pub fn slow_gets(&self, ms: u64) {
        self.slow_get_ms.store(ms, Ordering::SeqCst);
    }

    /// How many GETs of `name` were answered or are being answered.
    pub fn gets(&self, name: &str) -> usize {
        let want = format!("GET /state/{name}");
        self.requests().iter().filter(|r| **r == want).count()
    }

    /// Stops answering: every later connection is closed at once (an unreachable backend).
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect((self.addr, self.port));
    }
}

impl Drop for StateBackend {
    fn drop(&mut self) {
        self.stop();
    }
}

fn serve(conn: TcpStream, shared: &Mutex<Shared>, slow: &AtomicU64) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut out = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let (method, target) = match (parts.next(), parts.next()) {
            (Some(m), Some(t)) => (m.to_string(), t.to_string()),
            _ => return Ok(()),
        };
        let mut length = 0usize;
        loop {
            let mut h = String::new();
            reader.read_line(&mut h)?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        let path = target.split('?').next().unwrap_or("").to_string();
        if method == "GET" {
            shared
                .lock()
                .expect("lock")
                .requests
                .push(format!("GET {path}"));
            let ms = slow.load(Ordering::SeqCst);
            if ms > 0 {
                std::thread::sleep(std::time::Duration::from_millis(ms));
            }
        }
        let (status, reply) = {
            let mut s = shared.lock().expect("lock");
            if method != "GET" {
                s.requests.push(format!("{method} {path}"));
            }
            match method.as_str() {
                "GET" => match s.states.get(&path) {
                    Some(b) => ("200 OK", b.clone()),
                    None => ("404 Not Found", Vec::new()),
                },
                "POST" => {
                    s.states.insert(path, body);
                    ("200 OK", Vec::new())
                }
                "DELETE" => {
                    s.states.remove(&path);
                    ("200 OK", Vec::new())
                }
                "LOCK" => match s.locks.get(&path) {
                    Some(held) => ("423 Locked", held.clone()),
                    None => {
                        s.locks.insert(path, body);
                        ("200 OK", Vec::new())
                    }
                },
                "UNLOCK" => {
                    s.locks.remove(&path);
                    ("200 OK", Vec::new())
                }
                _ => ("405 Method Not Allowed", Vec::new()),
            }
        };
        write!(
            out,
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: application/json\r\n\r\n",
            reply.len()
        )?;
        out.write_all(&reply)?;
        out.flush()?;
    }
}
