//! The client commands: put, get, rm, ls, stat, account.

use anyhow::{Context, Result, bail};
use memo_core::codec::Progress;
use memo_core::ownership::ShardHealth;
use memo_core::protocol::ChunkStatus;
use memo_sdk::config::ClientFile;
use serde_json::json;
use std::io::IsTerminal;
use std::path::PathBuf;

/// Prints a line to standard output; a closed pipe (e.g. `| head`) ends quietly.
macro_rules! emit {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        if let Err(e) = writeln!(out, $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
        }
    }};
}

/// A client command.
#[derive(clap::Subcommand, Debug)]
pub enum ClientCommand {
    /// Store a file; prints its object id.
    Put {
        /// The file.
        file: PathBuf,
        /// The name in your index (default: the file's name).
        #[arg(long)]
        name: Option<String>,
    },
    /// Read an object by id, name, or a shared memo-obj1 handle.
    Get {
        /// Id (or unique prefix of 8+ hex digits), name, or handle.
        what: String,
        /// Write here (atomically) instead of standard output.
        #[arg(short, long)]
        out: Option<PathBuf>,
        /// Only bytes START..END.
        #[arg(long, value_parser = parse_range)]
        range: Option<std::ops::Range<u64>>,
    },
    /// Drop one reference to an object (the last owner's last rm purges it).
    Rm {
        /// Id or name.
        what: String,
    },
    /// List your objects.
    Ls,
    /// An object's size, your reference count, and each chunk's health.
    Stat {
        /// Id or name.
        what: String,
    },
    /// Your account: balance and stored bytes.
    Account,
}

fn parse_range(s: &str) -> Result<std::ops::Range<u64>, String> {
    let (a, b) = s.split_once("..").ok_or("expected START..END")?;
    let a: u64 = a.parse().map_err(|_| "bad START")?;
    let b: u64 = b.parse().map_err(|_| "bad END")?;
    if b < a {
        return Err("END is before START".into());
    }
    Ok(a..b)
}

struct Bar {
    on: bool,
    verb: &'static str,
}

impl Bar {
    fn new(verb: &'static str, json: bool) -> Self {
        Self {
            on: !json && std::io::stderr().is_terminal(),
            verb,
        }
    }
    fn show(&self, p: Progress) {
        if !self.on {
            return;
        }
        let mib = p.done as f64 / 1048576.0;
        match p.total {
            Some(t) if t > 0 => eprint!(
                "\r{} {mib:.1} / {:.1} MiB ({:.0}%)   ",
                self.verb,
                t as f64 / 1048576.0,
                p.done as f64 * 100.0 / t as f64
            ),
            _ => eprint!("\r{} {mib:.1} MiB   ", self.verb),
        }
    }
    fn done(&self) {
        if self.on {
            eprintln!();
        }
    }
}

/// A shard's health as `memo stat` prints it.
fn health_name(placed: bool, health: ShardHealth) -> &'static str {
    match (placed, health) {
        (false, _) => "unplaced",
        (true, ShardHealth::Healthy) => "healthy",
        (true, ShardHealth::Suspect) => "suspect",
        (true, ShardHealth::Lost) => "lost",
    }
}

/// Each shard's health in chunk `c`, as `memo stat` prints it.
fn health_names(c: &ChunkStatus) -> Vec<&'static str> {
    c.holders
        .iter()
        .zip(&c.health)
        .map(|(h, s)| health_name(h.is_some(), *s))
        .collect()
}

/// Runs a client command.
pub async fn run(cmd: ClientCommand, config: Option<PathBuf>, json: bool) -> Result<()> {
    let Some(config) = config else {
        bail!(
            "no client config: pass --config FILE or set MEMO_CONFIG (memo devnet writes DIR/users/NAME.toml)"
        );
    };
    let client = ClientFile::load(&config)?.connect(|_| {}).await?;
    match cmd {
        ClientCommand::Put { file, name } => {
            let name = name.unwrap_or_else(|| {
                file.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            });
            let f = tokio::fs::File::open(&file)
                .await
                .with_context(|| format!("opening {}", file.display()))?;
            let size = f.metadata().await.ok().map(|m| m.len());
            let bar = Bar::new("put", json);
            let report = client.put(&name, f, size, &mut |p| bar.show(p)).await?;
            bar.done();
            if json {
                emit!("{}", serde_json::to_string(&report)?);
            } else {
                emit!("{}", report.id);
                eprintln!(
                    "stored {} ({} bytes) in {} chunks; uploaded {} chunks ({} bytes), {} already stored",
                    report.name,
                    report.size,
                    report.chunks,
                    report.uploaded_chunks,
                    report.uploaded_bytes,
                    report.chunks - report.uploaded_chunks
                );
            }
        }
        ClientCommand::Get { what, out, range } => {
            let bar = Bar::new("get", json);
            let n = match &out {
                Some(path) => {
                    let tmp = path.with_file_name(format!(
                        ".{}.memo-partial",
                        path.file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default()
                    ));
                    let mut f = tokio::fs::File::create(&tmp)
                        .await
                        .with_context(|| format!("creating {}", tmp.display()))?;
                    let r = client.get(&what, range, &mut f, &mut |p| bar.show(p)).await;
                    match r {
                        Ok(n) => {
                            f.sync_all().await?;
                            tokio::fs::rename(&tmp, path).await?;
                            n
                        }
                        Err(e) => {
                            let _ = tokio::fs::remove_file(&tmp).await;
                            return Err(e.into());
                        }
                    }
                }
                None => {
                    let mut stdout = tokio::io::stdout();
                    client
                        .get(&what, range, &mut stdout, &mut |p| bar.show(p))
                        .await?
                }
            };
            bar.done();
            if json && out.is_some() {
                emit!(
                    "{}",
                    json!({ "bytes": n, "out": out.map(|p| p.display().to_string()) })
                );
            }
        }
        ClientCommand::Rm { what } => {
            let id = client.delete(&what).await?;
            if json {
                emit!("{}", json!({ "id": id.to_hex(), "deleted": true }));
            } else {
                eprintln!("removed one reference to {id}");
            }
        }
        ClientCommand::Ls => {
            let list = client.list().await?;
            if json {
                emit!("{}", serde_json::to_string(&list)?);
            } else {
                for o in list {
                    emit!("{}  {:>12}  refs {}  {}", o.id, o.size, o.refs, o.name);
                }
            }
        }
        ClientCommand::Stat { what } => {
            let st = client.stat(&what).await?;
            if json {
                let chunks: Vec<_> = st
                    .chunks
                    .iter()
                    .map(|c| {
                        json!({
                            "chunk": c.chunk.to_hex(),
                            "needed": c.needed,
                            "total": c.total,
                            "healthy": c.healthy,
                            "holders": c.holders.iter().map(|h| h.map(|a| a.to_hex())).collect::<Vec<_>>(),
                            "health": health_names(c),
                        })
                    })
                    .collect();
                emit!(
                    "{}",
                    json!({ "id": st.object.id.to_hex(), "name": st.object.name, "size": st.object.size, "refs": st.object.refs, "chunks": chunks })
                );
            } else {
                emit!(
                    "{}  {}  {} bytes  refs {}",
                    st.object.id,
                    st.object.name,
                    st.object.size,
                    st.object.refs
                );
                for c in &st.chunks {
                    let names = health_names(c);
                    let mut line = format!(
                        "  chunk {}  {}/{} healthy (needs {})",
                        c.chunk.short(),
                        c.healthy,
                        c.total,
                        c.needed
                    );
                    for state in ["suspect", "lost", "unplaced"] {
                        let n = names.iter().filter(|n| **n == state).count();
                        if n > 0 {
                            line.push_str(&format!(", {n} {state}"));
                        }
                    }
                    emit!("{line}");
                }
            }
        }
        ClientCommand::Account => {
            let a = client.account_status().await?;
            if json {
                emit!(
                    "{}",
                    json!({ "account": a.user.to_hex(), "balance": a.balance, "stored_bytes": a.stored_bytes, "quota": a.quota, "objects": a.objects })
                );
            } else {
                emit!(
                    "account {}\nbalance {}\nstored {} bytes of {}\nobjects {}",
                    a.user,
                    a.balance,
                    a.stored_bytes,
                    a.quota,
                    a.objects
                );
            }
        }
    }
    Ok(())
}
