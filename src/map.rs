//! [`Map<K, V>`] and [`ByteMap<K>`]: fixed-capacity hash tables in a
//! shared file — the job of `Manager().dict()` without the server process,
//! the proxy round trip, or the lock around `d['count'] -= 1`.
//!
//! Each entry is a seqlock over its key and value: readers copy an entry
//! whole and never block writers, writers of different entries never
//! meet, and there is no table-wide lock. [`Map`] holds fixed-size
//! [`Payload`] values; [`ByteMap`] holds byte strings of up to a maximum
//! length chosen at creation (pickled objects, UTF-8 text, records of
//! varying length), read whole and never torn all the same.
//!
//! Capacity bounds the keys present **at once**: a removed key's entry is
//! free for any other key. A new key is placed under its home entry's lock
//! (the first entry of its probe sequence), so two processes inserting the
//! same key at once never create it twice; a reader racing a remove and a
//! reuse of the same entry checks the key and reads the value in one
//! consistent copy, so it never sees another key's value.
//!
//! What churn costs: a removed entry becomes a tombstone, never empty
//! again, and a lookup of an **absent** key walks past tombstones up to an
//! empty entry; in a table that has seen many more keys than its capacity
//! come and go, that is most of the table (present keys are unaffected).
//! Size the table with room to spare.
//!
//! Keys and lengths read from the mapping are untrusted: a key or value
//! length is clamped to its maximum, probing visits at most `capacity`
//! entries, and a garbage state reads as "some other key". The algorithm
//! is documented with its code in `src/raw/map.rs`.

use std::path::Path;

pub use crate::error::MapError;
use crate::error::OpenError;
use crate::handle::{Mapped, Shape};
use crate::layout::Kind;
use crate::pod::{Payload, TypeInfo};
use crate::raw::map::{Geometry, Inserted, MapControl, RawMap, Value, entry_words, key_room};
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
/// The capacity bounds the keys present at once: removing a key frees its
/// entry for any other key, so a map of 1,024 entries can see millions of
/// distinct keys come and go. A full table (every entry holding a key at
/// one instant) is [`MapError::Full`], never an overwrite. Size it with
/// room to spare: probing is linear, and a lookup of an absent key walks
/// past the tombstones that removed keys leave (see the [module
/// docs](crate::map)).
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
    mapped: Mapped<MapShape<K, Fixed<V>>>,
    /// How long an operation waits for an entry another process is
    /// writing (this handle's own).
    patience: Patience,
}

/// What a map is generic over, as a marker: keys are borrowed, values
/// move in and out (so the map is `Send`/`Sync` whatever `K` and `V` are).
type Types<K, V> = (fn(&K), fn(V) -> V);

/// A map file of `K` keys and values of `V` ([`Fixed`] or [`ByteValues`]):
/// the body is the control words, then the entries.
struct MapShape<K: ?Sized, V>(std::marker::PhantomData<Types<K, V>>);

/// The values of a [`Map<K, V>`]: `V`, fixed-size.
struct Fixed<V>(std::marker::PhantomData<fn(V) -> V>);

/// The values of a [`ByteMap`]: byte strings up to a maximum length.
struct ByteValues;

/// What a map's shape needs to know of its values.
trait Values {
    /// The value part of the payload name, its size and alignment, for a
    /// spec's maximum value length.
    fn payload<K: Key + ?Sized>(max_value_len: usize) -> TypeInfo;
    /// Whether a plain `open` takes any value size (the file's own).
    const ANY_SIZE: bool;
    /// The values of a validated file whose payload size is `elem_size`.
    fn value(elem_size: usize) -> Value;
}

impl<V: Payload> Values for Fixed<V> {
    fn payload<K: Key + ?Sized>(_: usize) -> TypeInfo {
        Map::<K, V>::payload()
    }
    const ANY_SIZE: bool = false;
    fn value(_: usize) -> Value {
        Value::Fixed(size_of::<V>())
    }
}

impl Values for ByteValues {
    fn payload<K: Key + ?Sized>(max_value_len: usize) -> TypeInfo {
        ByteMap::<K>::payload(max_value_len)
    }
    const ANY_SIZE: bool = true;
    fn value(elem_size: usize) -> Value {
        Value::Bytes(elem_size)
    }
}

/// What `create` and `open_or_create` ask for.
struct MapSpec {
    capacity: usize,
    /// The longest key asked for (before rounding up to whole words).
    key_len: usize,
    /// The value's size, or a byte value's maximum length.
    value_len: usize,
}

impl MapSpec {
    /// The longest key a map made for this spec takes: rounded up to a
    /// multiple of 8.
    fn max_key_len(&self) -> usize {
        self.key_len.div_ceil(8) * 8
    }
}

impl<K: Key + ?Sized, V: Values> Shape for MapShape<K, V> {
    type Spec = MapSpec;
    type Geometry = Geometry;
    type Head = MapControl;
    type Elem = AtomicU64;

    fn expect(spec: Option<&MapSpec>) -> Expect {
        Expect {
            kind: Kind::Map,
            elem: V::payload::<K>(spec.map_or(0, |s| s.value_len)),
            any_size: V::ANY_SIZE && spec.is_none(),
        }
    }

    fn capacity(spec: &MapSpec) -> u64 {
        spec.capacity as u64
    }

    fn slot_size(spec: &MapSpec) -> u64 {
        // 0 (invalid) for an out-of-range key length: create reports it. A
        // value length out of range gives entries the body layout refuses.
        if spec.key_len == 0 || spec.key_len > MAX_KEY_LEN || spec.value_len > MAX_VALUE_SIZE {
            return 0;
        }
        (entry_words(spec.key_len, V::value(spec.value_len)) * 8) as u64
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
        let value = V::value(desc.elem_size as usize);
        // The key length the entries really have room for (the control word
        // could be garbage; the validated descriptor is not).
        let key_room = key_room(stride, value);
        let corrupt = || OpenError::CorruptHeader {
            path: region.path().to_path_buf(),
            what: format!(
                "maximum key length {max_key} does not fit entries of {key_room} key bytes"
            ),
        };
        if max_key == 0 || entry_words(max_key as usize, value) != stride {
            return Err(corrupt());
        }
        // The validated descriptor's capacity is a power of two and its
        // entries are those of `key_room` key bytes (the kind's body
        // layout): never refused here.
        Geometry::new(capacity, key_room, value)
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

/// The spec of a map with `K` keys (`opts`' maximum length for byte-string
/// keys) and values of `value_len` bytes.
fn spec<K: Key + ?Sized>(capacity: usize, value_len: usize, opts: &MapOptions) -> MapSpec {
    let key_len = if K::KIND == <u64 as Key>::KIND {
        8
    } else {
        opts.max_key_len.unwrap_or(K::DEFAULT_MAX_LEN)
    };
    MapSpec {
        capacity,
        key_len,
        value_len,
    }
}

/// `Mapped::open_or_create`, with a key length out of range reported by the
/// create (before it touches the file system), whether or not a map exists.
fn open_or_create<S: Shape<Spec = MapSpec>>(
    path: impl AsRef<Path>,
    spec: &MapSpec,
    opts: &MapOptions,
) -> Result<Mapped<S>, OpenError> {
    if S::slot_size(spec) == 0 {
        return Mapped::create(path, spec, &opts.file);
    }
    Mapped::open_or_create(path, spec, &opts.file)
}

/// The longest key of a map with `K` keys over `raw`.
fn max_key_len<K: Key + ?Sized>(raw: &RawMap<'_>) -> usize {
    if K::KIND == <u64 as Key>::KIND {
        8
    } else {
        raw.max_key_len()
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

    fn wrap(mapped: Mapped<MapShape<K, Fixed<V>>>) -> Self {
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
        let spec = spec::<K>(capacity, size_of::<V>(), opts);
        Mapped::create(path, &spec, &opts.file).map(Self::wrap)
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
        let spec = spec::<K>(capacity, size_of::<V>(), opts);
        open_or_create(path, &spec, opts).map(Self::wrap)
    }

    /// Sets how long an operation waits for an entry another process is
    /// writing (default 5 s; a writer that died is reported at once).
    pub fn set_patience(&mut self, patience: Patience) {
        self.patience = patience;
    }

    fn value(bytes: &[u8]) -> V {
        if let Some(whole) = bytes.get(..size_of::<V>()) {
            // A copy of a length known at compile time: no call.
            return bytemuck::pod_read_unaligned(whole);
        }
        let mut v = V::zeroed();
        let out = bytemuck::bytes_of_mut(&mut v);
        let n = out.len().min(bytes.len());
        out[..n].copy_from_slice(&bytes[..n]);
        v
    }

    /// `key`'s value, read whole.
    ///
    /// # Errors
    ///
    /// [`MapError::KeyTooLong`]; [`MapError::Busy`] if an entry stayed
    /// locked by a dead or stalled writer.
    pub fn get(&self, key: &K) -> Result<Option<V>, MapError> {
        key.with_bytes(|k| self.raw().get_with(k, Self::value))
    }

    /// Whether `key` is in the map.
    ///
    /// # Errors
    ///
    /// As [`Map::get`].
    pub fn contains_key(&self, key: &K) -> Result<bool, MapError> {
        key.with_bytes(|k| self.raw().get_with(k, |_| ()))
            .map(|v| v.is_some())
    }

    fn insert_inner(&self, key: &K, value: V, only_if_absent: bool) -> Result<Option<V>, MapError> {
        let mut old = None;
        let r = key.with_bytes(|k| {
            self.raw()
                .insert(k, bytemuck::bytes_of(&value), only_if_absent, |o| {
                    old = Some(Self::value(o));
                })
        })?;
        Ok(if r == Inserted::New { None } else { old })
    }

    /// Sets `key` to `value`; the previous value, if any.
    ///
    /// # Errors
    ///
    /// [`MapError::Full`] for a new key in a full table (nothing is
    /// overwritten); as [`Map::get`].
    pub fn insert(&self, key: &K, value: V) -> Result<Option<V>, MapError> {
        self.insert_inner(key, value, false)
    }

    /// Sets `key` to `value` only if it is absent: `None` if inserted, or
    /// the value already there.
    ///
    /// # Errors
    ///
    /// As [`Map::insert`].
    pub fn insert_if_absent(&self, key: &K, value: V) -> Result<Option<V>, MapError> {
        self.insert_inner(key, value, true)
    }

    /// Runs the raw update: `f` on the old (or `init`) value, its result
    /// stored and returned.
    fn update_inner(
        &self,
        key: &K,
        init: Option<V>,
        f: impl FnOnce(V) -> V,
    ) -> Result<Option<V>, MapError> {
        let mut f = Some(f);
        let mut new = None;
        key.with_bytes(|k| {
            self.raw().update(
                k,
                init.as_ref().map(bytemuck::bytes_of),
                |old, room| {
                    if let Some(f) = f.take() {
                        let v = f(Self::value(old));
                        // The room is the value's size (a fixed-size
                        // map): a copy of a length known at compile time.
                        room[..size_of::<V>()].copy_from_slice(bytemuck::bytes_of(&v));
                        new = Some(v);
                    }
                    Ok(room.len())
                },
            )
        })?;
        Ok(new)
    }

    /// Atomically replaces `key`'s value with `f(value)` and returns the new
    /// value, or `None` (and no call) if the key is absent. `f` runs once,
    /// with the entry locked against other writers: keep it short.
    ///
    /// # Errors
    ///
    /// As [`Map::get`].
    pub fn update(&self, key: &K, f: impl FnOnce(V) -> V) -> Result<Option<V>, MapError> {
        key.with_bytes(|k| match <[u8; 8]>::try_from(k) {
            // A key of one whole word (every `u64` key, and a `str` or
            // byte key of exactly 8 bytes, whose entries hold the same
            // words): the raw map's update with the key and value sizes
            // known at compile time (it takes the general path itself
            // where the entries are not exactly that key and value).
            Ok(word) => self.raw().update_fixed(&[u64::from_ne_bytes(word)], f),
            Err(_) => self.update_inner(key, None, f),
        })
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
        Ok(self.update_inner(key, Some(init), f)?.unwrap_or(init))
    }

    /// Removes `key`; its value, if it was there. Its entry is free for
    /// any key at once.
    ///
    /// # Errors
    ///
    /// As [`Map::get`].
    pub fn remove(&self, key: &K) -> Result<Option<V>, MapError> {
        let mut old = None;
        key.with_bytes(|k| self.raw().remove(k, |o| old = Some(Self::value(o))))?;
        Ok(old)
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

    /// Number of entries: the most keys present at once.
    pub fn capacity(&self) -> usize {
        self.raw().capacity()
    }

    /// The longest key accepted.
    pub fn max_key_len(&self) -> usize {
        max_key_len::<K>(&self.raw())
    }

    /// The mapped file.
    pub fn region(&self) -> &Region {
        self.mapped.region()
    }
}

/// A fixed-capacity hash map of byte-string values in a file, shared by any
/// number of processes: `Manager().dict()` with values of any length up to
/// a maximum chosen at creation (pickled objects, text, records), and no
/// server process or lock.
///
/// A value's length is stored with it, in the entry's seqlock:
/// [`get`](ByteMap::get) copies it whole (never torn, never another key's)
/// and never blocks a writer; [`update`](ByteMap::update) is an atomic
/// read-modify-write of the whole byte string. A value longer than the
/// maximum is [`MapError::ValueTooLong`] and changes nothing.
///
/// Capacity, removal and dead processes are as for [`Map`]: capacity bounds
/// the keys present at once.
///
/// # Examples
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("dict");
/// use mmring::map::{ByteMap, MapError};
///
/// let d = ByteMap::<str>::create(&path, 64, 100)?;
/// d.insert("greeting", b"hello")?;
/// // Atomically, whatever other processes do meanwhile:
/// d.update("greeting", |v| v.extend_from_slice(b", world"))?;
/// assert_eq!(d.get("greeting")?.as_deref(), Some(&b"hello, world"[..]));
/// assert_eq!(
///     d.insert("big", &[0; 101]),
///     Err(MapError::ValueTooLong { len: 101, max: 100 })
/// );
/// assert_eq!(d.remove("greeting")?.as_deref(), Some(&b"hello, world"[..]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ByteMap<K: Key + ?Sized> {
    mapped: Mapped<MapShape<K, ByteValues>>,
    /// As [`Map`]'s.
    patience: Patience,
}

impl<K: Key + ?Sized> std::fmt::Debug for ByteMap<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ByteMap")
            .field("path", &self.mapped.region().path())
            .field("capacity", &self.capacity())
            .field("max_value_len", &self.max_value_len())
            .field("len", &self.len())
            .finish()
    }
}

impl<K: Key + ?Sized> ByteMap<K> {
    /// The payload identity of a byte map with values of up to
    /// `max_value_len` bytes: the name `map<{K},bytes>` (`map<u64,bytes>`,
    /// `map<bytes,bytes>`), size the maximum length, alignment 1 (as the
    /// byte queues record their maximum message length).
    pub fn payload(max_value_len: usize) -> TypeInfo {
        TypeInfo::named(
            &format!("map<{},bytes>", K::NAME),
            u32::try_from(max_value_len).unwrap_or(u32::MAX),
            1,
        )
    }

    fn wrap(mapped: Mapped<MapShape<K, ByteValues>>) -> Self {
        Self {
            mapped,
            patience: Patience::DEFAULT,
        }
    }

    #[inline(always)]
    fn raw(&self) -> RawMap<'_> {
        RawMap::from_parts(
            self.mapped.head(),
            self.mapped.elems(),
            self.mapped.geometry(),
            self.patience,
        )
    }

    /// Creates a byte map file with `capacity` entries (a power of two) for
    /// values of 0 to `max_value_len` bytes (1 to 4096).
    ///
    /// # Errors
    ///
    /// [`OpenError::InvalidCapacity`], [`OpenError::UnsupportedPayload`] (a
    /// maximum value length out of range); the other [`OpenError`]s as for
    /// any create.
    pub fn create(
        path: impl AsRef<Path>,
        capacity: usize,
        max_value_len: usize,
    ) -> Result<Self, OpenError> {
        Self::create_with(path, capacity, max_value_len, &MapOptions::default())
    }

    /// [`ByteMap::create`] with options (maximum key length, mode, label).
    ///
    /// # Errors
    ///
    /// As [`ByteMap::create`].
    pub fn create_with(
        path: impl AsRef<Path>,
        capacity: usize,
        max_value_len: usize,
        opts: &MapOptions,
    ) -> Result<Self, OpenError> {
        let spec = spec::<K>(capacity, max_value_len, opts);
        Mapped::create(path, &spec, &opts.file).map(Self::wrap)
    }

    /// Opens an existing byte map file (any maximum value length).
    ///
    /// # Errors
    ///
    /// The validation errors of any open; [`OpenError::WrongPayload`] for a
    /// map with another key type or fixed-size values.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        Mapped::open(path).map(Self::wrap)
    }

    /// Opens the byte map at `path`, creating it (empty) if there is none.
    /// Opening an existing map never resets it: its keys and values are
    /// kept; `opts` apply only when the file is created.
    ///
    /// # Errors
    ///
    /// As [`ByteMap::open`] and [`ByteMap::create`]; an existing map of
    /// another shape is refused, naming both: [`OpenError::WrongPayload`]
    /// for another maximum value length, [`OpenError::InvalidCapacity`],
    /// [`OpenError::InvalidOption`] (maximum key length).
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("dict");
    /// use mmring::map::{ByteMap, MapOptions};
    ///
    /// let d = ByteMap::<str>::open_or_create(&path, 16, 64, &MapOptions::new())?;
    /// d.insert("k", b"v")?;
    /// let again = ByteMap::<str>::open_or_create(&path, 16, 64, &MapOptions::new())?;
    /// assert_eq!(again.get("k")?.as_deref(), Some(&b"v"[..]));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_or_create(
        path: impl AsRef<Path>,
        capacity: usize,
        max_value_len: usize,
        opts: &MapOptions,
    ) -> Result<Self, OpenError> {
        let spec = spec::<K>(capacity, max_value_len, opts);
        open_or_create(path, &spec, opts).map(Self::wrap)
    }

    /// As [`Map::set_patience`].
    pub fn set_patience(&mut self, patience: Patience) {
        self.patience = patience;
    }

    /// `key`'s value, read whole.
    ///
    /// # Errors
    ///
    /// [`MapError::KeyTooLong`]; [`MapError::Busy`] if an entry stayed
    /// locked by a dead or stalled writer.
    pub fn get(&self, key: &K) -> Result<Option<Vec<u8>>, MapError> {
        key.with_bytes(|k| self.raw().get_with(k, <[u8]>::to_vec))
    }

    /// Copies `key`'s value into `out` without allocating and returns its
    /// length, or `None` if the key is absent. A value longer than `out`
    /// is cut to `out.len()` (the length returned is still the whole
    /// value's: size `out` to [`ByteMap::max_value_len`] never to cut).
    ///
    /// # Errors
    ///
    /// As [`ByteMap::get`].
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// use mmring::map::ByteMap;
    ///
    /// let d = ByteMap::<u64>::create(dir.path().join("d"), 8, 32)?;
    /// d.insert(&7, b"seven")?;
    /// let mut buf = [0u8; 32];
    /// assert_eq!(d.get_into(&7, &mut buf)?, Some(5));
    /// assert_eq!(&buf[..5], b"seven");
    /// assert_eq!(d.get_into(&8, &mut buf)?, None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_into(&self, key: &K, out: &mut [u8]) -> Result<Option<usize>, MapError> {
        key.with_bytes(|k| self.raw().get(k, out))
    }

    /// Whether `key` is in the map.
    ///
    /// # Errors
    ///
    /// As [`ByteMap::get`].
    pub fn contains_key(&self, key: &K) -> Result<bool, MapError> {
        key.with_bytes(|k| self.raw().get_with(k, |_| ()))
            .map(|v| v.is_some())
    }

    fn insert_inner(
        &self,
        key: &K,
        value: &[u8],
        only_if_absent: bool,
    ) -> Result<Option<Vec<u8>>, MapError> {
        let mut old = None;
        let r = key.with_bytes(|k| {
            self.raw()
                .insert(k, value, only_if_absent, |o| old = Some(o.to_vec()))
        })?;
        Ok(if r == Inserted::New { None } else { old })
    }

    /// Sets `key` to `value`; the previous value, if any.
    ///
    /// # Errors
    ///
    /// [`MapError::ValueTooLong`], [`MapError::Full`] for a new key in a
    /// full table (nothing changes on either); as [`ByteMap::get`].
    pub fn insert(&self, key: &K, value: &[u8]) -> Result<Option<Vec<u8>>, MapError> {
        self.insert_inner(key, value, false)
    }

    /// Sets `key` to `value` only if it is absent: `None` if inserted, or
    /// the value already there.
    ///
    /// # Errors
    ///
    /// As [`ByteMap::insert`].
    pub fn insert_if_absent(&self, key: &K, value: &[u8]) -> Result<Option<Vec<u8>>, MapError> {
        self.insert_inner(key, value, true)
    }

    fn update_inner(
        &self,
        key: &K,
        init: Option<&[u8]>,
        f: impl FnOnce(&mut Vec<u8>),
    ) -> Result<Option<Vec<u8>>, MapError> {
        let mut f = Some(f);
        let mut new = None;
        key.with_bytes(|k| {
            self.raw().update(k, init, |old, room| {
                let mut v = old.to_vec();
                if let Some(f) = f.take() {
                    f(&mut v);
                }
                if v.len() > room.len() {
                    return Err(MapError::ValueTooLong {
                        len: v.len(),
                        max: room.len(),
                    });
                }
                room[..v.len()].copy_from_slice(&v);
                let len = v.len();
                new = Some(v);
                Ok(len)
            })
        })?;
        Ok(new)
    }

    /// Atomically replaces `key`'s value: `f` gets the value in a vector to
    /// change as it likes (grow, shrink, rewrite); the new value is stored
    /// and returned. `None` (and no call) if the key is absent. `f` runs
    /// once, with the entry locked against other writers: keep it short.
    ///
    /// # Errors
    ///
    /// [`MapError::ValueTooLong`] if `f` left more than the maximum
    /// (nothing changes); as [`ByteMap::get`].
    pub fn update(
        &self,
        key: &K,
        f: impl FnOnce(&mut Vec<u8>),
    ) -> Result<Option<Vec<u8>>, MapError> {
        self.update_inner(key, None, f)
    }

    /// [`ByteMap::update`] without allocating: `f(old, room)` writes the
    /// new value into `room` ([`ByteMap::max_value_len`] bytes, zeroed) and
    /// returns its length; the new length is returned, or `None` (and no
    /// call) if the key is absent.
    ///
    /// # Errors
    ///
    /// [`MapError::ValueTooLong`] if `f` returned more than `room.len()`
    /// (nothing changes); as [`ByteMap::get`].
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// use mmring::map::ByteMap;
    ///
    /// let d = ByteMap::<str>::create(dir.path().join("d"), 8, 16)?;
    /// d.insert("hits", &0u64.to_le_bytes())?;
    /// // Count in the first 8 bytes, in place.
    /// let len = d.update_with("hits", |old, room| {
    ///     let n = u64::from_le_bytes(old[..8].try_into().unwrap()) + 1;
    ///     room[..8].copy_from_slice(&n.to_le_bytes());
    ///     8
    /// })?;
    /// assert_eq!(len, Some(8));
    /// assert_eq!(d.get("hits")?, Some(1u64.to_le_bytes().to_vec()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn update_with(
        &self,
        key: &K,
        f: impl FnOnce(&[u8], &mut [u8]) -> usize,
    ) -> Result<Option<usize>, MapError> {
        let mut f = Some(f);
        let mut new = None;
        key.with_bytes(|k| {
            self.raw().update(k, None, |old, room| {
                let len = f.take().map_or(0, |f| f(old, room));
                if len > room.len() {
                    return Err(MapError::ValueTooLong {
                        len,
                        max: room.len(),
                    });
                }
                new = Some(len);
                Ok(len)
            })
        })?;
        Ok(new)
    }

    /// Atomically sets `key` to `f(value)`, or to `f(init)` if it is
    /// absent; the new value.
    ///
    /// # Errors
    ///
    /// As [`ByteMap::insert`] and [`ByteMap::update`].
    pub fn update_or_insert(
        &self,
        key: &K,
        init: &[u8],
        f: impl FnOnce(&mut Vec<u8>),
    ) -> Result<Vec<u8>, MapError> {
        Ok(self.update_inner(key, Some(init), f)?.unwrap_or_default())
    }

    /// Removes `key`; its value, if it was there.
    ///
    /// # Errors
    ///
    /// As [`ByteMap::get`].
    pub fn remove(&self, key: &K) -> Result<Option<Vec<u8>>, MapError> {
        let mut old = None;
        key.with_bytes(|k| self.raw().remove(k, |o| old = Some(o.to_vec())))?;
        Ok(old)
    }

    /// Every live key and value, each read whole (not one atomic snapshot
    /// of the whole table while others write).
    ///
    /// # Errors
    ///
    /// [`MapError::Busy`] if an entry stayed locked.
    #[allow(
        clippy::type_complexity,
        reason = "Map::snapshot's shape, with byte values"
    )]
    pub fn snapshot(&self) -> Result<Vec<(K::Owned, Vec<u8>)>, MapError> {
        let mut out = Vec::new();
        self.raw()
            .for_each(|k, v| out.push((K::decode(k), v.to_vec())))?;
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

    /// Number of entries: the most keys present at once.
    pub fn capacity(&self) -> usize {
        self.raw().capacity()
    }

    /// The longest key accepted.
    pub fn max_key_len(&self) -> usize {
        max_key_len::<K>(&self.raw())
    }

    /// The longest value accepted.
    pub fn max_value_len(&self) -> usize {
        self.raw().value().max_len()
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
    #[test]
    fn removed_entries_are_reused_by_other_keys() {
        let dir = tempfile::tempdir().unwrap();
        let d = Map::<u64, u64>::create(dir.path().join("d"), 8).unwrap();
        // 100 times the capacity in distinct keys, at most 8 at once.
        for k in 0..800u64 {
            assert_eq!(d.insert(&k, k * 3).unwrap(), None, "key {k}");
            if k >= 7 {
                let gone = k - 7;
                assert_eq!(d.remove(&gone).unwrap(), Some(gone * 3));
                assert_eq!(d.get(&gone).unwrap(), None);
            }
        }
        assert_eq!(d.len(), 7);
        for k in 793..800u64 {
            assert_eq!(d.get(&k).unwrap(), Some(k * 3));
        }
        // One more fits; then the table is full, exactly.
        assert_eq!(d.insert(&1000, 1).unwrap(), None);
        assert_eq!(d.insert(&1001, 1), Err(MapError::Full { capacity: 8 }));
        assert_eq!(d.remove(&1000).unwrap(), Some(1));
        assert_eq!(d.insert(&1001, 2).unwrap(), None);
        let census = d.raw().census().unwrap();
        assert_eq!((census.live, census.empty, census.other), (8, 0, 0));
    }

    #[test]
    fn a_key_removed_from_a_later_entry_comes_back_in_an_earlier_tombstone() {
        let dir = tempfile::tempdir().unwrap();
        let d = Map::<u64, u64>::create(dir.path().join("d"), 4).unwrap();
        for k in 0..4 {
            d.insert(&k, k).unwrap();
        }
        // Free two entries, then bring one key back and add a new one:
        // neither is found twice, nothing else moves.
        d.remove(&0).unwrap();
        d.remove(&2).unwrap();
        assert_eq!(d.insert(&2, 20).unwrap(), None);
        assert_eq!(d.insert(&9, 90).unwrap(), None);
        assert_eq!(d.insert(&2, 21).unwrap(), Some(20));
        let mut snap = d.snapshot().unwrap();
        snap.sort();
        assert_eq!(snap, [(1, 1), (2, 21), (3, 3), (9, 90)]);
        assert_eq!(d.insert(&5, 5), Err(MapError::Full { capacity: 4 }));
    }

    #[test]
    fn a_byte_map_holds_values_of_every_length_up_to_its_maximum() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d");
        let d = ByteMap::<str>::create(&p, 16, 300).unwrap();
        assert_eq!(d.max_value_len(), 300);
        assert_eq!(d.max_key_len(), 32);
        for len in [0usize, 1, 7, 8, 9, 255, 256, 299, 300] {
            let key = format!("k{len}");
            let v: Vec<u8> = (0..len).map(|i| i as u8 ^ 0x5a).collect();
            assert_eq!(d.insert(&key, &v).unwrap(), None);
            assert_eq!(d.get(&key).unwrap(), Some(v.clone()), "len {len}");
            let mut buf = [0u8; 300];
            assert_eq!(d.get_into(&key, &mut buf).unwrap(), Some(len));
            assert_eq!(&buf[..len], &v[..]);
            let mut short = [0u8; 4];
            assert_eq!(d.get_into(&key, &mut short).unwrap(), Some(len));
            assert_eq!(&short[..len.min(4)], &v[..len.min(4)]);
        }
        // Shorter over longer: the stored length says where it ends.
        assert_eq!(d.insert("k300", b"ab").unwrap().map(|v| v.len()), Some(300));
        assert_eq!(d.get("k300").unwrap().as_deref(), Some(&b"ab"[..]));
        assert_eq!(
            d.insert("k1", &[1; 301]),
            Err(MapError::ValueTooLong { len: 301, max: 300 })
        );
        assert_eq!(d.get("k1").unwrap(), Some(vec![0x5a]), "unchanged");
        assert_eq!(
            d.update("k1", |v| v.resize(400, 0)),
            Err(MapError::ValueTooLong { len: 400, max: 300 })
        );
        assert_eq!(d.get("k1").unwrap(), Some(vec![0x5a]), "unchanged");
        assert_eq!(
            d.update("k1", |v| v.extend_from_slice(b"xyz")).unwrap(),
            Some(b"\x5axyz".to_vec())
        );
        assert_eq!(d.update("nope", |v| v.push(1)).unwrap(), None);
        assert_eq!(d.update_or_insert("n", b"0", |v| v.push(b'1')).unwrap(), b"01");
        assert_eq!(d.insert_if_absent("n", b"x").unwrap(), Some(b"01".to_vec()));
        assert_eq!(d.remove("n").unwrap(), Some(b"01".to_vec()));
        assert!(!d.contains_key("n").unwrap());
        assert_eq!(d.snapshot().unwrap().len(), d.len());
        // The value kind and its maximum are part of the file's identity.
        assert_eq!(ByteMap::<str>::payload(300).name(), "map<bytes,bytes>");
        assert_eq!(ByteMap::<[u8]>::open(&p).unwrap().max_value_len(), 300);
        assert!(matches!(
            Map::<str, u64>::open(&p),
            Err(OpenError::WrongPayload { .. })
        ));
        assert!(matches!(
            ByteMap::<u64>::open(&p),
            Err(OpenError::WrongPayload { .. })
        ));
        assert!(matches!(
            ByteMap::<str>::open_or_create(&p, 16, 200, &MapOptions::new()),
            Err(OpenError::WrongPayload { .. })
        ));
        assert_eq!(
            ByteMap::<str>::open_or_create(&p, 16, 300, &MapOptions::new())
                .unwrap()
                .get("k0")
                .unwrap(),
            Some(vec![]),
            "an existing map is opened, never reset"
        );
        for bad in [0, MAX_VALUE_SIZE + 1] {
            assert!(matches!(
                ByteMap::<u64>::create(dir.path().join(format!("bad{bad}")), 4, bad),
                Err(OpenError::UnsupportedPayload { .. })
            ));
        }
        let ok = ByteMap::<u64>::create(dir.path().join("max"), 4, MAX_VALUE_SIZE).unwrap();
        ok.insert(&1, &[7; MAX_VALUE_SIZE]).unwrap();
        assert_eq!(ok.get(&1).unwrap(), Some(vec![7; MAX_VALUE_SIZE]));
    }

    #[test]
    fn a_garbage_value_length_is_clamped_to_the_maximum() {
        let dir = tempfile::tempdir().unwrap();
        let d = ByteMap::<u64>::create(dir.path().join("d"), 1, 20).unwrap();
        d.insert(&1, b"hello").unwrap();
        // The only entry: its reach at word 0, its seqlock at word 1;
        // version 1 is in copy 1, whose words are [state, key length, key,
        // value length, ...].
        let words = d.mapped.elems();
        let data = (words.len() - 3) / 2;
        let len_word = 3 + data + 3;
        words[len_word].store(u64::MAX, crate::sync::Ordering::Relaxed);
        let v = d.get(&1).unwrap().unwrap();
        assert_eq!(v.len(), 20, "clamped to the maximum");
        assert_eq!(&v[..5], b"hello");
        words[len_word].store(3, crate::sync::Ordering::Relaxed);
        assert_eq!(d.get(&1).unwrap().as_deref(), Some(&b"hel"[..]));
        assert_eq!(d.update(&1, |v| v.push(b'!')).unwrap().as_deref(), Some(&b"hel!"[..]));
    }

    #[test]
    fn threads_churning_distinct_keys_never_see_full_or_a_wrong_value() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d");
        let d = ByteMap::<u64>::create(&p, 16, 24).unwrap();
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let p = &p;
                s.spawn(move || {
                    let d = ByteMap::<u64>::open(p).unwrap();
                    // At most 3 keys of each thread at once: 12 of 16.
                    for i in 0..400u64 {
                        let k = t << 32 | i;
                        let v = k.to_le_bytes();
                        assert_eq!(d.insert(&k, &v).unwrap(), None);
                        assert_eq!(d.get(&k).unwrap().as_deref(), Some(&v[..]));
                        d.update(&k, |v| v.extend_from_slice(b"+")).unwrap();
                        if i >= 2 {
                            let old = k - 2;
                            let mut want = old.to_le_bytes().to_vec();
                            want.push(b'+');
                            assert_eq!(d.remove(&old).unwrap(), Some(want));
                        }
                    }
                });
            }
        });
        assert_eq!(d.len(), 8);
        assert_eq!(d.snapshot().unwrap().len(), 8);
    }
}
