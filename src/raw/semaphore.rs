//! The semaphore's words and algorithm (see [`crate::Semaphore`]).

use crate::layout::{BodyLayout, Kind, LayoutError};
use crate::pod::TypeInfo;

/// Bytes of a semaphore's body: one line of counters and wait point, then
/// the holders table.
const BODY_SIZE: u64 = 64 + 8 * crate::semaphore::HOLDERS as u64;

/// The body layout of a semaphore: no payload, one block of words.
pub fn body_layout(elem: TypeInfo, capacity: u64) -> Result<BodyLayout, LayoutError> {
    super::unit_body_layout(Kind::Semaphore, elem, capacity, BODY_SIZE)
}
