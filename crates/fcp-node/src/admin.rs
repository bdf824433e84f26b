//! The admin API: HTTP/1.1 + JSON on a unix socket inside the home (mode 0600).
//!
//! Deliberately small: one request per connection, `Content-Length` bodies
//! only, bounded headers, and bounded in time and memory (see [`Limits`]).
//! Routes:
//!
//! | method | path | body | answer |
//! |---|---|---|---|
//! | POST | `/put?zone=Z` | payload bytes | `{"object_id": ...}` |
//! | GET | `/get/<object_id>` | | payload bytes |
//! | GET | `/status` | | JSON |
//! | GET | `/peers` | | JSON |
//!
//! Errors are an FCP error object (`code`, `message`, ...) with a 4xx/5xx status.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use fcp_core::{ErrorCode, FcpError};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Largest request body (a put payload).
pub const MAX_BODY: usize = 1 << 30;
const MAX_HEAD: usize = 16 * 1024;

/// Admin connections a node serves at once. The node accepts no more until
/// one ends: further clients wait in the socket's backlog, not as open
/// descriptors of the node.
pub const MAX_CONNECTIONS: usize = 64;
/// The pause after a failed accept (e.g. out of descriptors) before the next.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// How long a client has to send its whole request head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request body may stall (no bytes at all) before the node
/// gives up on it. Not a cap on the whole body: a 1 GiB upload is legit.
pub const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a reply may wait for its client to read anything (a client that
/// stopped reading, e.g. `fcp get | less` left open, gives its connection
/// slot back after this).
pub const REPLY_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Request body bytes a node holds at once, over all connections: two
/// bodies of the largest size. A request waits for its share before its
/// body is read and keeps it until it is answered.
const BODY_BUDGET: usize = 2 * MAX_BODY;
/// The budget's unit: a body holds one permit per started MiB.
const BODY_UNIT: usize = 1 << 20;

/// The bounds of a node's side of the admin API, shared by its connections.
#[derive(Clone, Debug)]
pub struct Limits {
    head_timeout: Duration,
    body_idle_timeout: Duration,
    /// Request body memory, in [`BODY_UNIT`]s.
    bodies: Arc<Semaphore>,
}

impl Default for Limits {
    fn default() -> Self {
        Self::new(HEAD_TIMEOUT, BODY_IDLE_TIMEOUT, BODY_BUDGET)
    }
}

impl Limits {
    /// Limits with these timeouts and a body budget of `body_budget` bytes.
    pub fn new(head_timeout: Duration, body_idle_timeout: Duration, body_budget: usize) -> Self {
        Self {
            head_timeout,
            body_idle_timeout,
            bodies: Arc::new(Semaphore::new(body_budget / BODY_UNIT)),
        }
    }
}

/// The error for a request body over [`MAX_BODY`], the node's and the
/// client's alike.
pub fn body_too_large(len: u64) -> FcpError {
    FcpError::new(
        ErrorCode::ResourceLimit,
        format!("request body of {len} bytes is over the admin API's limit of {MAX_BODY}"),
    )
}

/// Bind the admin socket at `path` so that it is never reachable with a
/// mode wider than 0600: it is bound in a new 0700 directory beside `path`,
/// set to 0600 and renamed into place (the rename keeps it bound), replacing
/// a stale socket. Binding in place and chmodding after would leave it with
/// the umask's mode in between, and setting the umask around the bind is
/// process-wide, racing the node's other threads.
pub fn bind(path: &Path) -> std::io::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    // Short names: a socket path has at most 107 bytes, and the bound one
    // should not be much longer than `path`.
    let dir = path.with_file_name(format!(".s{}", std::process::id()));
    // Left by a crashed run of the same pid, if ever.
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
    let bound = dir.join("s");
    let listener = tokio::net::UnixListener::bind(&bound).and_then(|l| {
        std::fs::set_permissions(&bound, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&bound, path)?;
        Ok(l)
    });
    let _ = std::fs::remove_dir_all(&dir);
    listener
}

/// One parsed request.
#[derive(Debug)]
pub struct Request {
    /// `GET` / `POST`.
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// Query parameters.
    pub query: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
    /// The body's share of [`Limits`]' budget, given back with the request.
    _body_share: OwnedSemaphorePermit,
}

impl Request {
    /// A query parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A response.
#[derive(Debug)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// `application/json` or `application/octet-stream`.
    pub content_type: &'static str,
    /// Body.
    pub body: Vec<u8>,
}

impl Response {
    /// 200 with a JSON body.
    pub fn json(v: &serde_json::Value) -> Self {
        Self {
            status: 200,
            content_type: "application/json",
            body: v.to_string().into_bytes(),
        }
    }

    /// 200 with raw bytes.
    pub fn bytes(body: Vec<u8>) -> Self {
        Self {
            status: 200,
            content_type: "application/octet-stream",
            body,
        }
    }

    /// An FCP error with a status derived from its code.
    pub fn error(e: &FcpError) -> Self {
        let status = match e.error_code().map(|c| c.number()) {
            Some(1121) | Some(5010) | Some(5011) => 503,
            Some(1000..=1999) | Some(4000..=4999) => 400,
            Some(2000..=3999) => 403,
            _ => 500,
        };
        Self {
            status,
            content_type: "application/json",
            body: serde_json::to_vec(e).unwrap_or_default(),
        }
    }
}

fn bad(msg: impl Into<String>) -> FcpError {
    FcpError::new(ErrorCode::InvalidArgument, msg)
}

/// Read one request from a stream (server side), within `limits`: the head
/// within its timeout, the body without a longer stall than its idle
/// timeout, once the body's share of the budget is free.
pub async fn read_request<S: tokio::io::AsyncRead + Unpin>(
    stream: S,
    limits: &Limits,
) -> Result<Request, FcpError> {
    let mut r = BufReader::new(stream);
    let mut head = Vec::new();
    tokio::time::timeout(limits.head_timeout, read_head_lines(&mut r, &mut head))
        .await
        .map_err(|_| {
            bad(format!(
                "no complete request head within {} s",
                limits.head_timeout.as_secs_f32()
            ))
        })??;
    let text = std::str::from_utf8(&head).map_err(|_| bad("request head is not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_owned();
    let target = first.next().unwrap_or_default();
    let mut len = 0usize;
    for (k, v) in lines.filter_map(|l| l.split_once(':')) {
        let k = k.trim();
        if k.eq_ignore_ascii_case("content-length") {
            len = v.trim().parse().map_err(|_| bad("bad Content-Length"))?;
        } else if k.eq_ignore_ascii_case("transfer-encoding") {
            // Only Content-Length bodies are read: a chunked body taken as
            // empty would store an empty object and answer 200.
            return Err(bad(
                "Transfer-Encoding is not supported; send Content-Length",
            ));
        }
    }
    if len > MAX_BODY {
        return Err(body_too_large(len as u64));
    }
    let units = u32::try_from(len.div_ceil(BODY_UNIT)).unwrap_or(u32::MAX);
    let share = limits
        .bodies
        .clone()
        .acquire_many_owned(units)
        .await
        .map_err(|_| FcpError::new(ErrorCode::Internal, "admin body budget closed"))?;
    // Read into spare capacity: a put's body is the whole payload, and
    // zero-filling it first was a pass over every byte for nothing.
    let mut body = Vec::with_capacity(len);
    while body.len() < len {
        let rest = (len - body.len()) as u64;
        let n = tokio::time::timeout(
            limits.body_idle_timeout,
            (&mut r).take(rest).read_buf(&mut body),
        )
        .await
        .map_err(|_| {
            FcpError::new(
                ErrorCode::LocalIo,
                format!(
                    "request body stalled for {} s at {} of {len} bytes",
                    limits.body_idle_timeout.as_secs_f32(),
                    body.len()
                ),
            )
        })?
        .map_err(|e| FcpError::new(ErrorCode::LocalIo, e.to_string()))?;
        if n == 0 {
            return Err(FcpError::new(
                ErrorCode::LocalIo,
                "request body shorter than its Content-Length",
            ));
        }
    }
    let (path, q) = target.split_once('?').unwrap_or((target, ""));
    let query = q
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_owned(), v.to_owned())
        })
        .collect();
    Ok(Request {
        method,
        path: path.to_owned(),
        query,
        body,
        _body_share: share,
    })
}

/// Read head lines into `head` up to the blank line, within [`MAX_HEAD`].
async fn read_head_lines<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
    head: &mut Vec<u8>,
) -> Result<(), FcpError> {
    loop {
        // Never more than the head's bound, newline or not: a line without
        // one must not grow the buffer without limit.
        let room = (MAX_HEAD + 1).saturating_sub(head.len()) as u64;
        let n = (&mut *r)
            .take(room)
            .read_until(b'\n', head)
            .await
            .map_err(|e| FcpError::new(ErrorCode::LocalIo, e.to_string()))?;
        if n == 0 || head.len() > MAX_HEAD {
            return Err(bad("truncated or oversized request head"));
        }
        if head.ends_with(b"\r\n\r\n") || head == b"\r\n" {
            return Ok(());
        }
    }
}

/// Write a response (server side), failing if the client reads nothing for
/// `idle`.
pub async fn write_response<S: tokio::io::AsyncWrite + Unpin>(
    mut stream: S,
    resp: &Response,
    idle: Duration,
) -> std::io::Result<()> {
    write_head(
        &mut stream,
        resp.status,
        resp.content_type,
        resp.body.len() as u64,
        idle,
    )
    .await?;
    write_within(&mut stream, &resp.body, idle).await?;
    flush_within(&mut stream, idle).await
}

async fn write_head<S: tokio::io::AsyncWrite + Unpin>(
    stream: &mut S,
    status: u16,
    content_type: &str,
    len: u64,
    idle: Duration,
) -> std::io::Result<()> {
    let reason = if status == 200 { "OK" } else { "Error" };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
    );
    write_within(stream, head.as_bytes(), idle).await
}

fn stalled(idle: Duration) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("the client read nothing for {} s", idle.as_secs_f32()),
    )
}

/// Write all of `buf`, failing once a write makes no progress for `idle`.
async fn write_within<S: tokio::io::AsyncWrite + Unpin>(
    stream: &mut S,
    buf: &[u8],
    idle: Duration,
) -> std::io::Result<()> {
    let mut rest = buf;
    while !rest.is_empty() {
        let n = tokio::time::timeout(idle, stream.write(rest))
            .await
            .map_err(|_| stalled(idle))??;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        rest = rest.get(n..).unwrap_or_default();
    }
    Ok(())
}

async fn flush_within<S: tokio::io::AsyncWrite + Unpin>(
    stream: &mut S,
    idle: Duration,
) -> std::io::Result<()> {
    tokio::time::timeout(idle, stream.flush())
        .await
        .map_err(|_| stalled(idle))?
}

/// Write a 200 `application/octet-stream` response of `len` bytes whose body
/// arrives in pieces on `body` (bounded memory for large objects), failing
/// if the client reads nothing for `idle`. The outer error is the socket's
/// (the client went away or stopped reading); the inner one says the
/// body failed after the head was sent: a piece that is an error, or a body
/// shorter or longer than `len`. That ends the connection early, so the
/// client sees fewer bytes than announced and only the node can tell why.
pub async fn write_stream_response<S: tokio::io::AsyncWrite + Unpin>(
    mut stream: S,
    len: u64,
    mut body: tokio::sync::mpsc::Receiver<Result<bytes::Bytes, FcpError>>,
    idle: Duration,
) -> std::io::Result<Result<(), FcpError>> {
    write_head(&mut stream, 200, "application/octet-stream", len, idle).await?;
    let mut sent = 0u64;
    while let Some(piece) = body.recv().await {
        let piece = match piece {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        sent += piece.len() as u64;
        if sent > len {
            break;
        }
        write_within(&mut stream, &piece, idle).await?;
    }
    flush_within(&mut stream, idle).await?;
    if sent != len {
        return Ok(Err(FcpError::new(
            ErrorCode::Internal,
            format!("the body came to {sent} bytes, not the {len} announced"),
        )));
    }
    Ok(Ok(()))
}

/// What a streaming [`call_with_progress`] / [`send`] is doing, for progress reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Writing the request body: `done` of `total` bytes sent.
    Upload,
    /// The request is sent; waiting for the node to answer (it is working).
    /// Reported once, with `done == total ==` the request body length.
    Waiting,
    /// Reading the response body: `done` of `total` (its `Content-Length`) bytes.
    Download,
}

/// Bytes per write/read step of the blocking client (and per progress report).
const CHUNK: usize = 64 * 1024;

/// How long a client waits on the node for a short request (status, peers):
/// to connect, for each write and for each read.
pub const SHORT_WAIT: Duration = Duration::from_secs(30);
/// How long a client waits on the node in a transfer (put, get): the node
/// may work for minutes on a large object before it answers.
pub const TRANSFER_WAIT: Duration = Duration::from_secs(600);

fn io_err(e: std::io::Error) -> FcpError {
    FcpError::new(ErrorCode::LocalIo, e.to_string())
}

/// An error on the admin socket; a timeout says the node did not answer.
fn sock_err(e: std::io::Error, wait: Duration) -> FcpError {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => FcpError::new(
            ErrorCode::NodeNotRunning,
            format!(
                "the node did not answer for {} s: it is overloaded or stuck (see its log)",
                wait.as_secs()
            ),
        ),
        _ => io_err(e),
    }
}

/// Connect to the admin socket with every step bounded by `wait`: reads and
/// writes by the socket's timeouts, and on Linux the connect too, which
/// waits while the node's backlog is full and takes its bound from the send
/// timeout.
fn connect(socket: &Path, wait: Duration) -> Result<UnixStream, FcpError> {
    use socket2::{Domain, SockAddr, Socket, Type};
    let unreachable = |e: std::io::Error| {
        FcpError::new(
            ErrorCode::NodeNotRunning,
            format!(
                "cannot reach the node at {}: {e} (is `fcp node run` running?)",
                socket.display()
            ),
        )
    };
    let s = Socket::new(Domain::UNIX, Type::STREAM, None).map_err(io_err)?;
    s.set_read_timeout(Some(wait)).map_err(io_err)?;
    s.set_write_timeout(Some(wait)).map_err(io_err)?;
    s.connect(&SockAddr::unix(socket).map_err(unreachable)?)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock => sock_err(e, wait),
            _ => unreachable(e),
        })?;
    Ok(s.into())
}

/// A response whose head has been read and whose body is still on the socket.
#[derive(Debug)]
pub struct Incoming {
    /// HTTP status.
    pub status: u16,
    /// `application/json` or `application/octet-stream`.
    pub content_type: &'static str,
    /// The body length the node announced (`None`: read until the node closes).
    pub content_length: Option<u64>,
    rest: std::io::BufReader<UnixStream>,
    /// The socket's timeout.
    wait: Duration,
}

impl Incoming {
    /// Stream the body into `out`, reporting [`Phase::Download`] after every
    /// step; returns the number of bytes written. With a `Content-Length`,
    /// exactly that many bytes are read (fewer is an error) and the last
    /// report has `done == total`; without one, `total` is 0 until the end.
    pub fn copy_body(
        mut self,
        out: &mut dyn Write,
        progress: &mut dyn FnMut(Phase, u64, u64),
    ) -> Result<u64, FcpError> {
        let total = self.content_length;
        let mut buf = vec![0u8; CHUNK];
        let mut done = 0u64;
        loop {
            let want = match total {
                Some(t) => usize::try_from(t - done).unwrap_or(usize::MAX).min(CHUNK),
                None => CHUNK,
            };
            if want == 0 {
                break;
            }
            let n = match self.rest.read(&mut buf[..want]) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(sock_err(e, self.wait)),
            };
            if n == 0 {
                if let Some(t) = total {
                    return Err(FcpError::new(
                        ErrorCode::LocalIo,
                        format!(
                            "the node failed mid-stream: its answer ended at {done} of {t} \
                             bytes; its log (the stderr of `fcp node run`) says why"
                        ),
                    ));
                }
                break;
            }
            out.write_all(&buf[..n]).map_err(io_err)?;
            done += n as u64;
            progress(Phase::Download, done, total.unwrap_or(0));
        }
        if total.is_none() {
            progress(Phase::Download, done, done);
        }
        out.flush().map_err(io_err)?;
        Ok(done)
    }

    /// Read the whole body into a [`Response`].
    pub fn into_response(
        self,
        progress: &mut dyn FnMut(Phase, u64, u64),
    ) -> Result<Response, FcpError> {
        let (status, content_type) = (self.status, self.content_type);
        let cap = self
            .content_length
            .and_then(|l| usize::try_from(l).ok())
            .unwrap_or(0)
            .min(MAX_BODY);
        let mut body = Vec::with_capacity(cap);
        self.copy_body(&mut body, progress)?;
        Ok(Response {
            status,
            content_type,
            body,
        })
    }
}

/// Blocking client, streaming: send one request with a body of `len` bytes
/// read from `body` to the node's admin socket and read the response head,
/// waiting at most `wait` for each step (see [`SHORT_WAIT`],
/// [`TRANSFER_WAIT`]). A body over [`MAX_BODY`] is refused with the node's
/// error before anything is sent. The body is sent in steps, reporting
/// [`Phase::Upload`] after each, then [`Phase::Waiting`] once before blocking
/// on the answer; the response body is left for [`Incoming::copy_body`].
pub fn send(
    socket: &Path,
    method: &str,
    target: &str,
    body: &mut dyn Read,
    len: u64,
    wait: Duration,
    progress: &mut dyn FnMut(Phase, u64, u64),
) -> Result<Incoming, FcpError> {
    if len > MAX_BODY as u64 {
        return Err(body_too_large(len));
    }
    let mut s = connect(socket, wait)?;
    // A node that refuses a request before reading its body answers and
    // closes: the write fails (EPIPE or a reset), and the answer says why.
    let refused = |s: UnixStream, e: std::io::Error| match e.kind() {
        std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset => {
            read_head(std::io::BufReader::new(s), wait).map_err(|_| sock_err(e, wait))
        }
        _ => Err(sock_err(e, wait)),
    };
    let head = format!("{method} {target} HTTP/1.1\r\nHost: fcp\r\nContent-Length: {len}\r\n\r\n");
    if let Err(e) = s.write_all(head.as_bytes()) {
        return refused(s, e);
    }
    let mut buf = vec![0u8; usize::try_from(len).unwrap_or(CHUNK).min(CHUNK)];
    let mut done = 0u64;
    while done < len {
        let want = usize::try_from(len - done).unwrap_or(CHUNK).min(CHUNK);
        let n = match body.read(&mut buf[..want]) {
            Ok(0) => {
                return Err(FcpError::new(
                    ErrorCode::LocalIo,
                    format!("the request body ended at {done} of {len} bytes"),
                ));
            }
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(e)),
        };
        if let Err(e) = s.write_all(&buf[..n]) {
            return refused(s, e);
        }
        done += n as u64;
        progress(Phase::Upload, done, len);
    }
    progress(Phase::Waiting, len, len);
    read_head(std::io::BufReader::new(s), wait)
}

/// Read a response head (status line and headers) off the socket.
fn read_head(
    mut rest: std::io::BufReader<UnixStream>,
    wait: Duration,
) -> Result<Incoming, FcpError> {
    let malformed =
        |what: &str| FcpError::new(ErrorCode::Internal, format!("malformed admin {what}"));
    let mut head = Vec::new();
    loop {
        let n = std::io::BufRead::read_until(&mut rest, b'\n', &mut head)
            .map_err(|e| sock_err(e, wait))?;
        if n == 0 || head.len() > MAX_HEAD {
            return Err(malformed("response"));
        }
        if head.ends_with(b"\r\n\r\n") {
            break;
        }
    }
    let head = String::from_utf8_lossy(&head);
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| malformed("status line"))?;
    let mut json = false;
    let mut content_length = None;
    for l in lines {
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        let k = k.trim();
        if k.eq_ignore_ascii_case("content-type") {
            json = v.to_ascii_lowercase().contains("application/json");
        } else if k.eq_ignore_ascii_case("content-length") {
            content_length = Some(v.trim().parse().map_err(|_| malformed("Content-Length"))?);
        }
    }
    Ok(Incoming {
        status,
        content_type: if json {
            "application/json"
        } else {
            "application/octet-stream"
        },
        content_length,
        rest,
        wait,
    })
}

/// Blocking client with progress: [`send`] (waiting up to
/// [`TRANSFER_WAIT`] for each step), then read the whole body.
pub fn call_with_progress(
    socket: &Path,
    method: &str,
    target: &str,
    body: &[u8],
    progress: &mut dyn FnMut(Phase, u64, u64),
) -> Result<Response, FcpError> {
    let len = body.len() as u64;
    send(
        socket,
        method,
        target,
        &mut { body },
        len,
        TRANSFER_WAIT,
        progress,
    )?
    .into_response(progress)
}

/// Blocking client: send one request to the node's admin socket (waiting
/// up to [`TRANSFER_WAIT`] for each step).
pub fn call(socket: &Path, method: &str, target: &str, body: &[u8]) -> Result<Response, FcpError> {
    call_with_progress(socket, method, target, body, &mut |_, _, _| {})
}

/// Turn an error response into the FCP error it carries.
pub fn response_error(resp: &Response) -> FcpError {
    serde_json::from_slice::<FcpError>(&resp.body).unwrap_or_else(|_| {
        FcpError::new(
            ErrorCode::Internal,
            format!("admin API answered {}", resp.status),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;
    use std::path::PathBuf;
    use std::thread::JoinHandle;

    /// A one-shot server running `answer` on the first connection (a
    /// current-thread runtime on its own thread), handing back its result.
    fn serve_with<T, F>(
        answer: impl FnOnce(tokio::net::UnixStream) -> F + Send + 'static,
    ) -> (tempfile::TempDir, PathBuf, JoinHandle<T>)
    where
        T: Send + 'static,
        F: std::future::Future<Output = T>,
    {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("admin.sock");
        let listener = UnixListener::bind(&sock).unwrap();
        listener.set_nonblocking(true).unwrap();
        let h = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let l = tokio::net::UnixListener::from_std(listener).unwrap();
                let (s, _) = l.accept().await.unwrap();
                answer(s).await
            })
        });
        (dir, sock, h)
    }

    /// One-shot admin server built from this module's own server half:
    /// answers the first request with `answer` and hands back that request.
    fn serve_once(answer: Response) -> (tempfile::TempDir, PathBuf, JoinHandle<Request>) {
        serve_with(|mut s| async move {
            let (rd, wr) = s.split();
            let req = read_request(rd, &Limits::default()).await.unwrap();
            write_response(wr, &answer, REPLY_IDLE_TIMEOUT)
                .await
                .unwrap();
            req
        })
    }

    /// A raw one-shot server that writes `raw` whatever it is asked.
    fn serve_raw(raw: Vec<u8>) -> (tempfile::TempDir, PathBuf, JoinHandle<()>) {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("admin.sock");
        let listener = UnixListener::bind(&sock).unwrap();
        let h = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut head = [0u8; 256];
            let _ = s.read(&mut head).unwrap();
            s.write_all(&raw).unwrap();
        });
        (dir, sock, h)
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    /// Done values of one phase: non-decreasing, totals constant, last == total.
    fn check_phase(events: &[(Phase, u64, u64)], phase: Phase, total: u64) {
        let v: Vec<_> = events.iter().filter(|e| e.0 == phase).collect();
        assert!(!v.is_empty(), "no {phase:?} reports");
        assert!(
            v.windows(2).all(|w| w[0].1 < w[1].1),
            "{phase:?} not monotonic"
        );
        assert!(v.iter().all(|e| e.2 == total && e.1 <= total));
        assert_eq!(v.last().unwrap().1, total);
    }

    #[test]
    fn progress_is_monotonic_and_ends_at_total() {
        // Neither length is a multiple of the step.
        let up = pattern(3 * CHUNK * 16 + 12_345);
        let down = pattern(5 * CHUNK * 8 + 777);
        let (_dir, sock, server) = serve_once(Response::bytes(down.clone()));
        let mut events = Vec::new();
        let resp = call_with_progress(&sock, "POST", "/put?zone=z:t", &up, &mut |p, d, t| {
            events.push((p, d, t))
        })
        .unwrap();
        let req = server.join().unwrap();
        assert_eq!(req.method, "POST");
        assert_eq!(req.path, "/put");
        assert_eq!(req.param("zone"), Some("z:t"));
        assert_eq!(req.body, up);
        assert_eq!(resp.status, 200);
        assert_eq!(resp.content_type, "application/octet-stream");
        assert_eq!(resp.body, down);

        check_phase(&events, Phase::Upload, up.len() as u64);
        check_phase(&events, Phase::Download, down.len() as u64);
        // Upload, then exactly one Waiting, then Download.
        let phases: Vec<Phase> = events.iter().map(|e| e.0).collect();
        let w = phases.iter().position(|p| *p == Phase::Waiting).unwrap();
        assert!(phases[..w].iter().all(|p| *p == Phase::Upload));
        assert!(phases[w + 1..].iter().all(|p| *p == Phase::Download));
        assert_eq!(
            events[w],
            (Phase::Waiting, up.len() as u64, up.len() as u64)
        );
    }

    #[test]
    fn streamed_body_goes_to_the_writer_and_errors_stay_json() {
        let down = pattern(CHUNK + 1);
        let (_dir, sock, server) = serve_once(Response::bytes(down.clone()));
        let inc = send(
            &sock,
            "GET",
            "/get/x",
            &mut &[][..],
            0,
            SHORT_WAIT,
            &mut |p, _, _| assert_eq!(p, Phase::Waiting),
        )
        .unwrap();
        assert_eq!(inc.status, 200);
        assert_eq!(inc.content_length, Some(down.len() as u64));
        let mut out = Vec::new();
        let n = inc.copy_body(&mut out, &mut |_, _, _| {}).unwrap();
        assert_eq!((n, out), (down.len() as u64, down));
        assert_eq!(server.join().unwrap().path, "/get/x");

        let e = FcpError::new(ErrorCode::ObjectNotFound, "no such object");
        let (_dir, sock, _server) = serve_once(Response::error(&e));
        let resp = call(&sock, "GET", "/get/y", &[]).unwrap();
        assert_eq!(resp.content_type, "application/json");
        assert_ne!(resp.status, 200);
        assert_eq!(
            response_error(&resp).error_code(),
            Some(ErrorCode::ObjectNotFound)
        );
    }

    #[test]
    fn endless_heads_and_chunked_bodies_are_refused() {
        let rt = rt();
        let limits = Limits::default();
        let read_request = |raw| read_request(raw, &limits);
        // A head line with no newline, without end: refused at the bound
        // (before the fix this read forever, growing the buffer).
        let e = rt
            .block_on(super::read_request(tokio::io::repeat(b'A'), &limits))
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidArgument.as_code());
        // A chunked body is not read as an empty one.
        let raw = b"POST /put?zone=z:private HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
        let e = rt.block_on(read_request(&raw[..])).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidArgument.as_code());
        assert!(e.message.contains("Transfer-Encoding"), "{e}");
    }

    #[test]
    fn request_bodies_are_read_whole_or_refused() {
        let rt = rt();
        let limits = Limits::default();
        let read_request = |raw| read_request(raw, &limits);
        let whole = b"POST /put?zone=z:t HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
        let req = rt.block_on(read_request(&whole[..])).unwrap();
        assert_eq!(
            (req.path.as_str(), req.body.as_slice()),
            ("/put", &b"hello"[..])
        );
        // Bytes past Content-Length are not part of the body.
        let more = b"POST /put HTTP/1.1\r\nContent-Length: 2\r\n\r\nhello";
        assert_eq!(rt.block_on(read_request(&more[..])).unwrap().body, b"he");
        let short = b"POST /put HTTP/1.1\r\nContent-Length: 10\r\n\r\nhello";
        let e = rt.block_on(read_request(&short[..])).unwrap_err();
        assert_eq!(e.error_code(), Some(ErrorCode::LocalIo), "{e}");
    }

    #[test]
    fn stalled_heads_and_bodies_time_out_but_slow_bodies_do_not() {
        let limits = Limits::new(
            Duration::from_millis(100),
            Duration::from_millis(100),
            BODY_BUDGET,
        );
        rt().block_on(async {
            // Before the fix, both reads waited for as long as the client
            // kept the connection open.
            let (mut client, server) = tokio::io::duplex(1024);
            client.write_all(b"GET /status HTTP/1.1\r\n").await.unwrap();
            let e = read_request(server, &limits).await.unwrap_err();
            assert_eq!(e.error_code(), Some(ErrorCode::InvalidArgument), "{e}");
            assert!(e.message.contains("head"), "{e}");

            let (mut client, server) = tokio::io::duplex(1024);
            client
                .write_all(b"POST /put HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc")
                .await
                .unwrap();
            let e = read_request(server, &limits).await.unwrap_err();
            assert_eq!(e.error_code(), Some(ErrorCode::LocalIo), "{e}");
            assert!(e.message.contains("stalled"), "{e}");

            // A body that keeps coming is read, however long it takes.
            let (mut client, server) = tokio::io::duplex(1024);
            let slow = tokio::spawn(async move {
                client
                    .write_all(b"POST /put HTTP/1.1\r\nContent-Length: 6\r\n\r\n")
                    .await
                    .unwrap();
                for b in b"abcdef" {
                    tokio::time::sleep(Duration::from_millis(40)).await;
                    client.write_all(&[*b]).await.unwrap();
                }
                client
            });
            let req = read_request(server, &limits).await.unwrap();
            assert_eq!(req.body, b"abcdef");
            drop(slow.await.unwrap());
        });
    }

    #[test]
    fn bodies_wait_for_their_share_of_the_budget() {
        // Room for two 1 MiB bodies.
        let limits = Limits::new(HEAD_TIMEOUT, BODY_IDLE_TIMEOUT, 2 * BODY_UNIT);
        let put = |n: usize| {
            let mut raw = format!("POST /put HTTP/1.1\r\nContent-Length: {n}\r\n\r\n").into_bytes();
            raw.extend(pattern(n));
            raw
        };
        let (big, small) = (put(BODY_UNIT), put(1));
        rt().block_on(async {
            let a = read_request(&big[..], &limits).await.unwrap();
            let b = read_request(&big[..], &limits).await.unwrap();
            // Requests without a body never wait.
            let status = b"GET /status HTTP/1.1\r\n\r\n";
            read_request(&status[..], &limits).await.unwrap();
            let mut third = std::pin::pin!(read_request(&small[..], &limits));
            let waited = tokio::time::timeout(Duration::from_millis(100), &mut third).await;
            assert!(
                waited.is_err(),
                "a third body is not read while two are held"
            );
            drop(a);
            assert_eq!(third.await.unwrap().body.len(), 1);
            drop(b);
        });
    }

    #[test]
    fn short_body_is_an_error_and_missing_length_reads_to_close() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc".to_vec();
        let (_dir, sock, server) = serve_raw(raw);
        let e = call(&sock, "GET", "/get/x", &[]).unwrap_err();
        assert_eq!(e.error_code(), Some(ErrorCode::LocalIo));
        server.join().unwrap();

        let raw = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{}".to_vec();
        let (_dir, sock, server) = serve_raw(raw);
        let mut last = None;
        let resp = call_with_progress(&sock, "GET", "/status", &[], &mut |p, d, t| {
            last = Some((p, d, t))
        })
        .unwrap();
        assert_eq!(
            (resp.content_type, resp.body.as_slice()),
            ("application/json", &b"{}"[..])
        );
        assert_eq!(last, Some((Phase::Download, 2, 2)));
        server.join().unwrap();
    }

    /// A one-shot server answering with a streamed body of `len` bytes made
    /// of `pieces`.
    fn serve_stream(
        len: u64,
        pieces: Vec<Result<bytes::Bytes, FcpError>>,
    ) -> (
        tempfile::TempDir,
        PathBuf,
        JoinHandle<std::io::Result<Result<(), FcpError>>>,
    ) {
        serve_with(move |mut s| async move {
            let (rd, wr) = s.split();
            read_request(rd, &Limits::default()).await.unwrap();
            let (tx, rx) = tokio::sync::mpsc::channel(2);
            tokio::spawn(async move {
                for p in pieces {
                    tx.send(p).await.unwrap();
                }
            });
            write_stream_response(wr, len, rx, REPLY_IDLE_TIMEOUT).await
        })
    }

    #[test]
    fn streamed_response_arrives_whole_or_fails() {
        let a = pattern(CHUNK + 5);
        let b = pattern(3 * CHUNK);
        let len = (a.len() + b.len()) as u64;
        let (_dir, sock, server) =
            serve_stream(len, vec![Ok(a.clone().into()), Ok(b.clone().into())]);
        let resp = call(&sock, "GET", "/get/x", &[]).unwrap();
        assert_eq!(resp.body, [a.clone(), b].concat());
        server.join().unwrap().unwrap().unwrap();
        // An error after the head (e.g. a payload-hash mismatch) cuts the body
        // short, and the client reports the transfer failed and where to
        // look; the server is handed the cause to log (before the fix it
        // was dropped).
        let e = FcpError::new(ErrorCode::ObjectCorrupt, "payload hash mismatch");
        let (_dir, sock, server) = serve_stream(len, vec![Ok(a.clone().into()), Err(e)]);
        let err = call(&sock, "GET", "/get/x", &[]).unwrap_err();
        assert_eq!(err.error_code(), Some(ErrorCode::LocalIo));
        assert!(err.message.contains("mid-stream"), "{err}");
        assert!(err.message.contains("log"), "{err}");
        let cause = server.join().unwrap().unwrap().unwrap_err();
        assert_eq!(cause.error_code(), Some(ErrorCode::ObjectCorrupt));
        // A body that ends early without an error is a failure too.
        let (_dir, sock, server) = serve_stream(len, vec![Ok(a.into())]);
        call(&sock, "GET", "/get/x", &[]).unwrap_err();
        assert!(server.join().unwrap().unwrap().is_err());
    }

    /// A client that stops reading gives its connection back after the
    /// idle timeout, mid-body or before the head of a full reply; before,
    /// the node waited on it for ever and 64 such clients took every slot.
    #[test]
    fn a_reply_to_a_client_that_stops_reading_times_out() {
        rt().block_on(async {
            let idle = Duration::from_millis(100);
            // The client's side holds 4 KiB and is never read.
            let (_client, server) = tokio::io::duplex(4096);
            let (tx, rx) = tokio::sync::mpsc::channel(4);
            tx.send(Ok(pattern(64 << 10).into())).await.unwrap();
            let t = std::time::Instant::now();
            let e = write_stream_response(server, 64 << 10, rx, idle)
                .await
                .unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
            assert!(t.elapsed() < Duration::from_secs(2));
            let (_client, server) = tokio::io::duplex(4096);
            let e = write_response(server, &Response::bytes(pattern(64 << 10)), idle)
                .await
                .unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
            // A client that reads gets it all.
            let (mut client, server) = tokio::io::duplex(4096);
            let reader = tokio::spawn(async move {
                let mut got = Vec::new();
                client.read_to_end(&mut got).await.unwrap();
                got
            });
            write_response(server, &Response::bytes(pattern(64 << 10)), idle)
                .await
                .unwrap();
            assert!(reader.await.unwrap().ends_with(&pattern(64 << 10)));
        });
    }

    /// A server that takes connections and never answers, until dropped.
    fn serve_nothing() -> (tempfile::TempDir, PathBuf, std::sync::mpsc::Sender<()>) {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("admin.sock");
        let listener = UnixListener::bind(&sock).unwrap();
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            let (_s, _) = listener.accept().unwrap();
            let _ = stopped.recv();
        });
        (dir, sock, stop)
    }

    /// `GET /status` with steps of 200 ms fails within seconds, as a node
    /// that does not answer.
    fn status_times_out(sock: &Path) -> FcpError {
        let wait = Duration::from_millis(200);
        let t = std::time::Instant::now();
        let e = send(
            sock,
            "GET",
            "/status",
            &mut &[][..],
            0,
            wait,
            &mut |_, _, _| {},
        )
        .unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(5));
        assert_eq!(e.error_code(), Some(ErrorCode::NodeNotRunning), "{e}");
        e
    }

    #[test]
    fn a_node_that_does_not_answer_times_out() {
        // Before the fix the client waited for as long as the node held the
        // connection.
        let (_dir, sock, _stop) = serve_nothing();
        let e = status_times_out(&sock);
        assert!(e.message.contains("did not answer"), "{e}");
    }

    #[test]
    fn a_full_backlog_times_out_the_connect() {
        use socket2::{Domain, SockAddr, Socket, Type};
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("admin.sock");
        // A node that accepts nothing, with room for one waiting client.
        let l = Socket::new(Domain::UNIX, Type::STREAM, None).unwrap();
        l.bind(&SockAddr::unix(&sock).unwrap()).unwrap();
        l.listen(0).unwrap();
        let _first = UnixStream::connect(&sock).unwrap();
        status_times_out(&sock);
    }

    #[test]
    fn bodies_over_the_limit_are_refused_before_sending() {
        // No node at all: the size is checked first, with the node's code.
        let dir = tempfile::tempdir().unwrap();
        let len = MAX_BODY as u64 + 1;
        let e = send(
            &dir.path().join("admin.sock"),
            "POST",
            "/put",
            &mut std::io::repeat(0),
            len,
            SHORT_WAIT,
            &mut |_, _, _| {},
        )
        .unwrap_err();
        assert_eq!(e.error_code(), Some(ErrorCode::ResourceLimit), "{e}");
        assert_eq!(e.code, body_too_large(len).code);
    }

    #[test]
    fn a_body_refused_mid_upload_reports_the_nodes_answer() {
        // The node answers after the head and closes without reading the
        // body. Before the fix the client reported its own EPIPE (FCP-5001).
        let refusal = FcpError::new(ErrorCode::ResourceLimit, "no room");
        let (_dir, sock, server) = serve_with(move |mut s| async move {
            let mut head = [0u8; 64];
            let _ = s.read(&mut head).await.unwrap();
            write_response(&mut s, &Response::error(&refusal), REPLY_IDLE_TIMEOUT)
                .await
                .unwrap();
        });
        let body = pattern(8 << 20);
        let resp = call(&sock, "POST", "/put", &body).unwrap();
        server.join().unwrap();
        assert_ne!(resp.status, 200);
        let e = response_error(&resp);
        assert_eq!(e.error_code(), Some(ErrorCode::ResourceLimit), "{e}");
        assert_eq!(e.message, "no room");
    }

    #[test]
    fn the_admin_socket_is_bound_private_and_in_place() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("admin.sock");
        // A stale socket of an earlier run is replaced.
        drop(UnixListener::bind(&sock).unwrap());
        let rt = rt();
        let _guard = rt.enter();
        let l = bind(&sock).unwrap();
        let mode = std::fs::metadata(&sock).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // Still bound after the rename, and nothing is left beside it.
        let _c = UnixStream::connect(&sock).unwrap();
        rt.block_on(l.accept()).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
        // A path near the 107-byte limit of a socket binds: the temporary
        // one is hardly longer (it was 24 bytes longer, and failed).
        // (Unless the temporary directory itself is too deep for that.)
        let room = 100usize.saturating_sub(dir.path().as_os_str().len() + 12);
        if room > 0 {
            let deep = dir.path().join("d".repeat(room));
            std::fs::create_dir(&deep).unwrap();
            let sock = deep.join("admin.sock");
            assert_eq!(sock.as_os_str().len(), 100);
            bind(&sock).unwrap();
        }
    }

    #[test]
    fn no_node_is_node_not_running() {
        let dir = tempfile::tempdir().unwrap();
        let e = call(&dir.path().join("admin.sock"), "GET", "/status", &[]).unwrap_err();
        assert_eq!(e.error_code(), Some(ErrorCode::NodeNotRunning));
    }
}
