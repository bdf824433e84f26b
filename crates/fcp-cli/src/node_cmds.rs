//! `fcp init`, `fcp owner init|enroll`, `fcp node identity`, `fcp join`.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use fcp_core::{ErrorCode, FcpError, ZoneId};
use fcp_node::enroll::{self, NodeIdentity};
use fcp_node::home::Home;

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

/// `fcp node run` (foreground; logs to stderr).
pub fn run(home: Home, drop_permille: u16) -> Result<ExitCode, FcpError> {
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

fn admin(home: &Home, method: &str, target: &str, body: &[u8]) -> Result<Vec<u8>, FcpError> {
    let resp = fcp_node::admin::call(&home.path("admin.sock"), method, target, body)?;
    if resp.status != 200 {
        return Err(fcp_node::admin::response_error(&resp));
    }
    Ok(resp.body)
}

/// `fcp put FILE|- --zone Z`: prints the ObjectId alone on stdout.
pub fn put(home: &Home, file: &Path, zone: &str, json: bool) -> Result<ExitCode, FcpError> {
    ZoneId::new(zone).map_err(|e| FcpError::from_err(&e))?;
    let payload = if file.as_os_str() == "-" {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut v)
            .map_err(|e| FcpError::new(ErrorCode::LocalIo, e.to_string()))?;
        v
    } else {
        std::fs::read(file).map_err(|e| {
            FcpError::new(
                ErrorCode::InvalidArgument,
                format!("{}: {e}", file.display()),
            )
        })?
    };
    let big = payload.len() > 1 << 20 && std::io::IsTerminal::is_terminal(&std::io::stderr());
    if big {
        eprintln!("putting {} bytes into {zone}…", payload.len());
    }
    let body = admin(home, "POST", &format!("/put?zone={zone}"), &payload)?;
    let v: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| FcpError::new(ErrorCode::Internal, e.to_string()))?;
    if json {
        println!("{v}");
    } else {
        println!("{}", v["object_id"].as_str().unwrap_or_default());
    }
    Ok(ExitCode::SUCCESS)
}

/// `fcp get OBJECT_ID [-o OUT]`.
pub fn get(home: &Home, id: &str, out: Option<&Path>, json: bool) -> Result<ExitCode, FcpError> {
    let oid: fcp_core::ObjectId = id.parse().map_err(|e| FcpError::from_err(&e))?;
    let bytes = admin(home, "GET", &format!("/get/{oid}"), &[])?;
    match out {
        Some(p) if p.as_os_str() != "-" => {
            std::fs::write(p, &bytes)
                .map_err(|e| FcpError::new(ErrorCode::LocalIo, format!("{}: {e}", p.display())))?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "object_id": id, "bytes": bytes.len(), "output": p.display().to_string() })
                );
            }
        }
        _ => std::io::Write::write_all(&mut std::io::stdout(), &bytes)
            .map_err(|e| FcpError::new(ErrorCode::LocalIo, e.to_string()))?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `fcp status` / `fcp peers`.
pub fn show(home: &Home, what: &str, json: bool) -> Result<ExitCode, FcpError> {
    let body = admin(home, "GET", &format!("/{what}"), &[])?;
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
