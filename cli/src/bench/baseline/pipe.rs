//! The Unix pipe rows: the same numbered messages through `pipe(2)`
//! between a parent and its forked child, what `multiprocessing.Pipe` (and
//! many a hand-written C program) does underneath.
//!
//! * throughput: the child writes one message per `write(2)` (or [`BATCH`]
//!   per write, 2 KiB at most: below `PIPE_BUF`, so each write is atomic),
//!   the parent reads one message per `read(2)` (or as much as a batch
//!   holds) and checks the sequence;
//! * round trip: two pipes, one each way, both sides in blocking reads.
//!
//! The throughput writer's end is non-blocking: when the pipe is full it
//! `poll(2)`s for room (10 ms at a time, then looks at the stop request),
//! which costs an extra system call only when it would have slept anyway.
//! The parent closes its copy of the child's end right after the fork, so
//! a child that dies shows up as an end of file, not a hang.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use crate::bench::runner::control::{Budget, Control, Counted, Sample};
use crate::bench::runner::flow::{BATCH, Echo, Message, STOP};
use crate::bench::runner::procs;
use crate::bench::runner::roundtrip::{self, RoundTrips};

/// A new pipe: (read end, write end), both close-on-exec.
///
/// # Errors
///
/// The error of `pipe2(2)`.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a valid out-array of two ints for the call.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded: both are fresh descriptors that nothing else
    // owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Writes all of `bytes` to `fd`. On a non-blocking `fd` that is full,
/// waits for room with `poll(2)`, giving up (returning `true`) once `stop`
/// says so. `false` on any other error.
fn send(fd: RawFd, bytes: &[u8], stop: &impl Fn() -> bool) -> bool {
    let mut done = 0;
    while done < bytes.len() {
        let rest = &bytes[done..];
        // SAFETY: `rest` is a live byte slice of the given length; `fd` is
        // an open descriptor of this process (the caller's pipe end).
        let rc = unsafe { libc::write(fd, rest.as_ptr().cast(), rest.len()) };
        if rc > 0 {
            done += rc as usize;
            continue;
        }
        match io::Error::last_os_error().raw_os_error() {
            Some(libc::EINTR) => {}
            Some(libc::EAGAIN) => {
                if stop() {
                    return true;
                }
                let mut pfd = libc::pollfd {
                    fd,
                    events: libc::POLLOUT,
                    revents: 0,
                };
                // SAFETY: `pfd` is one valid pollfd for the call.
                unsafe { libc::poll(&mut pfd, 1, 10) };
            }
            _ => return false,
        }
    }
    true
}

/// Reads into `buf` once (retrying on `EINTR`); how many bytes, 0 at the
/// end of file, `None` on error.
fn read_some(fd: RawFd, buf: &mut [u8]) -> Option<usize> {
    loop {
        // SAFETY: `buf` is a live, writable byte slice of the given length;
        // `fd` is an open descriptor of this process.
        let rc = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if rc >= 0 {
            return Some(rc as usize);
        }
        if io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return None;
        }
    }
}

/// Fills `buf` from `fd`; `false` at the end of file or on error.
fn read_exact(fd: RawFd, buf: &mut [u8]) -> bool {
    let mut done = 0;
    while done < buf.len() {
        match read_some(fd, &mut buf[done..]) {
            Some(0) | None => return false,
            Some(n) => done += n,
        }
    }
    true
}

/// Makes `fd` non-blocking; `false` on error.
fn set_nonblocking(fd: RawFd) -> bool {
    // SAFETY: F_GETFL/F_SETFL on an open descriptor of this process touch
    // only its status flags.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        flags >= 0 && libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) == 0
    }
}

/// The parent reads messages from a pipe the child writes into, for
/// `budget`: one message per system call on each side, or [`BATCH`] per
/// system call (`batched`).
///
/// # Errors
///
/// As [`procs::run`], and creating the pipe.
pub fn throughput<M: Message>(
    control: Control<'_>,
    budget: Budget,
    batched: bool,
) -> io::Result<Sample> {
    let (read_end, write_end) = pipe()?;
    let (rfd, wfd) = (read_end.as_raw_fd(), write_end.as_raw_fd());
    control.reset();
    let mut child = procs::spawn(move || {
        // SAFETY: the read end is the parent's; closing the child's copy
        // touches nothing but this process's descriptor table.
        unsafe { libc::close(rfd) };
        if !set_nonblocking(wfd) {
            return false;
        }
        let stop = move || control.stop_requested();
        let mut next = 0u64;
        let mut batch = [M::zeroed(); BATCH];
        let mut len = 0;
        control.peer(move || {
            let m = M::new(next);
            next += 1;
            if !batched {
                return send(wfd, bytemuck::bytes_of(&m), &stop);
            }
            batch[len] = m;
            len += 1;
            if len < BATCH {
                return true;
            }
            len = 0;
            send(wfd, bytemuck::cast_slice(&batch[..]), &stop)
        })
    })?;
    // The child holds the only write end from here on: if it dies, the
    // parent's read sees the end of file.
    drop(write_end);
    let mut expect = 0u64;
    let mut batch = [M::zeroed(); BATCH];
    // Bytes in `batch`, and whole messages of them already handed out.
    let (mut filled, mut taken) = (0usize, 0usize);
    let size = size_of::<M>();
    let lead_op = || {
        let m = if !batched {
            let mut m = M::zeroed();
            if !read_exact(rfd, bytemuck::bytes_of_mut(&mut m)) {
                return false;
            }
            m
        } else {
            let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut batch[..]);
            while (taken + 1) * size > filled {
                // Keep a partial message, read more behind it.
                bytes.copy_within(taken * size..filled, 0);
                filled -= taken * size;
                taken = 0;
                match read_some(rfd, &mut bytes[filled..]) {
                    Some(0) | None => return false,
                    Some(n) => filled += n,
                }
            }
            taken += 1;
            batch[taken - 1]
        };
        let ok = m.seq() == Some(expect);
        expect += 1;
        ok
    };
    let sample = control.lead(
        budget,
        Counted::LeadOnly,
        Some(&mut || child.running()),
        lead_op,
    )?;
    child.wait()?;
    Ok(sample)
}

/// `n` timed round trips of a `u64` through two pipes (blocking reads on
/// both sides). A `gap` as in [`roundtrip::run`].
///
/// # Errors
///
/// As [`roundtrip::run`], and creating the pipes.
pub fn round_trips(n: u64, gap: Option<Duration>) -> io::Result<RoundTrips> {
    let (ping_r, ping_w) = pipe()?;
    let (pong_r, pong_w) = pipe()?;
    let (ping_rfd, ping_wfd) = (ping_r.as_raw_fd(), ping_w.as_raw_fd());
    let (pong_rfd, pong_wfd) = (pong_r.as_raw_fd(), pong_w.as_raw_fd());
    let mut closed_parents = false;
    roundtrip::run(
        n,
        gap,
        |seq| {
            let mut back = 0u64;
            send(ping_wfd, &seq.to_ne_bytes(), &|| false)
                && (seq == STOP
                    || read_exact(pong_rfd, bytemuck::bytes_of_mut(&mut back)) && back == seq)
        },
        move || {
            if !closed_parents {
                closed_parents = true;
                // SAFETY: the parent's ends; closing the child's copies
                // touches only this process's descriptor table, so that a
                // dead parent shows up as an end of file.
                unsafe {
                    libc::close(ping_wfd);
                    libc::close(pong_rfd);
                }
            }
            let mut m = 0u64;
            if !read_exact(ping_rfd, bytemuck::bytes_of_mut(&mut m)) {
                return Echo::Failed;
            }
            if m == STOP {
                return Echo::Stop;
            }
            if send(pong_wfd, &m.to_ne_bytes(), &|| false) {
                Echo::Again
            } else {
                Echo::Failed
            }
        },
        // The child holds the only copies of its ends from here on.
        move || drop((ping_r, pong_w)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::runner::flow::Msg64;

    #[test]
    fn partial_reads_are_put_together() {
        // Write 3.5 messages, then the rest: the batched reader must not
        // hand out half a message.
        let (r, w) = pipe().expect("pipe");
        let msgs: Vec<Msg64> = (0..4).map(Msg64::new).collect();
        let bytes: &[u8] = bytemuck::cast_slice(&msgs);
        assert!(send(w.as_raw_fd(), &bytes[..3 * 64 + 32], &|| false));
        let mut buf = [0u8; 256];
        assert_eq!(read_some(r.as_raw_fd(), &mut buf), Some(3 * 64 + 32));
        assert!(send(w.as_raw_fd(), &bytes[3 * 64 + 32..], &|| false));
        assert!(read_exact(r.as_raw_fd(), &mut buf[3 * 64 + 32..]));
        let back: &[Msg64] = bytemuck::cast_slice(&buf[..]);
        assert_eq!(back, &msgs[..]);
        drop(w);
        assert_eq!(read_some(r.as_raw_fd(), &mut buf), Some(0));
    }

    #[test]
    fn a_full_nonblocking_pipe_gives_up_on_stop() {
        let (_r, w) = pipe().expect("pipe");
        assert!(set_nonblocking(w.as_raw_fd()));
        let big = vec![0u8; 1 << 20];
        // Fills the pipe, then sees the stop request instead of hanging.
        assert!(send(w.as_raw_fd(), &big, &|| true));
    }
}
