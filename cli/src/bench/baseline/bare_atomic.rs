//! [`RawCounter`]: the physical operation under [`Counter`](crate::Counter)
//! — a bare `AtomicU64::fetch_add` on a word at the same offset of the same
//! kind of file-backed mapping, with no wrapper at all.

use std::io;
use std::path::Path;

use crate::layout::Kind;
use crate::pod::TypeInfo;
use crate::region::{CreateOptions, Expect, Region, View};
use crate::sync::{AtomicU64, Ordering};

/// A bare atomic word at the start of a `Scratch` file's body (offset 4096,
/// where a `Counter` keeps its value).
pub struct RawCounter {
    word: View<AtomicU64>,
}

impl std::fmt::Debug for RawCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawCounter")
            .field("value", &self.load())
            .finish()
    }
}

impl RawCounter {
    /// Creates the file at `path` (which must not exist) and maps it.
    ///
    /// # Errors
    ///
    /// Creating the file.
    pub fn create(path: &Path) -> io::Result<Self> {
        let expect = Expect {
            kind: Kind::Scratch,
            elem: TypeInfo::NONE,
            any_size: false,
        };
        let region = Region::create(path, expect, 64, &CreateOptions::default(), |_| {})
            .map_err(io::Error::other)?;
        Ok(Self {
            word: View::new(region, |r| &r.body::<AtomicU64>(0, 1)[0]),
        })
    }

    /// `fetch_add` with the ordering `Counter::fetch_add` uses, so that the
    /// comparison measures the wrapper and nothing else.
    #[inline]
    pub fn fetch_add(&self, v: u64) -> u64 {
        // AcqRel, as in `Atomic::fetch_add`: the Acquire half pairs with
        // the Release half of the other process's previous `fetch_add`.
        self.word.fetch_add(v, Ordering::AcqRel)
    }

    /// The value.
    pub fn load(&self) -> u64 {
        // Acquire pairs with the Release half of the last `fetch_add`.
        self.word.load(Ordering::Acquire)
    }
}
