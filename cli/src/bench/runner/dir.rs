//! [`BenchDir`]: the private directory that holds a benchmark run's files,
//! and [`Stage`]: that directory with the control words of a comparison's
//! runs, what every fixture starts from.

use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::time::{SystemTime, UNIX_EPOCH};

use super::control::Control;
use super::shm::SharedWords;

/// A fresh directory (mode 0700) under `/dev/shm` or a chosen parent,
/// removed with everything in it when dropped — on success, on error and
/// on panic alike.
///
/// The benchmark objects go one step further: each file is unlinked as soon
/// as it is mapped (the processes of a run share the mapping, inherited
/// through `fork`, not the name: see [`unlinked`](Self::unlinked) and
/// [`Shm`](super::shm::Shm)), so a run killed by a signal leaves at most
/// this empty directory behind.
#[derive(Debug)]
pub struct BenchDir {
    path: PathBuf,
}

impl BenchDir {
    /// A new directory under the default place for shared objects
    /// (`/dev/shm` on Linux).
    ///
    /// # Errors
    ///
    /// The error from `mkdir(2)`.
    pub fn new() -> io::Result<Self> {
        Self::new_in(&mmring::region::default_dir())
    }

    /// A new directory `mmring-bench-PID-N` under `parent`.
    ///
    /// # Errors
    ///
    /// The error from `mkdir(2)` (after a few tries if the name is taken).
    pub fn new_in(parent: &Path) -> io::Result<Self> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let mut last = None;
        for attempt in 0..64u32 {
            let path = parent.join(format!(
                "mmring-bench-{}-{:x}",
                std::process::id(),
                nanos.wrapping_add(attempt)
            ));
            match std::fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => return Ok(Self { path }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("cannot create a directory in {}: {e}", parent.display()),
                    ));
                }
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("no free directory name")))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of a file named `name` inside the directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Creates an object named `name` in the directory with `create`, then
    /// removes the name: the mapping stays, and nothing is left in the
    /// directory even if this process is killed.
    ///
    /// # Errors
    ///
    /// Those of `create`, or removing the name.
    pub fn unlinked<T>(
        &self,
        name: &str,
        create: impl FnOnce(&Path) -> io::Result<T>,
    ) -> io::Result<T> {
        let path = self.file(name);
        let object = create(&path)?;
        std::fs::remove_file(&path)?;
        Ok(object)
    }
}

impl Drop for BenchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Where a comparison's runs happen: its private [`BenchDir`] and control
/// words in a shared mapping, which the forked parties of every run reach
/// through the inherited mapping.
#[derive(Debug)]
pub struct Stage {
    control: SharedWords,
    /// Declared last, so dropped last: removes the directory.
    dir: BenchDir,
}

impl Stage {
    /// The stage in `dir` (which it then owns and removes), with `words`
    /// control words.
    ///
    /// # Errors
    ///
    /// Creating the control words' file.
    pub fn new(dir: BenchDir, words: usize) -> io::Result<Self> {
        Ok(Self {
            control: SharedWords::create(&dir.file("control"), words)?,
            dir,
        })
    }

    /// The control words.
    pub fn words(&self) -> &[AtomicU64] {
        &self.control
    }

    /// The control words of a two-party run.
    pub fn control(&self) -> Control<'_> {
        Control::new(&self.control)
    }

    /// The private directory.
    pub fn dir(&self) -> &BenchDir {
        &self.dir
    }
}
