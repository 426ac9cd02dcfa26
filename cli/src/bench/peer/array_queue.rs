//! crossbeam's `ArrayQueue` as both ends of the workload: `push`/`pop`,
//! one at a time even for a batch (it has no batch operation).

use crossbeam_queue::ArrayQueue;

use crate::bench::runner::flow::{Broken, Rx, Tx};

impl<M: Copy> Tx<M> for &ArrayQueue<M> {
    #[inline]
    fn try_one(&mut self, m: M) -> Result<bool, Broken> {
        Ok(self.push(m).is_ok())
    }

    /// One `push` per message: `ArrayQueue` has no batch operation.
    fn try_many(&mut self, ms: &[M]) -> Result<usize, Broken> {
        Ok(ms.iter().take_while(|&&m| self.push(m).is_ok()).count())
    }
}

impl<M> Rx<M> for &ArrayQueue<M> {
    #[inline]
    fn try_one(&mut self) -> Result<Option<M>, Broken> {
        Ok(self.pop())
    }

    fn try_many(&mut self, out: &mut [M]) -> Result<usize, Broken> {
        let mut n = 0;
        while n < out.len() {
            match self.pop() {
                Some(m) => out[n] = m,
                None => break,
            }
            n += 1;
        }
        Ok(n)
    }
}
