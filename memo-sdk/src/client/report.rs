//! Telling keepers about shards a read could not use: they check each report themselves before
//! they believe it (a client cannot trigger repairs of healthy data).

use super::{Client, ClientError};
use crate::transport::rpc::call;
use memo_core::protocol::{Request, Response};
use memo_core::repair::{MAX_REPORTS, ShardReport};
use tracing::debug;

impl Client {
    /// Reports shards this client could not read to a keeper (it checks them before believing).
    pub async fn report(&self, reports: Vec<ShardReport>) -> Result<(), ClientError> {
        for k in self.keepers() {
            let req = Request::ReportShards {
                reports: reports.clone(),
            };
            if matches!(
                call(self.transport().as_ref(), *k, &req).await,
                Ok(Response::Done)
            ) {
                return Ok(());
            }
        }
        Err(ClientError::NoKeeper {
            tried: self.keepers().len(),
            last: "no keeper took the report".into(),
        })
    }
}

/// Sends a read's failed shards to a keeper (best effort: a lost report costs nothing but time).
pub(super) async fn send_reports(client: &Client, mut reports: Vec<ShardReport>) {
    if reports.is_empty() {
        return;
    }
    reports.sort_unstable();
    reports.dedup();
    reports.truncate(MAX_REPORTS);
    debug!(
        count = reports.len(),
        "reporting shards that could not be read"
    );
    let _ = client.report(reports).await;
}
