//! What the devnet benchmarks share: a `memo devnet` of real processes in a temporary
//! directory with one user, `bench`, and an SDK client for that user.

use memo_core::transport::Transport;
use memo_sdk::config::{ClientFile, Role, load_key};
use memo_sdk::net::{P2pConfig, P2pTransport};
use memo_sdk::{Client, ClientConfig};
use std::error::Error;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A running devnet; dropping it stops its nodes (SIGTERM, then waits).
pub struct BenchDevnet {
    child: Child,
    pub dir: tempfile::TempDir,
}

impl BenchDevnet {
    /// Starts `memo devnet --users bench` with `args` and waits until it is ready.
    pub fn start(args: &[&str]) -> Result<Self, Box<dyn Error>> {
        let dir = tempfile::tempdir()?;
        let child = Command::new(env!("CARGO_BIN_EXE_memo"))
            .args(["devnet", "--users", "bench"])
            .args(args)
            .arg("--dir")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let net = Self { child, dir };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !net.path().join("devnet.json").exists() {
            if Instant::now() > deadline {
                return Err("devnet did not start".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(net)
    }

    /// The devnet's directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The `bench` user's client with its config's codec settings; `tune` adjusts the rest.
    pub async fn client(
        &self,
        tune: impl FnOnce(&mut ClientConfig),
    ) -> Result<(Client, ClientFile), Box<dyn Error>> {
        let file = ClientFile::load(&self.path().join("users/bench.toml"))?;
        let keypair = load_key(&file.key_file)?;
        let transport = P2pTransport::start_with(
            &keypair,
            P2pConfig {
                listen: vec![],
                ..P2pConfig::default()
            },
        )
        .await?;
        let mut keepers = Vec::new();
        for p in &file.peers {
            transport.try_add_address(p.account_id()?, &p.address)?;
            if p.role == Role::Keeper {
                keepers.push(p.account_id()?);
            }
        }
        let mut cfg = ClientConfig::new(keepers);
        cfg.params = file.params();
        tune(&mut cfg);
        let client = Client::new(keypair, Arc::new(transport) as Arc<dyn Transport>, cfg)?;
        Ok((client, file))
    }
}

impl Drop for BenchDevnet {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}
