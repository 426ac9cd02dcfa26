//! The shared hash map's algorithm over memory it is handed: a
//! fixed-capacity hash table that the [`Map<K, V>`](crate::map::Map)
//! handle wraps over a file (the job of `Manager().dict()` without the
//! server process, the proxy round trip, or the lock around
//! `d['count'] -= 1`).
//!
//! Open addressing with linear probing over `capacity` entries. Each entry
//! is a [seqlock](crate::raw::seqlock) over `[state, key length, key,
//! value]`: readers copy an entry whole and never block writers; writers
//! of one entry serialize on its sequence (a compare-and-swap), writers of
//! different entries never meet. There is no table-wide lock.
//!
//! An entry, once bound to a key, stays bound to that key: removing the key
//! marks the entry removed, and inserting the same key again revives it in
//! place. That is what keeps two processes inserting the same key at once
//! from creating it twice: a new key can only take the *first empty* entry
//! of its probe sequence, under that entry's lock, after re-checking it is
//! still empty. The price: the table holds at most `capacity` distinct keys
//! over its lifetime; a full table is [`MapError::Full`], never a hang or an
//! overwrite.
//!
//! Keys and lengths read from the mapping are untrusted: a key length is
//! clamped to the maximum, probing visits at most `capacity` entries, and a
//! garbage state reads as "some other key".

pub use crate::error::MapError;
use crate::layout::{BodyLayout, LayoutError, whole_lines};
use crate::pod::{TypeInfo, fnv1a};

use crate::raw::seqlock::{Patience, SeqLock};
use crate::sync::{AtomicU32, AtomicU64, Ordering};

/// Entry state: never used.
const EMPTY: u64 = 0;
/// Entry state: holds a live key and value.
const LIVE: u64 = 1;
/// Entry state: bound to a key that was removed.
const REMOVED: u64 = 2;

/// Words of an entry's value (each of its seqlock's two copies) before the
/// key: state, key length.
pub const ENTRY_HEADER_WORDS: usize = 2;

/// Longest key any map accepts (bytes).
pub const MAX_KEY_LEN: usize = 256;
/// Largest value any map holds (bytes).
pub const MAX_VALUE_SIZE: usize = 4096;

/// Bytes of a map's control words ([`MapControl`]) before its entries.
pub const MAP_CONTROL_SIZE: u64 = 128;

/// Most entries a map may have (2^24).
pub const MAX_MAP_CAPACITY: u64 = 1 << 24;

/// The body layout of a map of `capacity` entries of `slot_size` bytes for
/// values of `elem`: the entry size carries the longest key the map takes,
/// so it is the size asked for at creation (or found in a descriptor),
/// checked to be an entry's for this value and some key length.
///
/// # Errors
///
/// What a valid payload, entry size or capacity would be.
pub fn body_layout(
    elem: TypeInfo,
    capacity: u64,
    slot_size: u64,
) -> Result<BodyLayout, LayoutError> {
    let elem_size = u64::from(elem.size);
    let max_value = MAX_VALUE_SIZE as u64;
    if elem_size == 0 || elem_size > max_value || !elem.align.is_power_of_two() || elem.align > 8 {
        return Err(LayoutError::Payload(format!(
            "a value of 1 to {max_value} bytes aligned to at most 8, found size {}, align {}",
            elem.size, elem.align
        )));
    }
    // The entry size carries the key length: an entry is a seqlock
    // (2 words) over two copies of [state, key length, key words,
    // value words].
    let fixed = ENTRY_HEADER_WORDS as u64 + elem_size.div_ceil(8);
    let entry = |key_words: u64| {
        crate::raw::seqlock::words_for_bytes(((fixed + key_words) * 8) as usize) as u64 * 8
    };
    let max_key_words = MAX_KEY_LEN as u64 / 8;
    let key_words = (slot_size / 8).saturating_sub(crate::raw::seqlock::HEADER_WORDS as u64) / 2;
    let key_words = key_words.saturating_sub(fixed);
    if key_words == 0 || key_words > max_key_words || entry(key_words) != slot_size {
        return Err(LayoutError::Payload(format!(
            "entries of {}..={} bytes (in steps of 16) for this value, found {slot_size}",
            entry(1),
            entry(max_key_words)
        )));
    }
    if !capacity.is_power_of_two() || capacity > MAX_MAP_CAPACITY {
        return Err(LayoutError::Capacity(format!(
            "a power of two from 1 to {MAX_MAP_CAPACITY} entries"
        )));
    }
    Ok(BodyLayout {
        slot_size,
        body_size: whole_lines(MAP_CONTROL_SIZE + capacity * slot_size),
    })
}

/// Bytes of the largest entry's data (state, length, key, value).
const MAX_ENTRY_DATA: usize = (2 + MAX_KEY_LEN / 8 + MAX_VALUE_SIZE / 8) * 8;

/// Entries up to this many bytes of data are handled in a buffer on the
/// stack; larger ones (long keys, big values) on the heap.
const INLINE_ENTRY_DATA: usize = 256;

/// A buffer for one entry's data, sized to it: zeroing 4 KiB on every
/// operation would cost more than the operation.
#[allow(clippy::large_enum_variant)] // on the stack on purpose: no allocation per operation
enum EntryBuf {
    Inline([u8; INLINE_ENTRY_DATA], usize),
    Heap(Vec<u8>),
}

impl EntryBuf {
    fn new(len: usize) -> Self {
        debug_assert!(len <= MAX_ENTRY_DATA);
        if len <= INLINE_ENTRY_DATA {
            Self::Inline([0; INLINE_ENTRY_DATA], len)
        } else {
            Self::Heap(vec![0; len])
        }
    }
}

impl std::ops::Deref for EntryBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Self::Inline(b, len) => &b[..*len],
            Self::Heap(v) => v,
        }
    }
}

impl std::ops::DerefMut for EntryBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        match self {
            Self::Inline(b, len) => &mut b[..*len],
            Self::Heap(v) => v,
        }
    }
}

/// Control words at the start of a map's body.
#[repr(C)]
pub struct MapControl {
    len: AtomicU64,
    key_kind: AtomicU32,
    max_key_len: AtomicU32,
    _pad: [u64; 14],
}

#[cfg(not(loom))]
mod layout_checks {
    use std::mem::offset_of;

    use static_assertions::const_assert_eq;

    use super::MapControl;

    const_assert_eq!(size_of::<MapControl>(), super::MAP_CONTROL_SIZE as usize);
    const_assert_eq!(offset_of!(MapControl, len), 0);
    const_assert_eq!(offset_of!(MapControl, key_kind), 8);
    const_assert_eq!(offset_of!(MapControl, max_key_len), 12);
}

#[cfg(not(loom))]
// SAFETY: repr(C), only the switch module's atomics and u64 padding;
// alignment 8; offsets pinned above.
unsafe impl crate::layout::MappedAtomic for MapControl {}

impl MapControl {
    /// Fresh control words for keys of `key_kind` up to `max_key_len` bytes.
    pub fn new(key_kind: u32, max_key_len: u32) -> Self {
        Self {
            len: AtomicU64::new(0),
            key_kind: AtomicU32::new(key_kind),
            max_key_len: AtomicU32::new(max_key_len),
            _pad: [0; 14],
        }
    }

    /// The key kind and maximum key length recorded at creation.
    pub fn key_config(&self) -> (u32, u32) {
        // Relaxed: written before the file was published, never changed.
        (
            self.key_kind.load(Ordering::Relaxed),
            self.max_key_len.load(Ordering::Relaxed),
        )
    }

    #[cfg_attr(
        loom,
        allow(dead_code, reason = "used by the handle, which loom does not build")
    )]
    pub(crate) fn init(&self, key_kind: u32, max_key_len: u32) {
        // Relaxed: the file is still private to its creator.
        self.key_kind.store(key_kind, Ordering::Relaxed);
        self.max_key_len.store(max_key_len, Ordering::Relaxed);
    }

    /// Live keys (a snapshot).
    pub fn live(&self) -> u64 {
        // Relaxed: a snapshot.
        self.len.load(Ordering::Relaxed)
    }
}

/// What [`RawMap::insert`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inserted {
    /// The key was new (or removed): now it holds the value.
    New,
    /// The key was present; its old value was copied out and replaced.
    Replaced,
    /// The key was present and `only_if_absent` was asked: nothing changed,
    /// its value was copied out.
    Kept,
}

/// An entry's contents, parsed from its bytes.
struct Entry<'b> {
    state: u64,
    key: &'b [u8],
    value: &'b [u8],
}

/// A map over memory the caller hands in: control words and `capacity`
/// entries of `stride` words. The typed [`Map`](crate::map::Map) wraps one
/// over a file.
#[derive(Clone, Copy)]
pub struct RawMap<'a> {
    ctl: &'a MapControl,
    words: &'a [AtomicU64],
    mask: usize,
    stride: usize,
    max_key: usize,
    value_len: usize,
    patience: Patience,
}

impl std::fmt::Debug for RawMap<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawMap")
            .field("capacity", &self.capacity())
            .field("max_key", &self.max_key)
            .field("value_len", &self.value_len)
            .finish()
    }
}

/// Words one entry takes for keys up to `max_key` bytes and values of
/// `value_len` bytes.
pub const fn entry_words(max_key: usize, value_len: usize) -> usize {
    crate::raw::seqlock::words_for_bytes(
        (ENTRY_HEADER_WORDS + max_key.div_ceil(8) + value_len.div_ceil(8)) * 8,
    )
}

/// The longest key entries of `stride` words (as a validated descriptor
/// gives them) have room for, with values of `value_len` bytes.
pub const fn key_room(stride: usize, value_len: usize) -> usize {
    stride.saturating_sub(entry_words(0, value_len)) / 2 * 8
}

/// The shape of a map's memory, fixed when it was made: what a view needs
/// besides the memory itself. A handle reads it once, when it opens the
/// file, so that building a view per call is only pointer copies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    mask: usize,
    stride: usize,
    max_key: usize,
    value_len: usize,
}

impl Geometry {
    /// `capacity` entries for keys up to `max_key` bytes and values of
    /// `value_len` bytes (each [`entry_words`]`(max_key, value_len)` words);
    /// `None` unless `capacity` is a power of two and the sizes are within
    /// [`MAX_KEY_LEN`] and [`MAX_VALUE_SIZE`].
    pub fn new(capacity: usize, max_key: usize, value_len: usize) -> Option<Self> {
        (capacity.is_power_of_two() && max_key <= MAX_KEY_LEN && value_len <= MAX_VALUE_SIZE).then(
            || Self {
                mask: capacity - 1,
                stride: entry_words(max_key, value_len),
                max_key,
                value_len,
            },
        )
    }

    /// Number of entries.
    pub fn capacity(&self) -> usize {
        self.mask + 1
    }

    /// The longest key.
    pub fn max_key_len(&self) -> usize {
        self.max_key
    }

    /// Words per entry.
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// Words of all the entries.
    pub fn words(&self) -> usize {
        self.capacity() * self.stride
    }
}

impl<'a> RawMap<'a> {
    /// A map over `words` (`capacity` entries of
    /// [`entry_words`]`(max_key, value_len)` words each; zeroed words are an
    /// empty map). Blocking seqlock accesses use `patience`.
    ///
    /// # Panics
    ///
    /// If `capacity` is not a power of two, the sizes exceed
    /// [`MAX_KEY_LEN`] / [`MAX_VALUE_SIZE`], or `words` has the wrong length
    /// (the caller's layout bug, never file content: the mapped
    /// [`Map`](crate::map::Map)
    /// validates the file first).
    pub fn new(
        ctl: &'a MapControl,
        words: &'a [AtomicU64],
        capacity: usize,
        max_key: usize,
        value_len: usize,
        patience: Patience,
    ) -> Self {
        assert!(
            capacity.is_power_of_two(),
            "map capacity must be a power of two"
        );
        let Some(geometry) = Geometry::new(capacity, max_key, value_len) else {
            panic!("map entry too large");
        };
        assert_eq!(
            words.len(),
            geometry.words(),
            "map words do not match its layout"
        );
        Self::from_parts(ctl, words, geometry, patience)
    }

    /// A map of `geometry` over `ctl` and `words` (the `geometry.words()`
    /// words of its entries), checking nothing and reading nothing: what a
    /// handle builds on every call from the geometry it read at open. A
    /// `words` shorter than the geometry says makes the calls panic, never
    /// reach outside it.
    #[inline(always)]
    pub fn from_parts(
        ctl: &'a MapControl,
        words: &'a [AtomicU64],
        geometry: Geometry,
        patience: Patience,
    ) -> Self {
        Self {
            ctl,
            words,
            mask: geometry.mask,
            stride: geometry.stride,
            max_key: geometry.max_key,
            value_len: geometry.value_len,
            patience,
        }
    }

    /// Number of entries.
    pub fn capacity(&self) -> usize {
        self.mask + 1
    }

    /// Live keys (a snapshot).
    pub fn len(&self) -> usize {
        usize::try_from(self.ctl.live()).unwrap_or(usize::MAX)
    }

    /// Whether no key is live (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The longest key accepted.
    pub fn max_key_len(&self) -> usize {
        self.max_key
    }

    fn lock(&self, idx: usize) -> SeqLock<'a> {
        SeqLock::new(&self.words[idx * self.stride..(idx + 1) * self.stride])
    }

    fn data_len(&self) -> usize {
        (self.stride - crate::raw::seqlock::HEADER_WORDS) / 2 * 8
    }

    fn key_off(&self) -> usize {
        16
    }

    fn value_off(&self) -> usize {
        16 + self.max_key.div_ceil(8) * 8
    }

    fn parse<'b>(&self, buf: &'b [u8]) -> Entry<'b> {
        let word =
            |i: usize| u64::from_ne_bytes(buf[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
        let key_len = usize::try_from(word(1))
            .unwrap_or(usize::MAX)
            .min(self.max_key);
        Entry {
            state: word(0),
            key: &buf[self.key_off()..self.key_off() + key_len],
            value: &buf[self.value_off()..self.value_off() + self.value_len],
        }
    }

    /// Writes the state, key length and key (zero-padded) in front of the
    /// value already in `buf`.
    fn encode_head(&self, buf: &mut [u8], state: u64, key: &[u8]) {
        buf[..8].copy_from_slice(&state.to_ne_bytes());
        buf[8..16].copy_from_slice(&(key.len() as u64).to_ne_bytes());
        let k = self.key_off();
        buf[k..k + key.len()].copy_from_slice(key);
        buf[k + key.len()..self.value_off()].fill(0);
    }

    fn check_key(&self, key: &[u8]) -> Result<(), MapError> {
        if key.len() > self.max_key {
            return Err(MapError::KeyTooLong {
                len: key.len(),
                max: self.max_key,
            });
        }
        Ok(())
    }

    fn start(&self, key: &[u8]) -> usize {
        fnv1a(key) as usize & self.mask
    }

    /// Walks `key`'s probe sequence: `Ok(Some(idx))` for the entry bound to
    /// it, `Ok(None)` with `*vacant` set to the first empty entry if the key
    /// is in no entry, or `Full`.
    fn find(
        &self,
        key: &[u8],
        buf: &mut [u8],
        vacant: &mut Option<usize>,
    ) -> Result<Option<usize>, MapError> {
        let start = self.start(key);
        for i in 0..self.capacity() {
            let idx = (start + i) & self.mask;
            self.lock(idx).read_bytes(buf, self.patience)?;
            let e = self.parse(buf);
            if e.state == EMPTY {
                *vacant = Some(idx);
                return Ok(None);
            }
            if e.key == key {
                return Ok(Some(idx));
            }
        }
        Ok(None)
    }

    /// Copies `key`'s value into `out` (of `value_len` bytes); whether the
    /// key is live. Never blocks a writer; never returns a torn value.
    ///
    /// # Errors
    ///
    /// [`MapError::KeyTooLong`], or [`MapError::Busy`] if an entry on the
    /// way stayed locked past the patience.
    pub fn get(&self, key: &[u8], out: &mut [u8]) -> Result<bool, MapError> {
        self.check_key(key)?;
        let mut buf = EntryBuf::new(self.data_len());
        let mut vacant = None;
        let Some(idx) = self.find(key, &mut buf, &mut vacant)? else {
            return Ok(false);
        };
        let e = self.parse(&buf);
        debug_assert!(idx <= self.mask);
        if e.state != LIVE {
            return Ok(false);
        }
        out[..self.value_len].copy_from_slice(e.value);
        Ok(true)
    }

    /// Runs `f` on `key`'s entry under the entry's write lock: `f` gets the
    /// current state and value bytes (zero if not live) and returns the new
    /// state and whether to write the value it left in the buffer. Inserts
    /// the key into its first empty entry if it is in none.
    fn with_entry<R>(
        &self,
        key: &[u8],
        mut f: impl FnMut(u64, &mut [u8]) -> (u64, R),
    ) -> Result<R, MapError> {
        self.check_key(key)?;
        let mut buf = EntryBuf::new(self.data_len());
        loop {
            let mut vacant = None;
            let found = self.find(key, &mut buf, &mut vacant)?;
            let Some(idx) = found.or(vacant) else {
                return Err(MapError::Full {
                    capacity: self.capacity(),
                });
            };
            let guard = self.lock(idx).lock(self.patience)?;
            guard.read_bytes(&mut buf);
            let e = self.parse(&buf);
            let (state, key_matches) = (e.state, e.key == key);
            if state != EMPTY && !key_matches {
                // The vacant entry was taken by another key meanwhile: walk
                // the probe sequence again (it only ever grows).
                drop(guard);
                continue;
            }
            // `f` works on the value bytes in place; the entry is then
            // encoded around them in the same buffer.
            let v = self.value_off()..self.value_off() + self.value_len;
            if state != LIVE {
                buf[v.clone()].fill(0);
            }
            let (new_state, out) = f(state, &mut buf[v]);
            if new_state != state || new_state == LIVE {
                self.encode_head(&mut buf, new_state, key);
                guard.write_bytes(&buf);
                // Relaxed: a statistic; entries carry their own ordering.
                match (state == LIVE, new_state == LIVE) {
                    (false, true) => {
                        self.ctl.len.fetch_add(1, Ordering::Relaxed);
                    }
                    (true, false) => {
                        self.ctl.len.fetch_sub(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
            }
            drop(guard);
            return Ok(out);
        }
    }

    /// Inserts or replaces `key`'s value; the old value (if any) is copied
    /// to `old`.
    ///
    /// # Errors
    ///
    /// [`MapError::Full`], [`MapError::KeyTooLong`], [`MapError::Busy`].
    pub fn insert(
        &self,
        key: &[u8],
        value: &[u8],
        old: &mut [u8],
        only_if_absent: bool,
    ) -> Result<Inserted, MapError> {
        self.with_entry(key, |state, v| {
            if state == LIVE {
                old[..v.len()].copy_from_slice(v);
                if only_if_absent {
                    return (LIVE, Inserted::Kept);
                }
                v.copy_from_slice(value);
                (LIVE, Inserted::Replaced)
            } else {
                v.copy_from_slice(value);
                (LIVE, Inserted::New)
            }
        })
    }

    /// Atomically replaces `key`'s value with `f(value)`; if the key is not
    /// live, `absent` decides: `Some(init)` inserts `f(init)`, `None` leaves
    /// the map unchanged. Returns whether `f` ran.
    ///
    /// # Errors
    ///
    /// As [`RawMap::insert`] (`Full` only when `absent` asks to insert).
    pub fn update(
        &self,
        key: &[u8],
        absent: Option<&[u8]>,
        mut f: impl FnMut(&mut [u8]),
    ) -> Result<bool, MapError> {
        let res = self.with_entry(key, |state, v| {
            if state == LIVE {
                f(v);
                return (LIVE, true);
            }
            match absent {
                Some(init) => {
                    v.copy_from_slice(init);
                    f(v);
                    (LIVE, true)
                }
                None => (state, false),
            }
        });
        match (res, absent) {
            // No entry for the key and none free: absent, and nothing to
            // insert, so not an error.
            (Err(MapError::Full { .. }), None) => Ok(false),
            (res, _) => res,
        }
    }

    /// Removes `key`, copying its value to `old`; whether it was live.
    ///
    /// # Errors
    ///
    /// [`MapError::KeyTooLong`], [`MapError::Busy`] (never `Full`).
    pub fn remove(&self, key: &[u8], old: &mut [u8]) -> Result<bool, MapError> {
        match self.with_entry(key, |state, v| {
            if state == LIVE {
                old[..v.len()].copy_from_slice(v);
                (REMOVED, true)
            } else {
                (state, false)
            }
        }) {
            Err(MapError::Full { .. }) => Ok(false),
            other => other,
        }
    }

    /// Calls `f(key, value)` for every live entry, each read whole (the set
    /// as a whole is not a snapshot while others write).
    ///
    /// # Errors
    ///
    /// [`MapError::Busy`] if an entry stayed locked past the patience.
    pub fn for_each(&self, mut f: impl FnMut(&[u8], &[u8])) -> Result<(), MapError> {
        let mut buf = EntryBuf::new(self.data_len());
        for idx in 0..self.capacity() {
            self.lock(idx).read_bytes(&mut buf, self.patience)?;
            let e = self.parse(&buf);
            if e.state == LIVE {
                f(e.key, e.value);
            }
        }
        Ok(())
    }
}
