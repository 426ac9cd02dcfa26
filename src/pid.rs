//! Process identity and liveness: how a survivor tells a peer that is slow
//! from a peer that is gone.

/// This process's id.
///
/// Cached: `getpid(2)` is a system call, and writers call this inside
/// their critical sections. The cache is cleared in a forked child by a
/// `pthread_atfork` handler, so a child never reports its parent's pid.
#[cfg(not(loom))]
#[inline]
pub fn current() -> u32 {
    // Relaxed: as in `current_slow`, which stores it.
    let pid = cache::PID.load(crate::sync::Ordering::Relaxed);
    if pid != 0 {
        return pid;
    }
    current_slow()
}

/// The pid cache of [`current`].
#[cfg(not(loom))]
mod cache {
    use crate::sync::AtomicU32;

    /// This process's pid once known (0 before, and in a forked child).
    pub(super) static PID: AtomicU32 = AtomicU32::new(0);
}

/// [`current`] on a cache miss (the first call, or the first in a forked
/// child): registers the fork handler and caches the pid. Out of line,
/// so that the writers' fast path is one load.
#[cfg(not(loom))]
#[cold]
#[inline(never)]
fn current_slow() -> u32 {
    use crate::sync::{AtomicU32, Ordering};
    use cache::PID;
    /// 1 once the fork handler is registered (inherited by children, whose
    /// PID the handler has reset, so they cache their own on first use).
    static REGISTERED: AtomicU32 = AtomicU32::new(0);
    static REGISTER: std::sync::Once = std::sync::Once::new();

    extern "C" fn forget_in_child() {
        // Relaxed: the child is single-threaded right after fork.
        PID.store(0, Ordering::Relaxed);
    }

    // Relaxed (all loads and stores here): the pid is a plain value that
    // only this process stores, always the same number; the flag only
    // decides whether caching is safe, and is set before any caching.
    let pid = PID.load(Ordering::Relaxed);
    if pid != 0 {
        return pid;
    }
    REGISTER.call_once(|| {
        // SAFETY: registers a child handler that only does an atomic store,
        // which is async-signal-safe; pthread_atfork has no other
        // precondition. On failure (ENOMEM) nothing is cached, ever.
        if unsafe { libc::pthread_atfork(None, None, Some(forget_in_child)) } == 0 {
            REGISTERED.store(1, Ordering::Relaxed);
        }
    });
    let pid = std::process::id();
    if REGISTERED.load(Ordering::Relaxed) == 1 {
        PID.store(pid, Ordering::Relaxed);
    }
    pid
}

/// This process's id (under loom: uncached, there is no fork).
#[cfg(loom)]
pub fn current() -> u32 {
    std::process::id()
}

/// Whether a process with this id exists and has not exited.
///
/// `kill(pid, 0)` answers "exists" (or `EPERM`: exists, owned by someone
/// else); on Linux a zombie — exited, not yet reaped — also counts as gone.
/// Pids are recycled, so "alive" can be a stranger that reused the number;
/// callers treat it as "maybe alive" and never as proof.
pub fn is_alive(pid: u32) -> bool {
    let Ok(raw) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if raw <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 sends nothing; it only checks that the
    // target exists and that we could signal it. Any pid value is allowed.
    let rc = unsafe { libc::kill(raw, 0) };
    if rc != 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EPERM) {
        return false;
    }
    !is_zombie(pid)
}

#[cfg(target_os = "linux")]
fn is_zombie(pid: u32) -> bool {
    // /proc/PID/stat is "PID (COMM) STATE ...": COMM may hold spaces and
    // parentheses, so the state is the first field after the last ')'.
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .is_some_and(|state| state == "Z" || state == "X")
}

#[cfg(not(target_os = "linux"))]
fn is_zombie(_pid: u32) -> bool {
    false
}

/// The pid of a process that has exited and been reaped: what a process
/// killed mid-operation leaves behind (for tests).
#[cfg(all(test, not(loom)))]
pub(crate) fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true")
        .spawn()
        .expect("spawn true(1)");
    let pid = child.id();
    child.wait().expect("reap true(1)");
    pid
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_absurd_pids_are_not() {
        assert!(is_alive(current()));
        assert!(!is_alive(0));
        assert!(!is_alive(u32::MAX));
    }

    #[test]
    fn a_forked_child_reports_its_own_pid() {
        let parent = current();
        let mut fds = [0i32; 2];
        // SAFETY: `fds` is a valid array of two ints for pipe(2) to fill.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: the child only calls `current` (an atomic load, getpid and
        // an atomic store, no allocation once registered), write(2) and
        // _exit(2), all safe after fork in a multi-threaded test process.
        let child = unsafe { libc::fork() };
        assert!(child >= 0);
        if child == 0 {
            let me = current().to_ne_bytes();
            // SAFETY: writes 4 bytes from a live buffer, then exits at once.
            unsafe {
                libc::write(fds[1], me.as_ptr().cast(), 4);
                libc::_exit(0);
            }
        }
        let mut buf = [0u8; 4];
        // SAFETY: reads at most 4 bytes into a live 4-byte buffer.
        let n = unsafe { libc::read(fds[0], buf.as_mut_ptr().cast(), 4) };
        let mut status = 0;
        // SAFETY: reaps our own child; `status` is a valid out-pointer.
        unsafe {
            libc::waitpid(child, &mut status, 0);
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
        assert_eq!(n, 4);
        assert_eq!(u32::from_ne_bytes(buf), child as u32);
        assert_ne!(child as u32, parent);
        assert_eq!(current(), parent);
    }

    #[test]
    fn an_exited_child_is_dead_even_before_it_is_reaped() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        // Wait until it has exited without reaping it: it is a zombie now.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while is_alive(pid) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(!is_alive(pid));
        child.wait().unwrap();
        assert!(!is_alive(pid));
    }
}
