//! [`Event`]: a flag processes wait on — `multiprocessing.Event` without the
//! manager. Waiters sleep on the shared futex; `set` wakes them all.

use std::time::{Duration, Instant};

use crate::sync::{AtomicU32, Ordering};
use crate::wait::WaitPoint;

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
static_assertions::const_assert_eq!(size_of::<EventWords>(), 64);

#[cfg(not(loom))]
// SAFETY: repr(C), only the switch module's atomics and u64 padding.
unsafe impl crate::region::MappedAtomic for EventWords {}

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

#[cfg(not(loom))]
pub use mapped::Event;

#[cfg(not(loom))]
mod mapped {
    use super::*;
    use crate::error::OpenError;
    use crate::layout::Kind;
    use crate::pod::TypeInfo;
    use crate::region::{self, CreateOptions, Expect, Region, View};
    use std::path::Path;

    /// A flag in a file that any number of processes set, clear and wait on.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("ready");
    /// use std::time::Duration;
    /// use mmring::Event;
    ///
    /// let ready = Event::create(&path)?;
    /// assert!(!ready.wait_timeout(Duration::from_millis(1)));
    /// Event::open(&path)?.set(); // from any process
    /// assert!(ready.wait_timeout(Duration::from_secs(1)));
    /// # Ok::<(), mmring::OpenError>(())
    /// ```
    pub struct Event {
        view: View<EventWords>,
    }

    impl std::fmt::Debug for Event {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Event")
                .field("path", &self.view.region().path())
                .field("set", &self.is_set())
                .finish()
        }
    }

    fn expect() -> Expect {
        Expect {
            kind: Kind::Event,
            elem: TypeInfo::NONE,
            any_size: false,
        }
    }

    impl Event {
        fn wrap(region: Region) -> Self {
            Self {
                view: View::new(region, |r| &r.body::<EventWords>(0, 1)[0]),
            }
        }

        /// Creates a clear event file.
        ///
        /// # Errors
        ///
        /// The [`OpenError`]s of any create.
        pub fn create(path: impl AsRef<Path>) -> Result<Self, OpenError> {
            let path = region::resolve(path);
            Region::create(&path, expect(), 1, &CreateOptions::default(), |_| {}).map(Self::wrap)
        }

        /// Opens an existing event file.
        ///
        /// # Errors
        ///
        /// The validation errors of any open.
        pub fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
            let path = region::resolve(path);
            Region::open(&path, expect()).map(Self::wrap)
        }

        /// Opens the event at `path`, creating it (clear) if there is none;
        /// racing processes all end up with the same event.
        ///
        /// Opening an existing event never resets it: a set flag stays set.
        ///
        /// # Errors
        ///
        /// As [`Event::open`] and [`Event::create`].
        pub fn open_or_create(path: impl AsRef<Path>) -> Result<Self, OpenError> {
            let path = region::resolve(path);
            Region::open_or_create(&path, expect(), 1, &CreateOptions::default(), |_| {})
                .map(Self::wrap)
        }

        /// Sets the flag and wakes every waiter.
        pub fn set(&self) {
            self.view.set();
        }

        /// Clears the flag.
        pub fn clear(&self) {
            self.view.clear();
        }

        /// Whether the flag is set (out of date as soon as it returns).
        pub fn is_set(&self) -> bool {
            self.view.is_set()
        }

        /// Waits (asleep, no CPU) until the flag is set.
        pub fn wait(&self) {
            self.view.wait_until(None);
        }

        /// Waits until the flag is set, at most `timeout`; whether it is set.
        pub fn wait_timeout(&self, timeout: Duration) -> bool {
            self.view.wait_until(crate::wait::deadline(timeout))
        }

        /// The mapped file.
        pub fn region(&self) -> &Region {
            self.view.region()
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn set_wakes_a_sleeping_waiter_and_clear_resets() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("e");
        let e = Event::create(&p).unwrap();
        assert!(!e.is_set());
        assert!(!e.wait_timeout(Duration::from_millis(5)));
        std::thread::scope(|s| {
            let h = s.spawn(|| {
                Event::open(&p)
                    .unwrap()
                    .wait_timeout(Duration::from_secs(30))
            });
            std::thread::sleep(Duration::from_millis(20));
            e.set();
            assert!(h.join().unwrap());
        });
        e.clear();
        assert!(!e.is_set());
    }
}
