//! `fcp`: the command-line interface of the Flywheel Connector Protocol node.
#![forbid(unsafe_code)]

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

mod bench;
use fcp_core::{ErrorCode, FcpError};

/// Flywheel Connector Protocol V2 node and tools.
#[derive(Debug, Parser)]
#[command(name = "fcp", version, about)]
struct Cli {
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
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
enum BenchCmd {
    /// The symbol path: put (chunk, encode, seal, frame) and get (parse, open,
    /// decode, reassemble) against the raw RaptorQ + AEAD limit.
    Symbols {
        /// Payload size in bytes.
        #[arg(long, default_value_t = 1 << 20)]
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
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => code,
        Err(err) => {
            if cli.json {
                println!("{}", serde_json::json!({ "error": err }));
            } else {
                eprintln!("error: {err}");
            }
            ExitCode::from(2)
        }
    }
}

fn run(cli: &Cli) -> Result<ExitCode, FcpError> {
    match &cli.command {
        Command::Conformance {
            action: ConformanceCmd::Verify { dir },
        } => conformance_verify(dir.as_deref(), cli.json),
        Command::Errors { markdown: true, .. } => {
            print!("{}", fcp_core::error::registry_markdown());
            Ok(ExitCode::SUCCESS)
        }
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
