//! The seccomp filter every sandboxed run gets (bubblewrap loads it with `--seccomp FD` after
//! setting the run up, so it binds the code of the PR, never bubblewrap itself).
//!
//! It is a deny list on top of what the sandbox already withholds (no capabilities, no new user
//! namespaces, read-only system paths): the syscalls behind the classic container escapes and
//! kernel attack surface no terraform run needs — the mount API, keyrings, BPF, perf, new
//! namespaces, ptrace and cross-process memory access, module and kexec loading, `io_uring`,
//! `userfaultfd`, file handles, terminal injection, and socket families other than unix, IPv4,
//! IPv6 and netlink (`AF_VSOCK` would reach a hypervisor's services past the network namespace).
//! Denied calls fail with `EPERM` (so tests can tell the filter from a missing capability, which
//! the kernel also reports as `EPERM` or `EACCES`: see the probe in `tests/`); `clone3` fails
//! with `ENOSYS`, its arguments live in memory a filter cannot read, and C libraries fall back to
//! `clone`, whose flags are checked. Syscalls of other ABIs (32-bit x86, x32) kill the process:
//! libseccomp adds that architecture check, and a deny list that forgets it is bypassed.
//!
//! This module builds the BPF program once (at start-up) with libseccomp; it loads nothing.

use anyhow::Context;
use libseccomp::{ScmpAction, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};
use nix::libc;

/// Syscalls no run may make, whatever their arguments.
const DENIED: &[&str] = &[
    // Mounts, old and new API: remounting a read-only bind read-write starts here.
    "mount",
    "umount",
    "umount2",
    "pivot_root",
    "chroot",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    // Namespaces: joining or making them (flags of clone/unshare are checked below).
    "setns",
    // Kernel keyrings (not namespaced: keys of other users' sessions).
    "keyctl",
    "add_key",
    "request_key",
    // BPF programs, perf events: large kernel attack surface, and side channels.
    "bpf",
    "perf_event_open",
    // Other processes: tracing, memory access, stealing file descriptors.
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "pidfd_getfd",
    // The kernel itself: modules, kexec, reboot, swap, clock, accounting, quotas, logs.
    "init_module",
    "finit_module",
    "delete_module",
    "kexec_load",
    "kexec_file_load",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "quotactl",
    "quotactl_fd",
    "syslog",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "iopl",
    "ioperm",
    "vhangup",
    "lookup_dcookie",
    "nfsservctl",
    "uselib",
    "_sysctl",
    // Classic exploit helpers.
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    // File handles bypass path permissions ("shocker"), and name them leaks inode details.
    "open_by_handle_at",
    "name_to_handle_at",
    // fanotify sees every file access on a mount.
    "fanotify_init",
];

/// `CLONE_NEW*` flags: making any namespace.
const CLONE_NAMESPACES: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP) as u64
    | 0x80; // CLONE_NEWTIME (not in every libc)

/// Socket families runs may open: unix (terraform talks to its providers over unix sockets),
/// IPv4, IPv6, and netlink (Go reads interfaces and routes through it).
const ALLOWED_FAMILIES: &[i32] = &[
    libc::AF_UNIX,
    libc::AF_INET,
    libc::AF_INET6,
    libc::AF_NETLINK,
];
/// Netlink protocols runs may use: routing (interfaces, addresses) only — not audit, uevents,
/// or socket diagnostics.
const ALLOWED_NETLINK: &[i32] = &[libc::NETLINK_ROUTE];
/// Address families are small numbers; everything below this that is not allowed is denied,
/// and everything above it too.
const MAX_FAMILY: i32 = 64;

/// Builds the filter and returns the raw BPF program (an array of `struct sock_filter`) in the
/// form `bwrap --seccomp FD` reads. Fails when libseccomp is missing or does not know this
/// machine's architecture; a syscall this libseccomp does not know is skipped (such a kernel
/// is newer than the library, and the call still meets the sandbox's other walls).
pub fn build() -> anyhow::Result<Vec<u8>> {
    let eperm = ScmpAction::Errno(libc::EPERM);
    let mut f = ScmpFilterContext::new(ScmpAction::Allow)
        .context("libseccomp could not create a filter (is libseccomp2 installed?)")?;
    // Other ABIs of this CPU (i386 via int 0x80, x32) get no path around the rules.
    f.set_act_badarch(ScmpAction::KillProcess)
        .context("setting the seccomp bad-architecture action")?;
    for name in DENIED {
        if let Some(sc) = syscall(name) {
            f.add_rule(eperm, sc)
                .with_context(|| format!("seccomp rule for {name}"))?;
        }
    }
    for name in ["unshare", "clone"] {
        if let Some(sc) = syscall(name) {
            // clone(flags, ...) and unshare(flags): flags are argument 0 on x86_64 and aarch64.
            // A filter can only compare, not test "any bit of a mask", so: one rule per flag.
            for bit in (0..64)
                .map(|b| 1u64 << b)
                .filter(|b| CLONE_NAMESPACES & b != 0)
            {
                f.add_rule_conditional(
                    eperm,
                    sc,
                    &[ScmpArgCompare::new(0, ScmpCompareOp::MaskedEqual(bit), bit)],
                )
                .with_context(|| format!("seccomp rule for {name}"))?;
            }
        }
    }
    if let Some(sc) = syscall("clone3") {
        f.add_rule(ScmpAction::Errno(libc::ENOSYS), sc)
            .context("seccomp rule for clone3")?;
    }
    // Terminal injection (TIOCSTI) and console access (TIOCLINUX); runs have no terminal anyway.
    if let Some(sc) = syscall("ioctl") {
        for req in [libc::TIOCSTI, libc::TIOCLINUX] {
            f.add_rule_conditional(eperm, sc, &[low32(1, req)])
                .context("seccomp rule for ioctl")?;
        }
    }
    for name in ["socket", "socketpair"] {
        let Some(sc) = syscall(name) else { continue };
        for family in (0..MAX_FAMILY).filter(|f| !ALLOWED_FAMILIES.contains(f)) {
            f.add_rule_conditional(eperm, sc, &[low32(0, family as u64)])
                .with_context(|| format!("seccomp rule for {name}"))?;
        }
        f.add_rule_conditional(
            eperm,
            sc,
            &[ScmpArgCompare::new(
                0,
                ScmpCompareOp::GreaterEqual,
                MAX_FAMILY as u64,
            )],
        )
        .with_context(|| format!("seccomp rule for {name}"))?;
    }
    if let Some(sc) = syscall("socket") {
        // socket(AF_NETLINK, type, protocol): only the allowed protocols.
        for proto in (0..32).filter(|p| !ALLOWED_NETLINK.contains(p)) {
            f.add_rule_conditional(
                eperm,
                sc,
                &[low32(0, libc::AF_NETLINK as u64), low32(2, proto as u64)],
            )
            .context("seccomp rule for netlink sockets")?;
        }
    }

    let mut out = tempfile::tempfile().context("a temp file for the seccomp program")?;
    f.export_bpf(&out)
        .context("exporting the seccomp program")?;
    use std::io::{Read, Seek};
    out.rewind().context("reading the seccomp program")?;
    let mut bpf = Vec::new();
    out.read_to_end(&mut bpf)
        .context("reading the seccomp program")?;
    anyhow::ensure!(
        !bpf.is_empty() && bpf.len() % 8 == 0,
        "libseccomp produced an invalid program ({} bytes)",
        bpf.len()
    );
    Ok(bpf)
}

/// "Argument `arg`, as the kernel reads it, equals `value`": the kernel takes `int` arguments
/// (socket family, type and protocol, the ioctl request as `unsigned int`) from the low 32 bits of
/// the 64-bit register, while a plain `Equal` compares all 64 — so `socket(AF_NETLINK,
/// SOCK_RAW, 9 | 1 << 32)` would not match a rule for protocol 9 and yet open it. Every
/// equality in this filter goes through here. (Flag bits of `clone`/`unshare` are tested one
/// by one with a mask of that bit, which high bits cannot disturb; the catch-all on families
/// compares all 64 bits on purpose, so a family with high bits set is refused.)
fn low32(arg: u32, value: u64) -> ScmpArgCompare {
    ScmpArgCompare::new(
        arg,
        ScmpCompareOp::MaskedEqual(0xffff_ffff),
        value & 0xffff_ffff,
    )
}

fn syscall(name: &str) -> Option<ScmpSyscall> {
    ScmpSyscall::from_name(name).ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn builds_a_program_bwrap_can_load() {
        let bpf = super::build().unwrap();
        // struct sock_filter is 8 bytes; a kernel filter holds at most 4096 instructions.
        assert!(
            bpf.len() % 8 == 0 && bpf.len() / 8 < 4096,
            "{} bytes",
            bpf.len()
        );
    }
}
