//! The client commands: put, get, share, rm, ls, stat, account.

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use memo_core::codec::Progress;
use memo_core::ownership::ShardHealth;
use memo_core::protocol::ChunkStatus;
use memo_sdk::client::ObjectInfo;
use memo_sdk::config::ClientFile;
use memo_sdk::{RemoveOutcome, RemoveReport};
use serde_json::json;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

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

/// The nodes of the client config by account, so that messages name them as the config does.
static PEER_NAMES: std::sync::OnceLock<Vec<(memo_core::AccountId, String)>> =
    std::sync::OnceLock::new();

/// `text` with every node of the client config named as the config names it instead of by
/// account (`AccountId(9f1c0a2b)` or 64 hex digits).
pub fn name_peers(text: &str) -> String {
    let mut out = text.to_string();
    for (account, name) in PEER_NAMES.get().into_iter().flatten() {
        out = out
            .replace(&format!("{account:?}"), name)
            .replace(&account.to_hex(), name);
    }
    out
}

/// Options every client command takes.
#[derive(clap::Args, Debug, Default)]
pub struct ClientOpts {
    /// Your client config file (`memo devnet` writes DIR/users/NAME.toml).
    #[arg(long, env = "MEMO_CONFIG")]
    config: Option<PathBuf>,
}

/// A client command.
#[derive(clap::Subcommand, Debug)]
pub enum ClientCommand {
    /// Store a file; prints its object id, and its reference for sharing.
    Put {
        /// The file, or `-` for standard input (then --name is required), or with -r a
        /// directory.
        file: PathBuf,
        /// The name in your index (default: the file's name). With -r, the prefix of every
        /// file's name: PREFIX/path/in/the/tree (default: the directory's name).
        #[arg(long)]
        name: Option<String>,
        /// Store every file in the directory tree, each named PREFIX/its/path.
        #[arg(short, long)]
        recursive: bool,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Read an object by name, id, or a shared memo-obj1 reference.
    Get {
        /// Name, id (or unique prefix of 8+ hex digits), or memo-obj1 reference.
        what: String,
        /// Write here (atomically) instead of standard output; `-` is standard output.
        #[arg(short, long)]
        out: Option<PathBuf>,
        /// Only bytes START..END.
        #[arg(long, value_parser = parse_range, conflicts_with = "recursive")]
        range: Option<std::ops::Range<u64>>,
        /// Read every object named PREFIX/... into the directory given with -o, as its
        /// path below PREFIX.
        #[arg(short, long, requires = "out")]
        recursive: bool,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Print an object's memo-obj1 reference: whoever has it can read the object with
    /// `memo get REF`.
    Share {
        /// Name or id.
        what: String,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Drop one reference to an object: by name, the one stored under that name (the last
    /// owner's last rm purges the object from every provider).
    Rm {
        /// Name or id.
        what: String,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// List your objects: one line per name.
    Ls {
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// An object's size, your reference count, and each chunk's health.
    Stat {
        /// Name or id.
        what: String,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Your account: balance and stored bytes.
    Account {
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Your keepers' group: each keeper's role, term, leader and log position.
    Keepers {
        #[command(flatten)]
        opts: ClientOpts,
    },
}

impl ClientCommand {
    fn opts(&self) -> &ClientOpts {
        match self {
            ClientCommand::Put { opts, .. }
            | ClientCommand::Get { opts, .. }
            | ClientCommand::Share { opts, .. }
            | ClientCommand::Rm { opts, .. }
            | ClientCommand::Ls { opts }
            | ClientCommand::Stat { opts, .. }
            | ClientCommand::Account { opts }
            | ClientCommand::Keepers { opts } => opts,
        }
    }
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

/// How output looks: JSON or text, quiet or not, exact or human sizes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Style {
    /// Machine-readable JSON on stdout.
    pub json: bool,
    /// No progress and no notes on stderr.
    pub quiet: bool,
    /// Sizes in bytes instead of KiB, MiB, ...
    pub bytes: bool,
}

impl Style {
    fn size(&self, n: u64) -> String {
        if self.bytes { n.to_string() } else { human(n) }
    }
    /// A note for a person on stderr (not in JSON or quiet mode).
    fn note(&self, text: std::fmt::Arguments<'_>) {
        if !self.json && !self.quiet {
            eprintln!("{text}");
        }
    }
}

/// `n` bytes for a person: `512 B`, `1.5 KiB`, `9.5 MiB`, ...
pub fn human(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// A progress bar with rate and ETA on stderr, shown only when stderr is a terminal (and not
/// with `--json` or `-q`).
struct Bar(Option<indicatif::ProgressBar>, u64, Option<u64>);

impl Bar {
    fn new(verb: &'static str, style: Style) -> Self {
        if style.json || style.quiet || !std::io::stderr().is_terminal() {
            return Self(None, 0, None);
        }
        let bar = indicatif::ProgressBar::hidden();
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        bar.set_message(verb);
        Self(Some(bar), 0, None)
    }
    /// The same bar for one of several files: progress `done` shows as `base + done` of
    /// `total`.
    fn offset(bar: &Bar, base: u64, total: u64) -> Bar {
        Bar(bar.0.clone(), base, Some(total))
    }
    fn show(&self, mut p: Progress) {
        let Some(bar) = &self.0 else { return };
        if let Some(t) = self.2 {
            p = Progress {
                done: self.1 + p.done,
                total: Some(t),
            };
        }
        match p.total {
            Some(t) if t > 0 && bar.length() != Some(t) => {
                bar.set_length(t);
                if let Ok(s) = indicatif::ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
                ) {
                    bar.set_style(s.progress_chars("=> "));
                }
            }
            Some(_) => {}
            None if bar.length().is_some() => {
                bar.unset_length();
                if let Ok(s) =
                    indicatif::ProgressStyle::with_template("{msg} {bytes} {bytes_per_sec}")
                {
                    bar.set_style(s);
                }
            }
            None => {}
        }
        bar.set_position(p.done);
    }
    fn done(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
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

/// A user's path in an error: `-` stays `-`.
fn shown(path: &Path) -> String {
    path.display().to_string()
}

/// `get -o FILE`'s temporary file, next to it.
fn partial_path(path: &Path) -> PathBuf {
    path.with_file_name(format!(
        ".{}.memo-partial",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ))
}

/// Runs a client command. `global_config` is `memo --config FILE` given before the command.
pub async fn run(cmd: ClientCommand, global_config: Option<PathBuf>, style: Style) -> Result<()> {
    // Check the user's own input before connecting: a typo should not wait on the network.
    match &cmd {
        ClientCommand::Put {
            file,
            name,
            recursive,
            ..
        } => check_put_input(file, name.as_deref(), *recursive)?,
        ClientCommand::Get {
            out: Some(out),
            recursive: false,
            ..
        } if out != Path::new("-") => check_out(out)?,
        ClientCommand::Get {
            out: Some(out),
            recursive: true,
            ..
        } if out.exists() && !out.is_dir() => {
            bail!("cannot write into {}: it is not a directory", shown(out));
        }
        _ => {}
    }
    let Some(config) = cmd.opts().config.clone().or(global_config) else {
        bail!(
            "no client config: pass --config FILE or set MEMO_CONFIG (memo devnet writes DIR/users/NAME.toml)"
        );
    };
    let file = ClientFile::load(&config)?;
    let _ = PEER_NAMES.set(
        file.peers
            .iter()
            .filter_map(|p| Some((p.account.parse().ok()?, p.name.clone())))
            .collect(),
    );
    for p in &file.peers {
        if let Ok(a) = p.account.parse::<memo_core::AccountId>() {
            a.set_name(&p.name);
        }
    }
    let client = file.connect(|_| {}).await?;
    match cmd {
        ClientCommand::Put {
            file,
            name,
            recursive: true,
            ..
        } => put_tree(&client, &file, name, style).await?,
        ClientCommand::Get {
            what,
            out: Some(out),
            recursive: true,
            ..
        } => get_tree(&client, &what, &out, style).await?,
        ClientCommand::Put { file, name, .. } => {
            let stdin = file == Path::new("-");
            let name = match name {
                Some(n) => n,
                None => file
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            };
            let bar = Bar::new("put", style);
            let report = if stdin {
                client
                    .put(&name, tokio::io::stdin(), None, &mut |p| bar.show(p))
                    .await
                    .context("storing standard input")?
            } else {
                let f = tokio::fs::File::open(&file)
                    .await
                    .with_context(|| format!("cannot open {}", shown(&file)))?;
                let size = f.metadata().await.ok().map(|m| m.len());
                client
                    .put(&name, f, size, &mut |p| bar.show(p))
                    .await
                    .with_context(|| format!("storing {}", shown(&file)))?
            };
            bar.done();
            if style.json {
                emit!("{}", serde_json::to_string(&report)?);
            } else {
                emit!("{}", report.id);
                style.note(format_args!(
                    "stored {} ({}) in {} chunks; uploaded {} chunks ({}), {} already stored",
                    report.name,
                    style.size(report.size),
                    report.chunks,
                    report.uploaded_chunks,
                    style.size(report.uploaded_bytes),
                    report.chunks - report.uploaded_chunks
                ));
                if !report.shared.is_empty() {
                    style.note(format_args!(
                        "paid your share of {} storage orders of data stored already",
                        report.shared.len()
                    ));
                }
                style.note(format_args!(
                    "share: {} (whoever has it can read the object)",
                    report.object_ref
                ));
            }
        }
        ClientCommand::Get {
            what, out, range, ..
        } => {
            let bar = Bar::new("get", style);
            let n = match &out {
                Some(path) if path != Path::new("-") => {
                    get_to_file(&client, &what, range, path, &bar, style).await?
                }
                _ => {
                    let mut stdout = tokio::io::stdout();
                    let n = client
                        .get(&what, range, &mut stdout, &mut |p| bar.show(p))
                        .await?;
                    tokio::io::AsyncWriteExt::flush(&mut stdout).await?;
                    n
                }
            };
            bar.done();
            if let Some(path) = out.filter(|p| p != Path::new("-")) {
                if style.json {
                    emit!("{}", json!({ "bytes": n, "out": shown(&path) }));
                } else {
                    style.note(format_args!("wrote {} to {}", style.size(n), shown(&path)));
                }
            }
        }
        ClientCommand::Share { what, .. } => {
            let o = client.find(&what).await?;
            if style.json {
                emit!(
                    "{}",
                    json!({ "id": o.id.to_hex(), "name": o.name, "object_ref": o.object_ref.to_string() })
                );
            } else {
                emit!("{}", o.object_ref);
                style.note(format_args!(
                    "whoever has this reference can read {} with: memo get REF",
                    o.name
                ));
            }
        }
        ClientCommand::Rm { what, .. } => {
            let r = client.remove(&what).await?;
            if style.json {
                emit!(
                    "{}",
                    json!({ "id": r.id.to_hex(), "name": r.name, "deleted": true, "refs_left": r.refs_left, "outcome": r.outcome })
                );
            } else {
                style.note(format_args!("{}", rm_message(&r)));
            }
        }
        ClientCommand::Ls { .. } => {
            let list = client.list().await?;
            if style.json {
                emit!("{}", serde_json::to_string(&list)?);
            } else if list.is_empty() {
                style.note(format_args!(
                    "no objects: account {} stores nothing (memo put FILE stores one)",
                    client.account()
                ));
            } else {
                print_list(&list, style);
            }
        }
        ClientCommand::Stat { what, .. } => {
            let st = client.stat(&what).await?;
            if style.json {
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
                            "why": c.why,
                        })
                    })
                    .collect();
                emit!(
                    "{}",
                    json!({ "id": st.object.id.to_hex(), "name": st.object.name, "names": st.object.names, "size": st.object.size, "refs": st.object.refs, "chunks": chunks })
                );
            } else {
                emit!(
                    "{}  {}  {}  refs {}",
                    st.object.id,
                    distinct(&st.object.names).join(", "),
                    style.size(st.object.size),
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
                    if let Some(why) = &c.why {
                        line.push_str(&format!("; not repaired yet: {why}"));
                    }
                    emit!("{line}");
                }
            }
        }
        ClientCommand::Account { .. } => {
            let a = client.account_status().await?;
            if style.json {
                emit!(
                    "{}",
                    json!({ "account": a.user.to_hex(), "balance": a.balance, "stored_bytes": a.stored_bytes, "quota": a.quota, "objects": a.objects, "lapsed_orders": a.lapsed_orders })
                );
            } else {
                emit!(
                    "account {}\nbalance {}\nstored  {} of {}\nobjects {}",
                    a.user,
                    a.balance,
                    style.size(a.stored_bytes),
                    style.size(a.quota),
                    a.objects
                );
                if a.lapsed_orders > 0 {
                    eprintln!(
                        "warning: {} storage orders lapsed: your balance could not renew them, so \
                         that data is no longer paid for, and the keepers delete it once the grace \
                         period after the lapse ends (`lapse_grace_epochs`, 48 epochs by default); \
                         get what you want to keep",
                        a.lapsed_orders
                    );
                }
            }
        }
        ClientCommand::Keepers { .. } => {
            let groups = client.keeper_groups().await;
            let name = |a: &memo_core::AccountId| name_peers(&a.to_hex());
            if style.json {
                let rows: Vec<_> = groups
                    .iter()
                    .map(|(k, g)| match g {
                        Ok(g) => json!({
                            "keeper": name(k), "account": k.to_hex(), "role": g.role,
                            "term": g.term, "leader": g.leader.as_ref().map(name),
                            "members": g.members.iter().map(name).collect::<Vec<_>>(),
                            "last_log_index": g.last_log_index, "applied_index": g.applied_index,
                            "ops": g.ops,
                        }),
                        Err(e) => json!({
                            "keeper": name(k), "account": k.to_hex(),
                            "error": name_peers(&e.to_string()),
                        }),
                    })
                    .collect();
                emit!("{}", json!(rows));
            } else {
                emit!(
                    "{:<12} {:<10} {:>5} {:<12} {:>8} {:>8}",
                    "KEEPER",
                    "ROLE",
                    "TERM",
                    "LEADER",
                    "APPLIED",
                    "OPS"
                );
                for (k, g) in &groups {
                    match g {
                        Ok(g) => emit!(
                            "{:<12} {:<10} {:>5} {:<12} {:>8} {:>8}",
                            name(k),
                            g.role,
                            g.term,
                            g.leader.as_ref().map(name).unwrap_or_else(|| "-".into()),
                            g.applied_index.map(|i| i.to_string()).unwrap_or("-".into()),
                            g.ops
                        ),
                        Err(e) => emit!("{:<12} {}", name(k), name_peers(&e.to_string())),
                    }
                }
            }
        }
    }
    Ok(())
}

/// `put FILE`: the file must be a readable file (not a directory, unless -r); `-` needs a
/// name.
fn check_put_input(file: &Path, name: Option<&str>, recursive: bool) -> Result<()> {
    if recursive {
        if !file.is_dir() {
            bail!(
                "{} is not a directory: put -r stores a directory tree",
                shown(file)
            );
        }
        return Ok(());
    }
    if file == Path::new("-") {
        if name.is_none() {
            bail!("put - reads standard input: give it a name with --name NAME");
        }
        return Ok(());
    }
    let meta = std::fs::metadata(file).with_context(|| format!("cannot read {}", shown(file)))?;
    if meta.is_dir() {
        bail!(
            "{} is a directory: memo put stores one file (put -r stores the tree)",
            shown(file)
        );
    }
    Ok(())
}

/// `get -o FILE`: the path must not be a directory, and its directory must exist.
fn check_out(out: &Path) -> Result<()> {
    if out.is_dir() {
        bail!(
            "cannot write to {}: it is a directory (give a file name, e.g. -o {}/NAME)",
            shown(out),
            shown(out).trim_end_matches('/')
        );
    }
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        bail!(
            "cannot write to {}: directory {} does not exist",
            shown(out),
            shown(parent)
        );
    }
    Ok(())
}

/// The regular files under `dir`, with their paths below it (`/`-separated) and sizes, in
/// path order. Symbolic links are not followed.
fn walk(dir: &Path, skipped: &mut usize) -> Result<Vec<(String, PathBuf, u64)>> {
    let mut out = Vec::new();
    let mut todo = vec![(String::new(), dir.to_path_buf())];
    while let Some((prefix, d)) = todo.pop() {
        let rd = std::fs::read_dir(&d).with_context(|| format!("cannot read {}", shown(&d)))?;
        for e in rd {
            let e = e.with_context(|| format!("cannot read {}", shown(&d)))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let rel = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            let path = e.path();
            let meta = std::fs::symlink_metadata(&path)
                .with_context(|| format!("cannot read {}", shown(&path)))?;
            if meta.is_dir() {
                todo.push((rel, path));
            } else if meta.is_file() {
                out.push((rel, path, meta.len()));
            } else {
                *skipped += 1;
            }
        }
    }
    out.sort();
    Ok(out)
}

/// `put -r DIR`: every file, named PREFIX/path, under one progress bar.
/// Files of a tree stored at once by `put -r`.
const PUT_TREE_PARALLEL: usize = 8;

async fn put_tree(
    client: &memo_sdk::Client,
    dir: &Path,
    prefix: Option<String>,
    style: Style,
) -> Result<()> {
    let prefix = match prefix {
        Some(p) => p.trim_end_matches('/').to_string(),
        None => std::fs::canonicalize(dir)
            .ok()
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_default(),
    };
    let mut skipped = 0;
    let files = walk(dir, &mut skipped)?;
    if skipped > 0 {
        style.note(format_args!(
            "skipping {skipped} symbolic links and special files in {}",
            shown(dir)
        ));
    }
    let total: u64 = files.iter().map(|f| f.2).sum();
    let bar = Bar::new("put", style);
    // Several files at once: their storage orders share ledger blocks, so a tree of small
    // files waits for a block per PUT_TREE_PARALLEL files, not per file.
    let sent = std::sync::atomic::AtomicU64::new(0);
    let (bar, sent, prefix) = (&bar, &sent, &prefix);
    let puts = files.iter().map(|(rel, path, size)| async move {
        let name = if prefix.is_empty() {
            rel.clone()
        } else {
            format!("{prefix}/{rel}")
        };
        let f = tokio::fs::File::open(path)
            .await
            .with_context(|| format!("cannot open {}", shown(path)))?;
        let mut last = 0u64;
        client
            .put(&name, f, Some(*size), &mut |p| {
                let delta = p.done.saturating_sub(last);
                last = p.done;
                let done = sent.fetch_add(delta, std::sync::atomic::Ordering::Relaxed) + delta;
                bar.show(Progress {
                    done,
                    total: Some(total),
                })
            })
            .await
            .with_context(|| format!("storing {}", shown(path)))
    });
    let mut stream = futures::stream::iter(puts).buffered(PUT_TREE_PARALLEL);
    let mut reports = Vec::new();
    while let Some(report) = stream.next().await {
        let report = report?;
        if !style.json {
            emit!("{}  {}", report.id, report.name);
        }
        reports.push(report);
    }
    bar.done();
    if style.json {
        emit!("{}", serde_json::to_string(&reports)?);
    } else {
        let uploaded: u64 = reports.iter().map(|r| r.uploaded_bytes).sum();
        style.note(format_args!(
            "stored {} files ({}) as {}/...; uploaded {}",
            reports.len(),
            style.size(total),
            prefix,
            style.size(uploaded)
        ));
    }
    Ok(())
}

/// A name's path below a prefix as a relative path that stays inside the output directory:
/// `None` for an empty, `.`, `..` or absolute component.
fn safe_relative(rel: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for part in rel.split('/') {
        if part.is_empty() || part == "." || part == ".." || part.contains('\\') {
            return None;
        }
        out.push(part);
    }
    (out.components().count() > 0
        && out
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_))))
    .then_some(out)
}

/// `get -r PREFIX -o DIR`: every object named PREFIX/path, into DIR/path, under one progress
/// bar. Each file is written atomically, as with `get -o`.
async fn get_tree(client: &memo_sdk::Client, prefix: &str, dir: &Path, style: Style) -> Result<()> {
    let prefix = prefix.trim_end_matches('/');
    let mut files: Vec<(PathBuf, String, u64)> = Vec::new();
    for o in client.list().await? {
        for name in distinct(&o.names) {
            let Some(rel) = name
                .strip_prefix(prefix)
                .and_then(|r| r.strip_prefix('/'))
                .filter(|_| !prefix.is_empty())
                .or((prefix.is_empty()).then_some(name))
            else {
                continue;
            };
            let Some(path) = safe_relative(rel) else {
                bail!("cannot write {name}: its path below {prefix}/ is not a plain relative path");
            };
            files.push((path, o.id.to_hex(), o.size));
        }
    }
    if files.is_empty() {
        bail!(memo_sdk::ClientError::NotFound(format!("{prefix}/...")));
    }
    files.sort();
    let total: u64 = files.iter().map(|f| f.2).sum();
    let bar = Bar::new("get", style);
    let mut base = 0u64;
    for (rel, id, size) in &files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", shown(parent)))?;
        }
        check_out(&path)?;
        let offset = base;
        let sub = Bar::offset(&bar, offset, total);
        get_to_file(client, id, None, &path, &sub, style).await?;
        base += size;
    }
    bar.done();
    if style.json {
        emit!(
            "{}",
            json!({ "files": files.len(), "bytes": total, "out": shown(dir) })
        );
    } else {
        style.note(format_args!(
            "wrote {} files ({}) to {}",
            files.len(),
            style.size(total),
            shown(dir)
        ));
    }
    Ok(())
}

/// Removes `get -o`'s partial file when dropped, unless disarmed.
struct Partial(Option<PathBuf>);

impl Drop for Partial {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// `get -o FILE`: into a partial file next to it, renamed once every byte is verified. An
/// error removes the partial file. Ctrl-C (or SIGTERM) keeps what was written, and the same
/// get later resumes after the part of it that verifies (whole chunks, checked against their
/// ids).
async fn get_to_file(
    client: &memo_sdk::Client,
    what: &str,
    range: Option<std::ops::Range<u64>>,
    path: &Path,
    bar: &Bar,
    style: Style,
) -> Result<u64> {
    use tokio::io::AsyncSeekExt as _;
    let stop = stop_requested();
    let tmp = partial_path(path);
    // A whole-object read resumes after the verified part of an earlier one.
    let (from, size) = match (&range, tokio::fs::File::open(&tmp).await) {
        (None, Ok(f)) => {
            let (ok, size) = client
                .verified_prefix(what, f)
                .await
                .with_context(|| format!("checking {}", shown(&tmp)))?;
            if ok > 0 {
                style.note(format_args!(
                    "resuming {} after {} already verified in {}",
                    shown(path),
                    style.size(ok),
                    shown(&tmp)
                ));
            }
            (ok, Some(size))
        }
        _ => (0, None),
    };
    let mut f = tokio::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(from == 0)
        .open(&tmp)
        .await
        .with_context(|| format!("cannot write to {}", shown(path)))?;
    let mut guard = Partial(Some(tmp.clone()));
    if from > 0 {
        f.set_len(from)
            .await
            .with_context(|| format!("writing {}", shown(&tmp)))?;
        f.seek(std::io::SeekFrom::Start(from))
            .await
            .with_context(|| format!("writing {}", shown(&tmp)))?;
    }
    let range = match size {
        Some(size) if from > 0 => Some(from..size),
        _ => range,
    };
    let mut show = |p: Progress| {
        bar.show(Progress {
            done: from + p.done,
            total: p.total.map(|t| from + t),
        })
    };
    let n = if size == Some(from) && from > 0 {
        0
    } else {
        tokio::select! {
            r = client.get(what, range, &mut f, &mut show) => r?,
            _ = stop => {
                let _ = tokio::io::AsyncWriteExt::flush(&mut f).await;
                let kept = f.metadata().await.map(|m| m.len()).unwrap_or(0);
                if kept > 0 {
                    guard.0 = None;
                    bail!(Interrupted(format!(
                        "interrupted: {} not written; {} kept in {}: the same get resumes after its verified part",
                        shown(path),
                        style.size(kept),
                        shown(&tmp)
                    )));
                }
                drop(guard);
                bail!(Interrupted(format!("interrupted: {} not written", shown(path))));
            }
        }
    };
    f.sync_all()
        .await
        .with_context(|| format!("writing {}", shown(path)))?;
    drop(f);
    tokio::fs::rename(&tmp, path)
        .await
        .with_context(|| format!("cannot write to {}", shown(path)))?;
    guard.0 = None;
    Ok(from + n)
}

/// Resolves on SIGINT or SIGTERM. The handlers are in place once this returns, before the
/// future is first polled.
fn stop_requested() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            return Box::pin(async move {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            });
        }
    }
    Box::pin(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

/// A command stopped by SIGINT or SIGTERM (exit code 130).
#[derive(Debug)]
pub struct Interrupted(pub String);

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Interrupted {}

/// What `memo rm` says it did.
fn rm_message(r: &RemoveReport) -> String {
    let which = match &r.name {
        Some(n) => format!("the reference named {n} to {}", r.id),
        None => format!("one reference to {}", r.id),
    };
    match r.outcome {
        RemoveOutcome::Kept => format!("removed {which}; you hold {} more", r.refs_left),
        RemoveOutcome::Released => {
            format!("removed {which}, your last; other owners still store the object")
        }
        RemoveOutcome::Purged => format!(
            "removed {which}, the last of any owner: the object was purged from every provider"
        ),
    }
}

/// Each name once, in order.
fn distinct(names: &[String]) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for n in names {
        if !out.contains(&n.as_str()) {
            out.push(n);
        }
    }
    out
}

/// `memo ls`: a header, then one line per (object, name) with that name's references, in
/// name order.
fn print_list(list: &[ObjectInfo], style: Style) {
    emit!(
        "{:<16}  {:>10}  {:>4}  {:<16}  NAME",
        "ID",
        "SIZE",
        "REFS",
        "CREATED"
    );
    let mut rows: Vec<(&str, &ObjectInfo)> = list
        .iter()
        .flat_map(|o| distinct(&o.names).into_iter().map(move |n| (n, o)))
        .collect();
    rows.sort_by_key(|r| r.0);
    for (name, o) in rows {
        let created = o.created.map_or_else(|| "-".to_string(), utc);
        let refs = o.names.iter().filter(|n| *n == name).count();
        emit!(
            "{:<16}  {:>10}  {:>4}  {:<16}  {}",
            &o.id.to_hex()[..16],
            style.size(o.size),
            refs,
            created,
            name
        );
    }
}

/// Seconds since the Unix epoch as `YYYY-MM-DD HH:MM` UTC.
fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_dates_read_well() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(1023), "1023 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(10_000_000), "9.5 MiB");
        assert_eq!(utc(0), "1970-01-01 00:00");
        assert_eq!(utc(1_796_601_600 + 3_661), "2026-12-07 01:01");
    }
}
