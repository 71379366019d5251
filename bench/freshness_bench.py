"""Learning freshness: COMMIT of a row in PostgreSQL -> the first model version ``consumer.train --follow``
published that learned it, with ``--publish-every-seconds 0`` (versions only at full checkpoints, every 5,000
records or 60 s) beside the default 5 (the model alone between checkpoints), side by side in one run.

Both followers run at once on the same rows: the benchmark's own table ``public.mnist_bench_freshness``
(``bench/tables.py``; captured by the running connector into ``tf.public.mnist_bench_freshness``), each follower
with its own consumer group, checkpoint directory and model store (temporary, ``--keep-versions`` large enough
that retention removes no version before it is read), all removed afterwards. Rows go in at ``--rate`` rows/s
for ``--seconds`` (100 commits a second); then the benchmark waits until both stores hold a version covering
every row (with checkpoints only, the last rows wait for the checkpoint a quiet follower writes after half
``--checkpoint-every-seconds``). Before the measured rows, ``--warm-up-rows`` rows are learned and published by
both: a follower's first batches trace the model's functions, seconds that are start-up, not freshness.

A row's figure: its transaction's commit (``time.time()`` right after COMMIT returned) to the ``published_at`` of
the first version (by number) whose ``vNNNN.json`` ``offsets`` cover the row's offset on its partition (the
offset a read of the captured topic found it at). Same machine, same clock. Both followers start from a new
model and learn every row; they share the machine's cores, as two copies of a command would.

    python -m bench.freshness_bench                                  # 200 rows/s for 60 s
    python -m bench.freshness_bench --rate 50 --seconds 3 --checkpoint-every-seconds 6 --no-record
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import uuid
from pathlib import Path

import numpy as np
from confluent_kafka import Message

from bench.arrivals import TopicClock, committed_at, write_rows
from bench.fresh_process import Child
from bench.record import parse, parser, percentiles, print_table, record, settings
from bench.tables import bench_table, run
from consumer.learning.freshness import covers
from consumer.store.versions import ModelStore
from probes.deadline import poll
from probes.rows import NumberedRows
from stack.config import StackConfig
from stack.contract import MNIST

SOURCE_TABLE = "mnist_bench_freshness"  # bench_table(cfg, "freshness")
SOURCE_TOPIC = MNIST.of_table(SOURCE_TABLE)
START_TIMEOUT_S = 300
#: Retention at this many versions removes none within a run (a version every few seconds).
KEEP_VERSIONS = 100_000


def label(every_s: float) -> str:
    """The name a mode goes by in the output and the results.

    >>> label(0), label(5)
    ('checkpoints only (--publish-every-seconds 0)', '--publish-every-seconds 5')
    """
    return "checkpoints only (--publish-every-seconds 0)" if every_s == 0 else f"--publish-every-seconds {every_s:g}"


class RowOffsets(TopicClock):
    """Reads the captured topic from its current end: ``where[row number] = (partition, offset)`` for the rows of
    the run given to ``reset``."""

    def __init__(self, servers: str, topic: str) -> None:
        super().__init__(servers, (topic,), "freshness-bench")
        self.rows: NumberedRows | None = None
        self.where: dict[int, tuple[int, int]] = {}

    def reset(self, rows: NumberedRows) -> None:
        self.rows, self.where = rows, {}

    def on_record(self, message: Message, now: float) -> None:
        number = self.rows.number_of(message.value()) if self.rows else None
        if number is not None:
            self.where.setdefault(number, (message.partition(), message.offset()))


def first_published(versions: list[dict], partition: int, offset: int) -> float | None:
    """``published_at`` of the first version (``versions`` oldest first) whose offsets cover the record.

    >>> infos = [{"offsets": {"0": 4}, "published_at": 10.0}, {"offsets": {"0": 9, "1": 2}, "published_at": 15.0}]
    >>> first_published(infos, 0, 3), first_published(infos, 1, 1), first_published(infos, 0, 9)
    (10.0, 15.0, None)
    """
    return next((v["published_at"] for v in versions if covers(v.get("offsets"), partition, offset)), None)


class Follower:
    """``consumer.train --follow`` on the benchmark's topic with a store, checkpoints and group of its own."""

    def __init__(self, every_s: float, cfg: StackConfig, args: argparse.Namespace, scratch: Path) -> None:
        self.every_s, self.store = every_s, ModelStore(scratch / f"store-{every_s:g}")
        self.log = scratch / f"train-{every_s:g}.log"
        self.argv = [
            sys.executable, "-m", "consumer.train", "--follow", "--topic", SOURCE_TOPIC,
            "--group-id", f"bench-freshness-{every_s:g}-{uuid.uuid4().hex[:8]}",
            "--bootstrap-servers", cfg.kafka.bootstrap_servers, "--run-dir", "none",
            "--checkpoint-dir", str(scratch / f"ckpt-{every_s:g}"), "--model-dir", str(self.store.directory),
            "--keep-versions", str(KEEP_VERSIONS), "--publish-every-seconds", f"{every_s:g}",
            "--checkpoint-every-seconds", f"{args.checkpoint_every_seconds:g}",
        ]  # fmt: skip
        self.child: Child | None = None

    def start(self) -> None:
        self.child = Child.start(self.argv, self.log)

    def following(self) -> bool:
        """It reads the topic (RuntimeError when it ended instead)."""
        if self.child.ended():
            raise RuntimeError(f"{label(self.every_s)} ended ({self.child.code}): {self.child.tail()}")
        return self.child.printed("following ")

    def versions(self) -> list[dict]:
        return [self.store.info(v) for v in self.store.versions()]

    def stop(self) -> None:
        if self.child is not None:
            self.child.interrupt()
            self.child.wait(120)


def write_located(cfg: StackConfig, args: argparse.Namespace, count: int) -> tuple[NumberedRows, dict]:
    """``count`` rows in at the rate; the rows and where each landed, ``{row number: (partition, offset)}``."""
    clock = RowOffsets(cfg.kafka.bootstrap_servers, SOURCE_TOPIC)
    clock.start()
    try:
        rows = write_rows(NumberedRows(cfg.postgres, SOURCE_TABLE, count, args.rate, max(1, args.rate // 100)), clock)
        if not poll(lambda: len(clock.where) == rows.count, 120, 0.2):
            raise RuntimeError(f"only {len(clock.where)} of {rows.count} rows reached the topic within 120 s")
    finally:
        clock.finish()
    return rows, dict(clock.where)


def wait_covered(followers: list[Follower], where: dict, timeout: float) -> None:
    """Until every follower published a version that learned every row of ``where`` (RuntimeError after
    ``timeout`` seconds)."""
    last: dict[int, int] = {}
    for p, o in where.values():
        last[p] = max(last.get(p, -1), o)

    def published(follower: Follower) -> bool:
        return any(all(covers(v.get("offsets"), p, o) for p, o in last.items()) for v in follower.versions())

    for follower in followers:
        if not poll(lambda f=follower: published(f), timeout, 0.5):
            raise RuntimeError(f"{label(follower.every_s)}: no version learned every row after {timeout:g} s")


def measure(cfg: StackConfig, args: argparse.Namespace, followers: list[Follower]) -> dict[str, dict]:
    """A warm-up (the first batches trace the model's functions: seconds the figures must not include), then
    rows at the rate while both follow; each mode's commit -> published percentiles (ms) and versions."""
    wait_s = args.checkpoint_every_seconds + 120
    wait_covered(followers, write_located(cfg, args, args.warm_up_rows)[1], wait_s)
    rows, where = write_located(cfg, args, int(args.rate * args.seconds))
    wait_covered(followers, where, wait_s)
    figures = {}
    for follower in followers:
        versions = follower.versions()
        delays = [(first_published(versions, *where[n]) - committed_at(rows, n)) * 1000 for n in range(rows.count)]
        kinds = [v.get("kind") for v in versions if v["published_at"] >= rows.commit_times[0]]
        figures[label(follower.every_s)] = {
            "latency_ms": percentiles(np.array(delays)),
            "versions": {"checkpoint": kinds.count("checkpoint"), "model": kinds.count("model")},
        }
    return figures


def main(argv: list[str] | None = None) -> int:
    flags = parser("bench.freshness_bench", __doc__, reps=None)
    flags.add_argument("--rate", type=int, default=200, help="rows/s inserted (200)")
    flags.add_argument("--seconds", type=float, default=60.0, help="insert time (60)")
    flags.add_argument("--warm-up-rows", type=int, default=50, help="rows learned before the measured ones (50)")
    flags.add_argument(
        "--modes", type=float, nargs="+", default=[0.0, 5.0], help="--publish-every-seconds of each follower (0 5)"
    )
    flags.add_argument(
        "--checkpoint-every-seconds", type=float, default=60.0, help="the followers' checkpoint interval (60)"
    )
    args = parse(flags, argv)
    cfg = settings(args)
    with tempfile.TemporaryDirectory(prefix="freshness-bench-") as scratch, bench_table(cfg, "freshness"):
        followers = [Follower(every_s, cfg, args, Path(scratch)) for every_s in args.modes]
        try:
            for follower in followers:
                follower.start()
            if not poll(lambda: all(f.following() for f in followers), START_TIMEOUT_S, 0.2):
                raise RuntimeError(f"the followers did not start within {START_TIMEOUT_S} s")
            figures = measure(cfg, args, followers)
        finally:
            for follower in followers:
                follower.stop()
    return report(args, figures)


def report(args: argparse.Namespace, figures: dict[str, dict]) -> int:
    rows = [
        [name, *(f"{f['latency_ms'][k] / 1000:.1f}" for k in ("p50", "p95", "p99", "max")),
         f"{f['versions']['checkpoint']} + {f['versions']['model']}"]
        for name, f in figures.items()
    ]  # fmt: skip
    print_table(
        f"Commit -> first published version that learned the row (s): {args.rate} rows/s for {args.seconds:g} s, "
        f"checkpoints every {args.checkpoint_every_seconds:g} s or 5000 records",
        ["train --follow", "p50", "p95", "p99", "max", "versions: checkpoint + model"],
        rows,
    )
    return record(
        args,
        "freshness",
        {
            "rate": args.rate,
            "seconds": args.seconds,
            "checkpoint_every_seconds": args.checkpoint_every_seconds,
            "rows": int(args.rate * args.seconds),
            "modes": figures,
        },
    )


if __name__ == "__main__":
    sys.exit(run(main))
