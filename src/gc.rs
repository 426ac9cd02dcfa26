//! Stale files: what `mmring gc DIR` finds and removes.
//!
//! A file is *in use* while some process holds it open as a [`Region`]: such
//! a process holds a shared `flock(2)` lock on it (see the lock rule in
//! [`crate::region`]). A file that nobody has locked is *stale*: every
//! process that used it has closed it or died (a `SIGKILL` included, since
//! the kernel drops a dead process's locks). Stale files are harmless —
//! any open takes them over — but they take space in `/dev/shm`.
//!
//! [`gc`] looks at the entries of one directory (not its subdirectories):
//!
//! * a regular file that starts with the mmring magic and validates is an
//!   mmring object: in use if its exclusive lock cannot be taken, stale if
//!   it can;
//! * a file named `.mmring-tmp.PID-SEQ` is a creator's temporary file: in
//!   use while that pid lives or while the file is locked (a creator locks
//!   it at once), stale otherwise (its creator died in the middle of a
//!   create);
//! * a file with the magic that does not validate is reported as invalid and
//!   left alone;
//! * anything else (other files, links, directories) is ignored, never
//!   opened for writing, never removed.
//!
//! With `remove`, a stale file is unlinked while this process holds its
//! exclusive lock, and only if the path still names the inode it locked, so
//! a file that a process opened a moment ago is never removed: the opener
//! either got its shared lock first (and the exclusive lock fails here), or
//! notices that its file was unlinked and opens afresh. The status block's
//! attached-pid list is shown but never trusted: it can overflow, and an
//! opener is listed only once it has attached.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::GcError;
use crate::layout::MAGIC;
use crate::raw::seqlock::Patience;
use crate::region::{Region, TMP_PREFIX, flock, names_same_file};

/// What [`gc`] concluded about one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A process holds it open (or, for a temporary file, its creator lives).
    InUse,
    /// Nobody holds it open; left in place (no `remove` asked).
    Stale,
    /// Nobody held it open, and it was removed.
    Removed,
    /// Stale, but removing it failed (see the reason).
    NotRemoved,
    /// It starts with the mmring magic but does not validate: left alone.
    Invalid,
}

impl Verdict {
    /// The word printed for it.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::InUse => "in use",
            Verdict::Stale => "stale",
            Verdict::Removed => "removed",
            Verdict::NotRemoved => "not removed",
            Verdict::Invalid => "invalid",
        }
    }
}

/// One mmring file (or temporary file) found by [`gc`].
#[derive(Clone, Debug)]
pub struct Entry {
    /// The file.
    pub path: PathBuf,
    /// The object's kind (`"counter"`, `"mpmc queue"` ...), `"temporary
    /// file"`, or `"unknown"` for an invalid file.
    pub kind: &'static str,
    /// What was found.
    pub verdict: Verdict,
    /// Why, in words (who holds it, who was attached, what went wrong).
    pub why: String,
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}  {}  {}: {}",
            self.path.display(),
            self.kind,
            self.verdict.name(),
            self.why
        )
    }
}

/// What [`gc`] found in a directory.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// The mmring files and temporary files, sorted by path.
    pub entries: Vec<Entry>,
    /// Entries that are not mmring files (left untouched).
    pub ignored: usize,
}

impl Report {
    /// How many entries have this verdict.
    pub fn count(&self, verdict: Verdict) -> usize {
        self.entries.iter().filter(|e| e.verdict == verdict).count()
    }

    /// One line: how many files, in use, stale, removed.
    pub fn summary(&self) -> String {
        let mut parts = vec![
            format!("{} in use", self.count(Verdict::InUse)),
            format!(
                "{} stale",
                self.count(Verdict::Stale)
                    + self.count(Verdict::Removed)
                    + self.count(Verdict::NotRemoved)
            ),
        ];
        for v in [Verdict::Removed, Verdict::NotRemoved, Verdict::Invalid] {
            let n = self.count(v);
            if n > 0 || v == Verdict::Removed {
                parts.push(format!("{n} {}", v.name()));
            }
        }
        format!(
            "{} mmring file(s): {}; {} other entr{} ignored",
            self.entries.len(),
            parts.join(", "),
            self.ignored,
            if self.ignored == 1 { "y" } else { "ies" }
        )
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in &self.entries {
            writeln!(f, "{e}")?;
        }
        writeln!(f, "{}", self.summary())
    }
}

/// Looks at every entry of `dir` (not recursively) and reports the mmring
/// files and leftover temporary files in it, each in use or stale; with
/// `remove`, removes the stale ones (never a file in use, never anything
/// that is not an mmring file). See the module docs for the rule.
///
/// # Errors
///
/// [`GcError`] if `dir` does not exist, is not a directory or cannot be
/// listed; problems with single files are reported in their entries.
pub fn gc(dir: impl AsRef<Path>, remove: bool) -> Result<Report, GcError> {
    let dir = dir.as_ref();
    let io_err = |op, source: io::Error| GcError::Io {
        path: dir.to_path_buf(),
        op,
        source,
    };
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(GcError::NotADirectory {
                path: dir.to_path_buf(),
            });
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(GcError::NotFound {
                path: dir.to_path_buf(),
            });
        }
        Err(e) => return Err(io_err("stat", e)),
    }
    let mut report = Report::default();
    for item in std::fs::read_dir(dir).map_err(|e| io_err("read directory", e))? {
        let item = item.map_err(|e| io_err("read directory", e))?;
        let path = item.path();
        // Not followed: a link is not a file of ours, whatever it points to.
        let is_file = item.file_type().is_ok_and(|t| t.is_file());
        let name = item.file_name();
        let found = if !is_file {
            None
        } else if let Some(pid) = name.to_str().and_then(temp_pid) {
            Some(temp_entry(&path, pid, remove))
        } else {
            object_entry(&path, remove)
        };
        match found {
            Some(e) => report.entries.push(e),
            None => report.ignored += 1,
        }
    }
    report.entries.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(report)
}

/// The creator's pid in a temporary name `.mmring-tmp.PID-SEQ`.
fn temp_pid(name: &str) -> Option<u32> {
    let (pid, seq) = name.strip_prefix(TMP_PREFIX)?.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(pid) || !digits(seq) {
        return None;
    }
    pid.parse().ok()
}

/// Opens `path` to look at it and lock it: read-only, without following a
/// link, without blocking on a FIFO swapped in meanwhile.
fn open_for_lock(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    Ok(file)
}

/// The outcome of trying the exclusive lock.
enum Lock {
    /// Taken: nobody holds the file open.
    Free,
    /// Someone holds a lock on it.
    Held,
    /// The lock could not be tried (the reason).
    Failed(String),
}

fn try_exclusive(file: &File) -> Lock {
    match flock(file, libc::LOCK_EX | libc::LOCK_NB) {
        Ok(()) => Lock::Free,
        Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Lock::Held,
        Err(e) => Lock::Failed(e.to_string()),
    }
}

/// Unlinks `path` while `file` (locked exclusively) is what it names.
fn remove_locked(file: &File, path: &Path) -> Result<(), String> {
    match names_same_file(file, path) {
        Ok(true) => std::fs::remove_file(path).map_err(|e| e.to_string()),
        Ok(false) => Err("the path was removed or replaced meanwhile".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// A stale file's verdict, after removing it if asked.
fn stale(file: &File, path: &Path, remove: bool, why: String) -> (Verdict, String) {
    if !remove {
        return (Verdict::Stale, why);
    }
    match remove_locked(file, path) {
        Ok(()) => (Verdict::Removed, why),
        Err(e) => (Verdict::NotRemoved, format!("{why}; {e}")),
    }
}

fn temp_entry(path: &Path, pid: u32, remove: bool) -> Entry {
    let entry = |verdict, why| Entry {
        path: path.to_path_buf(),
        kind: "temporary file",
        verdict,
        why,
    };
    if crate::pid::is_alive(pid) {
        return entry(Verdict::InUse, format!("creator pid {pid} is alive"));
    }
    let file = match open_for_lock(path) {
        Ok(f) => f,
        Err(e) => {
            return entry(
                Verdict::InUse,
                format!("creator pid {pid} is dead, but the file cannot be locked: {e}"),
            );
        }
    };
    let (verdict, why) = match try_exclusive(&file) {
        Lock::Free => stale(
            &file,
            path,
            remove,
            format!("creator pid {pid} is dead (killed while creating)"),
        ),
        Lock::Held => (
            Verdict::InUse,
            format!("creator pid {pid} is not running here, but the file is locked"),
        ),
        Lock::Failed(e) => (Verdict::InUse, format!("cannot be locked: {e}")),
    };
    entry(verdict, why)
}

fn object_entry(path: &Path, remove: bool) -> Option<Entry> {
    // Only files that start with the magic are ours; anything else (or a
    // file we may not read) is ignored.
    let mut file = open_for_lock(path).ok()?;
    let mut magic = [0u8; 8];
    file.read_exact(&mut magic).ok()?;
    if magic != MAGIC {
        return None;
    }
    let entry = |kind, verdict, why| {
        Some(Entry {
            path: path.to_path_buf(),
            kind,
            verdict,
            why,
        })
    };
    // Validated and read through a mapping of its own (unlocked: an
    // observer), for the kind and the attached list.
    let region = match Region::open_any(path) {
        Ok(r) => r,
        Err(e) => return entry("unknown", Verdict::Invalid, e.to_string()),
    };
    let kind = region.descriptor().kind().map_or("unknown", |k| k.name());
    let attached = match region.status(Patience::timeout(Duration::from_millis(100))) {
        Ok(s) => {
            let pids: Vec<String> = s
                .attached_pids()
                .map(|p| {
                    let state = if crate::pid::is_alive(p) {
                        "alive"
                    } else {
                        "dead"
                    };
                    format!("{p} ({state})")
                })
                .collect();
            if pids.is_empty() {
                "attached: none".to_string()
            } else {
                format!("attached: {}", pids.join(", "))
            }
        }
        Err(e) => format!("attached: unreadable ({e})"),
    };
    drop(region);
    let (verdict, why) = match try_exclusive(&file) {
        Lock::Free => stale(
            &file,
            path,
            remove,
            format!("no process has it open; {attached}"),
        ),
        Lock::Held => (
            Verdict::InUse,
            format!("held open by a process; {attached}"),
        ),
        Lock::Failed(e) => (
            Verdict::InUse,
            format!("cannot be locked ({e}), so taken as in use; {attached}"),
        ),
    };
    entry(kind, verdict, why)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Counter;
    use crate::sync::{AtomicU32, AtomicU64, Ordering};

    #[test]
    fn temporary_names_are_parsed_strictly() {
        assert_eq!(temp_pid(".mmring-tmp.123-4"), Some(123));
        assert_eq!(temp_pid(".mmring-tmp.123-"), None);
        assert_eq!(temp_pid(".mmring-tmp.-4"), None);
        assert_eq!(temp_pid(".mmring-tmp.12a-4"), None);
        assert_eq!(temp_pid("mmring-tmp.123-4"), None);
        assert_eq!(temp_pid(".mmring-tmp.123-4.x"), None);
    }

    #[test]
    fn a_file_held_open_is_in_use_even_with_an_empty_attached_list() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("held");
        let c = Counter::create(&p, 5).unwrap();
        // Wipe the advisory list: the lock alone must keep the file.
        let lock = c.region().status_lock();
        let (mut s, _) = lock
            .read::<crate::layout::Status>(Patience::DEFAULT)
            .unwrap();
        s.attached = [0; crate::layout::MAX_ATTACHED];
        lock.write(&s, Patience::DEFAULT).unwrap();
        let r = gc(dir.path(), true).unwrap();
        assert_eq!(r.entries.len(), 1, "{r}");
        assert_eq!(r.entries[0].verdict, Verdict::InUse, "{r}");
        assert!(p.exists());
        assert_eq!(c.fetch_add(1), 5);
        drop(c);
        // A process forked by another test while `c` was open shares its
        // lock until it execs: the file can look in use for a moment.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let r = gc(dir.path(), true).unwrap();
            assert_eq!(r.entries.len(), 1, "{r}");
            if r.entries[0].verdict == Verdict::Removed {
                break;
            }
            assert_eq!(r.entries[0].verdict, Verdict::InUse, "{r}");
            assert!(std::time::Instant::now() < deadline, "never stale: {r}");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!p.exists());
    }

    /// The lock rule under a race: one thread keeps opening (or creating)
    /// the file and checks, while it holds it, that the path still names
    /// the very file it has; another thread keeps collecting the
    /// directory with `remove`. Without the rule the collector would
    /// unlink files from under the opener.
    #[test]
    fn a_collector_never_unlinks_a_file_from_under_an_opener() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("raced");
        // Relaxed (every access to these two): a stop flag and a tally,
        // read after the scope joins or polled with no data behind them.
        let stop = AtomicU32::new(0);
        let removed = AtomicU64::new(0);
        std::thread::scope(|s| {
            s.spawn(|| {
                while stop.load(Ordering::Relaxed) == 0 {
                    let r = gc(dir.path(), true).unwrap();
                    removed.fetch_add(r.count(Verdict::Removed) as u64, Ordering::Relaxed);
                }
            });
            /// Stops the collector however the loop below ends (a failed
            /// assertion included), so the scope can join it.
            struct Stop<'a>(&'a AtomicU32);
            impl Drop for Stop<'_> {
                fn drop(&mut self) {
                    self.0.store(1, Ordering::Relaxed);
                }
            }
            let _stop = Stop(&stop);
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            // At least 2000 rounds, and on until the collector has removed
            // the file between two uses at least once (the race was real).
            for i in 0.. {
                if i >= 2000 && removed.load(Ordering::Relaxed) > 0 {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "the collector never found the file unused"
                );
                let c = Counter::open_or_create(&p, 0).unwrap();
                c.fetch_add(1);
                for _ in 0..(i % 4) {
                    std::thread::yield_now();
                }
                let here = std::fs::symlink_metadata(&p)
                    .map(|m| {
                        use std::os::unix::fs::MetadataExt;
                        (m.dev(), m.ino())
                    })
                    .unwrap_or_else(|e| panic!("round {i}: the file in use was removed: {e}"));
                assert_eq!(
                    here,
                    c.region().file_id(),
                    "round {i}: the path names another file"
                );
                drop(c);
                if i % 16 == 0 {
                    // Room for the collector between two uses.
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        });
    }
}
