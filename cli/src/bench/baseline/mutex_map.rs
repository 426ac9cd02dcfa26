//! [`PthreadMap`]: the lock-based baseline of the map rows — a
//! fixed-capacity hash table of `(u64 key, V value)` pairs (a `u64`, or a
//! byte value of fixed room: [`ByteValue`]) guarded by one
//! `pthread_mutex_t` initialized with `PTHREAD_PROCESS_SHARED`, all in a
//! file-backed shared mapping ([`Shm`]: the same kind of mapping a
//! [`Map`](mmring::map::Map) lives in).
//!
//! `std::collections::HashMap` cannot live in a mapping (its table is a
//! heap pointer, meaningless in another process), so this is the simplest
//! honest equivalent of "a `HashMap` behind a process-shared mutex": open
//! addressing with linear probing, a multiplicative (Fibonacci) hash
//! instead of SipHash — cheaper, so if anything it flatters the baseline —
//! no resizing, and removal by backward-shift deletion (no tombstones: the
//! best a locked table can do under churn). Every operation is lock,
//! probe, read or write, unlock.

use std::io;
use std::path::Path;

use super::pthread::{Held, init_mutex};
use crate::bench::runner::shm::Shm;

/// The key that marks an empty slot (refused as a key).
const EMPTY: u64 = u64::MAX;

/// Byte offset of the first slot in the mapping (a cache line boundary
/// past the mutex).
const SLOTS_OFFSET: usize = 64;

static_assertions::const_assert!(size_of::<libc::pthread_mutex_t>() <= SLOTS_OFFSET);

/// One entry of the table.
#[repr(C)]
#[derive(Clone, Copy)]
struct Slot<V> {
    key: u64,
    value: V,
}

/// A byte-string value of up to 128 bytes, stored with its length (what
/// the byte-value rows keep in the locked table).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteValue {
    /// Bytes used.
    pub len: u32,
    /// The bytes (the first `len` mean something).
    pub bytes: [u8; 128],
}

impl Default for ByteValue {
    fn default() -> Self {
        Self {
            len: 0,
            bytes: [0; 128],
        }
    }
}

/// A table of `u64 -> V` behind a process-shared mutex in a mapped file.
/// Shared between a parent and its forked children through the mapping;
/// every method takes `&self` and the lock.
pub struct PthreadMap<V: Copy + Default = u64> {
    mutex: *mut libc::pthread_mutex_t,
    slots: *mut Slot<V>,
    mask: u64,
    shift: u32,
    /// Owns the mapping the pointers point into; dropped after them.
    _shm: Shm,
}

impl<V: Copy + Default> std::fmt::Debug for PthreadMap<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PthreadMap")
            .field("capacity", &(self.mask + 1))
            .finish_non_exhaustive()
    }
}

impl<V: Copy + Default> PthreadMap<V> {
    /// Creates and maps the file at `path` (see [`Shm::create`]) with room
    /// for `capacity` keys (a power of two, at least 2), initializes the
    /// mutex and marks every slot empty.
    ///
    /// # Errors
    ///
    /// Creating the file, or initializing the mutex.
    ///
    /// # Panics
    ///
    /// If `capacity` is not a power of two of at least 2 (a harness bug).
    pub fn create(path: &Path, capacity: usize) -> io::Result<Self> {
        assert!(
            capacity.is_power_of_two() && capacity >= 2,
            "capacity must be a power of two, at least 2"
        );
        let shm = Shm::create(path, SLOTS_OFFSET + capacity * size_of::<Slot<V>>())?;
        let base = shm.as_ptr();
        assert!(
            base.cast::<libc::pthread_mutex_t>().is_aligned(),
            "mapping misaligned"
        );
        // In bounds: the mapping holds SLOTS_OFFSET + capacity slots.
        let slots = base.wrapping_add(SLOTS_OFFSET).cast::<Slot<V>>();
        for i in 0..capacity {
            // SAFETY: slot `i` lies inside the mapping (sized for them),
            // aligned (the mapping is, SLOTS_OFFSET keeps it), and no other
            // process can reach it yet: the name is gone and no child is
            // forked.
            unsafe {
                slots.add(i).write(Slot {
                    key: EMPTY,
                    value: V::default(),
                })
            };
        }
        // SAFETY: the mutex is the first bytes of the mapping, aligned
        // (checked above) and unshared, as for the slots.
        let rc = unsafe { init_mutex(base.cast()) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        Ok(Self {
            mutex: base.cast(),
            slots,
            mask: capacity as u64 - 1,
            shift: 64 - capacity.trailing_zeros(),
            _shm: shm,
        })
    }

    fn lock(&self) -> Held {
        // SAFETY: the mutex was initialized by `create` in the mapping that
        // `_shm` keeps alive while `self` (which the guard cannot
        // outlive in any caller here) exists; it is process-shared, so
        // forked children may lock it too.
        unsafe { Held::lock(self.mutex) }
    }

    /// The slot holding `key`, or the empty slot where it would go, or
    /// `None` if the table is full without it. Call with the lock held.
    fn home(&self, key: u64) -> u64 {
        key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift
    }

    fn probe(&self, _held: &Held, key: u64) -> Option<usize> {
        let mut i = self.home(key);
        for _ in 0..=self.mask {
            // SAFETY: `i` is masked below the capacity, so inside the slots
            // `create` made; slots are read and written only under the
            // mutex (held: `_held`), so no other process races with this.
            let k = unsafe { (*self.slots.add(i as usize)).key };
            if k == key || k == EMPTY {
                return Some(i as usize);
            }
            i = (i + 1) & self.mask;
        }
        None
    }

    /// Sets `key` to `value`; `false` if the table is full without it.
    ///
    /// # Panics
    ///
    /// For the reserved key `u64::MAX`.
    pub fn insert(&self, key: u64, value: V) -> bool {
        assert_ne!(key, EMPTY, "u64::MAX marks empty slots");
        let held = self.lock();
        let Some(i) = self.probe(&held, key) else {
            return false;
        };
        // SAFETY: a slot `probe` found, under the mutex (held).
        unsafe { self.slots.add(i).write(Slot { key, value }) };
        true
    }

    /// Replaces `key`'s value with `f(value)` under the lock and returns
    /// the new value, or `None` (and no call) if the key is absent.
    #[inline]
    pub fn update(&self, key: u64, f: impl FnOnce(V) -> V) -> Option<V> {
        let held = self.lock();
        let i = self.probe(&held, key)?;
        // SAFETY: a slot `probe` found, under the mutex (held).
        let slot = unsafe { &mut *self.slots.add(i) };
        if slot.key != key {
            return None;
        }
        slot.value = f(slot.value);
        Some(slot.value)
    }

    /// `key`'s value.
    pub fn get(&self, key: u64) -> Option<V> {
        let held = self.lock();
        let i = self.probe(&held, key)?;
        // SAFETY: a slot `probe` found, under the mutex (held).
        let slot = unsafe { self.slots.add(i).read() };
        (slot.key == key).then_some(slot.value)
    }

    /// Removes `key`; its value, if it was there. Backward-shift deletion:
    /// the entries after it in its cluster move back into the hole, so the
    /// table never holds tombstones.
    pub fn remove(&self, key: u64) -> Option<V> {
        let held = self.lock();
        let mut hole = self.probe(&held, key)?;
        // SAFETY: slots `probe` found or below the capacity (masked), all
        // under the mutex (held), as in `probe`.
        let old = unsafe { self.slots.add(hole).read() };
        if old.key != key {
            return None;
        }
        let mut j = hole;
        loop {
            j = (j + 1) & self.mask as usize;
            // SAFETY: as above.
            let next = unsafe { self.slots.add(j).read() };
            if next.key == EMPTY {
                break;
            }
            let home = self.home(next.key) as usize;
            // `next` may fill the hole unless its home lies cyclically in
            // (hole, j].
            let stays = if hole <= j {
                hole < home && home <= j
            } else {
                hole < home || home <= j
            };
            if !stays {
                // SAFETY: as above.
                unsafe { self.slots.add(hole).write(next) };
                hole = j;
            }
        }
        // SAFETY: as above.
        unsafe {
            self.slots.add(hole).write(Slot {
                key: EMPTY,
                value: V::default(),
            })
        };
        Some(old.value)
    }

    /// Folds every present value, under one lock.
    pub fn fold<A>(&self, init: A, mut f: impl FnMut(A, u64, &V) -> A) -> A {
        let _held = self.lock();
        (0..=self.mask as usize).fold(init, |acc, i| {
            // SAFETY: `i` is below the capacity; under the mutex (held).
            let slot = unsafe { self.slots.add(i).read() };
            if slot.key == EMPTY {
                acc
            } else {
                f(acc, slot.key, &slot.value)
            }
        })
    }

    /// Removes every key.
    pub fn clear(&self) {
        let _held = self.lock();
        for i in 0..=self.mask as usize {
            // SAFETY: `i` is below the capacity; under the mutex (held).
            unsafe {
                self.slots.add(i).write(Slot {
                    key: EMPTY,
                    value: V::default(),
                })
            };
        }
    }
}

impl PthreadMap<u64> {
    /// The sum (wrapping) of every value, under one lock.
    pub fn sum(&self) -> u64 {
        self.fold(0u64, |sum, _, &v| sum.wrapping_add(v))
    }
}

impl<V: Copy + Default> Drop for PthreadMap<V> {
    fn drop(&mut self) {
        // SAFETY: initialized by `create`; no process of ours holds it any
        // more (children are reaped before their run returns). An error
        // (EBUSY) leaves it as it is, harmlessly: the mapping goes.
        unsafe { libc::pthread_mutex_destroy(self.mutex) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::runner::dir::BenchDir;

    #[test]
    fn keys_collide_fill_the_table_and_keep_their_values() {
        let dir = BenchDir::new().expect("dir");
        let map = PthreadMap::create(&dir.file("map"), 8).expect("map");
        for k in 0..8 {
            assert!(map.insert(k * 8, k));
        }
        assert!(!map.insert(1000, 1), "full");
        assert!(map.insert(16, 20), "an existing key is replaced");
        assert_eq!(map.update(16, |v| v + 1), Some(21));
        assert_eq!(map.update(1000, |v| v + 1), None);
        assert_eq!(map.get(56), Some(7));
        assert_eq!(map.get(3), None);
        assert_eq!(map.sum(), (0..8).sum::<u64>() - 2 + 21);
    }

    #[test]
    fn removal_shifts_the_cluster_back_and_keeps_every_key_findable() {
        let dir = BenchDir::new().expect("dir");
        let map = PthreadMap::<u64>::create(&dir.file("map"), 16).expect("map");
        // Churn 40 times the capacity, 6 keys present at once.
        for k in 0..640u64 {
            assert!(map.insert(k, k));
            if k >= 6 {
                assert_eq!(map.remove(k - 6), Some(k - 6), "key {}", k - 6);
                assert_eq!(map.get(k - 6), None);
            }
            for live in k.saturating_sub(5)..=k {
                assert_eq!(map.get(live), Some(live), "key {live} lost at {k}");
            }
        }
        assert_eq!(map.remove(10_000), None);
        assert_eq!(map.fold(0, |n, _, _| n + 1), 6);
        map.clear();
        assert_eq!(map.fold(0, |n, _, _| n + 1), 0);
        let bytes = PthreadMap::<ByteValue>::create(&dir.file("bytes"), 4).expect("map");
        assert!(bytes.insert(1, ByteValue::default()));
        let v = bytes.update(1, |mut v| {
            v.len = 3;
            v
        });
        assert_eq!(v.map(|v| v.len), Some(3));
    }
}
