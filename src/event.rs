//! [`Event`]: a flag processes wait on — `multiprocessing.Event` without the
//! manager. Waiters sleep on the shared futex; `set` wakes them all. The
//! flag and its wait point are `raw::event::EventWords`.

use std::path::Path;
use std::time::Duration;

use crate::error::OpenError;
use crate::handle::{Mapped, Shape};
use crate::layout::Kind;
use crate::pod::TypeInfo;
use crate::raw::event::EventWords;
use crate::region::{CreateOptions, Expect, Region};
use crate::sync::AtomicU64;

/// An event file: its words at the start of the body, nothing after them.
struct EventShape;

impl Shape for EventShape {
    type Spec = ();
    type Geometry = ();
    type Head = EventWords;
    type Elem = AtomicU64;

    fn expect(_: Option<&()>) -> Expect {
        Expect {
            kind: Kind::Event,
            elem: TypeInfo::NONE,
            any_size: false,
        }
    }

    fn capacity(_: &()) -> u64 {
        1
    }

    fn geometry(_: &Region) -> Result<(), OpenError> {
        Ok(())
    }

    fn elems(_: &()) -> usize {
        0
    }
}

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
    mapped: Mapped<EventShape>,
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Event")
            .field("path", &self.region().path())
            .field("set", &self.is_set())
            .finish()
    }
}

impl Event {
    /// Creates a clear event file.
    ///
    /// # Errors
    ///
    /// The [`OpenError`]s of any create.
    pub fn create(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        Mapped::create(path, &(), &CreateOptions::default()).map(|mapped| Self { mapped })
    }

    /// Opens an existing event file.
    ///
    /// # Errors
    ///
    /// The validation errors of any open.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        Mapped::open(path).map(|mapped| Self { mapped })
    }

    /// Opens the event at `path`, creating it (clear) if there is none;
    /// racing processes all end up with the same event.
    ///
    /// Opening an existing event never resets it: a set flag stays set,
    /// and an existing event is attached as it is. An event has one
    /// shape, so what is checked is that the file is an event
    /// ([`OpenError::WrongKind`] otherwise, the file left alone).
    ///
    /// # Errors
    ///
    /// As [`Event::open`] and [`Event::create`].
    pub fn open_or_create(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        Mapped::open_or_create(path, &(), &CreateOptions::default()).map(|mapped| Self { mapped })
    }

    /// Sets the flag and wakes every waiter.
    pub fn set(&self) {
        self.mapped.head().set();
    }

    /// Clears the flag.
    pub fn clear(&self) {
        self.mapped.head().clear();
    }

    /// Whether the flag is set (out of date as soon as it returns).
    pub fn is_set(&self) -> bool {
        self.mapped.head().is_set()
    }

    /// Waits (asleep, no CPU) until the flag is set.
    pub fn wait(&self) {
        self.mapped.head().wait_until(None);
    }

    /// Waits until the flag is set, at most `timeout`; whether it is set.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.mapped
            .head()
            .wait_until(crate::wait::deadline(timeout))
    }

    /// The mapped file.
    pub fn region(&self) -> &Region {
        self.mapped.region()
    }
}

#[cfg(test)]
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
