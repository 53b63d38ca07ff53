//! Bounded resources per peer: how many request bytes and requests a node holds at once, per
//! peer, for strangers together, and in all.
//!
//! A request's length is read before its bytes (a 4-byte frame header on libp2p streams and on
//! lanes); the reader asks the node's [`Limiter`] for a [`Permit`] of that many bytes before it
//! allocates anything. Over a cap the request is refused ([`Refusal`]): the reader discards its
//! bytes through a small fixed buffer and the peer gets an
//! [`ErrorCode::Unavailable`](memo_core::protocol::ErrorCode::Unavailable) answer. The permit
//! is released when the request has been answered or dropped, on every path.
//!
//! **Known peers and strangers.** A node may be told which accounts it knows
//! ([`Limiter::know`]): keepers, providers, registered users. The p2p transport knows every
//! peer it was given an address for (the node's configured peers). Everyone else is a
//! *stranger*: a fresh key costs nothing, so strangers get a smaller per-peer cap and share one
//! pool ([`Limits::strangers_bytes`]), which keeps room for known peers however many keys a
//! flood uses. Honest clients are usually strangers, so the per-stranger caps are sized for
//! a client uploading at full speed.

use memo_core::AccountId;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

const MIB: usize = 1024 * 1024;

/// Caps on the requests a node reads from its peers (p2p transport and shard lanes).
///
/// The defaults let an honest client at full speed through: with the default codec (4 MiB
/// chunks, 4 + 2 shards of about 1 MiB) and `ClientConfig::uploads = 8`, a client has at most
/// 48 shard puts (about 48 MiB) in flight, all to one provider in the worst case; with 2 MiB
/// shards, 64 MiB. A flood holds at most [`Limits::total_bytes`] of request bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Request bytes in flight from one known peer. Default 512 MiB.
    pub peer_bytes: usize,
    /// Requests in flight from one known peer. Default 512.
    pub peer_requests: usize,
    /// Request bytes in flight from one stranger. Default 128 MiB.
    pub stranger_bytes: usize,
    /// Requests in flight from one stranger. Default 128.
    pub stranger_requests: usize,
    /// Request bytes in flight from all strangers together. Default 512 MiB.
    pub strangers_bytes: usize,
    /// Request bytes in flight from everyone: the node-wide bound. Default 1 GiB.
    pub total_bytes: usize,
    /// Lane tickets one peer holds at once (issued by `OpenLane`, not yet used). Default 64.
    pub lane_tickets_per_peer: usize,
    /// Lane connections one peer holds open at once. Default 64 (a client pools up to 32 per
    /// provider).
    pub lane_connections_per_peer: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            peer_bytes: 512 * MIB,
            peer_requests: 512,
            stranger_bytes: 128 * MIB,
            stranger_requests: 128,
            strangers_bytes: 512 * MIB,
            total_bytes: 1024 * MIB,
            lane_tickets_per_peer: 64,
            lane_connections_per_peer: 64,
        }
    }
}

impl Limits {
    /// No caps at all (every field `usize::MAX`): for benchmarks that measure the difference.
    pub fn unlimited() -> Self {
        Self {
            peer_bytes: usize::MAX,
            peer_requests: usize::MAX,
            stranger_bytes: usize::MAX,
            stranger_requests: usize::MAX,
            strangers_bytes: usize::MAX,
            total_bytes: usize::MAX,
            lane_tickets_per_peer: usize::MAX,
            lane_connections_per_peer: usize::MAX,
        }
    }
}

/// Why a request was refused: the cap it would have exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The peer already has its maximum of requests in flight.
    #[error("too many requests in flight from this peer (limit {limit})")]
    PeerRequests {
        /// The cap.
        limit: usize,
    },
    /// The request's bytes would take the peer over its cap.
    #[error("request of {len} bytes would exceed this peer's {limit} bytes in flight")]
    PeerBytes {
        /// The request's length.
        len: usize,
        /// The cap.
        limit: usize,
    },
    /// Strangers together already hold their share of the node's memory.
    #[error("request of {len} bytes would exceed the {limit} bytes in flight for unknown peers")]
    StrangersBytes {
        /// The request's length.
        len: usize,
        /// The cap.
        limit: usize,
    },
    /// The node holds its maximum of request bytes.
    #[error("request of {len} bytes would exceed the node's {limit} bytes in flight")]
    TotalBytes {
        /// The request's length.
        len: usize,
        /// The cap.
        limit: usize,
    },
}

/// Requests and their bytes in flight.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Request bytes held.
    pub bytes: usize,
    /// Requests held.
    pub requests: usize,
}

#[derive(Default)]
struct State {
    known: HashSet<AccountId>,
    /// Peers with requests in flight (removed when they have none).
    peers: HashMap<AccountId, Usage>,
    strangers_bytes: usize,
    total: Usage,
}

/// One node's accounting of request bytes in flight, shared by its transport and its lane.
/// Cheap to share (`Arc`); see the [module docs](self).
pub struct Limiter {
    limits: Limits,
    state: Mutex<State>,
    released: tokio::sync::Notify,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("limits", &self.limits)
            .field("in_flight", &self.in_flight())
            .finish_non_exhaustive()
    }
}

impl Limiter {
    /// A limiter enforcing `limits`, with no known peers yet.
    pub fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            state: Mutex::new(State::default()),
            released: tokio::sync::Notify::new(),
        })
    }

    /// The caps it enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Treats `peer` as known (a keeper, provider or registered account) from now on.
    pub fn know(&self, peer: AccountId) {
        self.lock().known.insert(peer);
    }

    /// Treats `peer` as a stranger again.
    pub fn forget(&self, peer: &AccountId) {
        self.lock().known.remove(peer);
    }

    /// True if `peer` is known.
    pub fn is_known(&self, peer: &AccountId) -> bool {
        self.lock().known.contains(peer)
    }

    /// Admits a request of `len` bytes from `peer`, or says which cap it would exceed. The
    /// returned permit holds the bytes until it is dropped.
    pub fn admit(self: &Arc<Self>, peer: AccountId, len: usize) -> Result<Permit, Refusal> {
        let l = &self.limits;
        let mut st = self.lock();
        let stranger = !st.known.contains(&peer);
        let (peer_bytes, peer_requests) = if stranger {
            (l.stranger_bytes, l.stranger_requests)
        } else {
            (l.peer_bytes, l.peer_requests)
        };
        let used = st.peers.get(&peer).copied().unwrap_or_default();
        let over = |used: usize, limit: usize| used.saturating_add(len) > limit;
        if used.requests >= peer_requests {
            return Err(Refusal::PeerRequests {
                limit: peer_requests,
            });
        }
        if over(used.bytes, peer_bytes) {
            return Err(Refusal::PeerBytes {
                len,
                limit: peer_bytes,
            });
        }
        if stranger && over(st.strangers_bytes, l.strangers_bytes) {
            return Err(Refusal::StrangersBytes {
                len,
                limit: l.strangers_bytes,
            });
        }
        if over(st.total.bytes, l.total_bytes) {
            return Err(Refusal::TotalBytes {
                len,
                limit: l.total_bytes,
            });
        }
        let entry = st.peers.entry(peer).or_default();
        entry.bytes += len;
        entry.requests += 1;
        if stranger {
            st.strangers_bytes += len;
        }
        st.total.bytes += len;
        st.total.requests += 1;
        Ok(Permit {
            limiter: self.clone(),
            peer,
            len,
            stranger,
        })
    }

    /// What the whole node holds now.
    pub fn in_flight(&self) -> Usage {
        self.lock().total
    }

    /// What `peer` holds now.
    pub fn in_flight_from(&self, peer: &AccountId) -> Usage {
        self.lock().peers.get(peer).copied().unwrap_or_default()
    }

    /// Waits until no request is in flight (every permit has been released).
    pub async fn idle(&self) {
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            // Registered before the check, so a release in between is not missed.
            released.as_mut().enable();
            if self.in_flight().requests == 0 {
                return;
            }
            released.await;
        }
    }

    fn release(&self, peer: &AccountId, len: usize, stranger: bool) {
        let mut st = self.lock();
        if let Some(used) = st.peers.get_mut(peer) {
            used.bytes = used.bytes.saturating_sub(len);
            used.requests = used.requests.saturating_sub(1);
            if used.requests == 0 {
                st.peers.remove(peer);
            }
        }
        if stranger {
            st.strangers_bytes = st.strangers_bytes.saturating_sub(len);
        }
        st.total.bytes = st.total.bytes.saturating_sub(len);
        st.total.requests = st.total.requests.saturating_sub(1);
        drop(st);
        self.released.notify_waiters();
    }
}

/// One admitted request's share of its peer's and the node's caps; released when dropped.
pub struct Permit {
    limiter: Arc<Limiter>,
    peer: AccountId,
    len: usize,
    stranger: bool,
}

impl Permit {
    /// The request bytes it holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if it holds no bytes (an empty request still counts as one request).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl std::fmt::Debug for Permit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Permit({} bytes from {})", self.len, self.peer.short())
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.limiter.release(&self.peer, self.len, self.stranger);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use memo_core::Keypair;

    fn small() -> Limits {
        Limits {
            peer_bytes: 100,
            peer_requests: 3,
            stranger_bytes: 40,
            stranger_requests: 2,
            strangers_bytes: 60,
            total_bytes: 150,
            ..Limits::default()
        }
    }

    #[test]
    fn each_cap_refuses_and_dropping_permits_returns_everything() {
        let l = Limiter::new(small());
        let (known, s1, s2) = (
            Keypair::from_seed("known").account(),
            Keypair::from_seed("s1").account(),
            Keypair::from_seed("s2").account(),
        );
        l.know(known);
        let a = l.admit(s1, 30).unwrap();
        assert_eq!(
            l.admit(s1, 11).unwrap_err(),
            Refusal::PeerBytes { len: 11, limit: 40 }
        );
        let b = l.admit(s1, 10).unwrap();
        assert_eq!(
            l.admit(s1, 0).unwrap_err(),
            Refusal::PeerRequests { limit: 2 }
        );
        // s2 has room of its own, but strangers together hold 40 of 60.
        assert_eq!(
            l.admit(s2, 21).unwrap_err(),
            Refusal::StrangersBytes { len: 21, limit: 60 }
        );
        let c = l.admit(s2, 20).unwrap();
        // A known peer is not held back by strangers, only by its own and the node's caps.
        let d = l.admit(known, 90).unwrap();
        assert_eq!(
            l.admit(known, 1).unwrap_err(),
            Refusal::TotalBytes { len: 1, limit: 150 }
        );
        assert_eq!(
            l.in_flight(),
            Usage {
                bytes: 150,
                requests: 4
            }
        );
        assert_eq!(l.in_flight_from(&s1).requests, 2);
        drop((a, b, c, d));
        assert_eq!(l.in_flight(), Usage::default());
        assert_eq!(l.in_flight_from(&s1), Usage::default());
        assert_eq!(l.lock().strangers_bytes, 0);
        assert!(l.lock().peers.is_empty());
    }

    #[test]
    fn a_peer_known_after_admission_releases_into_the_pool_it_took_from() {
        let l = Limiter::new(small());
        let p = Keypair::from_seed("p").account();
        let permit = l.admit(p, 40).unwrap();
        l.know(p);
        drop(permit);
        assert_eq!(l.lock().strangers_bytes, 0);
        l.forget(&p);
        assert!(!l.is_known(&p));
    }

    #[test]
    fn unlimited_admits_anything() {
        let l = Limiter::new(Limits::unlimited());
        let p = Keypair::from_seed("p").account();
        let permits: Vec<_> = (0..1000)
            .map(|_| l.admit(p, usize::MAX / 2000).unwrap())
            .collect();
        assert_eq!(l.in_flight().requests, 1000);
        drop(permits);
        assert_eq!(l.in_flight(), Usage::default());
    }
}
