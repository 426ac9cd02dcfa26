//! The two-process runner: `fork(2)` a child that runs the peer's side of a
//! [`Control`] run over memory both processes share, measure in the parent.
//!
//! The child inherits every mapping of the parent (`MAP_SHARED` stays shared
//! across `fork`), so it opens nothing: it touches the shared atomics (or
//! the process-shared mutex) through the parent's handles and leaves with
//! `_exit(2)`, running no destructor of the parent's state. It asks the
//! kernel to kill it if the parent dies (`PR_SET_PDEATHSIG`), and the
//! parent kills and reaps it on every error path (`Child`'s `Drop`).

use std::io;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use super::control::{Budget, Control, Counted, Sample};

/// Runs `lead_op` here and `child_op` in a forked child, both on `control`
/// (which must live in a shared mapping), for `budget`.
///
/// `child_op` runs in the child of a possibly multi-threaded process (the
/// criterion harness has a thread pool): it must not allocate or take a
/// lock that another thread of the parent could have held at the fork.
/// Atomics, a process-shared mutex no one holds at the fork and plain
/// system calls are fine.
///
/// # Errors
///
/// If `fork` fails, an operation fails on either side, or the child does
/// not start, stop or exit cleanly.
pub fn run(
    control: Control<'_>,
    budget: Budget,
    counted: Counted,
    lead_op: impl FnMut() -> bool,
    child_op: impl FnMut() -> bool,
) -> io::Result<Sample> {
    control.reset();
    let mut child = spawn(move || control.peer(child_op))?;
    let sample = control.lead(budget, counted, Some(&mut || child.running()), lead_op)?;
    child.wait()?;
    Ok(sample)
}

/// Forks a child that runs `main` and exits (status 0 if `main` returned
/// `true`, 1 if it returned `false` or panicked): the building block of
/// [`run`] and of the round-trip runner ([`roundtrip`](super::roundtrip)).
///
/// `main` is under the same rules as `child_op` in [`run`]: no allocation,
/// no lock another thread of the parent could hold.
///
/// # Errors
///
/// If `fork` fails.
pub fn spawn(main: impl FnOnce() -> bool) -> io::Result<Child> {
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: fork itself has no preconditions. The child runs only
    // `child_main`, which touches memory inherited from the parent (the
    // shared mappings and whatever `main` captured, all alive until the
    // child exits since the child's copy of the parent's address space
    // never unmaps anything), makes async-signal-safe system calls and
    // leaves with `_exit`, so it is sound even when other threads of the
    // parent held locks at the moment of the fork.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        child_main(parent, main);
    }
    Ok(Child { pid, status: None })
}

/// The child's whole life: never returns.
fn child_main(parent: libc::pid_t, main: impl FnOnce() -> bool) -> ! {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    // SAFETY: prctl(PR_SET_PDEATHSIG) only sets an attribute of this
    // process: the signal it gets when its parent exits.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    }
    // SAFETY: getppid has no preconditions.
    if unsafe { libc::getppid() } != parent {
        // The parent died before the death signal was armed.
        // SAFETY: as the `_exit` below.
        unsafe { libc::_exit(3) };
    }
    // A panic must not unwind into the parent's frames (copied by fork):
    // catch it here and exit with a status instead.
    let ok = std::panic::catch_unwind(AssertUnwindSafe(main)).unwrap_or(false);
    // SAFETY: `_exit` ends this process at once: no destructor, no atexit
    // handler and no stdio flush of state that belongs to the parent (the
    // private directory, buffered output) runs in the child.
    unsafe { libc::_exit(if ok { 0 } else { 1 }) }
}

/// A forked child: killed and reaped when dropped, unless already reaped.
#[derive(Debug)]
pub struct Child {
    pid: libc::pid_t,
    status: Option<libc::c_int>,
}

impl Child {
    /// Whether the child is still running (reaping it if it has exited).
    ///
    /// # Errors
    ///
    /// The error of `waitpid(2)`.
    pub fn running(&mut self) -> io::Result<bool> {
        if self.status.is_some() {
            return Ok(false);
        }
        let mut status = 0;
        // SAFETY: `pid` is our own unreaped child; `status` is a valid
        // out-pointer for the duration of the call.
        let rc = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
        match rc {
            0 => Ok(true),
            rc if rc == self.pid => {
                self.status = Some(status);
                Ok(false)
            }
            _ => Err(io::Error::last_os_error()),
        }
    }

    /// Waits (at most 10 s) for the child to exit; an error unless it exited
    /// with status 0.
    ///
    /// # Errors
    ///
    /// As said, or the error of `waitpid(2)`.
    pub fn wait(&mut self) -> io::Result<()> {
        let since = std::time::Instant::now();
        while self.running()? {
            if since.elapsed() > Duration::from_secs(10) {
                return Err(io::Error::other("the child did not exit within 10 s"));
            }
            std::thread::sleep(Duration::from_micros(100));
        }
        let status = self.status.unwrap_or(0);
        if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
            Ok(())
        } else if libc::WIFEXITED(status) {
            Err(io::Error::other(format!(
                "the child exited with status {}",
                libc::WEXITSTATUS(status)
            )))
        } else {
            Err(io::Error::other(format!(
                "the child was killed by signal {}",
                libc::WTERMSIG(status)
            )))
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.status.is_some() {
            return;
        }
        // SAFETY: `pid` is our own child, not yet reaped, so the pid cannot
        // have been recycled for another process.
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
        loop {
            let mut status = 0;
            // SAFETY: as in `running`; blocking is fine, SIGKILL is on its way.
            let rc = unsafe { libc::waitpid(self.pid, &mut status, 0) };
            if rc >= 0 || io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::bench::runner::control::WORDS;
    use crate::bench::runner::dir::BenchDir;
    use crate::bench::runner::shm::SharedWords;

    /// A shared mapping with the control words, then one more word.
    fn shared(dir: &BenchDir) -> SharedWords {
        SharedWords::create(&dir.file("shared"), WORDS + 1).expect("shared words")
    }

    #[test]
    fn a_failing_child_is_an_error() {
        let dir = BenchDir::new().expect("dir");
        let words = shared(&dir);
        let control = Control::new(&words[..WORDS]);
        let err = run(control, Budget::ops(1000), Counted::Both, || true, || false)
            .expect_err("the child's operation failed");
        assert!(err.to_string().contains("peer"), "{err}");
    }

    #[test]
    fn a_failing_parent_kills_and_reaps_its_child() {
        let dir = BenchDir::new().expect("dir");
        let words = shared(&dir);
        let control = Control::new(&words[..WORDS]);
        let pid_word = &words[WORDS];
        let mut first = true;
        let err = run(
            control,
            Budget::ops(u64::MAX),
            Counted::Both,
            || {
                // Fail once the child has said who it is.
                // Relaxed: polled until the value shows up; no other data.
                pid_word.load(Ordering::Relaxed) == 0
            },
            || {
                if first {
                    first = false;
                    // SAFETY: getpid has no preconditions.
                    let me = unsafe { libc::getpid() };
                    // Relaxed: see the load above.
                    pid_word.store(me as u64, Ordering::Relaxed);
                }
                true
            },
        )
        .expect_err("the parent's operation failed");
        assert!(err.to_string().contains("measuring"), "{err}");
        // Relaxed: the child has been reaped; nothing races with this load.
        let pid = pid_word.load(Ordering::Relaxed) as libc::pid_t;
        assert!(pid > 0);
        // SAFETY: signal 0 only checks whether the process exists.
        let rc = unsafe { libc::kill(pid, 0) };
        assert_eq!(rc, -1, "the child {pid} is still there");
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::ESRCH)
        );
    }
}
