//! `memo s3`: serves the user's objects to S3 tools (boto3, aws-cli, rclone) on one address.

use anyhow::{Context, Result, bail};
use memo_sdk::config::{ClientFile, load_key};
use memo_sdk::s3::{Credentials, Gateway, GatewayConfig};
use std::io::Write;
use std::path::PathBuf;

/// Arguments of `memo s3`.
#[derive(clap::Args, Debug)]
pub struct S3Args {
    /// Address to serve S3 on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:9000")]
    listen: String,
    /// Region the gateway reports (and clients sign for).
    #[arg(long, default_value = "us-east-1")]
    region: String,
}

/// Serves until Ctrl-C. First prints, as lines a shell can source, the endpoint and the
/// credentials (derived from the user's key) to use.
pub async fn run(args: S3Args, config: Option<PathBuf>) -> Result<()> {
    let Some(config) = config else {
        bail!("no client config: pass --config FILE or set MEMO_CONFIG");
    };
    let file = ClientFile::load(&config)?;
    let keypair = load_key(&file.key_file)?;
    let client = file.connect(|_| {}).await?;
    let credentials = Credentials::derive(&keypair);
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let addr = listener.local_addr()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "AWS_ENDPOINT_URL=http://{addr}")?;
        writeln!(out, "AWS_ACCESS_KEY_ID={}", credentials.access_key)?;
        writeln!(out, "AWS_SECRET_ACCESS_KEY={}", credentials.secret_key)?;
        writeln!(out, "AWS_DEFAULT_REGION={}", args.region)?;
        out.flush()?;
    }
    let mut cfg = GatewayConfig::new(credentials);
    cfg.region = args.region;
    let shutdown = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    Gateway::new(client, cfg).serve(listener, shutdown).await?;
    Ok(())
}
