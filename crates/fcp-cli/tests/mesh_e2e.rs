//! End to end over real processes and sockets: `fcp node run` on 127.0.0.1-3,
//! enrolled by the owner on node 1, driven through the CLI like a user would.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const FCP: &str = env!("CARGO_BIN_EXE_fcp");

fn fcp(home: &Path, args: &[&str]) -> Output {
    Command::new(FCP)
        .arg("--home")
        .arg(home)
        .args(args)
        .output()
        .unwrap()
}

fn ok(home: &Path, args: &[&str]) -> String {
    let o = fcp(home, args);
    assert!(
        o.status.success(),
        "fcp {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

struct Node {
    home: PathBuf,
    child: Option<Child>,
    drop_permille: u16,
}

impl Node {
    fn start(&mut self) {
        let log = std::fs::File::create(self.home.join("node.log")).unwrap();
        let child = Command::new(FCP)
            .arg("--home")
            .arg(&self.home)
            .args([
                "node",
                "run",
                "--drop-permille",
                &self.drop_permille.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }
    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }
    fn status(&self) -> serde_json::Value {
        serde_json::from_str(&ok(&self.home, &["--json", "status"])).unwrap()
    }
    fn connected(&self) -> usize {
        let o = fcp(&self.home, &["--json", "status"]);
        if !o.status.success() {
            return 0;
        }
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["peers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["connected"] == true)
            .count()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn free_port() -> u16 {
    loop {
        let p = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if (1..=3).all(|i| {
            TcpListener::bind(format!("127.0.0.{i}:{p}")).is_ok()
                && UdpSocket::bind(format!("127.0.0.{i}:{p}")).is_ok()
        }) {
            return p;
        }
    }
}

/// node-1: owner, all zones; node-2: z:work only (holds z:private ciphertext
/// but no key); node-3: z:private.
fn mesh(dir: &Path, drop_permille: u16) -> Vec<Node> {
    let port = free_port();
    let homes: Vec<PathBuf> = (1..=3).map(|i| dir.join(format!("n{i}"))).collect();
    for (i, h) in homes.iter().enumerate() {
        ok(
            h,
            &[
                "init",
                "--node-id",
                &format!("node-{}", i + 1),
                "--listen",
                &format!("127.0.0.{}:{port}", i + 1),
            ],
        );
    }
    ok(&homes[0], &["owner", "init"]);
    for (i, zones) in [(1, "z:work"), (2, "z:private")] {
        let ident = dir.join(format!("n{}.json", i + 1));
        std::fs::write(&ident, ok(&homes[i], &["node", "identity"])).unwrap();
        let bundle = dir.join(format!("n{}.bundle", i + 1));
        ok(
            &homes[0],
            &[
                "owner",
                "enroll",
                ident.to_str().unwrap(),
                "--zones",
                zones,
                "-o",
                bundle.to_str().unwrap(),
            ],
        );
        ok(&homes[i], &["join", bundle.to_str().unwrap()]);
    }
    let mut nodes: Vec<Node> = homes
        .into_iter()
        .map(|home| Node {
            home,
            child: None,
            drop_permille,
        })
        .collect();
    for n in &mut nodes {
        n.start();
    }
    wait(
        || nodes.iter().all(|n| n.connected() == 2),
        "all sessions up",
    );
    nodes
}

fn wait(mut f: impl FnMut() -> bool, what: &str) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Random-looking bytes with a recognisable plaintext marker every 4 KiB.
fn payload(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    let mut x = 0x1234_5678_9abc_def1u64;
    for (i, b) in v.iter_mut().enumerate() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = (x >> 32) as u8;
        let _ = i;
    }
    for chunk in v.chunks_mut(4096) {
        let m = b"FCP-PLAINTEXT-MARKER";
        let l = m.len().min(chunk.len());
        chunk[..l].copy_from_slice(&m[..l]);
    }
    v
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn put_kill_get(drop_permille: u16) {
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = mesh(dir.path(), drop_permille);
    let data = payload(10 << 20);
    let input = dir.path().join("in.bin");
    std::fs::write(&input, &data).unwrap();
    let id = ok(
        &nodes[0].home,
        &["put", input.to_str().unwrap(), "--zone", "z:private"],
    );
    let id = id.trim().to_owned();
    assert_eq!(id.len(), 64, "put prints the ObjectId alone: {id:?}");
    // Node 1 shows the coverage of what it placed.
    let st = nodes[0].status();
    let objs = st["objects"].as_array().unwrap();
    assert!(
        objs.len() > 100,
        "a 10 MiB payload is a manifest and 160 chunks"
    );
    assert!(
        objs.iter()
            .all(|o| o["mesh_coverage"].as_f64().unwrap() >= 1.0)
    );

    nodes[0].kill9();
    let out = dir.path().join("out.bin");
    ok(&nodes[2].home, &["get", &id, "-o", out.to_str().unwrap()]);
    assert!(
        std::fs::read(&out).unwrap() == data,
        "node-3 must rebuild identical bytes"
    );

    // Node 2 is not in z:private: it holds ciphertext only and cannot decrypt.
    let o = fcp(
        &nodes[1].home,
        &["get", &id, "-o", dir.path().join("x").to_str().unwrap()],
    );
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("FCP-4013"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let st2 = nodes[1].status();
    assert!(
        st2["counters"]["symbols_stored"].as_u64().unwrap() > 1000,
        "node-2 holds symbols"
    );
    // Its store: the database and the symbol log's segments.
    let mut files = vec![nodes[1].home.join("store.redb")];
    for e in std::fs::read_dir(nodes[1].home.join("store.redb.symbols")).unwrap() {
        files.push(e.unwrap().path());
    }
    assert!(files.len() >= 2, "node-2 has a symbol segment: {files:?}");
    for f in &files {
        let mut bytes = Vec::new();
        std::fs::File::open(f)
            .unwrap()
            .read_to_end(&mut bytes)
            .unwrap();
        assert!(
            !contains(&bytes, b"FCP-PLAINTEXT-MARKER"),
            "no plaintext on a node outside the zone ({})",
            f.display()
        );
    }

    // A restarted node keeps its objects.
    nodes[2].kill9();
    nodes[2].start();
    wait(|| nodes[2].connected() >= 1, "node-3 reconnects");
    let out2 = dir.path().join("out2.bin");
    ok(&nodes[2].home, &["get", &id, "-o", out2.to_str().unwrap()]);
    assert!(std::fs::read(&out2).unwrap() == data);
    if drop_permille > 0 {
        let dropped: u64 = nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| {
                n.status()["counters"]["datagrams_dropped_fault"]
                    .as_u64()
                    .unwrap()
            })
            .sum();
        assert!(
            dropped > 100,
            "fault injection really dropped datagrams ({dropped})"
        );
    }
}

#[test]
fn put_10mib_kill9_writer_get_elsewhere() {
    put_kill_get(0);
}

#[test]
fn same_with_5_percent_datagram_loss() {
    put_kill_get(50);
}

#[test]
fn node_without_valid_attestation_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = mesh(dir.path(), 0);
    // A node of another owner announces itself to node-1.
    let other = dir.path().join("other");
    ok(
        &other,
        &["init", "--node-id", "intruder", "--listen", "127.0.0.9:1"],
    );
    ok(&other, &["owner", "init"]);
    let bundle = std::fs::read(other.join("trust/bundle.cbor")).unwrap();
    let b: serde_json::Value = serde_json::Value::Null;
    let _ = b;
    let bundle: fcp_node::enroll::EnrollmentBundle =
        fcp_core::cbor::from_canonical_strict(&bundle).unwrap();
    let keys = fcp_node::enroll::load_node_keys(&fcp_node::home::Home::at(&other)).unwrap();
    let mut ann = fcp_core::identity::PeerAnnouncement {
        attestation: bundle.attestation,
        addr: "127.0.0.9:1".into(),
        announced_at: 1,
        signature: None,
    };
    fcp_crypto::signed::sign(&keys.signing, &mut ann).unwrap();
    let body = fcp_core::cbor::to_canonical(&ann).unwrap();
    let addr = nodes[0].status()["listen"].as_str().unwrap().to_owned();
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(&((body.len() + 1) as u32).to_le_bytes())
        .unwrap();
    s.write_all(b"I").unwrap();
    s.write_all(&body).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(
        s.read(&mut buf).unwrap_or(0),
        0,
        "node-1 answers an unattested node with nothing"
    );
    wait(
        || {
            nodes[0].status()["counters"]["handshakes_failed"]
                .as_u64()
                .unwrap()
                >= 1
        },
        "refusal counted",
    );
    let peers = ok(&nodes[0].home, &["--json", "peers"]);
    assert!(!peers.contains("intruder"));
}

/// A command line clap refuses fails like any other command: exit 2 and an
/// FCP-1030 error, as JSON on stdout under `--json`; `--help` still exits 0.
#[test]
fn bad_arguments_fail_with_their_fcp_code() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["--json", "put"][..],
        &["--json", "node", "run", "--drop-permille", "5000"],
        &["--json", "frob"],
    ] {
        let out = fcp(dir.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["error"]["code"], "FCP-1030", "{args:?}: {v}");
    }
    let out = fcp(dir.path(), &["frob"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("FCP-1030"));
    assert_eq!(fcp(dir.path(), &["--help"]).status.code(), Some(0));
}

/// One node that is its own owner, started by a shell with at most
/// `max_files` open files (`ulimit -n`), up and answering `fcp status`.
fn lone_node(dir: &Path, max_files: u32) -> Node {
    let home = dir.join("lone");
    let listen = format!("127.0.0.1:{}", free_port());
    ok(&home, &["init", "--node-id", "lone", "--listen", &listen]);
    ok(&home, &["owner", "init"]);
    let log = std::fs::File::create(home.join("node.log")).unwrap();
    let child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n {max_files} && exec \"$0\" --home \"$1\" node run"
        ))
        .arg(FCP)
        .arg(&home)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let node = Node {
        home,
        child: Some(child),
        drop_permille: 0,
    };
    wait(
        || fcp(&node.home, &["status"]).status.success(),
        "the node is up",
    );
    node
}

/// Idle admin connections cannot wedge the node. Before the fix it accepted
/// them until out of descriptors, then spun on `accept` (EMFILE) and
/// `fcp status` hung for good; now it serves 64 at a time, drops a client
/// that sends no request head within 10 s, and `fcp status` is answered.
#[test]
fn idle_admin_connections_do_not_wedge_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let node = lone_node(dir.path(), 96);
    let sock = node.home.join("admin.sock");
    let idle: Vec<UnixStream> = (0..100)
        .map(|_| UnixStream::connect(&sock).unwrap())
        .collect();
    let t = Instant::now();
    let status = Command::new(FCP)
        .arg("--home")
        .arg(&node.home)
        .args(["--json", "status"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = output_within(status, Duration::from_secs(25));
    assert!(
        out.status.success(),
        "fcp status failed after {:?}: {}",
        t.elapsed(),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["node_id"], "lone");
    assert_eq!(v["counters"]["admin_gets_failed_midstream"], 0);
    drop(idle);
}

/// The output of `child`, killed (and the test failed) if it runs longer
/// than `limit`.
fn output_within(mut child: Child, limit: Duration) -> Output {
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > limit {
            child.kill().unwrap();
            panic!("still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().unwrap()
}

/// A put over the admin API's 1 GiB limit fails with the node's code for a
/// body too large (FCP-6001), before anything is sent. Before the fix the
/// CLI read the whole file into memory and sent it, the node refused it
/// after the head, and the CLI reported its own broken pipe (FCP-5001).
#[test]
fn a_put_over_the_limit_fails_with_the_nodes_code() {
    let dir = tempfile::tempdir().unwrap();
    let node = lone_node(dir.path(), 1024);
    let big = dir.path().join("big.bin");
    // Sparse: no GiB of disk or memory.
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(fcp_node::admin::MAX_BODY as u64 + 1).unwrap();
    drop(f);
    let out = fcp(
        &node.home,
        &[
            "--json",
            "put",
            big.to_str().unwrap(),
            "--zone",
            "z:private",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["error"]["code"], "FCP-6001", "{v}");
    // The node is fine and took nothing.
    assert!(node.status()["objects"].as_array().unwrap().is_empty());
}

/// `fcp init` makes the home 0700, and the running node's admin socket is
/// 0600 with nothing left beside it from binding it. Before the fix the
/// home had the umask's mode (0755 under 022).
#[test]
fn the_home_and_the_admin_socket_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let node = lone_node(dir.path(), 1024);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&node.home), 0o700);
    assert_eq!(mode(&node.home.join("admin.sock")), 0o600);
    let stray: Vec<_> = std::fs::read_dir(&node.home)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| {
            // The directory the socket is bound in: `.s<pid>`.
            let n = n.to_string_lossy();
            n.strip_prefix(".s")
                .is_some_and(|pid| pid.chars().all(|c| c.is_ascii_digit()))
        })
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
}

/// A second `fcp node run` on a home whose node is running fails at once
/// with the store's code and says why; the running node keeps its admin
/// socket and answers. Before, it failed with FCP-5002 calling the store
/// "malformed".
#[test]
fn a_second_node_on_a_running_home_is_refused_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let node = lone_node(dir.path(), 1024);
    let second = Command::new(FCP)
        .arg("--home")
        .arg(&node.home)
        .args(["--json", "node", "run"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = output_within(second, Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["error"]["code"], "FCP-5101", "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("another `fcp node run`"), "{msg}");
    assert_eq!(node.status()["node_id"], "lone");
}

/// A `get -o` stopped by a signal (Ctrl-C, a service manager's SIGTERM)
/// removes its partial output instead of leaving a hidden file beside OUT,
/// and exits as the signal would have (128 + its number).
#[test]
fn an_interrupted_get_leaves_no_partial_file() {
    use std::os::unix::net::UnixListener;
    for (sig, code) in [("-INT", 130), ("-TERM", 143)] {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path();
        // A node that sends 3 of 10 bytes, then nothing, holding the
        // connection open.
        let l = UnixListener::bind(home.join("admin.sock")).unwrap();
        let node = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut head = [0u8; 256];
            let _ = s.read(&mut head).unwrap();
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
                .unwrap();
            // Until the client goes away.
            let _ = s.read(&mut head);
        });
        let out = dir.path().join("out.bin");
        let child = Command::new(FCP)
            .arg("--home")
            .arg(home)
            .args(["get", &"ab".repeat(32), "-o"])
            .arg(&out)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let partial = || {
            std::fs::read_dir(home)
                .unwrap()
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(".out.bin.fcp-get-"))
                .count()
        };
        wait(|| partial() == 1, "the partial output to appear");
        let sent = Command::new("kill")
            .args([sig, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let o = output_within(child, Duration::from_secs(10));
        node.join().unwrap();
        assert_eq!(
            o.status.code(),
            Some(code),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(partial(), 0, "the partial output was left behind");
        assert!(!out.exists());
    }
}
