//! The event's words and algorithm: a flag and a wait point (see
//! [`crate::Event`], the handle over a file).

use std::time::Instant;

use crate::layout::{BodyLayout, Kind, LayoutError};
use crate::pod::TypeInfo;
use crate::sync::{AtomicU32, Ordering};
use crate::wait::WaitPoint;

/// Bytes of an event's body: its words, one cache line.
const BODY_SIZE: u64 = 64;

/// The body layout of an event: no payload, one line of words.
pub fn body_layout(elem: TypeInfo, capacity: u64) -> Result<BodyLayout, LayoutError> {
    super::unit_body_layout(Kind::Event, elem, capacity, BODY_SIZE)
}

/// The event's shared words: the flag and a wait point.
#[repr(C)]
pub struct EventWords {
    state: AtomicU32,
    epoch: AtomicU32,
    waiters: AtomicU32,
    _reserved: AtomicU32,
    _pad: [u64; 6],
}

#[cfg(not(loom))]
static_assertions::const_assert_eq!(size_of::<EventWords>() as u64, BODY_SIZE);

#[cfg(not(loom))]
// SAFETY: repr(C), only the switch module's atomics and u64 padding.
unsafe impl crate::layout::MappedAtomic for EventWords {}

impl Default for EventWords {
    fn default() -> Self {
        Self::new()
    }
}

impl EventWords {
    /// A clear event.
    pub fn new() -> Self {
        Self {
            state: AtomicU32::new(0),
            epoch: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
            _reserved: AtomicU32::new(0),
            _pad: [0; 6],
        }
    }

    fn point(&self) -> WaitPoint<'_> {
        WaitPoint::new(&self.epoch, &self.waiters)
    }

    /// Sets the flag and wakes every waiter.
    pub fn set(&self) {
        // Release pairs with the Acquire in `is_set`: what the setter did
        // before is visible to a waiter that sees the flag.
        self.state.store(1, Ordering::Release);
        self.point().notify();
    }

    /// Clears the flag.
    pub fn clear(&self) {
        // Release: orders the clear after what the clearer did before, for
        // a reader that acquires it (symmetry with `set`).
        self.state.store(0, Ordering::Release);
    }

    /// Whether the flag is set (out of date as soon as it returns).
    pub fn is_set(&self) -> bool {
        // Acquire pairs with the Release store in `set`.
        self.state.load(Ordering::Acquire) != 0
    }

    /// Waits until the flag is set or `deadline` passes; whether it is set.
    pub fn wait_until(&self, deadline: Option<Instant>) -> bool {
        self.point()
            .wait_until(deadline, || self.is_set().then_some(()))
            .is_ok()
    }

    /// Processes asleep here (a snapshot).
    pub fn waiters(&self) -> u32 {
        self.point().waiters()
    }
}
