//! [`Shm`]: the harness's own shared memory — a fresh file of `len` zeroed
//! bytes in the benchmark's private directory, mapped shared. The
//! lock-based baselines keep their `pthread_mutex_t`s and data here (a
//! mutex is no atomic integer, so it has no mmring kind), and
//! [`SharedWords`] puts atomic words here: the control words of every
//! run, the bare atomic counter, the round-trip floor's cache line.
//!
//! This is the one module of the command line that maps a file itself;
//! mmring's objects map theirs through the library. Both are plain
//! `MAP_SHARED` mappings of a file in the same directory (`/dev/shm` unless
//! told otherwise), so the baselines run on the same kind of memory as the
//! objects they are compared with.
//!
//! The name is removed as soon as the file is mapped: the processes of a
//! run share the mapping (inherited through `fork`), never the name, so a
//! run killed by a signal leaves nothing behind but its (empty) private
//! directory. The mapping goes when the [`Shm`] is dropped.

use std::fs::{File, OpenOptions};
use std::io;
use std::ops::Deref;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::AtomicU64;

use memmap2::{MmapOptions, MmapRaw};

/// A shared mapping of a file of its own (already unlinked).
pub struct Shm {
    map: MmapRaw,
}

impl std::fmt::Debug for Shm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shm").field("len", &self.len()).finish()
    }
}

impl Shm {
    /// Creates the file at `path` (which must not exist, mode 0600) with
    /// `len` zeroed bytes, reserves its space (a full `/dev/shm` is an
    /// error here, not a `SIGBUS` later), maps it shared and removes the
    /// name.
    ///
    /// # Errors
    ///
    /// Creating, sizing, mapping or removing the file.
    ///
    /// # Panics
    ///
    /// If `len` is 0 (a harness bug).
    pub fn create(path: &Path, len: usize) -> io::Result<Self> {
        assert!(len > 0, "an empty mapping");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(path)?;
        let mapped = reserve(&file, len).and_then(|()| MmapOptions::new().len(len).map_raw(&file));
        // The name goes in every case: mapped or not, nothing is left.
        let removed = std::fs::remove_file(path);
        let map = mapped?;
        removed?;
        Ok(Self { map })
    }

    /// The first byte of the mapping (page-aligned). Valid for `len()`
    /// bytes for as long as `self` lives; other processes sharing the
    /// mapping may write them at any time.
    pub fn as_ptr(&self) -> *mut u8 {
        self.map.as_mut_ptr()
    }

    /// The length of the mapping in bytes.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the mapping is empty (never: [`create`](Self::create)
    /// refuses that).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Extends `file` to `len` bytes with its blocks reserved (a plain
/// extension where the file system cannot reserve).
fn reserve(file: &File, len: usize) -> io::Result<()> {
    let off = libc::off_t::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    {
        // SAFETY: the descriptor is open for writing for the duration of
        // the call; posix_fallocate only extends the file and reserves its
        // blocks.
        match unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, off) } {
            0 => return Ok(()),
            libc::EOPNOTSUPP | libc::EINVAL => {}
            err => return Err(io::Error::from_raw_os_error(err)),
        }
    }
    let _ = off;
    file.set_len(len as u64)
}

/// `n` zeroed `AtomicU64` words in a fresh [`Shm`], seen as a slice: what
/// a forked child reaches through the inherited mapping.
#[derive(Debug)]
pub struct SharedWords {
    shm: Shm,
    n: usize,
}

impl SharedWords {
    /// Creates the file at `path` (see [`Shm::create`]) with room for `n`
    /// words.
    ///
    /// # Errors
    ///
    /// As [`Shm::create`].
    ///
    /// # Panics
    ///
    /// If `n` is 0 (a harness bug).
    pub fn create(path: &Path, n: usize) -> io::Result<Self> {
        Ok(Self {
            shm: Shm::create(path, n * size_of::<AtomicU64>())?,
            n,
        })
    }
}

impl Deref for SharedWords {
    type Target = [AtomicU64];

    #[inline]
    fn deref(&self) -> &[AtomicU64] {
        // SAFETY: the mapping is page-aligned (so aligned for AtomicU64),
        // at least `n` words long (`create`) and stays mapped while `self`
        // lives, which the returned borrow cannot outlast. `AtomicU64` has
        // the in-memory representation of a `u64`, every bit pattern is a
        // valid one, the file started zeroed, and every process sharing the
        // mapping touches these words only through atomic operations.
        unsafe { std::slice::from_raw_parts(self.shm.as_ptr().cast::<AtomicU64>(), self.n) }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::bench::runner::dir::BenchDir;

    #[test]
    fn a_mapping_is_zeroed_shared_across_fork_and_leaves_no_file() {
        let dir = BenchDir::new().expect("dir");
        let words = SharedWords::create(&dir.file("words"), 3).expect("words");
        assert_eq!(std::fs::read_dir(dir.path()).expect("read dir").count(), 0);
        assert_eq!(words.len(), 3);
        assert!(words.iter().all(|w| w.load(Ordering::Relaxed) == 0));
        let mut child = crate::bench::runner::procs::spawn(|| {
            // Relaxed: the parent reads it after reaping this process.
            words[2].store(7, Ordering::Relaxed);
            true
        })
        .expect("fork");
        child.wait().expect("child");
        // Relaxed: the child has exited; nothing races with this load.
        assert_eq!(words[2].load(Ordering::Relaxed), 7);
        assert!(Shm::create(&dir.file("none"), 1).is_ok_and(|s| s.len() == 1 && !s.is_empty()));
    }
}
