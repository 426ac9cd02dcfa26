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
//! garbage state reads as "some other key".

pub use crate::error::MapError;
pub use crate::raw::map::{MAX_KEY_LEN, MAX_VALUE_SIZE};
pub use mapped::{Key, Map, MapOptions};

mod mapped;
