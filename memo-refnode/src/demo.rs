//! `memo demo`: a whole memo network in one process, and the story of one file through it.
//! Every step is checked; the exit code is 0 only if all of them held.

use anyhow::{Context, Result, bail};
use memo_core::AccountId;
use memo_core::codec::CodecParams;
use memo_core::ownership::ShardStore;
use memo_core::transport::{MemoryNetwork, Transport};
use memo_sdk::ClientError;
use memo_sdk::keeper::repair::RepairConfig;
use memo_sdk::local::ledger::LedgerSpec;
use memo_sdk::local::{LocalNetwork, LocalSpec, node_keys};
use memo_sdk::store::FsShardStore;
use memo_sdk::transport::p2p::P2pTransport;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Options of `memo demo`.
#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Directory for the providers' shard stores (default: a temporary directory, removed after).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Size of the generated file, in MiB.
    #[arg(long, default_value_t = 24)]
    size_mib: u64,
    /// Number of providers (at least k + m).
    #[arg(long, default_value_t = 8)]
    providers: usize,
    /// Data shards per chunk (k).
    #[arg(short, long, default_value_t = 4)]
    k: u8,
    /// Parity shards per chunk (m).
    #[arg(short, long, default_value_t = 2)]
    m: u8,
}

struct Story {
    json: bool,
    steps: Vec<serde_json::Value>,
    started: Instant,
}

impl Story {
    fn ok(&mut self, name: &str, detail: String) {
        if !self.json {
            eprintln!(
                "  [{:>5.1}s] ok  {name}: {detail}",
                self.started.elapsed().as_secs_f64()
            );
        }
        self.steps
            .push(serde_json::json!({ "step": name, "ok": true, "detail": detail }));
    }
}

fn shard_files(dir: &Path) -> usize {
    walk(dir)
        .into_iter()
        .filter(|p| p.extension().is_none())
        .count()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Runs the demo.
pub async fn run(args: DemoArgs, json: bool) -> Result<()> {
    let tmp;
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir().context("creating a temporary directory")?;
            tmp.path().to_path_buf()
        }
    };
    let params = CodecParams::with_shards(args.k, args.m);
    params.validate().context("--k/--m")?;
    if args.providers < params.total_shards() {
        bail!(
            "--providers must be at least k + m = {}",
            params.total_shards()
        );
    }
    let spec = LocalSpec {
        keepers: 3,
        providers: args.providers,
        users: vec!["alice".into(), "bob".into(), "carol".into()],
        provider_capacity: 64 << 30,
        params,
        ..LocalSpec::default()
    };
    let mut story = Story {
        json,
        steps: Vec::new(),
        started: Instant::now(),
    };
    if !json {
        eprintln!(
            "memo demo: {} keepers, {} providers, users alice, bob and carol; shards under {}",
            spec.keepers,
            spec.providers,
            dir.display()
        );
    }
    // Every node gets a real libp2p transport on loopback and learns every other's address.
    let mut transports: HashMap<AccountId, P2pTransport> = HashMap::new();
    let mut addresses = Vec::new();
    for kp in node_keys(&spec) {
        let (t, addrs) = P2pTransport::start(&kp, "/ip4/127.0.0.1/tcp/0")
            .await
            .context("starting a node's transport")?;
        let addr = addrs
            .first()
            .map(ToString::to_string)
            .context("a node has no listen address")?;
        addresses.push((kp.account(), addr));
        transports.insert(kp.account(), t);
    }
    for t in transports.values() {
        for (account, addr) in &addresses {
            t.try_add_address(*account, addr)?;
        }
    }
    let stores = dir.clone();
    let mut open_error = None;
    let by_account = transports.clone();
    let mut local: LocalNetwork<FsShardStore> = LocalNetwork::start(
        &spec,
        move |kp| match by_account.get(&kp.account()) {
            Some(t) => Arc::new(t.clone()) as Arc<dyn Transport>,
            None => Arc::new(MemoryNetwork::new().join(kp.account())) as Arc<dyn Transport>,
        },
        |i| match FsShardStore::open(stores.join(format!("provider-{i}"))) {
            Ok(s) => s,
            Err(e) => {
                open_error = Some(e.to_string());
                FsShardStore::open(std::env::temp_dir().join("memo-demo-fallback"))
                    .unwrap_or_else(|_| std::process::exit(2))
            }
        },
    )
    .await?;
    if let Some(e) = open_error {
        bail!("opening a provider store: {e}");
    }
    story.ok(
        "network",
        format!(
            "{} keepers and {} providers serving over libp2p (TCP, Noise, yamux) on loopback",
            local.keepers.len(),
            local.providers.len()
        ),
    );

    let ledger_spec = LedgerSpec::default();
    local
        .attach_ledger(&ledger_spec, spec.provider_capacity)
        .await?;
    // Keepers probe providers every 100 ms; a provider that misses 8 probes in a row (a stopped
    // one is refused at once) is declared lost. A probe may take up to 1 s, so that a live
    // provider on a loaded machine is not taken for a lost one.
    local.enable_repair(RepairConfig {
        rpc_timeout: std::time::Duration::from_secs(1),
        ..RepairConfig::for_epoch(std::time::Duration::from_millis(400))
    });
    story.ok(
        "ledger",
        format!(
            "local chain sequenced by keeper-0; every keeper and provider registered with a stake; epochs of {} ticks of {} ms, early blocks for waiting transactions",
            ledger_spec.epoch_blocks,
            ledger_spec.block_interval.as_millis()
        ),
    );
    let (alice, bob, carol) = (
        local.user("alice").context("alice")?,
        local.user("bob").context("bob")?,
        local.user("carol").context("carol")?,
    );
    let size = (args.size_mib.max(1) * 1024 * 1024) as usize;
    let mut data = vec![0u8; size];
    blake3::Hasher::new_keyed(&rand::random::<[u8; 32]>())
        .finalize_xof()
        .fill(&mut data);

    let t = Instant::now();
    let put = alice.put_bytes("demo.bin", &data).await?;
    let secs = t.elapsed().as_secs_f64();
    let held = shard_files(&dir);
    if put.uploaded_chunks != put.chunks || held != put.chunks * params.total_shards() {
        bail!("expected every chunk uploaded: {put:?}, {held} shard files");
    }
    story.ok(
        "alice puts a file",
        format!(
            "{} MiB as object {} in {} chunks, {} shards on disk, {:.0} MiB/s",
            args.size_mib,
            put.id.short(),
            put.chunks,
            held,
            args.size_mib as f64 / secs
        ),
    );

    let t = Instant::now();
    if alice.get_bytes("demo.bin").await? != data {
        bail!("alice read back different bytes");
    }
    story.ok(
        "alice reads it back",
        format!(
            "exact bytes, {:.0} MiB/s",
            args.size_mib as f64 / t.elapsed().as_secs_f64()
        ),
    );

    let ledger = local.ledger.as_ref().context("the ledger")?;
    let epoch = ledger.head().epoch + 1;
    let report = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        ledger.wait_report(epoch),
    )
    .await
    .context("waiting for an epoch of challenges")?
    .context("no keeper reports epochs")?;
    let challenged: Vec<_> = report
        .providers
        .iter()
        .filter(|p| p.challenged > 0)
        .collect();
    let passed = challenged
        .iter()
        .filter(|p| p.passed == p.challenged)
        .count();
    let paid: u64 = challenged.iter().map(|p| p.earned).sum();
    if challenged.is_empty() || passed != challenged.len() || paid == 0 {
        bail!(
            "epoch {} of challenges did not pass and pay: {report:?}",
            report.epoch
        );
    }
    story.ok(
        "an epoch of storage challenges",
        format!(
            "epoch {}: {} providers proved their shards (blake3 Merkle proofs verified by the ledger) and were paid {paid} for {} orders",
            report.epoch,
            passed,
            put.orders.len()
        ),
    );

    let again = alice.put_bytes("demo.bin", &data).await?;
    let refs = alice.stat("demo.bin").await?.object.refs;
    if again.uploaded_bytes != 0 || refs != 2 {
        bail!(
            "storing again moved {} bytes, refs {refs}",
            again.uploaded_bytes
        );
    }
    story.ok(
        "alice stores it again",
        "reference count 2, no shard traffic".into(),
    );

    let bobs = bob.put_bytes("from-alice.bin", &data).await?;
    if bobs.id != put.id || bobs.uploaded_bytes != 0 || shard_files(&dir) != held {
        bail!("bob's put of the same data moved data: {bobs:?}");
    }
    story.ok(
        "bob stores the same file",
        "a second owner, same shards, no shard traffic".into(),
    );

    match carol.delete(&put.id.to_hex()).await {
        Err(ClientError::Refused(reason)) => {
            story.ok("carol deletes it", format!("refused: {reason}"))
        }
        other => bail!("carol's delete was not refused: {other:?}"),
    }

    let victim_id = local.providers[0].account();
    let lost = local.providers[0]
        .service
        .store()
        .list()
        .map(|l| l.len())
        .unwrap_or(0);
    local.providers[0].stop();
    if let Some(t) = transports.get(&victim_id) {
        t.shutdown().await;
    }
    if bob.get_bytes("from-alice.bin").await? != data {
        bail!("read after a provider stopped returned different bytes");
    }
    story.ok(
        "a provider stops",
        format!("{lost} of its shards unreachable; reads still exact from the other shards"),
    );

    // Keepers probe providers, declare the stopped one's shards lost, rebuild exactly those
    // shards from k others (no decryption needed) and place them on other providers.
    let deadline = Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let st = bob.stat("from-alice.bin").await?;
        let healed = st
            .chunks
            .iter()
            .all(|c| c.healthy == c.total && !c.holders.contains(&Some(victim_id)));
        if healed {
            break;
        }
        if Instant::now() > deadline {
            bail!("shards were not repaired within 60 s");
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (mut restored, mut read, mut chunks) = (0u64, 0u64, 0u64);
    for r in &local.repairers {
        let s = r.stats();
        restored += s.bytes_restored;
        read += s.bytes_read;
        chunks += s.chunks_repaired;
    }
    if bob.get_bytes("from-alice.bin").await? != data {
        bail!("read after repair returned different bytes");
    }
    story.ok(
        "its shards are repaired",
        format!(
            "{chunks} chunks rebuilt on other providers ({restored} bytes restored, {:.1} bytes read per byte); every chunk back to {}/{} healthy",
            read as f64 / restored.max(1) as f64,
            params.total_shards(),
            params.total_shards()
        ),
    );
    // The stopped provider's files stay on its disk; everything else is counted from here.
    let held = shard_files(&dir);

    alice.delete("demo.bin").await?;
    alice.delete("demo.bin").await?;
    if shard_files(&dir) != held || bob.get_bytes("from-alice.bin").await? != data {
        bail!("alice's deletes removed data bob still owns");
    }
    story.ok(
        "alice deletes twice",
        "no longer an owner; bob's data stays".into(),
    );

    bob.delete("from-alice.bin").await?;
    // The stopped provider cannot be reached, so its shards stay until it returns; every
    // running provider's disk is empty.
    let left = shard_files(&dir);
    if left != lost {
        bail!(
            "{left} shard files remain after the last owner's delete (expected the {lost} of the stopped provider)"
        );
    }
    story.ok("bob deletes", format!("the last owner: every running provider deleted its shards ({left} remain on the stopped one)"));

    if json {
        println!(
            "{}",
            serde_json::json!({ "ok": true, "object": put.id.to_hex(), "steps": story.steps })
        );
    } else {
        eprintln!(
            "memo demo: all {} steps held in {:.1}s",
            story.steps.len(),
            story.started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
