//! The barrier's words and algorithm (see [`crate::Barrier`]).

use crate::layout::{BodyLayout, Kind, LayoutError};
use crate::pod::TypeInfo;

/// Bytes of a barrier's body: one line of state and wait point, then the
/// member table.
const BODY_SIZE: u64 = 64 + 8 * crate::barrier::MAX_PARTIES as u64;

/// The body layout of a barrier: no payload, one block of words.
pub fn body_layout(elem: TypeInfo, capacity: u64) -> Result<BodyLayout, LayoutError> {
    super::unit_body_layout(Kind::Barrier, elem, capacity, BODY_SIZE)
}
