//! [`Env`]: where every flow gets the time and its randomness.
//!
//! Services never read `std::time::Instant::now`, `SystemTime::now` or the OS RNG themselves:
//! they ask the [`Env`] they were built with. That is what lets a simulation replay from a seed.
//!
//! - **Monotonic time** is tokio's ([`tokio::time::Instant`]). In a real node it follows the
//!   machine's clock; in a runtime started with paused time (`#[tokio::test(start_paused =
//!   true)]`, or `tokio::time::pause`) it is virtual: it stands still while any task can run
//!   and jumps to the next timer when all are idle, so a simulated hour of epochs, probe
//!   rounds and purge graces takes milliseconds and never depends on the machine's load.
//! - **Wall time** ([`Env::unix_ms`]: block timestamps, Last-Modified) is the system's clock
//!   for [`Env::real`], and for [`Env::simulated`] a fixed start plus the virtual time elapsed.
//! - **Randomness** ([`Env::random`], [`Env::fill`], [`Env::below`]) comes from one
//!   [`StdRng`] (ChaCha12, a CSPRNG): seeded by the OS for real nodes, by the caller's seed in
//!   simulations, so the same seed draws the same placements, tickets and secrets.
//!
//! - **CPU-heavy work** ([`Env::blocking`], [`run_blocking`]) runs on tokio's blocking pool on
//!   a multi-threaded runtime (real nodes) and inline on a current-thread runtime
//!   (simulations), where a thread pool's timing would reorder events.
//!
//! An [`Env`] is cheap to clone; clones share the clock and the RNG.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// The clock and randomness of one node, or of a whole simulated network.
#[derive(Clone)]
pub struct Env {
    inner: Arc<Inner>,
}

struct Inner {
    wall: Wall,
    rng: Mutex<StdRng>,
    seed: Option<u64>,
}

enum Wall {
    /// The system's clock.
    System,
    /// `start` plus the tokio time elapsed since `origin`.
    Virtual { start: SystemTime, origin: Instant },
}

/// Where a simulation's wall clock starts: 2026-01-01T00:00:00Z.
pub const SIMULATION_START_UNIX_MS: u64 = 1_767_225_600_000;

impl Env {
    /// A real node's environment: tokio time, the system's wall clock, an OS-seeded RNG.
    pub fn real() -> Self {
        Self::build(Wall::System, rand::make_rng(), None)
    }

    /// A simulation's environment: tokio time (virtual when the runtime's time is paused), a
    /// wall clock that starts at [`SIMULATION_START_UNIX_MS`] and advances with tokio time, and
    /// an RNG seeded with `seed`.
    ///
    /// Call it inside the runtime (it reads tokio's clock to anchor the wall clock).
    pub fn simulated(seed: u64) -> Self {
        let wall = Wall::Virtual {
            start: UNIX_EPOCH + Duration::from_millis(SIMULATION_START_UNIX_MS),
            origin: Instant::now(),
        };
        Self::build(wall, StdRng::seed_from_u64(seed), Some(seed))
    }

    /// The real clock with an RNG seeded with `seed`: runs that differ only in timing.
    pub fn seeded(seed: u64) -> Self {
        Self::build(Wall::System, StdRng::seed_from_u64(seed), Some(seed))
    }

    fn build(wall: Wall, rng: StdRng, seed: Option<u64>) -> Self {
        Self {
            inner: Arc::new(Inner {
                wall,
                rng: Mutex::new(rng),
                seed,
            }),
        }
    }

    /// The seed this environment's RNG started from, if it was given one.
    pub fn seed(&self) -> Option<u64> {
        self.inner.seed
    }

    /// Monotonic now (tokio's clock).
    pub fn now(&self) -> Instant {
        Instant::now()
    }

    /// Wall-clock now.
    pub fn wall(&self) -> SystemTime {
        match &self.inner.wall {
            Wall::System => SystemTime::now(),
            Wall::Virtual { start, origin } => *start + origin.elapsed(),
        }
    }

    /// Wall-clock now in milliseconds since the Unix epoch (0 before 1970).
    pub fn unix_ms(&self) -> u64 {
        self.wall()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }

    /// Waits `d` of this environment's time.
    pub async fn sleep(&self, d: Duration) {
        tokio::time::sleep(d).await
    }

    /// Runs CPU-heavy `f` (erasure coding, hashing): see [`run_blocking`].
    pub async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, tokio::task::JoinError> {
        run_blocking(f).await
    }

    /// Runs `f` with this environment's RNG.
    pub fn with_rng<T>(&self, f: impl FnOnce(&mut StdRng) -> T) -> T {
        let mut rng = self.inner.rng.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut rng)
    }

    /// A random value of a fixed-size byte array, e.g. a secret or a seed.
    pub fn random<const N: usize>(&self) -> [u8; N] {
        let mut out = [0u8; N];
        self.fill(&mut out);
        out
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&self, buf: &mut [u8]) {
        self.with_rng(|r| r.fill_bytes(buf))
    }

    /// A random u64.
    pub fn next_u64(&self) -> u64 {
        self.with_rng(|r| r.next_u64())
    }

    /// A uniformly random number below `n` (0 when `n` is 0).
    pub fn below(&self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        // Rejection sampling: no modulo bias.
        let zone = u64::MAX - (u64::MAX % n) - 1;
        loop {
            let v = self.next_u64();
            if v <= zone {
                return v % n;
            }
        }
    }

    /// An independent environment for one node of a simulation: the same clock, and an RNG
    /// seeded from this one's, so each node's draws do not depend on how the others' tasks
    /// interleave.
    pub fn fork(&self) -> Self {
        let seed = self.next_u64();
        let wall = match &self.inner.wall {
            Wall::System => Wall::System,
            Wall::Virtual { start, origin } => Wall::Virtual {
                start: *start,
                origin: *origin,
            },
        };
        Self::build(wall, StdRng::seed_from_u64(seed), Some(seed))
    }
}

/// Runs CPU-heavy `f` (erasure coding, hashing) off the async threads of a multi-threaded
/// runtime, on tokio's blocking pool; inline on a current-thread runtime (simulations, and
/// tests), where a pool thread would add only a handoff and make when `f` finishes depend on
/// how the OS schedules threads. Fails only if `f` panicked on the pool.
pub async fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, tokio::task::JoinError> {
    let threaded = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() != tokio::runtime::RuntimeFlavor::CurrentThread);
    if threaded {
        tokio::task::spawn_blocking(f).await
    } else {
        Ok(f())
    }
}

/// Runs short blocking work `f` (disk I/O) in place: on a multi-threaded runtime the other
/// workers take over this one's tasks meanwhile; on a current-thread runtime it just runs.
pub(crate) fn blocking<R>(f: impl FnOnce() -> R) -> R {
    let multi = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if multi {
        tokio::task::block_in_place(f)
    } else {
        f()
    }
}

impl Default for Env {
    /// [`Env::real`].
    fn default() -> Self {
        Self::real()
    }
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let clock = match self.inner.wall {
            Wall::System => "system",
            Wall::Virtual { .. } => "virtual",
        };
        f.debug_struct("Env")
            .field("wall", &clock)
            .field("seed", &self.inner.seed)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_draws_the_same_values() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let a = Env::simulated(7);
            let b = Env::simulated(7);
            let c = Env::simulated(8);
            let da: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
            let db: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
            let dc: Vec<u64> = (0..8).map(|_| c.next_u64()).collect();
            assert_eq!(da, db);
            assert_ne!(da, dc);
            assert_eq!(a.fork().next_u64(), b.fork().next_u64());
        });
    }

    #[test]
    fn below_stays_in_range() {
        let e = Env::seeded(1);
        assert_eq!(e.below(0), 0);
        for n in [1u64, 2, 3, 7, 1000, u64::MAX] {
            for _ in 0..100 {
                assert!(e.below(n) < n);
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn virtual_wall_time_follows_tokio_time() {
        let e = Env::simulated(1);
        assert_eq!(e.unix_ms(), SIMULATION_START_UNIX_MS);
        let t0 = e.now();
        e.sleep(Duration::from_secs(3600)).await;
        assert_eq!(e.now() - t0, Duration::from_secs(3600));
        assert_eq!(e.unix_ms(), SIMULATION_START_UNIX_MS + 3_600_000);
    }
}
