//! The namespaces a sandboxed run is started in, and the run's network.
//!
//! Every bwrap run gets a fresh user namespace of its own, held by a tiny process (`cat` reading
//! a pipe from Sluice, so it ends when Sluice lets go or dies): bubblewrap joins it before it
//! starts, and makes its own namespaces under it. Two reasons. Per-run resource limits: the
//! kernel counts processes per user *and user namespace*, and compares the count of every
//! enclosing namespace with the limit that was in force when that namespace was made — made by a
//! process without the limit, the namespace makes `RLIMIT_NPROC` count this run only, not every
//! run of the sandbox user together. And the network: when the run may use one, the holder also
//! makes a network namespace, which gets outbound access through
//! [slirp4netns](https://github.com/rootless-containers/slirp4netns) — a user-mode TCP/IP
//! stack that turns the run's connections into ordinary sockets of an unprivileged process on the
//! host, so the run never shares the host's interfaces, loopback or abstract unix sockets.
//!
//! Where a run may connect is decided by the routing policy of its own namespace (`ip rule`),
//! set up by Sluice before the run starts and out of its reach (it holds no capability there):
//! the host's loopback cannot be reached at all (slirp4netns runs with `--disable-host-loopback`,
//! and 127.0.0.0/8 inside is the run's own loopback); link-local (cloud metadata at
//! 169.254.169.254), private, shared, multicast and reserved ranges, and every address of the
//! host itself are refused with `EACCES` before a packet leaves the run; `runner.egress_allow`
//! opens ranges or addresses (an internal registry) — a range never opens the host's own
//! addresses, only an entry naming one exactly does. Runs get IPv4 only (slirp4netns's IPv6 is
//! off), so no IPv6 route exists to reach anything through.
//!
//! Inside, a run sees `10.0.2.100/24` with the gateway `10.0.2.2` and a DNS forwarder at
//! `10.0.2.3` (slirp4netns's layout, as rootless Podman and Docker use it); the forwarder asks
//! the resolvers of the host's `/etc/resolv.conf` (outside the run's routing policy: a private
//! resolver address is fine).
//!
//! Why slirp4netns and not pasta (Debian's `passt`): the pasta of Debian 12 writes its PID file
//! before the namespace side is configured (the tap device and default route appear later), so
//! a run could start before its network exists, and it keeps running after the namespace's last
//! process is gone; slirp4netns reports readiness on `--ready-fd` and exits when `--exit-fd`
//! closes. Both need `/dev/net/tun` usable by the sandbox user (mode 0666, as udev makes it).
#![allow(
    clippy::disallowed_methods,
    reason = "this adapter is where the namespace helpers (holder, slirp4netns, ip) start, with their timeouts and caps"
)]

use std::collections::BTreeSet;
use std::ffi::CString;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use nix::sched::CloneFlags;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::process::only_inherit;

/// The run's own address, its gateway and its DNS forwarder (slirp4netns's defaults).
pub const GUEST_ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 100);
pub const GUEST_GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
pub const GUEST_DNS: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 3);
/// The tap device's name inside the run.
const TAP: &str = "tap0";
/// How long slirp4netns may take to set the network up.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Ranges no run reaches unless `runner.egress_allow` opens them: every IPv4 block the IANA
/// special-purpose registry marks as not globally reachable (RFC 6890 and successors) — private
/// networks (RFC 1918), shared address space (RFC 6598), link-local (cloud metadata services),
/// loopback, documentation and benchmarking ranges — plus multicast and the reserved 240/4.
pub const DEFAULT_BLOCKED: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
];

/// An IPv4 network, `a.b.c.d/len` or a single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    pub addr: Ipv4Addr,
    pub len: u8,
}

impl Cidr {
    /// Parses `a.b.c.d` or `a.b.c.d/len`. Host bits must be zero (`10.1.2.3/8` is refused:
    /// it is ambiguous whether the address or the network was meant).
    pub fn parse(s: &str) -> anyhow::Result<Cidr> {
        let s = s.trim();
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (
                a,
                l.parse::<u8>()
                    .ok()
                    .filter(|l| *l <= 32)
                    .with_context(|| format!("{s:?}: the prefix length must be 0 to 32"))?,
            ),
            None => (s, 32),
        };
        let addr: Ipv4Addr = addr.parse().map_err(|_| {
            if addr.contains(':') {
                anyhow::anyhow!("{s:?}: runs have IPv4 only; an IPv6 address cannot be allowed")
            } else {
                anyhow::anyhow!("{s:?} is not an IPv4 address or a.b.c.d/len range")
            }
        })?;
        let cidr = Cidr { addr, len };
        if cidr.network() != addr {
            bail!(
                "{s:?} has host bits set; did you mean {}/{len} or the single address {addr}?",
                cidr.network()
            );
        }
        Ok(cidr)
    }

    fn mask(self) -> u32 {
        if self.len == 0 {
            0
        } else {
            u32::MAX << (32 - self.len)
        }
    }

    fn network(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask())
    }

    pub fn contains(self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr)
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// Where runs may connect, from `runner.egress_allow`.
#[derive(Debug, Clone, Default)]
pub struct EgressPolicy {
    pub allow: Vec<Cidr>,
}

impl EgressPolicy {
    /// Validates `runner.egress_allow`. Loopback is refused: the host's loopback cannot be
    /// reached from a run, and 127.0.0.0/8 inside is the run's own.
    pub fn from_settings(entries: &[String]) -> anyhow::Result<EgressPolicy> {
        let mut allow = Vec::new();
        for e in entries {
            let c = Cidr::parse(e).with_context(|| format!("runner.egress_allow entry {e:?}"))?;
            if Cidr::parse("127.0.0.0/8")
                .expect("literal")
                .contains(c.addr)
                || c.len == 0
            {
                bail!(
                    "runner.egress_allow entry {e:?}: the host's loopback is never reachable from a run, \
                     and 0.0.0.0/0 would open every private range (leave the list empty for the default)"
                );
            }
            allow.push(c);
        }
        Ok(EgressPolicy { allow })
    }

    /// The `ip -batch` commands that set the policy up in a run's namespace, given the host's
    /// own addresses. Rules are tried in order of preference: DNS to the forwarder, then the
    /// host's addresses (refused unless allowed by exact address), then the allowed ranges, then
    /// the blocked ones; whatever is left goes out through slirp4netns.
    pub fn ip_rules(&self, host_addrs: &BTreeSet<Ipv4Addr>) -> String {
        let mut out = String::new();
        for proto in ["udp", "tcp"] {
            out.push_str(&format!(
                "rule add to {GUEST_DNS}/32 ipproto {proto} dport 53 lookup main pref 100\n"
            ));
        }
        for ip in host_addrs {
            if ip.is_loopback() || self.allow.contains(&Cidr { addr: *ip, len: 32 }) {
                continue;
            }
            out.push_str(&format!("rule add prohibit to {ip}/32 pref 200\n"));
        }
        for c in &self.allow {
            out.push_str(&format!("rule add to {c} lookup main pref 300\n"));
        }
        for b in DEFAULT_BLOCKED {
            out.push_str(&format!("rule add prohibit to {b} pref 400\n"));
        }
        out
    }
}

/// The IPv4 addresses of this host's interfaces (what a run must not reach unless allowed).
pub fn host_addresses() -> BTreeSet<Ipv4Addr> {
    nix::ifaddrs::getifaddrs()
        .map(|addrs| {
            addrs
                .filter_map(|a| a.address?.as_sockaddr_in().map(|s| s.ip()))
                .collect()
        })
        .unwrap_or_default()
}

/// The helper programs and ids a run's namespaces are made with, resolved at start-up.
#[derive(Debug, Clone)]
pub struct Helpers {
    /// Holds the namespaces: blocks reading its stdin until Sluice closes it.
    pub holder: PathBuf,
    /// `slirp4netns` and `ip` (iproute2), when runs have network.
    pub slirp4netns: Option<PathBuf>,
    pub ip: Option<PathBuf>,
    /// The ids every helper and the run itself use (`Some` when Sluice runs as root).
    pub run_as: Option<(u32, u32)>,
}

/// One run's namespaces: a user namespace (always) and a network namespace with slirp4netns
/// attached (when the run has network). Dropping it ends the helper processes.
pub struct RunNamespaces {
    user: Arc<OwnedFd>,
    net: Option<Arc<OwnedFd>>,
    _holder: tokio::process::Child,
    _holder_stdin: tokio::process::ChildStdin,
    _slirp: Option<tokio::process::Child>,
    /// Closing it tells slirp4netns to exit.
    _slirp_exit: Option<OwnedFd>,
}

/// Starts the process that holds the run's user namespace (and network namespace, `with_net`):
/// it unshares them, maps the run's user to root inside, and waits on its stdin.
fn spawn_holder(helpers: &Helpers, with_net: bool) -> anyhow::Result<tokio::process::Child> {
    let (uid, gid) = helpers.run_as.unwrap_or_else(|| {
        (
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        )
    });
    let flags = if with_net {
        CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNET
    } else {
        CloneFlags::CLONE_NEWUSER
    };
    // Everything the child writes is formatted before the fork.
    let writes: Vec<(CString, Vec<u8>)> = vec![
        (c("/proc/self/setgroups"), b"deny".to_vec()),
        (c("/proc/self/gid_map"), format!("0 {gid} 1").into_bytes()),
        (c("/proc/self/uid_map"), format!("0 {uid} 1").into_bytes()),
    ];
    let mut holder = tokio::process::Command::new(&helpers.holder);
    holder
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    if let Some((u, g)) = helpers.run_as {
        holder.uid(u).gid(g);
    }
    // SAFETY: prctl, close_range, fcntl, unshare, open, write and close are async-signal-safe; `writes` is only
    // read.
    unsafe {
        holder.pre_exec(move || {
            // Switching from root to the sandbox user made the process non-dumpable, which
            // leaves its /proc/self files owned by root: make them its own again.
            nix::sys::prctl::set_dumpable(true).map_err(std::io::Error::from)?;
            only_inherit(&[])?;
            nix::sched::unshare(flags).map_err(std::io::Error::from)?;
            for (path, data) in &writes {
                let fd = nix::libc::open(path.as_ptr(), nix::libc::O_WRONLY);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let n = nix::libc::write(fd, data.as_ptr().cast(), data.len());
                nix::libc::close(fd);
                if n < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                .map_err(std::io::Error::from)
        });
    }
    holder.spawn().map_err(|e| {
        anyhow::anyhow!(
            "cannot make a user namespace for the run ({e}); the sandbox needs unprivileged user \
             namespaces (sysctl user.max_user_namespaces > 0, and kernel.unprivileged_userns_clone = 1 \
             where that exists; in a container, a seccomp profile that allows them)"
        )
    })
}

impl RunNamespaces {
    /// Makes the namespaces and, with `network`, connects and fences the network (returns only
    /// when it is ready). Errors say which helper failed and how to fix it.
    pub async fn start(
        helpers: &Helpers,
        network: Option<&EgressPolicy>,
    ) -> anyhow::Result<RunNamespaces> {
        let mut holder = spawn_holder(helpers, network.is_some())?;
        let pid = holder.id().context("the namespace holder exited at once")?;
        let holder_stdin = holder.stdin.take().expect("stdin is piped");
        let ns = |kind: &str| -> anyhow::Result<Arc<OwnedFd>> {
            let path = format!("/proc/{pid}/ns/{kind}");
            let f = std::fs::File::open(&path).with_context(|| format!("opening {path}"))?;
            Ok(Arc::new(OwnedFd::from(f)))
        };
        let user = ns("user")?;
        let Some(policy) = network else {
            return Ok(RunNamespaces {
                user,
                net: None,
                _holder: holder,
                _holder_stdin: holder_stdin,
                _slirp: None,
                _slirp_exit: None,
            });
        };
        let net = ns("net")?;

        let slirp_bin = helpers
            .slirp4netns
            .as_deref()
            .context("runs have network but slirp4netns was not resolved")?;
        let (ready_r, ready_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let (exit_r, exit_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let mut slirp = tokio::process::Command::new(slirp_bin);
        slirp
            .arg("--configure")
            .arg("--mtu=65520")
            .arg("--disable-host-loopback")
            .arg("--enable-sandbox")
            .arg("--enable-seccomp")
            .arg(format!("--ready-fd={}", ready_w.as_raw_fd()))
            .arg(format!("--exit-fd={}", exit_r.as_raw_fd()))
            .arg(pid.to_string())
            .arg(TAP)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some((u, g)) = helpers.run_as {
            slirp.uid(u).gid(g);
        }
        let keep = [ready_w.as_raw_fd(), exit_r.as_raw_fd()];
        // SAFETY: close_range, fcntl and prctl are async-signal-safe.
        unsafe {
            slirp.pre_exec(move || {
                only_inherit(&keep)?;
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                    .map_err(std::io::Error::from)
            });
        }
        let mut slirp = slirp
            .spawn()
            .with_context(|| format!("cannot start {}", slirp_bin.display()))?;
        drop(ready_w);
        drop(exit_r);
        let mut stderr = slirp.stderr.take().expect("stderr is piped");
        let errors = tokio::spawn(async move {
            let mut buf = Vec::new();
            let _ = (&mut stderr).take(8 * 1024).read_to_end(&mut buf).await;
            // Keep draining so slirp4netns never blocks on a full pipe.
            let _ = tokio::io::copy(&mut stderr, &mut tokio::io::sink()).await;
            String::from_utf8_lossy(&buf).into_owned()
        });
        let mut ready = tokio::fs::File::from_std(std::fs::File::from(ready_r));
        let mut byte = [0u8; 1];
        let got = tokio::time::timeout(READY_TIMEOUT, ready.read(&mut byte)).await;
        if !matches!(got, Ok(Ok(1))) {
            let _ = slirp.start_kill();
            let why = tokio::time::timeout(Duration::from_secs(2), errors)
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
            bail!(
                "the run's network could not be set up: slirp4netns {}: {}{}",
                if got.is_err() {
                    "did not become ready"
                } else {
                    "failed"
                },
                why.trim(),
                tun_hint(helpers.run_as.map(|r| r.0))
            );
        }

        let rules = policy.ip_rules(&host_addresses());
        apply_ip_batch(helpers, &user, &net, &rules).await?;
        Ok(RunNamespaces {
            user,
            net: Some(net),
            _holder: holder,
            _holder_stdin: holder_stdin,
            _slirp: Some(slirp),
            _slirp_exit: Some(exit_w),
        })
    }

    /// The namespaces to join, user namespace first.
    pub fn join(&self) -> Vec<(Arc<OwnedFd>, CloneFlags)> {
        let mut out = vec![(self.user.clone(), CloneFlags::CLONE_NEWUSER)];
        if let Some(net) = &self.net {
            out.push((net.clone(), CloneFlags::CLONE_NEWNET));
        }
        out
    }
}

/// Runs `ip -batch -` with `rules` inside the run's namespaces.
async fn apply_ip_batch(
    helpers: &Helpers,
    user: &Arc<OwnedFd>,
    net: &Arc<OwnedFd>,
    rules: &str,
) -> anyhow::Result<()> {
    let ip_bin = helpers
        .ip
        .as_deref()
        .context("runs have network but `ip` was not resolved")?;
    let mut ip = tokio::process::Command::new(ip_bin);
    ip.args(["-batch", "-"])
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some((u, g)) = helpers.run_as {
        ip.uid(u).gid(g);
    }
    let fds = [user.as_raw_fd(), net.as_raw_fd()];
    // SAFETY: close_range, fcntl, setns and prctl are async-signal-safe.
    unsafe {
        ip.pre_exec(move || {
            only_inherit(&[])?;
            for (fd, kind) in fds
                .iter()
                .zip([CloneFlags::CLONE_NEWUSER, CloneFlags::CLONE_NEWNET])
            {
                nix::sched::setns(std::os::fd::BorrowedFd::borrow_raw(*fd), kind)
                    .map_err(std::io::Error::from)?;
            }
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                .map_err(std::io::Error::from)
        });
    }
    let mut child = ip
        .spawn()
        .with_context(|| format!("cannot start {}", ip_bin.display()))?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    stdin
        .write_all(rules.as_bytes())
        .await
        .context("writing the run's egress rules to ip")?;
    drop(stdin);
    let out = tokio::time::timeout(READY_TIMEOUT, child.wait_with_output())
        .await
        .context("ip did not finish setting the run's egress rules")??;
    if !out.status.success() {
        bail!(
            "setting the run's egress rules failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn c(s: &str) -> CString {
    CString::new(s).expect("literal without NUL")
}

fn tun_hint(uid: Option<u32>) -> String {
    let who = uid.map_or_else(|| "Sluice's user".to_string(), |u| format!("uid {u}"));
    format!(
        " (slirp4netns needs /dev/net/tun readable and writable by {who}: `chmod 0666 /dev/net/tun`, \
         as udev sets it on most distributions; in a container, `--device /dev/net/tun`. \
         Or turn the network off with runner.network = false)"
    )
}

/// Checks at start-up what every networked run will need, so a missing piece is reported once
/// and before the first PR: `/dev/net/tun` usable by `uid`.
pub fn check_tun(uid: u32, gid: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let tun = Path::new("/dev/net/tun");
    let meta = std::fs::metadata(tun).map_err(|e| {
        anyhow::anyhow!(
            "runs have network, but {} is missing ({e}){}",
            tun.display(),
            tun_hint(Some(uid))
        )
    })?;
    let mode = meta.mode();
    let rw = if meta.uid() == uid {
        mode & 0o600 == 0o600
    } else if meta.gid() == gid {
        mode & 0o060 == 0o060
    } else {
        mode & 0o006 == 0o006
    };
    if !rw {
        bail!(
            "runs have network, but {} (mode {:o}) is not usable by the sandbox user{}",
            tun.display(),
            mode & 0o7777,
            tun_hint(Some(uid))
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_parse_and_refuse_what_is_ambiguous_or_unsupported() {
        assert_eq!(
            Cidr::parse("10.1.0.0/16").unwrap().to_string(),
            "10.1.0.0/16"
        );
        assert_eq!(
            Cidr::parse(" 10.1.2.3 ").unwrap().to_string(),
            "10.1.2.3/32"
        );
        for (bad, why) in [
            ("10.1.2.3/8", "host bits"),
            ("10.0.0.0/33", "prefix length"),
            ("fd00::/8", "IPv4 only"),
            ("registry.internal", "not an IPv4 address"),
            ("10.0.0.0/x", "prefix length"),
        ] {
            let err = format!("{:#}", Cidr::parse(bad).unwrap_err());
            assert!(err.contains(why), "{bad}: {err}");
        }
        assert!(
            Cidr::parse("10.0.0.0/8")
                .unwrap()
                .contains(Ipv4Addr::new(10, 9, 8, 7))
        );
        assert!(
            !Cidr::parse("10.0.0.0/8")
                .unwrap()
                .contains(Ipv4Addr::new(11, 0, 0, 1))
        );
    }

    #[test]
    fn egress_allow_refuses_loopback_and_everything() {
        for bad in ["127.0.0.1", "127.0.0.0/8", "0.0.0.0/0"] {
            let err = format!(
                "{:#}",
                EgressPolicy::from_settings(&[bad.to_string()]).unwrap_err()
            );
            assert!(err.contains("loopback"), "{bad}: {err}");
        }
    }

    #[test]
    fn rules_order_dns_host_allow_block() {
        let policy =
            EgressPolicy::from_settings(&["10.20.0.0/16".into(), "192.168.1.7".into()]).unwrap();
        let host = BTreeSet::from([
            Ipv4Addr::new(127, 0, 0, 1),
            Ipv4Addr::new(10, 20, 0, 5),
            Ipv4Addr::new(192, 168, 1, 7),
        ]);
        let rules = policy.ip_rules(&host);
        let prefs: Vec<&str> = rules.lines().collect();
        assert!(
            prefs[0].contains("10.0.2.3/32 ipproto udp dport 53"),
            "{rules}"
        );
        // The host's own address inside an allowed range stays refused; one allowed by exact
        // address is not; loopback is never routed out anyway.
        assert!(
            rules.contains("prohibit to 10.20.0.5/32 pref 200"),
            "{rules}"
        );
        assert!(!rules.contains("prohibit to 192.168.1.7/32"), "{rules}");
        assert!(!rules.contains("127.0.0.1/32"), "{rules}");
        assert!(
            rules.contains("rule add to 10.20.0.0/16 lookup main pref 300"),
            "{rules}"
        );
        assert!(
            rules.contains("prohibit to 169.254.0.0/16 pref 400"),
            "{rules}"
        );
        let pos = |needle: &str| rules.find(needle).unwrap();
        assert!(pos("pref 100") < pos("pref 200") && pos("pref 300") < pos("pref 400"));
    }
}
