//! Task counting for joinable queues (`JoinableQueue.task_done`/`join`):
//! the unfinished tasks are the tail's position minus the `done` count.

use std::time::Instant;

use super::RawQueue;
use crate::error::{JoinTimeoutError, TaskError};
use crate::sync::Ordering;

impl RawQueue<'_> {
    /// Counts `n` tasks done on behalf of no caller (holes).
    pub(super) fn finish_tasks(&self, n: u64) {
        if !self.joinable {
            return;
        }
        // Release pairs with `join`'s Acquire load.
        self.ctl.done.fetch_add(n, Ordering::Release);
        self.ctl.joined().notify();
    }

    /// Marks one popped item as processed (`JoinableQueue.task_done`).
    ///
    /// # Errors
    ///
    /// [`TaskError::TooManyDone`] if every pushed item is already done (the
    /// count never passes the number pushed); [`TaskError::NotJoinable`].
    pub fn task_done(&self) -> Result<(), TaskError> {
        if !self.joinable {
            return Err(TaskError::NotJoinable);
        }
        // AcqRel: the Release half pairs with `join`'s Acquire load (the
        // work done before `task_done` is visible to the joiner); Relaxed on
        // failure: nothing changed. The tail read inside is at least the
        // tail that covered every item this caller popped (ordered before
        // the pop by the slot's Release/Acquire), and it only grows.
        self.ctl
            .done
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |d| {
                (d < self.ctl.pushed()).then(|| d + 1)
            })
            .map_err(|_| TaskError::TooManyDone)?;
        self.ctl.joined().notify();
        Ok(())
    }

    /// Items pushed and not yet marked done (a snapshot).
    pub fn unfinished(&self) -> u64 {
        self.ctl.unfinished()
    }

    /// Waits until every pushed item has been marked done, until `deadline`.
    ///
    /// # Errors
    ///
    /// [`JoinTimeoutError::Timeout`] with the number still unfinished, or
    /// [`JoinTimeoutError::NotJoinable`].
    pub fn join_until(&self, deadline: Option<Instant>) -> Result<(), JoinTimeoutError> {
        if !self.joinable {
            return Err(JoinTimeoutError::NotJoinable);
        }
        self.ctl
            .joined()
            .wait_until(deadline, || {
                // Acquire pairs with the Release increments in `task_done`
                // and `finish_tasks`.
                let done = self.ctl.done.load(Ordering::Acquire);
                (done >= self.ctl.pushed()).then_some(())
            })
            .map_err(|_| JoinTimeoutError::Timeout(self.unfinished()))
    }
}
