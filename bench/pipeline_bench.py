"""The whole pipeline: rows committed in PostgreSQL -> every one decoded by our consumer, rows/s.

Two cases, each repeated: **streaming** (the connector is running; the rows, 70,000 Fashion-MNIST images by
default, are bulk-loaded by the loader's COPY in one transaction; time from that COMMIT to the last record
decoded, and to the last one on the topic: Connect's share) and **snapshot** (the rows are in the table before
a second connector starts; time from registering it). The consumer is ours, ``consumer.kafka.batches.open_batches``
(confluent-kafka and the NumPy decode, each batch committed), in a fresh process, ready before the rows are
committed; Connect, Kafka and PostgreSQL run beside it on the same machine.
The rows go to the benchmark's own table ``public.mnist_bench_pipeline`` (``bench/tables.py``: captured by the
running connector into ``tf.public.mnist_bench_pipeline``, removed afterwards); the demo tables and topics
are never touched.

    python -m bench.pipeline_bench                  # 70k rows, 3 repetitions of each case
    python -m bench.pipeline_bench --limit 500 --reps 1 --no-record
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import uuid

from confluent_kafka import Consumer

from bench import fresh_process
from bench.images import rows as image_rows
from bench.images import source_name
from bench.record import parse, parser, print_table, record, settings, spread, summarise
from bench.tables import bench_table, delete_topics, run
from consumer.cli import quiet_tensorflow
from consumer.kafka.batches import ReadOptions, open_batches
from consumer.kafka.client import KafkaClient, partitions_of, watermarks
from loader.database import connect as pg_connect
from loader.load import bulk_load
from loader.source import Split
from probes.database import drop_slot
from probes.deadline import poll
from probes.topics import end_offsets
from stack import connect
from stack.config import StackConfig
from stack.contract import MNIST
from stack.kafka import ensure_topics

MODULE = "bench.pipeline_bench"
BATCH = 1024
SNAPSHOT_PREFIX = "snapbench"
SNAPSHOT_SLOT = "bench_snapshot_slot"  # bench_*: python -m stack up drops it if a killed run left it behind
TARGET = 20_000  # streaming rows/s
Rates = dict[str, float]


def child(topic: str, servers: str, expected: int, start: str) -> None:
    """Decode ``expected`` records of ``topic`` with our consumer's reading path; report the wall time of the
    last one."""
    options = ReadOptions(topic, f"pipeline-bench-{uuid.uuid4().hex[:8]}", BATCH, 60.0, start)
    stream = open_batches(KafkaClient.of(servers), options)
    fresh_process.ready()
    decoded = 0
    for batch in stream.batches:
        decoded += len(batch)
        batch.commit()
        if decoded >= expected:
            break
    fresh_process.report({"decoded": decoded, "last": time.time()})


def start_child(cfg: StackConfig, topic: str, expected: int, start: str):
    servers = cfg.kafka.bootstrap_servers
    return fresh_process.start(MODULE, "--child", topic, str(expected), start, "--bootstrap-servers", servers)


def finish(cfg: StackConfig, process, topic: str, before: dict[int, int], expected: int, since: float) -> Rates:
    """Rows/s from ``since`` until every row is on ``topic`` (Connect's share) and until the child decoded the
    last one."""
    client = KafkaClient(cfg.kafka)
    watcher = Consumer(client.config(f"pipeline-bench-{uuid.uuid4().hex[:8]}"))  # one, asked often
    try:
        partitions = partitions_of(watcher, client, topic)
        written = lambda: sum(end for _, end in watermarks(watcher, client, topic, partitions).values())  # noqa: E731
        arrived = time.time() if poll(lambda: written() - sum(before.values()) >= expected, 900, 0.05) else math.nan
    finally:
        watcher.close()
    result = fresh_process.result(process)
    if result["decoded"] < expected:
        raise RuntimeError(f"the consumer decoded {result['decoded']} of {expected} records")
    return {"decoded": expected / (result["last"] - since), "on_topic": expected / (arrived - since)}


def streaming(cfg: StackConfig, conn, rows: Split) -> Rates:
    topic = MNIST.of_table(rows.name)
    with conn.cursor() as cur:
        cur.execute(f"TRUNCATE public.{rows.name}")  # Debezium skips truncates: the topic only grows
    conn.commit()
    consumer = start_child(cfg, topic, len(rows), "latest")
    before = end_offsets(cfg.kafka.bootstrap_servers, topic)
    bulk_load(conn, [rows], lambda n: None)
    return finish(cfg, consumer, topic, before, len(rows), time.time())


def snapshot(cfg: StackConfig, rows: Split) -> Rates:
    """A second connector snapshots the table into a topic of its own; removed afterwards with its slot."""
    topic = f"{SNAPSHOT_PREFIX}.public.{rows.name}"
    ensure_topics(cfg, (topic,))
    consumer = start_child(cfg, topic, len(rows), "earliest")
    config = connect.connector_config(cfg)
    table = f"public.{rows.name}"
    config.update(
        {
            "topic.prefix": SNAPSHOT_PREFIX,
            "slot.name": SNAPSHOT_SLOT,
            "table.include.list": table,
            "snapshot.include.collection.list": table,  # the demo connector's lists only the demo tables
        }
    )
    name = f"snapshot-bench-{uuid.uuid4().hex[:8]}"  # Connect keeps offsets by name: start clean
    registered = time.time()
    connect.register(cfg, name, config)
    try:
        return finish(cfg, consumer, topic, {}, len(rows), registered)
    finally:
        connect.rest(cfg, "DELETE", f"/connectors/{name}")
        drop_slot(cfg.postgres, SNAPSHOT_SLOT)
        delete_topics(cfg, (topic,))  # waits until deleted, so the next repetition starts alike


def main(argv: list[str] | None = None) -> int:
    flags = parser(MODULE, __doc__)
    flags.add_argument("--limit", type=int, default=70_000, help="rows (70,000: all of Fashion-MNIST)")
    flags.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parse(flags, argv)
    cfg = settings(args)
    if args.child:
        quiet_tensorflow()
        child(args.child[0], cfg.kafka.bootstrap_servers, int(args.child[1]), args.child[2])
        return 0

    rates: dict[str, list[Rates]] = {"streaming": [], "snapshot": []}
    with bench_table(cfg, "pipeline") as table:
        rows = image_rows(table, args.limit)
        conn = pg_connect(cfg.postgres)
        try:
            for _ in range(args.reps):
                rates["streaming"].append(streaming(cfg, conn, rows))
                rates["snapshot"].append(snapshot(cfg, rows))
        finally:
            conn.close()
    stats = {case: summarise([one["decoded"] for one in reps]) for case, reps in rates.items()}
    on_topic = {case: summarise([one["on_topic"] for one in reps]) for case, reps in rates.items()}
    print_table(
        f"Pipeline: {len(rows):,} rows of {source_name()} committed -> decoded by our consumer, "
        f"{args.reps} repetitions (rows/s)",
        ["case", "median", "min", "max", "seconds (median)", "on the topic (median)"],
        [
            [case, *spread(s), f"{len(rows) / s['median']:.1f}", f"{on_topic[case]['median']:,.0f}"]
            for case, s in stats.items()
        ],
    )
    met = stats["streaming"]["median"] >= TARGET
    print(f"streaming target >= {TARGET:,} rows/s: {'met' if met else 'missed'}")
    figures = {"rows": len(rows), "source": source_name(), "rows_per_s": stats, "on_topic_rows_per_s": on_topic}
    return record(args, "pipeline", {**figures, "target": TARGET, "target_met": met})


if __name__ == "__main__":
    sys.exit(run(main))
