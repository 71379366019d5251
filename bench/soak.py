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

from bench.record import parse, parser, print_table, record, settings
from bench.tables import bench_table, run
from consumer.cli import quiet_tensorflow
from probes.rows import NumberedRows
from probes.topics import end_offsets, numbers_on_topic
from stack import connect, kafka
from stack.config import StackConfig
from stack.contract import MNIST

TABLE = "mnist_bench_soak"
TOPIC = MNIST.of_table(TABLE)
MIB = 1024 * 1024
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

    quiet_tensorflow()
    from consumer.learning.models import build_model

    model = Path(tempfile.mkdtemp(prefix="soak-")) / "untrained.keras"
    build_model().save(model)
    servers = cfg.kafka.bootstrap_servers
    start = end_offsets(servers, TOPIC)
    consumer = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "consumer.evaluate",
            "--topic",
            TOPIC,
            "--bootstrap-servers",
            servers,
            "--model",
            str(model),
            "--group-id",
            f"soak-{time.time_ns()}",
            "--start",
            "latest",
            "--batch-size",
            "1000",
            "--idle-timeout",
            "30",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    consumer.stdout.readline()  # "evaluating ...": the group starts at the topic's end from here on
    pids = {"kafka": kafka.running_pid(cfg), "connect": connect.running_pid(cfg), "consumer": consumer.pid}
    samples: dict[str, list[float]] = {name: [] for name in pids}
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(args.every):
            for name, pid in pids.items():
                value = rss_mib(pid) if pid else None
                if value is not None:
                    samples[name].append(value)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    rows = NumberedRows(cfg.postgres, TABLE, args.rows, args.rate, batch=max(1, int(args.rate // 10)))
    started = time.monotonic()
    rows.start()
    rows.join()
    output, errors = consumer.communicate(timeout=900)
    stop.set()
    sampler.join()
    seconds = time.monotonic() - started
    if rows.error or consumer.returncode != 0:
        print(f"error: inserter {rows.error!r}, consumer exit {consumer.returncode}: {errors[-300:]}", file=sys.stderr)
        return 1

    numbers = numbers_on_topic(servers, TOPIC, start, rows.prefix, args.rows, timeout=600)
    delivered = len(set(numbers))
    consumed = int(re.search(r"evaluated (\d+) records", output).group(1))
    table, verdicts, memory = [], [], {}
    for name, values in samples.items():
        if not values:
            continue
        quarter = max(1, len(values) // 4)
        first, last = sum(values[:quarter]) / quarter, sum(values[-quarter:]) / quarter
        growth = (last - first) / first * 100
        within = max(values) <= BOUNDS_MIB[name] and growth <= 25
        verdicts.append(within)
        memory[name] = {
            "max_mib": max(values),
            "first_quarter_mib": first,
            "last_quarter_mib": last,
            "growth_percent": growth,
            "bound_mib": BOUNDS_MIB[name],
            "within_bound": within,
        }
        table.append(
            [
                name,
                f"{values[0]:.0f}",
                f"{max(values):.0f}",
                f"{growth:+.1f}%",
                str(BOUNDS_MIB[name]),
                "yes" if within else "NO",
            ]
        )
    print_table(
        f"Soak: {args.rows} rows at {args.rate:g} rows/s in {seconds:.0f} s; memory (MiB)",
        ["process", "start", "max", "growth", "bound", "within"],
        table,
    )
    print(
        f"rows inserted {rows.committed}, on the topic {delivered} (duplicates {len(numbers) - delivered}), "
        f"consumed by the model {consumed}"
    )
    ok = delivered == args.rows and consumed >= args.rows and all(verdicts)
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


if __name__ == "__main__":
    sys.exit(run(main))
