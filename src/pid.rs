//! Process identity and liveness: how a survivor tells a peer that is slow
//! from a peer that is gone.

/// This process's id.
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
