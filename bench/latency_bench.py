"""End-to-end latency: COMMIT in PostgreSQL -> record readable from Kafka, per row, at steady insert rates.

Side by side in one run on the same rows: our connector (``debezium/register-postgres.json``: poll.interval.ms=10,
worker producer linger 2 ms) and a second connector with the upstream example's settings (the talk's JSON:
Debezium's default poll.interval.ms=500, producer linger.ms=0 and batch.size=16384 as in the Kafka 3.x the
upstream image shipped). Both capture the same table, the benchmark's own ``public.mnist_bench_latency``
(``bench/tables.py``; the demo tables and topics are never touched), with own slots and topics ``tf.*`` and
``upstream.*``, so every inserted row is measured through both. Commit time: ``time.time()`` right after COMMIT returns;
arrival: ``time.time()`` when confluent-kafka hands the record over (same machine, same clock).

    python -m bench.latency_bench                               # 200 and 1,000 rows/s, 10 s each, 3 repetitions
    python -m bench.latency_bench --rates 100 --seconds 2 --reps 1 --no-record   # the tests' tiny run
"""

from __future__ import annotations

import argparse
import sys
import uuid

from bench.arrivals import Arrivals, write_run
from bench.record import add_rate_flags, parse, parser, print_table, record, settings, summarise
from bench.tables import bench_table, delete_topics, run
from probes.database import drop_slot
from probes.deadline import poll
from stack import connect
from stack.config import StackConfig
from stack.contract import MNIST
from stack.kafka import ensure_topics

TABLE = "mnist_bench_latency"
UPSTREAM_PREFIX = "upstream"
OURS = MNIST.of_table(TABLE)
UPSTREAM = f"{UPSTREAM_PREFIX}.public.{TABLE}"
UPSTREAM_SLOT = "bench_upstream_slot"  # bench_*: python -m stack up drops it if a killed run left it behind
# Connect keeps a connector's source offsets under its name: a new name each run starts clean.
UPSTREAM_CONNECTOR = f"upstream-settings-{uuid.uuid4().hex[:8]}"


def upstream_config(cfg: StackConfig) -> dict[str, str]:
    config = connect.connector_config(cfg)
    del config["poll.interval.ms"]  # Debezium's default, 500 ms, as in the talk's JSON
    config.update(
        {
            "topic.prefix": UPSTREAM_PREFIX,
            "slot.name": UPSTREAM_SLOT,
            "table.include.list": f"public.{TABLE}",
            "snapshot.mode": "no_data",  # measure streaming only; do not copy the tables' history
            "producer.override.linger.ms": "0",
            "producer.override.batch.size": "16384",
        }
    )
    return config


def measure(cfg: StackConfig, arrivals: Arrivals, rate: int, seconds: float) -> dict[str, dict[str, float]]:
    return arrivals.latencies(write_run(cfg.postgres, TABLE, rate, seconds, arrivals))


def main(argv: list[str] | None = None) -> int:
    flags = parser("bench.latency_bench", __doc__)
    add_rate_flags(flags)
    args = parse(flags, argv)

    cfg = settings(args)
    with bench_table(cfg, "latency"):
        runs = measure_all(cfg, args)
    if runs is None:
        return 1
    return report(args, runs)


def measure_all(cfg: StackConfig, args: argparse.Namespace) -> dict[tuple[str, int], list[dict[str, float]]] | None:
    """Every repetition at every rate through both connectors; None (and a line on stderr) when the upstream
    connector does not run. Removes the upstream connector, its slot and its topic afterwards."""
    connect.register(cfg, UPSTREAM_CONNECTOR, upstream_config(cfg))
    try:
        if not poll(lambda: connect.is_running(connect.connector_status(cfg, UPSTREAM_CONNECTOR)), 60):
            print(
                f"error: {UPSTREAM_CONNECTOR} not RUNNING: {connect.connector_status(cfg, UPSTREAM_CONNECTOR)}",
                file=sys.stderr,
            )
            return None
        ensure_topics(cfg, (UPSTREAM,))
        arrivals = Arrivals(cfg.kafka.bootstrap_servers, {OURS: OURS, UPSTREAM: UPSTREAM})
        arrivals.start()
        runs: dict[tuple[str, int], list[dict[str, float]]] = {}
        for _ in range(args.reps):
            for rate in args.rates:
                for topic, figures in measure(cfg, arrivals, rate, args.seconds).items():
                    runs.setdefault((topic, rate), []).append(figures)
        arrivals.finish()
        return runs
    finally:
        connect.rest(cfg, "DELETE", f"/connectors/{UPSTREAM_CONNECTOR}")
        drop_slot(cfg.postgres, UPSTREAM_SLOT)
        delete_topics(cfg, (UPSTREAM,))


def report(args: argparse.Namespace, runs: dict) -> int:
    table, figures = [], {}
    for (topic, rate), reps in sorted(runs.items(), key=lambda item: (item[0][1], item[0][0] != OURS)):
        name = "ours" if topic == OURS else "upstream settings"
        stats = {k: summarise([r[k] for r in reps]) for k in ("p50", "p95", "p99", "max")}
        figures[f"{name} @ {rate} rows/s"] = stats
        table.append(
            [
                name,
                str(rate),
                *(f"{stats[k]['median']:.1f}" for k in ("p50", "p95", "p99", "max")),
                f"{stats['p99']['min']:.0f}-{stats['p99']['max']:.0f}",
            ]
        )
    print_table(
        f"Commit -> Kafka latency (ms), median of {args.reps} repetitions of {args.seconds:g} s",
        ["settings", "rows/s", "p50", "p95", "p99", "max", "p99 spread"],
        table,
    )
    return record(args, "latency", {"seconds_per_rate": args.seconds, "latency_ms": figures})


if __name__ == "__main__":
    sys.exit(run(main))
