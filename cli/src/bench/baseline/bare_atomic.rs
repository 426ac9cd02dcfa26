//! [`RawCounter`]: the physical operation under
//! [`Counter`](mmring::Counter) — a bare `AtomicU64::fetch_add` on a word
//! at the start of the same kind of file-backed shared mapping, with no
//! wrapper at all.

use std::io;
use std::path::Path;
use std::sync::atomic::Ordering;

use crate::bench::runner::shm::SharedWords;

/// A bare atomic word at the start of a shared mapping of its own
/// ([`SharedWords`]).
pub struct RawCounter {
    word: SharedWords,
}

impl std::fmt::Debug for RawCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawCounter")
            .field("value", &self.load())
            .finish()
    }
}

impl RawCounter {
    /// Creates and maps the file at `path` (see
    /// [`Shm::create`](crate::bench::runner::shm::Shm::create)).
    ///
    /// # Errors
    ///
    /// Creating the file.
    pub fn create(path: &Path) -> io::Result<Self> {
        Ok(Self {
            word: SharedWords::create(path, 1)?,
        })
    }

    /// `fetch_add` with the ordering `Counter::fetch_add` uses, so that the
    /// comparison measures the wrapper and nothing else.
    #[inline]
    pub fn fetch_add(&self, v: u64) -> u64 {
        // AcqRel, as in `Atomic::fetch_add`: the Acquire half pairs with
        // the Release half of the other process's previous `fetch_add`.
        self.word[0].fetch_add(v, Ordering::AcqRel)
    }

    /// The value.
    pub fn load(&self) -> u64 {
        // Acquire pairs with the Release half of the last `fetch_add`.
        self.word[0].load(Ordering::Acquire)
    }
}
