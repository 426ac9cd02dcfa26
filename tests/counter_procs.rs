//! `Counter` and `AtomicArray` shared by real, separate processes: no lost
//! update, every value handed out exactly once, and a "take one if any are
//! left" that never oversells.

mod common;

use std::path::Path;

use common::{Children, barrier};
use mmring::{AtomicArray, Counter};

const DECREMENTERS: usize = 20;
const DECREMENTS: i64 = 1000;
const TOTAL: i64 = DECREMENTERS as i64 * DECREMENTS;

/// The `multiprocessing.Value` demo without `get_lock()`: 20 processes each
/// take 1 from 20,000 a thousand times. Besides the final 0, every previous
/// value 20,000 ..= 1 must have been returned to exactly one `fetch_sub`
/// (a lost or doubled update shows up as a count of 0 or 2).
#[test]
fn twenty_processes_decrement_to_exactly_zero() {
    let dir = tempfile::tempdir().unwrap();
    let count = Counter::create(dir.path().join("count"), TOTAL).unwrap();
    let seen = AtomicArray::<u32>::create(dir.path().join("seen"), TOTAL as usize).unwrap();
    let arrived = Counter::create(dir.path().join("arrived"), 0).unwrap();

    let mut kids = Children::new();
    for i in 0..DECREMENTERS {
        kids.spawn("child_decrement", i, dir.path(), "");
    }
    kids.wait_all_ok();

    assert_eq!(arrived.load(), DECREMENTERS as i64);
    assert_eq!(count.load(), 0, "lost or extra updates");
    let wrong: Vec<(usize, u32)> = seen
        .snapshot()
        .into_iter()
        .enumerate()
        .filter(|&(_, n)| n != 1)
        .collect();
    assert!(
        wrong.is_empty(),
        "values handed out other than exactly once (index = value - 1, count): {:?}",
        &wrong[..wrong.len().min(20)]
    );
}

common::child_entry!(
    #[started_by(twenty_processes_decrement_to_exactly_zero)]
    fn child_decrement(ctx: ChildCtx) {
        let count = Counter::open(ctx.path.join("count")).unwrap();
        let seen = AtomicArray::<u32>::open(ctx.path.join("seen")).unwrap();
        let arrived = Counter::open(ctx.path.join("arrived")).unwrap();
        barrier(&arrived, DECREMENTERS);
        for _ in 0..DECREMENTS {
            let prev = count.fetch_sub(1);
            assert!((1..=TOTAL).contains(&prev), "fetch_sub returned {prev}");
            seen[(prev - 1) as usize].fetch_add(1);
        }
    }
);

const BUYERS: usize = 10;

/// The shared files of one ticket sale.
struct Sale {
    stock: Counter,
    sold: Counter,
    lowest: Counter,
    bought: AtomicArray<u32>,
    arrived: Counter,
}

impl Sale {
    fn create(dir: &Path, stock: i64) -> Self {
        Self {
            stock: Counter::create(dir.join("stock"), stock).unwrap(),
            sold: Counter::create(dir.join("sold"), 0).unwrap(),
            lowest: Counter::create(dir.join("lowest"), stock).unwrap(),
            bought: AtomicArray::create(dir.join("bought"), BUYERS).unwrap(),
            arrived: Counter::create(dir.join("arrived"), 0).unwrap(),
        }
    }

    fn open(dir: &Path) -> Self {
        Self {
            stock: Counter::open(dir.join("stock")).unwrap(),
            sold: Counter::open(dir.join("sold")).unwrap(),
            lowest: Counter::open(dir.join("lowest")).unwrap(),
            bought: AtomicArray::open(dir.join("bought")).unwrap(),
            arrived: Counter::open(dir.join("arrived")).unwrap(),
        }
    }

    /// One attempt to buy: true if this process got a ticket. Records the
    /// lowest stock any process ever saw (`fetch_min`), so an oversale shows
    /// even if someone later "returned" a ticket.
    fn try_buy(&self) -> bool {
        match self.stock.fetch_update(|n| (n > 0).then(|| n - 1)) {
            Ok(prev) => {
                self.lowest.fetch_min(prev - 1);
                self.sold.fetch_add(1);
                true
            }
            Err(now) => {
                self.lowest.fetch_min(now);
                assert_eq!(now, 0, "fetch_update declined with stock {now}");
                false
            }
        }
    }
}

/// Ten buyers, released together, race for the last ticket (then the last
/// three), each trying once: exactly that many succeed.
#[test]
fn ten_buyers_never_oversell_the_last_tickets() {
    for stock in [1, 3] {
        let dir = tempfile::tempdir().unwrap();
        let sale = Sale::create(dir.path(), stock);
        let mut kids = Children::new();
        for i in 0..BUYERS {
            kids.spawn("child_buy_once", i, dir.path(), "");
        }
        kids.wait_all_ok();

        let winners: Vec<usize> = (0..BUYERS)
            .filter(|&i| sale.bought[i].load() == 1)
            .collect();
        println!("stock {stock}: buyers {winners:?} got a ticket");
        assert_eq!(winners.len() as i64, stock, "winners {winners:?}");
        assert_eq!(sale.sold.load(), stock);
        assert_eq!(sale.stock.load(), 0);
        assert_eq!(sale.lowest.load(), 0, "the stock went below zero");
        assert_eq!(sale.arrived.load(), BUYERS as i64);
    }
}

common::child_entry!(
    #[started_by(ten_buyers_never_oversell_the_last_tickets)]
    fn child_buy_once(ctx: ChildCtx) {
        let sale = Sale::open(&ctx.path);
        barrier(&sale.arrived, BUYERS);
        if sale.try_buy() {
            sale.bought[ctx.index].store(1);
        }
    }
);

const BIG_STOCK: i64 = 5000;

/// Ten buyers each buy until the stock is gone: every ticket number is sold
/// exactly once and the per-buyer counts add up to the stock.
#[test]
fn ten_buyers_sell_a_big_stock_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let sale = Sale::create(dir.path(), BIG_STOCK);
    let tickets =
        AtomicArray::<u32>::create(dir.path().join("tickets"), BIG_STOCK as usize).unwrap();
    let mut kids = Children::new();
    for i in 0..BUYERS {
        kids.spawn("child_buy_all", i, dir.path(), "");
    }
    kids.wait_all_ok();

    let per_buyer = sale.bought.snapshot();
    println!("tickets per buyer: {per_buyer:?}");
    assert_eq!(
        per_buyer.iter().map(|&n| i64::from(n)).sum::<i64>(),
        BIG_STOCK
    );
    assert_eq!(sale.sold.load(), BIG_STOCK);
    assert_eq!(sale.stock.load(), 0);
    assert_eq!(sale.lowest.load(), 0, "the stock went below zero");
    let wrong: Vec<(usize, u32)> = tickets
        .snapshot()
        .into_iter()
        .enumerate()
        .filter(|&(_, n)| n != 1)
        .collect();
    assert!(
        wrong.is_empty(),
        "tickets not sold exactly once: {:?}",
        &wrong[..wrong.len().min(20)]
    );
}

common::child_entry!(
    #[started_by(ten_buyers_sell_a_big_stock_exactly_once)]
    fn child_buy_all(ctx: ChildCtx) {
        let sale = Sale::open(&ctx.path);
        let tickets = AtomicArray::<u32>::open(ctx.path.join("tickets")).unwrap();
        barrier(&sale.arrived, BUYERS);
        let mut mine = 0;
        loop {
            match sale.stock.fetch_update(|n| (n > 0).then(|| n - 1)) {
                Ok(prev) => {
                    assert!((1..=BIG_STOCK).contains(&prev), "sold ticket {prev}");
                    tickets[(prev - 1) as usize].fetch_add(1);
                    sale.lowest.fetch_min(prev - 1);
                    sale.sold.fetch_add(1);
                    mine += 1;
                }
                Err(now) => {
                    sale.lowest.fetch_min(now);
                    assert_eq!(now, 0, "fetch_update declined with stock {now}");
                    break;
                }
            }
        }
        sale.bought[ctx.index].store(mine);
    }
);

const ARRAY_PROCS: usize = 4;
const ARRAY_ROUNDS: usize = 1000;

/// Every element type of `AtomicArray` across processes: integer adds on
/// several elements, `f64` adds (a compare-and-swap loop: 0.5 is exact in
/// binary, so the sum is too), `fetch_max`, and `compare_exchange` used as a
/// hand-made increment.
#[test]
fn array_elements_of_every_type_across_processes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let hist = AtomicArray::<u64>::create(d.join("hist"), 8).unwrap();
    let signed = AtomicArray::<i32>::create(d.join("signed"), 2).unwrap();
    let small = AtomicArray::<u32>::create(d.join("small"), 1).unwrap();
    let wide = AtomicArray::<i64>::create(d.join("wide"), 1).unwrap();
    let float = AtomicArray::<f64>::create(d.join("float"), 1).unwrap();
    let arrived = Counter::create(d.join("arrived"), 0).unwrap();
    let mut kids = Children::new();
    for i in 0..ARRAY_PROCS {
        kids.spawn("child_array_ops", i, d, "");
    }
    kids.wait_all_ok();

    let n = (ARRAY_PROCS * ARRAY_ROUNDS) as u64;
    assert_eq!(hist.snapshot(), vec![n / 8; 8]);
    assert_eq!(signed[0].load(), -(n as i32));
    assert_eq!(signed[1].load(), ARRAY_PROCS as i32 - 1, "fetch_max");
    assert_eq!(small[0].load(), n as u32, "compare_exchange increments");
    assert_eq!(wide[0].load(), n as i64 * 3);
    assert_eq!(float[0].load(), n as f64 * 0.5);
    assert_eq!(arrived.load(), ARRAY_PROCS as i64);
}

common::child_entry!(
    #[started_by(array_elements_of_every_type_across_processes)]
    fn child_array_ops(ctx: ChildCtx) {
        let d = &ctx.path;
        let hist = AtomicArray::<u64>::open(d.join("hist")).unwrap();
        let signed = AtomicArray::<i32>::open(d.join("signed")).unwrap();
        let small = AtomicArray::<u32>::open(d.join("small")).unwrap();
        let wide = AtomicArray::<i64>::open(d.join("wide")).unwrap();
        let float = AtomicArray::<f64>::open(d.join("float")).unwrap();
        let arrived = Counter::open(d.join("arrived")).unwrap();
        barrier(&arrived, ARRAY_PROCS);
        for k in 0..ARRAY_ROUNDS {
            hist[k % 8].fetch_add(1);
            signed[0].fetch_sub(1);
            signed[1].fetch_max(ctx.index as i32);
            let mut cur = small[0].load();
            while let Err(now) = small[0].compare_exchange(cur, cur + 1) {
                cur = now;
            }
            wide[0].fetch_add(3);
            float[0].fetch_add(0.5);
        }
    }
);

const NARROW_PROCS: usize = 4;
const NARROW_ROUNDS: usize = 20_000;

/// The narrow element types across processes, neighbours included: packed
/// `u8` elements share a machine word (four per 32-bit word, eight per
/// 64-bit one), so process `i` hammers its own byte `i` while the others
/// hammer the bytes right beside it, and the same with `i16` and `f32`.
/// Only process `i` writes element `i`, so every `fetch_add` it makes must
/// return exactly what its previous one left (wrapping): a neighbour's
/// write that spilled into it would show at once. The element after the
/// private ones is shared by all, and must hold every process's adds.
#[test]
fn narrow_elements_across_processes_lose_no_neighbour_update() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let n = NARROW_PROCS;
    let bytes = AtomicArray::<u8>::create(d.join("bytes"), n + 1).unwrap();
    let shorts = AtomicArray::<i16>::create(d.join("shorts"), n + 1).unwrap();
    let floats = AtomicArray::<f32>::create(d.join("floats"), n + 1).unwrap();
    let arrived = Counter::create(d.join("arrived"), 0).unwrap();
    let mut kids = Children::new();
    for i in 0..n {
        kids.spawn("child_narrow_ops", i, d, "");
    }
    kids.wait_all_ok();

    let rounds = NARROW_ROUNDS;
    let total = n * rounds;
    let own_bytes = (rounds % 256) as u8;
    assert_eq!(bytes.snapshot()[..n], vec![own_bytes; n], "own bytes");
    assert_eq!(bytes[n].load(), (total * 3 % 256) as u8, "shared byte");
    let own_shorts = (rounds as i16).wrapping_neg();
    assert_eq!(shorts.snapshot()[..n], vec![own_shorts; n], "own i16s");
    assert_eq!(
        shorts[n].load(),
        (total as i16).wrapping_mul(7),
        "shared i16"
    );
    assert_eq!(
        floats.snapshot()[..n],
        vec![rounds as f32 * 0.5; n],
        "own f32s"
    );
    // Every partial sum is a multiple of 0.25 below 2^24 quarters: exact.
    assert_eq!(floats[n].load(), total as f32 * 0.25, "shared f32");
    assert_eq!(arrived.load(), n as i64);
}

common::child_entry!(
    #[started_by(narrow_elements_across_processes_lose_no_neighbour_update)]
    fn child_narrow_ops(ctx: ChildCtx) {
        let d = &ctx.path;
        let bytes = AtomicArray::<u8>::open(d.join("bytes")).unwrap();
        let shorts = AtomicArray::<i16>::open(d.join("shorts")).unwrap();
        let floats = AtomicArray::<f32>::open(d.join("floats")).unwrap();
        let arrived = Counter::open(d.join("arrived")).unwrap();
        let (me, shared) = (ctx.index, NARROW_PROCS);
        barrier(&arrived, NARROW_PROCS);
        for k in 0..NARROW_ROUNDS {
            let prev = bytes[me].fetch_add(1);
            assert_eq!(prev, k as u8, "byte {me} disturbed at round {k}");
            let prev = shorts[me].fetch_sub(1);
            assert_eq!(
                prev,
                (k as i16).wrapping_neg(),
                "i16 {me} disturbed at round {k}"
            );
            let prev = floats[me].fetch_add(0.5);
            assert_eq!(prev, k as f32 * 0.5, "f32 {me} disturbed at round {k}");
            // The shared elements: a hand-made add on the byte, plain ones
            // on the others.
            assert!(
                bytes[shared]
                    .fetch_update(|b| Some(b.wrapping_add(3)))
                    .is_ok()
            );
            shorts[shared].fetch_add(7);
            floats[shared].fetch_add(0.25);
        }
    }
);
