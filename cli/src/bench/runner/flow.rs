//! The workload of the SPSC rows, written once for every queue (mmring's
//! ring, spinning or blocking; the mutex version; rtrb, crossbeam's
//! `ArrayQueue`, `Mutex<VecDeque>` — the pipe has its own, on bytes): a
//! producer sends numbered [`Message`]s, a consumer checks that each
//! arrives exactly once and in order.
//!
//! * [`sender`] / [`receiver`]: one message per call of the returned
//!   operation (what [`Control`](super::control::Control) counts), single
//!   (`try_push`/`try_pop` per message) or batched ([`BATCH`] messages per
//!   `push_slice`/`pop_slice`, handed out one per call);
//! * [`tagged_sender`] / [`taker`]: the same loops for the MPMC rows
//!   ([`crowd`](super::crowd)): messages tagged with their producer and
//!   counted as sent, and a consumer that can be told to stop once the
//!   queue is empty;
//! * [`ping`] / [`echo`]: the two ends of a round trip through two
//!   queues, for [`roundtrip`](super::roundtrip).
//! * [`Message`]: what the rows send, in two [`Size`]s (`u64`, 64 bytes).
//!
//! Every wait between tries is a [`Spin`](super::spin::Spin): the same
//! policy for all (the blocking queues sleep inside their tries first).

use std::sync::atomic::{AtomicU64, Ordering};

use mmring::{Payload, TryPopError, TryPushError};

use super::spin;

/// Messages per call in the batched rows.
pub const BATCH: usize = 32;

/// The sequence number that ends a round-trip run (the echo side exits).
pub const STOP: u64 = u64::MAX;

/// A message of the SPSC rows: a sequence number, repeated over the whole
/// message, so that a torn or misplaced message fails the run.
pub trait Message: Payload + Send {
    /// The message size in the table's words.
    const NAME: &'static str;

    /// The message carrying `seq`.
    fn new(seq: u64) -> Self;

    /// The sequence number, or `None` if the message is not whole.
    fn seq(&self) -> Option<u64>;
}

impl Message for u64 {
    const NAME: &'static str = "u64";

    #[inline(always)]
    fn new(seq: u64) -> Self {
        seq
    }

    #[inline(always)]
    fn seq(&self) -> Option<u64> {
        Some(*self)
    }
}

/// A 64-byte message: a cache line's worth of payload.
pub type Msg64 = [u64; 8];

impl Message for Msg64 {
    const NAME: &'static str = "64 B";

    #[inline(always)]
    fn new(seq: u64) -> Self {
        [seq; 8]
    }

    /// Checks the first and the last word: a message copied in two halves
    /// from two different sends shows up there.
    #[inline(always)]
    fn seq(&self) -> Option<u64> {
        (self[0] == self[7]).then_some(self[0])
    }
}

/// The message size of a throughput row: [`u64`] or [`Msg64`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Size {
    /// A `u64`.
    U64,
    /// 64 bytes (`[u64; 8]`).
    Bytes64,
}

impl Size {
    /// Both sizes, in table order.
    pub const ALL: [Size; 2] = [Size::U64, Size::Bytes64];

    /// The size as the table names it.
    pub fn name(self) -> &'static str {
        match self {
            Size::U64 => <u64 as Message>::NAME,
            Size::Bytes64 => <Msg64 as Message>::NAME,
        }
    }

    /// The size in criterion's group names.
    pub fn id(self) -> &'static str {
        match self {
            Size::U64 => "u64",
            Size::Bytes64 => "64b",
        }
    }
}

/// The queue is closed, poisoned or otherwise unusable.
#[derive(Clone, Copy, Debug)]
pub struct Broken;

/// The sending end of a queue, tried without waiting — or, for the
/// blocking rows, waiting a bounded time (some milliseconds) inside the
/// queue's own sleep (a futex, a condition variable): a try that comes
/// back empty-handed is then simply made again.
pub trait Tx<M> {
    /// Sends `m` if there is room: `Ok(false)` if the queue is full.
    fn try_one(&mut self, m: M) -> Result<bool, Broken>;
    /// Sends as many of `ms` as fit, in order, as one operation; how many.
    fn try_many(&mut self, ms: &[M]) -> Result<usize, Broken>;
}

/// The receiving end of a queue, tried as a [`Tx`] is.
pub trait Rx<M> {
    /// The oldest message, if any.
    fn try_one(&mut self) -> Result<Option<M>, Broken>;
    /// Up to `out.len()` messages, oldest first, as one operation; how many.
    fn try_many(&mut self, out: &mut [M]) -> Result<usize, Broken>;
}

/// The producing side of a throughput run: one message (0, 1, 2 ...) per
/// call, sent at once (`batched == false`) or gathered [`BATCH`] at a time
/// and sent with [`Tx::try_many`]. Waits while the queue is full; gives up
/// its wait (returning `true`) once `stop` says so. A queue that breaks
/// (is closed) after a stop request ends the run normally: the lead may
/// close it to wake a producer blocked inside a try.
///
/// Allocates nothing: fit for a forked child.
pub fn sender<M: Message>(
    tx: impl Tx<M>,
    batched: bool,
    stop: impl Fn() -> bool,
) -> impl FnMut() -> bool {
    tagged_sender(tx, batched, 0, stop, None)
}

/// [`sender`] for one of several producers: message `i` carries `tag | i`
/// (the producer's number in the high bits, see
/// [`crowd`](super::crowd)), and `sent`, if given, is kept equal to the
/// number of messages actually in the queue (Relaxed stores: the runner
/// reads it after the producer's Release of its DONE word) — a message
/// given up at a stop, or a partial batch, is not counted, so the
/// consumers can be held to the exact count.
pub fn tagged_sender<M: Message>(
    mut tx: impl Tx<M>,
    batched: bool,
    tag: u64,
    stop: impl Fn() -> bool,
    sent: Option<&AtomicU64>,
) -> impl FnMut() -> bool {
    let mut next = 0u64;
    let mut done = 0u64;
    let mut count = move |n: usize| {
        done += n as u64;
        if let Some(sent) = sent {
            // Relaxed: published by the producer's Release store of DONE.
            sent.store(done, Ordering::Relaxed);
        }
    };
    let mut batch = [M::zeroed(); BATCH];
    let mut len = 0usize;
    // Once a stop is seen, the rest of the peer's chunk returns at once.
    let mut stopped = false;
    move || {
        if stopped {
            return true;
        }
        let mut stop_now = || {
            stopped = stop();
            stopped
        };
        let m = M::new(tag | next);
        next += 1;
        if !batched {
            return match spin::until(
                || tx.try_one(m).map(|ok| ok.then_some(())).transpose(),
                &mut stop_now,
            ) {
                Some(Ok(())) => {
                    count(1);
                    true
                }
                // A queue the lead closed (dropped) when it stopped.
                Some(Err(Broken)) => stop_now(),
                None => stopped,
            };
        }
        batch[len] = m;
        len += 1;
        if len < BATCH {
            return true;
        }
        len = 0;
        let mut sent = 0;
        while sent < BATCH {
            let step = spin::until(
                || match tx.try_many(&batch[sent..]) {
                    Ok(0) => None,
                    r => Some(r),
                },
                &mut stop_now,
            );
            match step {
                Some(Ok(n)) => {
                    sent += n;
                    count(n);
                }
                Some(Err(Broken)) => return stop_now(),
                None => return stopped,
            }
        }
        true
    }
}

/// An mmring `try_push` as a [`Tx::try_one`]: `Ok(false)` when full,
/// [`Broken`] once closed.
#[inline(always)]
pub fn pushed<M>(r: Result<(), TryPushError<M>>) -> Result<bool, Broken> {
    match r {
        Ok(()) => Ok(true),
        Err(TryPushError::Full(_)) => Ok(false),
        Err(TryPushError::Closed(_)) => Err(Broken),
    }
}

/// An mmring `try_pop` as an [`Rx::try_one`]: `Ok(None)` when empty,
/// [`Broken`] once closed and drained.
#[inline(always)]
pub fn popped<M>(r: Result<M, TryPopError>) -> Result<Option<M>, Broken> {
    match r {
        Ok(m) => Ok(Some(m)),
        Err(TryPopError::Empty) => Ok(None),
        Err(TryPopError::Closed) => Err(Broken),
    }
}

impl<M, T: Tx<M> + ?Sized> Tx<M> for &mut T {
    #[inline(always)]
    fn try_one(&mut self, m: M) -> Result<bool, Broken> {
        (**self).try_one(m)
    }

    #[inline(always)]
    fn try_many(&mut self, ms: &[M]) -> Result<usize, Broken> {
        (**self).try_many(ms)
    }
}

impl<M, T: Rx<M> + ?Sized> Rx<M> for &mut T {
    #[inline(always)]
    fn try_one(&mut self) -> Result<Option<M>, Broken> {
        (**self).try_one()
    }

    #[inline(always)]
    fn try_many(&mut self, out: &mut [M]) -> Result<usize, Broken> {
        (**self).try_many(out)
    }
}

/// The consuming side of a throughput run: one message per call, checked
/// to be the next in sequence; taken at once (`batched == false`) or from a
/// local batch refilled [`BATCH`] at a time with [`Rx::try_many`]. Waits
/// while the queue is empty; fails after [`spin::PATIENCE`].
pub fn receiver<M: Message>(rx: impl Rx<M>, batched: bool) -> impl FnMut() -> bool {
    let mut expect = 0u64;
    let mut take = taker(rx, batched, || false);
    move || {
        let Some(m) = take() else {
            return false;
        };
        let ok = m.seq() == Some(expect);
        expect += 1;
        ok
    }
}

/// The receiving loop of [`receiver`] without the check: the next message
/// per call, taken at once or from a local batch refilled [`BATCH`] at a
/// time. Waits while the queue is empty; `None` if the queue broke, the
/// wait ran out of [`spin::PATIENCE`], or `stop` (asked while the queue is
/// empty) says so.
pub fn taker<M: Message>(
    mut rx: impl Rx<M>,
    batched: bool,
    mut stop: impl FnMut() -> bool,
) -> impl FnMut() -> Option<M> {
    let mut batch = [M::zeroed(); BATCH];
    let (mut pos, mut len) = (0usize, 0usize);
    move || {
        if !batched {
            return match spin::until(|| rx.try_one().transpose(), &mut stop) {
                Some(Ok(m)) => Some(m),
                _ => None,
            };
        }
        if pos == len {
            let got = spin::until(
                || match rx.try_many(&mut batch) {
                    Ok(0) => None,
                    r => Some(r),
                },
                &mut stop,
            );
            match got {
                Some(Ok(n)) => (pos, len) = (0, n),
                _ => return None,
            }
        }
        pos += 1;
        Some(batch[pos - 1])
    }
}

/// One round trip, for the lead of a round-trip run: sends message `seq`
/// on `tx`, waits until the echo comes back on `rx` and checks it. For
/// [`STOP`] it only sends.
#[inline]
pub fn ping<M: Message>(tx: &mut impl Tx<M>, rx: &mut impl Rx<M>, seq: u64) -> bool {
    let m = M::new(seq);
    if spin::until(
        || tx.try_one(m).map(|ok| ok.then_some(())).transpose(),
        || false,
    )
    .is_none()
    {
        return false;
    }
    seq == STOP
        || matches!(
            spin::until(|| rx.try_one().transpose(), || false),
            Some(Ok(back)) if back.seq() == Some(seq)
        )
}

/// What the echo side of a round trip did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Echo {
    /// Sent a message back; call again.
    Again,
    /// Received [`STOP`]: the run is over.
    Stop,
    /// A queue broke or the wait ran out of patience.
    Failed,
}

/// The echo side of a spinning round trip: waits for a message on `rx` and
/// sends it back on `tx`.
#[inline]
pub fn echo<M: Message>(tx: &mut impl Tx<M>, rx: &mut impl Rx<M>) -> Echo {
    let Some(Ok(m)) = spin::until(|| rx.try_one().transpose(), || false) else {
        return Echo::Failed;
    };
    if m.seq() == Some(STOP) {
        return Echo::Stop;
    }
    match spin::until(
        || tx.try_one(m).map(|ok| ok.then_some(())).transpose(),
        || false,
    ) {
        Some(Ok(())) => Echo::Again,
        _ => Echo::Failed,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;

    /// A queue with room for `cap` that reports a full or empty queue every
    /// other try, so that the waits are exercised.
    struct Flaky {
        q: VecDeque<Msg64>,
        cap: usize,
        tries: u32,
    }

    impl Flaky {
        fn refuse(&mut self) -> bool {
            self.tries += 1;
            self.tries % 2 == 0
        }
    }

    impl Tx<Msg64> for Flaky {
        fn try_one(&mut self, m: Msg64) -> Result<bool, Broken> {
            if self.refuse() || self.q.len() == self.cap {
                return Ok(false);
            }
            self.q.push_back(m);
            Ok(true)
        }
        fn try_many(&mut self, ms: &[Msg64]) -> Result<usize, Broken> {
            if self.refuse() {
                return Ok(0);
            }
            let n = ms.len().min(self.cap - self.q.len()).min(5);
            self.q.extend(&ms[..n]);
            Ok(n)
        }
    }

    impl Rx<Msg64> for Flaky {
        fn try_one(&mut self) -> Result<Option<Msg64>, Broken> {
            if self.refuse() {
                return Ok(None);
            }
            Ok(self.q.pop_front())
        }
        fn try_many(&mut self, out: &mut [Msg64]) -> Result<usize, Broken> {
            if self.refuse() {
                return Ok(0);
            }
            let n = out.len().min(self.q.len()).min(7);
            for o in &mut out[..n] {
                *o = self.q.pop_front().unwrap_or_default();
            }
            Ok(n)
        }
    }

    #[test]
    fn sender_and_receiver_agree_single_and_batched_and_catch_a_gap() {
        for batched in [false, true] {
            let mut q = Flaky {
                q: VecDeque::new(),
                cap: 256,
                tries: 0,
            };
            let n = 3 * BATCH + 5;
            {
                let mut send = sender::<Msg64>(&mut q, batched, || false);
                for _ in 0..n {
                    assert!(send());
                }
            }
            // A partial batch stays with the sender.
            let delivered = if batched { 3 * BATCH } else { n };
            assert_eq!(q.q.len(), delivered);
            let mut recv = receiver::<Msg64>(&mut q, batched);
            for _ in 0..delivered {
                assert!(recv(), "batched: {batched}");
            }
        }
        // A message out of sequence fails the receiver.
        let mut q = Flaky {
            q: VecDeque::from([[0; 8], [2; 8]]),
            cap: 8,
            tries: 0,
        };
        let mut recv = receiver::<Msg64>(&mut q, false);
        assert!(recv());
        assert!(!recv());
    }

    #[test]
    fn a_torn_message_has_no_sequence_number() {
        let mut m = Msg64::new(7);
        assert_eq!(m.seq(), Some(7));
        m[7] = 8;
        assert_eq!(m.seq(), None);
    }

    #[test]
    fn a_stopped_sender_gives_up_its_wait() {
        let mut q = Flaky {
            q: VecDeque::new(),
            cap: 1,
            tries: 1,
        };
        let mut send = sender::<u64>(Tx64(&mut q), false, || true);
        assert!(send()); // room for one
        assert!(send()); // full: waits, sees the stop, returns
    }

    /// Adapts the 64-byte test queue to u64 messages.
    struct Tx64<'a>(&'a mut Flaky);

    impl Tx<u64> for Tx64<'_> {
        fn try_one(&mut self, m: u64) -> Result<bool, Broken> {
            Tx::<Msg64>::try_one(self.0, [m; 8])
        }
        fn try_many(&mut self, _: &[u64]) -> Result<usize, Broken> {
            Ok(0)
        }
    }
}
