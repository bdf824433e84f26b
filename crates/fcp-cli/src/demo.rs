//! `fcp demo`: a three-node mesh on 127.0.0.1–3 in temporary homes, real
//! processes and real sockets. Node 1 owns the mesh and enrolls nodes 2 and 3;
//! a file goes into z:private on node 1; node 1 is killed (SIGKILL); node 3
//! rebuilds the file byte for byte from the symbols nodes 2 and 3 hold.
//! Everything it starts is stopped and removed when it returns.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use fcp_core::{ErrorCode, FcpError, ZoneId};
use fcp_node::enroll;
use fcp_node::home::Home;

fn err(e: fcp_node::NodeError) -> FcpError {
    FcpError::from_err(&e)
}

/// A running `fcp node run` child, killed on drop.
pub struct NodeProc {
    /// Node id.
    pub id: String,
    /// Home directory.
    pub home: Home,
    child: Option<Child>,
}

impl NodeProc {
    /// CPU time (user + system) the node's process has used so far, from
    /// `/proc/PID/stat` (Linux; `None` elsewhere or once it has exited).
    /// `/proc` reports it in USER_HZ ticks, 100 per second.
    pub fn cpu_ms(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the command name, which is in parentheses and may
        // hold spaces: state is field 3, utime 14 and stime 15.
        let rest = stat.rsplit_once(')')?.1;
        let mut f = rest.split_whitespace().skip(11);
        let utime: u64 = f.next()?.parse().ok()?;
        let stime: u64 = f.next()?.parse().ok()?;
        Some((utime + stime) * 10)
    }

    /// Kill the process (SIGKILL) and reap it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port free for both TCP and UDP on every address.
fn free_port(ips: &[&str]) -> Result<u16, FcpError> {
    for _ in 0..200 {
        let probe = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| FcpError::new(ErrorCode::LocalIo, e.to_string()))?;
        let port = probe.port();
        let ok = ips.iter().all(|ip| {
            let a: SocketAddr = match format!("{ip}:{port}").parse() {
                Ok(a) => a,
                Err(_) => return false,
            };
            TcpListener::bind(a).is_ok() && UdpSocket::bind(a).is_ok()
        });
        if ok {
            return Ok(port);
        }
    }
    Err(FcpError::new(
        ErrorCode::LocalIo,
        "no free port on 127.0.0.1-3",
    ))
}

/// A test mesh of `n` nodes: node 1 is the owner; every node gets `zones[i]`.
pub struct Mesh {
    /// Temporary root (removed on drop).
    pub root: PathBuf,
    /// The nodes.
    pub nodes: Vec<NodeProc>,
}

impl Drop for Mesh {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            n.kill();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

impl Mesh {
    /// Create homes, enroll, start every node and wait until all are connected.
    pub fn start(n: usize, zones: &[Vec<ZoneId>], say: &dyn Fn(&str)) -> Result<Self, FcpError> {
        let root = std::env::temp_dir().join(format!(
            "fcp-demo-{}-{}",
            std::process::id(),
            crate::node_cmds::now()
        ));
        std::fs::create_dir_all(&root)
            .map_err(|e| FcpError::new(ErrorCode::LocalIo, e.to_string()))?;
        let ips: Vec<String> = (1..=n).map(|i| format!("127.0.0.{i}")).collect();
        let ip_refs: Vec<&str> = ips.iter().map(String::as_str).collect();
        let port = free_port(&ip_refs)?;
        let mut rng = rand::rng();
        let now = crate::node_cmds::now();
        let mut mesh = Mesh {
            root: root.clone(),
            nodes: Vec::new(),
        };
        let homes: Vec<Home> = (1..=n)
            .map(|i| Home::at(&root.join(format!("node-{i}"))))
            .collect();
        for (i, h) in homes.iter().enumerate() {
            enroll::init(
                h,
                &format!("node-{}", i + 1),
                &format!("{}:{port}", ips[i]),
                now,
                &mut rng,
            )
            .map_err(err)?;
        }
        let owner = &homes[0];
        enroll::owner_init(owner, now, &mut rng).map_err(err)?;
        say(&format!(
            "node-1 created the owner key and the five standard zones ({})",
            root.display()
        ));
        for (i, h) in homes.iter().enumerate().skip(1) {
            let id = enroll::identity(h).map_err(err)?;
            let z = zones
                .get(i)
                .cloned()
                .unwrap_or_else(|| vec![ZoneId::private()]);
            let b = enroll::owner_enroll(owner, &id, &z, now, &mut rng).map_err(err)?;
            enroll::join(h, &enroll::encode_bundle(&b).map_err(err)?).map_err(err)?;
            let names: Vec<String> = z.iter().map(|z| z.to_string()).collect();
            say(&format!(
                "node-1 enrolled node-{} in {} (owner-signed attestation + wrapped zone keys)",
                i + 1,
                names.join(", ")
            ));
        }
        for (i, h) in homes.into_iter().enumerate() {
            let exe = std::env::current_exe()
                .map_err(|e| FcpError::new(ErrorCode::LocalIo, e.to_string()))?;
            let log = std::fs::File::create(h.path("node.log"))
                .map_err(|e| FcpError::new(ErrorCode::LocalIo, e.to_string()))?;
            let child = Command::new(exe)
                .arg("--home")
                .arg(h.root())
                .args(["node", "run"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .map_err(|e| FcpError::new(ErrorCode::LocalIo, e.to_string()))?;
            mesh.nodes.push(NodeProc {
                id: format!("node-{}", i + 1),
                home: h,
                child: Some(child),
            });
        }
        mesh.wait_connected(n - 1, Duration::from_secs(10))?;
        say(&format!(
            "{n} nodes running on {}:{port}, sessions established (UDP symbols, TCP control)",
            ips.join("/")
        ));
        Ok(mesh)
    }

    /// Wait until every running node sees `peers` connected peers.
    pub fn wait_connected(&self, peers: usize, timeout: Duration) -> Result<(), FcpError> {
        let deadline = Instant::now() + timeout;
        for n in self.nodes.iter().filter(|n| n.child.is_some()) {
            loop {
                let ok = status(&n.home)
                    .map(|v| {
                        v["peers"]
                            .as_array()
                            .map_or(0, |p| p.iter().filter(|p| p["connected"] == true).count())
                            >= peers
                    })
                    .unwrap_or(false);
                if ok {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(FcpError::new(
                        ErrorCode::NodeNotRunning,
                        format!(
                            "{} did not connect to its peers in time (see {})",
                            n.id,
                            n.home.path("node.log").display()
                        ),
                    ));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }
}

/// The node's status JSON.
pub fn status(home: &Home) -> Result<serde_json::Value, FcpError> {
    let r = fcp_node::admin::call(&home.path("admin.sock"), "GET", "/status", &[])?;
    serde_json::from_slice(&r.body).map_err(|e| FcpError::new(ErrorCode::Internal, e.to_string()))
}

/// Put bytes through a node's admin API.
pub fn put(home: &Home, zone: &str, data: &[u8]) -> Result<serde_json::Value, FcpError> {
    let r = fcp_node::admin::call(
        &home.path("admin.sock"),
        "POST",
        &format!("/put?zone={zone}"),
        data,
    )?;
    if r.status != 200 {
        return Err(fcp_node::admin::response_error(&r));
    }
    serde_json::from_slice(&r.body).map_err(|e| FcpError::new(ErrorCode::Internal, e.to_string()))
}

/// Get bytes through a node's admin API.
pub fn get(home: &Home, id: &str) -> Result<Vec<u8>, FcpError> {
    let r = fcp_node::admin::call(&home.path("admin.sock"), "GET", &format!("/get/{id}"), &[])?;
    if r.status != 200 {
        return Err(fcp_node::admin::response_error(&r));
    }
    Ok(r.body)
}

/// Deterministic, incompressible-looking test data.
pub fn test_data(n: usize) -> Vec<u8> {
    test_data_seeded(n, 0)
}

/// As [`test_data`], from another seed: no 64 KiB chunk in common with it.
fn test_data_seeded(n: usize, seed: u64) -> Vec<u8> {
    let mut out = vec![0u8; n];
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ seed.wrapping_mul(0xd1b5_4a32_d192_ed03);
    for b in &mut out {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = (x >> 24) as u8;
    }
    out
}

/// `fcp demo`.
pub fn demo(size: usize, json: bool) -> Result<ExitCode, FcpError> {
    let t0 = Instant::now();
    let say = |s: &str| {
        if !json {
            println!("[{:>5.2}s] {s}", t0.elapsed().as_secs_f64());
        }
    };
    let mut mesh = Mesh::start(
        3,
        &[
            vec![],
            vec![ZoneId::private(), ZoneId::work()],
            vec![ZoneId::private()],
        ],
        &say,
    )?;
    let data = test_data(size);
    let path: &Path = &mesh.root.join("hello.bin");
    std::fs::write(path, &data).map_err(|e| FcpError::new(ErrorCode::LocalIo, e.to_string()))?;
    let t = Instant::now();
    let put = put(&mesh.nodes[0].home, "z:private", &data)?;
    let id = put["object_id"].as_str().unwrap_or_default().to_owned();
    say(&format!(
        "node-1 put {} bytes into z:private in {:.0} ms: object {id}, {} objects, symbols placed on {} at >= {:.2}x k",
        data.len(),
        t.elapsed().as_secs_f64() * 1000.0,
        put["objects"],
        put["peers"]
            .as_array()
            .map(|p| p
                .iter()
                .filter_map(|x| x.as_str())
                .collect::<Vec<_>>()
                .join(" and "))
            .unwrap_or_default(),
        put["min_coverage_bps"].as_f64().unwrap_or(0.0) / 10_000.0
    ));
    mesh.nodes[0].kill();
    say("node-1 killed with SIGKILL: the only node that ever saw the plaintext is gone");
    let t = Instant::now();
    let back = get(&mesh.nodes[2].home, &id)?;
    let same = back == data;
    say(&format!(
        "node-3 rebuilt the object from node-2's and its own symbols in {:.0} ms: {} bytes, {}",
        t.elapsed().as_secs_f64() * 1000.0,
        back.len(),
        if same { "byte-identical" } else { "DIFFERENT" }
    ));
    let elapsed = t0.elapsed().as_secs_f64();
    drop(mesh);
    say("all nodes stopped, temporary homes removed");
    if json {
        println!(
            "{}",
            serde_json::json!({ "object_id": id, "size": size, "identical": same, "seconds": elapsed })
        );
    }
    if same {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(FcpError::new(
            ErrorCode::ObjectCorrupt,
            "the rebuilt object differs from what was put",
        ))
    }
}

/// Figures of `fcp bench mesh`.
#[derive(Debug, serde::Serialize)]
pub struct MeshReport {
    size: usize,
    nodes: usize,
    iterations: usize,
    put_mib_s: f64,
    get_mib_s: f64,
    put_p50_ms: f64,
    get_p50_ms: f64,
    /// CPU time all nodes spent on one put (median over the iterations),
    /// in ms: a steadier figure than throughput on a shared machine.
    put_cpu_ms: Option<f64>,
    /// The same for one get.
    get_cpu_ms: Option<f64>,
}

/// `fcp bench mesh --nodes N --size BYTES`: put on node 1, get on node N, real
/// processes and sockets over loopback.
pub fn bench_mesh(nodes: usize, size: usize, json: bool) -> Result<ExitCode, FcpError> {
    if !(2..=9).contains(&nodes) {
        return Err(FcpError::new(
            ErrorCode::InvalidArgument,
            "--nodes must be 2..=9",
        ));
    }
    let zones: Vec<Vec<ZoneId>> = (0..nodes).map(|_| vec![ZoneId::private()]).collect();
    let quiet = |_: &str| {};
    let mesh = Mesh::start(nodes, &zones, &quiet)?;
    let iterations = if size >= 32 << 20 {
        3
    } else if size >= 4 << 20 {
        5
    } else {
        11
    };
    let (mut puts, mut gets) = (Vec::new(), Vec::new());
    let (mut put_cpu, mut get_cpu) = (Vec::new(), Vec::new());
    let cpu = || -> Option<u64> { mesh.nodes.iter().map(NodeProc::cpu_ms).sum() };
    for i in 0..iterations {
        // New bytes every round: a round that shared chunks with an earlier
        // one (chunk ids depend on the put's second) would find them held.
        let data = test_data_seeded(size, i as u64);
        let (c, t) = (cpu(), Instant::now());
        let r = put(&mesh.nodes[0].home, "z:private", &data)?;
        puts.push(t.elapsed().as_secs_f64() * 1000.0);
        put_cpu.extend(c.zip(cpu()).map(|(a, b)| b.saturating_sub(a) as f64));
        let id = r["object_id"].as_str().unwrap_or_default().to_owned();
        let (c, t) = (cpu(), Instant::now());
        let back = get(&mesh.nodes[nodes - 1].home, &id)?;
        gets.push(t.elapsed().as_secs_f64() * 1000.0);
        get_cpu.extend(c.zip(cpu()).map(|(a, b)| b.saturating_sub(a) as f64));
        if back != data {
            return Err(FcpError::new(
                ErrorCode::ObjectCorrupt,
                "bench get returned different bytes",
            ));
        }
    }
    for v in [&mut puts, &mut gets, &mut put_cpu, &mut get_cpu] {
        v.sort_by(f64::total_cmp);
    }
    let p50 = |v: &[f64]| v.get(v.len() / 2).copied().unwrap_or(0.0);
    let mib_s = |ms: f64| {
        if ms > 0.0 {
            size as f64 / 1048576.0 / (ms / 1000.0)
        } else {
            0.0
        }
    };
    let r = MeshReport {
        size,
        nodes,
        iterations,
        put_mib_s: mib_s(p50(&puts)),
        get_mib_s: mib_s(p50(&gets)),
        put_p50_ms: p50(&puts),
        get_p50_ms: p50(&gets),
        put_cpu_ms: (put_cpu.len() == iterations).then(|| p50(&put_cpu)),
        get_cpu_ms: (get_cpu.len() == iterations).then(|| p50(&get_cpu)),
    };
    if json {
        println!(
            "{}",
            serde_json::to_string(&r)
                .map_err(|e| FcpError::new(ErrorCode::Internal, e.to_string()))?
        );
    } else {
        println!(
            "mesh bench: {} nodes, {} bytes, {} iterations\n  put p50 {:.1} ms  {:.1} MiB/s  node CPU {}\n  get p50 {:.1} ms  {:.1} MiB/s  node CPU {}",
            r.nodes,
            r.size,
            r.iterations,
            r.put_p50_ms,
            r.put_mib_s,
            cpu_text(r.put_cpu_ms),
            r.get_p50_ms,
            r.get_mib_s,
            cpu_text(r.get_cpu_ms),
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn cpu_text(ms: Option<f64>) -> String {
    ms.map_or_else(|| "n/a".to_owned(), |ms| format!("{ms:.0} ms"))
}
