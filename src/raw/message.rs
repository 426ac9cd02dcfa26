//! Byte messages in `u64` words, as the byte-message kinds store them (the
//! SPSC byte ring and the MPMC byte queue): a length word, then the bytes
//! packed into words in native order (the last word zero-padded), at most
//! a maximum length chosen at creation.
//!
//! The words are copied with relaxed atomic accesses; the ring's own
//! Release/Acquire of a position orders them. A length read from the
//! mapping is untrusted: it is clamped to the maximum and to the caller's
//! buffer before any byte is copied.

use crate::layout::{LayoutError, MAX_SLOT_SIZE, bytes_type};
use crate::pod::TypeInfo;
use crate::raw::seqlock::{copy_in, copy_out};
use crate::sync::{AtomicU64, Ordering};

/// Words one message of at most `max_len` bytes takes: a length word, then
/// the bytes.
pub const fn words(max_len: u64) -> u64 {
    1 + max_len.div_ceil(8)
}

/// The payload check of the byte-message kinds' body layouts: `elem` must
/// be [`bytes_type`] of a maximum length from 1 to [`MAX_SLOT_SIZE`] bytes.
/// Returns that maximum length.
///
/// # Errors
///
/// [`LayoutError::Payload`], naming what was expected and what was found.
pub fn check_payload(elem: TypeInfo) -> Result<u64, LayoutError> {
    let max_len = u64::from(elem.size);
    if elem != bytes_type(elem.size) || max_len == 0 || max_len > MAX_SLOT_SIZE {
        return Err(LayoutError::Payload(format!(
            "byte messages of at most 1 to {MAX_SLOT_SIZE} bytes, found {elem}"
        )));
    }
    Ok(max_len)
}

/// `Err((len, max_len))` if `msg` is longer than `max_len` bytes (what the
/// push calls of the byte kinds refuse as `TooLong` before they touch the
/// ring).
#[inline]
pub fn check_len(msg: &[u8], max_len: usize) -> Result<(), (usize, usize)> {
    if msg.len() > max_len {
        return Err((msg.len(), max_len));
    }
    Ok(())
}

/// The length to copy out for a stored length word: clamped to `max_len`
/// and to `out_len`, never trusted.
#[inline]
fn clamped(stored: u64, max_len: usize, out_len: usize) -> usize {
    usize::try_from(stored)
        .unwrap_or(usize::MAX)
        .min(max_len)
        .min(out_len)
}

/// Writes `msg` into a message's words: its length, then its bytes (words
/// past the message are left as they were). `words` holds at least
/// [`words`]`(msg.len())` words (bytes beyond them are not written).
#[inline]
pub fn write(words: &[AtomicU64], msg: &[u8]) {
    let Some((len, data)) = words.split_first() else {
        return;
    };
    // Relaxed: published by the ring's Release store of the position.
    len.store(msg.len() as u64, Ordering::Relaxed);
    copy_in(data, msg);
}

/// Reads a message from its words into `out`: the stored length is
/// clamped to `max_len` and to `out`, never trusted. Returns the length.
#[inline]
pub fn read(words: &[AtomicU64], max_len: usize, out: &mut [u8]) -> usize {
    let Some((len, data)) = words.split_first() else {
        return 0;
    };
    // Relaxed: ordered by the ring's Acquire load of the position.
    let len = clamped(len.load(Ordering::Relaxed), max_len, out.len());
    copy_out(data, &mut out[..len]);
    len
}

/// Splits a message's two runs of words (a ring's chunk that wraps) into
/// its length word and the two runs of data words after it (`None` if
/// there are no words at all).
fn split_len<'w>(
    a: &'w [AtomicU64],
    b: &'w [AtomicU64],
) -> Option<(&'w AtomicU64, &'w [AtomicU64], &'w [AtomicU64])> {
    match a.split_first() {
        Some((len, rest)) => Some((len, rest, b)),
        None => b.split_first().map(|(len, rest)| (len, a, rest)),
    }
}

/// [`write`] into a message that wraps around the end of a ring: its
/// words are `a` then `b`.
pub fn write_split(a: &[AtomicU64], b: &[AtomicU64], msg: &[u8]) {
    let Some((len, a, b)) = split_len(a, b) else {
        return;
    };
    // Relaxed: published by the ring's Release store of its tail.
    len.store(msg.len() as u64, Ordering::Relaxed);
    let (ma, mb) = msg.split_at(msg.len().min(a.len().saturating_mul(8)));
    copy_in(a, ma);
    copy_in(b, mb);
}

/// [`read`] from a message that wraps around the end of a ring: its words
/// are `a` then `b`.
pub fn read_split(a: &[AtomicU64], b: &[AtomicU64], max_len: usize, out: &mut [u8]) -> usize {
    let Some((len, a, b)) = split_len(a, b) else {
        return 0;
    };
    // Relaxed: ordered by the ring's Acquire load of the tail.
    let len = clamped(len.load(Ordering::Relaxed), max_len, out.len());
    let out = &mut out[..len];
    let (oa, ob) = out.split_at_mut(len.min(a.len().saturating_mul(8)));
    copy_out(a, oa);
    copy_out(b, ob);
    len
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn zeroed(n: usize) -> Vec<AtomicU64> {
        (0..n).map(|_| AtomicU64::new(0)).collect()
    }

    fn data(values: &[u64]) -> Vec<AtomicU64> {
        values.iter().map(|&v| AtomicU64::new(v)).collect()
    }

    #[test]
    fn a_message_is_a_length_word_then_its_bytes() {
        assert_eq!(
            (words(1), words(8), words(9), words(65_536)),
            (2, 2, 3, 8193)
        );
        let w = zeroed(words(9) as usize);
        write(&w, b"abcdefghi");
        assert_eq!(w[0].load(Ordering::Relaxed), 9);
        assert_eq!(
            w[1].load(Ordering::Relaxed),
            u64::from_ne_bytes(*b"abcdefgh")
        );
        assert_eq!(
            w[2].load(Ordering::Relaxed),
            u64::from_ne_bytes(*b"i\0\0\0\0\0\0\0")
        );
        let mut out = [0u8; 9];
        assert_eq!(read(&w, 9, &mut out), 9);
        assert_eq!(&out, b"abcdefghi");
        // A shorter message over it: the stored length says where it ends.
        write(&w, b"xy");
        assert_eq!(read(&w, 9, &mut out), 2);
        assert_eq!(&out[..2], b"xy");
    }

    #[test]
    fn a_stored_length_is_clamped_to_the_maximum_and_the_buffer() {
        let w = zeroed(3);
        write(&w, b"abcdefghi");
        w[0].store(u64::MAX, Ordering::Relaxed); // a peer's garbage
        let mut out = [0u8; 16];
        assert_eq!(read(&w, 9, &mut out), 9);
        let mut short = [0u8; 4];
        assert_eq!(read(&w, 9, &mut short), 4);
        assert_eq!(&short, b"abcd");
        assert_eq!(read(&[], 9, &mut out), 0, "no words: nothing");
        assert_eq!(read_split(&[], &[], 9, &mut out), 0);
    }

    #[test]
    fn a_split_message_reads_back_whole_wherever_it_wraps() {
        let msg = b"0123456789abcdefXYZ";
        for first in 0..=words(msg.len() as u64) as usize {
            let (a, b) = (zeroed(first), zeroed(4 - first));
            write_split(&a, &b, msg);
            let mut out = [0u8; 19];
            assert_eq!(read_split(&a, &b, 19, &mut out), 19, "split at {first}");
            assert_eq!(&out, msg, "split at {first}");
        }
    }

    #[test]
    fn a_garbage_length_is_clamped_in_a_split_message() {
        let mut out = [0u8; 16];
        let a = data(&[u64::MAX, u64::from_ne_bytes(*b"abcdefgh")]);
        let b = data(&[u64::from_ne_bytes(*b"ijklmnop")]);
        assert_eq!(read_split(&a, &b, 12, &mut out), 12);
        assert_eq!(&out[..12], b"abcdefghijkl");
        // The length word itself may be the one that wrapped.
        let b = data(&[5, u64::from_ne_bytes(*b"qrstuvwx")]);
        assert_eq!(read_split(&[], &b, 12, &mut out), 5);
        assert_eq!(&out[..5], b"qrstu");
        assert_eq!(read_split(&[], &[], 12, &mut out), 0);
        for garbage in [u64::MAX, 1 << 63, u64::from(u32::MAX) + 1, 17, 9] {
            let a = data(&[garbage, 1]);
            let b = data(&[2]);
            // Clamped to max_len (16: two data words), then to `out`.
            assert!(read_split(&a, &b, 16, &mut out) <= 16);
            assert!(read_split(&a, &b, 16, &mut [0u8; 3]) <= 3);
        }
    }

    #[test]
    fn a_split_message_keeps_the_words_past_it() {
        let a = data(&[0, 0]);
        let b = data(&[0, 0, 7]);
        write_split(&a, &b, b"abcdefghijk");
        let mut out = [0u8; 32];
        assert_eq!(read_split(&a, &b, 24, &mut out), 11);
        assert_eq!(&out[..11], b"abcdefghijk");
        assert_eq!(
            b[2].load(Ordering::Relaxed),
            7,
            "words past the message kept"
        );
        // Length word alone in the first run.
        let a = data(&[0]);
        write_split(&a, &b, b"xyz");
        assert_eq!(read_split(&a, &b, 24, &mut out), 3);
        assert_eq!(&out[..3], b"xyz");
    }

    #[test]
    fn lengths_and_payloads_are_checked() {
        assert_eq!(check_len(b"abc", 3), Ok(()));
        assert_eq!(check_len(b"abcd", 3), Err((4, 3)));
        assert_eq!(check_payload(bytes_type(100)), Ok(100));
        assert!(check_payload(bytes_type(0)).is_err());
        assert!(check_payload(bytes_type(MAX_SLOT_SIZE as u32 + 1)).is_err());
        assert!(check_payload(TypeInfo::of::<u64>()).is_err());
    }
}
