//! An ordered parallel pipeline with a bounded window, on plain threads.
//!
//! One producer feeds items in order; `threads` workers transform them concurrently; the
//! consumer (the calling thread) receives results in the original order. At most `window`
//! items are in flight between the producer taking one and the consumer finishing with it, so
//! memory is bounded whatever the input's length. The first error stops the pipeline: later
//! items are dropped and the error is returned once the threads have exited.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::mpsc::sync_channel;

/// Runs the pipeline. See the module docs.
pub fn ordered_pipeline<I, O, E>(
    threads: usize,
    window: usize,
    mut produce: impl FnMut() -> Result<Option<I>, E> + Send,
    work: impl Fn(I) -> Result<O, E> + Sync,
    mut consume: impl FnMut(O) -> Result<(), E>,
) -> Result<(), E>
where
    I: Send,
    O: Send,
    E: Send,
{
    let window = window.max(1);
    let threads = threads.max(1);
    let (tok_tx, tok_rx) = sync_channel::<()>(window);
    for _ in 0..window {
        let _ = tok_tx.send(());
    }
    let (job_tx, job_rx) = sync_channel::<(u64, I)>(window);
    let job_rx = Mutex::new(job_rx);
    let (res_tx, res_rx) = sync_channel::<(u64, Result<O, E>)>(window);
    let work = &work;
    std::thread::scope(|s| {
        let producer_res = res_tx.clone();
        s.spawn(move || {
            let mut seq = 0u64;
            while tok_rx.recv().is_ok() {
                match produce() {
                    Ok(Some(item)) => {
                        if job_tx.send((seq, item)).is_err() {
                            return;
                        }
                        seq += 1;
                    }
                    Ok(None) => return,
                    Err(e) => {
                        let _ = producer_res.send((seq, Err(e)));
                        return;
                    }
                }
            }
        });
        for _ in 0..threads {
            let res_tx = res_tx.clone();
            let job_rx = &job_rx;
            s.spawn(move || {
                loop {
                    let job = match job_rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    let Ok((seq, item)) = job else { return };
                    if res_tx.send((seq, work(item))).is_err() {
                        return;
                    }
                }
            });
        }
        drop(res_tx);
        let mut next = 0u64;
        let mut pending = BTreeMap::new();
        // Dropping `res_rx` and `tok_tx` on an early return unblocks every thread.
        let (res_rx, tok_tx) = (res_rx, tok_tx);
        for (seq, result) in res_rx.iter() {
            pending.insert(seq, result);
            while let Some(result) = pending.remove(&next) {
                consume(result?)?;
                next += 1;
                let _ = tok_tx.send(());
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn keeps_order_and_bounds_the_window() {
        let in_flight = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let mut n = 0u32;
        let mut out = Vec::new();
        ordered_pipeline::<u32, u32, ()>(
            4,
            3,
            || {
                n += 1;
                if n > 200 {
                    return Ok(None);
                }
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                Ok(Some(n))
            },
            |x| {
                std::thread::yield_now();
                Ok(x * 2)
            },
            |x| {
                in_flight.fetch_sub(1, Ordering::SeqCst);
                out.push(x);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(out, (1..=200).map(|x| x * 2).collect::<Vec<_>>());
        assert!(peak.load(Ordering::SeqCst) <= 3, "peak {}", peak.load(Ordering::SeqCst));
    }

    #[test]
    fn first_error_in_order_wins_and_stops() {
        let mut n = 0u32;
        let mut seen = Vec::new();
        let r = ordered_pipeline::<u32, u32, String>(
            2,
            4,
            || {
                n += 1;
                Ok((n <= 1000).then_some(n))
            },
            |x| if x == 5 || x == 9 { Err(format!("bad {x}")) } else { Ok(x) },
            |x| {
                seen.push(x);
                Ok(())
            },
        );
        assert_eq!(r, Err("bad 5".to_string()));
        assert_eq!(seen, vec![1, 2, 3, 4]);
        let r = ordered_pipeline::<u32, u32, String>(
            2,
            4,
            || Err("read failed".into()),
            Ok,
            |_| Ok(()),
        );
        assert_eq!(r, Err("read failed".to_string()));
    }
}
