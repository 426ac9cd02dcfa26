//! [`SeqCell<T>`]: one plain-old-data value shared by many processes, read
//! whole without ever blocking the writer — what a `Manager().Namespace` or a
//! dict read in one piece is used for, without the server process.
//!
//! The body is a [`SeqLock`]: a sequence word, the writer's pid, then the
//! value's bytes in atomic words.

use std::path::Path;

use crate::error::{OpenError, SeqLockError};
use crate::handle::{Mapped, Shape};
use crate::layout::Kind;
use crate::pod::{Payload, TypeInfo};
use crate::raw::seqlock::{Patience, SeqLock, words_for};
use crate::region::{CreateOptions, Expect, Region};
use crate::sync::AtomicU64;

/// A cell file: the body is the seqlock's words.
struct CellShape<T>(std::marker::PhantomData<T>);

impl<T: Payload> Shape for CellShape<T> {
    /// The initial value.
    type Spec = T;
    type Geometry = ();
    type Head = [AtomicU64; 0];
    type Elem = AtomicU64;

    fn expect(_: Option<&T>) -> Expect {
        Expect {
            kind: Kind::SeqCell,
            elem: TypeInfo::of::<T>(),
            any_size: false,
        }
    }

    fn capacity(_: &T) -> u64 {
        1
    }

    fn init(region: &Region, initial: &T) {
        // The file is still private to its creator: no lock needed.
        SeqLock::new(region.body::<AtomicU64>(0, words_for::<T>())).init(initial);
    }

    fn geometry(_: &Region) -> Result<(), OpenError> {
        Ok(())
    }

    fn elems(_: &()) -> usize {
        words_for::<T>()
    }
}

/// A shared value of any [`Payload`] type `T` (plain old data with a stable
/// name: no pointers, no padding).
///
/// * [`load`](SeqCell::load) never returns a torn value (some fields from one
///   store and some from another) and never blocks a writer. The cell keeps
///   two copies of the value: a store fills the spare one, so a load during
///   a store reads the last published value instead of waiting.
/// * [`store`](SeqCell::store) and [`update`](SeqCell::update) serialize
///   among writers with a compare-and-swap; `update` is an atomic
///   read-modify-write of the whole value.
/// * A load retries only if two stores overlap it (the second one fills the
///   copy it was reading), so even a writer storing back to back without
///   pause rarely makes a reader retry.
/// * A writer killed mid-store damages only the spare copy: loads go on
///   returning the last stored value, and the next writer takes the lock
///   over (the dead writer's store is simply lost).
///
/// # Examples
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("pos");
/// use mmring::{Pod, SeqCell, Zeroable};
///
/// #[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
/// #[repr(C)]
/// struct Position { x: f64, y: f64, tick: u64 }
/// mmring::payload!(Position);
///
/// let cell = SeqCell::create(&path, Position { x: 0.0, y: 0.0, tick: 0 })?;
/// // ... another process:
/// let reader = SeqCell::<Position>::open(&path)?;
/// cell.update(|mut p| { p.x += 1.0; p.tick += 1; p })?;
/// assert_eq!(reader.load()?, Position { x: 1.0, y: 0.0, tick: 1 });
/// assert_eq!(reader.version(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SeqCell<T: Payload> {
    mapped: Mapped<CellShape<T>>,
    patience: Patience,
    _type: std::marker::PhantomData<fn() -> T>,
}

impl<T: Payload> std::fmt::Debug for SeqCell<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeqCell")
            .field("path", &self.mapped.region().path())
            .field("version", &self.version())
            .finish()
    }
}

impl<T: Payload> SeqCell<T> {
    fn wrap(mapped: Mapped<CellShape<T>>) -> Self {
        Self {
            mapped,
            patience: Patience::DEFAULT,
            _type: std::marker::PhantomData,
        }
    }

    /// Creates a cell file holding `initial` (at version 0).
    ///
    /// # Errors
    ///
    /// [`OpenError::AlreadyExists`] if something is at the path;
    /// [`OpenError::UnsupportedPayload`] for a zero-sized type or one larger
    /// than [`MAX_CELL_SIZE`](crate::layout::MAX_CELL_SIZE); the other
    /// [`OpenError`]s for a missing directory, permissions, space.
    pub fn create(path: impl AsRef<Path>, initial: T) -> Result<Self, OpenError> {
        Self::create_with(path, initial, &CreateOptions::default())
    }

    /// [`SeqCell::create`] with a mode and label.
    ///
    /// # Errors
    ///
    /// As [`SeqCell::create`].
    pub fn create_with(
        path: impl AsRef<Path>,
        initial: T,
        opts: &CreateOptions,
    ) -> Result<Self, OpenError> {
        Mapped::create(path, &initial, opts).map(Self::wrap)
    }

    /// Opens an existing cell file holding a `T`.
    ///
    /// # Errors
    ///
    /// An [`OpenError`] naming what is wrong; [`OpenError::WrongPayload`] if
    /// the file holds another type.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        Mapped::open(path).map(Self::wrap)
    }

    /// Opens the cell at `path`, creating it with `initial` if there is
    /// none; racing processes all end up with the same cell (one creator
    /// wins the name, the others open its file).
    ///
    /// Opening an existing cell never resets it: `initial` applies only
    /// when the file is created, and the value and version are kept.
    /// What is checked is the value's type ([`OpenError::WrongPayload`],
    /// naming both); a mismatch leaves the file alone.
    ///
    /// # Errors
    ///
    /// As [`SeqCell::open`] and [`SeqCell::create`].
    pub fn open_or_create(path: impl AsRef<Path>, initial: T) -> Result<Self, OpenError> {
        Mapped::open_or_create(path, &initial, &CreateOptions::default()).map(Self::wrap)
    }

    /// Sets how long blocking calls retry a cell whose writer is inside
    /// before they give up (default: [`Patience::DEFAULT`], 5 s; a writer
    /// that died is reported as soon as it is noticed).
    pub fn set_patience(&mut self, patience: Patience) {
        self.patience = patience;
    }

    #[inline]
    fn lock(&self) -> SeqLock<'_> {
        // Exactly the words a `T` needs, a length the compiler knows, so
        // the seqlock's slicing folds away on the read path. The mapping
        // holds that many: `CellShape::elems` is what open mapped and
        // checked, so the index cannot fail.
        SeqLock::new(&self.mapped.elems()[..words_for::<T>()])
    }

    /// The current value, whole.
    ///
    /// # Errors
    ///
    /// [`SeqLockError`] if stores kept overlapping the load for the whole
    /// patience (two or more during each attempt).
    #[inline]
    pub fn load(&self) -> Result<T, SeqLockError> {
        self.load_versioned().map(|(v, _)| v)
    }

    /// The current value and its version (the number of stores since the
    /// file was created).
    ///
    /// # Errors
    ///
    /// As [`SeqCell::load`].
    #[inline]
    pub fn load_versioned(&self) -> Result<(T, u64), SeqLockError> {
        self.lock().read(self.patience)
    }

    /// One attempt to read, never waiting: `None` if a store was in progress.
    #[inline]
    pub fn try_load(&self) -> Option<(T, u64)> {
        self.lock().try_read().ok()
    }

    /// Replaces the value, returning the new version.
    ///
    /// # Errors
    ///
    /// [`SeqLockError`] if another live writer held the cell past the
    /// patience (one that died holding it is taken over).
    pub fn store(&self, value: T) -> Result<u64, SeqLockError> {
        self.lock().write(&value, self.patience)
    }

    /// Atomically replaces the value with `f(old)` and returns the new value.
    /// `f` runs once, with the cell locked against other writers (readers
    /// keep reading the old value): keep it short.
    ///
    /// # Errors
    ///
    /// As [`SeqCell::store`].
    pub fn update(&self, f: impl FnOnce(T) -> T) -> Result<T, SeqLockError> {
        self.lock().update(self.patience, f).map(|(_, new)| new)
    }

    /// The number of completed stores (a store in progress is not counted).
    /// Out of date as soon as it returns.
    pub fn version(&self) -> u64 {
        self.lock().sequence() / 2
    }

    /// The mapped file (path, descriptor, status, flush).
    pub fn region(&self) -> &Region {
        self.mapped.region()
    }
}
