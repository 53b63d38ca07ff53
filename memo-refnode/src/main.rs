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
mod node;
mod s3_cmd;

/// mimalloc with transparent huge pages: a keeper's index and page cache are large and read
/// at random (see `memo_sdk::alloc`).
#[global_allocator]
static ALLOC: memo_sdk::alloc::Allocator = memo_sdk::alloc::Allocator;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// memo: decentralized storage you can embed.
#[derive(Parser, Debug)]
#[command(name = "memo", version, about)]
struct Cli {
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Client config file (for put, get, rm, ls, stat, account).
    #[arg(long, global = true, env = "MEMO_CONFIG")]
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
    #[command(flatten)]
    Client(client_cmd::ClientCommand),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (json, config) = (cli.json, cli.config);
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Demo(args) => demo::run(args, json).await,
            Command::Devnet(args) => devnet::run(args, json).await,
            Command::Node(args) => node::run(args).await,
            Command::S3(args) => s3_cmd::run(args, config).await,
            Command::Client(cmd) => client_cmd::run(cmd, config, json).await,
        }
    });
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
