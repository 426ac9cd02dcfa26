//! The comparisons `mmring bench` runs, one folder or file each: its
//! objects (the fixture, which the criterion bench of the same name
//! measures through too), its rows and its table.
//!
//! * [`counter`], [`cell`], [`map`]: operations per second, in the one
//!   table of [`ops`];
//! * [`spsc`]: the ring's throughput and round trips;
//! * [`mpmc`]: the queue's throughput with one and with two producers and
//!   consumers.

pub mod cell;
pub mod counter;
pub mod map;
pub mod mpmc;
pub mod ops;
pub mod spsc;
