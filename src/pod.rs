//! Payload types: plain old data, and the fingerprint stored in the header.
//!
//! Everything that crosses the mapping is [`Pod`]: no pointers, no padding,
//! every bit pattern valid, so the same bytes mean the same value in every
//! process and a value another process scribbled on is still a valid (if
//! wrong) value, never undefined behaviour.

use std::fmt;

pub use bytemuck::{Pod, Zeroable};

/// The payload type recorded in a file's descriptor and checked at every open.
///
/// `id` is a 64-bit FNV-1a hash of [`std::any::type_name`], so two programs
/// agree on it when they share the type's definition (the same crate, the
/// same path). Size and alignment are checked too, so even a hash collision
/// cannot make a process read a value of the wrong shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TypeInfo {
    /// `size_of::<T>()`.
    pub size: u32,
    /// `align_of::<T>()`.
    pub align: u32,
    /// FNV-1a of the type's name.
    pub id: u64,
}

impl TypeInfo {
    /// The fingerprint of `T`.
    pub fn of<T: Pod>() -> Self {
        Self {
            // Pod types in a mapping are far below 4 GiB; saturate rather
            // than wrap so an absurd type can never alias a small one.
            size: u32::try_from(size_of::<T>()).unwrap_or(u32::MAX),
            align: u32::try_from(align_of::<T>()).unwrap_or(u32::MAX),
            id: fnv1a(std::any::type_name::<T>().as_bytes()),
        }
    }

    /// The fingerprint of "no payload" (kinds whose body is not typed).
    pub const NONE: Self = Self {
        size: 0,
        align: 0,
        id: 0,
    };
}

impl fmt::Display for TypeInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "size {}, align {}, id {:#018x}",
            self.size, self.align, self.id
        )
    }
}

/// 64-bit FNV-1a: the type fingerprint and the descriptor checksum.
pub(crate) const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_reference_vectors() {
        // Reference values from the FNV specification's test suite.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn type_info_tells_types_apart() {
        assert_ne!(TypeInfo::of::<u64>(), TypeInfo::of::<i64>());
        assert_ne!(TypeInfo::of::<u64>(), TypeInfo::of::<f64>());
        assert_eq!(TypeInfo::of::<[u32; 4]>().size, 16);
        assert_eq!(TypeInfo::of::<[u32; 4]>().align, 4);
    }
}
