//! The daemon's seam to the outside world: datagrams, streams and clocks.
//!
//! The daemon (`crate::daemon`) does all its network I/O and reads all its
//! wall-clock time through [`Net`], so the same node code runs on real
//! sockets ([`SystemNet`], used by `fcp node run`) or on a simulated network
//! (the turmoil transport of `tests/sim.rs`, ARCHITECTURE "Deterministic
//! multi-node simulation").
//!
//! - Datagrams (spec §4.2 data plane): a batch of equal-sized segments to one
//!   address per send, as UDP GSO sends it; a receive returns one run of
//!   equal-sized datagrams, as UDP GRO returns it.
//! - Streams (FCPC control plane, profile §4.3): TCP-like, reliable and
//!   ordered, used as `AsyncRead + AsyncWrite` and split into halves.
//! - Clock: unix seconds (timestamps, attestations, handshakes) and a
//!   monotonic millisecond clock (admission budgets, spec §8.4).
//! - CPU work: whether the daemon may move it to tokio's blocking pool
//!   (production: sealing, decoding and store transactions stay off the
//!   datagram loop's core). A simulation runs it inline on the host's task
//!   ([`Net::inline_cpu`]): every host then runs on the simulator's one
//!   thread, in the simulator's order, and simulated time cannot move while a
//!   host is busy (tokio's paused clock also holds still while a blocking task
//!   is in flight, but inline work does not rely on that).
//!
//! Dispatch is dynamic: one boxed future per datagram batch (up to 64
//! datagrams) or per stream operation, which is negligible next to the system
//! call it wraps.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
/// The reading half of a stream.
pub type BoxRead = Box<dyn AsyncRead + Send + Unpin>;
/// The writing half of a stream.
pub type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// A reliable, ordered byte stream to a peer (TCP in production).
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin {
    /// Split into independently owned reading and writing halves.
    fn into_split(self: Box<Self>) -> (BoxRead, BoxWrite);
}

/// The most bytes one UDP send may carry over IPv4 (65 535 − 20 − 8): the
/// bound of a [`Datagrams::send`] batch, whatever its number of segments
/// (the kernel refuses a larger one whole, EMSGSIZE).
pub const MAX_UDP_PAYLOAD: usize = 65_507;

/// A bound datagram socket (UDP in production).
pub trait Datagrams: Send + Sync {
    /// Most segments one [`Datagrams::send`] carries (at least 1).
    fn max_segments(&self) -> usize;

    /// Send `count` datagrams of `seg` bytes each (the last may be shorter),
    /// laid end to end in `batch`, to `to`, at most [`MAX_UDP_PAYLOAD`]
    /// bytes. With `count == 1`, `batch` is the one datagram.
    fn send<'a>(
        &'a self,
        to: SocketAddr,
        batch: &'a [u8],
        seg: usize,
        count: usize,
    ) -> BoxFuture<'a, io::Result<()>>;

    /// Receive a run of datagrams into `buf`: `len` bytes in datagrams of
    /// `stride` bytes (the last may be shorter).
    fn recv<'a>(&'a self, buf: &'a mut [u8]) -> BoxFuture<'a, io::Result<Received>>;
}

/// What one [`Datagrams::recv`] returned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Received {
    /// Bytes written to the buffer (0: nothing, receive again).
    pub len: usize,
    /// Size of each datagram in the run.
    pub stride: usize,
}

/// A bound stream listener.
pub trait Listener: Send + Sync {
    /// The next inbound stream.
    fn accept(&self) -> BoxFuture<'_, io::Result<Box<dyn Stream>>>;
}

/// Network and clock of one node.
pub trait Net: Send + Sync {
    /// Bind the datagram socket on the node's listen address.
    fn bind_datagrams(&self, addr: SocketAddr) -> BoxFuture<'_, io::Result<Box<dyn Datagrams>>>;
    /// Listen for streams on the node's listen address.
    fn listen(&self, addr: SocketAddr) -> BoxFuture<'_, io::Result<Box<dyn Listener>>>;
    /// Open a stream to a peer.
    fn connect(&self, addr: SocketAddr) -> BoxFuture<'_, io::Result<Box<dyn Stream>>>;
    /// Wall clock, seconds since the unix epoch.
    fn now_secs(&self) -> u64;
    /// Monotonic milliseconds since this clock was made.
    fn now_ms(&self) -> u64;
    /// Run CPU-bound work on the calling task instead of the blocking pool.
    fn inline_cpu(&self) -> bool {
        false
    }
}

/// CPU-bound or blocking work ended without a result (the blocking task
/// panicked or was cancelled).
#[derive(Clone, Copy, Debug)]
pub struct TaskFailed;

/// Start `f` now on tokio's blocking pool, or run it now on the calling task
/// when `net` asks for inline CPU work; the future yields its result. Like
/// `spawn_blocking`, the work starts before the future is first polled, so a
/// caller may do other things meanwhile.
pub fn offload<R: Send + 'static>(
    net: &dyn Net,
    f: impl FnOnce() -> R + Send + 'static,
) -> impl Future<Output = Result<R, TaskFailed>> + Send + 'static {
    let task = if net.inline_cpu() {
        Ok(f())
    } else {
        Err(tokio::task::spawn_blocking(f))
    };
    async move {
        match task {
            Ok(r) => Ok(r),
            Err(handle) => handle.await.map_err(|_| TaskFailed),
        }
    }
}

/// Real sockets and the system clock: quinn-udp with GSO/GRO, large socket
/// buffers, TCP with `TCP_NODELAY` on both sides.
#[derive(Debug)]
pub struct SystemNet {
    started: Instant,
}

impl SystemNet {
    /// The production transport, its monotonic clock starting now.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            started: Instant::now(),
        })
    }
}

impl Net for SystemNet {
    fn bind_datagrams(&self, addr: SocketAddr) -> BoxFuture<'_, io::Result<Box<dyn Datagrams>>> {
        Box::pin(async move {
            let sock = bind_udp(addr)?;
            let state = quinn_udp::UdpSocketState::new((&sock).into())?;
            Ok(Box::new(Udp { sock, state }) as Box<dyn Datagrams>)
        })
    }

    fn listen(&self, addr: SocketAddr) -> BoxFuture<'_, io::Result<Box<dyn Listener>>> {
        Box::pin(async move {
            let l = TcpListener::bind(addr).await?;
            Ok(Box::new(Tcp(l)) as Box<dyn Listener>)
        })
    }

    fn connect(&self, addr: SocketAddr) -> BoxFuture<'_, io::Result<Box<dyn Stream>>> {
        Box::pin(async move {
            let s = TcpStream::connect(addr).await?;
            // Control messages are small and latency-bound (Nagle plus
            // delayed ACKs would hold them ~40 ms).
            let _ = s.set_nodelay(true);
            Ok(Box::new(s) as Box<dyn Stream>)
        })
    }

    fn now_secs(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }

    fn now_ms(&self) -> u64 {
        duration_ms(self.started.elapsed())
    }
}

/// Whole milliseconds of `d`, saturating.
pub fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let domain = if addr.is_ipv4() {
        socket2::Domain::IPV4
    } else {
        socket2::Domain::IPV6
    };
    let s = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    // Bursts of symbols: ask for large buffers (the kernel caps them).
    let _ = s.set_recv_buffer_size(8 << 20);
    let _ = s.set_send_buffer_size(8 << 20);
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    UdpSocket::from_std(s.into())
}

/// A UDP socket with its GSO/GRO state (quinn-udp).
struct Udp {
    sock: UdpSocket,
    state: quinn_udp::UdpSocketState,
}

impl Datagrams for Udp {
    fn max_segments(&self) -> usize {
        self.state.max_gso_segments().max(1)
    }

    fn send<'a>(
        &'a self,
        to: SocketAddr,
        batch: &'a [u8],
        seg: usize,
        count: usize,
    ) -> BoxFuture<'a, io::Result<()>> {
        Box::pin(async move {
            let t = quinn_udp::Transmit {
                destination: to,
                ecn: None,
                contents: batch,
                segment_size: (count > 1).then_some(seg),
                src_ip: None,
            };
            self.sock
                .async_io(tokio::io::Interest::WRITABLE, || {
                    self.state.try_send((&self.sock).into(), &t)
                })
                .await
        })
    }

    fn recv<'a>(&'a self, buf: &'a mut [u8]) -> BoxFuture<'a, io::Result<Received>> {
        Box::pin(async move {
            let mut meta = [quinn_udp::RecvMeta::default(); 1];
            let n = self
                .sock
                .async_io(tokio::io::Interest::READABLE, || {
                    let mut bufs = [io::IoSliceMut::new(&mut *buf)];
                    self.state.recv((&self.sock).into(), &mut bufs, &mut meta)
                })
                .await?;
            Ok(meta
                .iter()
                .take(n)
                .next()
                .map_or(Received::default(), |m| Received {
                    len: m.len,
                    stride: m.stride,
                }))
        })
    }
}

struct Tcp(TcpListener);

impl Listener for Tcp {
    fn accept(&self) -> BoxFuture<'_, io::Result<Box<dyn Stream>>> {
        Box::pin(async move {
            let (s, _) = self.0.accept().await?;
            // As on the dialing side (see `SystemNet::connect`).
            let _ = s.set_nodelay(true);
            Ok(Box::new(s) as Box<dyn Stream>)
        })
    }
}

impl Stream for TcpStream {
    fn into_split(self: Box<Self>) -> (BoxRead, BoxWrite) {
        let (r, w) = TcpStream::into_split(*self);
        (Box::new(r), Box::new(w))
    }
}
