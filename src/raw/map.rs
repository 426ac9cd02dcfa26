//! The shared hash map's algorithm over memory it is handed: a
//! fixed-capacity hash table that the [`Map<K, V>`](crate::map::Map) and
//! [`ByteMap<K>`](crate::map::ByteMap) handles wrap over a file (the job of
//! `Manager().dict()` without the server process, the proxy round trip, or
//! the lock around `d['count'] -= 1`).
//!
//! Open addressing with linear probing over `capacity` entries. Each entry
//! is a [seqlock](crate::raw::seqlock) over `[state, key length, key,
//! value]`: readers copy an entry whole and never block writers; writers
//! of one entry serialize on its sequence (a compare-and-swap), writers of
//! different entries never meet. There is no table-wide lock.
//!
//! A value is either fixed-size ([`Value::Fixed`], a `Pod`) or a byte
//! string of 0 to a maximum length ([`Value::Bytes`]: a length word, then
//! the bytes); either way it is read in the same consistent copy as the
//! key and state, so it is never torn and never another key's.
//!
//! # Entry states and reuse
//!
//! An entry is *empty* (never used), *live* (holds a key and its value) or
//! *removed* (a tombstone: free for any key). Entries never go back to
//! empty.
//!
//! # Reach: how far a lookup walks
//!
//! Each entry also has a *reach* word, outside its seqlock: as a home, a
//! bound on the distance (0 = at home) of its live keys. It changes only
//! under the home entry's write lock, when a key of that home is placed:
//! it grows to the new key's distance if that is farther, and comes back
//! down to the farthest key of the home still live (found walking back
//! from the old reach, one read when it is tight). A lookup reads its
//! home's reach, then walks at most `reach + 1` entries from the home
//! (stopping early at an empty entry: no key was ever placed past one),
//! looking for the key live. So the walk is bounded by how far the home's
//! keys are, not by the table: a table that has seen many keys come and go
//! is full of tombstones, but a new key takes the first free entry of its
//! sequence, so under churn keys stay near home and reaches small.
//!
//! Lookups, updates and removes of a present key touch only the key's
//! entry (and read its home's reach). A **new** key is placed under its
//! *home entry's* write lock: the inserter locks the home entry, reads its
//! reach, walks the sequence again within the reach, and either finds the
//! key live (someone inserted it meanwhile: it updates that entry) or
//! takes the first free entry (removed or empty, at any distance) under
//! that entry's lock, re-checking it is still free. If that entry lies
//! beyond the reach, the inserter raises the reach to its distance
//! *before* publishing the entry (both under the home lock, in program
//! order before the entry's Release): whoever sees the key live in that
//! entry reads a reach that covers it, and a lookup that read the older
//! reach is concurrent with the insert (it is ordered before it). Bringing
//! a reach down is safe for the same reason the home lock makes placement
//! safe: only its holder places keys of that home, and every earlier
//! holder published its placement before unlocking, so a key of that home
//! the walk back does not find live is gone; the store (release) makes
//! what the walk saw visible to the lookups that read it. Keeping
//! the reach in the seqlock-protected data instead would publish it only
//! when the home lock is released, necessarily after the new entry (or a
//! second inserter of the key could miss it), leaving a moment where a walk
//! of the whole table (`for_each`) sees the key but a lookup does not.
//!
//! Every insert of a key holds the same home lock while it decides, so two
//! processes inserting one key at once never create it twice, even with
//! tombstones earlier in the chain: the second sees the first's live entry
//! within the reach (the first raised the reach and published the entry
//! before releasing the home lock the second then acquired). Removing a
//! key frees its entry at once; capacity bounds the keys present at once.
//!
//! The inserter holds two locks (home, then the chosen entry) only with a
//! *try*-lock of the second: if it is busy, the inserter lets the home go,
//! waits the other writer out, and starts again, so two inserters whose
//! homes are each other's targets cannot deadlock. A process killed while
//! holding either lock leaves a seqlock with a dead writer, taken over by
//! the next writer as for any entry (the published copy is intact); one
//! killed after raising a reach but before publishing the entry leaves a
//! reach one placement too long, which costs lookups a step, nothing more.
//!
//! # What an update costs
//!
//! An update of a present key reads its home entry (and, on the word and
//! typed paths only if the key is not at home, the home's reach and the
//! entries after it; the byte path reads the reach first), locks the
//! entry holding the key (a compare-and-swap of its sequence), writes the
//! spare copy and publishes it: one atomic read-modify-write, no shared
//! counter (the `len` statistic moves only when a key comes or goes), no
//! line of any other entry written. Before the lookup it asks for the
//! home entry's cache lines *for writing* (`prefetchw`,
//! [`prefetch_write`](crate::sync::prefetch_write)): when another process
//! wrote them last, they come over at once and owned, instead of a read
//! miss followed by a second transfer for the compare-and-swap and more
//! for the stores. (An entry of `u64` keys and values is 88 bytes, so it
//! spans two or three lines; a layout of one line per entry would need a
//! new file format.)
//!
//! Entries of up to 8 words of data (`SMALL_WORDS`) (a `u64` key and value
//! take 4) go the *word path*: the lookup, the check under the lock and
//! the write handle the entry as words in an array on the stack, where
//! larger entries go the *byte path* (byte buffers sized to the entry,
//! slice compares and copies). Both read and write the same words with the
//! same orderings and accept the same entries; the word path also skips
//! the re-read under the lock when the lock was taken at the version the
//! lookup read (nothing was published in between). The loom models run
//! both.
//!
//! `Map<u64, V>::update` goes one step further ([`RawMap::update_fixed`]):
//! with the key's and value's word counts known at compile time, every
//! slice, loop and offset of the word path is a constant, and the value
//! goes to the caller's closure and back in registers. Same words, same
//! orderings, same entries accepted; loom models run it too.
//!
//! `Full` is exact: it is reported only when two passes over the whole
//! table read every entry live at the same versions (so at one instant all
//! were), retried a bounded number of times while entries keep changing.
//!
//! Keys, lengths and reaches read from the mapping are untrusted: a key or
//! value length is clamped to its maximum, a reach to `capacity - 1`,
//! probing visits at most `capacity` entries, and a garbage state reads as
//! "some other key".

pub use crate::error::MapError;
use crate::layout::{BodyLayout, LayoutError, whole_lines};
use crate::pod::{TypeInfo, fnv1a};

use crate::raw::seqlock::{HEADER_WORDS, Patience, SeqLock, WriteGuard};
use crate::sync::{AtomicU32, AtomicU64, Ordering};

/// Entry state: never used (a lookup stops here).
pub const EMPTY: u64 = 0;
/// Entry state: holds a live key and value.
pub const LIVE: u64 = 1;
/// Entry state: a tombstone, free for any key (a lookup walks past it).
pub const REMOVED: u64 = 2;

/// Words of an entry's value (each of its seqlock's two copies) before the
/// key: state, key length.
pub const ENTRY_HEADER_WORDS: usize = 2;

/// Words of an entry before its seqlock: the entry's *reach* (see the
/// module docs), outside the seqlock so that raising it is one store that
/// can come before the placement it covers is published.
pub const ENTRY_REACH_WORDS: usize = 1;

/// Longest key any map accepts (bytes).
pub const MAX_KEY_LEN: usize = 256;
/// Largest value any map holds (bytes): a fixed value's size, or a byte
/// value's maximum length.
pub const MAX_VALUE_SIZE: usize = 4096;

/// Bytes of a map's control words ([`MapControl`]) before its entries.
pub const MAP_CONTROL_SIZE: u64 = 128;

/// Most entries a map may have (2^24).
pub const MAX_MAP_CAPACITY: u64 = 1 << 24;

/// How many times an insert that found no free entry looks again while
/// entries keep changing under it, before it reports `Full`.
const FULL_RESCANS: usize = 64;

/// What a map's values are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value {
    /// Values of exactly this many bytes (a `Pod` type's size).
    Fixed(usize),
    /// Byte strings of 0 to this many bytes, stored as a length word, then
    /// the bytes.
    Bytes(usize),
}

impl Value {
    /// Words of an entry's value part (in each copy).
    pub const fn words(self) -> usize {
        match self {
            Self::Fixed(n) => n.div_ceil(8),
            Self::Bytes(max) => 1 + max.div_ceil(8),
        }
    }

    /// The value's size, or a byte value's maximum length.
    pub const fn max_len(self) -> usize {
        match self {
            Self::Fixed(n) | Self::Bytes(n) => n,
        }
    }

    /// The value kind a map's payload describes: byte values for a name
    /// ending in `,bytes>` (`map<u64,bytes>`, `map<bytes,bytes>`), whose
    /// size is the maximum length; fixed values of the payload's size
    /// otherwise.
    pub fn of(elem: &TypeInfo) -> Self {
        if elem.name().ends_with(",bytes>") {
            Self::Bytes(elem.size as usize)
        } else {
            Self::Fixed(elem.size as usize)
        }
    }
}

/// The body layout of a map of `capacity` entries of `slot_size` bytes for
/// values of `elem` (fixed, or byte values for a payload named
/// `map<…,bytes>`; see [`Value::of`]): the entry size carries the longest
/// key the map takes, so it is the size asked for at creation (or found in
/// a descriptor), checked to be an entry's for this value and some key
/// length.
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
    let value = Value::of(&elem);
    let bad_align = match value {
        Value::Fixed(_) => !elem.align.is_power_of_two() || elem.align > 8,
        Value::Bytes(_) => elem.align != 1,
    };
    if elem_size == 0 || elem_size > max_value || bad_align {
        return Err(LayoutError::Payload(format!(
            "a value of 1 to {max_value} bytes aligned to at most 8 (byte values: \
             a maximum length of 1 to {max_value}, align 1), found size {}, align {}",
            elem.size, elem.align
        )));
    }
    // The entry size carries the key length: an entry is its reach word,
    // then a seqlock (2 words) over two copies of [state, key length, key
    // words, value words].
    let fixed = ENTRY_HEADER_WORDS as u64 + value.words() as u64;
    let entry = |key_words: u64| {
        (ENTRY_REACH_WORDS as u64
            + crate::raw::seqlock::words_for_bytes(((fixed + key_words) * 8) as usize) as u64)
            * 8
    };
    let max_key_words = MAX_KEY_LEN as u64 / 8;
    let key_words = (slot_size / 8)
        .saturating_sub((ENTRY_REACH_WORDS + crate::raw::seqlock::HEADER_WORDS) as u64)
        / 2;
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
const MAX_ENTRY_DATA: usize = (2 + MAX_KEY_LEN / 8 + 1 + MAX_VALUE_SIZE / 8) * 8;

/// Bytes a lookup reads of each entry it walks past: the state, the key
/// and as much of the value as fits (a value that does not is read again,
/// whole, from the entry that matched). Covers the longest key.
const PROBE_DATA: usize = 16 + MAX_KEY_LEN + 16;

/// Entries up to this many bytes of data are handled in a buffer on the
/// stack; larger ones (big values) on the heap.
const INLINE_ENTRY_DATA: usize = PROBE_DATA;

/// Bytes of the small entries' buffer (a map of `u64` keys and values
/// has 32 bytes of entry data).
const SMALL_ENTRY_DATA: usize = 64;

/// A buffer for one entry's data, sized to it: zeroing 4 KiB on every
/// operation would cost more than the operation, and even the inline
/// buffer's 288 bytes, zeroed for every buffer of an update, cost a map of
/// small entries about a seventh of its update (measured: 94 → 81 ns for
/// `u64` keys and values with the small buffer). Zeroing only the bytes
/// used (a `MaybeUninit` array) was slower still: a length known only at
/// run time makes the zeroing a `memset` call.
#[allow(clippy::large_enum_variant)] // on the stack on purpose: no allocation per operation
enum EntryBuf {
    Small([u8; SMALL_ENTRY_DATA], usize),
    Inline([u8; INLINE_ENTRY_DATA], usize),
    Heap(Vec<u8>),
}

impl EntryBuf {
    #[inline(always)]
    fn new(len: usize) -> Self {
        debug_assert!(len <= MAX_ENTRY_DATA);
        if len <= SMALL_ENTRY_DATA {
            Self::Small([0; SMALL_ENTRY_DATA], len)
        } else if len <= INLINE_ENTRY_DATA {
            Self::Inline([0; INLINE_ENTRY_DATA], len)
        } else {
            Self::Heap(vec![0; len])
        }
    }
}

impl std::ops::Deref for EntryBuf {
    type Target = [u8];

    #[inline(always)]
    fn deref(&self) -> &[u8] {
        match self {
            Self::Small(b, len) => &b[..*len],
            Self::Inline(b, len) => &b[..*len],
            Self::Heap(v) => v,
        }
    }
}

impl std::ops::DerefMut for EntryBuf {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut [u8] {
        match self {
            Self::Small(b, len) => &mut b[..*len],
            Self::Inline(b, len) => &mut b[..*len],
            Self::Heap(v) => v,
        }
    }
}

/// Words of entry data (state, key length, key, value) that the *word
/// path* handles: an entry this small (a map of `u64` keys and values has
/// 4 words) is looked up, checked and written as words in an array on the
/// stack — no byte buffer to zero, no slice compare or copy calls. Larger
/// entries take the byte path. Both read and write the same words in the
/// same order: the word path is only a cheaper way to do what the byte
/// path does.
const SMALL_WORDS: usize = SMALL_ENTRY_DATA / 8;

/// A key ready for the word path: the head words an entry holding it live
/// has (state, length, the key's bytes in zero-padded words, zeros up to
/// the end), and which bytes of the key words a lookup compares.
struct KeyProbe {
    /// The key's home entry.
    home: usize,
    /// `[LIVE, key length, key words (zero-padded), 0, ...]`: what a write
    /// of this key stores before its value (the value room after the key
    /// is zero, as the room handed to a writer's closure must be).
    head: [u64; SMALL_WORDS],
    /// Per key word, the bits that hold key bytes (all ones for a whole
    /// word, the first bytes of a partial one, zero past the key).
    masks: [u64; SMALL_WORDS - 2],
}

/// A word whose first `n` bytes in memory (0 to 8) are ones, the rest zero.
#[inline(always)]
fn first_bytes(n: usize) -> u64 {
    let le = if n >= 8 { !0 } else { (1u64 << (8 * n)) - 1 };
    // Little-endian bytes are memory order: the first `n` bytes.
    u64::from_ne_bytes(le.to_le_bytes())
}

/// The word holding `chunk` (at most 8 bytes) in its first bytes in
/// memory, zero after them.
#[inline(always)]
fn word_of(chunk: &[u8]) -> u64 {
    if let Ok(whole) = <[u8; 8]>::try_from(chunk) {
        return u64::from_ne_bytes(whole);
    }
    // Built as a little-endian number (no variable-length copy call),
    // then laid out in memory order.
    let le = chunk
        .iter()
        .take(8)
        .rev()
        .fold(0u64, |w, &b| (w << 8) | u64::from(b));
    u64::from_ne_bytes(le.to_le_bytes())
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
    /// The key was absent: now it holds the value.
    New,
    /// The key was present; its old value was handed out and replaced.
    Replaced,
    /// The key was present and `only_if_absent` was asked: nothing changed,
    /// its value was handed out.
    Kept,
}

/// Entries of each state, counted by [`RawMap::census`] (a walk over the
/// table, not a snapshot while others write), and the walks lookups make:
/// what `mmring inspect` shows of a map.
///
/// # Examples
///
/// A map of 64 entries that has seen a thousand keys come and go, 16 at a
/// time: every entry has held a key, none is empty, yet lookups stay short.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("dict");
/// use mmring::inspect::{Body, inspect};
/// use mmring::map::Map;
///
/// let d = Map::<u64, u64>::create(&path, 64)?;
/// for k in 0..1000u64 {
///     d.insert(&k, k)?;
///     if k >= 16 {
///         d.remove(&(k - 16))?;
///     }
/// }
/// let Body::Map { census: Ok(c), capacity, .. } = inspect(&path)?.body else {
///     unreachable!("a map")
/// };
/// assert_eq!((c.live, c.empty), (16, 0));
/// assert!(c.max_reach < 63, "shorter than the table");
/// assert!(c.mean_absent_walk(capacity as usize) < 8.0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Census {
    /// Entries holding a key.
    pub live: usize,
    /// Tombstones (free for any key).
    pub removed: usize,
    /// Entries never used.
    pub empty: usize,
    /// Entries in no known state (a peer's garbage).
    pub other: usize,
    /// The largest reach of any entry (clamped as lookups clamp it): the
    /// longest walk a lookup can make is one more entry than this.
    pub max_reach: usize,
    /// The reaches of all entries, summed: a lookup of an absent key whose
    /// home is a random entry walks `1 + reach_sum / capacity` entries on
    /// average (fewer where it meets an empty entry first).
    pub reach_sum: u64,
    /// The distances of the live keys from their homes, summed: a lookup
    /// of a random present key walks `1 + distance_sum / live` entries on
    /// average.
    pub distance_sum: u64,
}

impl Census {
    /// Entries an absent key's lookup walks on average (homes uniform over
    /// `capacity` entries), as the reaches say.
    pub fn mean_absent_walk(&self, capacity: usize) -> f64 {
        1.0 + self.reach_sum as f64 / capacity.max(1) as f64
    }

    /// Entries a present key's lookup walks on average (keys uniform).
    pub fn mean_present_walk(&self) -> f64 {
        1.0 + self.distance_sum as f64 / self.live.max(1) as f64
    }
}

/// An entry's state and key, parsed from its bytes.
struct Entry<'b> {
    state: u64,
    key: &'b [u8],
}

/// What a writer's closure decided, under the entry's lock.
enum Action {
    /// Change nothing.
    Keep,
    /// Store the key live with the value of this many bytes left in the
    /// value room.
    Write(usize),
    /// Remove the key (tombstone the entry).
    Remove,
}

/// The entries a locked re-check accepts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    /// The key, live.
    Live,
    /// A free entry (empty or removed).
    Free,
}

/// A map over memory the caller hands in: control words and `capacity`
/// entries of `stride` words. The [`Map`](crate::map::Map) and
/// [`ByteMap`](crate::map::ByteMap) handles wrap one over a file.
#[derive(Clone, Copy)]
pub struct RawMap<'a> {
    ctl: &'a MapControl,
    words: &'a [AtomicU64],
    mask: usize,
    stride: usize,
    max_key: usize,
    value: Value,
    /// As [`Geometry`]'s.
    data_words: usize,
    value_off: usize,
    value_start: usize,
    /// Whether operations take the word path (entries of at most
    /// `SMALL_WORDS` data words, unless [`RawMap::on_byte_path`]).
    small: bool,
    patience: Patience,
}

impl std::fmt::Debug for RawMap<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawMap")
            .field("capacity", &self.capacity())
            .field("max_key", &self.max_key)
            .field("value", &self.value)
            .finish()
    }
}

/// Words one entry takes for keys up to `max_key` bytes and values of
/// `value`.
pub const fn entry_words(max_key: usize, value: Value) -> usize {
    ENTRY_REACH_WORDS
        + crate::raw::seqlock::words_for_bytes(
            (ENTRY_HEADER_WORDS + max_key.div_ceil(8) + value.words()) * 8,
        )
}

/// The longest key entries of `stride` words (as a validated descriptor
/// gives them) have room for, with values of `value`.
pub const fn key_room(stride: usize, value: Value) -> usize {
    stride.saturating_sub(entry_words(0, value)) / 2 * 8
}

/// The shape of a map's memory, fixed when it was made: what a view needs
/// besides the memory itself. A handle reads it once, when it opens the
/// file, so that building a view per call is only pointer copies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    mask: usize,
    stride: usize,
    max_key: usize,
    value: Value,
    /// Derived from the above once, not on every operation: words of an
    /// entry's data (each copy), and the byte offsets of the value part
    /// and of the value itself (after a byte value's length word).
    data_words: usize,
    value_off: usize,
    value_start: usize,
}

impl Geometry {
    /// `capacity` entries for keys up to `max_key` bytes and values of
    /// `value` (each [`entry_words`]`(max_key, value)` words); `None`
    /// unless `capacity` is a power of two and the sizes are within
    /// [`MAX_KEY_LEN`] and [`MAX_VALUE_SIZE`].
    pub fn new(capacity: usize, max_key: usize, value: Value) -> Option<Self> {
        (capacity.is_power_of_two() && max_key <= MAX_KEY_LEN && value.max_len() <= MAX_VALUE_SIZE)
            .then(|| {
                let stride = entry_words(max_key, value);
                let value_off = 16 + max_key.div_ceil(8) * 8;
                Self {
                    mask: capacity - 1,
                    stride,
                    max_key,
                    value,
                    data_words: (stride - ENTRY_REACH_WORDS - crate::raw::seqlock::HEADER_WORDS)
                        / 2,
                    value_off,
                    value_start: match value {
                        Value::Fixed(_) => value_off,
                        Value::Bytes(_) => value_off + 8,
                    },
                }
            })
    }

    /// Number of entries.
    pub fn capacity(&self) -> usize {
        self.mask + 1
    }

    /// The longest key.
    pub fn max_key_len(&self) -> usize {
        self.max_key
    }

    /// What the values are.
    pub fn value(&self) -> Value {
        self.value
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
    /// [`entry_words`]`(max_key, value)` words each; zeroed words are an
    /// empty map). Blocking seqlock accesses use `patience`.
    ///
    /// # Panics
    ///
    /// If `capacity` is not a power of two, the sizes exceed
    /// [`MAX_KEY_LEN`] / [`MAX_VALUE_SIZE`], or `words` has the wrong length
    /// (the caller's layout bug, never file content: the mapped handles
    /// validate the file first).
    pub fn new(
        ctl: &'a MapControl,
        words: &'a [AtomicU64],
        capacity: usize,
        max_key: usize,
        value: Value,
        patience: Patience,
    ) -> Self {
        assert!(
            capacity.is_power_of_two(),
            "map capacity must be a power of two"
        );
        let Some(geometry) = Geometry::new(capacity, max_key, value) else {
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
            value: geometry.value,
            data_words: geometry.data_words,
            value_off: geometry.value_off,
            value_start: geometry.value_start,
            small: geometry.data_words <= SMALL_WORDS,
            patience,
        }
    }

    /// Number of entries: the most keys present at once.
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

    /// What the values are.
    pub fn value(&self) -> Value {
        self.value
    }

    /// Entry `idx`'s seqlock words (all of the entry but its reach, which
    /// a lookup of a key found at home never reads).
    #[inline(always)]
    fn seqlock_words(&self, idx: usize) -> &'a [AtomicU64] {
        &self.words[idx * self.stride + ENTRY_REACH_WORDS..(idx + 1) * self.stride]
    }

    #[inline(always)]
    fn lock(&self, idx: usize) -> SeqLock<'a> {
        SeqLock::new(self.seqlock_words(idx))
    }

    /// Entry `idx`'s reach word.
    fn reach_word(&self, idx: usize) -> &'a AtomicU64 {
        &self.words[idx * self.stride]
    }

    /// Entry `idx`'s reach as a home: every live key whose home it is lies
    /// at most this many entries past it. Clamped to `capacity - 1` (the
    /// word is untrusted).
    fn reach(&self, idx: usize) -> usize {
        // Acquire pairs with the Release store in `settle_reach`: the
        // entries as the home lock's holder saw them when it set this
        // reach are visible to the walk that follows. A placement beyond
        // the reach read here is published after the store that covers it
        // (see `settle_reach`), so one this caller has seen (directly, or
        // through anything that happened after it) is covered; one it has
        // not seen is concurrent with it.
        let r = self.reach_word(idx).load(Ordering::Acquire);
        usize::try_from(r).unwrap_or(usize::MAX).min(self.mask)
    }

    /// Under home entry `home`'s write lock, after placing a key at
    /// `distance` from it and before publishing it: sets the home's reach
    /// (`reach` as read under this lock) to what its keys need, the larger
    /// of `distance` and the farthest key of this home still live within
    /// the old reach (found walking back from it: when the reach is tight,
    /// one read). Only a holder of the home lock places keys of this home,
    /// and every earlier one published its placement before releasing the
    /// lock, so a key of this home that this walk does not find live is
    /// not live (removed, or its entry reused by a key of another home).
    /// An entry that stays busy past the patience ends the walk there
    /// (the reach is then only raised, never lowered).
    fn settle_reach(&self, home: usize, reach: usize, distance: usize, buf: &mut [u8]) {
        let mut need = distance;
        for j in (distance + 1..=reach).rev() {
            let idx = (home + j) & self.mask;
            if self.read(idx, buf).is_err() {
                need = reach;
                break;
            }
            let e = self.parse(buf);
            if e.state == LIVE && self.start(e.key) == home {
                need = j;
                break;
            }
        }
        if need != reach {
            // Release pairs with the Acquire load in `reach`: a lookup that
            // reads this reach also sees every entry as this walk (and the
            // placements before it, ordered before it by the home lock)
            // saw it, so the keys of this home it covers are visible. And
            // it comes before the placed entry's own Release (its guard's
            // drop): whoever sees that entry live reads this reach or a
            // later one, which covers it while it is live.
            self.reach_word(home).store(need as u64, Ordering::Release);
        }
    }

    /// Bytes of an entry's data (each copy).
    fn data_len(&self) -> usize {
        self.data_words * 8
    }

    /// Bytes a lookup reads of each entry: the state and key, and as much
    /// of the value as [`PROBE_DATA`] leaves room for.
    fn probe_len(&self) -> usize {
        self.data_len().min(PROBE_DATA.max(self.value_off()))
    }

    fn key_off(&self) -> usize {
        16
    }

    #[inline(always)]
    fn value_off(&self) -> usize {
        self.value_off
    }

    fn word(buf: &[u8], off: usize) -> u64 {
        buf.get(off..off + 8)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u64::from_ne_bytes)
    }

    fn parse<'b>(&self, buf: &'b [u8]) -> Entry<'b> {
        let key_len = usize::try_from(Self::word(buf, 8))
            .unwrap_or(usize::MAX)
            .min(self.max_key);
        let k = self.key_off();
        Entry {
            state: Self::word(buf, 0),
            key: buf.get(k..k + key_len).unwrap_or(&[]),
        }
    }

    /// A byte value's stored length, clamped to the maximum (never
    /// trusted); a fixed value's size.
    fn stored_len(&self, buf: &[u8]) -> usize {
        match self.value {
            Value::Fixed(n) => n,
            Value::Bytes(max) => usize::try_from(Self::word(buf, self.value_off()))
                .unwrap_or(usize::MAX)
                .min(max),
        }
    }

    /// Where the value starts in an entry's data.
    #[inline(always)]
    fn value_start(&self) -> usize {
        self.value_start
    }

    /// How many bytes of the entry in `buf` hold its whole value (its
    /// stored length clamped); the whole entry if `buf` is too short to
    /// tell.
    fn value_end(&self, buf: &[u8]) -> usize {
        if buf.len() < self.value_start() {
            return self.data_len();
        }
        self.value_start() + self.stored_len(buf)
    }

    /// The value of the entry in `buf` (`buf` holds at least
    /// [`RawMap::value_end`] bytes; any shorter, what it has).
    #[inline]
    fn value_of<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        let start = self.value_start().min(buf.len());
        let end = self.value_end(buf).min(buf.len());
        &buf[start..end]
    }

    /// Writes the state, key length and key (zero-padded) at the front of
    /// `buf`.
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

    fn check_value(&self, value: &[u8]) -> Result<(), MapError> {
        let max = self.value.max_len();
        if value.len() > max {
            return Err(MapError::ValueTooLong {
                len: value.len(),
                max,
            });
        }
        Ok(())
    }

    fn start(&self, key: &[u8]) -> usize {
        fnv1a(key) as usize & self.mask
    }

    /// One consistent read of entry `idx` into `buf`: its version.
    fn read(&self, idx: usize, buf: &mut [u8]) -> Result<u64, MapError> {
        Ok(self.lock(idx).read_bytes(buf, self.patience)?)
    }

    /// Walks `key`'s probe sequence, reading the first `buf.len()` bytes of
    /// each entry into `buf`: the entry holding the key live (`buf` holds
    /// that read), or `None` at the first empty entry or past the home's
    /// reach (read once, first: a key placed beyond it afterwards is an
    /// insert concurrent with this lookup). Removed entries and other keys
    /// are walked past.
    fn find(&self, key: &[u8], buf: &mut [u8]) -> Result<Option<usize>, MapError> {
        let start = self.start(key);
        let reach = self.reach(start);
        for i in 0..=reach {
            let idx = (start + i) & self.mask;
            self.read(idx, buf)?;
            let e = self.parse(buf);
            if e.state == EMPTY {
                return Ok(None);
            }
            if e.state == LIVE && e.key == key {
                return Ok(Some(idx));
            }
        }
        Ok(None)
    }

    /// Words of an entry's data (each copy).
    #[inline(always)]
    fn data_words(&self) -> usize {
        self.data_words
    }

    /// Whether operations take the word path (`SMALL_WORDS`).
    #[inline(always)]
    fn is_small(&self) -> bool {
        self.small
    }

    /// This map with every operation on the byte path, even where its
    /// entries would take the word path: for the loom models, which run
    /// small entries and check both paths.
    #[doc(hidden)]
    pub fn on_byte_path(mut self) -> Self {
        self.small = false;
        self
    }

    /// `key` (checked: at most the longest key) ready for the word path of
    /// a map whose entries take it.
    #[inline(always)]
    fn probe(&self, key: &[u8]) -> KeyProbe {
        let mut head = [0u64; SMALL_WORDS];
        let mut masks = [0u64; SMALL_WORDS - 2];
        head[0] = LIVE;
        head[1] = key.len() as u64;
        for (i, chunk) in key.chunks(8).enumerate().take(SMALL_WORDS - 2) {
            head[2 + i] = word_of(chunk);
            masks[i] = first_bytes(chunk.len());
        }
        KeyProbe {
            home: self.start(key),
            head,
            masks,
        }
    }

    /// Whether the entry data in `cur` holds `probe`'s key live: what
    /// [`RawMap::find`] asks of an entry (state live, the stored length
    /// clamped to the longest key equal to the key's, the key's bytes
    /// equal), asked of words.
    #[inline(always)]
    fn holds(&self, probe: &KeyProbe, cur: &[u64; SMALL_WORDS]) -> bool {
        let key_words = self.max_key.div_ceil(8).min(SMALL_WORDS - 2);
        cur[0] == LIVE
            && cur[1].min(self.max_key as u64) == probe.head[1]
            && (0..key_words).all(|i| (cur[2 + i] ^ probe.head[2 + i]) & probe.masks[i] == 0)
    }

    /// One consistent read of small entry `idx`'s data words into `cur`:
    /// its version.
    #[inline(always)]
    fn read_small(
        &self,
        lock: &SeqLock<'a>,
        cur: &mut [u64; SMALL_WORDS],
    ) -> Result<u64, MapError> {
        let n = self.data_words().min(SMALL_WORDS);
        Ok(lock.read_words(&mut cur[..n], self.patience)?)
    }

    /// [`RawMap::find`] on the word path: the entry holding the key live
    /// (its seqlock) and the version read (`cur` holds that read), or `None` at the
    /// first empty entry or past the home's reach. The home is read first
    /// and the reach only if the key is not there: a key at home needs no
    /// bound, and a reach read later covers at least what one read first
    /// would (the walk past the home is [`RawMap::find`]'s).
    #[inline(always)]
    fn find_small(
        &self,
        probe: &KeyProbe,
        cur: &mut [u64; SMALL_WORDS],
    ) -> Result<Option<(SeqLock<'a>, u64)>, MapError> {
        let home = probe.home;
        let lock = self.lock(home);
        let version = self.read_small(&lock, cur)?;
        if self.holds(probe, cur) {
            return Ok(Some((lock, version)));
        }
        if cur[0] == EMPTY {
            return Ok(None);
        }
        let reach = self.reach(home);
        for i in 1..=reach {
            let lock = self.lock((home + i) & self.mask);
            let version = self.read_small(&lock, cur)?;
            if self.holds(probe, cur) {
                return Ok(Some((lock, version)));
            }
            if cur[0] == EMPTY {
                return Ok(None);
            }
        }
        Ok(None)
    }

    /// The bytes of the small entry data in `cur`.
    #[inline(always)]
    fn small_bytes<'b>(&self, cur: &'b [u64; SMALL_WORDS]) -> &'b [u8] {
        let n = self.data_words().min(SMALL_WORDS);
        &bytemuck::bytes_of(cur)[..n * 8]
    }

    /// [`RawMap::apply`] on the word path, for an entry that holds `probe`'s
    /// key live in `cur` (its current value, read under `guard`): runs `f`
    /// on the value and a zeroed room, and does what it decided.
    #[inline(always)]
    fn apply_small<R>(
        &self,
        guard: &WriteGuard<'_>,
        cur: &[u64; SMALL_WORDS],
        probe: &KeyProbe,
        f: &mut impl FnMut(Option<&[u8]>, &mut [u8]) -> Result<(Action, R), MapError>,
    ) -> Result<R, MapError> {
        // The key's head, then zeros: the value room is zeroed.
        let mut new = probe.head;
        let start = self.value_start();
        let room = start..start + self.value.max_len();
        let (action, r) = f(
            Some(self.value_of(self.small_bytes(cur))),
            &mut bytemuck::bytes_of_mut(&mut new)[room],
        )?;
        match action {
            Action::Keep => {}
            Action::Write(len) => {
                let len = match self.value {
                    Value::Fixed(n) => n,
                    Value::Bytes(max) if len > max => {
                        return Err(MapError::ValueTooLong { len, max });
                    }
                    Value::Bytes(_) => {
                        new[self.value_off() / 8] = len as u64;
                        len
                    }
                };
                // As `write_prefix` of the byte path: up to the value's
                // end, the rest of its last word zero, the words after it
                // left stale.
                let end = start + len;
                let words = end.div_ceil(8);
                if end % 8 != 0 {
                    new[words - 1] &= first_bytes(end % 8);
                }
                guard.write_words(&new[..words]);
            }
            Action::Remove => {
                // The state and a zero key length, as the byte path.
                guard.write_words(&[REMOVED, 0]);
                // Relaxed: a statistic; entries carry their own ordering.
                self.ctl.len.fetch_sub(1, Ordering::Relaxed);
            }
        }
        Ok(r)
    }

    /// Runs `f` on `key`'s value, read whole (the key, its state and the
    /// value in one consistent copy of the entry): `None` if the key is
    /// absent. Never blocks a writer; never hands out a torn value or
    /// another key's.
    ///
    /// # Errors
    ///
    /// [`MapError::KeyTooLong`], or [`MapError::Busy`] if an entry on the
    /// way stayed in a second write past the patience.
    pub fn get_with<R>(
        &self,
        key: &[u8],
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<Option<R>, MapError> {
        self.check_key(key)?;
        if self.is_small() {
            let probe = self.probe(key);
            let mut cur = [0u64; SMALL_WORDS];
            // The whole entry was read: its value with it.
            return Ok(self
                .find_small(&probe, &mut cur)?
                .map(|_| f(self.value_of(self.small_bytes(&cur)))));
        }
        let mut buf = EntryBuf::new(self.probe_len());
        loop {
            let Some(idx) = self.find(key, &mut buf)? else {
                return Ok(None);
            };
            let end = self.value_end(&buf);
            if end <= buf.len() {
                return Ok(Some(f(self.value_of(&buf))));
            }
            // The value goes on past what a lookup reads: read the entry
            // again, as far as its value said it went.
            let mut whole = EntryBuf::new(end);
            self.read(idx, &mut whole)?;
            let e = self.parse(&whole);
            if e.state == LIVE && e.key == key && self.value_end(&whole) <= whole.len() {
                return Ok(Some(f(self.value_of(&whole))));
            }
            // Removed, reused or rewritten longer between the two reads:
            // look again (each retry means another write completed).
        }
    }

    /// Copies `key`'s value into `out` (as much as fits) and returns its
    /// length, or `None` if the key is absent. As [`RawMap::get_with`].
    ///
    /// # Errors
    ///
    /// As [`RawMap::get_with`].
    pub fn get(&self, key: &[u8], out: &mut [u8]) -> Result<Option<usize>, MapError> {
        self.get_with(key, |v| {
            let n = v.len().min(out.len());
            out[..n].copy_from_slice(&v[..n]);
            v.len()
        })
    }

    /// Under `guard` (entry `idx`'s write lock): checks the entry is what
    /// the caller chose it for (`want`), runs `f` on its value (if live)
    /// and a zeroed room for the new value, and does what `f` decided.
    /// `None` if the entry changed since it was chosen (nothing done, `f`
    /// not called). `head` is the caller's lookup buffer
    /// ([`RawMap::probe_len`] bytes), overwritten.
    fn apply<R>(
        &self,
        guard: &WriteGuard<'_>,
        head: &mut [u8],
        key: &[u8],
        want: Want,
        f: &mut impl FnMut(Option<&[u8]>, &mut [u8]) -> Result<(Action, R), MapError>,
    ) -> Result<Option<R>, MapError> {
        // The current copy, read under the lock (no other writer fills it)
        // into the caller's lookup buffer: the state and key, then the
        // value as far as it goes.
        guard.read_bytes(head);
        let end = self.value_end(head);
        let mut long = None;
        if end > head.len() {
            let mut whole = EntryBuf::new(end);
            guard.read_bytes(&mut whole);
            long = Some(whole);
        }
        let old: &[u8] = long.as_deref().unwrap_or(head);
        let e = self.parse(old);
        let live = e.state == LIVE;
        let ok = match want {
            Want::Live => live && e.key == key,
            Want::Free => e.state == EMPTY || e.state == REMOVED,
        };
        if !ok {
            return Ok(None);
        }
        let mut new = EntryBuf::new(self.data_len());
        let room = self.value_start()..self.value_start() + self.value.max_len();
        let (action, r) = f(live.then(|| self.value_of(old)), &mut new[room])?;
        match action {
            Action::Keep => {}
            Action::Write(len) => {
                let len = match self.value {
                    Value::Fixed(n) => n,
                    Value::Bytes(max) if len > max => {
                        return Err(MapError::ValueTooLong { len, max });
                    }
                    Value::Bytes(_) => {
                        let off = self.value_off();
                        new[off..off + 8].copy_from_slice(&(len as u64).to_ne_bytes());
                        len
                    }
                };
                self.encode_head(&mut new, LIVE, key);
                // The words past the value are not part of it (a byte
                // value's length says where it ends): left stale.
                guard.write_prefix(&new[..self.value_start() + len]);
                if !live {
                    // Relaxed: a statistic; entries carry their own
                    // ordering.
                    self.ctl.len.fetch_add(1, Ordering::Relaxed);
                }
            }
            Action::Remove if live => {
                // The state and a zero key length: the rest of a tombstone
                // means nothing.
                self.encode_head(&mut new, REMOVED, &[]);
                guard.write_prefix(&new[..16]);
                // Relaxed: as above.
                self.ctl.len.fetch_sub(1, Ordering::Relaxed);
            }
            Action::Remove => {}
        }
        Ok(Some(r))
    }

    /// Runs `f` on `key`'s entry under the entry's write lock: `f` gets the
    /// current value (`None` if the key is absent) and a zeroed room for
    /// the new value (empty when the key is absent and `creates` is false)
    /// and says what to do. If the key is absent and `creates`, a free
    /// entry is taken for it under the home lock ([`RawMap::place`]);
    /// otherwise `f` runs once with `None` and must [`Action::Keep`].
    fn with_entry<R>(
        &self,
        key: &[u8],
        creates: bool,
        mut f: impl FnMut(Option<&[u8]>, &mut [u8]) -> Result<(Action, R), MapError>,
    ) -> Result<R, MapError> {
        self.check_key(key)?;
        if self.is_small() {
            return self.with_small_entry(key, creates, f);
        }
        // As on the word path: the home's lines, fetched for writing.
        crate::sync::prefetch_write(self.seqlock_words(self.start(key)));
        let mut buf = EntryBuf::new(self.probe_len());
        let mut rescans = 0;
        loop {
            if let Some(idx) = self.find(key, &mut buf)? {
                let guard = self.lock(idx).lock(self.patience)?;
                if let Some(r) = self.apply(&guard, &mut buf, key, Want::Live, &mut f)? {
                    return Ok(r);
                }
                // Removed, or removed and reused, since the lookup: again.
                continue;
            }
            if !creates {
                return f(None, &mut []).map(|(_, r)| r);
            }
            if let Some(r) = self.place(key, &mut f, &mut rescans)? {
                return Ok(r);
            }
        }
    }

    /// [`RawMap::with_entry`] on the word path: the same lookup, lock and
    /// re-check, in words. The re-check under the lock is skipped when the
    /// lock was taken at the version the lookup read (nothing was
    /// published in between, so the lookup's copy is the current value).
    /// An absent key is placed by the byte path ([`RawMap::place`]).
    #[inline]
    fn with_small_entry<R>(
        &self,
        key: &[u8],
        creates: bool,
        mut f: impl FnMut(Option<&[u8]>, &mut [u8]) -> Result<(Action, R), MapError>,
    ) -> Result<R, MapError> {
        let probe = self.probe(key);
        // The home's lines, fetched for writing before the lookup reads
        // them: the lock's compare-and-swap and the write then find them
        // owned (see `prefetch_write`), one transfer per line instead of a
        // read and then an ownership request.
        crate::sync::prefetch_write(self.seqlock_words(probe.home));
        let mut cur = [0u64; SMALL_WORDS];
        let mut rescans = 0;
        loop {
            if let Some((lock, version)) = self.find_small(&probe, &mut cur)? {
                let guard = lock.lock(self.patience)?;
                if guard.locked_version() != version {
                    let n = self.data_words().min(SMALL_WORDS);
                    guard.read_words(&mut cur[..n]);
                    if !self.holds(&probe, &cur) {
                        // Removed, or removed and reused, since the
                        // lookup: again (the guard goes unwritten).
                        continue;
                    }
                }
                return self.apply_small(&guard, &cur, &probe, &mut f);
            }
            if !creates {
                return f(None, &mut []).map(|(_, r)| r);
            }
            if let Some(r) = self.place(key, &mut f, &mut rescans)? {
                return Ok(r);
            }
        }
    }

    /// [`RawMap::update`] of a present key, for a map of fixed values of
    /// type `T` whose keys are `KW` whole words (`key`, in memory order: a
    /// `u64` key is one word): `f` runs once on the value, under the
    /// entry's lock, and its result is stored and returned; `None` (and no
    /// call) if the key is absent.
    ///
    /// Where the map's entries are exactly such a key and value on the word
    /// path (`2 + KW + words of T` data words, at most `SMALL_WORDS`), this
    /// is the word path with every size a constant: the entry's seqlock
    /// slice, the read, the key compare and the write are a fixed number
    /// of word loads and stores, the hash a fixed number of steps, and
    /// the value goes to `f` and back without a byte buffer or a closure
    /// over slices. It reads and writes the same words with the same
    /// orderings as [`RawMap::with_small_entry`] and accepts the same
    /// entries. Any other map takes [`RawMap::update`].
    ///
    /// # Errors
    ///
    /// As [`RawMap::update`] of a present key: [`MapError::KeyTooLong`],
    /// [`MapError::Busy`].
    #[inline(always)]
    pub fn update_fixed<T: bytemuck::Pod, const KW: usize>(
        &self,
        key: &[u64; KW],
        f: impl FnOnce(T) -> T,
    ) -> Result<Option<T>, MapError> {
        let size = size_of::<T>();
        // Data words of an entry of this key and value: constants.
        let start = 2 + KW;
        let d = start + size.div_ceil(8);
        if !(self.small
            && d <= SMALL_WORDS
            && self.data_words == d
            && self.value == Value::Fixed(size)
            && KW * 8 <= self.max_key)
        {
            return self.update_fixed_other(key, f);
        }
        // The entry's seqlock is rebuilt from its index wherever it is
        // used (not carried out of the lookup), so that its length stays a
        // constant there.
        let home = self.start(bytemuck::cast_slice(key));
        // As on the word path: the home's lines, fetched for writing.
        crate::sync::prefetch_write(self.fixed_seqlock_words(home, d));
        let mut cur = [0u64; SMALL_WORDS];
        loop {
            let Some((idx, version)) = self.find_fixed(home, key, d, &mut cur)? else {
                return Ok(None);
            };
            let guard = self.fixed_lock(idx, d).lock(self.patience)?;
            if guard.locked_version() != version {
                // Written since the lookup: the current copy, re-checked.
                guard.read_words(&mut cur[..d]);
                if !self.holds_key(key, &cur) {
                    // Removed, or removed and reused: again (the guard
                    // goes unwritten).
                    continue;
                }
            }
            let old: T =
                bytemuck::pod_read_unaligned(&bytemuck::bytes_of(&cur)[start * 8..][..size]);
            let new = f(old);
            // The key's head, then the value (the rest of its last word
            // zero), as `apply_small` writes it.
            let mut out = [0u64; SMALL_WORDS];
            out[0] = LIVE;
            out[1] = (KW * 8) as u64;
            out[2..start].copy_from_slice(key);
            bytemuck::bytes_of_mut(&mut out)[start * 8..][..size]
                .copy_from_slice(bytemuck::bytes_of(&new));
            guard.write_words(&out[..d]);
            return Ok(Some(new));
        }
    }

    /// [`RawMap::update_fixed`] of a map whose entries are not exactly its
    /// key and value (a longer key room, a byte-valued map, the byte path):
    /// [`RawMap::update`] of the key's bytes, out of line (and the view
    /// passed by value, so that the fast path never stores it).
    #[inline(never)]
    fn update_fixed_other<T: bytemuck::Pod, const KW: usize>(
        self,
        key: &[u64; KW],
        f: impl FnOnce(T) -> T,
    ) -> Result<Option<T>, MapError> {
        let mut f = Some(f);
        let mut new = None;
        self.update(bytemuck::cast_slice(key), None, |old, room| {
            if let Some(f) = f.take() {
                let mut v = T::zeroed();
                let n = old.len().min(size_of::<T>());
                bytemuck::bytes_of_mut(&mut v)[..n].copy_from_slice(&old[..n]);
                let v = f(v);
                let n = room.len().min(size_of::<T>());
                room[..n].copy_from_slice(&bytemuck::bytes_of(&v)[..n]);
                new = Some(v);
                // The value's own length: a byte-valued map stores `n`
                // bytes, not its whole room (a fixed one ignores it).
                return Ok(n);
            }
            Ok(room.len())
        })?;
        Ok(new)
    }

    /// Entry `idx`'s seqlock on a map whose entries have `d` data words
    /// (checked by the caller against the geometry): a slice of a length
    /// known at compile time where `d` is, so that the seqlock's copies
    /// are constant offsets.
    #[inline(always)]
    fn fixed_lock(&self, idx: usize, d: usize) -> SeqLock<'a> {
        SeqLock::new(self.fixed_seqlock_words(idx, d))
    }

    /// Entry `idx`'s seqlock words as [`RawMap::fixed_lock`] views them
    /// (all of the entry but its reach, as [`RawMap::seqlock_words`]).
    #[inline(always)]
    fn fixed_seqlock_words(&self, idx: usize, d: usize) -> &'a [AtomicU64] {
        &self.words[idx * self.stride + ENTRY_REACH_WORDS..][..HEADER_WORDS + 2 * d]
    }

    /// Whether the entry data in `cur` holds the whole-word key `key`
    /// live: [`RawMap::holds`] for a key of `KW` whole words (the stored
    /// length clamped to the longest key, as the byte path parses it).
    #[inline(always)]
    fn holds_key<const KW: usize>(&self, key: &[u64; KW], cur: &[u64; SMALL_WORDS]) -> bool {
        cur[0] == LIVE
            && cur[1].min(self.max_key as u64) == (KW * 8) as u64
            && cur[2..2 + KW] == key[..]
    }

    /// [`RawMap::find_small`] for a whole-word key on entries of `d` data
    /// words: the entry holding the key live (its index) and the version
    /// read (`cur` holds that read), or `None` at the first empty entry or
    /// past the home's reach (read only if the key is not at home).
    #[inline(always)]
    fn find_fixed<const KW: usize>(
        &self,
        home: usize,
        key: &[u64; KW],
        d: usize,
        cur: &mut [u64; SMALL_WORDS],
    ) -> Result<Option<(usize, u64)>, MapError> {
        let version = self
            .fixed_lock(home, d)
            .read_words(&mut cur[..d], self.patience)?;
        if self.holds_key(key, cur) {
            return Ok(Some((home, version)));
        }
        if cur[0] == EMPTY {
            return Ok(None);
        }
        self.find_fixed_past_home(home, key, d, cur)
    }

    /// The walk of [`RawMap::find_fixed`] past the home, out of line (a
    /// key at home, the common case, needs none of it; the view passed by
    /// value, as in [`RawMap::update_fixed_other`]).
    #[inline(never)]
    fn find_fixed_past_home<const KW: usize>(
        self,
        home: usize,
        key: &[u64; KW],
        d: usize,
        cur: &mut [u64; SMALL_WORDS],
    ) -> Result<Option<(usize, u64)>, MapError> {
        let reach = self.reach(home);
        for i in 1..=reach {
            let idx = (home + i) & self.mask;
            let version = self
                .fixed_lock(idx, d)
                .read_words(&mut cur[..d], self.patience)?;
            if self.holds_key(key, cur) {
                return Ok(Some((idx, version)));
            }
            if cur[0] == EMPTY {
                return Ok(None);
            }
        }
        Ok(None)
    }

    /// Places an absent `key` under its home entry's lock (the module
    /// docs): finds it live within the home's reach if another insert got
    /// there first, or takes the first free entry of its sequence (raising
    /// the home's reach first if that entry lies beyond it). `None` to
    /// start again (an entry changed, or the chosen one was busy and has
    /// been waited out).
    fn place<R>(
        &self,
        key: &[u8],
        f: &mut impl FnMut(Option<&[u8]>, &mut [u8]) -> Result<(Action, R), MapError>,
        rescans: &mut usize,
    ) -> Result<Option<R>, MapError> {
        let home = self.start(key);
        let home_guard = self.lock(home).lock(self.patience)?;
        // Read under the home lock: every change of this reach was made by
        // an earlier holder of the lock, before it released it (see
        // `settle_reach`), so it covers every key of this home live now,
        // this key included if another insert placed it.
        let reach = self.reach(home);
        let mut buf = EntryBuf::new(self.probe_len());
        let mut found = self.scan(key, &home_guard, reach, &mut buf, None)?;
        if found.is_none() {
            // Every entry read live, but not at one instant: collect the
            // versions twice; the same versions both times mean they were
            // all live at once (between the two passes).
            let mut first = Vec::with_capacity(self.capacity());
            found = self.scan(key, &home_guard, reach, &mut buf, Some(&mut first))?;
            if found.is_none() {
                let mut second = Vec::with_capacity(self.capacity());
                found = self.scan(key, &home_guard, reach, &mut buf, Some(&mut second))?;
                if found.is_none() {
                    *rescans += 1;
                    if first == second || *rescans >= FULL_RESCANS {
                        return Err(MapError::Full {
                            capacity: self.capacity(),
                        });
                    }
                    return Ok(None);
                }
            }
        }
        let Some((target, want)) = found else {
            return Ok(None);
        };
        if target == home {
            let r = self.apply(&home_guard, &mut buf, key, want, f);
            if want == Want::Free {
                // The key went home: the reach may only come down.
                self.settle_reach(home, reach, 0, &mut buf);
            }
            return r;
        }
        let distance = target.wrapping_sub(home) & self.mask;
        match self.lock(target).try_lock() {
            Ok(guard) => {
                let r = self.apply(&guard, &mut buf, key, want, f);
                if want == Want::Free && matches!(r, Ok(Some(_))) {
                    // Before the entry is published (dropping its guard):
                    // whoever sees the key live there reads a reach that
                    // covers it.
                    self.settle_reach(home, reach, distance, &mut buf);
                }
                // The entry is published before the home lock goes: the
                // next insert of this key (which takes the home lock
                // first) sees it.
                drop(guard);
                drop(home_guard);
                r
            }
            Err(_) => {
                // Busy: let the home go (its holder may be waiting for it),
                // wait the entry's writer out (taking its lock over if it
                // died), and start again.
                drop(home_guard);
                drop(self.lock(target).lock(self.patience)?);
                Ok(None)
            }
        }
    }

    /// One walk of `key`'s probe sequence under its home lock: the entry
    /// holding the key live within the home's `reach`, or else the first
    /// free entry (at any distance), or `None` if every entry holds another
    /// key. Pushes each entry's version onto `versions` (0 for the home,
    /// which cannot change under its lock).
    fn scan(
        &self,
        key: &[u8],
        home_guard: &WriteGuard<'_>,
        reach: usize,
        buf: &mut [u8],
        mut versions: Option<&mut Vec<u64>>,
    ) -> Result<Option<(usize, Want)>, MapError> {
        let home = self.start(key);
        let mut free = None;
        for i in 0..self.capacity() {
            if i > reach {
                // Past the reach no entry holds this key: the first free
                // entry, if one was seen, is the place.
                if let Some(idx) = free {
                    return Ok(Some((idx, Want::Free)));
                }
            }
            let idx = (home + i) & self.mask;
            let version = if idx == home {
                home_guard.read_bytes(buf);
                0
            } else {
                self.read(idx, buf)?
            };
            if let Some(v) = versions.as_deref_mut() {
                v.push(version);
            }
            let e = self.parse(buf);
            match e.state {
                LIVE if e.key == key => return Ok(Some((idx, Want::Live))),
                EMPTY => return Ok(Some((free.unwrap_or(idx), Want::Free))),
                REMOVED => {
                    free.get_or_insert(idx);
                }
                _ => {}
            }
        }
        Ok(free.map(|idx| (idx, Want::Free)))
    }

    /// Inserts or replaces `key`'s value (`only_if_absent`: never
    /// replaces); a replaced or kept value is handed to `old` first.
    ///
    /// # Errors
    ///
    /// [`MapError::Full`] (a new key, and every entry held a key at one
    /// instant), [`MapError::KeyTooLong`], [`MapError::ValueTooLong`],
    /// [`MapError::Busy`]. Nothing changes on an error.
    pub fn insert(
        &self,
        key: &[u8],
        value: &[u8],
        only_if_absent: bool,
        old: impl FnOnce(&[u8]),
    ) -> Result<Inserted, MapError> {
        self.check_value(value)?;
        let mut old = Some(old);
        self.with_entry(key, true, |cur, room| {
            let done = match cur {
                Some(v) => {
                    if let Some(old) = old.take() {
                        old(v);
                    }
                    if only_if_absent {
                        return Ok((Action::Keep, Inserted::Kept));
                    }
                    Inserted::Replaced
                }
                None => Inserted::New,
            };
            room[..value.len()].copy_from_slice(value);
            Ok((Action::Write(value.len()), done))
        })
    }

    /// Atomically replaces `key`'s value: `f(old, room)` writes the new
    /// value into `room` (zeroed, as long as the largest value) and returns
    /// its length (ignored for fixed values, which fill it). If the key is
    /// absent, `absent` decides: `Some(init)` inserts as if `init` were the
    /// old value, `None` leaves the map unchanged. Returns whether `f` ran.
    ///
    /// # Errors
    ///
    /// As [`RawMap::insert`] (`Full` only when `absent` asks to insert), and
    /// whatever `f` returns (nothing changes then).
    pub fn update(
        &self,
        key: &[u8],
        absent: Option<&[u8]>,
        mut f: impl FnMut(&[u8], &mut [u8]) -> Result<usize, MapError>,
    ) -> Result<bool, MapError> {
        if let Some(init) = absent {
            self.check_value(init)?;
        }
        self.with_entry(key, absent.is_some(), |cur, room| {
            let Some(old) = cur.or(absent) else {
                return Ok((Action::Keep, false));
            };
            let len = f(old, room)?;
            Ok((Action::Write(len), true))
        })
    }

    /// Removes `key`, handing its value to `old`; whether it was present.
    /// Its entry is free for any key at once.
    ///
    /// # Errors
    ///
    /// [`MapError::KeyTooLong`], [`MapError::Busy`] (never `Full`).
    pub fn remove(&self, key: &[u8], old: impl FnOnce(&[u8])) -> Result<bool, MapError> {
        let mut old = Some(old);
        self.with_entry(key, false, |cur, _| match cur {
            Some(v) => {
                if let Some(old) = old.take() {
                    old(v);
                }
                Ok((Action::Remove, true))
            }
            None => Ok((Action::Keep, false)),
        })
    }

    /// Calls `f(key, value)` for every live entry, each read whole (the set
    /// as a whole is not a snapshot while others write).
    ///
    /// # Errors
    ///
    /// [`MapError::Busy`] if an entry stayed in a second write past the
    /// patience.
    pub fn for_each(&self, mut f: impl FnMut(&[u8], &[u8])) -> Result<(), MapError> {
        let mut buf = EntryBuf::new(self.data_len());
        for idx in 0..self.capacity() {
            self.read(idx, &mut buf)?;
            let e = self.parse(&buf);
            if e.state == LIVE {
                f(e.key, self.value_of(&buf));
            }
        }
        Ok(())
    }

    /// Counts the entries of each state and measures the walks lookups
    /// make (what `mmring inspect` shows: the reaches, and how far the live
    /// keys sit from their homes).
    ///
    /// # Errors
    ///
    /// As [`RawMap::for_each`].
    pub fn census(&self) -> Result<Census, MapError> {
        let mut buf = EntryBuf::new(self.probe_len());
        let mut c = Census::default();
        for idx in 0..self.capacity() {
            let reach = self.reach(idx);
            c.max_reach = c.max_reach.max(reach);
            c.reach_sum += reach as u64;
            self.read(idx, &mut buf)?;
            let e = self.parse(&buf);
            match e.state {
                EMPTY => c.empty += 1,
                LIVE => {
                    c.live += 1;
                    c.distance_sum += (idx.wrapping_sub(self.start(e.key)) & self.mask) as u64;
                }
                REMOVED => c.removed += 1,
                _ => c.other += 1,
            }
        }
        Ok(c)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    const VALUES: Value = Value::Fixed(8);

    struct Heap {
        ctl: MapControl,
        words: Vec<AtomicU64>,
        cap: usize,
    }

    impl Heap {
        fn new(cap: usize) -> Self {
            Self {
                ctl: MapControl::new(1, 8),
                words: (0..cap * entry_words(8, VALUES))
                    .map(|_| AtomicU64::new(0))
                    .collect(),
                cap,
            }
        }

        fn map(&self) -> RawMap<'_> {
            RawMap::new(
                &self.ctl,
                &self.words,
                self.cap,
                8,
                VALUES,
                Patience::DEFAULT,
            )
        }
    }

    fn key(k: u64) -> [u8; 8] {
        k.to_le_bytes()
    }

    fn insert(map: &RawMap<'_>, k: u64) -> Inserted {
        map.insert(&key(k), &k.to_ne_bytes(), false, |_| {})
            .unwrap()
    }

    fn get(map: &RawMap<'_>, k: u64) -> Option<u64> {
        map.get_with(&key(k), |v| u64::from_ne_bytes(v.try_into().unwrap()))
            .unwrap()
    }

    /// Every live key lies within its home's reach.
    fn assert_reaches_cover_every_key(map: &RawMap<'_>) {
        let mut buf = EntryBuf::new(map.probe_len());
        for idx in 0..map.capacity() {
            map.read(idx, &mut buf).unwrap();
            let e = map.parse(&buf);
            if e.state == LIVE {
                let home = map.start(e.key);
                let distance = idx.wrapping_sub(home) & map.mask;
                assert!(
                    distance <= map.reach(home),
                    "a key at distance {distance} from home {home}, whose reach is {}",
                    map.reach(home)
                );
            }
        }
    }

    /// `n` distinct keys sharing one home in a map of `cap` entries.
    fn same_home(map: &RawMap<'_>, n: usize) -> Vec<u64> {
        let home = map.start(&key(0));
        (0..)
            .filter(|&k| map.start(&key(k)) == home)
            .take(n)
            .collect()
    }

    #[test]
    fn churn_keeps_every_key_within_a_small_reach() {
        // Half full, then 20 times the capacity in distinct keys: the
        // reaches stay near the keys' real distances (before reaches, an
        // absent key walked all 1,024 entries after such churn; with
        // reaches that only grew, 6.3 on average).
        let heap = Heap::new(1024);
        let map = heap.map();
        let live = 512u64;
        for k in 0..live {
            assert_eq!(insert(&map, k), Inserted::New);
        }
        for k in live..live + 20 * 1024 {
            assert_eq!(insert(&map, k), Inserted::New, "key {k}");
            assert!(map.remove(&key(k - live), |_| {}).unwrap());
            if k % 1024 == 0 {
                assert_reaches_cover_every_key(&map);
            }
        }
        assert_reaches_cover_every_key(&map);
        let c = map.census().unwrap();
        assert_eq!((c.live, c.removed, c.empty), (512, 512, 0));
        let absent = c.mean_absent_walk(1024);
        let present = c.mean_present_walk();
        assert!(absent < 4.0, "{absent} entries per absent lookup: {c:?}");
        assert!(present < 4.0, "{present} entries per present lookup: {c:?}");
        assert!(c.max_reach < 64, "{c:?}");
        for k in 20 * 1024..20 * 1024 + live {
            assert_eq!(get(&map, k), Some(k));
        }
        for k in 0..1000 {
            assert_eq!(get(&map, u64::MAX - k), None);
        }
    }

    #[test]
    fn a_reach_grows_past_the_home_and_comes_back_down() {
        let heap = Heap::new(8);
        let map = heap.map();
        let ks = same_home(&map, 4);
        let home = map.start(&key(ks[0]));
        for &k in &ks[..3] {
            assert_eq!(insert(&map, k), Inserted::New);
        }
        assert_eq!(map.reach(home), 2, "three keys of one home: 0, 1, 2");
        // The farthest goes: the reach stays until a placement walks back.
        assert!(map.remove(&key(ks[2]), |_| {}).unwrap());
        assert!(map.remove(&key(ks[1]), |_| {}).unwrap());
        assert_eq!(map.reach(home), 2);
        assert_eq!(get(&map, ks[2]), None);
        // The next key of the home takes distance 1 and finds nothing of
        // its home at 2: the reach comes down to 1.
        assert_eq!(insert(&map, ks[3]), Inserted::New);
        assert_eq!(map.reach(home), 1);
        // Its home entry freed and taken again: the key at 1 keeps it at 1.
        assert!(map.remove(&key(ks[0]), |_| {}).unwrap());
        assert_eq!(insert(&map, ks[1]), Inserted::New);
        assert_eq!(map.reach(home), 1);
        assert_eq!(get(&map, ks[1]), Some(ks[1]));
        assert_eq!(get(&map, ks[3]), Some(ks[3]));
        // Both gone, a key that goes home brings the reach to 0.
        assert!(map.remove(&key(ks[3]), |_| {}).unwrap());
        assert!(map.remove(&key(ks[1]), |_| {}).unwrap());
        assert_eq!(insert(&map, ks[2]), Inserted::New);
        assert_eq!(map.reach(home), 0);
        assert_reaches_cover_every_key(&map);
    }

    #[test]
    fn an_inserter_killed_after_raising_a_reach_is_taken_over() {
        let heap = Heap::new(8);
        let map = heap.map();
        let ks = same_home(&map, 3);
        let home = map.start(&key(ks[0]));
        assert_eq!(insert(&map, ks[0]), Inserted::New);
        // An inserter of ks[1] locked the home, raised its reach to 1 and
        // died before publishing the entry it chose: the home's sequence
        // odd with a dead pid in its writer word, the entry still free.
        let seq = &heap.words[home * map.stride + ENTRY_REACH_WORDS];
        let writer = &heap.words[home * map.stride + ENTRY_REACH_WORDS + 1];
        let s = seq.load(Ordering::Relaxed);
        seq.store(s + 1, Ordering::Relaxed);
        writer.store(u64::from(crate::pid::dead_pid()), Ordering::Relaxed);
        heap.words[home * map.stride].store(1, Ordering::Relaxed);
        // Readers never notice: the published home is intact.
        assert_eq!(get(&map, ks[0]), Some(ks[0]));
        assert_eq!(get(&map, ks[1]), None);
        // The next inserter of that home takes the lock over and places its
        // key; both keys are found and the reach covers them.
        assert_eq!(insert(&map, ks[2]), Inserted::New);
        assert_eq!(insert(&map, ks[1]), Inserted::New);
        assert_eq!(map.reach(home), 2);
        for &k in &ks {
            assert_eq!(get(&map, k), Some(k));
        }
        assert_eq!(writer.load(Ordering::Relaxed), 0, "writer word cleared");
        assert_reaches_cover_every_key(&map);
    }

    #[test]
    fn an_updater_killed_mid_write_is_taken_over_on_both_paths() {
        for byte_path in [false, true] {
            let heap = Heap::new(8);
            let map = if byte_path {
                heap.map().on_byte_path()
            } else {
                heap.map()
            };
            assert_eq!(map.is_small(), !byte_path);
            assert_eq!(insert(&map, 5), Inserted::New);
            let home = map.start(&key(5));
            // An updater of key 5 locked its entry (version 1, so it fills
            // copy 0), wrote half of a value there and died: the sequence
            // odd, a dead pid in the writer word, the spare copy torn.
            let base = home * map.stride + ENTRY_REACH_WORDS;
            let (seq, writer) = (&heap.words[base], &heap.words[base + 1]);
            assert_eq!(seq.load(Ordering::Relaxed), 2);
            seq.store(3, Ordering::Relaxed);
            writer.store(u64::from(crate::pid::dead_pid()), Ordering::Relaxed);
            heap.words[base + 2].store(REMOVED, Ordering::Relaxed);
            heap.words[base + 2 + 3].store(999, Ordering::Relaxed);
            // Readers never notice.
            assert_eq!(get(&map, 5), Some(5));
            // The next update takes the lock over, starts from the last
            // published value and publishes the next version.
            let mut saw = None;
            let ran = map
                .update(&key(5), None, |old, room| {
                    saw = Some(u64::from_ne_bytes(old.try_into().unwrap()));
                    room.copy_from_slice(&6u64.to_ne_bytes());
                    Ok(8)
                })
                .unwrap();
            assert!(ran);
            assert_eq!(saw, Some(5), "the dead writer's half value is never seen");
            assert_eq!(get(&map, 5), Some(6));
            assert_eq!(seq.load(Ordering::Relaxed), 4);
            assert_eq!(writer.load(Ordering::Relaxed), 0, "writer word cleared");
            assert_eq!(map.len(), 1);
        }
    }

    /// `update_fixed` of key `k` (one whole word) by +1: the new value.
    fn update_typed(map: &RawMap<'_>, k: u64) -> Option<u64> {
        let word = u64::from_ne_bytes(key(k));
        map.update_fixed(&[word], |v: u64| v + 1).unwrap()
    }

    #[test]
    fn the_typed_path_updates_as_update_does_and_falls_back_elsewhere() {
        let heap = Heap::new(8);
        let map = heap.map();
        // Keys of one home: the first at home, the others walked to.
        let keys = same_home(&map, 3);
        for &k in &keys {
            assert_eq!(insert(&map, k), Inserted::New);
        }
        for &k in &keys {
            assert_eq!(update_typed(&map, k), Some(k + 1));
            assert_eq!(get(&map, k), Some(k + 1));
        }
        // Absent: no call, nothing written.
        let absent = (0..)
            .find(|k| !keys.contains(k) && get(&map, *k).is_none())
            .unwrap();
        let never = |_: u64| -> u64 { panic!("called for an absent key") };
        let word = u64::from_ne_bytes(key(absent));
        assert_eq!(map.update_fixed(&[word], never).unwrap(), None);
        assert_eq!(map.len(), 3);
        // A garbage key length past the longest key reads clamped, as on
        // the byte path: the entry still holds the key.
        let home = map.start(&key(keys[0]));
        let base = home * map.stride + ENTRY_REACH_WORDS;
        let copy = base
            + HEADER_WORDS
            + (heap.words[base].load(Ordering::Relaxed) / 2 % 2) as usize * map.data_words();
        heap.words[copy + 1].store(u64::MAX, Ordering::Relaxed);
        assert_eq!(update_typed(&map, keys[0]), Some(keys[0] + 2));
        // The byte path, and entries with a longer key room: the general
        // update, same answers.
        assert_eq!(
            update_typed(&map.on_byte_path(), keys[1]),
            Some(keys[1] + 2)
        );
        let ctl = MapControl::new(1, 16);
        let words: Vec<AtomicU64> = (0..8 * entry_words(16, VALUES))
            .map(|_| AtomicU64::new(0))
            .collect();
        let wide = RawMap::new(&ctl, &words, 8, 16, VALUES, Patience::DEFAULT);
        assert_eq!(insert(&wide, 7), Inserted::New);
        assert_eq!(update_typed(&wide, 7), Some(8));
        assert_eq!(get(&wide, 7), Some(8));
        assert_eq!(update_typed(&wide, 9), None);
        // A byte-valued map: the general update, storing the value's own
        // 8 bytes (not its whole 32-byte room).
        let ctl = MapControl::new(1, 16);
        let words: Vec<AtomicU64> = (0..8 * entry_words(16, Value::Bytes(32)))
            .map(|_| AtomicU64::new(0))
            .collect();
        let bytes = RawMap::new(&ctl, &words, 8, 16, Value::Bytes(32), Patience::DEFAULT);
        let k = key(3);
        assert_eq!(
            bytes
                .insert(&k, &5u64.to_ne_bytes(), false, |_| {})
                .unwrap(),
            Inserted::New
        );
        let word = u64::from_ne_bytes(k);
        assert_eq!(
            bytes.update_fixed(&[word], |v: u64| v + 1).unwrap(),
            Some(6)
        );
        let mut out = [0u8; 32];
        assert_eq!(bytes.get(&k, &mut out).unwrap(), Some(8));
        assert_eq!(out[..8], 6u64.to_ne_bytes());
    }

    #[test]
    fn an_updater_killed_mid_write_is_taken_over_on_the_typed_path() {
        let heap = Heap::new(8);
        let map = heap.map();
        assert_eq!(insert(&map, 5), Inserted::New);
        let home = map.start(&key(5));
        // As on the other paths: a writer died inside, the spare copy torn.
        let base = home * map.stride + ENTRY_REACH_WORDS;
        let (seq, writer) = (&heap.words[base], &heap.words[base + 1]);
        assert_eq!(seq.load(Ordering::Relaxed), 2);
        seq.store(3, Ordering::Relaxed);
        writer.store(u64::from(crate::pid::dead_pid()), Ordering::Relaxed);
        heap.words[base + 2].store(REMOVED, Ordering::Relaxed);
        heap.words[base + 2 + 3].store(999, Ordering::Relaxed);
        assert_eq!(
            update_typed(&map, 5),
            Some(6),
            "the half value is never seen"
        );
        assert_eq!(get(&map, 5), Some(6));
        assert_eq!(seq.load(Ordering::Relaxed), 4);
        assert_eq!(writer.load(Ordering::Relaxed), 0, "writer word cleared");
    }

    #[test]
    fn the_word_path_matches_keys_as_the_byte_path_does() {
        // Byte-string keys of every length up to the longest (24 bytes:
        // three key words, a whole one and partial ones), on small entries
        // (2 + 3 + 1 words) and forced onto the byte path: the same
        // answers, and each finds what the other wrote.
        let ctl = MapControl::new(2, 24);
        let words: Vec<AtomicU64> = (0..32 * entry_words(24, VALUES))
            .map(|_| AtomicU64::new(0))
            .collect();
        let words_map = RawMap::new(&ctl, &words, 32, 24, VALUES, Patience::DEFAULT);
        let bytes_map = words_map.on_byte_path();
        assert!(words_map.is_small() && !bytes_map.is_small());
        let keys: Vec<Vec<u8>> = (0..=24)
            .map(|n| (0..n as u8).map(|b| b ^ 0xa5).collect())
            .collect();
        for (i, k) in keys.iter().enumerate() {
            let m = if i % 2 == 0 { words_map } else { bytes_map };
            let v = (i as u64).to_ne_bytes();
            assert_eq!(
                m.insert(k, &v, false, |_| {}).unwrap(),
                Inserted::New,
                "{i}"
            );
        }
        for m in [words_map, bytes_map] {
            for (i, k) in keys.iter().enumerate() {
                let got = m.get_with(k, |v| u64::from_ne_bytes(v.try_into().unwrap()));
                assert_eq!(got.unwrap(), Some(i as u64), "key of {i} bytes");
                // A key one byte longer or with its last byte changed is
                // another key.
                let mut other = k.clone();
                match other.last_mut() {
                    Some(b) => *b ^= 1,
                    None => other.push(0x5a),
                }
                if !keys.contains(&other) {
                    assert_eq!(m.get_with(&other, |_| ()).unwrap(), None, "{other:?}");
                }
            }
        }
        // A garbage key length word is clamped to the longest key on both
        // paths: the 24-byte key still matches.
        let idx = (0..32)
            .find(|&idx| {
                let mut buf = EntryBuf::new(words_map.probe_len());
                words_map.read(idx, &mut buf).unwrap();
                words_map.parse(&buf).key == &keys[24][..]
            })
            .unwrap();
        let seq = words[idx * words_map.stride + ENTRY_REACH_WORDS].load(Ordering::Relaxed);
        let copy = (seq / 2 % 2) as usize;
        let data = words_map.data_words;
        let len_word = idx * words_map.stride + ENTRY_REACH_WORDS + 2 + copy * data + 1;
        words[len_word].store(u64::MAX, Ordering::Relaxed);
        for m in [words_map, bytes_map] {
            assert_eq!(m.get_with(&keys[24], |_| ()).unwrap(), Some(()));
        }
    }

    #[test]
    fn a_garbage_reach_is_clamped_and_mended_by_the_next_placement() {
        let heap = Heap::new(8);
        let map = heap.map();
        let ks = same_home(&map, 2);
        let home = map.start(&key(ks[0]));
        assert_eq!(insert(&map, ks[0]), Inserted::New);
        // A peer's garbage: lookups walk the whole table at most, and find
        // what is there.
        heap.words[home * map.stride].store(u64::MAX, Ordering::Relaxed);
        assert_eq!(map.reach(home), 7);
        assert_eq!(get(&map, ks[0]), Some(ks[0]));
        assert_eq!(get(&map, ks[1]), None);
        assert_eq!(map.census().unwrap().max_reach, 7);
        // The next placement of the home walks back and sets it right.
        assert_eq!(insert(&map, ks[1]), Inserted::New);
        assert_eq!(map.reach(home), 1);
        // A reach too short hides the keys beyond it (the file is the
        // peer's to break), never reads outside the table.
        heap.words[home * map.stride].store(0, Ordering::Relaxed);
        assert_eq!(get(&map, ks[1]), None);
        assert_eq!(get(&map, ks[0]), Some(ks[0]));
    }
}
