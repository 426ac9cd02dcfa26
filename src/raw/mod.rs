//! The algorithms, over memory they are handed: what loom runs.
//!
//! **Unstable, and no part of the public API**: this module is public only
//! for the loom models (`loom-tests/`) and the fuzzers, which drive the
//! algorithms over the heap or loom's atomics. Users hold the handles
//! ([`Counter`](crate::Counter), [`spsc::Producer`](crate::spsc::Producer),
//! [`Event`](crate::Event) ...), which own a mapped file and build these
//! views over it.
//!
//! Each kind's file here also owns its *body layout*: the words its
//! algorithm needs, their sizes and the checks on capacity and payload
//! (`body_layout` in each file). [`body_layout`] is the one dispatch that
//! the file layer ([`region`](crate::region)) calls to size a new file and
//! to validate a descriptor at open.

use crate::layout::{self, BodyLayout, Kind, LayoutError};
use crate::pod::TypeInfo;

pub mod atomic;
pub mod barrier;
pub mod event;
pub mod map;
pub mod message;
pub mod mpmc;
pub mod semaphore;
pub mod seqlock;
pub mod spsc;

/// The body layout of a `kind` holding `capacity` elements of `elem`, or a
/// description of what a valid capacity or payload would be.
///
/// Used both when a file is made and when one is opened: the sizes in a
/// descriptor must be exactly the ones this returns for its kind, payload
/// and capacity.
///
/// `slot_size` matters only for kinds whose slots have a size of their own
/// choosing (a map's entries depend on its maximum key length): it is the
/// size asked for at creation, or the one found in a descriptor; other kinds
/// ignore it.
///
/// Public (in this hidden module) because it is compiled under loom too,
/// where the file layer that calls it is not.
pub fn body_layout(
    kind: Kind,
    elem: TypeInfo,
    capacity: u64,
    slot_size: u64,
) -> Result<BodyLayout, LayoutError> {
    match kind {
        Kind::Counter => atomic::counter_body_layout(elem, capacity),
        Kind::AtomicArray => atomic::array_body_layout(elem, capacity),
        Kind::SeqCell => seqlock::cell_body_layout(elem, capacity),
        Kind::Spsc => spsc::body_layout(elem, capacity),
        Kind::SpscBytes => spsc::bytes_body_layout(elem, capacity),
        Kind::Event => event::body_layout(elem, capacity),
        Kind::Semaphore => semaphore::body_layout(elem, capacity),
        Kind::Barrier => barrier::body_layout(elem, capacity),
        Kind::Map => map::body_layout(elem, capacity, slot_size),
        Kind::Mpmc => mpmc::body_layout(elem, capacity),
        Kind::MpmcBytes => mpmc::bytes_body_layout(elem, capacity),
    }
}

/// The layout check shared by the kinds that hold one block of words and
/// no payload ([`Event`](crate::Event), [`Semaphore`](crate::Semaphore),
/// [`Barrier`](crate::Barrier)): no payload, a capacity of exactly 1, and a
/// body of `body_size` bytes.
pub fn unit_body_layout(
    kind: Kind,
    elem: TypeInfo,
    capacity: u64,
    body_size: u64,
) -> Result<BodyLayout, LayoutError> {
    if elem != TypeInfo::NONE {
        return Err(LayoutError::Payload(format!("no payload, found {elem}")));
    }
    if capacity != 1 {
        return Err(LayoutError::Capacity(format!("exactly 1 for a {kind}")));
    }
    Ok(BodyLayout {
        slot_size: 0,
        body_size: layout::whole_lines(body_size),
    })
}
