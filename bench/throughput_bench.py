"""Pipeline throughput: 70k Fashion-MNIST rows committed -> every one decoded by the consumer.

Two cases, each repeated: **streaming** (the connector is running; the 70,000 rows are bulk-loaded in one
transaction; time from COMMIT to the last record decoded) and **snapshot** (the rows are in the table before a
connector starts; time from registering it to the last record decoded). The consumer is ours with its default
source: kafka-python batches, ``decode_records``, in a child process.
The rows go to the benchmark's own table ``public.mnist_bench_throughput`` (``bench/tables.py``: captured by the
running connector into ``tf.public.mnist_bench_throughput``, removed afterwards); the demo tables and topics
are never touched.

    python -m bench.throughput_bench                  # 70k rows, 3 repetitions of each case
    python -m bench.throughput_bench --limit 500 --reps 1 --no-record
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np

from bench.record import print_table, summarise, write_result
from bench.tables import bench_table, run, topic_of
from loader.database import connect as pg_connect
from loader.load import bulk_load
from loader.source import Split, load_idx_dir, load_sample
from stack import connect
from stack.config import StackConfig
from stack.kafka import ensure_topics
from stack.processes import wait_until

FASHION = Path("/usr/share/datasets/fashion-mnist")
TABLE = "mnist_bench_throughput"
STREAM_TOPIC = topic_of(TABLE)
SNAPSHOT_PREFIX = "snapbench"
SNAPSHOT_TOPIC = f"{SNAPSHOT_PREFIX}.public.{TABLE}"
SNAPSHOT_SLOT = "bench_snapshot_slot"  # bench_*: python -m stack up drops it if a killed run left it behind


def child(topic: str, expected: int, start: str) -> None:
    """Read ``expected`` records of ``topic`` with our default consumer source (kafka-python, batch decode);
    print wall times of the first and the last record."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from consumer.committing_source import CommittingReader
    from consumer.decode import decode_records

    servers = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    reader = CommittingReader(topic, f"throughput-{uuid.uuid4().hex[:8]}", servers, 60.0, 1024, start)
    print("ready", flush=True)
    decoded, first = 0, None
    for batch in reader.batches():
        _, labels, _ = decode_records(batch.messages, batch.keys)
        first = first or time.time()
        decoded += int(labels.shape[0])
        if decoded >= expected:
            break
    reader.close()
    print(json.dumps({"decoded": decoded, "first": first, "last": time.time()}), flush=True)


def start_child(topic: str, expected: int, start: str) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.throughput_bench", "--child", topic, str(expected), start],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = process.stdout.readline()
    if line.strip() != "ready":
        raise RuntimeError(f"consumer did not start: {line} {process.stderr.read()[-500:]}")
    return process


def finish(process: subprocess.Popen) -> dict:
    output, errors = process.communicate(timeout=900)
    if process.returncode != 0:
        raise RuntimeError(f"consumer failed: {errors[-500:]}")
    return json.loads(output.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.throughput_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, help="rows (default all 70,000 Fashion-MNIST images)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], int(args.child[1]), args.child[2])
        return 0

    cfg = StackConfig.from_env()
    data = load_idx_dir(FASHION) if FASHION.is_dir() else load_sample()
    images = np.concatenate([data["train"].images, data["test"].images])[: args.limit]
    labels = np.concatenate([data["train"].labels, data["test"].labels])[: args.limit]
    rows = Split(TABLE, images, labels)
    conn = pg_connect(cfg.pg_host, cfg.pg_port, cfg.pg_user, cfg.pg_database, cfg.pg_password)
    try:
        with bench_table(cfg, "throughput"):
            streaming, snapshot = measure(cfg, conn, rows, args.reps)
    finally:
        conn.close()
    return report(args, argv, rows, streaming, snapshot)


def measure(cfg: StackConfig, conn, rows: Split, reps: int) -> tuple[list[float], list[float]]:
    """Rows/s of each repetition of the streaming and the snapshot case."""
    streaming, snapshot = [], []
    for _ in range(reps):
        with conn.cursor() as cur:
            cur.execute(f"TRUNCATE public.{TABLE}")
        conn.commit()
        consumer = start_child(STREAM_TOPIC, len(rows), "latest")
        bulk_load(conn, [rows], lambda n: None)
        committed = time.time()
        result = finish(consumer)
        streaming.append(len(rows) / (result["last"] - committed))

        ensure_topics(cfg, (SNAPSHOT_TOPIC,))
        consumer = start_child(SNAPSHOT_TOPIC, len(rows), "earliest")
        config = connect.connector_config(cfg)
        config.update(
            {"topic.prefix": SNAPSHOT_PREFIX, "slot.name": SNAPSHOT_SLOT, "table.include.list": f"public.{TABLE}"}
        )
        name = f"snapshot-bench-{uuid.uuid4().hex[:8]}"  # Connect keeps offsets by name: start clean
        registered = time.time()
        connect.register(cfg, name, config)
        try:
            result = finish(consumer)
            snapshot.append(len(rows) / (result["last"] - registered))
        finally:
            connect.rest(cfg, "DELETE", f"/connectors/{name}")
            _cleanup(cfg, conn)
    return streaming, snapshot


def report(args: argparse.Namespace, argv: list[str] | None, rows: Split, streaming: list, snapshot: list) -> int:
    stats = {"streaming": summarise(streaming), "snapshot": summarise(snapshot)}
    print_table(
        f"Pipeline: {len(rows)} rows committed -> decoded by the consumer, {args.reps} repetitions (rows/s)",
        ["case", "median", "min", "max", "seconds (median)"],
        [
            [case, *(f"{s[k]:,.0f}" for k in ("median", "min", "max")), f"{len(rows) / s['median']:.1f}"]
            for case, s in stats.items()
        ],
    )
    print(f"streaming target >= 10,000 rows/s: {'met' if stats['streaming']['median'] >= 10_000 else 'missed'}")
    if not args.no_record:
        path = write_result(
            "throughput",
            "python -m bench.throughput_bench " + " ".join(argv or sys.argv[1:]),
            {"rows": len(rows), "rows_per_s": stats},
        )
        print(f"recorded in {path}")
    return 0


def _cleanup(cfg: StackConfig, conn) -> None:
    """Drop the snapshot connector's slot and topic so repetitions start alike."""
    from kafka import KafkaAdminClient

    def slot_dropped() -> bool:
        with conn.cursor() as cur:
            cur.execute("SELECT active FROM pg_replication_slots WHERE slot_name = %s", (SNAPSHOT_SLOT,))
            row = cur.fetchone()
            if row and not row[0]:
                cur.execute("SELECT pg_drop_replication_slot(%s)", (SNAPSHOT_SLOT,))
        conn.commit()
        return row is None or not row[0]

    wait_until(slot_dropped, 30, 0.5)
    admin = KafkaAdminClient(bootstrap_servers=cfg.kafka_bootstrap)
    try:
        admin.delete_topics([SNAPSHOT_TOPIC])
    finally:
        admin.close()
    time.sleep(2)  # topic deletion is asynchronous


if __name__ == "__main__":
    sys.exit(run(main))
