//! Seeded turmoil simulations of the real mesh node (ARCHITECTURE.md,
//! "Deterministic multi-node simulation"): delivery, pacing under loss,
//! partitions and rejoin, session keepalive, expiry of abandoned pushes.
//!
//! Every simulated host runs the real daemon (`daemon::start`) on its own
//! home directory and redb store; only the network and the clock are
//! simulated, through the `net::Net` seam. The test drives the nodes through
//! the same operations as the admin API (`NodeHandle`), sent to the host over
//! a channel so that each node's work runs on its own simulated host.
//!
//! The network model:
//! - Streams (FCPC, profile §4.3) are turmoil TCP: reliable and ordered.
//! - Datagrams (FCPS, spec §4.2) are turmoil UDP, one per segment of a
//!   batch; [`Faults`] drops a seeded share of them ("loss") and every
//!   datagram across a cut link ("partition").
//! - A partition holds the link's TCP segments (turmoil `hold`) and drops its
//!   datagrams: real TCP retransmits across a short outage and delivers once
//!   the link heals, real UDP does not. (turmoil's own `partition` drops TCP
//!   segments, which wedges a stream for ever, and its `fail_rate` breaks
//!   links for TCP and UDP alike.)
//! - Latency is a constant 1 ms, so datagrams stay in order (the session's
//!   128-frame replay window, profile §4.4, drops frames reordered further).
//! - A link may be given a capacity (datagrams per ms each way) behind a
//!   queue of `LINK_QUEUE`: a datagram waits its turn in the queue, and is
//!   lost when the queue is full. Only datagrams queue, so a stream message
//!   sent after them (a StoreEnd, an OfferEnd) can arrive first, as behind
//!   a router that queues each flow apart (fq_codel, Linux's default).
//!
//! Seeds fix turmoil's choices and the loss pattern. The nodes' own
//! randomness (instance ids, session keys) and rayon's threads are not
//! seeded, so runs are alike, not bit-identical.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::{connected_peers, payload};

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, UNIX_EPOCH};

use fcp_core::{ErrorCode, FcpError, ObjectId, ZoneId};
use fcp_node::daemon::{self, RunOptions};
use fcp_node::enroll;
use fcp_node::home::Home;
use fcp_node::net::{
    BoxFuture, BoxRead, BoxWrite, Datagrams, Listener, MAX_UDP_PAYLOAD, Net, Received, Stream,
    duration_ms,
};
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Simulated wall clock at the start (2027-01-15).
const EPOCH_SECS: u64 = 1_800_000_000;
/// Port every node listens on (TCP and UDP).
const PORT: u16 = 7401;

// ---------------------------------------------------------------------------
// The simulated transport.

/// Datagram faults shared by every host of one simulation.
#[derive(Debug, Default)]
struct Faults {
    /// Datagrams lost per 1000 sent.
    loss_permille: AtomicU32,
    /// SplitMix64 state of the loss pattern.
    rng: Mutex<u64>,
    /// Cut links (unordered pairs): every datagram across them is lost.
    cut: Mutex<HashSet<(IpAddr, IpAddr)>>,
    sent: AtomicU64,
    lost: AtomicU64,
    /// The next this many datagrams (any link) are each delivered twice, as
    /// an on-path replayer or a duplicating network would.
    replay: AtomicU64,
    /// Datagrams per ms each link carries each way (0: unlimited), and the
    /// queue in front of it: a datagram waits there for those before it,
    /// and what arrives when the queue is full is lost, as at a router in
    /// front of a slow link.
    capacity_per_ms: AtomicU32,
    /// By sending host and destination: when the link's queue is empty
    /// again (simulated time).
    busy_until: Mutex<HashMap<(IpAddr, IpAddr), Instant>>,
}

/// Datagrams a link with a capacity queues before it loses them.
const LINK_QUEUE: f64 = 128.0;

fn link(a: IpAddr, b: IpAddr) -> (IpAddr, IpAddr) {
    if a < b { (a, b) } else { (b, a) }
}

impl Faults {
    fn new(seed: u64) -> Arc<Self> {
        Arc::new(Self {
            rng: Mutex::new(seed),
            ..Self::default()
        })
    }

    fn next(&self) -> u64 {
        let mut s = self.rng.lock().unwrap();
        *s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// The datagram from `from` to `to`: `None` if it is lost, else how
    /// long it waits in the link's queue before it goes.
    fn admit(&self, from: IpAddr, to: IpAddr) -> Option<Duration> {
        self.sent.fetch_add(1, Ordering::Relaxed);
        let p = u64::from(self.loss_permille.load(Ordering::Relaxed));
        let lost =
            self.cut.lock().unwrap().contains(&link(from, to)) || (p > 0 && self.next() % 1000 < p);
        let delay = if lost { None } else { self.queue(from, to) };
        if delay.is_none() {
            self.lost.fetch_add(1, Ordering::Relaxed);
        }
        delay
    }

    /// The link from `from` to `to`, if it has a capacity: `None` if its
    /// queue has no room left; else the datagram takes its place and goes
    /// once those before it went. Only datagrams queue: a stream segment
    /// (a StoreEnd, an OfferEnd) can overtake them, as behind a router
    /// that queues each flow apart (fq_codel).
    fn queue(&self, from: IpAddr, to: IpAddr) -> Option<Duration> {
        let cap = self.capacity_per_ms.load(Ordering::Relaxed);
        if cap == 0 {
            return Some(Duration::ZERO);
        }
        let per = Duration::from_secs_f64(0.001 / f64::from(cap));
        let now = Instant::now();
        let mut busy = self.busy_until.lock().unwrap();
        let until = busy.entry((from, to)).or_insert(now);
        let queued = until.saturating_duration_since(now).as_secs_f64() / per.as_secs_f64();
        if queued >= LINK_QUEUE {
            return None;
        }
        *until = (*until).max(now) + per;
        Some(until.saturating_duration_since(now))
    }

    fn set_loss(&self, permille: u32) {
        self.loss_permille.store(permille, Ordering::Relaxed);
    }
}

/// Partition `a` from `b`: datagrams between them are lost, stream segments
/// wait for the link to heal (see the module docs).
fn cut(faults: &Faults, a: IpAddr, b: IpAddr) {
    faults.cut.lock().unwrap().insert(link(a, b));
    turmoil::hold(a, b);
}

fn heal(faults: &Faults, a: IpAddr, b: IpAddr) {
    faults.cut.lock().unwrap().remove(&link(a, b));
    turmoil::release(a, b);
}

/// Lose every datagram between `a` and `b` but keep their streams flowing:
/// sessions (and their keepalives) stay up while no symbol gets through.
fn drop_datagrams(faults: &Faults, a: IpAddr, b: IpAddr) {
    faults.cut.lock().unwrap().insert(link(a, b));
}

fn pass_datagrams(faults: &Faults, a: IpAddr, b: IpAddr) {
    faults.cut.lock().unwrap().remove(&link(a, b));
}

/// `net::Net` on turmoil's simulated network and clock.
struct SimNet {
    faults: Arc<Faults>,
    started: Instant,
}

impl Net for SimNet {
    fn bind_datagrams(&self, addr: SocketAddr) -> BoxFuture<'_, io::Result<Box<dyn Datagrams>>> {
        let faults = self.faults.clone();
        // turmoil binds the unspecified address only (the host has one).
        let any = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), addr.port());
        Box::pin(async move {
            let sock = turmoil::net::UdpSocket::bind(any).await?;
            Ok(Box::new(SimUdp {
                sock: Arc::new(sock),
                local: addr.ip(),
                faults,
                links: Mutex::new(HashMap::new()),
            }) as Box<dyn Datagrams>)
        })
    }

    fn listen(&self, addr: SocketAddr) -> BoxFuture<'_, io::Result<Box<dyn Listener>>> {
        let any = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), addr.port());
        Box::pin(async move {
            let l = turmoil::net::TcpListener::bind(any).await?;
            Ok(Box::new(SimListener(l)) as Box<dyn Listener>)
        })
    }

    fn connect(&self, addr: SocketAddr) -> BoxFuture<'_, io::Result<Box<dyn Stream>>> {
        Box::pin(async move {
            let s = turmoil::net::TcpStream::connect(addr).await?;
            Ok(Box::new(SimStream(s)) as Box<dyn Stream>)
        })
    }

    fn now_secs(&self) -> u64 {
        turmoil::since_epoch().map_or(EPOCH_SECS, |d| d.as_secs())
    }

    fn now_ms(&self) -> u64 {
        duration_ms(self.started.elapsed())
    }

    fn inline_cpu(&self) -> bool {
        // CPU work on the simulator's thread, in its order (see `net`).
        true
    }
}

struct SimUdp {
    sock: Arc<turmoil::net::UdpSocket>,
    local: IpAddr,
    faults: Arc<Faults>,
    /// Each capacity-limited link's queue: one task per destination sends
    /// its datagrams in order, each when it is due.
    links: Mutex<HashMap<SocketAddr, LinkQueue>>,
}

/// Datagrams queued on a link, each with when it goes.
type LinkQueue = mpsc::UnboundedSender<(Instant, Vec<u8>)>;

impl SimUdp {
    fn link_to(&self, to: SocketAddr) -> LinkQueue {
        let mut links = self.links.lock().unwrap();
        links
            .entry(to)
            .or_insert_with(|| {
                let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
                let (sock, faults) = (self.sock.clone(), self.faults.clone());
                tokio::spawn(async move {
                    while let Some((due, d)) = rx.recv().await {
                        tokio::time::sleep_until(due).await;
                        if send_datagram(&sock, &faults, &d, to).await.is_err() {
                            return;
                        }
                    }
                });
                tx
            })
            .clone()
    }
}

/// Send one datagram, twice if the replay fault says so.
async fn send_datagram(
    sock: &turmoil::net::UdpSocket,
    faults: &Faults,
    d: &[u8],
    to: SocketAddr,
) -> io::Result<()> {
    sock.send_to(d, to).await?;
    let twice = faults
        .replay
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_ok();
    if twice {
        sock.send_to(d, to).await?;
    }
    Ok(())
}

impl Datagrams for SimUdp {
    fn max_segments(&self) -> usize {
        64
    }

    fn send<'a>(
        &'a self,
        to: SocketAddr,
        batch: &'a [u8],
        seg: usize,
        count: usize,
    ) -> BoxFuture<'a, io::Result<()>> {
        Box::pin(async move {
            // As the kernel: one GSO send carries at most one UDP/IPv4
            // datagram's payload, or none of it goes (EMSGSIZE).
            if batch.len() > MAX_UDP_PAYLOAD {
                return Err(io::Error::from_raw_os_error(90));
            }
            let seg = if count > 1 {
                seg.max(1)
            } else {
                batch.len().max(1)
            };
            for d in batch.chunks(seg) {
                let Some(wait) = self.faults.admit(self.local, to.ip()) else {
                    continue;
                };
                if self.faults.capacity_per_ms.load(Ordering::Relaxed) > 0 {
                    // Into the link's queue, in order: it goes when its
                    // turn comes.
                    let due = Instant::now() + wait;
                    let _ = self.link_to(to).send((due, d.to_vec()));
                } else {
                    send_datagram(&self.sock, &self.faults, d, to).await?;
                }
            }
            Ok(())
        })
    }

    fn recv<'a>(&'a self, buf: &'a mut [u8]) -> BoxFuture<'a, io::Result<Received>> {
        Box::pin(async move {
            let (len, _) = self.sock.recv_from(buf).await?;
            Ok(Received { len, stride: len })
        })
    }
}

struct SimListener(turmoil::net::TcpListener);

impl Listener for SimListener {
    fn accept(&self) -> BoxFuture<'_, io::Result<Box<dyn Stream>>> {
        Box::pin(async move {
            let (s, _) = self.0.accept().await?;
            Ok(Box::new(SimStream(s)) as Box<dyn Stream>)
        })
    }
}

struct SimStream(turmoil::net::TcpStream);

impl AsyncRead for SimStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for SimStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

impl Stream for SimStream {
    fn into_split(self: Box<Self>) -> (BoxRead, BoxWrite) {
        let (r, w) = self.0.into_split();
        (Box::new(r), Box::new(w))
    }
}

// ---------------------------------------------------------------------------
// Nodes on simulated hosts, driven from the test's client.

enum Cmd {
    Put(ZoneId, Vec<u8>, oneshot::Sender<Result<ObjectId, FcpError>>),
    Get(ObjectId, oneshot::Sender<Result<Vec<u8>, FcpError>>),
    Status(oneshot::Sender<serde_json::Value>),
}

/// The test's side of one node.
#[derive(Clone)]
struct Remote {
    name: String,
    ip: IpAddr,
    tx: mpsc::UnboundedSender<Cmd>,
}

fn gone() -> FcpError {
    FcpError::new(ErrorCode::Internal, "the host went down")
}

impl Remote {
    async fn put(&self, zone: ZoneId, data: Vec<u8>) -> Result<ObjectId, FcpError> {
        let (tx, rx) = oneshot::channel();
        let _ = self.tx.send(Cmd::Put(zone, data, tx));
        rx.await.map_err(|_| gone())?
    }

    async fn get(&self, id: ObjectId) -> Result<Vec<u8>, FcpError> {
        let (tx, rx) = oneshot::channel();
        let _ = self.tx.send(Cmd::Get(id, tx));
        rx.await.map_err(|_| gone())?
    }

    /// Put `payload(SIZE, seed)` in z:private here and assert `to` rebuilds
    /// it byte for byte.
    async fn round_trip(&self, to: &Remote, seed: u64, what: &str) {
        let data = payload(SIZE, seed);
        let id = self.put(ZoneId::private(), data.clone()).await.unwrap();
        let got = to.get(id).await.unwrap();
        assert!(got == data, "{what}: {} rebuilt other bytes", to.name);
    }

    /// Put `data` in z:private here and measure it: how long it took, the
    /// datagrams this node sent and those lost on any link meanwhile, and
    /// the symbols placed (over all it wrote), with its status after.
    async fn measured_put(&self, faults: &Faults, data: Vec<u8>) -> PutCost {
        let before = self.counter("datagrams_out").await;
        let lost_before = faults.lost.load(Ordering::Relaxed);
        let t = Instant::now();
        let id = self.put(ZoneId::private(), data).await.unwrap();
        let took = t.elapsed();
        let status = self.status().await;
        PutCost {
            id,
            took,
            sent: status["counters"]["datagrams_out"].as_u64().unwrap() - before,
            lost: faults.lost.load(Ordering::Relaxed) - lost_before,
            placed: placed_symbols(&status),
            status,
        }
    }

    async fn status(&self) -> serde_json::Value {
        let (tx, rx) = oneshot::channel();
        let _ = self.tx.send(Cmd::Status(tx));
        rx.await.unwrap_or_default()
    }

    /// Node ids of the peers this node holds a session with.
    async fn connected(&self) -> Vec<String> {
        connected_peers(&self.status().await)
    }

    async fn counter(&self, name: &str) -> u64 {
        self.status().await["counters"][name].as_u64().unwrap_or(0)
    }

    /// StoreRequest slots (spec §8.4) this node holds for pushes to it.
    async fn store_slots(&self) -> u64 {
        self.status().await["admission"]["inflight"]["store_requests"]
            .as_u64()
            .unwrap()
    }
}

/// What [`Remote::measured_put`] measured.
struct PutCost {
    id: ObjectId,
    took: Duration,
    sent: u64,
    lost: u64,
    placed: u64,
    status: serde_json::Value,
}

/// Poll `f` every 100 ms of simulated time until it holds.
async fn wait_for<F, Fut>(what: &str, limit: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let t = Instant::now();
    while !f().await {
        assert!(t.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Crash or restart requests from the client, applied between steps.
#[derive(Clone, Copy, Debug)]
enum Action {
    Crash(usize),
    Bounce(usize),
}

type Actions = Arc<Mutex<Vec<Action>>>;

struct Mesh {
    sim: turmoil::Sim<'static>,
    nodes: Vec<Remote>,
    faults: Arc<Faults>,
    actions: Actions,
    _dir: tempfile::TempDir,
}

/// node-1: owner, every zone; node-2: z:work only (it holds z:private
/// ciphertext without the key); node-3: z:private. Enrolled with the library
/// API, each listening on its simulated address.
fn mesh(seed: u64) -> Mesh {
    mesh_with(seed, |_| {})
}

/// [`mesh`], with `prepare` run on the nodes' homes before they start.
fn mesh_with(seed: u64, prepare: impl FnOnce(&[PathBuf])) -> Mesh {
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .epoch(UNIX_EPOCH + Duration::from_secs(EPOCH_SECS))
        .simulation_duration(Duration::from_secs(600))
        .tick_duration(Duration::from_millis(1))
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(1))
        // A host's UDP receive queue, in datagrams (~8 MiB of symbols, as
        // the production socket buffer).
        .udp_capacity(8192)
        .tcp_capacity(4096)
        .build();
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults::new(seed);
    let mut rng = StdRng::seed_from_u64(seed);
    let names = ["n1", "n2", "n3"];
    let homes: Vec<PathBuf> = names.iter().map(|n| dir.path().join(n)).collect();
    let ips: Vec<IpAddr> = names.iter().map(|n| sim.lookup(*n)).collect();
    let enrolled_at = EPOCH_SECS - 60;
    let mut idents = Vec::new();
    for (i, h) in homes.iter().enumerate() {
        idents.push(
            enroll::init(
                &Home::at(h),
                &format!("node-{}", i + 1),
                &SocketAddr::new(ips[i], PORT).to_string(),
                enrolled_at,
                &mut rng,
            )
            .unwrap(),
        );
    }
    let owner = Home::at(&homes[0]);
    enroll::owner_init(&owner, enrolled_at, &mut rng).unwrap();
    for (i, zone) in [(1, ZoneId::work()), (2, ZoneId::private())] {
        let b = enroll::owner_enroll(&owner, &idents[i], &[zone], enrolled_at, &mut rng).unwrap();
        enroll::join(&Home::at(&homes[i]), &enroll::encode_bundle(&b).unwrap()).unwrap();
    }
    prepare(&homes);
    let mut nodes = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let (tx, rx) = mpsc::unbounded_channel::<Cmd>();
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let home = homes[i].clone();
        let f = faults.clone();
        sim.host(*name, move || {
            let home = home.clone();
            let faults = f.clone();
            let rx = rx.clone();
            async move {
                let net = Arc::new(SimNet {
                    faults,
                    started: Instant::now(),
                });
                // The real daemon, from its on-disk home and store.
                let node = daemon::start(Home::at(&home), RunOptions::default(), net).await?;
                let mut rx = rx.lock().await;
                while let Some(cmd) = rx.recv().await {
                    let node = node.clone();
                    tokio::spawn(async move {
                        match cmd {
                            Cmd::Put(zone, data, reply) => {
                                let _ = reply.send(node.put(zone, data).await);
                            }
                            Cmd::Get(id, reply) => {
                                let _ = reply.send(node.get(id).await);
                            }
                            Cmd::Status(reply) => {
                                let _ = reply.send(node.status());
                            }
                        }
                    });
                }
                Ok(())
            }
        });
        nodes.push(Remote {
            name: (*name).to_owned(),
            ip: ips[i],
            tx,
        });
    }
    Mesh {
        sim,
        nodes,
        faults,
        actions: Arc::new(Mutex::new(Vec::new())),
        _dir: dir,
    }
}

impl Mesh {
    /// Run `client` to completion, applying its crash/bounce requests.
    fn run<F, Fut>(mut self, client: F)
    where
        F: FnOnce(Vec<Remote>, Arc<Faults>, Actions) -> Fut,
        Fut: std::future::Future<Output = ()> + 'static,
    {
        let fut = client(
            self.nodes.clone(),
            self.faults.clone(),
            self.actions.clone(),
        );
        self.sim.client("test", async move {
            fut.await;
            Ok(())
        });
        let started = std::time::Instant::now();
        loop {
            let done = self.sim.step().unwrap();
            let todo: Vec<Action> = std::mem::take(&mut *self.actions.lock().unwrap());
            for a in todo {
                match a {
                    Action::Crash(i) => self.sim.crash(self.nodes[i].name.as_str()),
                    Action::Bounce(i) => self.sim.bounce(self.nodes[i].name.as_str()),
                }
            }
            if done {
                break;
            }
        }
        eprintln!(
            "simulated {:?} in {:?}; datagrams sent {}, lost {}",
            self.sim.elapsed(),
            started.elapsed(),
            self.faults.sent.load(Ordering::Relaxed),
            self.faults.lost.load(Ordering::Relaxed),
        );
    }
}

/// Ask for a crash or restart and let the simulation apply it.
async fn act(actions: &Actions, a: Action) {
    actions.lock().unwrap().push(a);
    tokio::time::sleep(Duration::from_millis(5)).await;
}

async fn all_connected(nodes: &[Remote]) {
    for n in nodes {
        wait_for(
            &format!("{} to reach its peers", n.name),
            Duration::from_secs(15),
            || async { n.connected().await.len() == nodes.len() - 1 },
        )
        .await;
    }
}

/// ~1 MiB: chunked (above the 256 KiB threshold, profile §4.1).
const SIZE: usize = (1 << 20) + 4321;

/// Symbols the writer must place on its peers: the sum of `mesh_coverage * k`
/// over the objects it wrote.
fn placed_symbols(status: &serde_json::Value) -> u64 {
    status["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| {
            let k = o["k"].as_f64()?;
            let cov = o["mesh_coverage"].as_f64()?;
            Some((k * cov).round() as u64)
        })
        .sum()
}

fn send_rates(status: &serde_json::Value) -> Vec<f64> {
    of_peers(status, "send_rate_per_ms")
}

/// Field `key` of each connected peer in a status.
fn of_peers(status: &serde_json::Value, key: &str) -> Vec<f64> {
    status["peers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p[key].as_f64())
        .collect()
}

// ---------------------------------------------------------------------------
// Scenarios.

/// A chunked put on node 1 is rebuilt byte for byte on node 3, once over a
/// clean network and once with 5% of datagrams lost.
#[test]
fn delivery_clean_and_lossy() {
    mesh(0x5eed_0001).run(|nodes, faults, _| async move {
        all_connected(&nodes).await;
        let (n1, n3) = (&nodes[0], &nodes[2]);
        n1.round_trip(n3, 1, "clean").await;
        // Every source symbol was to be had: no chunk needed a RaptorQ
        // solve (decision 60).
        assert_eq!(n3.counter("gets_solved").await, 0);
        // A clean put only raises the sender's rate (AIMD, no loss reported).
        let st = n1.status().await;
        assert!(
            send_rates(&st).iter().all(|r| *r > 64.0),
            "no loss, yet the rate did not grow: {:?}",
            send_rates(&st)
        );

        faults.set_loss(50);
        n1.round_trip(n3, 2, "lossy").await;
        assert!(faults.lost.load(Ordering::Relaxed) > 0, "nothing was lost");
        // Every serve, acked or not, leaves no state behind.
        for n in &nodes {
            wait_for("serves to end", Duration::from_secs(10), || async {
                n.counter("serves_active").await == 0
            })
            .await;
        }
    });
}

/// An object of a few hundred symbols (a payload up to the chunking
/// threshold is one object) sends each peer more datagrams than one GSO
/// send may carry: the batches must be cut to fit, or every full one is
/// refused by the socket and the push never completes.
#[test]
fn an_object_of_many_symbols_is_placed_whole() {
    mesh(0x5eed_0011).run(|nodes, _, _| async move {
        all_connected(&nodes).await;
        let (n1, n3) = (&nodes[0], &nodes[2]);
        let data = payload(250 << 10, 11);
        let id = n1.put(ZoneId::private(), data.clone()).await.unwrap();
        assert_eq!(n1.counter("datagrams_send_failed").await, 0);
        assert!(n3.get(id).await.unwrap() == data);
        for n in &nodes {
            assert_eq!(n.counter("datagrams_send_failed").await, 0, "{}", n.name);
        }
    });
}

/// Under 5% loss the sender's resend path and AIMD are exercised: holders
/// report missing symbols, the sender resends them and cuts its rate by
/// half the share lost, yet sends a bounded number of datagrams, and the
/// object still arrives.
#[test]
fn pacing_under_loss() {
    // The rates the same put leaves behind without loss.
    let clean = Arc::new(Mutex::new(Vec::new()));
    let rates_clean = clean.clone();
    mesh(0x5eed_0002).run(|nodes, _, _| async move {
        all_connected(&nodes).await;
        let id = nodes[0]
            .put(ZoneId::private(), payload(SIZE, 3))
            .await
            .unwrap();
        let _ = id;
        *rates_clean.lock().unwrap() = send_rates(&nodes[0].status().await);
    });
    let clean = clean.lock().unwrap().clone();
    mesh(0x5eed_0002).run(|nodes, faults, _| async move {
        all_connected(&nodes).await;
        let (n1, n2, n3) = (&nodes[0], &nodes[1], &nodes[2]);
        faults.set_loss(50);
        let data = payload(SIZE, 3);
        let PutCost {
            id,
            sent,
            placed: needed,
            status: st,
            ..
        } = n1.measured_put(&faults, data.clone()).await;
        let rates = send_rates(&st);
        eprintln!("put under loss: {sent} datagrams for {needed} placed symbols, rates {rates:?}");
        assert!(needed > 1024, "placed only {needed} symbols");
        // Every placed symbol went out once, the lost ones again.
        assert!(
            sent > needed,
            "no resends: {sent} datagrams for {needed} symbols"
        );
        assert!(
            sent < 3 * needed,
            "unbounded resending: {sent} datagrams for {needed} symbols"
        );
        // Holders stored exactly what was placed, no more.
        let stored = n2.counter("symbols_stored").await + n3.counter("symbols_stored").await;
        assert_eq!(stored, needed, "holders stored {stored} of {needed}");
        // Losses were reported and cut the rates: they end below a clean
        // put's, and the writer's rate to each holder was cut.
        assert_eq!(rates.len(), 2, "{st}");
        assert!(
            rates.iter().zip(&clean).all(|(r, c)| r < c),
            "AIMD did not back off: {rates:?} against {clean:?} without loss"
        );
        let cuts = of_peers(&st, "send_rate_cuts");
        assert!(
            cuts.len() == 2 && cuts.iter().all(|c| *c > 0.0),
            "no loss report cut the rate: {cuts:?}"
        );
        // A round that misses lost datagrams ends once the socket is found
        // empty, not after a fixed second (decision 72: ~20 ms, was ~1 s).
        let t = Instant::now();
        let got = n3.get(id).await.unwrap();
        let took = t.elapsed();
        assert!(got == data, "node 3 rebuilt other bytes");
        assert!(
            took < Duration::from_millis(500),
            "get under loss took {took:?}"
        );
    });
}

/// Over links that carry 16 datagrams per ms (about 19 MB/s) behind a
/// queue of 128, a writer paces what it sends to each peer at the rate its
/// losses allow, for all its pushes together: the put succeeds, and sends
/// a bounded number of datagrams. Before, each push paced only itself, so
/// the 65 objects' pushes together sent many times what the links carry,
/// every round of resends was lost again, and the put failed ("did not
/// take the symbols"). The get that follows shares the rate as well: each
/// serve used to keep its own clock, and a round whose offer was lost
/// waited a second (it took ~6 s).
#[test]
fn slow_links_are_paced_not_flooded() {
    mesh(0x5eed_0013).run(|nodes, faults, _| async move {
        all_connected(&nodes).await;
        let (n1, n3) = (&nodes[0], &nodes[2]);
        faults.capacity_per_ms.store(16, Ordering::Relaxed);
        let data = payload(4 << 20, 14);
        let PutCost {
            id,
            took,
            sent,
            lost,
            placed: needed,
            status: st,
        } = n1.measured_put(&faults, data.clone()).await;
        eprintln!(
            "put over slow links in {took:?}: {sent} datagrams ({lost} lost) for {needed} placed symbols, rates {:?}",
            send_rates(&st)
        );
        // A queue on the path bounds the windows by what it delivers, and
        // congestion brings the rate down to that in one cut (decision 78):
        // 522 of 4880 sent were lost; halving alone lost 1174 of 5532.
        assert!(
            lost * 8 < sent,
            "{lost} of {sent} datagrams lost: the start overran the links"
        );
        // The get shares the links' rate too, and ends its rounds as soon
        // as what is missing is known lost (decision 72): well within a
        // second for ~60 ms of link time (it took ~6 s before).
        let (n1_before, n2_before) = (
            n1.counter("datagrams_out").await,
            nodes[1].counter("datagrams_out").await,
        );
        let lost_before = faults.lost.load(Ordering::Relaxed);
        let t = Instant::now();
        assert!(n3.get(id).await.unwrap() == data);
        let took = t.elapsed();
        let by_writer = n1.counter("datagrams_out").await - n1_before;
        let by_holder = nodes[1].counter("datagrams_out").await - n2_before;
        let served = by_writer + by_holder;
        let get_lost = faults.lost.load(Ordering::Relaxed) - lost_before;
        eprintln!(
            "get over slow links in {took:?}: {served} datagrams served ({by_writer} by the writer), {get_lost} lost, paces {:?}",
            of_peers(&n3.status().await, "recv_pace_per_ms")
        );
        assert!(took < Duration::from_secs(1), "get took {took:?}");
        // Over slow paths the first round asks every peer for a share, so
        // the writer's repair symbols come over its link too (decision 77:
        // 407 of 2821 served by the writer, in 148 ms, when only losses
        // were asked of it; 1160 of 3132, in 134 ms, with decision 77;
        // 1097 of 3027, in 111 ms, with decision 78).
        assert!(
            by_writer * 4 > served,
            "the writer served {by_writer} of {served}: the get used one link"
        );
        // Serves are windowed as pushes are, until the requester reports
        // on them (decision 76): the first burst no longer floods the link
        // (762 of 3250 served were lost, 23 %, in 270 ms; 391 of 3132 in
        // 134 ms with decision 76; 262 of 3027 in 111 ms with decision 78).
        assert!(
            get_lost * 5 < served,
            "{get_lost} of {served} datagrams served were lost: the link was flooded"
        );
        // The first datagrams go out at the starting rate, 4 times what the
        // links carry, before any loss is reported; then the holders answer
        // as soon as their socket is empty and the pushes in flight are
        // bounded by the window, so the rate comes down within a few round
        // trips (decision 74; before, 2.1 datagrams were sent per symbol).
        // The window follows the least round trip, not one that includes
        // the links' queue (decision 75; 1.47 per symbol before, 1.58 with
        // the smoothed round trip once holders wait for a round's last
        // datagram).
        assert!(
            sent < needed * 7 / 5,
            "{sent} datagrams for {needed} symbols: the links were flooded"
        );
        // Holders answer once a round's last datagram is in, so (almost)
        // none that arrived is sent again (decision 75; 582 were before).
        let again = sent.saturating_sub(lost).saturating_sub(needed);
        assert!(
            again <= needed / 100,
            "{again} datagrams that arrived were sent again"
        );
        // And the rates came down to near what the links carry.
        assert!(
            send_rates(&st).iter().all(|r| (8.0..32.0).contains(r)),
            "the rates did not settle near the links' 16 per ms: {:?}",
            send_rates(&st)
        );
        // Node 2 never pushed: only node 3's reports on its serves cut its
        // rate (from the starting 64 per ms; it may have grown back since).
        let st2 = nodes[1].status().await;
        let cuts = of_peers(&st2, "send_rate_cuts");
        eprintln!(
            "node 2's rates after serving: {:?}, cuts {cuts:?}",
            send_rates(&st2)
        );
        assert!(
            cuts.iter().any(|c| *c > 0.0),
            "node 3's reports never cut node 2's rate: {cuts:?}"
        );
    });
}

/// A get on a node cut off from every holder fails with ObjectNotFound
/// within its timeout; once the links heal, the same get succeeds.
#[test]
fn partition_fails_then_heals() {
    mesh(0x5eed_0003).run(|nodes, faults, _| async move {
        all_connected(&nodes).await;
        let (n1, n2, n3) = (&nodes[0], &nodes[1], &nodes[2]);
        let data = payload(300 * 1024, 4);
        let id = n1.put(ZoneId::private(), data.clone()).await.unwrap();
        cut(&faults, n3.ip, n1.ip);
        cut(&faults, n3.ip, n2.ip);
        let t = Instant::now();
        let e = n3.get(id).await.unwrap_err();
        let took = t.elapsed();
        assert_eq!(e.error_code(), Some(ErrorCode::ObjectNotFound), "{e}");
        // Within GET_TIMEOUT (20 s), not after it.
        eprintln!("get across a full partition failed after {took:?}");
        assert!(took <= Duration::from_secs(21), "answered after {took:?}");
        heal(&faults, n3.ip, n1.ip);
        heal(&faults, n3.ip, n2.ip);
        let got = n3.get(id).await.unwrap();
        assert!(got == data, "node 3 rebuilt other bytes");
    });
}

/// The writer dies after its put and a holder restarts: the holder reopens
/// its store, redials, shows as connected again and serves its symbols, so
/// node 3 rebuilds the object without the writer.
#[test]
fn rejoin_after_crash_and_restart() {
    mesh(0x5eed_0004).run(|nodes, _, actions| async move {
        all_connected(&nodes).await;
        let (n1, n2, n3) = (&nodes[0], &nodes[1], &nodes[2]);
        let data = payload(SIZE, 5);
        let id = n1.put(ZoneId::private(), data.clone()).await.unwrap();
        act(&actions, Action::Crash(0)).await;
        act(&actions, Action::Bounce(1)).await;
        wait_for(
            "node 3 to see node 1 gone",
            Duration::from_secs(5),
            || async { !n3.connected().await.contains(&"node-1".to_owned()) },
        )
        .await;
        wait_for(
            "node 2 and node 3 to reconnect",
            Duration::from_secs(15),
            || async { n3.connected().await == ["node-2"] && n2.connected().await == ["node-3"] },
        )
        .await;
        // The restarted holder still has its symbols on disk.
        let st = n2.status().await;
        let held: u64 = st["objects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["symbols_here"].as_u64().unwrap_or(0))
            .sum();
        assert!(held > 0, "node 2 lost its store: {st}");
        let got = n3.get(id).await.unwrap();
        assert!(got == data, "node 3 rebuilt other bytes");
        // Node 2 served symbols after its restart.
        assert!(n2.counter("datagrams_out").await > 0);
    });
}

/// A holder, not the writer, crashes after the put: the writer's share
/// (decision 61) and node 3's own symbols still rebuild every
/// chunk, with repair symbols and the RaptorQ solver.
#[test]
fn holder_lost_after_put_writer_margin_rebuilds() {
    mesh(0x5eed_0008).run(|nodes, _, actions| async move {
        all_connected(&nodes).await;
        let (n1, n3) = (&nodes[0], &nodes[2]);
        let data = payload(SIZE, 9);
        let id = n1.put(ZoneId::private(), data.clone()).await.unwrap();
        act(&actions, Action::Crash(1)).await;
        wait_for(
            "node 3 to see node 2 gone",
            Duration::from_secs(20),
            || async { !n3.connected().await.contains(&"node-2".to_owned()) },
        )
        .await;
        let got = n3.get(id).await.unwrap();
        assert!(got == data, "node 3 rebuilt other bytes");
        assert!(
            n3.counter("gets_solved").await > 0,
            "without node 2's source symbols some chunk needs a solve"
        );
    });
}

/// The writer keeps only repair symbols of what it placed (decision 61).
/// With both holders gone, its get has only those to solve from (for an
/// object this small they hold k symbols, so it rebuilds it); it must not
/// hang. A review found the solve held the get's metadata lock while it
/// opened the first symbol, which takes that lock again: a deadlock that
/// also parked every later get of the object.
#[test]
fn a_get_from_repair_symbols_alone_ends() {
    mesh(0x5eed_0014).run(|nodes, faults, _| async move {
        all_connected(&nodes).await;
        let (n1, n2, n3) = (&nodes[0], &nodes[1], &nodes[2]);
        let data = payload(100, 15);
        let id = n1.put(ZoneId::private(), data.clone()).await.unwrap();
        for n in [n2, n3] {
            cut(&faults, n1.ip, n.ip);
        }
        wait_for(
            "node 1 to see its peers gone",
            Duration::from_secs(30),
            || async { n1.connected().await.is_empty() },
        )
        .await;
        let got = tokio::time::timeout(Duration::from_secs(60), n1.get(id))
            .await
            .expect("the get hung")
            .unwrap();
        assert!(got == data);
        assert!(
            n1.counter("gets_solved").await > 0,
            "rebuilt from repair symbols"
        );
    });
}

/// Node 1 (the writer) is cut off from node 3 after its put. Node 3's
/// session with it still looks up (TCP notices nothing, and the keepalive
/// closes it only after 15 s of silence, decision 59), yet node 3 rebuilds the object from its own symbols and node
/// 2's, well before the get's 20 s timeout.
#[test]
fn partition_from_writer_get_from_other_holders() {
    mesh(0x5eed_0005).run(|nodes, faults, _| async move {
        all_connected(&nodes).await;
        let (n1, n3) = (&nodes[0], &nodes[2]);
        let data = payload(SIZE, 6);
        let id = n1.put(ZoneId::private(), data.clone()).await.unwrap();
        cut(&faults, n1.ip, n3.ip);
        let t = Instant::now();
        let got = n3.get(id).await.unwrap();
        let took = t.elapsed();
        assert!(got == data, "node 3 rebuilt other bytes");
        assert!(
            n3.connected().await.contains(&"node-1".to_owned()),
            "the cut session was noticed after all"
        );
        eprintln!("get across a partition took {took:?}");
        assert!(took < Duration::from_secs(10), "get took {took:?}");
        // The peers hold every source symbol (decision 61): no chunk needed
        // a RaptorQ solve without the writer.
        assert_eq!(n3.counter("gets_solved").await, 0);
    });
}

/// Node 3 is cut off (TCP held, datagrams lost: nothing tells TCP the link
/// is gone). Keepalive (decision 59): after 15 s without a byte from it, its
/// peers close their sessions and show it disconnected (and it them), while
/// the idle session between nodes 1 and 2 stays up on Pings. A put then
/// fails at once for want of peers instead of waiting on the silent one.
/// Once the links heal, the dial loops reconnect and a put and get work.
#[test]
fn keepalive_closes_silent_sessions_and_they_reconnect() {
    mesh(0x5eed_0006).run(|nodes, faults, _| async move {
        all_connected(&nodes).await;
        let (n1, n2, n3) = (&nodes[0], &nodes[1], &nodes[2]);
        // Idle for a while first: Pings alone keep the sessions.
        tokio::time::sleep(Duration::from_secs(30)).await;
        for n in &nodes {
            assert_eq!(n.connected().await.len(), 2, "{} lost a live peer", n.name);
            assert_eq!(n.counter("keepalive_timeouts").await, 0);
            assert!(n.counter("pings_sent").await > 0, "{} never pinged", n.name);
        }
        cut(&faults, n3.ip, n1.ip);
        cut(&faults, n3.ip, n2.ip);
        let t = Instant::now();
        let three = "node-3".to_owned();
        // The last byte came at most one Ping interval (5 s) before the cut,
        // so nothing may close before 10 s.
        tokio::time::sleep(Duration::from_secs(9)).await;
        assert!(n1.connected().await.contains(&three), "closed too early");
        wait_for(
            "node 1 and node 2 to drop node 3",
            Duration::from_secs(7),
            || async {
                !n1.connected().await.contains(&three) && !n2.connected().await.contains(&three)
            },
        )
        .await;
        wait_for("node 3 to drop both", Duration::from_secs(1), || async {
            n3.connected().await.is_empty()
        })
        .await;
        let took = t.elapsed();
        eprintln!("silent peer dropped {took:?} after the cut");
        assert!(took <= Duration::from_secs(16), "dropped after {took:?}");
        for n in &nodes {
            assert!(
                n.counter("keepalive_timeouts").await > 0,
                "{}: no keepalive timeout counted",
                n.name
            );
        }
        let st = n1.status().await;
        let p3 = st["peers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["node_id"] == "node-3")
            .unwrap();
        assert_eq!(p3["connected"], false, "{p3}");
        // Nodes 1 and 2 still hold their session.
        assert_eq!(n1.connected().await, ["node-2"]);
        assert_eq!(n2.connected().await, ["node-1"]);
        // No 5 s wait per object on a dead session: one peer is too few
        // for placement (min_nodes 2), and the put says so at once.
        let t = Instant::now();
        let e = n1
            .put(ZoneId::private(), payload(SIZE, 9))
            .await
            .unwrap_err();
        eprintln!("put with node 3 gone: {e}");
        assert!(t.elapsed() < Duration::from_secs(1), "put waited");

        heal(&faults, n3.ip, n1.ip);
        heal(&faults, n3.ip, n2.ip);
        let t = Instant::now();
        all_connected(&nodes).await;
        eprintln!("reconnected {:?} after the heal", t.elapsed());
        n1.round_trip(n3, 10, "after the heal").await;
    });
}

/// A put that fails leaves its pushes open on the holders (their pusher
/// gave up on them) and, with more objects than a holder admits at once,
/// takes every StoreRequest slot the holder has for the writer. The next
/// put must not fail on that until the pushes expire (60 s): the holder
/// frees pushes idle for `PUSH_IDLE_MS` (10 s) when a slot is needed, and
/// the writer asks again meanwhile.
#[test]
fn a_failed_put_does_not_lock_out_the_next_one() {
    mesh(0x5eed_0012).run(|nodes, faults, _| async move {
        all_connected(&nodes).await;
        let (n1, n3) = (&nodes[0], &nodes[2]);
        drop_datagrams(&faults, n1.ip, n3.ip);
        // 144 chunks: more than the 128 slots a holder has per peer.
        let t0 = Instant::now();
        let e = n1
            .put(ZoneId::private(), payload(9 << 20, 12))
            .await
            .unwrap_err();
        let failed_after = t0.elapsed();
        // Its other pushes give up too (each after its rounds).
        tokio::time::sleep(Duration::from_secs(3)).await;
        pass_datagrams(&faults, n1.ip, n3.ip);
        let held = n3.store_slots().await;
        eprintln!(
            "put without datagrams to node 3 failed ({e}) after {failed_after:?}; it keeps {held} slots"
        );
        // A path that delivers nothing ends the put after 3 s of silence
        // (decision 81): at the lowest rate, its rounds shared by every
        // push to node 3, it took 13.7 s before.
        assert!(
            failed_after < Duration::from_secs(6),
            "failed after {failed_after:?}"
        );
        assert_eq!(held, 128, "the failed put did not take every slot");
        let t = Instant::now();
        let data = payload(SIZE, 13);
        let id = n1.put(ZoneId::private(), data.clone()).await.unwrap();
        eprintln!("the next put took {:?}", t.elapsed());
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "waited for the expiry"
        );
        assert!(n3.get(id).await.unwrap() == data);
    });
}

/// A writer whose datagrams are all lost (its sessions stay up) has its
/// pushes admitted by the holders, which never get the symbols; the put
/// gives up and abandons them. The holders keep the StoreRequest slots
/// (spec §8.4) while the writer might still finish, then drop the pushes
/// after `PUSH_EXPIRY_MS` (60 s, decisions 51/56) and give the slots back
/// without any session closing. A restarted writer then puts and node 3
/// gets the object.
#[test]
fn abandoned_pushes_expire_and_free_their_slots() {
    mesh(0x5eed_0007).run(|nodes, faults, actions| async move {
        all_connected(&nodes).await;
        let (n1, n2, n3) = (&nodes[0], &nodes[1], &nodes[2]);
        let holders = || async { n2.store_slots().await + n3.store_slots().await };
        drop_datagrams(&faults, n1.ip, n2.ip);
        drop_datagrams(&faults, n1.ip, n3.ip);
        let e = n1
            .put(ZoneId::private(), payload(SIZE, 7))
            .await
            .unwrap_err();
        let t0 = Instant::now();
        let held = holders().await;
        eprintln!("put without datagrams failed ({e}); holders keep {held} slots");
        assert!(held > 0, "no push was admitted");
        let finished = |n: &Remote| {
            let n = n.clone();
            async move {
                n.status().await["admission"]["counters"]["inflight_finished"]
                    .as_u64()
                    .unwrap()
            }
        };
        let finished_before = finished(n2).await + finished(n3).await;
        // Within the expiry the slots stay taken, and the sessions up.
        tokio::time::sleep(Duration::from_secs(50)).await;
        assert_eq!(holders().await, held, "slots came back before the expiry");
        for n in &nodes {
            assert_eq!(n.connected().await.len(), 2, "{} lost a session", n.name);
        }
        wait_for(
            "the abandoned pushes to expire",
            Duration::from_secs(20),
            || async { holders().await == 0 },
        )
        .await;
        let took = t0.elapsed();
        eprintln!("abandoned pushes released {took:?} after the put failed");
        assert!(took >= Duration::from_secs(59), "released after {took:?}");
        // Given back one by one (not forgotten with a closed session).
        assert_eq!(
            finished(n2).await + finished(n3).await - finished_before,
            held
        );
        for n in &nodes {
            assert_eq!(n.connected().await.len(), 2, "{} lost a session", n.name);
            assert_eq!(n.counter("keepalive_timeouts").await, 0);
        }

        pass_datagrams(&faults, n1.ip, n2.ip);
        pass_datagrams(&faults, n1.ip, n3.ip);
        act(&actions, Action::Bounce(0)).await;
        all_connected(&nodes).await;
        n1.round_trip(n3, 8, "after the restart").await;
        assert_eq!(holders().await, 0, "a completed push kept its slot");
    });
}

/// A payload whose chunks repeat (a file with zero-filled or copied
/// regions) has fewer distinct chunk objects than chunks: each is placed
/// once, and the get rebuilds every position from it.
#[test]
fn repeated_chunks_are_placed_once() {
    mesh(0x5eed_000c).run(|nodes, _, _| async move {
        all_connected(&nodes).await;
        let (n1, n3) = (&nodes[0], &nodes[2]);
        let (a, b) = (payload(64 << 10, 21), vec![0u8; 64 << 10]);
        let mut data = Vec::new();
        // Repeats close together (one get window) and, after 30 other
        // chunks, farther apart than a window.
        for part in [&a, &b, &a, &b, &b] {
            data.extend_from_slice(part);
        }
        for seed in 0..30 {
            data.extend_from_slice(&payload(64 << 10, 100 + seed));
        }
        data.extend_from_slice(&a);
        data.extend_from_slice(&a[..1000]);
        let id = n1.put(ZoneId::private(), data.clone()).await.unwrap();
        let got = n3.get(id).await.unwrap();
        assert!(got == data, "node 3 rebuilt other bytes");
    });
}

/// A holder whose z:private quota is full refuses the pushes: the put
/// fails at once with the holder's quota error (not after the pusher's
/// rounds of timeouts), the refusals are counted, and nothing was stored
/// there.
#[test]
fn a_refused_push_fails_the_put_at_once_with_the_reason() {
    let quota = |homes: &[PathBuf]| {
        let s = fcp_store::Store::open(homes[2].join("store.redb")).unwrap();
        s.set_quota(&ZoneId::private(), 1).unwrap();
    };
    mesh_with(0x5eed_000e, quota).run(|nodes, _, _| async move {
        all_connected(&nodes).await;
        let (n1, n3) = (&nodes[0], &nodes[2]);
        let t = Instant::now();
        let e = n1
            .put(ZoneId::private(), payload(SIZE, 41))
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::QuotaExceeded.as_code(), "{e:?}");
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "the put waited {:?} for a refusal",
            t.elapsed()
        );
        assert!(n3.counter("stores_refused").await >= 1);
        assert_eq!(n3.counter("symbols_stored").await, 0);
    });
}

/// Replayed datagrams (captured by anyone on the path, or duplicated by the
/// network) are dropped by the replay window but not charged as failed
/// authentication: before, 101 of them in a minute put the genuine peer over
/// its failed-auth budget and its pushes were refused.
#[test]
fn replayed_datagrams_do_not_lock_out_their_peer() {
    mesh(0x5eed_000f).run(|nodes, faults, _| async move {
        all_connected(&nodes).await;
        let (n1, n2, n3) = (&nodes[0], &nodes[1], &nodes[2]);
        faults.replay.store(400, Ordering::Relaxed);
        let data = payload(SIZE, 43);
        let id = n1.put(ZoneId::private(), data.clone()).await.unwrap();
        assert_eq!(faults.replay.load(Ordering::Relaxed), 0, "all replays sent");
        assert_eq!(n2.counter("datagrams_rejected_budget").await, 0);
        assert_eq!(n3.counter("datagrams_rejected_budget").await, 0);
        assert!(n3.get(id).await.unwrap() == data);
    });
}

/// Two puts of the same bytes at once on one node, then two gets of the
/// object at once on another: each asks about the same objects of the same
/// peers at the same time, and each succeeds.
#[test]
fn concurrent_puts_and_gets_of_one_object() {
    mesh(0x5eed_000d).run(|nodes, _, _| async move {
        all_connected(&nodes).await;
        let (n1, n3) = (&nodes[0], &nodes[2]);
        let data = payload(SIZE, 31);
        let (a, b) = tokio::join!(
            n1.put(ZoneId::private(), data.clone()),
            n1.put(ZoneId::private(), data.clone())
        );
        let id = a.unwrap();
        assert_eq!(b.unwrap(), id, "the same bytes are the same object");
        let (x, y) = tokio::join!(n3.get(id), n3.get(id));
        assert!(x.unwrap() == data, "first get rebuilt other bytes");
        assert!(y.unwrap() == data, "second get rebuilt other bytes");
    });
}

/// Random loss on a link that is not congested (1% here, a lossy wireless
/// hop) does not drive the rates to their floor: a cut takes half the
/// share lost, not half the rate (decision 73). With halving, node 2's
/// rate ended at the floor (4 per ms) and a 16 MiB get took ~1.5 s.
#[test]
fn random_loss_does_not_floor_the_rate() {
    mesh(0x5eed_0014).run(|nodes, faults, _| async move {
        all_connected(&nodes).await;
        let (n1, n3) = (&nodes[0], &nodes[2]);
        faults.set_loss(10);
        let data = payload(4 << 20, 15);
        let id = n1.put(ZoneId::private(), data.clone()).await.unwrap();
        let t = Instant::now();
        assert!(n3.get(id).await.unwrap() == data);
        let took = t.elapsed();
        let writer = send_rates(&n1.status().await);
        let holder = send_rates(&nodes[1].status().await);
        eprintln!("get under 1% loss in {took:?}; rates: writer {writer:?}, holder {holder:?}");
        assert!(faults.lost.load(Ordering::Relaxed) > 0, "nothing was lost");
        // Node 2 only served node 3: its rate moved by the reports alone.
        assert!(
            writer.iter().chain(&holder).all(|r| *r >= 32.0),
            "a rate fell to the floor: writer {writer:?}, holder {holder:?}"
        );
        assert!(took < Duration::from_millis(500), "get took {took:?}");
    });
}

/// Random loss on a link that is not congested (5 % of datagrams, no
/// capacity limit) neither ends slow start nor drags the rate down: losses
/// are summed over a round trip's reports and cut the rate once by half
/// that share, and only a window that lost over an eighth halves it
/// (decision 74). Before, each report cut on its own, or its worst share
/// cut for all: an 8 MiB put took 177 ms with the rates at 17–43 per ms,
/// and with the pushes in flight bounded, 694 ms at the floor.
#[test]
fn random_loss_keeps_the_rate_up() {
    mesh(0x5eed_0099).run(|nodes, faults, _| async move {
        all_connected(&nodes).await;
        let (n1, n3) = (&nodes[0], &nodes[2]);
        faults.set_loss(50);
        let data = payload(8 << 20, 21);
        let t = Instant::now();
        let id = n1.put(ZoneId::private(), data.clone()).await.unwrap();
        let took = t.elapsed();
        let rates = send_rates(&n1.status().await);
        eprintln!("8 MiB put under 5% loss in {took:?}, rates {rates:?}");
        assert!(
            rates.iter().all(|r| *r > 2.0 * 64.0),
            "random loss held the rates down: {rates:?}"
        );
        assert!(took < Duration::from_millis(150), "put took {took:?}");
        let t = Instant::now();
        assert!(n3.get(id).await.unwrap() == data);
        let took = t.elapsed();
        eprintln!("get in {took:?}");
        assert!(took < Duration::from_millis(300), "get took {took:?}");
    });
}

/// A holder answers a push's StoreEnd only once none of the push's
/// datagrams came for `REORDER`, not 5 ms after its socket was first found
/// empty: over a slow link the StoreEnd (on its own TCP flow) arrives long
/// before the datagrams queued ahead of it, which trickle in between
/// moments of an empty socket. Answering early would name them missing and
/// have them sent twice (decision 74, found by review).
#[test]
fn a_holder_waits_for_datagrams_still_arriving() {
    mesh(0x5eed_0021).run(|nodes, faults, _| async move {
        all_connected(&nodes).await;
        let n1 = &nodes[0];
        // 2 datagrams per ms: one push's ~34 datagrams take ~17 ms.
        faults.capacity_per_ms.store(2, Ordering::Relaxed);
        let PutCost {
            sent, lost, placed, ..
        } = n1.measured_put(&faults, payload(60 << 10, 22)).await;
        eprintln!("one object over 2/ms links: {sent} sent, {lost} lost, {placed} placed");
        assert_eq!(
            sent - lost,
            placed,
            "datagrams that arrived were sent again"
        );
    });
}

/// A put over links that lose half the datagrams completes: its rounds go
/// on while each brings in at least an eighth of what is missing, and a
/// stalled round of a few symbols counts for a fraction of one (decision
/// 79). Before, a push gave up after 8 rounds: an object's last few symbols
/// each had a half chance per round, and the put failed with FCP-6001.
#[test]
fn a_put_over_a_link_losing_half_its_datagrams_completes() {
    mesh(0x5eed_2001).run(|nodes, faults, _| async move {
        all_connected(&nodes).await;
        let (n1, n3) = (&nodes[0], &nodes[2]);
        faults.set_loss(500);
        let data = payload(1 << 20, 31);
        let t = Instant::now();
        let id = n1.put(ZoneId::private(), data.clone()).await.unwrap();
        eprintln!("put under 50 % loss in {:?}", t.elapsed());
        faults.set_loss(0);
        assert!(n3.get(id).await.unwrap() == data);
    });
}

/// Over links of 1 datagram per ms (~10 Mbit/s, a slow uplink) with a
/// queue of 128, a put and a get complete near the links' capacity.
/// Datagrams queue for up to 128 ms: a holder waits for a round's named
/// last datagram while the pusher's keep coming, and a requester for a
/// serve's (decision 80). Before, holders answered after 40 ms and the
/// queued datagrams were sent again (this put sent 4.4 datagrams per
/// symbol, in 2.6 times the links' time), and requesters ended a round 5 ms
/// after a serve's datagrams paused behind another's (this get failed:
/// "35 of 65 symbols after 6 rounds").
#[test]
fn a_put_and_get_over_10_mbit_links_complete() {
    mesh(0x5eed_0101).run(|nodes, faults, _| async move {
        all_connected(&nodes).await;
        let (n1, n3) = (&nodes[0], &nodes[2]);
        faults.capacity_per_ms.store(1, Ordering::Relaxed);
        let data = payload(8 << 20, 41);
        let PutCost {
            id,
            took,
            sent,
            lost,
            placed,
            ..
        } = n1.measured_put(&faults, data.clone()).await;
        eprintln!(
            "put over 1/ms links in {took:?}: {sent} datagrams ({lost} lost) for {placed} placed"
        );
        // Each link carries half of what is placed, 1 a ms.
        let link = Duration::from_millis(placed / 2);
        assert!(
            took < link * 5 / 4,
            "put took {took:?} for {link:?} of link time"
        );
        assert!(
            sent < placed * 3 / 2,
            "{sent} datagrams for {placed} symbols"
        );
        // The windows grow by what the links delivered (decision 81): 294 of
        // 9010 were lost, in the first burst; sized by the starting rate
        // times the first (queued) round trips, 1826 of 10 542.
        assert!(lost * 10 < sent, "{lost} of {sent} datagrams lost");
        let lost_before = faults.lost.load(Ordering::Relaxed);
        let t = Instant::now();
        let got = n3.get(id).await;
        let took = t.elapsed();
        eprintln!(
            "get over 1/ms links in {took:?}, {} lost",
            faults.lost.load(Ordering::Relaxed) - lost_before
        );
        assert!(got.unwrap() == data);
        // Node 3 lacks ~3970 symbols, ~2 s over the two links. Asking each
        // peer for its share of what is still needed, not a quarter more
        // (decision 82): 2.57 s; with the margin, 2.98 s.
        assert!(took < Duration::from_millis(2800), "get took {took:?}");
    });
}

/// A get over links losing 60 % of the datagrams completes: its rounds go
/// on while each brings in at least an eighth of the symbols still needed,
/// as a push's do (decision 80). A get gave up after 6 rounds; once a round
/// ends as soon as the serves' named last datagrams are in, not 5 ms
/// later, that failed at this loss: a chunk's last symbol or two each had
/// a 40 % chance a round ("64 of 65 symbols after 6 rounds").
#[test]
fn a_get_over_links_losing_most_datagrams_completes() {
    mesh(0x5eed_2002).run(|nodes, faults, _| async move {
        all_connected(&nodes).await;
        let (n1, n3) = (&nodes[0], &nodes[2]);
        let data = payload(1 << 20, 31);
        let id = n1.put(ZoneId::private(), data.clone()).await.unwrap();
        faults.set_loss(600);
        let t = Instant::now();
        let g = n3.get(id).await;
        eprintln!("get under 60 % loss in {:?}", t.elapsed());
        assert!(g.unwrap() == data);
    });
}
