//! The one handle scaffold: how every kind opens, validates, maps and owns
//! its file.
//!
//! A kind describes itself with a [`Shape`] (a private zero-sized type):
//! what it asks of a file ([`Shape::expect`]), how a fresh file is
//! initialized, what it keeps from a validated file ([`Shape::Geometry`],
//! read once at open) and how its body is cut: a block of words at offset 0
//! ([`Shape::Head`]: a ring's control block, an event's words ...) followed
//! by [`Shape::elems`] units of [`Shape::Elem`] (a ring's slot words, an
//! array's elements). [`Mapped<S>`] does the rest, the same way for every
//! kind: `create`, `open`, `open_or_create` (with the check that an
//! existing file is the one asked for), and owning the [`Region`].
//!
//! The head and the elements are located and bounds-checked once, when the
//! file is mapped; [`Mapped::head`] and [`Mapped::elems`] then hand them
//! out for the lifetime of `&self` at the cost of a pointer copy. A handle
//! builds its raw view (the algorithm in [`crate::raw`]) from them on every
//! call, so the mapping and loom run the same code and no lifetime has to
//! be erased.

use std::marker::PhantomData;
use std::path::Path;
use std::ptr::NonNull;

use crate::error::OpenError;
use crate::layout::MappedAtomic;
use crate::region::{self, CreateOptions, Expect, Region};

/// What a kind tells the scaffold (implemented by a private zero-sized type
/// per kind).
pub(crate) trait Shape {
    /// What `create` and `open_or_create` ask for (capacity, initial
    /// value, options ...).
    type Spec;
    /// What a handle keeps from the validated descriptor, read once at
    /// open (capacity, lengths, flags ...): plain data, never re-read from
    /// the mapping.
    type Geometry: Copy;
    /// The words at the start of the body.
    type Head: MappedAtomic;
    /// The unit of what follows the head, [`Shape::elems`] of them from
    /// byte `size_of::<Head>()` of the body.
    type Elem: MappedAtomic;

    /// The kind and payload a file must have. `spec` is `None` for a plain
    /// `open` (a byte ring's maximum length is then the file's own).
    fn expect(spec: Option<&Self::Spec>) -> Expect;

    /// The capacity recorded in a new file's descriptor.
    fn capacity(spec: &Self::Spec) -> u64;

    /// The slot size asked for at creation, for kinds whose slots have a
    /// size of their own choosing (see [`crate::raw::body_layout`]); 0 for
    /// the others.
    fn slot_size(_spec: &Self::Spec) -> u64 {
        0
    }

    /// Initializes a fresh file, still private to its creator (a new file
    /// is all zeros).
    fn init(_region: &Region, _spec: &Self::Spec) {}

    /// What the handle keeps from a validated file: the checks beyond the
    /// header that the kind needs, done once.
    ///
    /// # Errors
    ///
    /// What is wrong with the file for this kind.
    fn geometry(region: &Region) -> Result<Self::Geometry, OpenError>;

    /// Number of [`Shape::Elem`] after the head. At most what the body
    /// holds, for a geometry [`Shape::geometry`] accepted (the validated
    /// descriptor's sizes are the kind's own body layout).
    fn elems(geometry: &Self::Geometry) -> usize;

    /// Whether the file `open_or_create` found is the one `spec` asked for.
    ///
    /// # Errors
    ///
    /// The mismatch, naming what was asked and what was found.
    fn matches(_found: &Self::Geometry, _spec: &Self::Spec, _path: &Path) -> Result<(), OpenError> {
        Ok(())
    }
}

/// A validated, mapped file of shape `S`: the region, what the kind keeps
/// from it, and where its head and elements are.
pub(crate) struct Mapped<S: Shape> {
    /// The head, at body offset 0 of `region`'s mapping.
    head: NonNull<S::Head>,
    /// `len` elements right after the head.
    elems: NonNull<S::Elem>,
    len: usize,
    geometry: S::Geometry,
    region: Region,
    _shape: PhantomData<fn() -> S>,
}

// SAFETY: a Mapped is a Region (Send + Sync: a mapping and plain data),
// plain data (the geometry) and pointers into that region's mapping, which
// it only hands out as shared references to `MappedAtomic` types (atomics,
// Sync); sending or sharing it is as safe as sharing those references.
unsafe impl<S: Shape> Send for Mapped<S>
where
    S::Geometry: Send,
    S::Head: Sync,
    S::Elem: Sync,
{
}
// SAFETY: as above.
unsafe impl<S: Shape> Sync for Mapped<S>
where
    S::Geometry: Sync,
    S::Head: Sync,
    S::Elem: Sync,
{
}

impl<S: Shape> Mapped<S> {
    /// Locates the head and elements of a validated region (bounds and
    /// alignment checked here, once).
    fn wrap(region: Region) -> Result<Self, OpenError> {
        let geometry = S::geometry(&region)?;
        let len = S::elems(&geometry);
        let head = NonNull::from(&region.body::<S::Head>(0, 1)[0]);
        let elems = region.body::<S::Elem>(size_of::<S::Head>(), len);
        let elems = NonNull::from(elems).cast::<S::Elem>();
        Ok(Self {
            head,
            elems,
            len,
            geometry,
            region,
            _shape: PhantomData,
        })
    }

    /// Creates a new file as `spec` asks (failing if `path` is taken).
    pub(crate) fn create(
        path: impl AsRef<Path>,
        spec: &S::Spec,
        opts: &CreateOptions,
    ) -> Result<Self, OpenError> {
        let path = region::resolve(path);
        let region = Region::create(
            &path,
            S::expect(Some(spec)),
            S::capacity(spec),
            S::slot_size(spec),
            opts,
            |r| S::init(r, spec),
        )?;
        Self::wrap(region)
    }

    /// Opens and validates an existing file.
    pub(crate) fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        let path = region::resolve(path);
        Self::wrap(Region::open(&path, S::expect(None))?)
    }

    /// Opens the file at `path`, or creates it as `spec` asks if there is
    /// none; an existing file must be the one `spec` describes.
    pub(crate) fn open_or_create(
        path: impl AsRef<Path>,
        spec: &S::Spec,
        opts: &CreateOptions,
    ) -> Result<Self, OpenError> {
        let path = region::resolve(path);
        let region = Region::open_or_create(
            &path,
            S::expect(Some(spec)),
            S::capacity(spec),
            S::slot_size(spec),
            opts,
            |r| S::init(r, spec),
        )?;
        let mapped = Self::wrap(region)?;
        S::matches(&mapped.geometry, spec, &path)?;
        Ok(mapped)
    }

    /// The mapped file.
    pub(crate) fn region(&self) -> &Region {
        &self.region
    }

    /// What the kind kept from the file at open.
    #[inline(always)]
    pub(crate) fn geometry(&self) -> S::Geometry {
        self.geometry
    }

    /// The words at the start of the body.
    #[inline(always)]
    pub(crate) fn head(&self) -> &S::Head {
        // SAFETY: `head` was made in `wrap` from a reference into `region`'s
        // mapping (bounds and alignment checked there), which stays mapped
        // at the same address for as long as `region`, owned by self,
        // lives (moving a Region moves only its handle).
        unsafe { self.head.as_ref() }
    }

    /// The elements after the head.
    #[inline(always)]
    pub(crate) fn elems(&self) -> &[S::Elem] {
        // SAFETY: `elems` and `len` were made in `wrap` from a slice of
        // `region`'s mapping (bounds and alignment checked there), which
        // stays mapped at the same address for as long as self lives.
        unsafe { NonNull::slice_from_raw_parts(self.elems, self.len).as_ref() }
    }
}
