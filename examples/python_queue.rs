//! A Python `mmring.Queue`, seen from Rust: the same file is a
//! [`ByteQueue`] (each item one message: `put_bytes` sends raw bytes, `put`
//! a pickle), and the payload identity in its header refuses it as a
//! `Queue<u64>`, naming both sides.
//!
//! ```text
//! cargo run --example python_queue -- PATH [U64_PATH]
//! ```
//!
//! Takes every message queued at `PATH` now and puts back, for each, one
//! reply `rust got: <message>`; prints what it took and the refusal. With
//! `U64_PATH`, it also creates a `Queue<u64>` there holding 1, 2 and 3 (for
//! the Python side to try to open as an `mmring.Queue`). Exits with a
//! failure if `PATH` is not a byte queue or opens as a `Queue<u64>`.
//! (Run by `python/tests/test_queue.py`.)

use std::process::ExitCode;

use mmring::OpenError;
use mmring::mpmc::{ByteQueue, Queue, QueueOptions};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first() else {
        eprintln!("usage: python_queue PATH [U64_PATH]");
        return ExitCode::from(2);
    };
    match run(path, args.get(1)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("python_queue: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(path: &str, u64_path: Option<&String>) -> Result<(), Box<dyn std::error::Error>> {
    let q = ByteQueue::open(path)?;
    println!(
        "opened {path} as a ByteQueue: maxsize {}, item_size {}, joinable {}",
        q.bound(),
        q.max_len(),
        q.is_joinable()
    );
    let mut got = Vec::new();
    while let Ok(msg) = q.pop_timeout(std::time::Duration::ZERO) {
        println!("took {:?}", String::from_utf8_lossy(&msg));
        got.push(msg);
    }
    for msg in &got {
        let mut reply = b"rust got: ".to_vec();
        reply.extend_from_slice(msg);
        q.push(&reply)?;
    }
    println!("put back {} replies", got.len());

    match Queue::<u64>::open(path) {
        Ok(_) => return Err(format!("{path}: a byte queue opened as a Queue<u64>").into()),
        Err(e @ OpenError::WrongKind { .. }) => println!("as a Queue<u64>: refused: {e}"),
        Err(e) => return Err(format!("{path}: expected a wrong-kind refusal, got: {e}").into()),
    }

    if let Some(u64_path) = u64_path {
        let typed = Queue::<u64>::create_with(u64_path, 4, &QueueOptions::new())?;
        for v in 1..=3 {
            typed.push(v)?;
        }
        println!("created {u64_path} as a Queue<u64> holding 1, 2, 3");
    }
    Ok(())
}
