//! The two-thread runner: the in-process baselines (`std::sync::RwLock`)
//! run the same [`Control`] protocol as the two-process rows, with the
//! peer in a scoped thread instead of a forked child.

use std::io;
use std::sync::atomic::AtomicU64;

use super::control::{Budget, Control, Counted, Sample, WORDS};

/// Runs `lead_op` in this thread and `peer_op` in a second one, for
/// `budget`.
///
/// # Errors
///
/// If an operation fails on either side, or the peer thread panics.
pub fn run(
    budget: Budget,
    counted: Counted,
    lead_op: impl FnMut() -> bool,
    peer_op: impl FnMut() -> bool + Send,
) -> io::Result<Sample> {
    let words: Vec<AtomicU64> = (0..WORDS).map(|_| AtomicU64::new(0)).collect();
    run_on(Control::new(&words), budget, counted, lead_op, peer_op)
}

/// [`run`] on control words the caller made, so that the operations can
/// look at them ([`Control::stop_requested`]).
///
/// # Errors
///
/// As [`run`].
pub fn run_on(
    control: Control<'_>,
    budget: Budget,
    counted: Counted,
    lead_op: impl FnMut() -> bool,
    peer_op: impl FnMut() -> bool + Send,
) -> io::Result<Sample> {
    control.reset();
    std::thread::scope(|s| {
        let peer = s.spawn(move || control.peer(peer_op));
        // `lead` raises STOP on every way out, so the join below cannot
        // hang on a peer still waiting to start.
        let sample = control.lead(
            budget,
            counted,
            Some(&mut || Ok(!peer.is_finished())),
            lead_op,
        );
        match peer.join() {
            Ok(_) => sample,
            Err(_) => Err(io::Error::other("the peer thread panicked")),
        }
    })
}
