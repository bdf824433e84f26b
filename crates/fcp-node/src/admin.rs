//! The admin API: HTTP/1.1 + JSON on a unix socket inside the home (mode 0600).
//!
//! Deliberately small: one request per connection, `Content-Length` bodies
//! only, bounded headers. Routes:
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
use std::path::Path;

use fcp_core::{ErrorCode, FcpError};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// Largest request body (a put payload).
pub const MAX_BODY: usize = 1 << 30;
const MAX_HEAD: usize = 16 * 1024;

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

/// Read one request from a stream (server side).
pub async fn read_request<S: tokio::io::AsyncRead + Unpin>(stream: S) -> Result<Request, FcpError> {
    let mut r = BufReader::new(stream);
    let mut head = Vec::new();
    loop {
        let n = r
            .read_until(b'\n', &mut head)
            .await
            .map_err(|e| FcpError::new(ErrorCode::LocalIo, e.to_string()))?;
        if n == 0 || head.len() > MAX_HEAD {
            return Err(bad("truncated or oversized request head"));
        }
        if head.ends_with(b"\r\n\r\n") || head == b"\r\n" {
            break;
        }
    }
    let text = std::str::from_utf8(&head).map_err(|_| bad("request head is not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_owned();
    let target = first.next().unwrap_or_default();
    let mut len = 0usize;
    for l in lines {
        if let Some((k, v)) = l.split_once(':')
            && k.trim().eq_ignore_ascii_case("content-length")
        {
            len = v.trim().parse().map_err(|_| bad("bad Content-Length"))?;
        }
    }
    if len > MAX_BODY {
        return Err(FcpError::new(
            ErrorCode::ResourceLimit,
            "request body too large",
        ));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)
        .await
        .map_err(|e| FcpError::new(ErrorCode::LocalIo, e.to_string()))?;
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
    })
}

/// Write a response (server side).
pub async fn write_response<S: tokio::io::AsyncWrite + Unpin>(
    mut stream: S,
    resp: &Response,
) -> std::io::Result<()> {
    let reason = if resp.status == 200 { "OK" } else { "Error" };
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        resp.status,
        reason,
        resp.content_type,
        resp.body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&resp.body).await?;
    stream.flush().await
}

/// Blocking client: send one request to the node's admin socket.
pub fn call(socket: &Path, method: &str, target: &str, body: &[u8]) -> Result<Response, FcpError> {
    let mut s = std::os::unix::net::UnixStream::connect(socket).map_err(|e| {
        FcpError::new(
            ErrorCode::NodeNotRunning,
            format!(
                "cannot reach the node at {}: {e} (is `fcp node run` running?)",
                socket.display()
            ),
        )
    })?;
    let io = |e: std::io::Error| FcpError::new(ErrorCode::LocalIo, e.to_string());
    let head = format!(
        "{method} {target} HTTP/1.1\r\nHost: fcp\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).map_err(io)?;
    s.write_all(body).map_err(io)?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).map_err(io)?;
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| FcpError::new(ErrorCode::Internal, "malformed admin response"))?;
    let head = String::from_utf8_lossy(buf.get(..split).unwrap_or_default()).into_owned();
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| FcpError::new(ErrorCode::Internal, "malformed admin status line"))?;
    let json = head.to_ascii_lowercase().contains("application/json");
    Ok(Response {
        status,
        content_type: if json {
            "application/json"
        } else {
            "application/octet-stream"
        },
        body: buf.get(split + 4..).unwrap_or_default().to_vec(),
    })
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
