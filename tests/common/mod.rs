//! Helpers shared by the multi-process integration tests.
//!
//! A test that needs other processes runs *this test binary* again, once per
//! child, filtered down to one `#[test]` function (`--exact NAME`) and told
//! its role through environment variables. That function is a child entry
//! point declared with [`child_entry!`]: ignored in the normal run, so it
//! never counts as a passing test, and a failure when run without its parent
//! (by hand, `cargo test -- --ignored`). Every wait has a deadline: children
//! are killed and the test fails rather than hangs.

#![allow(dead_code)] // each test file uses a different subset

pub mod peek;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use mmring::{Counter, Pod, Zeroable};

/// Which child test function a child process runs (its name).
pub const ROLE_VAR: &str = "MMRING_CHILD_ROLE";
/// The directory (or file) the child works in.
pub const PATH_VAR: &str = "MMRING_PATH";
/// The child's index among its siblings (0, 1, ...).
pub const INDEX_VAR: &str = "MMRING_CHILD_INDEX";
/// A free-form argument for the role.
pub const ARG_VAR: &str = "MMRING_CHILD_ARG";

/// The longest any test waits for anything (children, a barrier, a flag).
pub const WATCHDOG: Duration = Duration::from_secs(60);

/// What a child process was told by its parent.
#[derive(Debug)]
pub struct ChildCtx {
    /// `MMRING_PATH`.
    pub path: PathBuf,
    /// `MMRING_CHILD_INDEX`.
    pub index: usize,
    /// `MMRING_CHILD_ARG` (empty when not given).
    pub arg: String,
}

impl ChildCtx {
    /// The argument parsed as a number.
    pub fn arg_num<T: std::str::FromStr>(&self) -> T
    where
        T::Err: std::fmt::Debug,
    {
        self.arg.parse().expect("numeric MMRING_CHILD_ARG")
    }
}

/// Declares a child entry point: a `#[test]` function that a parent test
/// runs in a child process ([`Children::spawn`]) and that is ignored
/// otherwise, so that it never counts as a passing test. Run without its
/// parent (`cargo test -- --ignored`, or `--include-ignored`) it fails,
/// naming the parent to run instead ([`child_ctx`]).
///
/// ```ignore
/// common::child_entry!(
///     /// What the child does (doc comments only, before `started_by`).
///     #[started_by(parent_test, another_parent_test)]
///     fn child_name(ctx: ChildCtx) {
///         let ring = ctx.path.join("ring");
///         // ...
///     }
/// );
/// ```
///
/// `started_by` names the `#[test]` functions that spawn this child; they
/// must exist (checked at compile time), so renaming a parent without its
/// children's `started_by` does not build. `ChildCtx` is written as is (it
/// need not be imported): the macro gives `ctx` the type [`ChildCtx`].
#[allow(unused_macros)] // not every test binary that includes this module declares children
macro_rules! child_entry {
    (
        $(#[doc = $doc:literal])*
        #[started_by($($parent:ident),+ $(,)?)]
        fn $name:ident($ctx:ident: ChildCtx) $body:block
    ) => {
        $(#[doc = $doc])*
        #[test]
        #[ignore = "child process entry point: started by its parent test (see its started_by)"]
        fn $name() {
            // Each parent named is a test function of this binary.
            $(let _: fn() = $parent;)+
            let $ctx: $crate::common::ChildCtx =
                $crate::common::child_ctx(stringify!($name), &[$(stringify!($parent)),+]);
            $body
        }
    };
}
#[allow(unused_imports)] // the same
pub(crate) use child_entry;

/// The context of the child entry point `name` (declared with
/// [`child_entry!`]) in the child process that one of its `parents` started.
///
/// Panics in any other process (no role set, or another child's role): the
/// entry point was run by hand, without its parent, and must not pass.
pub fn child_ctx(name: &str, parents: &[&str]) -> ChildCtx {
    let role = std::env::var(ROLE_VAR).ok();
    if role.as_deref() == Some(name) {
        return context(name);
    }
    let suite = env!("CARGO_CRATE_NAME");
    let started = match &role {
        None => format!("{ROLE_VAR} is not set"),
        Some(other) => format!("{ROLE_VAR} is {other:?}"),
    };
    panic!(
        "{name} is a child process entry point, not a test: it runs only in a \
         child process started by its parent test ({}), and {started}. Run \
         the parent instead: cargo test --test {suite} -- --exact {}",
        parents.join(", "),
        parents[0],
    );
}

/// The context variables of a child process that runs `name`.
fn context(name: &str) -> ChildCtx {
    let path = std::env::var_os(PATH_VAR).expect("MMRING_PATH is set for every child");
    let index = std::env::var(INDEX_VAR)
        .expect("MMRING_CHILD_INDEX is set for every child")
        .parse()
        .expect("numeric MMRING_CHILD_INDEX");
    // The parent checks this line, so a child whose filter matched no test
    // (a typo in the name) cannot pass silently.
    println!("MMRING-CHILD-RAN {name} {index}");
    ChildCtx {
        path: PathBuf::from(path),
        index,
        arg: std::env::var(ARG_VAR).unwrap_or_default(),
    }
}

struct Spawned {
    label: String,
    child: Child,
    log: PathBuf,
    status: Option<ExitStatus>,
    /// Killed on purpose by [`Children::kill`]: not judged by
    /// [`Children::wait_all_ok`].
    killed: bool,
}

/// A set of child processes, each this test binary running one child test.
///
/// Dropping the set (a panic in the parent included) kills and reaps every
/// child still running.
pub struct Children {
    procs: Vec<Spawned>,
    logs: tempfile::TempDir,
}

impl Default for Children {
    fn default() -> Self {
        Self::new()
    }
}

impl Children {
    /// An empty set.
    pub fn new() -> Self {
        Self {
            procs: Vec::new(),
            logs: tempfile::tempdir().expect("log directory"),
        }
    }

    /// A command that runs the child test `test` in this test binary, with
    /// the context variables set and the output going to a log file.
    pub fn command(&self, test: &str, index: usize, path: &Path, arg: &str) -> (Command, PathBuf) {
        let exe = std::env::current_exe().expect("path of the test binary");
        let log = self
            .logs
            .path()
            .join(format!("{test}-{index}-{}.log", self.procs.len()));
        let out = File::create(&log).expect("child log file");
        let err = out.try_clone().expect("child log file");
        let mut cmd = Command::new(exe);
        // `--ignored`: a child entry point is an ignored test
        // (`child_entry!`); a child spawned under any other name matches
        // nothing and fails its parent.
        cmd.args([
            test,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE_VAR, test)
        .env(PATH_VAR, path)
        .env(INDEX_VAR, index.to_string())
        .env(ARG_VAR, arg)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
        (cmd, log)
    }

    /// Starts child `index` running the child test `test` on `path`.
    pub fn spawn(&mut self, test: &str, index: usize, path: &Path, arg: &str) {
        let (cmd, log) = self.command(test, index, path, arg);
        self.spawn_command(test, index, cmd, log)
            .unwrap_or_else(|e| panic!("spawning child {test}[{index}]: {e}"));
    }

    /// Starts a command made by [`Children::command`] (perhaps adjusted).
    pub fn spawn_command(
        &mut self,
        test: &str,
        index: usize,
        mut cmd: Command,
        log: PathBuf,
    ) -> std::io::Result<()> {
        let child = cmd.spawn()?;
        self.procs.push(Spawned {
            label: format!("{test}[{index}] (pid {})", child.id()),
            child,
            log,
            status: None,
            killed: false,
        });
        Ok(())
    }

    /// Waits for every child, at most [`WATCHDOG`] in all; on timeout kills
    /// them all and panics.
    fn wait_all(&mut self) {
        self.wait_all_within(WATCHDOG);
    }

    /// Waits for every child, at most `limit` in all; on timeout kills them
    /// all and panics.
    fn wait_all_within(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let mut running = 0;
            for p in self.procs.iter_mut().filter(|p| p.status.is_none()) {
                match p.child.try_wait() {
                    Ok(Some(status)) => p.status = Some(status),
                    Ok(None) => running += 1,
                    Err(e) => panic!("waiting for {}: {e}", p.label),
                }
            }
            if running == 0 {
                return;
            }
            if Instant::now() > deadline {
                let stuck: Vec<String> = self
                    .procs
                    .iter()
                    .filter(|p| p.status.is_none())
                    .map(|p| format!("{}\n{}", p.label, tail(&p.log)))
                    .collect();
                self.kill_all();
                panic!(
                    "watchdog: {running} child(ren) still running after {limit:?}, killed:\n{}",
                    stuck.join("\n")
                );
            }
            // Polling interval of the watchdog only; nothing depends on it.
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Waits for every child (with the watchdog) and checks that each one
    /// ran its child test and passed it.
    pub fn wait_all_ok(self) {
        self.wait_all_ok_within(WATCHDOG);
    }

    /// [`Children::wait_all_ok`] with a watchdog of `limit` instead of
    /// [`WATCHDOG`], for children that do a lot of work (on a loaded
    /// 2-core machine a long run can take many times its usual time; the
    /// watchdog is there to catch hangs, not slowness).
    pub fn wait_all_ok_within(mut self, limit: Duration) {
        self.wait_all_within(limit);
        let failed: Vec<String> = self
            .procs
            .iter()
            .filter(|p| !p.killed)
            .filter_map(|p| {
                let status = p.status.expect("waited");
                let log = std::fs::read_to_string(&p.log).unwrap_or_default();
                let ran = log.contains("MMRING-CHILD-RAN") && log.contains("1 passed");
                (!status.success() || !ran).then(|| {
                    format!(
                        "{} exited with {status} (ran: {ran}):\n{}",
                        p.label,
                        tail(&p.log)
                    )
                })
            })
            .collect();
        assert!(
            failed.is_empty(),
            "{} of {} children failed:\n{}",
            failed.len(),
            self.procs.len(),
            failed.join("\n")
        );
    }

    fn kill_all(&mut self) {
        for p in self.procs.iter_mut().filter(|p| p.status.is_none()) {
            let _ = p.child.kill();
            p.status = p.child.wait().ok();
        }
    }
}

impl Children {
    /// The pid of the `i`-th child started (in the order of `spawn`).
    pub fn pid(&self, i: usize) -> u32 {
        self.procs[i].child.id()
    }

    /// Panics (with its log) if a child has already exited unsuccessfully;
    /// children still running, killed on purpose or passed are fine.
    pub fn check_none_failed(&mut self) {
        for p in self.procs.iter_mut().filter(|p| p.status.is_none()) {
            match p.child.try_wait() {
                Ok(Some(status)) => p.status = Some(status),
                Ok(None) => {}
                Err(e) => panic!("waiting for {}: {e}", p.label),
            }
        }
        if let Some(p) = self
            .procs
            .iter()
            .find(|p| !p.killed && p.status.is_some_and(|s| !s.success()))
        {
            panic!(
                "{} exited with {}:\n{}",
                p.label,
                p.status.expect("checked"),
                tail(&p.log)
            );
        }
    }

    /// Like [`wait_until`], but fails at once (with the child's log) if a
    /// child exits unsuccessfully meanwhile, instead of waiting out the
    /// watchdog for a condition that a dead child will never make true.
    pub fn wait_for(&mut self, what: &str, mut cond: impl FnMut() -> bool) {
        let mut turns: u32 = 0;
        wait_until(what, || {
            turns = turns.wrapping_add(1);
            if turns % 256 == 0 {
                self.check_none_failed();
            }
            cond()
        });
    }

    /// Kills the `i`-th child with `SIGKILL` and reaps it (so no zombie is
    /// left to look alive). Panics, with its log, if it had already exited
    /// by itself: a test that kills a child means to kill it mid-work. The
    /// killed child is not judged by [`Children::wait_all_ok`].
    pub fn kill(&mut self, i: usize) {
        use std::os::unix::process::ExitStatusExt;

        let p = &mut self.procs[i];
        assert!(p.status.is_none(), "{} was already reaped", p.label);
        // `Child::kill` sends SIGKILL on Unix.
        p.child
            .kill()
            .unwrap_or_else(|e| panic!("killing {}: {e}", p.label));
        let status = p
            .child
            .wait()
            .unwrap_or_else(|e| panic!("reaping {}: {e}", p.label));
        p.status = Some(status);
        p.killed = true;
        assert_eq!(
            status.signal(),
            Some(libc::SIGKILL),
            "{} exited by itself ({status}) before the kill:\n{}",
            p.label,
            tail(&p.log)
        );
    }

    /// Waits (at most [`WATCHDOG`]) for the `i`-th child alone and checks
    /// that it ran its child test and passed it; the others keep running.
    pub fn wait_ok(&mut self, i: usize) {
        let deadline = Instant::now() + WATCHDOG;
        let p = &mut self.procs[i];
        let status = loop {
            if let Some(s) = p.status {
                break s;
            }
            match p.child.try_wait() {
                Ok(Some(s)) => p.status = Some(s),
                Ok(None) => {
                    if Instant::now() > deadline {
                        let log = tail(&p.log);
                        let _ = p.child.kill();
                        p.status = p.child.wait().ok();
                        panic!(
                            "watchdog: {} still running after {WATCHDOG:?}, killed:\n{log}",
                            p.label
                        );
                    }
                    // Polling interval of the watchdog only.
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(e) => panic!("waiting for {}: {e}", p.label),
            }
        };
        let log = std::fs::read_to_string(&p.log).unwrap_or_default();
        let ran = log.contains("MMRING-CHILD-RAN") && log.contains("1 passed");
        assert!(
            status.success() && ran,
            "{} exited with {status} (ran: {ran}):\n{}",
            p.label,
            tail(&p.log)
        );
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// The last lines of a child's log.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_else(|e| format!("<no log: {e}>"));
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(40);
    lines[from..]
        .iter()
        .map(|l| format!("    | {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Waits, yielding the processor (2 cores, many processes: never a pure
/// spin), until `cond` holds; panics after [`WATCHDOG`].
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WATCHDOG;
    let mut turns: u64 = 0;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "watchdog: gave up waiting for {what}"
        );
        turns += 1;
        if turns % 64 == 0 {
            // Many processes may be waiting on the last one to start: let it
            // have the processor. Not needed for correctness.
            std::thread::sleep(Duration::from_micros(50));
        } else {
            std::thread::yield_now();
        }
    }
}

/// A start line for `n` processes: each one counts itself in on the shared
/// `arrived` counter and waits until all `n` have.
pub fn barrier(arrived: &Counter, n: usize) {
    arrived.fetch_add(1);
    wait_until("the other processes at the barrier", || {
        arrived.load() >= n as i64
    });
}

/// A plain-old-data struct whose fields all hold the same number when it is
/// whole: any other mix is a torn read. 128 bytes, so a copy takes several
/// words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct Sample {
    /// The number.
    pub a: u64,
    /// The number again.
    pub b: u64,
    /// The number as `u32` (truncated).
    pub c: u32,
    /// The number as `u32` (truncated), negated bitwise.
    pub d: u32,
    /// The number, thirteen more times.
    pub rest: [u64; 13],
}
mmring::payload!(Sample);

impl Sample {
    /// Every field holding `n`.
    pub fn splat(n: u64) -> Self {
        Self {
            a: n,
            b: n,
            c: n as u32,
            d: !(n as u32),
            rest: [n; 13],
        }
    }

    /// Whether every field holds the same number (`a`).
    pub fn is_whole(&self) -> bool {
        *self == Self::splat(self.a)
    }
}

/// A seeded xorshift64* generator: reproducible "random" bytes without a
/// dependency.
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value, zero included).
    pub fn new(seed: u64) -> Self {
        Self((seed ^ 0x9e37_79b9_7f4a_7c15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}

/// Serializes the tests of one test binary that take this guard.
///
/// A file's `flock` lock belongs to its open file description, which a
/// process forked by another test thread shares until it calls `exec`: for
/// that moment the file looks in use to `gc`. Tests that expect a file they
/// just closed to be stale hold this guard, so no sibling test forks
/// meanwhile.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sends `sig` to our unreaped child `pid`.
pub fn signal(pid: u32, sig: libc::c_int) {
    let raw = libc::pid_t::try_from(pid).unwrap();
    // SAFETY: kill(2) has no memory-safety preconditions. `pid` is a child
    // of this process that has not been reaped (`Children` reaps only in
    // `kill` and its waits, after which we never signal it), so the number
    // cannot name another process.
    let rc = unsafe { libc::kill(raw, sig) };
    assert_eq!(
        rc,
        0,
        "kill({pid}, {sig}): {}",
        std::io::Error::last_os_error()
    );
}

/// Whether every thread of `pid` is stopped (state `T` or `t`).
pub fn is_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.into_iter().all(|t| {
        let Ok(t) = t else { return false };
        let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|s| s == "T" || s == "t")
    })
}

/// Asserts that `res` is the `WrongPayload` error of opening a `u64` object
/// as the payload named `want` (its stable name, e.g. `"[u8; 8]"`).
#[track_caller]
pub fn wrong_payload<T>(res: Result<T, mmring::OpenError>, want: &str) {
    match res {
        Err(e @ mmring::OpenError::WrongPayload { .. }) => {
            let text = e.to_string();
            let mmring::OpenError::WrongPayload {
                expected, found, ..
            } = e
            else {
                unreachable!()
            };
            assert_eq!(expected.name(), want);
            assert_ne!(expected, found);
            assert_eq!(*found, mmring::TypeInfo::of::<u64>());
            // The message names both sides.
            assert!(text.contains(&format!("expected {want} (")), "{text}");
            assert!(text.contains("found u64 (8 B, align 8)"), "{text}");
        }
        Err(e) => panic!("expected WrongPayload, got {e:?}"),
        Ok(_) => panic!("opened a u64 object as {want}"),
    }
}
