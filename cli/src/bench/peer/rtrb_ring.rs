//! rtrb's `Producer` and `Consumer` as the workload's ends: `push`/`pop`,
//! and `push_partial_slice`/`pop_partial_slice` for a batch.

use crate::bench::runner::flow::{Broken, Rx, Tx};

impl<M: Copy> Tx<M> for rtrb::Producer<M> {
    #[inline]
    fn try_one(&mut self, m: M) -> Result<bool, Broken> {
        Ok(self.push(m).is_ok())
    }

    #[inline]
    fn try_many(&mut self, ms: &[M]) -> Result<usize, Broken> {
        Ok(self.push_partial_slice(ms).0.len())
    }
}

impl<M: Copy> Rx<M> for rtrb::Consumer<M> {
    #[inline]
    fn try_one(&mut self) -> Result<Option<M>, Broken> {
        Ok(self.pop().ok())
    }

    #[inline]
    fn try_many(&mut self, out: &mut [M]) -> Result<usize, Broken> {
        Ok(self.pop_partial_slice(out).0.len())
    }
}
