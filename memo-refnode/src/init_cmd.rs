//! `memo init --keeper ADDR [FILE]`: a client config for a network the user reaches through
//! one keeper, with a key (a fresh one unless the key file exists). The keeper's directory
//! ([`memo_core::protocol::Request::Directory`]) names the other keepers and the ledger node;
//! the config lists keepers only, and every command learns where the providers are from them.

use anyhow::{Context, bail};
use memo_core::AccountId;
use memo_sdk::config::{ClientFile, PeerInfo, Role};
use std::path::{Path, PathBuf};

/// Arguments of `memo init`.
#[derive(clap::Args, Debug)]
pub struct InitArgs {
    /// One keeper of the network: ACCOUNT@MULTIADDR (as in `devnet.json`), or a multiaddr that
    /// ends in /p2p/PEER-ID.
    #[arg(long)]
    keeper: String,
    /// The config file to write (default: the global --config, else memo.toml).
    file: Option<PathBuf>,
    /// The key file: used if it exists, else created with a fresh key (mode 0600). Default:
    /// the config's name with `.key`.
    #[arg(long)]
    key: Option<PathBuf>,
    /// Overwrite an existing config file.
    #[arg(long)]
    force: bool,
}

/// The keeper's account and address from `ACCOUNT@MULTIADDR` or `MULTIADDR/p2p/PEER-ID`.
fn parse_keeper(spec: &str) -> anyhow::Result<(AccountId, String)> {
    if let Some((account, address)) = spec.split_once('@') {
        let account = account
            .parse::<AccountId>()
            .map_err(|e| anyhow::anyhow!("--keeper {spec}: the account before @: {e}"))?;
        return Ok((account, address.to_string()));
    }
    let Some((address, peer)) = spec.rsplit_once("/p2p/") else {
        bail!("--keeper {spec}: give ACCOUNT@MULTIADDR or a multiaddr ending in /p2p/PEER-ID");
    };
    let account = memo_sdk::transport::p2p::identity::account_of_text(peer)
        .map_err(|e| anyhow::anyhow!("--keeper {spec}: the peer id after /p2p/: {e}"))?;
    Ok((account, address.to_string()))
}

/// `key` as the config at `config` names it: relative to the config's directory when it is
/// inside it.
fn key_path_for(config: &Path, key: &Path) -> PathBuf {
    let dir = config.parent().unwrap_or(Path::new(""));
    key.strip_prefix(dir)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| key.to_path_buf())
}

/// Runs `memo init`.
pub async fn run(
    args: InitArgs,
    config: Option<PathBuf>,
    json: bool,
    quiet: bool,
) -> anyhow::Result<()> {
    let (account, address) = parse_keeper(&args.keeper)?;
    let path = args
        .file
        .clone()
        .or(config)
        .unwrap_or_else(|| PathBuf::from("memo.toml"));
    if path.is_dir() {
        bail!(
            "{} is a directory: give the config file's name",
            path.display()
        );
    }
    if path.exists() && !args.force {
        bail!(
            "{} exists: pass --force to overwrite it, or give another file",
            path.display()
        );
    }
    let key = args
        .key
        .clone()
        .unwrap_or_else(|| path.with_extension("key"));
    let created = !key.exists();
    let keypair = memo_sdk::config::load_or_create_key(&key)
        .with_context(|| format!("key file {}", key.display()))?;
    let first = PeerInfo {
        name: "keeper".into(),
        role: Role::Keeper,
        account: account.to_hex(),
        address: address.clone(),
    };
    let probe = ClientFile {
        key_file: key.clone(),
        chunk_size: None,
        data_shards: None,
        parity_shards: None,
        peers: vec![first.clone()],
        ledger: None,
        lanes: None,
    };
    let client = probe.connect(|_| {}).await?;
    let (peers, ledger) = client.directory().await.with_context(|| {
        format!("asking the keeper at {address} for its directory (is it running?)")
    })?;
    // The keepers, the one given first and at the address given (its own may not be
    // reachable from here).
    let mut keepers = vec![PeerInfo {
        name: peers
            .iter()
            .find(|p| p.account == account)
            .map(|p| p.name.clone())
            .unwrap_or(first.name),
        ..first
    }];
    for p in peers.iter().filter(|p| p.keeper && p.account != account) {
        keepers.push(PeerInfo {
            name: p.name.clone(),
            role: Role::Keeper,
            account: p.account.to_hex(),
            address: p.address.clone(),
        });
    }
    let file = ClientFile {
        key_file: key_path_for(&path, &key),
        peers: keepers,
        ledger: ledger.map(|l| l.to_hex()),
        ..probe
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    file.save(&path)
        .with_context(|| format!("writing {}", path.display()))?;
    let providers = peers.iter().filter(|p| !p.keeper).count();
    if json {
        println!(
            "{}",
            serde_json::json!({
                "config": path.display().to_string(),
                "key_file": key.display().to_string(),
                "key_created": created,
                "account": keypair.account().to_hex(),
                "keepers": file.peers.iter().map(|p| &p.name).collect::<Vec<_>>(),
                "providers_known": providers,
                "ledger": file.ledger,
            })
        );
    } else {
        println!("wrote {} for account {}", path.display(), keypair.account());
        if !quiet {
            eprintln!(
                "{} keeper(s), {providers} provider(s) known; key {} ({}); ledger: {}",
                file.peers.len(),
                key.display(),
                if created { "created" } else { "existing" },
                file.ledger.as_deref().unwrap_or("none (puts are not paid)"),
            );
            eprintln!(
                "next: memo --config {} account   (a new key has no balance: ask the network's operator to fund it)",
                path.display()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeper_specs_parse_or_say_what_is_wrong() {
        let kp = memo_core::Keypair::from_seed("k");
        let (a, addr) = parse_keeper(&format!(
            "{}@/ip4/127.0.0.1/tcp/4000",
            kp.account().to_hex()
        ))
        .unwrap();
        assert_eq!(
            (a, addr.as_str()),
            (kp.account(), "/ip4/127.0.0.1/tcp/4000")
        );
        let peer = memo_sdk::transport::p2p::identity::peer_id_of(&kp.account()).unwrap();
        let (a, addr) = parse_keeper(&format!("/ip4/127.0.0.1/tcp/4000/p2p/{peer}")).unwrap();
        assert_eq!(
            (a, addr.as_str()),
            (kp.account(), "/ip4/127.0.0.1/tcp/4000")
        );
        let e = parse_keeper("/ip4/127.0.0.1/tcp/4000")
            .unwrap_err()
            .to_string();
        assert!(e.contains("ACCOUNT@MULTIADDR"), "{e}");
        let e = parse_keeper("zz@/ip4/127.0.0.1/tcp/4000")
            .unwrap_err()
            .to_string();
        assert!(e.contains("the account before @"), "{e}");
        let e = parse_keeper("/ip4/1.2.3.4/tcp/1/p2p/nope")
            .unwrap_err()
            .to_string();
        assert!(e.contains("peer id"), "{e}");
    }

    #[test]
    fn a_key_beside_the_config_is_named_relative_to_it() {
        assert_eq!(
            key_path_for(Path::new("/a/b/memo.toml"), Path::new("/a/b/memo.key")),
            PathBuf::from("memo.key")
        );
        assert_eq!(
            key_path_for(Path::new("/a/b/memo.toml"), Path::new("/c/k.key")),
            PathBuf::from("/c/k.key")
        );
    }
}
