//! A shared bank balance, a depositor process and a withdrawer process,
//! and no lock. Deposits are `fetch_add`; a withdrawal is `fetch_update`
//! ("take the amount only if the balance covers it"), so the balance never
//! goes negative however the two interleave. A shared `AtomicArray` is the
//! ledger: money deposited, money withdrawn, withdrawals declined, and the
//! number of transactions. At the end the balance must equal
//! initial + deposits - withdrawals, to the unit.
//!
//! ```text
//! cargo run --release --example bank
//! ```
//!
//! This program starts itself again as each clerk (`depositor DIR` and
//! `withdrawer DIR`). The files live in a fresh directory under `/dev/shm`
//! (or the system temporary directory), removed at the end.

use std::path::Path;
use std::process::{Child, Command, ExitCode};
use std::time::{Duration, Instant};

use mmring::{AtomicArray, Counter};

const INITIAL: i64 = 100;
const OPERATIONS: i64 = 200_000;

/// Ledger entries.
const DEPOSITED: usize = 0;
const WITHDRAWN: usize = 1;
const DECLINED: usize = 2;
const TRANSACTIONS: usize = 3;
const LEDGER_LEN: usize = 4;

fn deposit_amount(i: i64) -> i64 {
    i % 7 + 1
}

fn withdrawal_amount(i: i64) -> i64 {
    i % 9 + 1
}

mod common;

use common::{scratch_dir, wait_all};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 3 && (args[1] == "depositor" || args[1] == "withdrawer") {
        return match clerk(&args[1], Path::new(&args[2])) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{}: {e}", args[1]);
                ExitCode::FAILURE
            }
        };
    }
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("bank: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One clerk process: deposits or withdraws `OPERATIONS` times.
fn clerk(role: &str, dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let balance = Counter::open(dir.join("balance"))?;
    let lowest = Counter::open(dir.join("lowest"))?;
    let ready = Counter::open(dir.join("ready"))?;
    let ledger = AtomicArray::<i64>::open(dir.join("ledger"))?;
    ready.fetch_add(1);
    let deadline = Instant::now() + Duration::from_secs(60);
    while ready.load() < 2 {
        if Instant::now() > deadline {
            return Err("the other clerk never came".into());
        }
        std::thread::yield_now();
    }
    for i in 0..OPERATIONS {
        if role == "depositor" {
            let amount = deposit_amount(i);
            balance.fetch_add(amount);
            ledger[DEPOSITED].fetch_add(amount);
            ledger[TRANSACTIONS].fetch_add(1);
        } else {
            let amount = withdrawal_amount(i);
            match balance.fetch_update(|b| (b >= amount).then(|| b - amount)) {
                Ok(before) => {
                    lowest.fetch_min(before - amount);
                    ledger[WITHDRAWN].fetch_add(amount);
                    ledger[TRANSACTIONS].fetch_add(1);
                }
                Err(_) => {
                    ledger[DECLINED].fetch_add(1);
                }
            }
        }
    }
    Ok(())
}

fn run() -> Result<bool, Box<dyn std::error::Error>> {
    let dir = scratch_dir("bank")?;
    let d = dir.path();
    let balance = Counter::create(d.join("balance"), INITIAL)?;
    let lowest = Counter::create(d.join("lowest"), INITIAL)?;
    let _ready = Counter::create(d.join("ready"), 0)?;
    let ledger = AtomicArray::<i64>::create(d.join("ledger"), LEDGER_LEN)?;

    let exe = std::env::current_exe()?;
    let started = Instant::now();
    let children = ["depositor", "withdrawer"]
        .into_iter()
        .map(|role| Command::new(&exe).arg(role).arg(d).spawn())
        .collect::<Result<Vec<Child>, _>>()?;
    wait_all(children)?;
    let took = started.elapsed();

    let deposited = ledger[DEPOSITED].load();
    let withdrawn = ledger[WITHDRAWN].load();
    let declined = ledger[DECLINED].load();
    let transactions = ledger[TRANSACTIONS].load();
    let final_balance = balance.load();
    let expected_deposits: i64 = (0..OPERATIONS).map(deposit_amount).sum();
    let expected_balance = INITIAL + deposited - withdrawn;

    println!(
        "a depositor and a withdrawer, {OPERATIONS} operations each ({:.1} ms):",
        took.as_secs_f64() * 1e3
    );
    println!("  initial balance      {INITIAL:>10}");
    println!("  deposited          + {deposited:>10}");
    println!("  withdrawn          - {withdrawn:>10}");
    println!("  final balance        {final_balance:>10}  (expected {expected_balance})");
    println!("  withdrawals declined {declined:>10}  (balance too low at that moment)");
    println!("  transactions         {transactions:>10}");
    println!("  lowest balance seen  {:>10}", lowest.load());

    let checks = [
        (
            final_balance == expected_balance,
            "balance = initial + deposits - withdrawals",
        ),
        (
            deposited == expected_deposits,
            "every deposit recorded once",
        ),
        (
            transactions + declined == 2 * OPERATIONS,
            "every operation either done or declined",
        ),
        (lowest.load() >= 0 && final_balance >= 0, "never overdrawn"),
    ];
    let mut ok = true;
    for (passed, what) in checks {
        println!("  {} {what}", if passed { "ok:    " } else { "FAILED:" });
        ok &= passed;
    }
    Ok(ok)
}
