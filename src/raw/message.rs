//! Byte messages in `u64` words, as the byte-message kinds store them (the
//! SPSC byte ring and the MPMC byte queue): a length word, then the bytes
//! packed into words in native order (the last word zero-padded), at most
//! a maximum length chosen at creation.
//!
//! The words are copied with relaxed atomic accesses; the ring's own
//! Release/Acquire of a position orders them. A length read from the
//! mapping is untrusted: it is clamped to the maximum and to the caller's
//! buffer before any byte is copied.
//!
//! The SPSC byte ring also carries messages longer than its maximum, in
//! *pieces* ([`Piece`]): each piece is such a message of its own, its length
//! word carrying two flag bits besides the length (whether it continues a
//! message, whether more pieces follow). A message that fits one piece has
//! both flags clear, so its words are exactly those of a plain message.

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

/// Piece header bit 63: more pieces of this message follow (clear: this
/// is the message's last piece).
pub const PIECE_MORE: u64 = 1 << 63;
/// Piece header bit 62: this piece continues the message of the piece
/// before it (clear: this is a message's first piece).
pub const PIECE_CONT: u64 = 1 << 62;
/// Piece header bits 0..32: the piece's length in bytes. Bits 32..62 are
/// zero.
pub const PIECE_LEN: u64 = 0xffff_ffff;

/// One piece of a message, as its header word describes it.
///
/// A message of `n` bytes travels as `max(1, ceil(n / max_len))` pieces,
/// every one but the last holding exactly `max_len` bytes; a message of at
/// most `max_len` bytes is one piece with both flags clear, the same words
/// as a plain message.
///
/// # Examples
///
/// ```
/// use mmring::raw::message::{PIECE_CONT, PIECE_MORE, Piece};
///
/// let whole = Piece { len: 5, first: true, last: true };
/// assert_eq!(whole.header(), 5); // a plain length word
/// let middle = Piece { len: 8, first: false, last: false };
/// assert_eq!(middle.header(), 8 | PIECE_CONT | PIECE_MORE);
/// assert_eq!(Piece::parse(middle.header(), 8), Some(middle));
/// // Garbage is refused: too long, a short piece with more to come,
/// // reserved bits.
/// assert_eq!(Piece::parse(9, 8), None);
/// assert_eq!(Piece::parse(7 | PIECE_MORE, 8), None);
/// assert_eq!(Piece::parse(1 << 40, 8), None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    /// Bytes in this piece.
    pub len: usize,
    /// Whether this is the message's first piece ([`PIECE_CONT`] clear).
    pub first: bool,
    /// Whether this is the message's last piece ([`PIECE_MORE`] clear).
    pub last: bool,
}

impl Piece {
    /// The header word: the length, then the flags.
    pub fn header(self) -> u64 {
        let mut h = self.len as u64 & PIECE_LEN;
        if !self.first {
            h |= PIECE_CONT;
        }
        if !self.last {
            h |= PIECE_MORE;
        }
        h
    }

    /// The piece a header word read from the mapping describes, or `None`
    /// if no honest writer of pieces of at most `max_len` bytes writes it:
    /// a reserved bit set, a length above `max_len`, or a piece with more
    /// to follow that is not full.
    pub fn parse(header: u64, max_len: usize) -> Option<Self> {
        let len = header & PIECE_LEN;
        if header & !(PIECE_LEN | PIECE_CONT | PIECE_MORE) != 0 || len > max_len as u64 {
            return None;
        }
        let piece = Self {
            // At most max_len: fits a usize.
            len: len as usize,
            first: header & PIECE_CONT == 0,
            last: header & PIECE_MORE == 0,
        };
        (piece.last || piece.len == max_len).then_some(piece)
    }
}

/// A piece as it lies in a ring's words (its header word read once): what
/// the header says, and its data words.
pub struct StoredPiece<'w> {
    /// The parsed header; `None` for a header no honest writer writes
    /// ([`Piece::parse`]).
    pub piece: Option<Piece>,
    a: &'w [AtomicU64],
    b: &'w [AtomicU64],
}

impl StoredPiece<'_> {
    /// Copies the piece's first `out.len()` bytes into `out` (callers take
    /// at most the piece's length: at most the data words' bytes).
    pub fn copy_to(&self, out: &mut [u8]) {
        let (oa, ob) = out.split_at_mut(out.len().min(self.a.len().saturating_mul(8)));
        copy_out(self.a, oa);
        copy_out(self.b, ob);
    }
}

/// Writes one piece of a message into its words, which wrap around the end
/// of a ring as `a` then `b`: the header word of `piece` (whose `len` is
/// `bytes.len()`), then `bytes`.
pub fn write_piece_split(a: &[AtomicU64], b: &[AtomicU64], piece: Piece, bytes: &[u8]) {
    let Some((header, a, b)) = split_len(a, b) else {
        return;
    };
    debug_assert_eq!(piece.len, bytes.len());
    // Relaxed: published by the ring's Release store of its tail.
    header.store(piece.header(), Ordering::Relaxed);
    let (ba, bb) = bytes.split_at(bytes.len().min(a.len().saturating_mul(8)));
    copy_in(a, ba);
    copy_in(b, bb);
}

/// Reads one piece's header from its words (`a` then `b`, as
/// [`write_piece_split`] wrote them), parsed against `max_len`; `None` if
/// there are no words at all.
pub fn read_piece_split<'w>(
    a: &'w [AtomicU64],
    b: &'w [AtomicU64],
    max_len: usize,
) -> Option<StoredPiece<'w>> {
    let (header, a, b) = split_len(a, b)?;
    // Relaxed: ordered by the ring's Acquire load of the tail.
    let piece = Piece::parse(header.load(Ordering::Relaxed), max_len);
    Some(StoredPiece { piece, a, b })
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
    fn a_piece_round_trips_wherever_it_wraps_and_a_whole_one_is_a_plain_message() {
        let bytes = b"0123456789abcdef";
        for (first, last) in [(true, true), (true, false), (false, false), (false, true)] {
            let piece = Piece {
                len: 16,
                first,
                last,
            };
            for split in 0..=3 {
                let (a, b) = (zeroed(split), zeroed(3 - split));
                write_piece_split(&a, &b, piece, bytes);
                let stored = read_piece_split(&a, &b, 16).unwrap();
                assert_eq!(stored.piece, Some(piece), "split at {split}");
                let mut out = [0u8; 16];
                stored.copy_to(&mut out);
                assert_eq!(&out, bytes, "split at {split}");
                if first && last {
                    // The same words as a plain message.
                    let mut plain = [0u8; 16];
                    assert_eq!(read_split(&a, &b, 16, &mut plain), 16);
                    assert_eq!(&plain, bytes);
                }
            }
        }
        assert!(read_piece_split(&[], &[], 16).is_none());
    }

    #[test]
    fn garbage_piece_headers_are_refused() {
        for max_len in [1usize, 8, 65_536] {
            for garbage in [
                u64::MAX,
                1 << 32,
                1 << 61,
                PIECE_CONT | (1 << 40),
                max_len as u64 + 1,
                (max_len as u64 - 1) | PIECE_MORE,
                PIECE_MORE,
            ] {
                assert_eq!(Piece::parse(garbage, max_len), None, "{garbage:#x}");
            }
            let full = max_len as u64;
            assert!(Piece::parse(full | PIECE_MORE, max_len).is_some());
            assert!(Piece::parse(full | PIECE_MORE | PIECE_CONT, max_len).is_some());
            assert!(Piece::parse(PIECE_CONT, max_len).is_some());
        }
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
