"""Prediction latency: COMMIT in PostgreSQL -> record on Kafka -> prediction on Kafka -> row in the predictions table.

Three figures per row, side by side in one run, at steady insert rates (default 200 and 1,000 rows/s): from the
row's COMMIT to (1) its record on the captured topic, (2) its prediction on the predictions topic (read_committed:
visible once ``consumer.predict``'s transaction for the batch committed), (3) its row in the predictions table
(written by Debezium's JDBC sink). Everything runs on the benchmark's own objects, never the demo's: the table
``public.mnist_bench_predict`` (``bench/tables.py``; captured by the running connector into
``tf.public.mnist_bench_predict``), a ``consumer.predict`` process of its own on that topic writing to
``mnist.bench.predictions``, and a JDBC sink connector of its own writing to ``public.mnist_bench_predictions``,
all removed afterwards.

Times: commit = ``time.time()`` right after COMMIT returns; Kafka arrivals = ``time.time()`` when a read_committed
confluent-kafka reader of the benchmark hands the record over; table = the database's ``clock_timestamp()`` when
the sink's INSERT wrote the row (a column default of the benchmark's table; the row is visible at the sink's
commit right after). Same machine, same clock. The model is an untrained CNN unless ``--model`` names one:
scoring costs the same whatever the weights.

    python -m bench.prediction_latency_bench                  # 200 and 1,000 rows/s, 10 s each, 3 repetitions
    python -m bench.prediction_latency_bench --rates 100 --seconds 2 --reps 1 --no-record   # a tiny run
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
from confluent_kafka import Consumer, TopicPartition

from bench.arrivals import committed_at, write_run
from bench.record import parse, parser, percentiles, print_table, record, settings, summarise
from bench.tables import as_owner, bench_table, delete_topics, run
from consumer.broker import client_config
from consumer.predictions import key_of
from loader.database import connect as pg_connect
from probes.deadline import poll
from probes.rows import NumberedRows
from probes.topics import end_offsets
from stack import connect
from stack.config import REPO_ROOT, TOPICS, StackConfig
from stack.kafka import ensure_topics
from stack.postgres import SINK_ROLE

SOURCE_TABLE = "mnist_bench_predict"
SOURCE_TOPIC = TOPICS.of_table(SOURCE_TABLE)
PREDICTIONS_TOPIC = "mnist.bench.predictions"
PREDICTIONS_TABLE = "mnist_bench_predictions"
STAGES = ("kafka", "prediction", "table")
LABELS = {"kafka": "commit -> Kafka", "prediction": "commit -> prediction", "table": "commit -> table row"}


def create_predictions_table(cfg: StackConfig) -> None:
    """``mnist_predictions``' DDL, plus ``written_at``: when the sink's INSERT wrote the row."""
    as_owner(
        cfg,
        f"DROP TABLE IF EXISTS public.{PREDICTIONS_TABLE}",
        f"CREATE TABLE public.{PREDICTIONS_TABLE} (source_table TEXT, id BIGINT, predicted SMALLINT, "
        "confidence REAL, model_version INTEGER, committed_at TIMESTAMPTZ, predicted_at TIMESTAMPTZ, "
        "written_at TIMESTAMPTZ DEFAULT clock_timestamp(), PRIMARY KEY (source_table, id))",
        f"GRANT SELECT, INSERT, UPDATE ON public.{PREDICTIONS_TABLE} TO {SINK_ROLE}",
    )


def drop_predictions_table(cfg: StackConfig) -> None:
    as_owner(cfg, f"DROP TABLE IF EXISTS public.{PREDICTIONS_TABLE}")


def sink_config(cfg: StackConfig) -> dict[str, str]:
    """The shipped sink (debezium/register-predictions-sink.json) on the benchmark's topic and table."""
    return {**connect.sink_config(cfg), "topics": PREDICTIONS_TOPIC, "collection.name.format": PREDICTIONS_TABLE}


def untrained_model(directory: Path) -> Path:
    """An untrained CNN saved by a process of its own (TensorFlow stays out of the measuring process)."""
    path = directory / "bench-model.keras"
    code = (
        "from consumer.runtime import quiet_tensorflow; quiet_tensorflow(); "
        f"from consumer.model import build_model; build_model().save({str(path)!r})"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True, capture_output=True, timeout=300)
    return path


class Predictor:
    """``python -m consumer.predict --follow`` on the benchmark's topics, started and stopped by the benchmark."""

    def __init__(self, cfg: StackConfig, model: Path, batch_size: int) -> None:
        argv = [
            sys.executable, "-m", "consumer.predict", "--follow",
            "--topic", SOURCE_TOPIC, "--predictions-topic", PREDICTIONS_TOPIC,
            "--group-id", f"bench-predict-{uuid.uuid4().hex[:8]}",
            "--batch-size", str(batch_size), "--model", str(model),
            "--bootstrap-servers", cfg.kafka.bootstrap_servers,
        ]  # fmt: skip
        self.process = subprocess.Popen(argv, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for line in self.process.stdout:
            if line.startswith("predicting "):
                break
        else:
            raise RuntimeError(f"consumer.predict did not start: {self.process.stderr.read().strip()[-300:]}")
        # Keep its pipe drained (a line a batch) so it never blocks on a full pipe.
        threading.Thread(target=lambda: [None for _ in self.process.stdout], daemon=True).start()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Arrivals(threading.Thread):
    """Timestamps the current run's records on the captured topic (by row number) and its predictions (by id)."""

    def __init__(self, servers: str) -> None:
        super().__init__(daemon=True)
        self.consumer = Consumer(client_config(servers, f"prediction-bench-{uuid.uuid4().hex[:8]}"))
        topics = (SOURCE_TOPIC, PREDICTIONS_TOPIC)
        self.consumer.assign([TopicPartition(t, p, o) for t in topics for p, o in end_offsets(servers, t).items()])
        self.rows: NumberedRows | None = None
        self.on_kafka: dict[int, float] = {}  # row number -> arrival
        self.predicted: dict[int, float] = {}  # row id -> arrival
        self.stop = threading.Event()

    def reset(self, rows: NumberedRows) -> None:
        self.on_kafka, self.predicted, self.rows = {}, {}, rows

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                message = self.consumer.poll(0.05)  # each record as soon as it is fetched
                if message is None or message.error() is not None:
                    continue
                now = time.time()
                if message.topic() == SOURCE_TOPIC:
                    number = self.rows.number_of(message.value()) if self.rows else None
                    if number is not None:
                        self.on_kafka.setdefault(number, now)
                else:
                    self.predicted.setdefault(key_of(message.key())[1], now)
        finally:
            self.consumer.close()


def row_numbers(cfg: StackConfig, rows: NumberedRows) -> dict[int, int]:
    """``{id: row number}`` of a run's rows (its marker, then the number in pixels 3..5)."""
    conn = pg_connect(cfg.postgres)
    try:
        with conn.cursor() as cur:
            cur.execute(
                f"SELECT id, get_byte(pixels, 3) * 65536 + get_byte(pixels, 4) * 256 + get_byte(pixels, 5) "
                f"FROM public.{SOURCE_TABLE} WHERE substring(pixels FROM 1 FOR 3) = %s",
                (rows.marker,),
            )
            return dict(cur.fetchall())
    finally:
        conn.close()


def written_times(cfg: StackConfig, ids: list[int]) -> dict[int, float]:
    """``{id: when the sink wrote its prediction row}`` for the ids already in the table."""
    conn = pg_connect(cfg.postgres)
    try:
        with conn.cursor() as cur:
            cur.execute(
                f"SELECT id, EXTRACT(EPOCH FROM written_at) FROM public.{PREDICTIONS_TABLE} WHERE id = ANY(%s)", (ids,)
            )
            return {row_id: float(at) for row_id, at in cur.fetchall()}
    finally:
        conn.close()


def measure(cfg: StackConfig, arrivals: Arrivals, rate: int, seconds: float) -> dict[str, dict[str, float]]:
    rows = write_run(cfg.postgres, SOURCE_TABLE, rate, seconds, arrivals)
    numbers = row_numbers(cfg, rows)
    ids = sorted(numbers)
    written: dict[int, float] = {}

    def complete() -> bool:
        written.update(written_times(cfg, [i for i in ids if i not in written]))
        return len(arrivals.on_kafka) == len(arrivals.predicted) == len(written) == rows.count

    if not poll(complete, 120, 0.5):
        got = {"kafka": len(arrivals.on_kafka), "prediction": len(arrivals.predicted), "table": len(written)}
        raise RuntimeError(f"not every row came through within 120 s: {got} of {rows.count}")

    latencies = {
        "kafka": [(at - committed_at(rows, n)) * 1000 for n, at in arrivals.on_kafka.items()],
        "prediction": [(arrivals.predicted[i] - committed_at(rows, numbers[i])) * 1000 for i in ids],
        "table": [(written[i] - committed_at(rows, numbers[i])) * 1000 for i in ids],
    }
    return {stage: percentiles(np.array(values)) for stage, values in latencies.items()}


def main(argv: list[str] | None = None) -> int:
    flags = parser("bench.prediction_latency_bench", __doc__)
    flags.add_argument("--rates", type=int, nargs="+", default=[200, 1000], help="rows/s (200 1000)")
    flags.add_argument("--seconds", type=float, default=10.0, help="insert time per rate and repetition (10)")
    flags.add_argument("--batch-size", type=int, default=32, help="the predictor's records a transaction (32)")
    flags.add_argument("--model", type=Path, help="a .keras model to score with (default: an untrained CNN)")
    args = parse(flags, argv)

    cfg = settings(args)
    with tempfile.TemporaryDirectory(prefix="prediction-bench-") as scratch:
        model = args.model or untrained_model(Path(scratch))
        with bench_table(cfg, "predict"):
            runs = measure_all(cfg, args, model)
    return report(args, runs)


def measure_all(cfg: StackConfig, args: argparse.Namespace, model: Path) -> dict[tuple[str, int], list[dict]]:
    """Every repetition at every rate; removes the sink, its table and topic, and stops the predictor after."""
    sink = f"bench-predictions-sink-{uuid.uuid4().hex[:8]}"
    create_predictions_table(cfg)
    ensure_topics(cfg, (PREDICTIONS_TOPIC,))
    predictor = None
    try:
        connect.register(cfg, sink, sink_config(cfg))
        if not poll(lambda: connect.is_running(connect.connector_status(cfg, sink)), 60):
            raise RuntimeError(f"the benchmark's sink is not RUNNING: {connect.connector_status(cfg, sink)}")
        predictor = Predictor(cfg, model, args.batch_size)
        arrivals = Arrivals(cfg.kafka.bootstrap_servers)
        arrivals.start()
        runs: dict[tuple[str, int], list[dict]] = {}
        try:
            for _ in range(args.reps):
                for rate in args.rates:
                    for stage, figures in measure(cfg, arrivals, rate, args.seconds).items():
                        runs.setdefault((stage, rate), []).append(figures)
        finally:
            arrivals.stop.set()
            arrivals.join()
        return runs
    finally:
        if predictor is not None:
            predictor.stop()
        connect.rest(cfg, "DELETE", f"/connectors/{sink}")
        drop_predictions_table(cfg)
        delete_topics(cfg, (PREDICTIONS_TOPIC,))


def report(args: argparse.Namespace, runs: dict) -> int:
    table, figures = [], {}
    for (stage, rate), reps in sorted(runs.items(), key=lambda item: (item[0][1], STAGES.index(item[0][0]))):
        stats = {k: summarise([r[k] for r in reps]) for k in ("p50", "p95", "p99", "max")}
        figures[f"{LABELS[stage]} @ {rate} rows/s"] = stats
        table.append(
            [
                LABELS[stage],
                str(rate),
                *(f"{stats[k]['median']:.1f}" for k in ("p50", "p95", "p99", "max")),
                f"{stats['p99']['min']:.0f}-{stats['p99']['max']:.0f}",
            ]
        )
    print_table(
        f"Prediction latency (ms), median of {args.reps} repetitions of {args.seconds:g} s, "
        f"predictor batch {args.batch_size}",
        ["stage", "rows/s", "p50", "p95", "p99", "max", "p99 spread"],
        table,
    )
    return record(
        args,
        "prediction_latency",
        {"seconds_per_rate": args.seconds, "predictor_batch_size": args.batch_size, "latency_ms": figures},
    )


if __name__ == "__main__":
    sys.exit(run(main))
