//! The `statuslist` command line: a thin shell over the library.
//!
//! Each subcommand parses its arguments, calls the library and reports. Errors
//! are printed as one line, the `anyhow` chain joined by colons, with exit
//! status 1: no backtrace, even with `RUST_BACKTRACE` set, since the reader is
//! an operator and not a developer.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

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
    /// Run the service (the default when no command is given).
    ///
    /// With no configuration file (neither --config nor STATUSLIST_CONFIG) it
    /// starts in development mode: embedded store and a signing key kept
    /// under ./data, and demo clients whose key ships in examples/.
    Serve {
        /// The TOML configuration file; `STATUSLIST_*` variables override it.
        #[arg(long, value_name = "FILE", env = "STATUSLIST_CONFIG")]
        config: Option<PathBuf>,
    },
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
        // No subcommand: run the service, as `cargo run --release` promises.
        None => serve(std::env::var_os("STATUSLIST_CONFIG").map(PathBuf::from)),
        Some(Command::Serve { config }) => serve(config),
        Some(Command::Keygen { out }) => keygen(&out),
    }
}

fn serve(config: Option<PathBuf>) -> anyhow::Result<()> {
    statuslist::telemetry::init();
    let development = config.is_none();
    let settings = match &config {
        Some(path) => statuslist::config::Settings::load(path)
            .with_context(|| format!("invalid configuration in {}", path.display()))?,
        None => statuslist::config::Settings::development()
            .context("invalid development configuration")?,
    };
    actix_web::rt::System::new().block_on(async move {
        let app = statuslist::startup::Application::build(settings.clone(), config)
            .await
            .context("cannot start")?;
        if development {
            print_banner(&settings, app.port());
        }
        tracing::info!(port = app.port(), "listening");
        app.run_until_stopped().await.context("server failed")
    })
}

/// Says loudly that this is development mode, where it listens and how to
/// try it.
fn print_banner(settings: &statuslist::config::Settings, port: u16) {
    let base = &settings.public_base_url;
    eprintln!(
        "\n  statuslist is running in DEVELOPMENT MODE (no --config given)\n\
         \n  listening on   http://{ip}:{port}\
         \n  store          {store:?}\
         \n  signing key    {key}\
         \n  demo clients   '{demo}' (token lists, /t/) and '{demo_b}' (bitstring lists, /b/),\
         \n                 key examples/demo-client.key.pem: NEVER use it in production\
         \n\n  try it:\
         \n    curl {base}/health/ready\
         \n    curl {base}/.well-known/jwks.json\
         \n    POST {base}/issue with a JWT signed by the demo key (README, \"Try it\")\
         \n\n  for production, pass --config FILE (see README.md)\n",
        ip = settings.listen.ip(),
        store = settings.store.kind,
        key = settings.signing.key_file.display(),
        demo = statuslist::config::DEMO_CLIENT,
        demo_b = statuslist::config::DEMO_BITSTRING_CLIENT,
    );
}

fn keygen(dir: &Path) -> anyhow::Result<()> {
    let (key, path) = generate_into_dir(dir).context("cannot generate a service key")?;
    eprintln!("wrote {}", path.display());
    println!("{}", key.kid());
    Ok(())
}
