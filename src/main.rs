//! The `statuslist` command line: a thin shell over the library.
//!
//! Each subcommand parses its arguments, calls the library and reports. Errors
//! are printed as one line, the `anyhow` chain joined by colons, with exit
//! status 1: no backtrace, even with `RUST_BACKTRACE` set, since the reader is
//! an operator and not a developer.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};

use statuslist::publish::keys::generate_into_dir;

/// Credential status service: GOV.UK CRS API, IETF Token Status List and W3C
/// Bitstring Status List.
#[derive(Debug, Parser)]
#[command(name = "statuslist", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate a new ES256 (P-256) service signing key.
    ///
    /// Writes the key as PKCS#8 PEM to DIR/<kid>.pem (mode 0600 on unix),
    /// creating DIR if needed, and prints the key's kid (its RFC 7638 JWK
    /// thumbprint) on stdout. Naming files by kid lets one directory hold the
    /// current and the previous keys during a rotation. An existing file is
    /// never overwritten.
    Keygen {
        /// Directory to write the key file into.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        None => {
            // No subcommand: show what there is to run rather than fail.
            Cli::command().print_help().context("cannot print help")?;
            println!();
            Ok(())
        }
        Some(Command::Keygen { out }) => keygen(&out),
    }
}

fn keygen(dir: &Path) -> anyhow::Result<()> {
    let (key, path) = generate_into_dir(dir).context("cannot generate a service key")?;
    eprintln!("wrote {}", path.display());
    println!("{}", key.kid());
    Ok(())
}
