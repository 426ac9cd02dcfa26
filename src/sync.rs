//! The one switch between `std` and [loom](https://docs.rs/loom).
//!
//! Every atomic, fence, spin hint and yield in this crate comes from here, so
//! that building with `RUSTFLAGS="--cfg loom"` swaps all of them for loom's
//! model-checked versions at once. Nothing else in `src/` may name
//! `std::sync::atomic` (`clippy.toml` bans the types, and the pre-stop hook
//! greps for it).
//!
//! Under loom, the types have a different layout from the integers they wrap,
//! so code that reinterprets mapped memory as atomics (the `region`-backed
//! public types) is compiled only without loom. The algorithms themselves take
//! references to these types and run unchanged in both worlds.

#![allow(clippy::disallowed_types)]

#[cfg(not(loom))]
pub use std::sync::atomic::{Ordering, compiler_fence, fence};

#[cfg(not(loom))]
pub use std_atomics::{
    AtomicI8, AtomicI16, AtomicI32, AtomicI64, AtomicU8, AtomicU16, AtomicU32, AtomicU64,
};

/// Without loom, the atomics are `std`'s behind a `repr(transparent)`
/// newtype: the same layout and the same methods (through `Deref`), but a
/// type of this module, so that `clippy.toml`'s ban on naming
/// `std::sync::atomic` types anywhere else does not also ban these.
#[cfg(not(loom))]
mod std_atomics {
    macro_rules! wrap {
        ($name:ident, $int:ty) => {
            #[doc = concat!("`std::sync::atomic::", stringify!($name), "`, through the loom switch.")]
            #[derive(Debug, Default)]
            #[repr(transparent)]
            pub struct $name(std::sync::atomic::$name);

            impl $name {
                /// A new atomic holding `v`.
                pub const fn new(v: $int) -> Self {
                    Self(std::sync::atomic::$name::new(v))
                }
            }

            impl std::ops::Deref for $name {
                type Target = std::sync::atomic::$name;

                #[inline(always)]
                fn deref(&self) -> &Self::Target {
                    &self.0
                }
            }
        };
    }

    wrap!(AtomicI8, i8);
    wrap!(AtomicI16, i16);
    wrap!(AtomicI32, i32);
    wrap!(AtomicI64, i64);
    wrap!(AtomicU8, u8);
    wrap!(AtomicU16, u16);
    wrap!(AtomicU32, u32);
    wrap!(AtomicU64, u64);
}

#[cfg(loom)]
pub use loom::sync::atomic::{
    AtomicI8, AtomicI16, AtomicI32, AtomicI64, AtomicU8, AtomicU16, AtomicU32, AtomicU64, Ordering,
    fence,
};

/// A CPU hint for the body of a short busy-wait loop.
#[inline]
pub fn spin_loop() {
    #[cfg(not(loom))]
    std::hint::spin_loop();
    #[cfg(loom)]
    loom::hint::spin_loop();
}

/// A CPU hint: fetch the cache lines of `words` now, for writing (x86-64's
/// `prefetchw`; nothing elsewhere, and nothing under loom, which has no
/// caches). For an operation that is about to read and then
/// compare-and-swap memory another core last wrote: the lines come over
/// at once, in parallel and already owned, instead of one miss to read,
/// another to take ownership for the swap, and more for each line written
/// after it. Never faults and changes nothing a program can observe.
#[inline(always)]
pub fn prefetch_write(words: &[AtomicU64]) {
    #[cfg(all(not(loom), target_arch = "x86_64"))]
    {
        let start = words.as_ptr() as usize;
        let end = start + std::mem::size_of_val(words);
        let mut line = start & !63;
        while line < end {
            // SAFETY: `prefetchw` is a hint: it never faults, never
            // changes memory and touches no register or flag, whatever
            // the address (the first line may start before `words`: that
            // is still only a hint). Written out
            // because `_mm_prefetch::<_MM_HINT_ET0>` emits a plain read
            // prefetch unless the whole build enables `prfchw`; processors
            // without it (Intel before Broadwell) run it as a no-op.
            unsafe {
                std::arch::asm!(
                    "prefetchw [{p}]",
                    p = in(reg) line,
                    options(nostack, preserves_flags, readonly)
                );
            }
            line += 64;
        }
    }
    #[cfg(any(loom, not(target_arch = "x86_64")))]
    let _ = words;
}

/// Gives the rest of this time slice away.
///
/// Every loop that waits on another *process* calls this after a short spin:
/// on a 2-core machine a waiter that never yields can starve the very process
/// it waits for.
#[inline]
pub fn yield_now() {
    #[cfg(not(loom))]
    std::thread::yield_now();
    #[cfg(loom)]
    loom::thread::yield_now();
}

/// Exponential spin, then yield: the waiting policy of every retry loop that
/// waits for another party to finish a short critical step.
#[derive(Debug, Default)]
pub struct Backoff {
    step: u32,
}

impl Backoff {
    /// Spin this many rounds (doubling the spins each time) before yielding.
    const SPIN_ROUNDS: u32 = 6;

    /// A fresh backoff.
    pub const fn new() -> Self {
        Self { step: 0 }
    }

    /// Waits a little, longer each call: spins first, yields once spinning
    /// has not helped.
    #[inline]
    pub fn snooze(&mut self) {
        if self.step < Self::SPIN_ROUNDS {
            for _ in 0..(1u32 << self.step) {
                spin_loop();
            }
            self.step += 1;
        } else {
            yield_now();
        }
    }

    /// Whether the spinning phase is over (the caller may want to check a
    /// clock or a peer's liveness from now on).
    pub fn is_yielding(&self) -> bool {
        self.step >= Self::SPIN_ROUNDS
    }
}
