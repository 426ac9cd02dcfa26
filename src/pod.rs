//! Payload types: plain old data, and the identity stored in the header.
//!
//! Everything that crosses the mapping is [`Pod`]: no pointers, no padding,
//! every bit pattern valid, so the same bytes mean the same value in every
//! process and a value another process scribbled on is still a valid (if
//! wrong) value, never undefined behaviour.
//!
//! A type that goes into a file is also a [`Payload`]: it has a **stable
//! name**, stored in the file with its size and alignment and checked at
//! every open. The name never comes from [`std::any::type_name`] (whose text
//! may change with any compiler release, crate rename or module move); it is
//! fixed for the primitives and arrays of payloads, and declared for your own
//! types with [`payload!`](crate::payload):
//!
//! ```
//! use mmring::{Payload, Pod, TypeInfo, Zeroable};
//!
//! #[derive(Clone, Copy, Pod, Zeroable)]
//! #[repr(C)]
//! struct Quote {
//!     bid: f64,
//!     ask: f64,
//! }
//! // The name is the identifier as written: "Quote", wherever the type lives.
//! mmring::payload!(Quote);
//!
//! #[derive(Clone, Copy, Pod, Zeroable)]
//! #[repr(C)]
//! struct Trade {
//!     price: f64,
//!     size: u64,
//! }
//! // Or any name you choose (1 to 64 bytes of UTF-8, no NUL).
//! mmring::payload!(Trade = "market.Trade");
//!
//! assert_eq!(TypeInfo::of::<Quote>().name(), "Quote");
//! assert_eq!(TypeInfo::of::<Trade>().name(), "market.Trade");
//! assert_eq!(TypeInfo::of::<[Quote; 4]>().name(), "[Quote; 4]");
//! assert_eq!(TypeInfo::of::<[[f64; 2]; 4]>().name(), "[[f64; 2]; 4]");
//! assert_eq!(
//!     TypeInfo::of::<[u8; 16]>().to_string(),
//!     "[u8; 16] (16 B, align 1)"
//! );
//! ```
//!
//! Two programs agree on a payload when they agree on its name, size and
//! alignment: a type may move between modules or crates, and be built by
//! another compiler, without making its files unopenable. `docs/FORMAT.md`
//! gives the rule to programs in other languages.

use std::fmt;

pub use crate::error::NameError;
pub use bytemuck::{Pod, Zeroable};

/// Longest payload name a file can hold, in bytes of UTF-8.
pub const MAX_NAME_LEN: usize = 64;

/// The payload name of byte messages (byte rings and byte queues).
pub const BYTES_NAME: &str = "bytes";

/// The payload name of kinds that hold no typed payload (event, semaphore,
/// barrier).
pub const NONE_NAME: &str = "none";

/// A plain-old-data type with a stable name: what may be stored in a file.
///
/// Implemented for `u8 u16 u32 u64 u128 i8 i16 i32 i64 i128 f32 f64` (named
/// exactly so) and for arrays `[T; N]` of payloads (named `[{T}; {N}]`, e.g.
/// `[u8; 16]` or `[[f64; 2]; 4]`). Declare your own types with
/// [`payload!`](crate::payload), or implement the trait by hand.
///
/// A name is 1 to [`MAX_NAME_LEN`] bytes of UTF-8 with no NUL byte; a type
/// whose name breaks the rule is refused when a file is created or opened
/// ([`OpenError::InvalidPayloadName`](crate::OpenError::InvalidPayloadName)).
/// Keep names stable: a file can only be opened as a type of the same name,
/// size and alignment as the one it was created with.
///
/// # Examples
///
/// ```
/// use mmring::{Payload, Pod, TypeInfo, Zeroable};
///
/// #[derive(Clone, Copy, Pod, Zeroable)]
/// #[repr(transparent)]
/// struct Meters(f64);
///
/// // By hand, as the macro would do it:
/// impl Payload for Meters {
///     fn payload_name(out: &mut String) {
///         out.push_str("units.Meters");
///     }
/// }
/// assert_eq!(TypeInfo::of::<Meters>().name(), "units.Meters");
/// ```
pub trait Payload: Pod {
    /// Appends the type's stable name to `out`.
    fn payload_name(out: &mut String);
}

macro_rules! primitive_payload {
    ($($t:ty),*) => {
        $(
            impl Payload for $t {
                fn payload_name(out: &mut String) {
                    out.push_str(stringify!($t));
                }
            }
        )*
    };
}

primitive_payload!(u8, u16, u32, u64, u128, i8, i16, i32, i64, i128, f32, f64);

impl<T: Payload, const N: usize> Payload for [T; N] {
    fn payload_name(out: &mut String) {
        out.push('[');
        T::payload_name(out);
        out.push_str("; ");
        out.push_str(&N.to_string());
        out.push(']');
    }
}

/// Declares a stable [`Payload`] name for a [`Pod`] type.
///
/// * `mmring::payload!(Quote);` names the type by its identifier as written,
///   `"Quote"`: the same wherever the type is defined or moved, and with any
///   compiler. Only a bare identifier is accepted here.
/// * `mmring::payload!(Quote = "market.Quote");` gives any name (1 to
///   [`MAX_NAME_LEN`] bytes, no NUL; checked at compile time); use it for
///   paths and generic types too: `mmring::payload!(Pair<u32> = "Pair<u32>");`.
///
/// The type must be [`Pod`] (`#[derive(Pod, Zeroable)]` with `#[repr(C)]`).
///
/// # Examples
///
/// ```
/// use mmring::{Pod, SeqCell, Zeroable};
///
/// #[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
/// #[repr(C)]
/// struct Point {
///     x: f64,
///     y: f64,
/// }
/// mmring::payload!(Point);
///
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("point");
/// let cell = SeqCell::create(&path, Point { x: 1.0, y: 2.0 })?;
/// assert_eq!(cell.load()?, Point { x: 1.0, y: 2.0 });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[macro_export]
macro_rules! payload {
    ($t:ident) => {
        $crate::payload!($t = ::core::stringify!($t));
    };
    ($t:ty = $name:expr) => {
        const _: () = ::core::assert!(
            $crate::pod::is_valid_name($name),
            "a payload name is 1 to 64 bytes of UTF-8 without NUL"
        );
        impl $crate::Payload for $t {
            fn payload_name(out: &mut ::std::string::String) {
                out.push_str($name);
            }
        }
    };
}

/// Whether `name` is a valid payload name: 1 to [`MAX_NAME_LEN`] bytes, no
/// NUL (a `&str` is UTF-8 already). `const`, for [`payload!`](crate::payload).
pub const fn is_valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_NAME_LEN {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == 0 {
            return false;
        }
        i += 1;
    }
    true
}

/// Checks the bytes of a payload name (as read from a file): 1 to
/// [`MAX_NAME_LEN`] bytes of UTF-8 without NUL.
///
/// # Errors
///
/// The [`NameError`] that says what is wrong.
pub fn validate_name(bytes: &[u8]) -> Result<&str, NameError> {
    if bytes.is_empty() {
        return Err(NameError::Empty);
    }
    if bytes.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong {
            len: bytes.len(),
            max: MAX_NAME_LEN,
        });
    }
    let name = std::str::from_utf8(bytes).map_err(|e| NameError::NotUtf8 {
        valid_up_to: e.valid_up_to(),
    })?;
    if bytes.contains(&0) {
        return Err(NameError::Nul);
    }
    Ok(name)
}

/// The payload type recorded in a file's descriptor and checked at every
/// open: size, alignment and stable name.
///
/// Two payloads are the same when all three are equal. `TypeInfo` is
/// `Copy`: the name is kept inline (at most [`MAX_NAME_LEN`] bytes; a longer
/// one keeps its length and a prefix, and is refused by
/// [`TypeInfo::check_name`] and so by every create and open).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TypeInfo {
    /// `size_of::<T>()` (for byte messages: the longest message).
    pub size: u32,
    /// `align_of::<T>()`.
    pub align: u32,
    /// The name's full length in bytes (may exceed [`MAX_NAME_LEN`]).
    name_len: u32,
    /// The name's first bytes (cut at a character boundary), zero-padded.
    name: [u8; MAX_NAME_LEN],
}

impl TypeInfo {
    /// The identity of `T`: its [`Payload`] name, size and alignment.
    pub fn of<T: Payload>() -> Self {
        let mut name = String::new();
        T::payload_name(&mut name);
        // Pod types in a mapping are far below 4 GiB; saturate rather than
        // wrap so an absurd type can never alias a small one.
        Self::named(
            &name,
            u32::try_from(size_of::<T>()).unwrap_or(u32::MAX),
            u32::try_from(align_of::<T>()).unwrap_or(u32::MAX),
        )
    }

    /// A payload identity from its parts (what [`TypeInfo::of`] computes
    /// for a Rust type; other programs, or untyped kinds, name theirs).
    pub const fn named(name: &str, size: u32, align: u32) -> Self {
        let bytes = name.as_bytes();
        let mut keep = if bytes.len() > MAX_NAME_LEN {
            MAX_NAME_LEN
        } else {
            bytes.len()
        };
        // Cut an overlong name at a character boundary, so `name()` is
        // always the whole prefix.
        while keep < bytes.len() && keep > 0 && (bytes[keep] & 0xc0) == 0x80 {
            keep -= 1;
        }
        let mut stored = [0u8; MAX_NAME_LEN];
        let mut i = 0;
        while i < keep {
            stored[i] = bytes[i];
            i += 1;
        }
        Self {
            size,
            align,
            name_len: if bytes.len() > u32::MAX as usize {
                u32::MAX
            } else {
                bytes.len() as u32
            },
            name: stored,
        }
    }

    /// Rebuilds an identity from a descriptor's raw fields. The name bytes
    /// are taken as they are (see [`TypeInfo::name`] for untrusted ones).
    pub(crate) const fn from_raw(
        size: u32,
        align: u32,
        name_len: u32,
        name: [u8; MAX_NAME_LEN],
    ) -> Self {
        Self {
            size,
            align,
            name_len,
            name,
        }
    }

    /// The stable name (`"u64"`, `"[u8; 16]"`, `"Quote"`, `"bytes"` ...).
    ///
    /// For an overlong name, its first bytes; for bytes that are not UTF-8
    /// (a descriptor that was never validated), the valid prefix.
    pub fn name(&self) -> &str {
        let stored = &self.name[..(self.name_len as usize).min(MAX_NAME_LEN)];
        match std::str::from_utf8(stored) {
            Ok(s) => s,
            // The prefix up to `valid_up_to` is UTF-8 by definition.
            Err(e) => std::str::from_utf8(&stored[..e.valid_up_to()]).unwrap_or(""),
        }
    }

    /// The name's length in bytes, overlong ones included.
    pub fn name_len(&self) -> usize {
        self.name_len as usize
    }

    /// The name bytes as stored in a descriptor (zero-padded).
    pub(crate) fn name_bytes(&self) -> [u8; MAX_NAME_LEN] {
        self.name
    }

    /// Whether the name can be stored in a file.
    ///
    /// # Errors
    ///
    /// [`NameError`]: empty, longer than [`MAX_NAME_LEN`], or with a NUL.
    pub fn check_name(&self) -> Result<(), NameError> {
        if self.name_len as usize > MAX_NAME_LEN {
            return Err(NameError::TooLong {
                len: self.name_len as usize,
                max: MAX_NAME_LEN,
            });
        }
        validate_name(&self.name[..self.name_len as usize]).map(|_| ())
    }

    /// The identity of "no payload" (kinds whose body is not typed): named
    /// [`NONE_NAME`], size and alignment 0.
    pub const NONE: Self = Self::named(NONE_NAME, 0, 0);

    /// The identity of byte messages of at most `max_len` bytes: named
    /// [`BYTES_NAME`], alignment 1.
    pub const fn bytes(max_len: u32) -> Self {
        Self::named(BYTES_NAME, max_len, 1)
    }
}

impl fmt::Display for TypeInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let more = if self.name_len as usize > MAX_NAME_LEN {
            "…"
        } else {
            ""
        };
        write!(
            f,
            "{}{more} ({} B, align {})",
            self.name(),
            self.size,
            self.align
        )
    }
}

impl fmt::Debug for TypeInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypeInfo")
            .field("name", &self.name())
            .field("name_len", &self.name_len)
            .field("size", &self.size)
            .field("align", &self.align)
            .finish()
    }
}

/// 64-bit FNV-1a: the descriptor checksum.
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
    fn primitives_have_fixed_names() {
        let names = [
            TypeInfo::of::<u8>(),
            TypeInfo::of::<u16>(),
            TypeInfo::of::<u32>(),
            TypeInfo::of::<u64>(),
            TypeInfo::of::<u128>(),
            TypeInfo::of::<i8>(),
            TypeInfo::of::<i16>(),
            TypeInfo::of::<i32>(),
            TypeInfo::of::<i64>(),
            TypeInfo::of::<i128>(),
            TypeInfo::of::<f32>(),
            TypeInfo::of::<f64>(),
        ]
        .map(|t| t.name().to_string());
        assert_eq!(
            names,
            [
                "u8", "u16", "u32", "u64", "u128", "i8", "i16", "i32", "i64", "i128", "f32", "f64"
            ]
        );
        let u64_info = TypeInfo::of::<u64>();
        assert_eq!((u64_info.size, u64_info.align), (8, 8));
        assert_eq!(u64_info.to_string(), "u64 (8 B, align 8)");
    }

    #[test]
    fn type_info_tells_types_apart() {
        assert_ne!(TypeInfo::of::<u64>(), TypeInfo::of::<i64>());
        assert_ne!(TypeInfo::of::<u64>(), TypeInfo::of::<f64>());
        assert_ne!(TypeInfo::of::<[u8; 8]>(), TypeInfo::of::<u64>());
        assert_eq!(TypeInfo::of::<[u32; 4]>().size, 16);
        assert_eq!(TypeInfo::of::<[u32; 4]>().align, 4);
        assert_eq!(TypeInfo::of::<u32>(), TypeInfo::named("u32", 4, 4));
    }

    #[test]
    fn arrays_are_named_recursively() {
        assert_eq!(TypeInfo::of::<[u8; 16]>().name(), "[u8; 16]");
        assert_eq!(TypeInfo::of::<[[f64; 2]; 4]>().name(), "[[f64; 2]; 4]");
        assert_eq!(
            TypeInfo::of::<[[[i8; 1]; 0]; 3]>().name(),
            "[[[i8; 1]; 0]; 3]"
        );
        assert_eq!(
            TypeInfo::of::<[[f64; 2]; 4]>().to_string(),
            "[[f64; 2]; 4] (64 B, align 8)"
        );
    }

    mod a {
        #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
        #[repr(C)]
        pub struct Quote {
            pub bid: f64,
            pub ask: f64,
        }
        crate::payload!(Quote);

        #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
        #[repr(C)]
        pub struct Renamed(pub u32);
        crate::payload!(Renamed = "market.Renamed");
    }

    mod b {
        #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
        #[repr(C)]
        pub struct Quote {
            pub bid: f64,
            pub ask: f64,
        }
        crate::payload!(Quote);
    }

    mod c {
        #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
        #[repr(C)]
        pub struct Pair(pub u16, pub u16);
    }
    // A path needs a name of its own.
    crate::payload!(c::Pair = "Pair<u16>");

    /// 60 bytes: fits alone, not in an array.
    #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    #[repr(C)]
    struct Sixty(u8);
    crate::payload!(Sixty = "a long but acceptable name ................................x");

    #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    #[repr(C)]
    struct Wordy(u8);
    impl Payload for Wordy {
        fn payload_name(out: &mut String) {
            out.push_str(&"é".repeat(40)); // 80 bytes
        }
    }

    #[test]
    fn declared_names_default_to_the_identifier() {
        assert_eq!(TypeInfo::of::<a::Quote>().name(), "Quote");
        // The same name, size and alignment in another module: one identity.
        assert_eq!(TypeInfo::of::<a::Quote>(), TypeInfo::of::<b::Quote>());
        assert_eq!(TypeInfo::of::<[a::Quote; 3]>().name(), "[Quote; 3]");
    }

    #[test]
    fn declared_names_can_be_overridden() {
        assert_eq!(TypeInfo::of::<a::Renamed>().name(), "market.Renamed");
        assert_eq!(TypeInfo::of::<c::Pair>().name(), "Pair<u16>");
        assert_eq!(
            TypeInfo::of::<c::Pair>().to_string(),
            "Pair<u16> (4 B, align 2)"
        );
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(TypeInfo::of::<a::Quote>().check_name(), Ok(()));
        assert_eq!(TypeInfo::NONE.check_name(), Ok(()));
        assert_eq!(TypeInfo::bytes(100).check_name(), Ok(()));
        assert_eq!(TypeInfo::bytes(100).name(), "bytes");
        let long = TypeInfo::of::<Wordy>();
        assert_eq!(
            long.check_name(),
            Err(NameError::TooLong { len: 80, max: 64 })
        );
        assert_eq!(long.name_len(), 80);
        assert_eq!(long.name(), "é".repeat(32), "cut at a character boundary");
        assert!(long.to_string().starts_with("éé"));
        assert!(long.to_string().contains("… (1 B, align 1)"));
        // An array of a long name is long too.
        let nested = TypeInfo::of::<[[[a::Renamed; 1000]; 1000]; 1000]>();
        assert_eq!(nested.check_name(), Ok(()), "{nested}");
        assert_eq!(TypeInfo::of::<Sixty>().name_len(), 60);
        assert_eq!(TypeInfo::of::<Sixty>().check_name(), Ok(()));
        assert_eq!(
            TypeInfo::of::<[Sixty; 1]>().check_name(),
            Err(NameError::TooLong { len: 65, max: 64 })
        );
        assert_eq!(
            TypeInfo::named("", 1, 1).check_name(),
            Err(NameError::Empty)
        );
        assert_eq!(
            TypeInfo::named("a\0b", 1, 1).check_name(),
            Err(NameError::Nul)
        );
        assert_eq!(
            validate_name(b"ab\xff"),
            Err(NameError::NotUtf8 { valid_up_to: 2 })
        );
        assert_eq!(validate_name(b"[u8; 16]"), Ok("[u8; 16]"));
        assert!(is_valid_name("x"));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name(&"x".repeat(65)));
        assert!(is_valid_name(&"x".repeat(64)));
    }
}
