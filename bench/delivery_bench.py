"""What exactly-once costs: commit -> Kafka latency and throughput of Kafka Connect with exactly-once source
support (KIP-618) and without it, side by side in one run, on the same rows.

Two Connect workers capture the same bench table (``public.mnist_bench_delivery``, ``bench/tables.py``; never the
demo tables) with the connector settings of ``debezium/register-postgres.json``, each with its own slot and topic
prefix (``bench_eos.*``, ``bench_alo.*``): the stack's own worker, in its ``DELIVERY`` mode (exactly-once by
default: worker ``exactly.once.source.support=enabled``, connector ``exactly.once.support=required`` and
``transaction.boundary=poll``), and a second worker the benchmark starts itself (``stack.connect``'s worker
properties on a free port, with its own group and internal topics) in the other mode, so both modes run on one
machine under the same load. The table has a publication of its own, so the stack's ``mnist-connector`` does
not capture it too. Two measures: **latency** at a fixed rate (100 commits a second; commit time ``time.time()``
right after COMMIT returns, arrival when a read_committed confluent-kafka consumer hands the record over, same
clock) and **throughput**: rows in one COPY (the loader's binary COPY, one transaction) -> seconds from its
COMMIT until the last row is on each topic. A short discarded run warms both workers up first. The benchmark
removes its connectors, its worker, their slots and topics afterwards.

    python -m bench.delivery_bench                  # 1,000 rows/s for 10 s and a COPY of 50,000 rows, 3 repetitions
    python -m bench.delivery_bench --rate 100 --seconds 2 --rows 500 --reps 1 --no-record   # the tests' tiny run
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from bench.arrivals import Arrivals, write_rows, write_run
from bench.engine_latency_bench import free_port, slot_active
from bench.record import parse, parser, print_table, record, settings, summarise
from bench.tables import EXPECTED, as_owner, bench_table, delete_topics, run
from probes.database import drop_slot
from probes.deadline import poll
from probes.rows import NumberedRows
from stack import connect
from stack.config import DELIVERY_MODES, ConnectSettings, StackConfig
from stack.contract import MNIST
from stack.jvm_service import JvmService
from stack.kafka import ensure_topics
from stack.processes import pid_alive

NAME = "delivery"
TABLE = f"mnist_bench_{NAME}"
PUBLICATION = f"bench_{NAME}_publication"
EXACTLY_ONCE, AT_LEAST_ONCE = DELIVERY_MODES
#: Mode -> (topic prefix, slot); bench_* slots are dropped by ``python -m stack up`` if a killed run left them.
MODES = {
    EXACTLY_ONCE: ("bench_eos", "bench_eos_slot"),
    AT_LEAST_ONCE: ("bench_alo", "bench_alo_slot"),
}
#: The benchmark's own Connect worker: the stack's main class and heap, its own files (config, log, pid).
WORKER = JvmService("bench-connect", connect.SERVICE.main_class, connect.SERVICE.config_name, connect.SERVICE.heap)
FIGURES = ("p50", "p95", "p99", "max")


def topic(mode: str) -> str:
    return f"{MODES[mode][0]}.public.{TABLE}"


def topics_made(mode: str) -> tuple[str, ...]:
    """Every topic a bench connector may make: its table's, the transform's invalid one, Debezium's heartbeat."""
    return topic(mode), f"{topic(mode)}.invalid", f"__debezium-heartbeat.{MODES[mode][0]}"


def connector_config(worker: StackConfig, mode: str) -> dict[str, str]:
    """The connector JSON as ``stack.connect`` derives it for ``worker`` (without the exactly-once keys on an
    at-least-once worker), streaming the bench table only, from its own publication, slot and prefix."""
    prefix, slot = MODES[mode]
    return {
        **connect.connector_config(worker),
        "topic.prefix": prefix,
        "slot.name": slot,
        "publication.name": PUBLICATION,
        "table.include.list": f"public.{TABLE}",
        "snapshot.mode": "no_data",
    }


@contextmanager
def own_publication(cfg: StackConfig) -> Iterator[None]:
    """The bench table in a publication of its own instead of ``mnist_publication``: the stack's connector, whose
    worker hosts one of the two measured connectors, would otherwise capture every row a third time."""
    as_owner(
        cfg,
        f"ALTER PUBLICATION {MNIST.publication} DROP TABLE public.{TABLE}",
        f"DROP PUBLICATION IF EXISTS {PUBLICATION}",
        f"CREATE PUBLICATION {PUBLICATION} FOR TABLE public.{TABLE}",
    )
    try:
        yield
    finally:
        as_owner(cfg, f"DROP PUBLICATION IF EXISTS {PUBLICATION}")


def start_worker(worker: StackConfig, cluster: str) -> int:
    """Start the bench's Connect worker (group ``cluster``, internal topics ``_<cluster>-*``); wait until its REST
    API answers."""
    WORKER.stop(worker)  # one a killed run left behind (known by its config file's path)
    WORKER.write_config(worker, connect.worker_properties(worker, group_id=cluster, storage=f"_{cluster}"))
    pid = WORKER.start(worker, env=connect.worker_env(worker))
    if not poll(lambda: connect.answers(worker) or not pid_alive(pid), 180, 0.5) or not pid_alive(pid):
        raise RuntimeError(f"the bench's Connect worker did not answer within 180 s; see {WORKER.log_file(worker)}")
    return pid


def start_connectors(cfg: StackConfig, workers: dict[str, StackConfig], name: str) -> None:
    """Register one connector ``name`` on each worker; wait until both run and stream from their slots."""
    for mode, worker in workers.items():
        connect.register(worker, name, connector_config(worker, mode))

    def streaming() -> bool:
        statuses = {mode: connect.connector_status(worker, name) for mode, worker in workers.items()}
        failed = {mode: connect.failure(status) for mode, status in statuses.items()}
        if any(failed.values()):
            raise RuntimeError(f"bench connector {name} failed: {failed}")
        running = all(connect.is_running(status) for status in statuses.values())
        return running and all(slot_active(cfg, MODES[mode][1]) for mode in workers)

    if not poll(streaming, 180, 0.5):
        states = {mode: connect.describe(name, connect.connector_status(w, name)) for mode, w in workers.items()}
        raise RuntimeError(f"the bench connectors did not stream within 180 s: {states}")


def burst(cfg: StackConfig, arrivals: Arrivals, rows: int) -> dict[str, float]:
    """``rows`` rows in one COPY and one COMMIT; seconds from the COMMIT until the last one arrived, per mode."""
    copy = write_rows(NumberedRows(cfg.postgres, TABLE, rows, rate=rows, batch=rows), arrivals)
    # One commit time for every row: the largest latency is when the last row arrived.
    latencies = arrivals.latencies(copy, timeout=max(120.0, rows / 200))
    return {mode: figures["max"] / 1000 for mode, figures in latencies.items()}


def measure(cfg: StackConfig, arrivals: Arrivals, args: argparse.Namespace) -> dict[str, dict[str, list]]:
    """A warm-up run, then ``args.reps`` times a latency run and a burst: ``{mode: {"latency": [...],
    "seconds": [...]}}``."""
    if args.warmup > 0:
        arrivals.latencies(write_run(cfg.postgres, TABLE, args.rate, args.warmup, arrivals))
    runs: dict[str, dict[str, list]] = {mode: {"latency": [], "seconds": []} for mode in MODES}
    for _ in range(args.reps):
        for mode, figures in arrivals.latencies(
            write_run(cfg.postgres, TABLE, args.rate, args.seconds, arrivals)
        ).items():
            runs[mode]["latency"].append(figures)
        for mode, seconds in burst(cfg, arrivals, args.rows).items():
            runs[mode]["seconds"].append(seconds)
    return runs


def clean_up(steps: list[tuple[str, Callable[[], object]]]) -> None:
    """Run every step, even after one fails (a warning line each): whatever the benchmark made goes."""
    for what, step in steps:
        try:
            step()
        except EXPECTED as error:
            print(f"warning: could not {what}: {error}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    flags = parser("bench.delivery_bench", __doc__)
    flags.add_argument("--rate", type=int, default=1000, help="rows/s of the latency runs (1,000)")
    flags.add_argument("--seconds", type=float, default=10.0, help="insert time of a latency run (10)")
    flags.add_argument("--rows", type=int, default=50_000, help="rows of the one COPY of a throughput run (50,000)")
    flags.add_argument("--warmup", type=float, default=2.0, help="seconds of a first, discarded latency run (2)")
    args = parse(flags, argv)
    cfg = settings(args)

    cluster = f"bench-delivery-{uuid.uuid4().hex[:8]}"
    # The stack's worker keeps its DELIVERY mode; the bench's worker runs the other one on a port of its own.
    other = AT_LEAST_ONCE if cfg.exactly_once else EXACTLY_ONCE
    bench_worker = dataclasses.replace(cfg, connect=ConnectSettings(f"http://127.0.0.1:{free_port()}"), delivery=other)
    workers = {cfg.delivery: cfg, other: bench_worker}
    owner = {cfg.delivery: "the stack's", other: "the bench's"}
    name = f"bench-delivery-{uuid.uuid4().hex[:8]}"  # Connect keeps source offsets by name: a new one starts clean
    with bench_table(cfg, NAME), own_publication(cfg):
        ensure_topics(cfg, tuple(topic(mode) for mode in MODES))
        arrivals = None
        try:
            start_worker(bench_worker, cluster)
            start_connectors(cfg, workers, name)
            arrivals = Arrivals(cfg.kafka.bootstrap_servers, {topic(mode): mode for mode in MODES})
            arrivals.start()
            runs = measure(cfg, arrivals, args)
        finally:
            steps: list[tuple[str, Callable[[], object]]] = []
            if arrivals is not None:
                steps.append(("stop the reader", arrivals.finish))
            steps += [
                (f"delete {name} from {mode}", lambda w=w: connect.rest(w, "DELETE", f"/connectors/{name}"))
                for mode, w in workers.items()
            ]
            steps += [
                ("stop the bench's worker", lambda: WORKER.stop(bench_worker)),
                ("remove its files", lambda: shutil.rmtree(WORKER.home(bench_worker), ignore_errors=True)),
                *((f"drop slot {slot}", lambda slot=slot: drop_slot(cfg.postgres, slot)) for _, slot in MODES.values()),
                (
                    "delete the bench's topics",
                    lambda: delete_topics(
                        cfg,
                        tuple(t for mode in MODES for t in topics_made(mode))
                        + tuple(f"_{cluster}-{kind}" for kind in ("configs", "offsets", "status")),
                    ),
                ),
            ]
            clean_up(steps)
    return report(args, runs, owner)


def report(args: argparse.Namespace, runs: dict[str, dict[str, list]], owner: dict[str, str]) -> int:
    table, latency, throughput, seconds = [], {}, {}, {}
    for mode in MODES:
        latency[mode] = {k: summarise([r[k] for r in runs[mode]["latency"]]) for k in FIGURES}
        seconds[mode] = summarise(runs[mode]["seconds"])
        throughput[mode] = summarise([args.rows / s for s in runs[mode]["seconds"]])
        table.append(
            [
                mode,
                owner[mode],
                *(f"{latency[mode][k]['median']:.1f}" for k in FIGURES),
                f"{latency[mode]['p99']['min']:.0f}-{latency[mode]['p99']['max']:.0f}",
                f"{throughput[mode]['median']:,.0f}",
                f"{throughput[mode]['min']:,.0f}-{throughput[mode]['max']:,.0f}",
                f"{seconds[mode]['median']:.2f}",
            ]
        )
    ratio = {k: latency[EXACTLY_ONCE][k]["median"] / latency[AT_LEAST_ONCE][k]["median"] for k in FIGURES}
    ratio["rows_per_s"] = throughput[EXACTLY_ONCE]["median"] / throughput[AT_LEAST_ONCE]["median"]
    table.append(
        ["ratio", "eos / alo", *(f"{ratio[k]:.2f}x" for k in FIGURES), "", f"{ratio['rows_per_s']:.2f}x", "", ""]
    )
    print_table(
        f"Exactly-once vs at-least-once, median of {args.reps} repetitions: commit -> Kafka latency (ms) at "
        f"{args.rate:,} rows/s for {args.seconds:g} s; throughput of one COPY of {args.rows:,} rows",
        ["delivery", "worker", *FIGURES, "p99 spread", "rows/s", "rows/s spread", "s"],
        table,
    )
    figures = {
        "rate": args.rate,
        "seconds_per_rep": args.seconds,
        "copy_rows": args.rows,
        "workers": {mode: f"{owner[mode]} Connect" for mode in MODES},
        "latency_ms": latency,
        "copy_rows_per_s": throughput,
        "copy_seconds": seconds,
        "exactly_once_over_at_least_once": ratio,
    }
    return record(args, NAME, figures)


if __name__ == "__main__":
    sys.exit(run(main))
