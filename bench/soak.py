"""Soak: stream many rows at a fixed rate through the whole pipeline while sampling every process's memory.

Inserts ``--rows`` numbered rows (``probes.rows``) into the benchmark's own table ``public.mnist_bench_soak``
(``bench/tables.py``; captured into ``tf.public.mnist_bench_soak``, both removed afterwards; the demo tables are
never touched) at ``--rate`` rows/s; ``python -m consumer.evaluate`` (its default source: confluent-kafka and the
NumPy decode; an untrained model: accuracy is not the point) reads them live. Every ``--every`` seconds it
samples the resident memory of the Kafka and Connect JVMs and of the consumer. At the end it checks that every
row reached the topic and the consumer, and that memory stayed within the stated bound: each JVM below its heap
limit + 512 MiB, the consumer below 2 GiB, and no process growing by more than 25 % from the first to the last
quarter of the run. Not part of CI.

    python -m bench.soak                                  # 500,000 rows at 2,000 rows/s (about 4 minutes)
    python -m bench.soak --rows 2000 --rate 500 --every 1 --no-record
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.fresh_process import untrained_model
from bench.record import parse, parser, print_table, record, settings
from bench.tables import bench_table, run
from probes.rows import NumberedRows
from probes.topics import end_offsets, numbers_on_topic
from stack import connect, kafka
from stack.config import StackConfig
from stack.contract import MNIST

TABLE = "mnist_bench_soak"
TOPIC = MNIST.of_table(TABLE)
BOUNDS_MIB = {"kafka": 768 + 512, "connect": 1024 + 512, "consumer": 2048}


def rss_mib(pid: int) -> float | None:
    try:
        match = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    except OSError:
        return None
    return int(match.group(1)) / 1024 if match else None


def main(argv: list[str] | None = None) -> int:
    flags = parser("bench.soak", __doc__, reps=None)
    flags.add_argument("--rows", type=int, default=500_000)
    flags.add_argument("--rate", type=float, default=2000.0)
    flags.add_argument("--every", type=float, default=5.0, help="seconds between memory samples (5)")
    args = parse(flags, argv)
    cfg = settings(args)
    with bench_table(cfg, "soak"):
        return soak(cfg, args)


def soak(cfg: StackConfig, args: argparse.Namespace) -> int:
    """Insert the rows while the consumer reads them and the sampler runs; check delivery and memory."""
    servers = cfg.kafka.bootstrap_servers
    model = untrained_model(Path(tempfile.mkdtemp(prefix="soak-")))
    start = end_offsets(servers, TOPIC)
    consumer = start_consumer(servers, model)
    sampler = MemorySampler(
        {"kafka": kafka.running_pid(cfg), "connect": connect.running_pid(cfg), "consumer": consumer.pid}, args.every
    )
    sampler.start()
    rows = NumberedRows(cfg.postgres, TABLE, args.rows, args.rate, batch=max(1, int(args.rate // 10)))
    started = time.monotonic()
    rows.start()
    rows.join()
    output, errors = consumer.communicate(timeout=900)
    sampler.stop.set()
    sampler.join()
    seconds = time.monotonic() - started
    if rows.error or consumer.returncode != 0:
        print(f"error: inserter {rows.error!r}, consumer exit {consumer.returncode}: {errors[-300:]}", file=sys.stderr)
        return 1

    numbers = numbers_on_topic(servers, TOPIC, start, rows.prefix, args.rows, timeout=600)
    delivered = len(set(numbers))
    consumed = int(re.search(r"evaluated (\d+) records", output).group(1))
    memory = {name: memory_figures(name, values) for name, values in sampler.samples.items() if values}
    print_memory(memory, sampler.samples, f"Soak: {args.rows} rows at {args.rate:g} rows/s in {seconds:.0f} s")
    print(
        f"rows inserted {rows.committed}, on the topic {delivered} (duplicates {len(numbers) - delivered}), "
        f"consumed by the model {consumed}"
    )
    ok = delivered == args.rows and consumed >= args.rows and all(m["within_bound"] for m in memory.values())
    figures = {
        "rows": args.rows,
        "rate": args.rate,
        "seconds": seconds,
        "delivered": delivered,
        "duplicates": len(numbers) - delivered,
        "consumed": consumed,
        "memory": memory,
        "passed": ok,
    }
    return record(args, "soak", figures, status=0 if ok else 1)


def start_consumer(servers: str, model: Path) -> subprocess.Popen:
    """``consumer.evaluate`` reading the soak topic from its end on, once it said so."""
    argv = [sys.executable, "-m", "consumer.evaluate", "--topic", TOPIC, "--bootstrap-servers", servers,
            "--model", str(model), "--group-id", f"soak-{time.time_ns()}", "--start", "latest",
            "--batch-size", "1000", "--idle-timeout", "30"]  # fmt: skip
    consumer = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    consumer.stdout.readline()  # "evaluating ...": the group starts at the topic's end from here on
    return consumer


class MemorySampler(threading.Thread):
    """Every ``every`` seconds, the resident memory (MiB) of each of ``pids`` (``{name: pid or None}``) into
    ``samples[name]``, until ``stop.set()``."""

    def __init__(self, pids: dict[str, int | None], every: float) -> None:
        super().__init__(daemon=True)
        self.pids = pids
        self.every = every
        self.samples: dict[str, list[float]] = {name: [] for name in pids}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(self.every):
            for name, pid in self.pids.items():
                value = rss_mib(pid) if pid else None
                if value is not None:
                    self.samples[name].append(value)


def memory_figures(name: str, values: list[float]) -> dict:
    """The maximum, the first and last quarter's means, the growth between them and whether ``name`` stayed
    within its bound (``BOUNDS_MIB``, growth at most 25 %).

    >>> memory_figures("consumer", [100.0, 100.0, 110.0, 110.0])["growth_percent"]
    10.0
    """
    quarter = max(1, len(values) // 4)
    first, last = sum(values[:quarter]) / quarter, sum(values[-quarter:]) / quarter
    growth = (last - first) / first * 100
    return {
        "max_mib": max(values),
        "first_quarter_mib": first,
        "last_quarter_mib": last,
        "growth_percent": growth,
        "bound_mib": BOUNDS_MIB[name],
        "within_bound": max(values) <= BOUNDS_MIB[name] and growth <= 25,
    }


def print_memory(memory: dict[str, dict], samples: dict[str, list[float]], title: str) -> None:
    print_table(
        f"{title}; memory (MiB)",
        ["process", "start", "max", "growth", "bound", "within"],
        [
            [
                name,
                f"{samples[name][0]:.0f}",
                f"{m['max_mib']:.0f}",
                f"{m['growth_percent']:+.1f}%",
                str(m["bound_mib"]),
                "yes" if m["within_bound"] else "NO",
            ]
            for name, m in memory.items()
        ],  # fmt: skip
    )


if __name__ == "__main__":
    sys.exit(run(main))
