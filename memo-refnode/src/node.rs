//! `memo node --config FILE`: one keeper or provider, until SIGINT or SIGTERM.
//!
//! The node itself is built by the SDK ([`memo_sdk::node::Node`]); this file reads the
//! arguments, reports the node in `DATA_DIR/node.json`, keeps a keeper's repair counters in
//! `DATA_DIR/repair.json`, and stops on a signal.

use anyhow::Result;
use memo_sdk::Env;
use memo_sdk::config::{NodeConfig, Role, write_atomic};
use memo_sdk::node::Node;
use std::path::PathBuf;
use tracing::{info, warn};

/// A keeper's repair counters ([`memo_sdk::keeper::repair::RepairStats`] as JSON) in its data dir,
/// rewritten when they change (at most four times a second).
pub const REPAIR_STATS_FILE: &str = "repair.json";

/// Options of `memo node`.
#[derive(clap::Args, Debug)]
pub struct NodeArgs {
    /// The node's config file (or `memo --config FILE node`).
    #[arg(long, env = "MEMO_NODE_CONFIG")]
    pub config: Option<PathBuf>,
}

/// What a running node reports in `DATA_DIR/node.json` once it serves.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
pub struct NodeReady {
    /// The node's name.
    pub name: String,
    /// "keeper" or "provider".
    pub role: String,
    /// Its account id.
    pub account: String,
    /// Its process id.
    pub pid: u32,
    /// The address it listens on.
    pub listen: String,
    /// Its data directory.
    pub data_dir: String,
    /// Its status page (`http://HOST:PORT/`, with `/api/status`, `/health` and `/metrics`),
    /// when its config turns the status server on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// Runs a node until a shutdown signal.
pub async fn run(args: NodeArgs, global_config: Option<PathBuf>) -> Result<()> {
    let Some(config) = args.config.or(global_config) else {
        anyhow::bail!("no node config: pass --config FILE or set MEMO_NODE_CONFIG");
    };
    let cfg = NodeConfig::load(&config)?;
    let node = Node::start(&cfg, Env::real()).await?;
    let ready = NodeReady {
        name: node.name.clone(),
        role: match node.role {
            Role::Keeper => "keeper".into(),
            Role::Provider => "provider".into(),
        },
        account: node.account.to_hex(),
        pid: std::process::id(),
        listen: node.listen.clone(),
        data_dir: node.data_dir.display().to_string(),
        status: node.status.map(|a| format!("http://{a}/")),
    };
    write_atomic(
        &node.data_dir.join("node.json"),
        serde_json::to_string_pretty(&ready)?.as_bytes(),
    )?;
    let publish = node.repairer.clone().map(|repairer| {
        let stats_file = node.data_dir.join(REPAIR_STATS_FILE);
        tokio::spawn(async move {
            let mut last = None;
            loop {
                let now = repairer.stats();
                if last != Some(now) {
                    match serde_json::to_vec_pretty(&now) {
                        Ok(b) => {
                            if let Err(e) = write_atomic(&stats_file, &b) {
                                warn!("writing repair stats: {e}");
                            }
                        }
                        Err(e) => warn!("encoding repair stats: {e}"),
                    }
                    last = Some(now);
                }
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
        })
    });
    // For a person at a terminal; a log file has the "serving" event already.
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        match &ready.status {
            Some(url) => eprintln!(
                "{} {} serving on {}; status page {url}",
                ready.role, ready.name, ready.listen
            ),
            None => eprintln!("{} {} serving on {}", ready.role, ready.name, ready.listen),
        }
    }
    node.run_until(async {
        tokio::select! {
            _ = shutdown_signal() => {}
            _ = parent_gone() => info!("the devnet that started this node is gone; shutting down"),
        }
    })
    .await;
    if let Some(p) = publish {
        p.abort();
    }
    Ok(())
}

/// Resolves when the process named by `MEMO_PARENT_PID` (set by `memo devnet`) has exited;
/// never otherwise. Keeps devnet nodes from outliving a devnet that was killed.
async fn parent_gone() {
    let Some(pid) = std::env::var("MEMO_PARENT_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
    else {
        return std::future::pending().await;
    };
    let proc_dir = std::path::PathBuf::from(format!("/proc/{pid}"));
    if !proc_dir.exists() {
        return std::future::pending().await;
    }
    while proc_dir.exists() {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
