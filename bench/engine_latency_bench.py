"""Commit -> Kafka latency of the two capture engines side by side: Kafka Connect's connector and Debezium Server.

Both capture the same bench table (``public.mnist_bench_engines``, ``bench/tables.py``; never the demo tables) with
the settings of ``debezium/register-postgres.json``, each with its own slot and topic prefix (``bench_connect.*``,
``bench_server.*``), so every committed row is measured through both in one run. The benchmark registers its own
connector on the stack's Connect and starts its own Debezium Server (the distribution ``python -m stack assemble
--engine server`` unpacked), whichever engine the stack captures with; it removes both, their slots and topics
afterwards. Commit time: ``time.time()`` right after COMMIT returns; arrival: when confluent-kafka hands the record
over (same machine, same clock).

    python -m bench.engine_latency_bench                     # 200 rows/s, 10 s, 3 repetitions
    python -m bench.engine_latency_bench --rate 100 --seconds 2 --reps 1 --no-record   # the tests' tiny run
"""

from __future__ import annotations

import argparse
import shutil
import socket
import sys
import uuid

from bench.arrivals import Arrivals, write_run
from bench.record import parse, parser, print_table, record, settings, summarise
from bench.tables import bench_table, delete_topics, run
from probes.database import drop_slot, query_one
from probes.deadline import poll
from stack import connect, server
from stack.config import StackConfig
from stack.jvm_service import JvmService
from stack.kafka import ensure_topics
from stack.processes import pid_alive

NAME = "engines"
TABLE = f"mnist_bench_{NAME}"
#: Engine -> (topic prefix, slot); bench_* slots are dropped by ``python -m stack up`` if a killed run left them.
ENGINES = {
    "kafka connect": ("bench_connect", "bench_connect_slot"),
    "debezium server": ("bench_server", "bench_server_slot"),
}
SERVER_SERVICE = JvmService("bench-debezium-server", server.MAIN_CLASS, "config/application.properties", "-Xmx1g")


def topic(engine: str) -> str:
    return f"{ENGINES[engine][0]}.public.{TABLE}"


def overrides(engine: str) -> dict[str, str]:
    """What the bench's capture changes of the connector JSON: its prefix, slot and table, streaming only."""
    prefix, slot = ENGINES[engine]
    return {
        "topic.prefix": prefix,
        "slot.name": slot,
        "table.include.list": f"public.{TABLE}",
        "snapshot.mode": "no_data",
    }


def measure(cfg: StackConfig, arrivals: Arrivals, rate: int, seconds: float) -> dict[str, dict[str, float]]:
    return arrivals.latencies(write_run(cfg.postgres, TABLE, rate, seconds, arrivals))


def slot_active(cfg: StackConfig, slot: str) -> bool:
    found = query_one(cfg.postgres, "SELECT active FROM pg_replication_slots WHERE slot_name = %s", (slot,))
    return bool(found and found[0])


def start_engines(cfg: StackConfig, connector: str, port: int) -> None:
    """Register the bench connector and start the bench Debezium Server; wait until both stream."""
    config = {**connect.connector_config(cfg), **overrides("kafka connect")}
    connect.register(cfg, connector, config)
    run_ = server.ServerRun(SERVER_SERVICE, port, tuple(overrides("debezium server").items()))
    pid = server.start(cfg, run_)
    ready = lambda: all(slot_active(cfg, slot) for _, slot in ENGINES.values()) or not pid_alive(pid)  # noqa: E731
    if not poll(ready, 180, 0.5) or not pid_alive(pid):
        raise RuntimeError(f"the bench engines did not stream within 180 s; see {SERVER_SERVICE.log_file(cfg)}")


def main(argv: list[str] | None = None) -> int:
    flags = parser("bench.engine_latency_bench", __doc__)
    flags.add_argument("--rate", type=int, default=200, help="rows/s (200)")
    flags.add_argument("--seconds", type=float, default=10.0, help="insert time per repetition (10)")
    args = parse(flags, argv)
    cfg = settings(args)
    server.runner_jar(cfg)  # one line when Debezium Server is not assembled
    server.java_home()

    connector = f"bench-connect-{uuid.uuid4().hex[:8]}"
    with bench_table(cfg, NAME):
        ensure_topics(cfg, tuple(topic(engine) for engine in ENGINES))
        arrivals = None
        try:
            start_engines(cfg, connector, free_port())
            arrivals = Arrivals(cfg.kafka.bootstrap_servers, {topic(engine): engine for engine in ENGINES})
            arrivals.start()
            runs: dict[str, list[dict[str, float]]] = {}
            for _ in range(args.reps):
                for engine, figures in measure(cfg, arrivals, args.rate, args.seconds).items():
                    runs.setdefault(engine, []).append(figures)
        finally:
            if arrivals is not None:
                arrivals.finish()
            connect.rest(cfg, "DELETE", f"/connectors/{connector}")
            SERVER_SERVICE.stop(cfg)
            shutil.rmtree(SERVER_SERVICE.home(cfg), ignore_errors=True)
            for _, slot in ENGINES.values():
                poll(lambda slot=slot: not slot_active(cfg, slot), 30, 0.5)
                drop_slot(cfg.postgres, slot)
            delete_topics(cfg, tuple(topic(engine) for engine in ENGINES))
    return report(args, runs)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def report(args: argparse.Namespace, runs: dict[str, list[dict[str, float]]]) -> int:
    table, figures = [], {}
    for engine, reps in runs.items():
        stats = {k: summarise([r[k] for r in reps]) for k in ("p50", "p95", "p99", "max")}
        figures[f"{engine} @ {args.rate} rows/s"] = stats
        table.append([engine, str(args.rate), *(f"{stats[k]['median']:.1f}" for k in ("p50", "p95", "p99", "max"))])
    print_table(
        f"Commit -> Kafka latency (ms) by capture engine, median of {args.reps} repetitions of {args.seconds:g} s",
        ["engine", "rows/s", "p50", "p95", "p99", "max"],
        table,
    )
    record(args, "engine_latency", {"seconds_per_rep": args.seconds, "rate": args.rate, "latency_ms": figures})
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
