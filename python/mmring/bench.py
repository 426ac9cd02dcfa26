"""``python -m mmring.bench``: each mmring object against its
``multiprocessing`` counterpart, between real processes, in one run.

Every row runs the same program twice, once over mmring and once over
``multiprocessing``, in fresh processes started the same way, and prints
both rates and their ratio (higher is better for mmring; for the round
trip, the ratio is multiprocessing's time over mmring's). The targets are
the issue's; a ratio means something only against the baseline measured in
the same run, on a quiet machine.

    python -m mmring.bench            # the table
    python -m mmring.bench --json     # the same rows as JSON
    python -m mmring.bench --quick    # small counts: checks that it runs
    python -m mmring.bench --rows queue,pipe
"""

import argparse
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time

import mmring

# ---------------------------------------------------------------------------
# Workers (top level, so that every start method can import them). Each one
# waits on `start` (a multiprocessing.Barrier over every worker and the
# parent), does its share, and reports (start, end) perf_counter readings
# through `out`; CLOCK_MONOTONIC is one clock for every process.
# ---------------------------------------------------------------------------


def _report(out, t0, value=None):
    out.put((t0, time.perf_counter(), value))


def _queue_producer(q, n, raw, start, out):
    # `raw`: 16-byte messages, through put_bytes on an mmring queue and
    # put (pickling them) on multiprocessing's, which has nothing else.
    put = getattr(q, "put_bytes", q.put) if raw else q.put
    start.wait()
    t0 = time.perf_counter()
    if raw:
        item = b"x" * 16
        for _ in range(n):
            put(item)
    else:
        for i in range(n):
            put(i)
    _report(out, t0)


def _queue_consumer(q, n, raw, start, out):
    get = getattr(q, "get_bytes", q.get) if raw else q.get
    start.wait()
    t0 = time.perf_counter()
    total = 0
    if raw:
        for _ in range(n):
            total += len(get())
    else:
        for _ in range(n):
            total += get()
    _report(out, t0, total)


def _joinable_worker(q, n, start, out):
    start.wait()
    t0 = time.perf_counter()
    total = 0
    for _ in range(n):
        total += q.get()
        q.task_done()
    _report(out, t0, total)


def _joinable_producer(q, n, start, out):
    start.wait()
    t0 = time.perf_counter()
    for i in range(n):
        q.put(i)
    q.join()
    _report(out, t0)


def _echo(conn, n, start, out):
    start.wait()
    t0 = time.perf_counter()
    for _ in range(n):
        conn.send(conn.recv())
    _report(out, t0)


def _value_adder(v, n, mp, start, out):
    start.wait()
    t0 = time.perf_counter()
    if mp:
        lock = v.get_lock()
        for _ in range(n):
            with lock:
                v.value += 1
    else:
        add = v.fetch_add
        for _ in range(n):
            add(1)
    _report(out, t0)


def _array_adder(a, n, mp, start, out):
    start.wait()
    t0 = time.perf_counter()
    size = len(a)
    if mp:
        lock = a.get_lock()
        for i in range(n):
            with lock:
                a[i % size] += 1
    else:
        add = a.fetch_add
        for i in range(n):
            add(i % size, 1)
    _report(out, t0)


def _dict_updater(d, lock, n, start, out):
    start.wait()
    t0 = time.perf_counter()
    if lock is None:
        inc = lambda x: x + 1  # noqa: E731
        for _ in range(n):
            d.update_key("hits", inc, default=0)
    else:
        for _ in range(n):
            with lock:
                d["hits"] = d["hits"] + 1
    _report(out, t0)


def _lock_user(lock, n, start, out):
    start.wait()
    t0 = time.perf_counter()
    for _ in range(n):
        lock.acquire()
        lock.release()
    _report(out, t0)


def _barrier_party(b, n, start, out):
    start.wait()
    t0 = time.perf_counter()
    for _ in range(n):
        b.wait()
    _report(out, t0)


# ---------------------------------------------------------------------------
# The harness.
# ---------------------------------------------------------------------------


class Run:
    """One side of a row: starts workers, releases them together, and
    returns the elapsed seconds (first start to last end) and their values."""

    def __init__(self, ctx):
        self.ctx = ctx

    def run(self, jobs, parent=None):
        """`jobs`: (target, args) per worker; each gets (start, out) appended.
        `parent`, if given, runs in this process after the release."""
        parties = len(jobs) + 1
        start = self.ctx.Barrier(parties)
        out = self.ctx.Queue()
        procs = [
            self.ctx.Process(target=t, args=tuple(a) + (start, out), daemon=True) for t, a in jobs
        ]
        for p in procs:
            p.start()
        start.wait()
        t_parent = time.perf_counter()
        extra = parent() if parent is not None else None
        reports = [out.get(timeout=600) for _ in procs]
        for p in procs:
            p.join(60)
            if p.exitcode != 0:
                raise RuntimeError(f"a benchmark worker exited with {p.exitcode}")
        t0 = min([r[0] for r in reports] + ([t_parent] if parent is not None else []))
        t1 = max(r[1] for r in reports)
        return t1 - t0, [r[2] for r in reports], extra


def _fmt_rate(ops_per_s):
    for unit, scale in (("M", 1e6), ("k", 1e3)):
        if ops_per_s >= scale:
            return f"{ops_per_s / scale:.2f} {unit}/s"
    return f"{ops_per_s:.0f} /s"


def _fmt_time(seconds):
    if seconds < 1e-3:
        return f"{seconds * 1e6:.2f} us"
    return f"{seconds * 1e3:.2f} ms"


class Bench:
    def __init__(self, ctx, scale, progress):
        self.ctx = ctx
        self.scale = scale
        self.progress = progress
        self.dir = tempfile.mkdtemp(prefix="mmring-bench-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
        self.rows = []

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def path(self, stem):
        return os.path.join(self.dir, stem)

    def n(self, count):
        return max(10, int(count * self.scale))

    def row(self, key, title, unit, mm, mp, target):
        """Records a row: `mm` and `mp` are ops/s (unit "ops") or seconds
        per round trip (unit "rt")."""
        if unit == "rt":
            ratio = mp / mm
            mm_s, mp_s = _fmt_time(mm), _fmt_time(mp)
        else:
            ratio = mm / mp
            mm_s, mp_s = _fmt_rate(mm), _fmt_rate(mp)
        self.rows.append(
            {
                "row": key,
                "title": title,
                "unit": "seconds per round trip" if unit == "rt" else "operations per second",
                "mmring": mm,
                "multiprocessing": mp,
                "ratio": ratio,
                "target": target,
                "mmring_text": mm_s,
                "multiprocessing_text": mp_s,
            }
        )

    # -- rows ---------------------------------------------------------------

    def queue(self, raw):
        key = "queue_bytes" if raw else "queue"
        n_mm, n_mp = self.n(2_000_000), self.n(200_000)
        # item_size 248: slots of 256 bytes. With small slots (item_size
        # 64 or less) the producer writes the line, or the prefetched line
        # pair, that the consumer is reading whenever the queue runs near
        # empty, and the row drops 2-3x; the default 4096-byte slots walk
        # 4 MiB per lap and swing between 1.6 and 4 M/s here.
        q = mmring.Queue(self.path(key), maxsize=1024, item_size=248)
        t_mm, vals, _ = Run(self.ctx).run(
            [(_queue_producer, (q, n_mm, raw)), (_queue_consumer, (q, n_mm, raw))]
        )
        expect = 16 * n_mm if raw else n_mm * (n_mm - 1) // 2
        assert vals[0] == expect or vals[1] == expect, "mmring.Queue lost or changed items"
        mq = self.ctx.Queue(1024)
        t_mp, _, _ = Run(self.ctx).run(
            [(_queue_producer, (mq, n_mp, raw)), (_queue_consumer, (mq, n_mp, raw))]
        )
        if raw:
            self.row(key, "Queue put_bytes/get_bytes, 1P1C, 16 B", "ops", n_mm / t_mm, n_mp / t_mp, 30)
        else:
            self.row(key, "Queue put/get, 1P1C, small objects", "ops", n_mm / t_mm, n_mp / t_mp, 10)

    def joinable(self):
        n_mm, n_mp = self.n(1_000_000), self.n(100_000)
        q = mmring.JoinableQueue(self.path("jq"), maxsize=1024, item_size=248)  # as queue()
        t_mm, _, _ = Run(self.ctx).run([(_joinable_producer, (q, n_mm)), (_joinable_worker, (q, n_mm))])
        mq = self.ctx.JoinableQueue(1024)
        t_mp, _, _ = Run(self.ctx).run([(_joinable_producer, (mq, n_mp)), (_joinable_worker, (mq, n_mp))])
        self.row("joinable", "JoinableQueue put/get/task_done + join, 1P1C", "ops", n_mm / t_mm, n_mp / t_mp, None)

    def pipe(self):
        n_mm, n_mp = self.n(200_000), self.n(20_000)

        def ping(conn, n):
            def go():
                for i in range(n):
                    conn.send(i)
                    conn.recv()

            return go

        a, b = mmring.Pipe(self.path("pipe"))
        t_mm, _, _ = Run(self.ctx).run([(_echo, (b, n_mm))], parent=ping(a, n_mm))
        ma, mb = self.ctx.Pipe()
        t_mp, _, _ = Run(self.ctx).run([(_echo, (mb, n_mp))], parent=ping(ma, n_mp))
        self.row("pipe", "Pipe send/recv round trip (mean)", "rt", t_mm / n_mm, t_mp / n_mp, 5)

    def value(self):
        procs = 4
        n_mm, n_mp = self.n(2_000_000), self.n(200_000)
        v = mmring.Value("q", 0, name=self.path("value"))
        t_mm, _, _ = Run(self.ctx).run([(_value_adder, (v, n_mm, False))] * procs)
        assert v.value == procs * n_mm, "mmring.Value lost an increment"
        mv = self.ctx.Value("q", 0)
        t_mp, _, _ = Run(self.ctx).run([(_value_adder, (mv, n_mp, True))] * procs)
        assert mv.value == procs * n_mp
        self.row("value", "Value.fetch_add, 4 processes (mp: get_lock + +=)", "ops", procs * n_mm / t_mm, procs * n_mp / t_mp, 20)

    def array(self):
        procs = 4
        n_mm, n_mp = self.n(2_000_000), self.n(100_000)
        a = mmring.Array("q", 16, name=self.path("array"))
        t_mm, _, _ = Run(self.ctx).run([(_array_adder, (a, n_mm, False))] * procs)
        assert sum(a[:]) == procs * n_mm, "mmring.Array lost an increment"
        ma = self.ctx.Array("q", 16)
        t_mp, _, _ = Run(self.ctx).run([(_array_adder, (ma, n_mp, True))] * procs)
        self.row("array", "Array.fetch_add, 4 processes (mp: get_lock + +=)", "ops", procs * n_mm / t_mm, procs * n_mp / t_mp, None)

    def dict(self):
        procs = 4
        n_mm, n_mp = self.n(200_000), self.n(1_000)
        d = mmring.Dict(self.path("dict"), capacity=64, key_size=16, value_size=64)
        t_mm, _, _ = Run(self.ctx).run([(_dict_updater, (d, None, n_mm))] * procs)
        assert d["hits"] == procs * n_mm, "mmring.Dict lost an update"
        with self.ctx.Manager() as manager:
            md, ml = manager.dict(), manager.Lock()
            md["hits"] = 0
            t_mp, _, _ = Run(self.ctx).run([(_dict_updater, (md, ml, n_mp))] * procs)
            assert md["hits"] == procs * n_mp
        self.row("dict", "Dict.update_key, 4 processes (mp: Manager dict + Lock)", "ops", procs * n_mm / t_mm, procs * n_mp / t_mp, 100)

    def lock(self):
        procs = 4
        n_mm, n_mp = self.n(1_000_000), self.n(500_000)
        lk = mmring.Lock(self.path("lock"))
        t_mm, _, _ = Run(self.ctx).run([(_lock_user, (lk, n_mm))] * procs)
        ml = self.ctx.Lock()
        t_mp, _, _ = Run(self.ctx).run([(_lock_user, (ml, n_mp))] * procs)
        self.row("lock", "Lock acquire/release, 4 processes", "ops", procs * n_mm / t_mm, procs * n_mp / t_mp, None)

    def barrier(self):
        procs = 4
        n_mm, n_mp = self.n(100_000), self.n(5_000)
        b = mmring.Barrier(self.path("barrier"), parties=procs)
        t_mm, _, _ = Run(self.ctx).run([(_barrier_party, (b, n_mm))] * procs)
        mb = self.ctx.Barrier(procs)
        t_mp, _, _ = Run(self.ctx).run([(_barrier_party, (mb, n_mp))] * procs)
        self.row("barrier", "Barrier.wait, 4 parties (per generation)", "ops", n_mm / t_mm, n_mp / t_mp, None)


ROWS = {
    "queue": lambda b: b.queue(raw=False),
    "queue_bytes": lambda b: b.queue(raw=True),
    "joinable": lambda b: b.joinable(),
    "pipe": lambda b: b.pipe(),
    "value": lambda b: b.value(),
    "array": lambda b: b.array(),
    "dict": lambda b: b.dict(),
    "lock": lambda b: b.lock(),
    "barrier": lambda b: b.barrier(),
}


def table(rows):
    """The rows as a Markdown table."""
    lines = [
        "| row | mmring | multiprocessing | ratio | target |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        target = "" if r["target"] is None else f">= {r['target']}x"
        if r["target"] is not None:
            target += " ok" if r["ratio"] >= r["target"] else " MISSED"
        lines.append(
            f"| {r['title']} | {r['mmring_text']} | {r['multiprocessing_text']} | {r['ratio']:.1f}x | {target} |"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m mmring.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    parser.add_argument("--quick", action="store_true", help="small counts (a smoke test; the ratios mean little)")
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated rows to run (default: all of {', '.join(ROWS)})")
    parser.add_argument(
        "--start-method",
        default="fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn",
        choices=multiprocessing.get_all_start_methods(),
        help="how worker processes start (default: fork where there is fork)",
    )
    args = parser.parse_args(argv)
    wanted = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = [r for r in wanted if r not in ROWS]
    if unknown:
        parser.error(f"unknown rows: {', '.join(unknown)} (known: {', '.join(ROWS)})")

    ctx = multiprocessing.get_context(args.start_method)
    bench = Bench(ctx, 0.005 if args.quick else 1.0, progress=sys.stderr)
    try:
        for i, key in enumerate(wanted, 1):
            print(f"\r[{i}/{len(wanted)}] {key} ...".ljust(40), end="", file=sys.stderr, flush=True)
            ROWS[key](bench)
        print("\r" + " " * 40 + "\r", end="", file=sys.stderr, flush=True)
    finally:
        bench.close()
    if args.json:
        print(json.dumps(bench.rows, indent=2))
    else:
        print(table(bench.rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
