//! [`Map<K, V>`]: a fixed-capacity hash table in a shared file — the job of
//! `Manager().dict()` without the server process, the proxy round trip, or
//! the lock around `d['count'] -= 1`.
//!
//! Each entry is a seqlock over its key and value: readers copy an entry
//! whole and never block writers, writers of different entries never
//! meet, and there is no table-wide lock.
//!
//! An entry, once bound to a key, stays bound to that key: removing the key
//! marks the entry removed, and inserting the same key again revives it in
//! place (that is what keeps two processes inserting the same key at once
//! from creating it twice). The price: the table holds at most `capacity`
//! distinct keys over its lifetime; a full table is [`MapError::Full`],
//! never a hang or an overwrite.
//!
//! Keys and lengths read from the mapping are untrusted: a key length is
//! clamped to the maximum, probing visits at most `capacity` entries, and a
//! garbage state reads as "some other key". The algorithm is documented
//! with its code in `src/raw/map.rs`.

use std::path::Path;

pub use crate::error::MapError;
use crate::error::OpenError;
use crate::handle::{Mapped, Shape};
use crate::layout::Kind;
use crate::pod::{Payload, TypeInfo};
use crate::raw::map::{Geometry, Inserted, MapControl, RawMap, entry_words, key_room};
pub use crate::raw::map::{MAX_KEY_LEN, MAX_VALUE_SIZE};
use crate::raw::seqlock::Patience;
use crate::region::{CreateOptions, Expect, Region};
use crate::sync::AtomicU64;

mod private {
    pub trait Sealed {}
}

/// A key type of [`Map`]: `u64`, or byte strings (`str`, `[u8]`) up to a
/// maximum length chosen at creation. `str` and `[u8]` keys are the same
/// bytes: a map made with one can be opened with the other.
pub trait Key: private::Sealed {
    /// Stored in the file, checked at open: 1 for `u64`, 2 for byte strings.
    const KIND: u32;
    /// The key's part of the map's payload name (`map<{key},{value}>`):
    /// `"u64"`, or `"bytes"` for byte strings.
    const NAME: &'static str;
    /// The maximum key length used when none is given.
    const DEFAULT_MAX_LEN: usize;
    /// What [`Map::snapshot`] returns keys as.
    type Owned;
    /// Runs `f` on the key's bytes.
    fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R;
    /// The key back from its bytes (invalid UTF-8 replaced for `str`).
    fn decode(bytes: &[u8]) -> Self::Owned;
}

impl private::Sealed for u64 {}
impl Key for u64 {
    const KIND: u32 = 1;
    const NAME: &'static str = "u64";
    const DEFAULT_MAX_LEN: usize = 8;
    type Owned = u64;
    fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        f(&self.to_le_bytes())
    }
    fn decode(bytes: &[u8]) -> u64 {
        let mut b = [0u8; 8];
        let n = bytes.len().min(8);
        b[..n].copy_from_slice(&bytes[..n]);
        u64::from_le_bytes(b)
    }
}

impl private::Sealed for str {}
impl Key for str {
    const KIND: u32 = 2;
    const NAME: &'static str = "bytes";
    const DEFAULT_MAX_LEN: usize = 32;
    type Owned = String;
    fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        f(self.as_bytes())
    }
    fn decode(bytes: &[u8]) -> String {
        String::from_utf8_lossy(bytes).into_owned()
    }
}

impl private::Sealed for [u8] {}
impl Key for [u8] {
    const KIND: u32 = 2;
    const NAME: &'static str = "bytes";
    const DEFAULT_MAX_LEN: usize = 32;
    type Owned = Vec<u8>;
    fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        f(self)
    }
    fn decode(bytes: &[u8]) -> Vec<u8> {
        bytes.to_vec()
    }
}

/// How a new map file is made.
#[derive(Clone, Debug, Default)]
pub struct MapOptions {
    max_key_len: Option<usize>,
    file: CreateOptions,
}

impl MapOptions {
    /// The key type's default maximum length, mode 0600, no label.
    pub fn new() -> Self {
        Self::default()
    }

    /// The longest byte-string key (1 to 256; rounded up to a multiple of
    /// 8, which is the real maximum). Ignored for `u64` keys.
    pub fn max_key_len(mut self, len: usize) -> Self {
        self.max_key_len = Some(len);
        self
    }

    /// The file's mode and label.
    pub fn file(mut self, file: CreateOptions) -> Self {
        self.file = file;
        self
    }
}

/// A fixed-capacity hash map in a file, shared by any number of processes:
/// `Manager().dict()` with no server process and no lock.
///
/// Values are any [`Payload`] type, read and written whole: [`get`](Map::get)
/// never returns a torn value and never blocks a writer, and
/// [`update`](Map::update) is an atomic read-modify-write of the whole value
/// — the answer both to `d['count'] -= 1` (wrong without a lock in Python)
/// and to the nested-dict pitfall (a proxy hands back a copy, so
/// `d['test'][i] = i` is lost): update the struct in place instead.
///
/// # Capacity
///
/// An entry, once a key takes it, stays bound to that key for the life of
/// the file (that is what makes inserts race-free without a lock):
/// removing a key frees its value, not its entry, and inserting it again
/// reuses the same entry. So the capacity bounds the number of *distinct*
/// keys ever inserted, not the number live at once; a full table is
/// [`MapError::Full`], never an overwrite.
/// Size it for the key set, with room to spare (probing is linear).
///
/// # Processes that die
///
/// Each entry is a seqlock with two copies of its value: a process killed
/// in the middle of an insert or update damages only the copy nobody
/// reads, so `get` keeps returning the last complete value, and the next
/// writer of that entry takes the dead writer's lock over.
///
/// # Examples
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("dict");
/// use mmring::map::Map;
///
/// let d = Map::<str, i64>::create(&path, 64)?;
/// d.insert("count", 20_000)?;
/// // ... in each of 20 processes, 1000 times:
/// d.update("count", |n| n - 1)?;
/// assert_eq!(d.get("count")?, Some(19_999));
/// assert_eq!(d.remove("count")?, Some(19_999));
/// assert_eq!(d.get("count")?, None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Map<K: Key + ?Sized, V: Payload> {
    mapped: Mapped<MapShape<K, V>>,
    /// How long an operation waits for an entry another process is
    /// writing (this handle's own).
    patience: Patience,
}

/// What a [`Map`] is generic over, as a marker: keys are borrowed, values
/// move in and out (so the map is `Send`/`Sync` whatever `K` and `V` are).
type Types<K, V> = (fn(&K), fn(V) -> V);

/// A map file of `K` keys and `V` values: the body is the control words,
/// then the entries.
struct MapShape<K: ?Sized, V>(std::marker::PhantomData<Types<K, V>>);

/// What `create` and `open_or_create` ask for.
struct MapSpec {
    capacity: usize,
    /// The longest key asked for (before rounding up to whole words).
    key_len: usize,
}

impl MapSpec {
    /// The longest key a map made for this spec takes: rounded up to a
    /// multiple of 8.
    fn max_key_len(&self) -> usize {
        self.key_len.div_ceil(8) * 8
    }
}

impl<K: Key + ?Sized, V: Payload> Shape for MapShape<K, V> {
    type Spec = MapSpec;
    type Geometry = Geometry;
    type Head = MapControl;
    type Elem = AtomicU64;

    fn expect(_: Option<&MapSpec>) -> Expect {
        Expect {
            kind: Kind::Map,
            elem: Map::<K, V>::payload(),
            any_size: false,
        }
    }

    fn capacity(spec: &MapSpec) -> u64 {
        spec.capacity as u64
    }

    fn slot_size(spec: &MapSpec) -> u64 {
        // 0 (invalid) for an out-of-range key length: create reports it.
        if spec.key_len == 0 || spec.key_len > MAX_KEY_LEN {
            return 0;
        }
        (entry_words(spec.key_len, size_of::<V>()) * 8) as u64
    }

    fn init(region: &Region, spec: &MapSpec) {
        region.body::<MapControl>(0, 1)[0].init(K::KIND, spec.max_key_len() as u32);
    }

    fn geometry(region: &Region) -> Result<Geometry, OpenError> {
        let desc = region.descriptor();
        let (kind, max_key) = region.body::<MapControl>(0, 1)[0].key_config();
        if kind != K::KIND {
            return Err(OpenError::WrongKind {
                path: region.path().to_path_buf(),
                expected: format!("map with {}", key_kind_name(K::KIND)),
                found: format!("map with {}", key_kind_name(kind)),
            });
        }
        let capacity = desc.capacity as usize;
        let stride = desc.slot_size as usize / 8;
        // The key length the entries really have room for (the control word
        // could be garbage; the validated descriptor is not).
        let key_room = key_room(stride, size_of::<V>());
        let corrupt = || OpenError::CorruptHeader {
            path: region.path().to_path_buf(),
            what: format!(
                "maximum key length {max_key} does not fit entries of {key_room} key bytes"
            ),
        };
        if max_key == 0 || entry_words(max_key as usize, size_of::<V>()) != stride {
            return Err(corrupt());
        }
        // The validated descriptor's capacity is a power of two and its
        // entries are those of `key_room` key bytes (the kind's body
        // layout): never refused here.
        Geometry::new(capacity, key_room, size_of::<V>())
            .filter(|g| g.stride() == stride)
            .ok_or_else(corrupt)
    }

    fn elems(geometry: &Geometry) -> usize {
        geometry.words()
    }

    fn matches(found: &Geometry, spec: &MapSpec, path: &Path) -> Result<(), OpenError> {
        if found.capacity() != spec.capacity {
            return Err(OpenError::InvalidCapacity {
                path: path.to_path_buf(),
                expected: format!("capacity {} as asked", spec.capacity),
                found: found.capacity() as u64,
            });
        }
        let asked = spec.max_key_len();
        if found.max_key_len() != asked {
            return Err(OpenError::InvalidOption {
                path: path.to_path_buf(),
                what: format!(
                    "maximum key length {asked} bytes as asked, found a map with {}",
                    found.max_key_len()
                ),
            });
        }
        Ok(())
    }
}

impl<K: Key + ?Sized, V: Payload> std::fmt::Debug for Map<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Map")
            .field("path", &self.mapped.region().path())
            .field("capacity", &self.capacity())
            .field("len", &self.len())
            .finish()
    }
}

fn key_kind_name(kind: u32) -> String {
    match kind {
        1 => "u64 keys".into(),
        2 => "byte-string keys".into(),
        other => format!("unknown key kind {other}"),
    }
}

impl<K: Key + ?Sized, V: Payload> Map<K, V> {
    /// The map's payload identity: the value's size and alignment, and
    /// the name `map<{K},{V}>` (`map<u64,i64>`, `map<bytes,[u8; 16]>`), so
    /// that both types are checked at open.
    pub fn payload() -> TypeInfo {
        let mut name = format!("map<{},", K::NAME);
        V::payload_name(&mut name);
        name.push('>');
        TypeInfo::named(
            &name,
            u32::try_from(size_of::<V>()).unwrap_or(u32::MAX),
            u32::try_from(align_of::<V>()).unwrap_or(u32::MAX),
        )
    }

    fn wrap(mapped: Mapped<MapShape<K, V>>) -> Self {
        Self {
            mapped,
            patience: Patience::DEFAULT,
        }
    }

    /// The raw map over the mapping, built per call from what was read at
    /// open: pointer and field copies only.
    #[inline(always)]
    fn raw(&self) -> RawMap<'_> {
        RawMap::from_parts(
            self.mapped.head(),
            self.mapped.elems(),
            self.mapped.geometry(),
            self.patience,
        )
    }

    fn spec(capacity: usize, opts: &MapOptions) -> MapSpec {
        let key_len = if K::KIND == <u64 as Key>::KIND {
            8
        } else {
            opts.max_key_len.unwrap_or(K::DEFAULT_MAX_LEN)
        };
        MapSpec { capacity, key_len }
    }

    /// Creates a map file with `capacity` entries (a power of two).
    ///
    /// # Errors
    ///
    /// [`OpenError::InvalidCapacity`], [`OpenError::UnsupportedPayload`] (a
    /// value over 4 KiB, a key length out of range); the other
    /// [`OpenError`]s as for any create.
    pub fn create(path: impl AsRef<Path>, capacity: usize) -> Result<Self, OpenError> {
        Self::create_with(path, capacity, &MapOptions::default())
    }

    /// [`Map::create`] with options (maximum key length, mode, label).
    ///
    /// # Errors
    ///
    /// As [`Map::create`].
    pub fn create_with(
        path: impl AsRef<Path>,
        capacity: usize,
        opts: &MapOptions,
    ) -> Result<Self, OpenError> {
        Mapped::create(path, &Self::spec(capacity, opts), &opts.file).map(Self::wrap)
    }

    /// Opens an existing map file.
    ///
    /// # Errors
    ///
    /// The validation errors of any open; [`OpenError::WrongPayload`] for a
    /// map with another key or value type.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        Mapped::open(path).map(Self::wrap)
    }

    /// Opens the map at `path`, creating it (empty, with `capacity`
    /// entries and `opts`) if there is none. Racing processes all end up
    /// with the same map (one creator wins the name, the others open its
    /// file).
    ///
    /// Opening an existing map never resets it: its keys and values are
    /// kept; `opts` (mode, label, maximum key length) apply only when the
    /// file is created.
    ///
    /// # Errors
    ///
    /// As [`Map::open`] and [`Map::create`]; if the existing map has
    /// another shape (nothing else is changed), naming both:
    /// [`OpenError::InvalidCapacity`] for another capacity,
    /// [`OpenError::InvalidOption`] for another maximum key length.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("dict");
    /// use mmring::map::{Map, MapOptions};
    ///
    /// let d = Map::<str, u64>::open_or_create(&path, 16, &MapOptions::new())?;
    /// d.insert("seen", 1)?;
    /// // Any process, later: the same map, its keys kept.
    /// let again = Map::<str, u64>::open_or_create(&path, 16, &MapOptions::new())?;
    /// assert_eq!(again.get("seen")?, Some(1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_or_create(
        path: impl AsRef<Path>,
        capacity: usize,
        opts: &MapOptions,
    ) -> Result<Self, OpenError> {
        let spec = Self::spec(capacity, opts);
        if MapShape::<K, V>::slot_size(&spec) == 0 {
            // A key length out of range: the create reports it (before it
            // touches the file system), whether or not a map exists.
            return Self::create_with(path, capacity, opts);
        }
        Mapped::open_or_create(path, &spec, &opts.file).map(Self::wrap)
    }

    /// Sets how long an operation waits for an entry another process is
    /// writing (default 5 s; a writer that died is reported at once).
    pub fn set_patience(&mut self, patience: Patience) {
        self.patience = patience;
    }

    fn value(bytes: &[u8]) -> V {
        bytemuck::pod_read_unaligned(&bytes[..size_of::<V>()])
    }

    /// `key`'s value, read whole.
    ///
    /// # Errors
    ///
    /// [`MapError::KeyTooLong`]; [`MapError::Busy`] if an entry stayed
    /// locked by a dead or stalled writer.
    pub fn get(&self, key: &K) -> Result<Option<V>, MapError> {
        let mut out = V::zeroed();
        let live = key.with_bytes(|k| self.raw().get(k, bytemuck::bytes_of_mut(&mut out)))?;
        Ok(live.then_some(out))
    }

    /// Whether `key` is in the map.
    ///
    /// # Errors
    ///
    /// As [`Map::get`].
    pub fn contains_key(&self, key: &K) -> Result<bool, MapError> {
        self.get(key).map(|v| v.is_some())
    }

    /// Sets `key` to `value`; the previous value, if any.
    ///
    /// # Errors
    ///
    /// [`MapError::Full`] for a new key in a full table (nothing is
    /// overwritten); as [`Map::get`].
    pub fn insert(&self, key: &K, value: V) -> Result<Option<V>, MapError> {
        let mut old = V::zeroed();
        let r = key.with_bytes(|k| {
            self.raw().insert(
                k,
                bytemuck::bytes_of(&value),
                bytemuck::bytes_of_mut(&mut old),
                false,
            )
        })?;
        Ok((r == Inserted::Replaced).then_some(old))
    }

    /// Sets `key` to `value` only if it is absent: `None` if inserted, or
    /// the value already there.
    ///
    /// # Errors
    ///
    /// As [`Map::insert`].
    pub fn insert_if_absent(&self, key: &K, value: V) -> Result<Option<V>, MapError> {
        let mut old = V::zeroed();
        let r = key.with_bytes(|k| {
            self.raw().insert(
                k,
                bytemuck::bytes_of(&value),
                bytemuck::bytes_of_mut(&mut old),
                true,
            )
        })?;
        Ok((r == Inserted::Kept).then_some(old))
    }

    /// Atomically replaces `key`'s value with `f(value)` and returns the new
    /// value, or `None` (and no call) if the key is absent. `f` runs once,
    /// with the entry locked against other writers: keep it short.
    ///
    /// # Errors
    ///
    /// As [`Map::get`].
    pub fn update(&self, key: &K, f: impl FnOnce(V) -> V) -> Result<Option<V>, MapError> {
        let mut f = Some(f);
        let mut new = None;
        key.with_bytes(|k| {
            self.raw().update(k, None, |bytes| {
                if let Some(f) = f.take() {
                    let v = f(Self::value(bytes));
                    bytes.copy_from_slice(bytemuck::bytes_of(&v));
                    new = Some(v);
                }
            })
        })?;
        Ok(new)
    }

    /// Atomically sets `key` to `f(value)`, or to `f(init)` if it is absent;
    /// the new value.
    ///
    /// # Errors
    ///
    /// As [`Map::insert`].
    pub fn update_or_insert(
        &self,
        key: &K,
        init: V,
        f: impl FnOnce(V) -> V,
    ) -> Result<V, MapError> {
        let mut f = Some(f);
        let mut new = init;
        key.with_bytes(|k| {
            self.raw()
                .update(k, Some(bytemuck::bytes_of(&init)), |bytes| {
                    if let Some(f) = f.take() {
                        let v = f(Self::value(bytes));
                        bytes.copy_from_slice(bytemuck::bytes_of(&v));
                        new = v;
                    }
                })
        })?;
        Ok(new)
    }

    /// Removes `key`; its value, if it was there.
    ///
    /// # Errors
    ///
    /// As [`Map::get`].
    pub fn remove(&self, key: &K) -> Result<Option<V>, MapError> {
        let mut old = V::zeroed();
        let was = key.with_bytes(|k| self.raw().remove(k, bytemuck::bytes_of_mut(&mut old)))?;
        Ok(was.then_some(old))
    }

    /// Every live key and value, each read whole (not one atomic snapshot of
    /// the whole table while others write).
    ///
    /// # Errors
    ///
    /// [`MapError::Busy`] if an entry stayed locked.
    pub fn snapshot(&self) -> Result<Vec<(K::Owned, V)>, MapError> {
        let mut out = Vec::new();
        self.raw()
            .for_each(|k, v| out.push((K::decode(k), Self::value(v))))?;
        Ok(out)
    }

    /// Live keys (out of date as soon as it returns).
    pub fn len(&self) -> usize {
        self.raw().len()
    }

    /// Whether no key is live (out of date as soon as it returns).
    pub fn is_empty(&self) -> bool {
        self.raw().is_empty()
    }

    /// Number of entries: the most distinct keys the map can ever hold.
    pub fn capacity(&self) -> usize {
        self.raw().capacity()
    }

    /// The longest key accepted.
    pub fn max_key_len(&self) -> usize {
        if K::KIND == <u64 as Key>::KIND {
            8
        } else {
            self.raw().max_key_len()
        }
    }

    /// The mapped file.
    pub fn region(&self) -> &Region {
        self.mapped.region()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_dict_behaves_like_a_dict() {
        let dir = tempfile::tempdir().unwrap();
        let d = Map::<str, i64>::create(dir.path().join("d"), 8).unwrap();
        assert_eq!(d.get("a").unwrap(), None);
        assert_eq!(d.insert("a", 1).unwrap(), None);
        assert_eq!(d.insert("a", 2).unwrap(), Some(1));
        assert_eq!(d.insert_if_absent("a", 9).unwrap(), Some(2));
        assert_eq!(d.insert_if_absent("b", 3).unwrap(), None);
        assert_eq!(d.update("a", |v| v * 10).unwrap(), Some(20));
        assert_eq!(d.update("zz", |v| v * 10).unwrap(), None);
        assert_eq!(d.update_or_insert("c", 100, |v| v + 1).unwrap(), 101);
        assert_eq!(d.len(), 3);
        assert_eq!(d.remove("b").unwrap(), Some(3));
        assert_eq!(d.remove("b").unwrap(), None);
        assert!(!d.contains_key("b").unwrap());
        assert_eq!(d.len(), 2);
        let mut snap = d.snapshot().unwrap();
        snap.sort();
        assert_eq!(snap, [("a".to_string(), 20), ("c".to_string(), 101)]);
        // A removed key comes back in its own entry.
        assert_eq!(d.insert("b", 4).unwrap(), None);
        assert_eq!(d.get("b").unwrap(), Some(4));
        let long = "k".repeat(33);
        assert!(matches!(
            d.insert(&long, 1),
            Err(MapError::KeyTooLong { len: 33, max: 32 })
        ));
    }

    #[test]
    fn a_full_table_is_an_error_and_stays_usable() {
        let dir = tempfile::tempdir().unwrap();
        let d = Map::<u64, u64>::create(dir.path().join("d"), 4).unwrap();
        for k in 0..4 {
            d.insert(&k, k * 2).unwrap();
        }
        assert_eq!(d.insert(&99, 1), Err(MapError::Full { capacity: 4 }));
        assert_eq!(
            d.update_or_insert(&98, 1, |v| v),
            Err(MapError::Full { capacity: 4 })
        );
        assert_eq!(d.remove(&77).unwrap(), None);
        for k in 0..4 {
            assert_eq!(d.get(&k).unwrap(), Some(k * 2));
            assert_eq!(d.update(&k, |v| v + 1).unwrap(), Some(k * 2 + 1));
        }
        assert_eq!(d.get(&99).unwrap(), None);
        let mut keys: Vec<u64> = d.snapshot().unwrap().into_iter().map(|(k, _)| k).collect();
        keys.sort();
        assert_eq!(keys, [0, 1, 2, 3]);
    }

    #[test]
    fn key_types_and_sizes_are_checked_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d");
        let d =
            Map::<str, [u32; 3]>::create_with(&p, 16, &MapOptions::new().max_key_len(10)).unwrap();
        assert_eq!(d.max_key_len(), 16, "rounded up to whole words");
        d.insert("hello", [1, 2, 3]).unwrap();
        let bytes = Map::<[u8], [u32; 3]>::open(&p).unwrap();
        assert_eq!(bytes.get(b"hello").unwrap(), Some([1, 2, 3]));
        assert!(matches!(
            Map::<u64, [u32; 3]>::open(&p),
            Err(OpenError::WrongPayload { .. })
        ));
        assert_eq!(
            Map::<str, [u32; 3]>::payload().name(),
            "map<bytes,[u32; 3]>"
        );
        assert_eq!(
            Map::<[u8], [u32; 3]>::payload().name(),
            "map<bytes,[u32; 3]>"
        );
        assert_eq!(
            Map::<u64, i64>::payload().to_string(),
            "map<u64,i64> (8 B, align 8)"
        );
        assert!(matches!(
            Map::<str, u64>::open(&p),
            Err(OpenError::WrongPayload { .. })
        ));
        assert!(matches!(
            Map::<str, u8>::create(dir.path().join("z"), 3),
            Err(OpenError::InvalidCapacity { .. })
        ));
        assert!(matches!(
            Map::<str, u8>::create_with(dir.path().join("y"), 4, &MapOptions::new().max_key_len(0)),
            Err(OpenError::UnsupportedPayload { .. })
        ));
    }

    #[test]
    fn threads_counting_down_one_key_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d");
        let d = Map::<str, i64>::create(&p, 16).unwrap();
        d.insert("count", 4000).unwrap();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    let d = Map::<str, i64>::open(&p).unwrap();
                    for _ in 0..1000 {
                        d.update("count", |v| v - 1).unwrap();
                    }
                });
            }
        });
        assert_eq!(d.get("count").unwrap(), Some(0));
    }
}
