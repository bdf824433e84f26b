//! `fcp`: the command-line interface of the Flywheel Connector Protocol node.
#![forbid(unsafe_code)]

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

/// mimalloc keeps freed pages for reuse: a get hands out multi-MiB buffers
/// at a high rate, and with the system allocator each one came back from the
/// kernel as fresh pages, page-faulted and zeroed on first touch.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod bench;
mod demo;
mod node_cmds;
use fcp_core::{ErrorCode, FcpError};

/// Flywheel Connector Protocol V2 node and tools.
#[derive(Debug, Parser)]
#[command(name = "fcp", version, about)]
struct Cli {
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// The node's home directory (default: $FCP_HOME, else ~/.fcp).
    #[arg(long, global = true, value_name = "DIR")]
    home: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create this node's keys and configuration.
    Init {
        /// Node id: 1..=64 bytes of [a-z0-9._-].
        #[arg(long)]
        node_id: String,
        /// Address for UDP (FCPS) and TCP (FCPC), e.g. 127.0.0.1:7401.
        #[arg(long, value_name = "IP:PORT")]
        listen: String,
    },
    /// Owner operations (on the owner's device).
    Owner {
        #[command(subcommand)]
        action: OwnerCmd,
    },
    /// This node.
    Node {
        #[command(subcommand)]
        action: NodeCmd,
    },
    /// Import an enrollment bundle written by `fcp owner enroll`.
    Join {
        /// The bundle file.
        bundle: PathBuf,
    },
    /// Store a file (or stdin with `-`) in a zone; prints its ObjectId.
    Put {
        /// File to store, or `-` for stdin.
        file: PathBuf,
        /// Zone of the object.
        #[arg(long, default_value = "z:private")]
        zone: String,
    },
    /// Fetch an object by id.
    Get {
        /// The ObjectId (64 hex characters).
        object_id: String,
        /// Output file (default: stdout).
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
    },
    /// The running node: peers, objects and their coverage, counters.
    Status,
    /// A three-node mesh on 127.0.0.1-3: put on node 1, kill node 1, get on node 3.
    Demo {
        /// Size of the demo file in bytes.
        #[arg(long, default_value_t = 4 << 20)]
        size: usize,
    },
    /// Known peers and whether they are connected.
    Peers,
    /// Known-answer vectors (profile §7).
    Conformance {
        #[command(subcommand)]
        action: ConformanceCmd,
    },
    /// Benchmarks with JSON output (review 000 #10).
    Bench {
        #[command(subcommand)]
        which: BenchCmd,
    },
    /// Look up FCP error codes (spec §24): all of them, or one.
    Errors {
        /// A code such as FCP-1002 (or 1002).
        code: Option<String>,
        /// Print the whole registry as the Markdown of docs/error-codes.md.
        #[arg(long, conflicts_with = "code")]
        markdown: bool,
    },
}

#[derive(Debug, Subcommand)]
enum OwnerCmd {
    /// Create the owner key and the five standard zones; enroll this node.
    Init,
    /// Enroll a device: sign its attestation and enrollment, wrap zone keys for it.
    Enroll {
        /// The device's `fcp node identity` JSON.
        identity: PathBuf,
        /// Zones to grant, comma-separated (e.g. z:private,z:work).
        #[arg(long)]
        zones: String,
        /// Where to write the bundle.
        #[arg(short = 'o', long = "output", value_name = "BUNDLE")]
        output: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum NodeCmd {
    /// Print this node's public identity as JSON.
    Identity,
    /// Run the node in the foreground (logs to stderr) until SIGINT/SIGTERM.
    Run {
        /// Fault injection for tests: drop this many of every 1000 received datagrams.
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=1000))]
        drop_permille: u16,
    },
}

#[derive(Debug, Subcommand)]
enum BenchCmd {
    /// The symbol path: put (chunk, encode, seal, frame) and get (parse, open,
    /// decode, reassemble) against the raw RaptorQ + AEAD limit.
    Symbols {
        /// Payload size in bytes.
        #[arg(long, default_value_t = 1 << 20)]
        size: usize,
    },
    /// A mesh of real `fcp node run` processes on 127.0.0.x: put on node 1,
    /// get on the last node.
    Mesh {
        /// Nodes (2..=9).
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// Payload size in bytes.
        #[arg(long, default_value_t = 16 << 20)]
        size: usize,
    },
}

#[derive(Debug, Subcommand)]
enum ConformanceCmd {
    /// Recompute every vector case; prints `N passed, M failed`.
    ///
    /// Without DIR, verifies the vectors built into this binary.
    Verify {
        /// A directory of `*.json` vector files.
        dir: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return bad_arguments(e),
    };
    match run(&cli) {
        Ok(code) => code,
        Err(err) => fail(&err, cli.json),
    }
}

/// Print a failure with its FCP code, as JSON under `--json`; exit 2.
fn fail(err: &FcpError, json: bool) -> ExitCode {
    if json {
        println!("{}", serde_json::json!({ "error": err }));
    } else {
        eprintln!("error: {err}");
    }
    ExitCode::from(2)
}

/// A command line clap refused is an FCP-1030 failure like any other (JSON
/// under `--json`); `--help` and `--version` print as clap does and exit 0.
fn bad_arguments(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
    }
    let text = e.render().to_string();
    let msg = text.trim().trim_start_matches("error: ").to_owned();
    let json = std::env::args().skip(1).any(|a| a == "--json");
    fail(&FcpError::new(ErrorCode::InvalidArgument, msg), json)
}

fn run(cli: &Cli) -> Result<ExitCode, FcpError> {
    let home =
        || fcp_node::home::Home::resolve(cli.home.as_deref()).map_err(|e| FcpError::from_err(&e));
    match &cli.command {
        Command::Init { node_id, listen } => node_cmds::init(&home()?, node_id, listen, cli.json),
        Command::Owner {
            action: OwnerCmd::Init,
        } => node_cmds::owner_init(&home()?, cli.json),
        Command::Owner {
            action:
                OwnerCmd::Enroll {
                    identity,
                    zones,
                    output,
                },
        } => node_cmds::owner_enroll(&home()?, identity, zones, output, cli.json),
        Command::Node {
            action: NodeCmd::Identity,
        } => node_cmds::identity(&home()?),
        Command::Join { bundle } => node_cmds::join(&home()?, bundle, cli.json),
        Command::Node {
            action: NodeCmd::Run { drop_permille },
        } => node_cmds::run(home()?, *drop_permille),
        Command::Put { file, zone } => node_cmds::put(&home()?, file, zone, cli.json),
        Command::Get { object_id, output } => {
            node_cmds::get(&home()?, object_id, output.as_deref(), cli.json)
        }
        Command::Status => node_cmds::show(&home()?, "status", cli.json),
        Command::Demo { size } => demo::demo(*size, cli.json),
        Command::Peers => node_cmds::show(&home()?, "peers", cli.json),
        Command::Conformance {
            action: ConformanceCmd::Verify { dir },
        } => conformance_verify(dir.as_deref(), cli.json),
        Command::Errors { markdown: true, .. } => {
            print!("{}", fcp_core::error::registry_markdown());
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            which: BenchCmd::Mesh { nodes, size },
        } => demo::bench_mesh(*nodes, *size, cli.json),
        Command::Errors { code, .. } => errors(code.as_deref(), cli.json),
        Command::Bench {
            which: BenchCmd::Symbols { size },
        } => {
            let r = bench::symbols(*size)?;
            if cli.json {
                println!(
                    "{}",
                    serde_json::to_string(&r)
                        .map_err(|e| FcpError::new(ErrorCode::Internal, e.to_string()))?
                );
            } else {
                println!("{}", r.text());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn conformance_verify(dir: Option<&std::path::Path>, json: bool) -> Result<ExitCode, FcpError> {
    let report = match dir {
        Some(d) => fcp_conformance::verify_dir(d)
            .map_err(|e| FcpError::new(ErrorCode::InvalidArgument, e.to_string()))?,
        None => fcp_conformance::verify_embedded(),
    };
    if json {
        let failures: Vec<_> = report.failures.iter().map(|f| f.to_string()).collect();
        println!(
            "{}",
            serde_json::json!({
                "passed": report.passed,
                "failed": report.failed,
                "per_kind": report.per_kind,
                "failures": failures,
            })
        );
    } else {
        for f in &report.failures {
            println!("FAIL {f}");
        }
        for (kind, n) in &report.per_kind {
            println!("  {kind:<18} {n} cases");
        }
        println!("{}", report.summary());
    }
    Ok(if report.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn errors(code: Option<&str>, json: bool) -> Result<ExitCode, FcpError> {
    let codes: Vec<ErrorCode> = match code {
        Some(c) => vec![ErrorCode::from_code(c).ok_or_else(|| {
            FcpError::new(
                ErrorCode::InvalidArgument,
                format!("unknown error code `{c}`"),
            )
        })?],
        None => ErrorCode::ALL.to_vec(),
    };
    for c in codes {
        if json {
            println!(
                "{}",
                serde_json::json!({
                    "code": c.as_code(), "name": c.name(), "family": c.family(),
                    "retryable": c.retryable(), "hint": c.hint(),
                })
            );
        } else {
            println!("{c}  {:<22} {}", c.name(), c.hint());
        }
    }
    Ok(ExitCode::SUCCESS)
}
