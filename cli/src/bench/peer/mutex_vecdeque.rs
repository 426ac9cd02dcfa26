//! [`Bounded`]: a `std::sync::Mutex<VecDeque>` as both ends of the
//! workload, refusing messages beyond the ring's capacity — what a first
//! version in Rust looks like: one lock per message, or per batch.

use std::collections::VecDeque;
use std::sync::Mutex;

use crate::bench::runner::flow::{Broken, Rx, Tx};

/// A `Mutex<VecDeque>` that refuses messages beyond `capacity`.
pub(super) struct Bounded<'a, M> {
    pub(super) q: &'a Mutex<VecDeque<M>>,
    pub(super) capacity: usize,
}

impl<M> Clone for Bounded<'_, M> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<M> Copy for Bounded<'_, M> {}

impl<M: Copy> Tx<M> for Bounded<'_, M> {
    #[inline]
    fn try_one(&mut self, m: M) -> Result<bool, Broken> {
        let mut q = self.q.lock().map_err(|_| Broken)?;
        if q.len() >= self.capacity {
            return Ok(false);
        }
        q.push_back(m);
        Ok(true)
    }

    fn try_many(&mut self, ms: &[M]) -> Result<usize, Broken> {
        let mut q = self.q.lock().map_err(|_| Broken)?;
        let n = ms.len().min(self.capacity.saturating_sub(q.len()));
        q.extend(&ms[..n]);
        Ok(n)
    }
}

impl<M: Copy> Rx<M> for Bounded<'_, M> {
    #[inline]
    fn try_one(&mut self) -> Result<Option<M>, Broken> {
        Ok(self.q.lock().map_err(|_| Broken)?.pop_front())
    }

    fn try_many(&mut self, out: &mut [M]) -> Result<usize, Broken> {
        let mut q = self.q.lock().map_err(|_| Broken)?;
        let n = out.len().min(q.len());
        for (o, m) in out.iter_mut().zip(q.drain(..n)) {
            *o = m;
        }
        Ok(n)
    }
}
