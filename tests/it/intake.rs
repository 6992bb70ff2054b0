//! The webhook intake under attack, through the real server: slow headers, huge and slow
//! bodies, floods of unsigned bytes, replayed deliveries, stale commands — and the host layout
//! kept out of everything unauthenticated or posted. Each test shows the attack fail *and* a
//! real delivery still get through.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::server::{API_TOKEN, Harness, REPO};
use crate::support::null_project;
use crate::webhooks::{Webhook, new_delivery_id};

// ---- helpers -------------------------------------------------------------------------------------

async fn server(env: &[(&str, &str)], files: &[(&str, &str)]) -> Harness {
    let mut h = Harness::new(files).await;
    for (k, v) in env {
        h.set_env(k, v);
    }
    h.start();
    h
}

fn addr(h: &Harness) -> SocketAddr {
    h.url()
        .trim_start_matches("http://")
        .parse()
        .expect("the server's address")
}

/// A TCP connection to the server from the loopback address `from` (any 127.x.y.z works on
/// Linux, which lets one test play several peers).
async fn connect_from(h: &Harness, from: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{from}:0").parse().expect("address"))
        .unwrap_or_else(|e| panic!("binding {from}: {e}"));
    socket.connect(addr(h)).await.expect("connect")
}

/// A `ping` nobody sent before (its body differs from every other one).
fn fresh_ping() -> Webhook {
    Webhook::load("ping.json").set("/zen", new_delivery_id())
}

/// The head of a request to `POST /events`, up to the blank line.
fn request_head(content_length: u64, signature: Option<&str>, extra: &str) -> String {
    let mut s = format!(
        "POST /events HTTP/1.1\r\nHost: sluice\r\nContent-Type: application/json\r\n\
         X-GitHub-Event: ping\r\nX-GitHub-Delivery: {}\r\nContent-Length: {content_length}\r\n{extra}",
        new_delivery_id()
    );
    if let Some(sig) = signature {
        s.push_str(&format!("X-Hub-Signature-256: {sig}\r\n"));
    }
    s.push_str("\r\n");
    s
}

/// A well-formed signature that matches nothing.
fn bogus_signature() -> String {
    format!("sha256={}", "0".repeat(64))
}

/// Reads until the end of a response head; its status code, or `None` if the connection ended
/// first. Panics after `within`.
async fn read_status(stream: &mut TcpStream, within: Duration) -> Option<u16> {
    let mut buf = Vec::new();
    let read = async {
        let mut chunk = [0u8; 1024];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                return head
                    .split_whitespace()
                    .nth(1)
                    .and_then(|code| code.parse().ok());
            }
        }
    };
    tokio::time::timeout(within, read)
        .await
        .unwrap_or_else(|_| panic!("no response within {within:?}"))
}

/// Waits until the server closes `stream` (EOF or reset); panics after `within`.
async fn wait_closed(stream: &mut TcpStream, within: Duration) {
    let mut chunk = [0u8; 256];
    tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the server kept the connection open for {within:?}"));
}

/// Opens a connection from `from` that sends a request head one header line at a time, every
/// 300 ms, for ever. Returns the task, which ends (with how long the connection lived) when the
/// server closes the connection.
async fn slow_header_sender(h: &Harness, from: &str) -> tokio::task::JoinHandle<Duration> {
    let mut stream = connect_from(h, from).await;
    stream
        .write_all(b"POST /events HTTP/1.1\r\nHost: sluice\r\n")
        .await
        .expect("first bytes");
    tokio::spawn(async move {
        let opened = Instant::now();
        let (mut rd, mut wr) = stream.into_split();
        let writer = async move {
            for i in 0u64.. {
                tokio::time::sleep(Duration::from_millis(300)).await;
                if wr
                    .write_all(format!("X-Slow-{i}: a\r\n").as_bytes())
                    .await
                    .is_err()
                {
                    break;
                }
            }
        };
        let reader = async move {
            let mut chunk = [0u8; 256];
            loop {
                match rd.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        };
        tokio::select! {
            _ = writer => {}
            _ = reader => {}
        }
        opened.elapsed()
    })
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("the server's /proc status")
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

// ---- item: connection and body budgets ----------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn slow_headers_are_cut_off_and_do_not_starve_real_deliveries() {
    let h = server(&[("SLUICE_HTTP__HEADER_READ_TIMEOUT_SECS", "6")], &[]).await;
    // 300 slow senders from five addresses (60 each, under the per-address cap of 64).
    let mut slow = Vec::new();
    for i in 0..300 {
        slow.push(slow_header_sender(&h, &format!("127.0.1.{}", 10 + i % 5)).await);
    }
    // A real delivery is answered at once, long before any slow one is cut off.
    let t = Instant::now();
    let r = h.send(&fresh_ping()).await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap_or_default());
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "the delivery took {:?} behind 300 slow connections",
        t.elapsed()
    );
    // Every slow connection is closed by the server, about when its header time runs out.
    for task in slow {
        let lived = tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("the server closes slow connections")
            .expect("task");
        assert!(
            lived >= Duration::from_secs(5) && lived < Duration::from_secs(20),
            "a slow connection lived {lived:?} (header timeout: 6s)"
        );
    }
    let r = h.send(&fresh_ping()).await;
    assert_eq!(r.status(), 202, "the server still serves afterwards");
}

/// Opens a connection from `from` with a small receive buffer and pipelines `GET /healthz`
/// on it without ever reading, until the server stops taking requests (its writes of the
/// responses are blocked: the connection's budget is now held by a client that does not read).
async fn never_reading_client(h: &Harness, from: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    socket
        .bind(format!("{from}:0").parse().expect("address"))
        .expect("bind");
    let stream = socket.connect(addr(h)).await.expect("connect");
    let requests = b"GET /healthz HTTP/1.1\r\nHost: sluice\r\n\r\n".repeat(256);
    let mut blocked_since: Option<Instant> = None;
    // Until the server has not read a byte for a second: its responses fill both buffers.
    loop {
        match stream.try_write(&requests) {
            Ok(_) => blocked_since = None,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let since = *blocked_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_secs(1) {
                    return stream;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("the server closed the connection while it was being filled: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn clients_that_never_read_their_responses_are_disconnected() {
    let h = server(
        &[
            ("SLUICE_HTTP__MAX_CONNECTIONS", "4"),
            ("SLUICE_HTTP__MAX_CONNECTIONS_PER_IP", "0"),
            ("SLUICE_HTTP__WRITE_TIMEOUT_SECS", "2"),
        ],
        &[],
    )
    .await;
    // Every connection slot held by a client whose responses the server cannot write.
    let mut stuck = Vec::new();
    for i in 0..4 {
        stuck.push(never_reading_client(&h, &format!("127.0.5.{}", 10 + i)).await);
    }
    // A new client is served once the write timeout frees the slots (without it: never).
    let mut fresh = connect_from(&h, "127.0.5.100").await;
    fresh
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: sluice\r\nConnection: close\r\n\r\n")
        .await
        .expect("request");
    assert_eq!(
        read_status(&mut fresh, Duration::from_secs(60)).await,
        Some(200)
    );
    // And each client that did not read has been disconnected by the server.
    for mut s in stuck {
        wait_closed(&mut s, Duration::from_secs(60)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn one_address_cannot_hold_more_than_its_share_of_connections() {
    let h = server(
        &[
            ("SLUICE_HTTP__MAX_CONNECTIONS_PER_IP", "8"),
            ("SLUICE_HTTP__HEADER_READ_TIMEOUT_SECS", "30"),
        ],
        &[],
    )
    .await;
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(slow_header_sender(&h, "127.0.2.7").await);
    }
    // The ninth from the same address is closed at once (long before the header timeout).
    let mut ninth = connect_from(&h, "127.0.2.7").await;
    let _ = ninth.write_all(b"POST /events HTTP/1.1\r\n").await;
    wait_closed(&mut ninth, Duration::from_secs(5)).await;
    // Another address is served.
    let r = h.send(&fresh_ping()).await;
    assert_eq!(r.status(), 202);
    for t in held {
        t.abort();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn past_the_connection_cap_a_delivery_waits_for_a_free_slot_instead_of_failing() {
    let h = server(
        &[
            ("SLUICE_HTTP__MAX_CONNECTIONS", "10"),
            ("SLUICE_HTTP__MAX_CONNECTIONS_PER_IP", "0"),
            ("SLUICE_HTTP__HEADER_READ_TIMEOUT_SECS", "3"),
        ],
        &[],
    )
    .await;
    let opened = Instant::now();
    let mut slow = Vec::new();
    for _ in 0..10 {
        slow.push(slow_header_sender(&h, "127.0.3.1").await);
    }
    // All ten slots are held: the eleventh connection is served only once the slow ones are
    // cut off by the header timeout — and then it is served, not dropped.
    let r = h.send(&fresh_ping()).await;
    assert_eq!(r.status(), 202);
    assert!(
        opened.elapsed() >= Duration::from_millis(2500),
        "answered after {:?}: the cap of 10 connections did not hold",
        opened.elapsed()
    );
    for t in slow {
        t.await.expect("task");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_or_unsigned_request_is_refused_before_its_body_is_read() {
    let h = server(&[("SLUICE_HTTP__MAX_BODY_BYTES", "1048576")], &[]).await;
    let cases: &[(&str, String, u16)] = &[
        (
            "a Content-Length of 100 GB",
            request_head(100_000_000_000, Some(&bogus_signature()), ""),
            413,
        ),
        (
            "just over the cap, expecting 100-continue",
            request_head(
                1_048_577,
                Some(&bogus_signature()),
                "Expect: 100-continue\r\n",
            ),
            413,
        ),
        (
            "no signature",
            request_head(1_000_000, None, "Expect: 100-continue\r\n"),
            401,
        ),
        (
            "a malformed signature",
            request_head(1_000_000, Some("sha1=abc"), ""),
            401,
        ),
        (
            "a 40 KB request head",
            request_head(
                10,
                None,
                &format!("X-Padding: {}\r\n", "a".repeat(40 * 1024)),
            ),
            431,
        ),
    ];
    for (what, head, want) in cases {
        let mut s = connect_from(&h, "127.0.0.1").await;
        s.write_all(head.as_bytes()).await.expect("head");
        // Not one byte of body is sent: the answer must come anyway, and no `100 Continue`
        // invites the body first.
        let status = read_status(&mut s, Duration::from_secs(5)).await;
        assert_eq!(status, Some(*want), "{what}");
        wait_closed(&mut s, Duration::from_secs(5)).await;
    }
    let r = h.send(&fresh_ping()).await;
    assert_eq!(r.status(), 202);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_that_arrives_too_slowly_is_timed_out() {
    let h = server(&[("SLUICE_HTTP__BODY_READ_TIMEOUT_SECS", "2")], &[]).await;
    let mut s = connect_from(&h, "127.0.0.1").await;
    let t = Instant::now();
    s.write_all(request_head(1000, Some(&bogus_signature()), "").as_bytes())
        .await
        .expect("head");
    s.write_all(b"{\"zen\":").await.expect("some body");
    let status = read_status(&mut s, Duration::from_secs(10)).await;
    assert_eq!(status, Some(408));
    assert!(
        t.elapsed() >= Duration::from_millis(1500),
        "timed out after {:?}",
        t.elapsed()
    );
    wait_closed(&mut s, Duration::from_secs(5)).await;

    // Chunked, trickling forever: also cut off.
    let mut s = connect_from(&h, "127.0.0.1").await;
    let head = format!(
        "POST /events HTTP/1.1\r\nHost: sluice\r\nX-GitHub-Event: ping\r\nX-GitHub-Delivery: {}\r\n\
         X-Hub-Signature-256: {}\r\nTransfer-Encoding: chunked\r\n\r\n",
        new_delivery_id(),
        bogus_signature()
    );
    s.write_all(head.as_bytes()).await.expect("head");
    let (mut rd, mut wr) = s.into_split();
    let trickle = tokio::spawn(async move {
        while wr.write_all(b"1\r\na\r\n").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let mut buf = [0u8; 12];
    tokio::time::timeout(Duration::from_secs(10), rd.read_exact(&mut buf))
        .await
        .expect("an answer")
        .expect("read");
    assert_eq!(&buf, b"HTTP/1.1 408");
    trickle.abort();

    let r = h.send(&fresh_ping()).await;
    assert_eq!(r.status(), 202);
}

#[tokio::test(flavor = "multi_thread")]
async fn unsigned_bytes_in_flight_stay_within_the_budget_and_real_deliveries_get_through() {
    const MIB: u64 = 1024 * 1024;
    let h = server(
        &[
            ("SLUICE_HTTP__MAX_BODY_BYTES", &MIB.to_string()),
            (
                "SLUICE_HTTP__MAX_INFLIGHT_BODY_BYTES",
                &(2 * MIB).to_string(),
            ),
            ("SLUICE_HTTP__BODY_READ_TIMEOUT_SECS", "60"),
            ("SLUICE_HTTP__MAX_CONNECTIONS_PER_IP", "0"),
        ],
        &[],
    )
    .await;
    let pid = h.server().pid();
    let before = rss_kib(pid);

    // 60 senders of a 900 KiB body with a bogus signature, each holding back its last byte.
    // Only two fit in the 2 MiB budget; the others are refused without being read.
    let size = 900 * 1024;
    let mut admitted = Vec::new();
    let mut refused = 0;
    let mut senders = Vec::new();
    for i in 0..60 {
        let mut s = connect_from(&h, &format!("127.0.4.{}", 1 + i % 50)).await;
        s.write_all(request_head(size, Some(&bogus_signature()), "").as_bytes())
            .await
            .expect("head");
        senders.push(s);
    }
    for mut s in senders {
        // A refusal comes at once; an admitted request has nothing to say until its body is
        // complete. Send the body (but its last byte) to the admitted ones only.
        match tokio::time::timeout(
            Duration::from_secs(4),
            read_status(&mut s, Duration::from_secs(60)),
        )
        .await
        {
            Ok(status) => {
                assert_eq!(status, Some(503), "a refused sender gets 503");
                refused += 1;
            }
            Err(_) => {
                s.write_all(&vec![b' '; size as usize - 1])
                    .await
                    .expect("body");
                admitted.push(s);
            }
        }
    }
    assert_eq!(
        (admitted.len(), refused),
        (2, 58),
        "two 900 KiB bodies fit a 2 MiB budget"
    );
    // A real delivery is small, fits what is left, and is accepted meanwhile.
    let r = h.send(&fresh_ping()).await;
    assert_eq!(r.status(), 202);
    let grown = rss_kib(pid).saturating_sub(before);
    eprintln!("server RSS grew by {grown} KiB while 60 x 900 KiB unsigned bodies were attempted");
    assert!(
        grown < 24 * 1024,
        "RSS grew by {grown} KiB: more than the 2 MiB budget plus slack"
    );

    // The admitted ones finish: their signature is wrong (401), and their budget comes back.
    for mut s in admitted {
        s.write_all(b" ").await.expect("last byte");
        assert_eq!(
            read_status(&mut s, Duration::from_secs(10)).await,
            Some(401)
        );
    }
    let mut s = connect_from(&h, "127.0.0.1").await;
    s.write_all(request_head(size, Some(&bogus_signature()), "").as_bytes())
        .await
        .expect("head");
    s.write_all(&vec![b' '; size as usize]).await.expect("body");
    assert_eq!(
        read_status(&mut s, Duration::from_secs(10)).await,
        Some(401),
        "the budget was given back: a large body is read again"
    );
}

// ---- item: events deduplicated by what they are; commands bound to their head ------------------

fn is_plan(c: &str) -> bool {
    c.contains("sluice plan") && c.contains("Plan:")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_comment_under_four_delivery_ids_runs_once() {
    let a = null_project("a", "1");
    let h = server(&[], &[("envs/a/main.tf", &a)]).await;
    let head = h.open_pr(1, "change", &[("envs/a/main.tf", &null_project("a", "2"))]);
    h.deliver(&h.pr_event("opened", 1)).await;
    h.wait_status(&head, "sluice/plan", "success").await;
    h.fake.add_review(REPO, 1, "bob", "APPROVED");

    let hook = h.comment_event(1, "alice", "sluice apply");
    // 1: the delivery. 2 and 4: the same signed body under fresh delivery ids (a replay).
    // 3: the same comment as a second webhook of the repository delivers it (other bytes).
    let second_hook = hook.clone().installation(Some(77));
    let statuses = [
        h.send(&hook).await.status().as_u16(),
        h.send(&hook).await.status().as_u16(),
        h.send(&second_hook).await.status().as_u16(),
        h.send(&hook).await.status().as_u16(),
    ];
    assert_eq!(statuses, [202, 200, 200, 200]);

    h.wait_status(&head, "sluice/apply", "success").await;
    assert_eq!(
        h.count_comments(1, |c| c.contains("Apply complete")),
        1,
        "applied once"
    );
    let log = String::from_utf8_lossy(&h.cli(&["audit", "export"]).stdout).into_owned();
    let applies = log
        .lines()
        .filter(|l| l.contains("\"action\":\"apply\""))
        .count();
    assert_eq!(applies, 1, "{log}");
    assert_eq!(
        log.matches("same event as delivery").count(),
        3,
        "each replay is recorded"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_review_replayed_under_a_new_delivery_id_is_the_same_review() {
    let h = server(&[], &[("README.md", "x\n")]).await;
    let review = Webhook::load("pull_request_review.submitted.json")
        .repo(REPO, &h.origin.url())
        .pr_number(1)
        .review_state("approved")
        .set("/review/id", 4242)
        .installation(None);
    assert_eq!(h.send(&review).await.status(), 202);
    assert_eq!(h.send(&review).await.status(), 200, "replayed");
    assert_eq!(
        h.send(&review.clone().set("/review/body", "edited in transit?"))
            .await
            .status(),
        200,
        "the same review id, other bytes"
    );
    // Its dismissal is another event.
    let dismissed = review.action("dismissed").review_state("dismissed");
    assert_eq!(h.send(&dismissed).await.status(), 202);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_comment_written_before_a_push_does_not_act_on_the_new_head() {
    let a = null_project("a", "1");
    let h = server(&[], &[("envs/a/main.tf", &a)]).await;
    let first = h.open_pr(1, "change", &[("envs/a/main.tf", &null_project("a", "2"))]);
    h.deliver(&h.pr_event("opened", 1)).await;
    h.wait_status(&first, "sluice/plan", "success").await;
    h.fake.add_review(REPO, 1, "bob", "APPROVED");

    // The reviewer writes `apply` (and an owner `approve_policies`) on the first commit...
    let apply = h.comment_event(1, "alice", "sluice apply");
    let approve = h.comment_event(1, "carol", "sluice approve_policies");
    // ...then a new commit is pushed, announced, planned and approved before those comments
    // are delivered.
    let second = h.push(1, "change", &[("envs/a/main.tf", &null_project("a", "3"))]);
    h.deliver(&h.pr_event("synchronize", 1)).await;
    h.wait_status(&second, "sluice/plan", "success").await;
    h.fake.add_review(REPO, 1, "bob", "APPROVED");

    h.deliver(&apply).await;
    let refusal = h
        .wait_comment(1, "the apply refusal", |c| {
            c.contains("`apply` was not run")
        })
        .await;
    assert!(
        refusal.contains(&format!(
            "written when the head commit was `{}`, and the head is now `{}`",
            &first[..7],
            &second[..7]
        )),
        "{refusal}"
    );
    h.deliver(&approve).await;
    h.wait_comment(1, "the approve_policies refusal", |c| {
        c.contains("`approve_policies` was not run") && c.contains(&second[..7])
    })
    .await;
    let log = String::from_utf8_lossy(&h.cli(&["audit", "export"]).stdout).into_owned();
    assert!(
        log.contains(&format!(
            "comment written on head {first}; head is now {second}"
        )),
        "the refusal is audited:\n{log}"
    );
    assert!(
        !h.fake
            .statuses(&second)
            .iter()
            .any(|(c, _, _)| c == "sluice/apply"),
        "nothing was applied"
    );

    // Written now, on the new head: applied — bound to that head.
    h.deliver(&h.comment_event(1, "alice", "sluice apply"))
        .await;
    h.wait_status(&second, "sluice/apply", "success").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_apply_written_before_a_re_plan_does_not_apply_the_new_plan() {
    let a = null_project("a", "1");
    let h = server(&[], &[("envs/a/main.tf", &a)]).await;
    let head = h.open_pr(1, "change", &[("envs/a/main.tf", &null_project("a", "2"))]);
    h.deliver(&h.pr_event("opened", 1)).await;
    h.wait_plan(1, "the first plan", is_plan).await;
    h.fake.add_review(REPO, 1, "bob", "APPROVED");
    // `apply` is written on the first plan; the same commit is planned again before the
    // comment is delivered (a plan can differ on the same commit: state, data sources).
    let apply = h.comment_event(1, "alice", "sluice apply");
    h.deliver(&h.comment_event(1, "alice", "sluice plan")).await;
    // The summary, edited in place, reports the second run.
    let second = h.wait_plan_runs(1, 2).await;
    assert!(is_plan(&second), "{second}");
    h.deliver(&apply).await;
    let refusal = h
        .wait_comment(1, "the refusal", |c| c.contains("Apply refused"))
        .await;
    assert!(
        refusal.contains("this plan was made after the comment was written"),
        "{refusal}"
    );
    // Written after the plan it applies: applied.
    h.deliver(&h.comment_event(1, "alice", "sluice apply"))
        .await;
    h.wait_status(&head, "sluice/apply", "success").await;
}

// ---- item: the host layout stays private --------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn the_root_page_shows_no_set_up_details_and_the_api_token_opens_the_ui() {
    let h = server(&[], &[("README.md", "x\n")]).await;
    let data = h.data_dir().display().to_string();
    let page = |token: Option<&'static str>| {
        let mut r = h.http.get(format!("{}/", h.url()));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        async move {
            let r = r.send().await.expect("GET /");
            (r.status().as_u16(), r.text().await.expect("body"))
        }
    };
    for (who, token) in [("anyone", None), ("a wrong token", Some("not-the-token"))] {
        let (status, body) = page(token).await;
        // Anyone: the login page (or how to configure it); a wrong token: 401.
        assert!(
            (status == 200 && token.is_none()) || (status == 401 && token.is_some()),
            "{who}: {status} {body}"
        );
        assert!(body.contains("Sluice"), "{who}: {body}");
        for secret_ish in [data.as_str(), "Data:", "Runner:", "Providers:", "GitHub:"] {
            assert!(
                !body.contains(secret_ish),
                "{who} sees {secret_ish:?}:\n{body}"
            );
        }
    }
    // The API token opens the web UI's admin view; set-up details (host paths) are only in
    // the server's start-up log, never on a page.
    let (status, body) = page(Some(API_TOKEN)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Environments"), "{body}");
    assert!(!body.contains(&data), "{body}");
    assert!(
        h.server().logs().contains(&data),
        "the start-up log names the data dir"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_git_error_names_the_mirror_without_its_host_path() {
    let a = null_project("a", "1");
    let h = Harness::new(&[("envs/a/main.tf", a.as_str())]).await;
    // A broken mirror: git itself names the directory in its error.
    let mirror = h.data_dir().join("repos/acme/infra.git");
    std::fs::create_dir_all(&mirror).unwrap();
    std::fs::write(mirror.join("HEAD"), "not a ref\n").unwrap();
    let mut h = h;
    h.start();
    h.open_pr(1, "change", &[("envs/a/main.tf", &null_project("a", "2"))]);
    h.deliver(&h.pr_event("opened", 1)).await;
    let c = h
        .wait_comment(1, "the failure comment", |c| c.contains("could not act"))
        .await;
    assert!(c.contains("<mirrors>/acme/infra.git"), "{c}");
    let data = h.data_dir().display().to_string();
    assert!(!c.contains(&data), "the data dir leaks:\n{c}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_terraform_failure_names_the_job_dir_without_its_host_path() {
    // The plain runner shows terraform host paths (bwrap shows fixed sandbox paths anyway).
    let a = null_project("a", "1");
    let h = server(
        &[("SLUICE_RUNNER__PROFILE", "plain")],
        &[("envs/a/main.tf", &a)],
    )
    .await;
    let broken = format!(
        "{}\nlocals {{\n  missing = file(\"${{abspath(path.module)}}/nope.txt\")\n}}\n\
         output \"x\" {{\n  value = local.missing\n}}\n",
        null_project("a", "2")
    );
    h.open_pr(1, "change", &[("envs/a/main.tf", &broken)]);
    h.deliver(&h.pr_event("opened", 1)).await;
    let c = h
        .wait_plan(1, "the failed plan", |c| c.contains("Plan failed"))
        .await;
    assert!(c.contains("<job>/repo/envs/a/nope.txt"), "{c}");
    let data = h.data_dir().display().to_string();
    assert!(!c.contains(&data), "the data dir leaks:\n{c}");
    assert!(!c.contains("/job-"), "a job dir leaks:\n{c}");
}

#[tokio::test(flavor = "multi_thread")]
async fn server_policy_files_are_named_without_their_host_path() {
    let policies = tempfile::tempdir().unwrap();
    std::fs::write(
        policies.path().join("guard.yaml"),
        r#"version: 1
policies:
  - name: guard-null
    rules:
      - name: no-new-null
        deny: [create]
        resource_types: [null_resource]
    on_failure: deny
"#,
    )
    .unwrap();
    let a = null_project("a", "1");
    let dir = policies.path().display().to_string();
    let h = server(&[("SLUICE_POLICY_DIR", &dir)], &[("envs/a/main.tf", &a)]).await;
    h.open_pr(1, "change", &[("envs/a/main.tf", &null_project("a", "2"))]);
    h.deliver(&h.pr_event("opened", 1)).await;
    let plan = h.wait_comment(1, "the plan", is_plan).await;
    assert!(plan.contains("guard-null"), "{plan}");
    assert!(plan.contains("<server-policies>/guard.yaml"), "{plan}");
    assert!(!plan.contains(&dir), "the policy dir leaks:\n{plan}");
    let log = String::from_utf8_lossy(&h.cli(&["audit", "export"]).stdout).into_owned();
    assert!(log.contains("<server-policies>/guard.yaml"), "{log}");
    assert!(
        !log.contains(&dir),
        "the policy dir is in the audit log:\n{log}"
    );
}
