//! Files and mappings: the only module that touches the file system.
//!
//! * `Region::create` builds the whole file under a temporary name in the
//!   target directory and `link(2)`s it into place, so no process can ever
//!   open a half-built object; `link` fails with `EEXIST` if the name is
//!   taken, which is how `Region::open_or_create` settles races.
//! * `Region::open` checks everything (type of file, size, magic, version,
//!   checksum, kind, payload, capacity, sizes) from a `pread(2)` copy of the
//!   header *before* mapping anything.
//! * Files are opened with `O_NOFOLLOW | O_CLOEXEC`, created with mode 0600
//!   unless asked otherwise, and their space is reserved with
//!   `posix_fallocate(3)` so a full `/dev/shm` is an error at creation, never
//!   a `SIGBUS` on a later store.
//!
//! # Files in use: the lock rule
//!
//! Every [`Region`] opened for use (`create`, `open`, `open_or_create`)
//! keeps its file descriptor open for its whole life with a *shared*
//! `flock(2)` lock on it. An opener takes the lock right after `open(2)` and
//! then checks (with `fstat` and `lstat`) that the path still names the
//! inode it locked; if not, the file was removed (or replaced) between its
//! `open` and its lock, and it starts over. A creator locks its temporary
//! file the same way before it links it into place, so a new file is locked
//! from the moment it has a name.
//!
//! A remover that must not take a file from under its users (`mmring gc`,
//! [`crate::gc`]) takes an *exclusive* `flock(LOCK_EX | LOCK_NB)` on the file
//! and unlinks it only while it holds that lock, after checking that the
//! path still names the inode it locked. The two rules together mean that no
//! process ever keeps using a file that was unlinked by the collector: either
//! its shared lock came first (and the collector's exclusive lock fails), or
//! the collector's unlink came first (and the opener's check sees it).
//! `flock` locks belong to the open file description and go away when the
//! last descriptor is closed, so a process killed with `SIGKILL` never keeps
//! a file "in use" (a forked child shares the lock until it `exec`s, which
//! closes our close-on-exec descriptors). The status block's attached-pid
//! list is only advisory (it can overflow, and an opener is not listed until
//! it has attached); it is never the proof that a file is unused. Read-only
//! observers ([`Region::open_any`], `mmring inspect`) take no lock. The rule
//! is part of the file format (`docs/FORMAT.md`, "Files in use").

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use memmap2::{MmapOptions, MmapRaw};

use crate::error::{OpenError, RemoveError};
use crate::layout::{
    BodyLayout, Descriptor, HEADER_SIZE, Kind, LABEL_LEN, LayoutError, MAGIC, MAX_ATTACHED,
    MappedAtomic, STATE_OPEN, STATUS_OFFSET, STATUS_WORDS, Status, VERSION,
};
use crate::pod::{MAX_NAME_LEN, TypeInfo};
use crate::raw::seqlock::{Patience, SeqLock};
use crate::sync::{AtomicU64, Ordering};

/// Where a bare name (no `/`) is placed.
pub fn default_dir() -> PathBuf {
    if cfg!(target_os = "linux") {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    }
}

/// The path an object named `path` lives at: a bare name such as `"jobs"`
/// goes under [`default_dir`] (`/dev/shm/jobs` on Linux); anything with a
/// directory part (`./jobs`, `/tmp/jobs`) is used as given.
pub fn resolve(path: impl AsRef<Path>) -> PathBuf {
    let path = path.as_ref();
    let mut parts = path.components();
    match (parts.next(), parts.next()) {
        (Some(Component::Normal(name)), None) if !path.as_os_str().is_empty() => {
            default_dir().join(name)
        }
        _ => path.to_path_buf(),
    }
}

/// How a new object file is made.
#[derive(Clone, Debug)]
pub struct CreateOptions {
    mode: u32,
    label: String,
}

impl Default for CreateOptions {
    fn default() -> Self {
        Self {
            mode: 0o600,
            label: String::new(),
        }
    }
}

impl CreateOptions {
    /// Mode 0600, no label.
    pub fn new() -> Self {
        Self::default()
    }

    /// The file's permission bits (applied exactly, whatever the umask).
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode & 0o7777;
        self
    }

    /// A short label stored in the status block (at most 32 bytes of UTF-8),
    /// shown by `mmring inspect`.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }
}

/// What a kind asks of a file it opens.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Expect {
    pub kind: Kind,
    pub elem: TypeInfo,
    /// Accept any `elem.size` (byte queues: the size is the maximum message
    /// length chosen at creation); name and alignment must still match.
    pub any_size: bool,
}

impl Expect {
    /// Refuses a payload whose name no file can hold.
    fn check_name(&self, path: &Path) -> Result<(), OpenError> {
        self.elem
            .check_name()
            .map_err(|error| OpenError::InvalidPayloadName {
                path: path.to_path_buf(),
                name: self.elem.name().to_string(),
                error,
            })
    }
}

/// A mapped, validated object file.
///
/// Holds the mapping for as long as any handle to the object lives; the
/// object's typed views borrow from it.
pub struct Region {
    map: MmapRaw,
    /// The open file: for a region in use it carries the shared `flock`
    /// that tells `gc` the file is in use (see the module docs); closing it
    /// (on drop) releases the lock. Held rather than read.
    #[cfg_attr(not(test), allow(dead_code))]
    file: File,
    path: PathBuf,
    desc: Descriptor,
    attached: bool,
}

impl std::fmt::Debug for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Region")
            .field("path", &self.path)
            .field("kind", &self.desc.kind())
            .field("len", &self.desc.total_size)
            .finish()
    }
}

/// Creation of temporary names: unique within this process.
static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// Patience for the best-effort status updates at attach and detach. A
/// writer holds the status lock for microseconds; one that holds it longer
/// is stopped, or the block is garbage a peer wrote (a live pid and an odd
/// sequence), and every open and close would wait this long for nothing.
/// Short, then: the list is advisory (regression: the `hostile_peer`
/// fuzzer made each open and close of such a file wait 1 s, and one input
/// 28 s).
const ATTACH_PATIENCE: Patience = Patience::timeout(Duration::from_millis(50));

fn io_err(path: &Path, op: &'static str, source: io::Error) -> OpenError {
    let path = path.to_path_buf();
    match source.raw_os_error() {
        Some(libc::ENOENT) => OpenError::NotFound { path },
        Some(libc::EEXIST) => OpenError::AlreadyExists { path },
        Some(libc::ELOOP) => OpenError::Symlink { path },
        Some(libc::EISDIR) => OpenError::Directory { path },
        Some(libc::EACCES | libc::EPERM) => OpenError::PermissionDenied { path },
        _ => OpenError::Io { path, op, source },
    }
}

/// What is at `path` right now, for a better error than `EEXIST`.
fn classify_existing(path: &Path) -> OpenError {
    let path_buf = path.to_path_buf();
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => OpenError::Symlink { path: path_buf },
        Ok(m) if m.is_dir() => OpenError::Directory { path: path_buf },
        _ => OpenError::AlreadyExists { path: path_buf },
    }
}

impl Region {
    /// Makes a new file holding a `layout`-sized body of `expect.kind`, runs
    /// `init` on it while it is still private, then publishes it at `path`.
    /// `slot_size` is 0 but for kinds whose slot size is chosen at creation
    /// (see [`crate::raw::body_layout`]).
    pub(crate) fn create(
        path: &Path,
        expect: Expect,
        capacity: u64,
        slot_size: u64,
        opts: &CreateOptions,
        init: impl FnOnce(&Region),
    ) -> Result<Region, OpenError> {
        expect.check_name(path)?;
        let layout = check_layout(
            path,
            expect.kind,
            expect.elem,
            capacity,
            slot_size,
            Side::Create,
        )?;
        if opts.label.len() > LABEL_LEN {
            return Err(OpenError::InvalidOption {
                path: path.to_path_buf(),
                what: format!(
                    "label of at most {LABEL_LEN} bytes expected, found {} bytes",
                    opts.label.len()
                ),
            });
        }
        if path.file_name().is_none() {
            return Err(OpenError::InvalidOption {
                path: path.to_path_buf(),
                what: "the path has no file name".into(),
            });
        }
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let desc = Descriptor::new(
            expect.kind,
            expect.elem,
            capacity,
            layout.slot_size,
            layout.body_size,
        );
        let (file, tmp) = create_temp(dir, path, opts.mode)?;
        // From here on the temporary name is ours to remove, whatever happens
        // (the link below failing included); the descriptor, locked, moves
        // into the region and keeps the published file locked.
        let _cleanup = RemoveOnDrop(&tmp);
        file.set_permissions(std::fs::Permissions::from_mode(opts.mode))
            .map_err(|e| io_err(path, "fchmod", e))?;
        reserve(&file, desc.total_size).map_err(|e| match e.raw_os_error() {
            Some(libc::ENOSPC | libc::EDQUOT | libc::EFBIG) => OpenError::NoSpace {
                path: path.to_path_buf(),
                needed: desc.total_size,
            },
            _ => io_err(path, "posix_fallocate", e),
        })?;
        file.write_all_at(bytemuck::bytes_of(&desc), 0)
            .map_err(|e| io_err(path, "write header", e))?;
        let mut region = Region::map(file, path, desc, true)?;
        let mut status = Status {
            state: STATE_OPEN,
            creator_pid: crate::pid::current(),
            created_unix_ns: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
            label: [0; LABEL_LEN],
            attached: [0; MAX_ATTACHED],
        };
        status.label[..opts.label.len()].copy_from_slice(opts.label.as_bytes());
        status.attached[0] = crate::pid::current();
        // Nobody else can see the file yet: the lock is free.
        region
            .status_lock()
            .write(&status, Patience::DEFAULT)
            .map_err(|source| OpenError::Status {
                path: path.to_path_buf(),
                source,
            })?;
        region.attached = true;
        init(&region);
        std::fs::hard_link(&tmp, path).map_err(|e| match e.raw_os_error() {
            Some(libc::EEXIST) => classify_existing(path),
            _ => io_err(path, "link", e),
        })?;
        Ok(region)
    }

    /// Opens and validates an existing file of the expected kind and payload,
    /// holding its shared lock (see the module docs) until the region is
    /// dropped.
    pub(crate) fn open(path: &Path, expect: Expect) -> Result<Region, OpenError> {
        expect.check_name(path)?;
        let (file, desc) = open_locked(path)?;
        let found_kind = desc.kind();
        let found = desc.type_info();
        if found_kind != Some(expect.kind) {
            // Each side names its kind and its payload ("mpmc queue of u64
            // (8 B, align 8)"), so that a file made in another language is
            // told apart from what was asked by the stable names alone.
            let expected_elem = if expect.any_size {
                format!(
                    "{} (any size, align {})",
                    expect.elem.name(),
                    expect.elem.align
                )
            } else {
                expect.elem.to_string()
            };
            return Err(OpenError::WrongKind {
                path: path.to_path_buf(),
                expected: format!("{} of {expected_elem}", expect.kind.name()),
                found: found_kind.map_or_else(
                    || format!("unknown kind {}", desc.kind),
                    |k| format!("{} of {found}", k.name()),
                ),
            });
        }
        let matches = if expect.any_size {
            found.name() == expect.elem.name() && found.align == expect.elem.align
        } else {
            found == expect.elem
        };
        if !matches {
            return Err(OpenError::WrongPayload {
                path: path.to_path_buf(),
                expected: Box::new(expect.elem),
                found: Box::new(found),
            });
        }
        let mut region = Region::map(file, path, desc, true)?;
        region.attach();
        Ok(region)
    }

    /// Opens any valid mmring file, whatever its kind and payload, mapped
    /// read-only (for inspection: it needs only read permission, writes
    /// nothing, does not register as attached and takes no lock, so it
    /// never keeps `gc` from removing the file).
    pub fn open_any(path: impl AsRef<Path>) -> Result<Region, OpenError> {
        let path = resolve(path);
        let (file, desc) = read_descriptor(&path, false)?;
        Region::map(file, &path, desc, false)
    }

    /// Opens the object at `path`, or creates it if there is none. Two
    /// processes racing here end up with the same object: exactly one
    /// `link(2)` wins, the other opens the winner's file. `slot_size` as for
    /// [`Region::create`]. The caller checks that an existing file has the
    /// shape it asked for.
    pub(crate) fn open_or_create(
        path: &Path,
        expect: Expect,
        capacity: u64,
        slot_size: u64,
        opts: &CreateOptions,
        init: impl Fn(&Region),
    ) -> Result<Region, OpenError> {
        let mut last = None;
        // Each turn of the loop is one lost race against a creator or a
        // remover; a hundred in a row means something is churning the name.
        for _ in 0..100 {
            match Region::open(path, expect) {
                Err(OpenError::NotFound { .. }) => {}
                other => return other,
            }
            match Region::create(path, expect, capacity, slot_size, opts, &init) {
                Err(e @ OpenError::AlreadyExists { .. }) => last = Some(e),
                other => return other,
            }
        }
        Err(last.unwrap_or_else(|| OpenError::NotFound {
            path: path.to_path_buf(),
        }))
    }

    fn map(file: File, path: &Path, desc: Descriptor, writable: bool) -> Result<Region, OpenError> {
        let len = usize::try_from(desc.total_size).map_err(|_| OpenError::CorruptHeader {
            path: path.to_path_buf(),
            what: format!("total size {} does not fit in memory", desc.total_size),
        })?;
        let mut opts = MmapOptions::new();
        opts.len(len);
        // A read-only mapping is only ever read through atomic loads of at
        // most 8 bytes, which never write (see `atomics`).
        let map = if writable {
            opts.map_raw(&file)
        } else {
            opts.map_raw_read_only(&file)
        }
        .map_err(|e| io_err(path, "mmap", e))?;
        Ok(Region {
            map,
            file,
            path: path.to_path_buf(),
            desc,
            attached: false,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The device and inode of the mapped file (what the path named when
    /// it was opened); `(0, 0)` in the unheard-of case that `fstat(2)` of
    /// the open descriptor fails.
    pub(crate) fn file_id(&self) -> (u64, u64) {
        use std::os::unix::fs::MetadataExt;
        self.file.metadata().map_or((0, 0), |m| (m.dev(), m.ino()))
    }

    /// The validated descriptor (a private copy: it never changes).
    pub fn descriptor(&self) -> &Descriptor {
        &self.desc
    }

    /// The status block's seqlock.
    pub fn status_lock(&self) -> SeqLock<'_> {
        SeqLock::new(self.atomics::<AtomicU64>(STATUS_OFFSET, STATUS_WORDS))
    }

    /// The status block, read whole without blocking anyone.
    ///
    /// # Errors
    ///
    /// If writes of the status kept overlapping the read for `patience` (a
    /// writer inside, or one that died there, does not stop a read).
    pub fn status(&self, patience: Patience) -> Result<Status, crate::SeqLockError> {
        self.status_lock().read(patience).map(|(s, _)| s)
    }

    /// Writes dirty pages of a file on a real file system back to disk
    /// (`msync(2)`); on `/dev/shm` there is nothing to write.
    ///
    /// # Errors
    ///
    /// The error from `msync`.
    pub fn flush(&self) -> io::Result<()> {
        self.map.flush()
    }

    /// `count` atomics of type `A` at byte `offset` of the file.
    ///
    /// # Panics
    ///
    /// If the range is outside the mapping or misaligned: offsets come from
    /// the validated descriptor and the kind's own layout, never from bytes
    /// in the mapping, so this is a bug in the kind, not bad input.
    pub(crate) fn atomics<A: MappedAtomic>(&self, offset: usize, count: usize) -> &[A] {
        let bytes = count
            .checked_mul(size_of::<A>())
            .and_then(|b| b.checked_add(offset))
            .expect("atomic range overflows");
        assert!(
            bytes <= self.map.len(),
            "atomic range {offset}+{count} outside a {}-byte mapping",
            self.map.len()
        );
        assert!(
            offset % align_of::<A>() == 0,
            "misaligned atomic at {offset}"
        );
        // SAFETY: the range [offset, offset + count * size_of::<A>()) lies in
        // the mapping (checked above), which lives as long as `self`; the
        // mapping is page-aligned and `offset` is a multiple of A's alignment
        // (checked above). `A: MappedAtomic` guarantees that A has the size
        // and alignment of an integer and that every bit pattern is a valid
        // A, and all access to the memory goes through A's atomic methods,
        // so concurrent access by other processes is not a data race. A
        // read-only region (`open_any`) is only ever loaded from: atomic loads
        // of at most 8 bytes are plain loads that never write.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(offset).cast::<A>(), count) }
    }

    /// `count` atomics of type `A` at byte `offset` of the body.
    pub(crate) fn body<A: MappedAtomic>(&self, offset: usize, count: usize) -> &[A] {
        self.atomics(HEADER_SIZE as usize + offset, count)
    }

    /// Records this process in the status block's attached list (reusing the
    /// entry of a dead process if the list is full). Best effort: the list
    /// is advisory, so a status lock held by a stalled writer only means
    /// this attachment goes unrecorded.
    fn attach(&mut self) {
        let me = crate::pid::current();
        let res = self.status_lock().update(ATTACH_PATIENCE, |mut s: Status| {
            let free = s
                .attached
                .iter()
                .position(|&p| p == 0)
                .or_else(|| s.attached.iter().position(|&p| !crate::pid::is_alive(p)));
            if let Some(i) = free {
                s.attached[i] = me;
            }
            s
        });
        self.attached = res.is_ok();
    }

    fn detach(&self) {
        let me = crate::pid::current();
        let _ = self.status_lock().update(ATTACH_PATIENCE, |mut s: Status| {
            if let Some(i) = s.attached.iter().position(|&p| p == me) {
                s.attached[i] = 0;
            }
            s
        });
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        if self.attached {
            self.detach();
        }
    }
}

/// Removes `path` (a bare name means the default directory), as `unlink(2)`:
/// processes that have it open keep their mapping; new opens fail.
///
/// # Errors
///
/// [`RemoveError`] with the system error (no such file, permission ...).
pub fn remove(path: impl AsRef<Path>) -> Result<(), RemoveError> {
    let path = resolve(path);
    std::fs::remove_file(&path).map_err(|source| RemoveError { path, source })
}

struct RemoveOnDrop<'a>(&'a Path);

impl Drop for RemoveOnDrop<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.0);
    }
}

/// How long an opener waits for a file locked exclusively by a collector
/// (which holds the lock only for an `unlink`) before giving up.
const LOCK_PATIENCE: Duration = Duration::from_secs(5);

/// Most times an open starts over because the path changed under it.
const REOPEN_TRIES: u32 = 100;

/// Takes `flock(op)` on `file`, retrying on `EINTR`.
pub(crate) fn flock(file: &File, op: libc::c_int) -> io::Result<()> {
    loop {
        // SAFETY: flock on a descriptor that `file` keeps open for the call;
        // it has no memory effects.
        let rc = unsafe { libc::flock(file.as_raw_fd(), op) };
        if rc == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// Takes the shared lock of a file in use (see the module docs), waiting a
/// bounded time while a collector holds it exclusively. File systems
/// without `flock` support are accepted unlocked: a collector cannot lock
/// them either, and never removes what it cannot lock.
fn lock_shared(file: &File, path: &Path) -> Result<(), OpenError> {
    let deadline = std::time::Instant::now() + LOCK_PATIENCE;
    loop {
        match flock(file, libc::LOCK_SH | libc::LOCK_NB) {
            Ok(()) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => {
                if std::time::Instant::now() > deadline {
                    return Err(io_err(
                        path,
                        "flock (locked exclusively by another process)",
                        e,
                    ));
                }
                // A collector holds it for one unlink: a short nap is plenty.
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOLCK | libc::EOPNOTSUPP)) => {
                return Ok(());
            }
            Err(e) => return Err(io_err(path, "flock", e)),
        }
    }
}

/// Whether `path` (not followed if a link) names the inode open as `file`.
pub(crate) fn names_same_file(file: &File, path: &Path) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let open = file.metadata()?;
    match std::fs::symlink_metadata(path) {
        Ok(now) => Ok(now.dev() == open.dev() && now.ino() == open.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Opens and validates `path` for use (read-write) and takes its shared
/// lock, starting over while the path changes between the open and the
/// lock (a collector removed it, or someone replaced it).
fn open_locked(path: &Path) -> Result<(File, Descriptor), OpenError> {
    for _ in 0..REOPEN_TRIES {
        let (file, desc) = read_descriptor(path, true)?;
        lock_shared(&file, path)?;
        if names_same_file(&file, path).map_err(|e| io_err(path, "stat", e))? {
            return Ok((file, desc));
        }
    }
    Err(OpenError::Io {
        path: path.to_path_buf(),
        op: "open",
        source: io::Error::other("the file kept being replaced while it was opened"),
    })
}

/// Creates (exclusively) and locks a temporary file in `dir` for the object
/// at `path`, named `.mmring-tmp.PID-SEQ`. A name left behind by a dead
/// process (this pid reused) is skipped, never an error; so is a temporary
/// file unlinked by a collector between its creation and its lock.
fn create_temp(dir: &Path, path: &Path, mode: u32) -> Result<(File, PathBuf), OpenError> {
    let mut last = None;
    for _ in 0..REOPEN_TRIES {
        // The temporary name does not embed the final one, so a final name
        // near NAME_MAX (255 bytes) still has room for it.
        let tmp = dir.join(format!(
            "{TMP_PREFIX}{}-{}",
            crate::pid::current(),
            // Relaxed: only uniqueness matters, not order.
            TMP_SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let file = match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
        {
            Ok(f) => f,
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                last = Some(e);
                continue;
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                return Err(OpenError::NotFound {
                    path: dir.to_path_buf(),
                });
            }
            Err(e) => return Err(io_err(path, "create temporary file", e)),
        };
        let cleanup = RemoveOnDrop(&tmp);
        lock_shared(&file, path)?;
        let ours = names_same_file(&file, &tmp).map_err(|e| io_err(path, "stat", e))?;
        // Either the caller removes the name from now on, or it was
        // removed under us before the lock and is not ours any more.
        std::mem::forget(cleanup);
        if ours {
            return Ok((file, tmp));
        }
    }
    Err(io_err(
        path,
        "create temporary file",
        last.unwrap_or_else(|| io::Error::other("temporary files kept vanishing")),
    ))
}

/// The prefix of the temporary names used while creating a file:
/// `.mmring-tmp.PID-SEQ`, PID being the creator's.
pub const TMP_PREFIX: &str = ".mmring-tmp.";

fn reserve(file: &File, len: u64) -> io::Result<()> {
    let len = libc::off_t::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    {
        // SAFETY: the fd is open for writing for the duration of the call;
        // posix_fallocate only extends the file and reserves its blocks.
        let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) };
        match rc {
            0 => return Ok(()),
            // File systems that cannot reserve space: fall back to a sparse
            // extension (the file system gives no stronger promise).
            libc::EOPNOTSUPP | libc::EINVAL => {}
            err => return Err(io::Error::from_raw_os_error(err)),
        }
    }
    file.set_len(len as u64)
}

/// Whether a layout is being chosen (the caller's type and capacity) or
/// checked (a file's descriptor).
#[derive(Clone, Copy)]
enum Side {
    Create,
    Open,
}

fn check_layout(
    path: &Path,
    kind: Kind,
    elem: TypeInfo,
    capacity: u64,
    slot_size: u64,
    side: Side,
) -> Result<BodyLayout, OpenError> {
    crate::raw::body_layout(kind, elem, capacity, slot_size).map_err(|e| match (e, side) {
        (LayoutError::Capacity(expected), _) => OpenError::InvalidCapacity {
            path: path.to_path_buf(),
            expected,
            found: capacity,
        },
        (LayoutError::Payload(what), Side::Create) => OpenError::UnsupportedPayload {
            path: path.to_path_buf(),
            what: format!("a {kind} holds {what}"),
        },
        (LayoutError::Payload(what), Side::Open) => OpenError::CorruptHeader {
            path: path.to_path_buf(),
            what: format!("payload type unusable for a {kind}: {what}"),
        },
    })
}

/// Opens `path` without following links, checks it is a regular file, reads
/// its header with `pread(2)` and validates everything that does not depend
/// on the kind the caller wants.
fn read_descriptor(path: &Path, writable: bool) -> Result<(File, Descriptor), OpenError> {
    let file = OpenOptions::new()
        .read(true)
        .write(writable)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| io_err(path, "open", e))?;
    let meta = file.metadata().map_err(|e| io_err(path, "fstat", e))?;
    if meta.is_dir() {
        return Err(OpenError::Directory {
            path: path.to_path_buf(),
        });
    }
    if !meta.is_file() {
        return Err(OpenError::NotRegularFile {
            path: path.to_path_buf(),
        });
    }
    let len = meta.len();
    if len == 0 {
        return Err(OpenError::Empty {
            path: path.to_path_buf(),
            expected: HEADER_SIZE,
        });
    }
    let mut head = [0u8; size_of::<Descriptor>()];
    let want = head.len().min(usize::try_from(len).unwrap_or(usize::MAX));
    file.read_exact_at(&mut head[..want], 0)
        .map_err(|e| io_err(path, "read header", e))?;
    if want < MAGIC.len() || head[..MAGIC.len()] != MAGIC {
        return Err(OpenError::NotMmring {
            path: path.to_path_buf(),
            expected: MAGIC,
            found: head[..want.min(MAGIC.len())].to_vec(),
        });
    }
    if len < HEADER_SIZE {
        return Err(OpenError::Truncated {
            path: path.to_path_buf(),
            expected: HEADER_SIZE,
            found: len,
        });
    }
    let desc: Descriptor = bytemuck::pod_read_unaligned(&head);
    if desc.version != VERSION {
        return Err(OpenError::UnsupportedVersion {
            path: path.to_path_buf(),
            expected: VERSION,
            found: desc.version,
        });
    }
    let corrupt = |what: String| OpenError::CorruptHeader {
        path: path.to_path_buf(),
        what,
    };
    let sum = desc.compute_checksum();
    if desc.checksum != sum {
        return Err(corrupt(format!(
            "checksum expected {sum:#018x}, found {:#018x}",
            desc.checksum
        )));
    }
    let Some(kind) = desc.kind() else {
        return Err(OpenError::WrongKind {
            path: path.to_path_buf(),
            expected: "a kind this build knows".into(),
            found: format!("unknown kind {}", desc.kind),
        });
    };
    if desc.body_offset != HEADER_SIZE {
        return Err(corrupt(format!(
            "body offset expected {HEADER_SIZE}, found {}",
            desc.body_offset
        )));
    }
    if desc.flags != 0
        || desc.reserved0 != 0
        || desc.reserved != [0; 6]
        || desc.reserved_tail != [0; 7]
    {
        return Err(corrupt("reserved fields expected zero".into()));
    }
    if let Err(e) = desc.payload_name() {
        return Err(corrupt(format!(
            "payload name expected 1 to {MAX_NAME_LEN} bytes of UTF-8 without NUL \
             (length field {}), but the name {e}",
            desc.name_len
        )));
    }
    let layout = check_layout(
        path,
        kind,
        desc.type_info(),
        desc.capacity,
        desc.slot_size,
        Side::Open,
    )?;
    if desc.slot_size != layout.slot_size || desc.body_size != layout.body_size {
        return Err(corrupt(format!(
            "slot/body size expected {}/{}, found {}/{}",
            layout.slot_size, layout.body_size, desc.slot_size, desc.body_size
        )));
    }
    let total = HEADER_SIZE + layout.body_size;
    if desc.total_size != total {
        return Err(corrupt(format!(
            "total size expected {total}, found {}",
            desc.total_size
        )));
    }
    if len < total {
        return Err(OpenError::Truncated {
            path: path.to_path_buf(),
            expected: total,
            found: len,
        });
    }
    if len > total {
        return Err(OpenError::Oversized {
            path: path.to_path_buf(),
            expected: total,
            found: len,
        });
    }
    Ok((file, desc))
}
