//! What the devnet benchmarks share besides the test harness: an SDK client for a devnet user.

use crate::harness::Devnet;
use memo_sdk::config::ClientFile;
use memo_sdk::{Client, ClientConfig};
use std::error::Error;

/// Alice's client with her config's codec settings and no ledger (the benchmarks measure
/// storage alone: no storage orders); `tune` adjusts the rest.
pub async fn client(
    net: &Devnet,
    tune: impl FnOnce(&mut ClientConfig),
) -> Result<(Client, ClientFile), Box<dyn Error>> {
    let mut file = ClientFile::load(&net.user("alice"))?;
    file.ledger = None;
    let client = file.connect(tune).await?;
    Ok((client, file))
}
