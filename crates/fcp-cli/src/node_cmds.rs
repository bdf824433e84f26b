//! `fcp init`, `fcp owner init|enroll`, `fcp node identity`, `fcp join`.

use std::fmt::Write as _;
use std::io::{IsTerminal, Read};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fcp_core::{ErrorCode, FcpError, ZoneId};
use fcp_node::admin::{self, Phase};
use fcp_node::enroll::{self, NodeIdentity};
use fcp_node::home::Home;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

fn err(e: fcp_node::NodeError) -> FcpError {
    FcpError::from_err(&e)
}

/// Unix seconds from the system clock (the CLI is the IO edge).
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn print_json(v: &impl serde::Serialize) -> Result<(), FcpError> {
    let s = serde_json::to_string_pretty(v)
        .map_err(|e| FcpError::new(ErrorCode::Internal, e.to_string()))?;
    println!("{s}");
    Ok(())
}

/// `fcp init --node-id NAME --listen IP:PORT`.
pub fn init(home: &Home, node_id: &str, listen: &str, json: bool) -> Result<ExitCode, FcpError> {
    let id = enroll::init(home, node_id, listen, now(), &mut rand::rng()).map_err(err)?;
    if json {
        print_json(&id)?;
    } else {
        println!(
            "initialised node {} (listen {}) in {}",
            id.node_id,
            id.listen,
            home.root().display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `fcp node identity`: always JSON (it is what `owner enroll` reads).
pub fn identity(home: &Home) -> Result<ExitCode, FcpError> {
    print_json(&enroll::identity(home).map_err(err)?)?;
    Ok(ExitCode::SUCCESS)
}

/// `fcp owner init`.
pub fn owner_init(home: &Home, json: bool) -> Result<ExitCode, FcpError> {
    let b = enroll::owner_init(home, now(), &mut rand::rng()).map_err(err)?;
    let zones: Vec<String> = b
        .enrollment
        .allowed_zones
        .iter()
        .map(|z| z.to_string())
        .collect();
    if json {
        print_json(&serde_json::json!({
            "owner_pubkey": hex::encode(b.owner_pubkey.0),
            "node_id": b.attestation.node_id,
            "zones": zones,
        }))?;
    } else {
        println!(
            "owner key created; zones {}; node {} enrolled",
            zones.join(", "),
            b.attestation.node_id
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `fcp owner enroll IDENTITY.json --zones z:a,z:b -o BUNDLE`.
pub fn owner_enroll(
    home: &Home,
    identity_file: &Path,
    zones: &str,
    out: &Path,
    json: bool,
) -> Result<ExitCode, FcpError> {
    let bytes = std::fs::read(identity_file).map_err(|e| {
        FcpError::new(
            ErrorCode::InvalidArgument,
            format!("{}: {e}", identity_file.display()),
        )
    })?;
    let ident: NodeIdentity = serde_json::from_slice(&bytes).map_err(|e| {
        FcpError::new(
            ErrorCode::InvalidArgument,
            format!(
                "{} is not a node identity (from `fcp node identity`): {e}",
                identity_file.display()
            ),
        )
    })?;
    let zones = zones
        .split(',')
        .filter(|z| !z.trim().is_empty())
        .map(|z| ZoneId::new(z.trim()).map_err(|e| FcpError::from_err(&e)))
        .collect::<Result<Vec<_>, _>>()?;
    let bundle =
        enroll::owner_enroll(home, &ident, &zones, now(), &mut rand::rng()).map_err(err)?;
    let encoded = enroll::encode_bundle(&bundle).map_err(err)?;
    std::fs::write(out, encoded)
        .map_err(|e| FcpError::new(ErrorCode::LocalIo, format!("{}: {e}", out.display())))?;
    let z: Vec<String> = zones.iter().map(|z| z.to_string()).collect();
    if json {
        print_json(
            &serde_json::json!({ "node_id": ident.node_id, "zones": z, "bundle": out.display().to_string(), "peers": bundle.peers.len() }),
        )?;
    } else {
        println!(
            "enrolled {} in {}; bundle written to {}",
            ident.node_id,
            z.join(", "),
            out.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `fcp join BUNDLE`.
pub fn join(home: &Home, bundle: &Path, json: bool) -> Result<ExitCode, FcpError> {
    let bytes = std::fs::read(bundle).map_err(|e| {
        FcpError::new(
            ErrorCode::InvalidArgument,
            format!("{}: {e}", bundle.display()),
        )
    })?;
    let r = enroll::join(home, &bytes).map_err(err)?;
    if json {
        print_json(&r)?;
    } else {
        println!(
            "node {} joined the mesh of owner {}…; zones {}; peers {}",
            r.node_id,
            &r.owner_pubkey[..16.min(r.owner_pubkey.len())],
            r.zones.join(", "),
            if r.peers.is_empty() {
                "none yet".to_string()
            } else {
                r.peers.join(", ")
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// mimalloc's option for how long freed memory stays mapped before it goes
/// back to the kernel, and the daemon's value for it.
const PURGE_DELAY_VAR: &str = "MIMALLOC_PURGE_DELAY";
const PURGE_DELAY_MS: &str = "10000";

/// `fcp node run` (foreground; logs to stderr).
pub fn run(home: Home, drop_permille: u16) -> Result<ExitCode, FcpError> {
    // A put or get frees a few hundred MiB of buffers and the next one
    // allocates them again. mimalloc hands freed pages back to the kernel
    // after 1 s by default, so every transfer page-faulted and zeroed its
    // memory afresh (page faults were a fifth of a put's CPU in a profile).
    // The daemon keeps them 10 s.
    // mimalloc reads the option from the environment only, before `main`:
    // set it and exec this same command again (same pid). If the exec
    // fails, run with the default.
    if std::env::var_os(PURGE_DELAY_VAR).is_none()
        && let Ok(exe) = std::env::current_exe()
    {
        use std::os::unix::process::CommandExt as _;
        let e = std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .env(PURGE_DELAY_VAR, PURGE_DELAY_MS)
            .exec();
        eprintln!("fcp node run: could not re-exec with {PURGE_DELAY_VAR} set: {e}");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| FcpError::new(ErrorCode::Internal, e.to_string()))?;
    rt.block_on(fcp_node::daemon::run(
        home,
        fcp_node::daemon::RunOptions { drop_permille },
    ))
    .map_err(err)?;
    Ok(ExitCode::SUCCESS)
}

/// One admin call with a body of `len` bytes from `body`, each step waiting
/// at most `wait`; an error status becomes the FCP error it carries.
fn admin(
    home: &Home,
    method: &str,
    target: &str,
    (body, len): (&mut dyn Read, u64),
    wait: Duration,
    progress: &mut dyn FnMut(Phase, u64, u64),
) -> Result<Vec<u8>, FcpError> {
    let resp = admin::send(
        &home.path("admin.sock"),
        method,
        target,
        body,
        len,
        wait,
        progress,
    )?
    .into_response(progress)?;
    if resp.status != 200 {
        return Err(admin::response_error(&resp));
    }
    Ok(resp.body)
}

/// Transfers over this many bytes get a progress bar.
const PROGRESS_MIN: u64 = 1 << 20;

/// Whether a transfer of `len` bytes gets a byte progress bar on stderr:
/// only over 1 MiB, only when stderr is a terminal, never with `--json`.
pub fn should_show_progress(len: u64, is_tty: bool, json: bool) -> bool {
    len > PROGRESS_MIN && is_tty && !json
}

/// Progress on stderr for one admin call: a byte bar while a big body moves,
/// a spinner while the node works. Draws nothing unless stderr is a terminal
/// and `--json` is off; clears itself when dropped, so stdout is untouched
/// and no bar is left behind.
#[derive(Debug)]
struct Progress {
    is_tty: bool,
    json: bool,
    /// Spinner message for [`Phase::Waiting`]; `None`: no spinner.
    working: Option<&'static str>,
    /// What is drawn now: a bar for a phase, or the spinner.
    shown: Option<(Phase, ProgressBar)>,
}

impl Progress {
    fn new(is_tty: bool, json: bool, working: Option<&'static str>) -> Self {
        Self {
            is_tty,
            json,
            working: working.filter(|_| is_tty && !json),
            shown: None,
        }
    }

    fn report(&mut self, phase: Phase, done: u64, total: u64) {
        match phase {
            Phase::Upload | Phase::Download => {
                if !matches!(&self.shown, Some((p, _)) if *p == phase) {
                    // Small transfers keep the spinner, if any.
                    if !should_show_progress(total, self.is_tty, self.json) {
                        return;
                    }
                    let bar =
                        ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
                    bar.set_style(
                        ProgressStyle::with_template(
                            "{msg:>11} [{bar:32}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                    );
                    bar.set_message(if phase == Phase::Upload {
                        "uploading"
                    } else {
                        "downloading"
                    });
                    self.show(phase, bar);
                }
                if let Some((_, bar)) = &self.shown {
                    bar.set_position(done);
                }
            }
            Phase::Waiting => {
                let Some(msg) = self.working else {
                    self.clear();
                    return;
                };
                let spin = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
                spin.set_style(
                    ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                spin.set_message(msg);
                spin.enable_steady_tick(Duration::from_millis(100));
                self.show(phase, spin);
            }
        }
    }

    fn show(&mut self, phase: Phase, bar: ProgressBar) {
        self.clear();
        self.shown = Some((phase, bar));
    }

    fn clear(&mut self) {
        if let Some((_, bar)) = self.shown.take() {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.clear();
    }
}

/// What a put sends: a regular file streams from disk as it is sent; stdin,
/// a pipe or a device, whose length is not known before, is read into
/// memory first, up to the admin API's limit on a body.
fn put_body(file: &Path) -> Result<(Box<dyn Read>, u64), FcpError> {
    put_body_within(file, admin::MAX_BODY)
}

/// [`put_body`], with `limit` in place of the admin API's.
fn put_body_within(file: &Path, limit: usize) -> Result<(Box<dyn Read>, u64), FcpError> {
    let path_err =
        |code| move |e: std::io::Error| FcpError::new(code, format!("{}: {e}", file.display()));
    let input: Box<dyn Read> = if file.as_os_str() == "-" {
        Box::new(std::io::stdin())
    } else {
        let f = std::fs::File::open(file).map_err(path_err(ErrorCode::InvalidArgument))?;
        let meta = f.metadata().map_err(path_err(ErrorCode::InvalidArgument))?;
        if meta.is_file() {
            return Ok((Box::new(f), meta.len()));
        }
        Box::new(f)
    };
    let mut bytes = Vec::new();
    input
        .take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(path_err(ErrorCode::LocalIo))?;
    let len = bytes.len() as u64;
    if bytes.len() > limit {
        let mut e = admin::body_too_large(len);
        e.message = format!(
            "{} holds more than the admin API's limit of {limit} bytes",
            file.display(),
        );
        return Err(e);
    }
    Ok((Box::new(std::io::Cursor::new(bytes)), len))
}

/// `fcp put FILE|- --zone Z`: prints the ObjectId alone on stdout.
pub fn put(home: &Home, file: &Path, zone: &str, json: bool) -> Result<ExitCode, FcpError> {
    ZoneId::new(zone).map_err(|e| FcpError::from_err(&e))?;
    let (mut payload, len) = put_body(file)?;
    let is_tty = std::io::stderr().is_terminal();
    let big = should_show_progress(len, is_tty, json);
    let mut progress = Progress::new(is_tty, json, big.then_some("sealing and placing"));
    let body = admin(
        home,
        "POST",
        &format!("/put?zone={zone}"),
        (&mut payload, len),
        admin::TRANSFER_WAIT,
        &mut |p, d, t| progress.report(p, d, t),
    )?;
    drop(progress);
    let v: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| FcpError::new(ErrorCode::Internal, e.to_string()))?;
    if json {
        println!("{v}");
    } else {
        println!("{}", v["object_id"].as_str().unwrap_or_default());
    }
    Ok(ExitCode::SUCCESS)
}

/// `fcp get OBJECT_ID [-o OUT]`: the body streams into OUT (or stdout) as it
/// arrives (OUT through a file beside it, renamed over OUT once whole, so a
/// failed or interrupted get leaves OUT as it was and no partial file
/// behind; only SIGKILL can leave one). Stdout cannot take
/// bytes back: if the node fails mid-stream, it holds a prefix of the object
/// (under `--json` followed by the error), the exit status is 2 and the
/// error says to look in the node's log.
pub fn get(home: &Home, id: &str, out: Option<&Path>, json: bool) -> Result<ExitCode, FcpError> {
    let oid: fcp_core::ObjectId = id.parse().map_err(|e| FcpError::from_err(&e))?;
    let file = out.filter(|p| p.as_os_str() != "-");
    // A bar cannot share the terminal with the object's bytes.
    let is_tty =
        std::io::stderr().is_terminal() && (file.is_some() || !std::io::stdout().is_terminal());
    // The size is known only once the node answers: spin until then.
    let mut progress = Progress::new(is_tty, json, Some("fetching symbols"));
    let mut report = |p, d, t| progress.report(p, d, t);
    let inc = admin::send(
        &home.path("admin.sock"),
        "GET",
        &format!("/get/{oid}"),
        &mut std::io::empty(),
        0,
        admin::TRANSFER_WAIT,
        &mut report,
    )?;
    if inc.status != 200 {
        return Err(admin::response_error(
            &inc.into_response(&mut |_, _, _| {})?,
        ));
    }
    match file {
        Some(p) => {
            let path_err = |e: std::io::Error| {
                FcpError::new(ErrorCode::LocalIo, format!("{}: {e}", p.display()))
            };
            // Through a symlink to the file it names.
            let target = std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
            let existing = std::fs::metadata(&target).ok();
            let n = if existing.as_ref().is_some_and(|m| !m.is_file()) {
                // A device or a pipe (`-o /dev/null`): written in place;
                // replacing it with a file would be wrong, and there is no
                // content to keep.
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&target)
                    .map_err(path_err)?;
                let mut w = std::io::BufWriter::new(f);
                let n = inc.copy_body(&mut w, &mut report)?;
                std::io::Write::flush(&mut w).map_err(path_err)?;
                n
            } else {
                // Into a file beside OUT, renamed over it only once whole: a
                // failed get leaves an OUT that was there as it was (the
                // temporary file goes when dropped), and a replaced OUT
                // keeps its mode; a new one gets a new file's (umask).
                use std::os::unix::fs::PermissionsExt;
                let dir = target
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                let name = target.file_name().unwrap_or_default().to_string_lossy();
                // The handlers go in before the file is made: a signal as
                // soon as it exists still removes it.
                let partial = remove_on_signal();
                let tmp = {
                    let mut slot = partial
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    let tmp = tempfile::Builder::new()
                        .prefix(&format!(".{name}.fcp-get-"))
                        .permissions(std::fs::Permissions::from_mode(0o666))
                        .tempfile_in(dir)
                        .map_err(path_err)?;
                    *slot = Some(tmp.path().to_path_buf());
                    tmp
                };
                let mut w = std::io::BufWriter::new(tmp);
                let n = inc.copy_body(&mut w, &mut report)?;
                let tmp = w.into_inner().map_err(|e| path_err(e.into_error()))?;
                if let Some(m) = &existing {
                    tmp.as_file()
                        .set_permissions(m.permissions())
                        .map_err(path_err)?;
                }
                tmp.as_file().sync_all().map_err(path_err)?;
                tmp.persist(&target).map_err(|e| path_err(e.error))?;
                // Make the rename durable too.
                if let Ok(d) = std::fs::File::open(dir) {
                    let _ = d.sync_all();
                }
                n
            };
            drop(progress);
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "object_id": id, "bytes": n, "output": p.display().to_string() })
                );
            }
        }
        None => {
            inc.copy_body(&mut std::io::stdout().lock(), &mut report)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Until the process ends, SIGINT, SIGTERM or SIGHUP remove the path put in
/// the returned slot (a get's partial output, which a drop would have
/// removed) and end the process with 128 + the signal's number, as the
/// default action would have ended it. Returns once the handlers are in
/// place; a signal while the slot is held waits for it (the file being
/// made).
fn remove_on_signal() -> std::sync::Arc<std::sync::Mutex<Option<std::path::PathBuf>>> {
    let slot = std::sync::Arc::new(std::sync::Mutex::new(None::<std::path::PathBuf>));
    let path = slot.clone();
    use tokio::signal::unix::{SignalKind, signal};
    let (ready, wait) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            let _ = ready.send(());
            return;
        };
        let n = rt.block_on(async {
            // Each signal on its own: one whose handler could not be set
            // keeps its default action.
            let on = |kind: SignalKind, n: i32| {
                let handler = signal(kind).ok();
                async move {
                    match handler {
                        Some(mut h) => {
                            h.recv().await;
                            n
                        }
                        None => std::future::pending().await,
                    }
                }
            };
            let (int, term, hup) = (
                on(SignalKind::interrupt(), 2),
                on(SignalKind::terminate(), 15),
                on(SignalKind::hangup(), 1),
            );
            let _ = ready.send(());
            tokio::select! {
                n = int => n,
                n = term => n,
                n = hup => n,
            }
        });
        let partial = path
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if let Some(p) = partial.filter(|p| std::fs::remove_file(p).is_ok()) {
            eprintln!("fcp: interrupted; removed the partial {}", p.display());
        }
        std::process::exit(128 + n);
    });
    let _ = wait.recv();
    slot
}

/// `fcp status` / `fcp peers`.
pub fn show(home: &Home, what: &str, json: bool) -> Result<ExitCode, FcpError> {
    let body = admin(
        home,
        "GET",
        &format!("/{what}"),
        (&mut std::io::empty(), 0),
        admin::SHORT_WAIT,
        &mut |_, _, _| {},
    )?;
    let v: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| FcpError::new(ErrorCode::Internal, e.to_string()))?;
    let mut out = String::new();
    if json {
        let _ = writeln!(out, "{v}");
        emit(&out);
        return Ok(ExitCode::SUCCESS);
    }
    let peers = if what == "peers" { &v } else { &v["peers"] };
    if what == "status" {
        let _ = writeln!(
            out,
            "node {} on {} (instance {})",
            v["node_id"].as_str().unwrap_or("?"),
            v["listen"].as_str().unwrap_or("?"),
            v["instance"].as_str().unwrap_or("?")
        );
        let _ = writeln!(
            out,
            "zones: {}",
            v["zones"]
                .as_array()
                .map(|z| z
                    .iter()
                    .filter_map(|x| x.as_str())
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_default()
        );
    }
    for p in peers.as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "peer {:<16} {:<22} {}",
            p["node_id"].as_str().unwrap_or("?"),
            p["addr"].as_str().unwrap_or("?"),
            if p["connected"].as_bool() == Some(true) {
                "connected"
            } else {
                "not connected"
            }
        );
    }
    if what == "status" {
        for o in v["objects"].as_array().into_iter().flatten() {
            let mesh = o["mesh_coverage"]
                .as_f64()
                .map(|c| format!(", placed {c:.2}x k on peers"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "object {} {} k={} here {} symbols ({:.2}x){mesh}",
                o["object_id"].as_str().unwrap_or("?"),
                o["zone"].as_str().unwrap_or("?"),
                o["k"],
                o["symbols_here"],
                o["local_coverage"].as_f64().unwrap_or(0.0),
            );
        }
    }
    emit(&out);
    Ok(ExitCode::SUCCESS)
}

/// Write to stdout, ignoring a closed pipe (`fcp status | head`).
fn emit(s: &str) {
    let _ = std::io::Write::write_all(&mut std::io::stdout(), s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_only_for_big_transfers_on_a_terminal_without_json() {
        const MIB: u64 = 1 << 20;
        let table = [
            // (len, stderr is a terminal, --json, bar)
            (0, true, false, false),
            (MIB, true, false, false),
            (MIB + 1, true, false, true),
            (4 * MIB, true, false, true),
            (4 * MIB, false, false, false),
            (4 * MIB, true, true, false),
            (4 * MIB, false, true, false),
            (u64::MAX, false, false, false),
        ];
        for (len, tty, json, want) in table {
            assert_eq!(
                should_show_progress(len, tty, json),
                want,
                "len {len} tty {tty} json {json}"
            );
        }
    }

    #[test]
    fn put_bodies_stream_files_and_bound_everything_else() {
        // A file is not read ahead: only its length is taken.
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("in.bin");
        std::fs::write(&f, b"hello").unwrap();
        let (mut r, len) = put_body(&f).unwrap();
        let mut v = Vec::new();
        r.read_to_end(&mut v).unwrap();
        assert_eq!((len, v.as_slice()), (5, &b"hello"[..]));
        // A device without end is read only up to the limit, then refused
        // with the node's code for a body too large (before the fix it was
        // read until memory ran out).
        let e = put_body_within(Path::new("/dev/zero"), 1 << 20)
            .err()
            .unwrap();
        assert_eq!(e.error_code(), Some(ErrorCode::ResourceLimit), "{e}");
        let e = put_body(&dir.path().join("missing")).err().unwrap();
        assert_eq!(e.error_code(), Some(ErrorCode::InvalidArgument), "{e}");
    }

    /// A home whose admin socket answers one request with `raw`.
    fn fake_node(raw: &'static [u8]) -> (tempfile::TempDir, Home, std::thread::JoinHandle<()>) {
        use std::io::Write as _;
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path());
        let l = std::os::unix::net::UnixListener::bind(home.path("admin.sock")).unwrap();
        let h = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut head = [0u8; 256];
            let _ = s.read(&mut head).unwrap();
            s.write_all(raw).unwrap();
        });
        (dir, home, h)
    }

    /// The names in `dir` other than `admin.sock`.
    fn files(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "admin.sock")
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_failed_get_leaves_an_existing_output_as_it_was() {
        let id = "ab".repeat(32);
        // The node fails after 3 of 10 bytes. Before the fix OUT was
        // truncated by the get, then removed.
        let (dir, home, node) = fake_node(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
        let out = dir.path().join("out.bin");
        std::fs::write(&out, b"precious").unwrap();
        let e = get(&home, &id, Some(&out), false).unwrap_err();
        node.join().unwrap();
        assert_eq!(e.error_code(), Some(ErrorCode::LocalIo), "{e}");
        assert_eq!(std::fs::read(&out).unwrap(), b"precious");
        assert_eq!(files(dir.path()), ["out.bin"], "no temporary file is left");
        // A whole body replaces it.
        let (dir, home, node) = fake_node(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nnew");
        let out = dir.path().join("out.bin");
        std::fs::write(&out, b"precious").unwrap();
        get(&home, &id, Some(&out), false).unwrap();
        node.join().unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"new");
        assert_eq!(files(dir.path()), ["out.bin"]);
    }

    #[test]
    fn a_get_writes_through_a_symlink_keeps_the_mode_and_leaves_a_pipe_in_place() {
        use std::os::unix::fs::{FileTypeExt, PermissionsExt};
        let id = "ab".repeat(32);
        // Through a symlink: the file it names is replaced, keeping its
        // mode; the link stays a link.
        let (dir, home, node) = fake_node(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nnew");
        let real = dir.path().join("real.bin");
        std::fs::write(&real, b"old").unwrap();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o640)).unwrap();
        let link = dir.path().join("link.bin");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        get(&home, &id, Some(&link), false).unwrap();
        node.join().unwrap();
        assert_eq!(std::fs::read(&real).unwrap(), b"new");
        let mode = std::fs::metadata(&real).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        // A pipe (as a device like /dev/null) is written, not replaced.
        let (dir, home, node) = fake_node(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc");
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::read(fifo).unwrap())
        };
        get(&home, &id, Some(&fifo), false).unwrap();
        node.join().unwrap();
        assert_eq!(reader.join().unwrap(), b"abc");
        assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
        assert_eq!(files(dir.path()), ["fifo"], "no temporary file is left");
    }

    fn drive(p: &mut Progress, total: u64) -> Vec<Option<Phase>> {
        let mut seen = Vec::new();
        for phase in [Phase::Upload, Phase::Waiting, Phase::Download] {
            for done in [0, total / 2, total] {
                p.report(phase, done, total);
                seen.push(p.shown.as_ref().map(|(s, _)| *s));
            }
        }
        seen
    }

    #[test]
    fn nothing_is_drawn_when_stderr_is_not_a_terminal_or_json() {
        for (tty, json) in [(false, false), (true, true), (false, true)] {
            for working in [None, Some("sealing and placing")] {
                let mut p = Progress::new(tty, json, working);
                assert!(drive(&mut p, 64 << 20).iter().all(Option::is_none));
            }
        }
    }

    #[test]
    fn terminal_gets_bars_for_big_bodies_and_the_spinner_in_between() {
        let mut p = Progress::new(true, false, Some("sealing and placing"));
        let seen = drive(&mut p, 8 << 20);
        assert!(seen[..3].iter().all(|s| *s == Some(Phase::Upload)));
        assert!(seen[3..6].iter().all(|s| *s == Some(Phase::Waiting)));
        assert!(seen[6..].iter().all(|s| *s == Some(Phase::Download)));

        // Small bodies: no bar; the spinner stays until the end.
        let mut p = Progress::new(true, false, Some("fetching symbols"));
        let seen = drive(&mut p, 1 << 20);
        assert!(seen[..3].iter().all(Option::is_none));
        assert!(seen[3..].iter().all(|s| *s == Some(Phase::Waiting)));
        drop(p);

        // No spinner asked for: the bar is cleared while the node works.
        let mut p = Progress::new(true, false, None);
        let seen = drive(&mut p, 8 << 20);
        assert!(seen[3..6].iter().all(Option::is_none));
        assert!(seen[6..].iter().all(|s| *s == Some(Phase::Download)));
    }
}
