"""Prediction latency: COMMIT in PostgreSQL -> record on Kafka -> prediction on Kafka -> row in the predictions table,
for each scorer side by side in one run: 1 ``consumer.predict``, 2 ``consumer.predict`` of one consumer group,
Spark Structured Streaming (``consumer.spark_predict``, ``local[2]``, a micro-batch every ``--spark-interval`` s)
and Flink (``consumer.flink_predict``, a local mini-cluster, exactly once, a checkpoint every
``--flink-checkpoint-interval`` s).

Three figures per row, at steady insert rates (default 200 and 1,000 rows/s): from the row's COMMIT to (1) its
record on the captured topic, (2) its prediction on the predictions topic (read_committed: visible once
``consumer.predict``'s transaction for the batch committed, or Flink's at the checkpoint after it; Spark's sink
does not use transactions), (3) its row in
the predictions table (written by Debezium's JDBC sink). Everything runs on the benchmark's own objects, never the
demo's: the table ``public.mnist_bench_predict`` (``bench/tables.py``; captured by the running connector into
``tf.public.mnist_bench_predict``), the scorer's processes on that topic writing to ``mnist.bench.predictions``,
and a JDBC sink connector of its own writing to ``public.mnist_bench_predictions``, all removed afterwards.

Each repetition runs the scorers one after another (never two at once, so none takes CPU from another): a
scorer's processes start with ``--follow``, resume where that scorer stopped last (its own consumer group, its own
Spark checkpoint), score a 2 s warm-up at the first rate (not measured: it also catches up on the rows the other
scorers were measured on, and Spark's first micro-batch starts its Python workers and loads the model), then each
rate, then stop (SIGINT). Spark and Flink are left out, with a note, when ``make setup-spark`` or ``make
setup-flink`` has not been run, unless ``--scorers`` names them.

Times: commit = ``time.time()`` right after COMMIT returns; Kafka arrivals = ``time.time()`` when a read_committed
confluent-kafka reader of the benchmark hands the record over; table = the database's ``clock_timestamp()`` when
the sink's INSERT wrote the row (a column default of the benchmark's table; the row is visible at the sink's
commit right after). Same machine, same clock. The model is an untrained CNN unless ``--model`` names one:
scoring costs the same whatever the weights.

    python -m bench.prediction_latency_bench                  # 200 and 1,000 rows/s, 10 s each, 3 repetitions
    python -m bench.prediction_latency_bench --scorers predict --rates 100 --seconds 2 --reps 1 --no-record
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from confluent_kafka import Message

from bench.arrivals import TopicClock, committed_at, write_run
from bench.fresh_process import Child, group_shared, untrained_model, wait_scoring
from bench.record import add_rate_flags, parse, parser, percentiles, print_table, record, settings, summarise
from bench.scorers import PROCESSES, engine_command, runnable
from bench.tables import as_owner, bench_table, delete_topics, run
from consumer.records.predictions import key_of
from probes.database import query_all
from probes.deadline import poll
from probes.rows import NumberedRows
from stack import connect
from stack.config import StackConfig
from stack.contract import MNIST
from stack.kafka import ensure_topics
from stack.postgres import SINK_ROLE

SOURCE_TABLE = "mnist_bench_predict"
SOURCE_TOPIC = MNIST.of_table(SOURCE_TABLE)
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


SCORERS = ("predict", "predict2", "spark", "flink")
SCORER_LABELS = {
    "predict": "1 consumer.predict",
    "predict2": "2 consumer.predict",
    "spark": "Spark local[2]",
    "flink": "Flink mini-cluster",
}
START_TIMEOUT_S = 300


class Scorer:
    """A scorer's processes with ``--follow`` on the benchmark's topics, from ``start`` until ``stop``. Its consumer
    group and Spark checkpoint stay the same for the whole run, so each start resumes where the last one stopped."""

    def __init__(self, kind: str, cfg: StackConfig, model: Path, args: argparse.Namespace, scratch: Path) -> None:
        self.kind, self.scratch = kind, scratch
        common = ["--follow", "--topic", SOURCE_TOPIC, "--predictions-topic", PREDICTIONS_TOPIC]
        common += ["--model", str(model), "--bootstrap-servers", cfg.kafka.bootstrap_servers]
        group = f"bench-predict-{kind}-{uuid.uuid4().hex[:8]}"
        if kind in ("spark", "flink"):
            engine = engine_command(kind, common, scratch / f"{kind}-checkpoint", group)
            every = {"spark": ["--interval", f"{args.spark_interval:g}"]}
            every["flink"] = ["--checkpoint-interval", f"{args.flink_checkpoint_interval:g}"]
            self.argvs = [[*engine, *every[kind]]]
        else:
            predict = [sys.executable, "-m", "consumer.predict", *common, "--group-id", group]
            predict += ["--batch-size", str(args.batch_size)] if args.batch_size else []
            self.argvs = [[*predict, "--instance", f"bench-{n}"] for n in range(PROCESSES[kind])]
        self.children: list[Child] = []
        self.starts = 0
        self.group, self.servers = group, cfg.kafka.bootstrap_servers

    def start(self) -> None:
        """Every process started and past its ``predicting ...`` line (its reader or query is running)."""
        self.starts += 1
        logs = [self.scratch / f"{self.kind}-{self.starts}-{n}.log" for n in range(len(self.argvs))]
        self.children = [Child.start(argv, log) for argv, log in zip(self.argvs, logs, strict=True)]
        # Two processes of a group: once both hold a partition, so the group's first rebalance is not measured.
        shared = group_shared(self.servers, self.group, len(self.argvs)) if len(self.argvs) > 1 else None
        wait_scoring(self.children, SCORER_LABELS[self.kind], START_TIMEOUT_S, shared)

    def stop(self) -> None:
        """SIGINT, as Ctrl-C: consumer.predict ends after its transaction, Spark stops its query, Flink stops its job
        with a savepoint."""
        for child in self.children:
            child.interrupt()
        for child in self.children:
            child.wait(60)
        self.children = []


class Arrivals(TopicClock):
    """Timestamps the current run's records on the captured topic (by row number) and its predictions (by id)."""

    def __init__(self, servers: str) -> None:
        super().__init__(servers, (SOURCE_TOPIC, PREDICTIONS_TOPIC), "prediction-bench")
        self.rows: NumberedRows | None = None
        self.on_kafka: dict[int, float] = {}  # row number -> arrival
        self.predicted: dict[int, float] = {}  # row id -> arrival
        self.last_prediction = time.time()  # of any row, this run's or not

    def reset(self, rows: NumberedRows) -> None:
        self.on_kafka, self.predicted, self.rows = {}, {}, rows

    def on_record(self, message: Message, now: float) -> None:
        if message.topic() == SOURCE_TOPIC:
            number = self.rows.number_of(message.value()) if self.rows else None
            if number is not None:
                self.on_kafka.setdefault(number, now)
        else:
            self.predicted.setdefault(key_of(message.key())[1], now)
            self.last_prediction = now


def row_numbers(cfg: StackConfig, rows: NumberedRows) -> dict[int, int]:
    """``{id: row number}`` of a run's rows (its marker, then the number in pixels 3..5)."""
    return dict(
        query_all(
            cfg.postgres,
            f"SELECT id, get_byte(pixels, 3) * 65536 + get_byte(pixels, 4) * 256 + get_byte(pixels, 5) "
            f"FROM public.{SOURCE_TABLE} WHERE substring(pixels FROM 1 FOR 3) = %s",
            (rows.marker,),
        )
    )


def written_times(cfg: StackConfig, ids: list[int]) -> dict[int, float]:
    """``{id: when the sink wrote its prediction row}`` for the ids already in the table."""
    found = query_all(
        cfg.postgres,
        f"SELECT id, EXTRACT(EPOCH FROM written_at) FROM public.{PREDICTIONS_TABLE} WHERE id = ANY(%s)",
        (ids,),
    )
    return {row_id: float(at) for row_id, at in found}


def measure(cfg: StackConfig, arrivals: Arrivals, rate: int, seconds: float) -> dict[str, dict[str, float]]:
    rows = write_run(cfg.postgres, SOURCE_TABLE, rate, seconds, arrivals)
    numbers = row_numbers(cfg, rows)
    ids = sorted(numbers)
    written: dict[int, float] = {}

    def complete() -> bool:  # the predictions of other rows (a scorer catching up) are not this run's
        written.update(written_times(cfg, [i for i in ids if i not in written]))
        predicted = sum(i in arrivals.predicted for i in ids)
        return len(arrivals.on_kafka) == predicted == len(written) == rows.count

    if not poll(complete, 120, 0.5):
        predicted = sum(i in arrivals.predicted for i in ids)
        got = {"kafka": len(arrivals.on_kafka), "prediction": predicted, "table": len(written)}
        raise RuntimeError(f"not every row came through within 120 s: {got} of {rows.count}")

    latencies = {
        "kafka": [(at - committed_at(rows, n)) * 1000 for n, at in arrivals.on_kafka.items()],
        "prediction": [(arrivals.predicted[i] - committed_at(rows, numbers[i])) * 1000 for i in ids],
        "table": [(written[i] - committed_at(rows, numbers[i])) * 1000 for i in ids],
    }
    return {stage: percentiles(np.array(values)) for stage, values in latencies.items()}


def main(argv: list[str] | None = None) -> int:
    flags = parser("bench.prediction_latency_bench", __doc__)
    add_rate_flags(flags)
    flags.add_argument(
        "--scorers", nargs="+", choices=SCORERS, help="which scorers (default all; spark and flink once set up)"
    )
    flags.add_argument(
        "--batch-size", type=int, help="consumer.predict's bound on records a transaction (default: its own, 2048)"
    )
    flags.add_argument("--spark-interval", type=float, default=1.0, help="seconds between Spark's micro-batches (1)")
    flags.add_argument(
        "--flink-checkpoint-interval", type=float, default=0.25, help="seconds between Flink's checkpoints (0.25)"
    )
    flags.add_argument("--model", type=Path, help="a .keras model to score with (default: an untrained CNN)")
    args = parse(flags, argv)

    cfg = settings(args)
    scorers = runnable(cfg, args.scorers or list(SCORERS), named=bool(args.scorers))
    with tempfile.TemporaryDirectory(prefix="prediction-bench-") as scratch:
        model = args.model or untrained_model(Path(scratch))
        with bench_table(cfg, "predict"):
            runs = measure_all(cfg, args, scorers, model, Path(scratch))
    return report(args, scorers, runs)


def measure_all(
    cfg: StackConfig, args: argparse.Namespace, scorers: list[str], model: Path, scratch: Path
) -> dict[tuple[str, str, int], list[dict]]:
    """Every repetition of every scorer at every rate: ``{(scorer, stage, rate): [figures a repetition]}``.
    Removes the sink, its table and topic, and stops the scorer after."""
    sink = f"bench-predictions-sink-{uuid.uuid4().hex[:8]}"
    create_predictions_table(cfg)
    delete_topics(cfg, (PREDICTIONS_TOPIC,))  # a killed run's predictions would reach the new table first
    ensure_topics(cfg, (PREDICTIONS_TOPIC,))
    running = None
    try:
        connect.register(cfg, sink, sink_config(cfg))
        if not poll(lambda: connect.is_running(connect.connector_status(cfg, sink)), 60):
            raise RuntimeError(f"the benchmark's sink is not RUNNING: {connect.connector_status(cfg, sink)}")
        each = {kind: Scorer(kind, cfg, model, args, scratch) for kind in scorers}
        arrivals = Arrivals(cfg.kafka.bootstrap_servers)
        arrivals.start()
        runs: dict[tuple[str, str, int], list[dict]] = {}
        try:
            for rep in range(args.reps):
                for kind in scorers:
                    running = each[kind]
                    running.start()
                    measure(cfg, arrivals, args.rates[0], 2.0)  # the warm-up, not measured
                    # Caught up: the rows the other scorers were measured on are scored too (no prediction for 2 s).
                    if not poll(lambda: time.time() - arrivals.last_prediction > 2.0, 300, 0.2):
                        raise RuntimeError(f"{SCORER_LABELS[kind]} still scoring older rows after 300 s")
                    for rate in args.rates:
                        figures = measure(cfg, arrivals, rate, args.seconds)
                        for stage, stats in figures.items():
                            runs.setdefault((kind, stage, rate), []).append(stats)
                        print(
                            f"rep {rep + 1} {SCORER_LABELS[kind]:<20} {rate:>5} rows/s: commit -> prediction p50 "
                            f"{figures['prediction']['p50']:.1f} ms, p99 {figures['prediction']['p99']:.1f} ms; "
                            f"-> table row p50 {figures['table']['p50']:.1f} ms",
                            flush=True,
                        )
                    running.stop()
                    running = None
        finally:
            arrivals.finish()
        return runs
    finally:
        if running is not None:
            running.stop()
        connect.rest(cfg, "DELETE", f"/connectors/{sink}")
        drop_predictions_table(cfg)
        delete_topics(cfg, (PREDICTIONS_TOPIC,))


def report(args: argparse.Namespace, scorers: list[str], runs: dict) -> int:
    table, figures = [], {}
    order = sorted(runs.items(), key=lambda item: (item[0][2], scorers.index(item[0][0]), STAGES.index(item[0][1])))
    for (kind, stage, rate), reps in order:
        stats = {k: summarise([r[k] for r in reps]) for k in ("p50", "p95", "p99", "max")}
        figures[f"{SCORER_LABELS[kind]}: {LABELS[stage]} @ {rate} rows/s"] = stats
        table.append(
            [
                SCORER_LABELS[kind],
                LABELS[stage],
                str(rate),
                *(f"{stats[k]['median']:.1f}" for k in ("p50", "p95", "p99", "max")),
                f"{stats['p99']['min']:.0f}-{stats['p99']['max']:.0f}",
            ]
        )
    print_table(
        f"Prediction latency (ms), median of {args.reps} repetitions of {args.seconds:g} s; consumer.predict batch "
        f"bound {args.batch_size or 'default'}, Spark micro-batch every {args.spark_interval:g} s, Flink checkpoint "
        f"every {args.flink_checkpoint_interval:g} s",
        ["scorer", "stage", "rows/s", "p50", "p95", "p99", "max", "p99 spread"],
        table,
    )
    return record(
        args,
        "prediction_latency",
        {
            "seconds_per_rate": args.seconds,
            "scorers": scorers,
            "predictor_batch_size": args.batch_size,
            "spark_interval_s": args.spark_interval,
            "flink_checkpoint_interval_s": args.flink_checkpoint_interval,
            "latency_ms": figures,
        },
    )


if __name__ == "__main__":
    sys.exit(run(main))
