//! The network of a run (PRODUCT.md §8): each run has a network namespace of its own with
//! outbound access through slirp4netns, fenced so PR code cannot read what the host serves
//! locally — a service on the host's loopback, an abstract unix socket, the cloud metadata
//! address, private ranges, the host's own addresses — while what `runner.egress_allow` names
//! stays reachable. The escape probe of `sandbox_probe` connects to each from inside a plan.
//!
//! Positive controls, so nothing passes because the probe could not connect anywhere: the same
//! probe without the sandbox reaches the loopback service and the abstract socket, and inside
//! the sandbox it reaches a service on the host's own (non-loopback) address once that address
//! is allowed.

use std::io::Write;
use std::net::{Ipv4Addr, TcpListener};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::process::Command;

use crate::sandbox_probe::{Report, Starter, World, probe_binary};
use crate::support::{scratch_dir, unique, world_readable};

/// What the host serves that runs must not read: a secret on 127.0.0.1, a token on the host's
/// first non-loopback IPv4 address, and the secret on an abstract unix socket.
struct HostServices {
    secret: String,
    token: String,
    loopback_port: u16,
    host_addr: Ipv4Addr,
    host_port: u16,
    abstract_name: String,
}

fn serve_tcp(listener: TcpListener, line: String) {
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let _ = writeln!(conn, "{line}");
        }
    });
}

impl HostServices {
    fn start() -> HostServices {
        let secret = unique("loopback-secret");
        let token = unique("host-token");
        let loopback = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let loopback_port = loopback.local_addr().expect("addr").port();
        serve_tcp(loopback, secret.clone());
        let host_addr = nix::ifaddrs::getifaddrs()
            .expect("getifaddrs")
            .filter_map(|a| a.address?.as_sockaddr_in().map(|s| s.ip()))
            .find(|ip| !ip.is_loopback())
            .expect("the network tests need a non-loopback IPv4 address on this machine");
        let host = TcpListener::bind((host_addr, 0)).expect("bind host address");
        let host_port = host.local_addr().expect("addr").port();
        serve_tcp(host, token.clone());
        let abstract_name = unique("sluice-test-abstract");
        let addr = SocketAddr::from_abstract_name(abstract_name.as_bytes()).expect("name");
        let unix = UnixListener::bind_addr(&addr).expect("bind abstract socket");
        let line = secret.clone();
        std::thread::spawn(move || {
            for mut conn in unix.incoming().flatten() {
                let _ = writeln!(conn, "{line}");
            }
        });
        HostServices {
            secret,
            token,
            loopback_port,
            host_addr,
            host_port,
            abstract_name,
        }
    }

    /// The probe's connection attempts.
    fn conf(&self) -> String {
        let (lo, a, q) = (self.loopback_port, self.host_addr, self.host_port);
        format!(
            "tcp loopback 127.0.0.1 {lo}\n\
             tcp gateway_to_loopback 10.0.2.2 {lo}\n\
             tcp host_addr {a} {q}\n\
             tcp host_addr_loopback_port {a} {lo}\n\
             tcp metadata 169.254.169.254 80\n\
             tcp private10 10.20.30.40 80\n\
             tcp private172 172.16.5.4 80\n\
             tcp private192 192.168.1.1 80\n\
             tcp shared100 100.64.0.1 80\n\
             abstract abstract_socket {}\n",
            self.abstract_name
        )
    }
}

#[test]
fn runs_cannot_reach_host_loopback_abstract_sockets_metadata_or_private_ranges() {
    let services = HostServices::start();
    for starter in Starter::all() {
        let world = World::new(starter);
        let (_, r) = world.run_probe(&services.conf(), &[]);
        // 127.0.0.1 is the run's own loopback: nothing listens there.
        r.refused("loopback", "ECONNREFUSED", starter);
        // Abstract unix sockets belong to a network namespace: the host's is not the run's.
        r.refused("abstract_socket", "ECONNREFUSED", starter);
        // Refused by the run's routing policy before a packet leaves it: the gateway (which
        // slirp4netns could map to the host's loopback), the host's own address, cloud
        // metadata, private and shared ranges.
        for check in [
            "gateway_to_loopback",
            "host_addr",
            "host_addr_loopback_port",
            "metadata",
            "private10",
            "private172",
            "private192",
            "shared100",
        ] {
            r.refused(check, "EACCES", starter);
        }
        assert!(
            !r.text.contains(&services.secret) && !r.text.contains(&services.token),
            "{starter:?}:\n{}",
            r.text
        );
    }
}

#[test]
fn egress_allow_opens_what_it_names_and_network_off_closes_everything() {
    let services = HostServices::start();
    let starter = Starter::unprivileged();
    let world = World::new(starter);
    let (_, r) = world.run_probe(
        &services.conf(),
        &[(
            "SLUICE_RUNNER__EGRESS_ALLOW",
            services.host_addr.to_string(),
        )],
    );
    // The positive control: the run has working egress to what is allowed.
    assert_eq!(
        r.get("host_addr"),
        format!("ok {}", services.token),
        "{}",
        r.text
    );
    // Nothing else opened with it.
    r.refused("loopback", "ECONNREFUSED", starter);
    r.refused("abstract_socket", "ECONNREFUSED", starter);
    for check in ["gateway_to_loopback", "metadata", "private10", "private192"] {
        r.refused(check, "EACCES", starter);
    }
    assert!(!r.text.contains(&services.secret), "{}", r.text);

    // runner.network = false: no route anywhere, whatever is allowed.
    let (_, r) = world.run_probe(
        &services.conf(),
        &[
            ("SLUICE_RUNNER__NETWORK", "false".to_string()),
            (
                "SLUICE_RUNNER__EGRESS_ALLOW",
                services.host_addr.to_string(),
            ),
        ],
    );
    for check in ["host_addr", "metadata", "private10"] {
        r.refused(check, "ENETUNREACH", starter);
    }
    r.refused("loopback", "ECONNREFUSED", starter);
    r.refused("abstract_socket", "ECONNREFUSED", starter);
}

/// The control: without the sandbox, the same probe reads the loopback service, the abstract
/// socket and the host-address service.
#[test]
fn without_the_sandbox_the_probe_reaches_the_host_services() {
    let services = HostServices::start();
    let dir = scratch_dir("probe-net-control");
    world_readable(dir.path());
    std::fs::write(dir.path().join("probe.conf"), services.conf()).expect("write conf");
    let starter = Starter::unprivileged();
    starter.own(dir.path());
    let mut cmd = Command::new(probe_binary());
    cmd.current_dir(dir.path())
        .stdin(std::process::Stdio::null());
    starter.apply(&mut cmd);
    let out = cmd.output().expect("probe runs");
    assert!(out.status.success(), "{out:?}");
    let r = Report::parse(
        &std::fs::read_to_string(dir.path().join("probe-report.txt")).expect("report"),
    );
    assert_eq!(r.get("loopback"), format!("ok {}", services.secret));
    assert_eq!(r.get("abstract_socket"), format!("ok {}", services.secret));
    assert_eq!(r.get("host_addr"), format!("ok {}", services.token));
}
