//! `memo`: the reference node and command-line client.
//!
//! Thin over memo-sdk: it parses arguments, loads config and wires SDK parts together.
// Input from the network, the disk or a person never panics the program: no unwrap, expect or
// panic outside tests (the test kit's suites panic by design, and say so).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod client_cmd;
mod demo;
mod devnet;
mod devnet_page;
mod init_cmd;
mod node;
mod s3_cmd;

/// mimalloc with transparent huge pages: a keeper's index and page cache are large and read
/// at random (see `memo_sdk::alloc`).
#[global_allocator]
static ALLOC: memo_sdk::alloc::Allocator = memo_sdk::alloc::Allocator;

use clap::{CommandFactory, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// The version with the commit it was built from (`build.rs`).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("MEMO_COMMIT"),
    ")"
);

/// memo: decentralized storage you can embed.
#[derive(Parser, Debug)]
#[command(name = "memo", version = VERSION, about)]
struct Cli {
    /// Print machine-readable JSON instead of text (errors too, on stdout).
    #[arg(long, global = true)]
    json: bool,
    /// No progress or notes on stderr; only results and errors.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Sizes in exact bytes instead of KiB, MiB, ...
    #[arg(long, global = true)]
    bytes: bool,
    /// More log output on stderr: -v for info, -vv for debug (RUST_LOG overrides).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Config file: your client config for the client commands (or MEMO_CONFIG), or the node
    /// config for `memo node`.
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the whole system on an embedded local network and check every step.
    Demo(demo::DemoArgs),
    /// Run a local network with every node in its own process, until Ctrl-C.
    Devnet(devnet::DevnetArgs),
    /// Run one keeper or provider (for operators).
    Node(node::NodeArgs),
    /// Serve your objects over S3 (boto3, aws-cli, rclone) until Ctrl-C.
    S3(s3_cmd::S3Args),
    /// Print a shell completion script (e.g. `memo completions bash > ~/.local/share/bash-completion/completions/memo`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff): `memo man | man -l -`.
    Man,
    /// Write a client config for a network you reach through one keeper (and a key, unless
    /// it exists): `memo init --keeper ACCOUNT@MULTIADDR [FILE]`.
    Init(init_cmd::InitArgs),
    /// Show the account of a key file, first creating the file with a fresh random key (mode
    /// 0600) if it does not exist.
    Key {
        /// The key file.
        file: PathBuf,
    },
    #[command(flatten)]
    Client(client_cmd::ClientCommand),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    // The consensus engine logs every vote and retry at info: keep it at warn unless asked.
    let level = match cli.verbose {
        0 => "warn",
        1 => "info,openraft=warn",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        )
        .with_writer(std::io::stderr)
        // Colours only on a terminal: a log file (a devnet node's, say) gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match &cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut Cli::command(), "memo", &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        Command::Man => {
            return match clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => report(
                    &anyhow::anyhow!("writing the man page: {e}"),
                    Default::default(),
                ),
            };
        }
        _ => {}
    }
    let style = client_cmd::Style {
        json: cli.json,
        quiet: cli.quiet,
        bytes: cli.bytes,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return report(
                &anyhow::anyhow!("cannot start the async runtime: {e}"),
                style,
            );
        }
    };
    let config = cli.config;
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Demo(_) | Command::Devnet(_) if config.is_some() => Err(anyhow::anyhow!(
                "--config is for the client commands and `memo node`; demo and devnet write their own configs"
            )),
            Command::Demo(args) => demo::run(args, style.json).await,
            Command::Devnet(args) => devnet::run(args, style.json).await,
            Command::Node(args) => node::run(args, config).await,
            Command::S3(args) => s3_cmd::run(args, config).await,
            Command::Client(cmd) => client_cmd::run(cmd, config, style).await,
            Command::Key { file } => key(&file, style),
            Command::Init(args) => init_cmd::run(args, config, style.json, style.quiet).await,
            Command::Completions { .. } | Command::Man => Ok(()),
        }
    });
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(&e, style),
    }
}

/// A command line clap refused (or `--help`, `--version`): as clap prints it, or with `--json`
/// anywhere on the line an error as JSON on stdout. Exit code 2 for a usage error.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let json = std::env::args_os().any(|a| a == "--json");
    if !json || matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        e.exit();
    }
    let text = e.render().to_string();
    // The message without clap's usage and tip lines.
    let message = text
        .lines()
        .take_while(|l| !l.starts_with("Usage:") && !l.trim_start().starts_with("tip:"))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let message = message.trim_start_matches("error: ");
    println!(
        "{}",
        serde_json::json!({ "error": message, "kind": "usage", "hint": "memo --help" })
    );
    ExitCode::from(2)
}

/// `memo key FILE`.
fn key(file: &std::path::Path, style: client_cmd::Style) -> anyhow::Result<()> {
    if file.is_dir() {
        anyhow::bail!("{} is a directory: give a key file's name", file.display());
    }
    let created = !file.exists();
    let kp = memo_sdk::config::load_or_create_key(file)?;
    if style.json {
        println!(
            "{}",
            serde_json::json!({ "account": kp.account().to_hex(), "file": file.display().to_string(), "created": created })
        );
    } else {
        println!("{}", kp.account());
        if created && !style.quiet {
            eprintln!(
                "created {} with a fresh key: whoever reads the file controls the account",
                file.display()
            );
        }
    }
    Ok(())
}

/// Prints an error (as JSON with `--json`, on stdout) with a hint where one helps, and picks
/// the exit code: 130 when interrupted, 1 otherwise.
fn report(e: &anyhow::Error, style: client_cmd::Style) -> ExitCode {
    let (kind, hint) = classify(e);
    let interrupted = kind == "interrupted";
    let message = client_cmd::name_peers(&format!("{e:#}"));
    if style.json {
        let v = serde_json::json!({ "error": message, "kind": kind, "hint": hint });
        println!("{v}");
    } else {
        eprintln!("error: {message}");
        if let Some(h) = hint {
            eprintln!("hint: {h}");
        }
    }
    if interrupted {
        ExitCode::from(130)
    } else {
        ExitCode::FAILURE
    }
}

/// An error's kind for scripts, and a hint for people.
fn classify(e: &anyhow::Error) -> (&'static str, Option<&'static str>) {
    use memo_sdk::ClientError;
    for cause in e.chain() {
        if cause.is::<client_cmd::Interrupted>() {
            return ("interrupted", None);
        }
        if let Some(c) = cause.downcast_ref::<ClientError>() {
            return match c {
                ClientError::NoKeeper { .. } => (
                    "unreachable",
                    Some(
                        "is the devnet running? (memo devnet --dir DIR) Are the keepers in your client config up?",
                    ),
                ),
                ClientError::NotFound(_) => (
                    "not_found",
                    Some(
                        "memo ls lists your objects; another user's object reads with its memo-obj1 reference",
                    ),
                ),
                ClientError::Ambiguous { .. } => ("ambiguous", None),
                ClientError::Refused(_) => ("refused", None),
                ClientError::Io(_) => ("io", None),
                _ => ("failed", None),
            };
        }
        if cause.is::<std::io::Error>() {
            return ("io", None);
        }
    }
    ("failed", None)
}
