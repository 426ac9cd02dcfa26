//! The tools' library side: what `mmring inspect` and `mmring gc` run,
//! over any file and any kind, read-only or under the lock rule of
//! [`region`](crate::region). Public as [`crate::inspect`] and
//! [`crate::gc`].

pub mod gc;
pub mod inspect;
