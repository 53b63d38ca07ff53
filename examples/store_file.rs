//! Store a file with the SDK and read it back, on a whole memo network in this process.
//!
//! ```text
//! cargo run --release -p memo-examples --example store_file -- [FILE]
//! ```
//!
//! `memory_network` starts 3 keepers, 6 providers and users alice, bob and carol on an
//! in-process transport. Against a real network, build the `Client` the same way with a
//! `memo_sdk::transport::p2p::P2pTransport` and the keepers' accounts (see `memo_sdk::config`).

use anyhow::{Result, bail};
use memo_sdk::local::{LocalSpec, memory_network};

#[tokio::main]
async fn main() -> Result<()> {
    let data = match std::env::args().nth(1) {
        Some(path) => tokio::fs::read(path).await?,
        None => (0..3_000_000u32).map(|i| (i % 251) as u8).collect(),
    };
    let (_net, local) = memory_network(&LocalSpec::default()).await?;
    let alice = local.user("alice").expect("alice is in the default spec");

    // Put from any AsyncRead (here a byte slice), with progress.
    let put = alice
        .put("my-file", &data[..], Some(data.len() as u64), &mut |p| {
            eprint!("\rput {} / {} bytes", p.done, data.len());
        })
        .await?;
    eprintln!();
    println!(
        "stored {} bytes as object {} ({} chunks)",
        put.size, put.id, put.chunks
    );

    // Get by name (or id, or a shared memo-obj1 handle) into any AsyncWrite; ranges work too.
    let mut back = Vec::new();
    alice.get("my-file", None, &mut back, &mut |_| {}).await?;
    if back != data {
        bail!("read back different bytes");
    }
    let stat = alice.stat("my-file").await?;
    println!(
        "read back {} bytes, identical; {} chunks, refs {}",
        back.len(),
        stat.chunks.len(),
        stat.object.refs
    );

    // A second user storing the same bytes becomes a second owner; nothing is uploaded.
    let bob = local.user("bob").expect("bob is in the default spec");
    let again = bob.put_bytes("same", &data).await?;
    println!(
        "bob's put of the same data uploaded {} bytes",
        again.uploaded_bytes
    );

    alice.delete("my-file").await?;
    bob.delete("same").await?;
    println!("both deleted: the shards are purged from every provider");
    Ok(())
}
