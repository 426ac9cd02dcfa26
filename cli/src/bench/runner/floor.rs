//! [`CacheLine`]: the physical floor of a round trip between two processes
//! — one 64-bit word in a file-backed mapping (a [`Shm`](super::shm::Shm),
//! the same kind of mapping a ring lives in), bounced between them: the
//! parent writes an odd number, the child answers with the next even one.
//!
//! Each round trip moves one cache line from one core to the other and
//! back, which is the least any message-passing round trip can cost; a
//! ring's round trip moves at least that (the index) and usually more (the
//! slot). Both sides wait with the same [`Spin`](super::spin::Spin) as the
//! spinning ring rows.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use super::flow::{Echo, STOP};
use super::roundtrip::{self, RoundTrips};
use super::shm::SharedWords;
use super::spin;

/// One word at the start of a shared mapping of its own.
pub struct CacheLine {
    word: SharedWords,
}

impl std::fmt::Debug for CacheLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheLine").finish_non_exhaustive()
    }
}

impl CacheLine {
    /// Creates the file at `path` (which must not exist) and maps it.
    ///
    /// # Errors
    ///
    /// Creating the file.
    pub fn create(path: &Path) -> io::Result<Self> {
        Ok(Self {
            word: SharedWords::create(path, 1)?,
        })
    }

    /// `n` timed round trips between this process and a forked child.
    ///
    /// # Errors
    ///
    /// As [`roundtrip::run`].
    pub fn round_trips(&self, n: u64) -> io::Result<RoundTrips> {
        let word: &AtomicU64 = &self.word[0];
        // Relaxed: no child is running; the fork orders this store before
        // everything the child does.
        word.store(0, Ordering::Relaxed);
        let mut last = 0u64;
        roundtrip::run(
            n,
            None,
            |seq| {
                if seq == STOP {
                    // Release: as for a ping (STOP is odd, so the echo
                    // takes it for one).
                    word.store(STOP, Ordering::Release);
                    return true;
                }
                let out = 2 * seq + 1;
                // Release pairs with the echo's Acquire load: what a message
                // hand-off pays (the same instruction as Relaxed on x86).
                word.store(out, Ordering::Release);
                // Acquire pairs with the echo's Release store of the answer.
                spin::until(
                    || (word.load(Ordering::Acquire) == out + 1).then_some(()),
                    || false,
                )
                .is_some()
            },
            move || {
                let got = spin::until(
                    || {
                        // Acquire pairs with the parent's Release stores.
                        let v = word.load(Ordering::Acquire);
                        (v % 2 == 1 && v != last).then_some(v)
                    },
                    || false,
                );
                match got {
                    None => Echo::Failed,
                    Some(STOP) => Echo::Stop,
                    Some(v) => {
                        last = v;
                        // Release pairs with the parent's Acquire load.
                        word.store(v + 1, Ordering::Release);
                        Echo::Again
                    }
                }
            },
            || {},
        )
    }
}
