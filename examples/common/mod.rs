//! Helpers shared by the examples: waiting for worker processes with a
//! watchdog, and a private scratch directory.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

/// Waits for every child, at most a minute in all (then kills the rest);
/// an error if any failed.
pub fn wait_all(mut children: Vec<Child>) -> Result<(), Box<dyn std::error::Error>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut done = vec![false; children.len()];
    let mut failed = 0;
    while done.contains(&false) {
        for (child, done) in children.iter_mut().zip(&mut done) {
            if *done {
                continue;
            }
            if let Some(status) = child.try_wait()? {
                *done = true;
                failed += usize::from(!status.success());
            }
        }
        if Instant::now() > deadline {
            for (child, _) in children.iter_mut().zip(&done).filter(|(_, d)| !**d) {
                let _ = child.kill();
                let _ = child.wait();
            }
            return Err("workers still running after 60 s: killed".into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    if failed > 0 {
        return Err(format!("{failed} worker(s) failed").into());
    }
    Ok(())
}

/// A fresh directory under `/dev/shm` (or the temporary directory), removed
/// when dropped.
pub fn scratch_dir(name: &str) -> std::io::Result<tempfile::TempDir> {
    let shm = PathBuf::from("/dev/shm");
    let base = if shm.is_dir() {
        shm
    } else {
        std::env::temp_dir()
    };
    tempfile::Builder::new()
        .prefix(&format!("mmring-{name}-"))
        .tempdir_in(base)
}
