"""Scoring throughput of the three engines: Spark Structured Streaming (``consumer.spark_predict``, ``local[2]``),
Flink (``consumer.flink_predict``, a local mini-cluster, exactly once) and one and two ``consumer.predict``
processes, each on a topic of its own filled the same way. Spark and Flink are opt-in (``make setup-spark``,
``make setup-flink``): one not set up is left out with a note unless ``--scorers`` names it.

Each scorer, a repetition: its processes start with ``--follow`` on an empty topic of the benchmark's own (at
least 2 partitions) and the benchmark waits until every one is ready (``predicting ...``: model loaded, reader or
query or job running; for consumer.predict also its consumer group stable with a partition for each member, so two
processes share the partitions from the first record). A warm-up of ``WARM_UP`` records follows (Spark's first
micro-batch starts its Python workers and loads the model in each, Flink's Python worker loads it in ``open()``;
consumer.predict's first batch traces the model), then ``--records`` records (default 10,000), both as the
connector writes them (spread round-robin; key: the label; value: the CSV pixels; ``mnist.table``/``mnist.id``/
``__source_ts_ms`` headers, so every record gets a prediction). A read_committed reader of the benchmark waits
until every prediction is on the scorer's predictions topic; Ctrl-C ends the processes. No sink reads those
topics; the demo's tables and topics are never touched. The model is an untrained CNN: scoring costs the same
whatever the weights.

Figures per scorer (medians over ``--reps``, the scorers alternated): records/s (the measured records / seconds
from producing the first of them to reading the last prediction: start-up and warm-up excluded), the start-up
(process start to the warm-up's last prediction) and the CPU seconds each process and its children used from
start to end (``os.wait4``, ``bench.fresh_process.Child``: Spark's and Flink's JVM and Python workers count, both
commands wait for their JVM to end), summed over the processes of a scorer and, for two, also each, with the
records each scored (warm-up included).

    python -m stack up && python -m stack.assemble --part spark
    python -m bench.spark_bench                          # 10,000 records, 3 repetitions
    python -m bench.spark_bench --records 2000 --reps 1 --no-record    # a tiny run
    python -m bench.spark_bench --scorers flink predict                 # two of them
"""

from __future__ import annotations

import dataclasses
import re
import sys
import tempfile
import time
import uuid
from pathlib import Path

from confluent_kafka import Producer

from bench.arrivals import predictions_arrive
from bench.fresh_process import Child, group_shared, untrained_model, wait_scoring
from bench.images import rows as image_rows
from bench.record import parse, parser, print_table, record, settings, summarise
from bench.scorers import PROCESSES, engine_command, runnable
from bench.tables import delete_topics, run
from consumer.records.codec import encode_records
from stack.config import StackConfig
from stack.contract import MNIST
from stack.kafka import ensure_topics

SCORERS = ("spark", "flink", "predict", "predict2")
LABELS = {
    "spark": "Spark local[2] (spark_predict)",
    "flink": "Flink mini-cluster (flink_predict)",
    "predict": "1 consumer.predict process",
    "predict2": "2 consumer.predict processes",
}
#: The input topic's partitions at least: two consumer.predict processes of one group need one each.
MIN_PARTITIONS = 2
#: How long a scorer may take to be ready, or to publish every prediction, before the run fails.
TIMEOUT_S = 900
#: Records scored before the measured ones, a few a partition: Spark's first micro-batch starts its Python workers
#: and loads the model in each, consumer.predict's first batch traces the model; neither belongs in the rate.
WARM_UP = 64
#: The records each process scored, from its summary line (flink_predict's is in consumer.predict's words).
SCORED = {
    "spark": re.compile(r"^scored (\d+) records in \d+ micro-batches", re.MULTILINE),
    "predict": re.compile(r"^predicted (\d+) of \d+ records", re.MULTILINE),
}
SCORED["flink"] = SCORED["predict"]


def fill(cfg: StackConfig, topic: str, count: int, partitions: int, first_id: int = 1) -> None:
    """``count`` records as the connector writes them, with the id headers consumer.records.predictions keys by (ids
    from ``first_id``), spread round-robin over ``partitions`` (as the connector's RoundRobinPartitioner does; the
    label key would not)."""
    split = image_rows("mnist_bench_spark", count)
    values = [value for _, value in encode_records(split.images, split.labels)]
    producer = Producer({"bootstrap.servers": cfg.kafka.bootstrap_servers, "linger.ms": 20})
    now = str(int(time.time() * 1000)).encode()
    for number, (label, value) in enumerate(zip(split.labels.tolist(), values, strict=True)):
        headers = [
            (MNIST.table_header, b"mnist_bench_spark"),
            (MNIST.id_header, str(first_id + number).encode()),
            (MNIST.commit_header, now),
        ]
        partition = number % partitions
        producer.produce(topic, key=str(label).encode(), value=value, headers=headers, partition=partition)
        if number % 1000 == 0:
            producer.poll(0)
    if producer.flush(60) != 0:
        raise RuntimeError(f"could not write {count} records to {topic}")


def commands(scorer: str, cfg: StackConfig, topic: str, out: str, model: Path, scratch: Path, count: int, group: str):
    """The command line of each process of ``scorer``, each following ``topic`` until Ctrl-C."""
    common = ["--follow", "--topic", topic, "--predictions-topic", out, "--model", str(model)]
    common += ["--bootstrap-servers", cfg.kafka.bootstrap_servers]
    checkpoint = scratch / f"checkpoint-{uuid.uuid4().hex[:8]}"
    if scorer == "spark":
        # At most a fifth of the records a micro-batch: the first starts the workers, the rest are the warm rate.
        common += ["--max-records-per-trigger", str(max(1, count // 5))]
    if scorer in ("spark", "flink"):
        return [engine_command(scorer, common, checkpoint, group)]
    predict = [sys.executable, "-m", "consumer.predict", *common, "--group-id", group]
    return [[*predict, "--instance", f"bench-{n}"] for n in range(PROCESSES[scorer])]


def wait_ready(children: list[Child], scorer: str, cfg: StackConfig, group: str) -> None:
    """Until every process printed ``predicting ...`` and, for consumer.predict, its group is stable with a
    partition for each member; RuntimeError when one ends first or it takes longer than TIMEOUT_S."""

    shared = group_shared(cfg.kafka.bootstrap_servers, group, len(children))
    wait_scoring(children, scorer, TIMEOUT_S, shared if scorer.startswith("predict") else None)


def measure(scorer: str, cfg: StackConfig, model: Path, scratch: Path, count: int, partitions: int) -> dict:
    """One run of a scorer on topics of its own (deleted after): start, ready, a warm-up, then ``count`` records
    and the time until every prediction was read."""
    suffix = uuid.uuid4().hex[:8]
    topic, out = f"bench.spark.in.{scorer}.{suffix}", f"bench.spark.out.{scorer}.{suffix}"
    group = f"bench-spark-vs-predict-{suffix}"
    servers = cfg.kafka.bootstrap_servers
    ensure_topics(dataclasses.replace(cfg, partitions=partitions), (topic, out))
    argvs = commands(scorer, cfg, topic, out, model, scratch, count, group)
    started = time.perf_counter()
    children = [Child.start(argv, scratch / f"{scorer}-{suffix}-{n}.log") for n, argv in enumerate(argvs)]
    try:
        wait_ready(children, scorer, cfg, group)
        fill(cfg, topic, WARM_UP, partitions)
        _, warm_at, _ = predictions_arrive(servers, out, WARM_UP, children, TIMEOUT_S)
        if warm_at is not None:
            filled_at = time.perf_counter()
            fill(cfg, topic, count, partitions, first_id=WARM_UP + 1)
            _, done_at, keys = predictions_arrive(servers, out, WARM_UP + count, children, TIMEOUT_S)
    finally:
        for child in children:
            child.interrupt()
        for child in children:
            child.wait(120)
        delete_topics(cfg, (topic, out))
    if warm_at is None or done_at is None or len(set(keys)) < WARM_UP + count:
        arrived = 0 if warm_at is None else len(set(keys))
        tails = "; ".join(f"exit {child.code}: {child.tail()}" for child in children)
        raise RuntimeError(f"{scorer}: {arrived} of {WARM_UP + count} predictions arrived: {tails}")
    scored = []
    for child in children:
        found = SCORED[scorer.removesuffix("2")].search(child.output)
        if child.code != 0 or not found:
            raise RuntimeError(f"{scorer} failed ({child.code}): {child.output.strip()[-400:]}")
        scored.append(int(found.group(1)))
    cpu_each = [child.cpu_s for child in children]
    wall = done_at - filled_at
    figures = {"rate": count / wall, "wall_s": wall, "startup_s": warm_at - started, "cpu_s": sum(cpu_each)}
    if len(argvs) > 1:
        figures.update({"cpu_s_each": cpu_each, "scored_each": scored})
    return figures


def cpu_text(run: dict) -> str:
    """``3.2`` for one process; ``6.1 (3.2 + 2.9)`` for two: the sum, then each."""
    each = run.get("cpu_s_each")
    return f"{run['cpu_s']:.1f}" + (f" ({' + '.join(f'{c:.1f}' for c in each)})" if each else "")


def main(argv: list[str] | None = None) -> int:
    p = parser("bench.spark_bench", __doc__, reps=3)
    p.add_argument("--records", type=int, default=10_000, help="records on the benchmark's topic (10,000)")
    p.add_argument(
        "--scorers", nargs="+", choices=SCORERS, help="which scorers (default all; spark and flink once set up)"
    )
    args = parse(p, argv)
    cfg = settings(args)
    partitions = max(MIN_PARTITIONS, cfg.partitions)
    try:
        scorers = runnable(cfg, args.scorers or list(SCORERS), named=bool(args.scorers))
        runs = measure_all(cfg, scorers, args, partitions)
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    figures = summarise_runs(runs)
    print_table(
        f"Scoring {args.records:,} records, median of {args.reps}",
        ["scorer", "records/s", "s", "start-up s", "CPU s (each process)", "CPU s / 1k records",
         "records each"],
        [table_row(scorer, figures[scorer], args.records) for scorer in scorers],
    )  # fmt: skip
    results = {"records": args.records, "partitions": partitions, "reps": args.reps, "scorers": figures, "runs": runs}
    return record(args, "spark", results)


def measure_all(cfg: StackConfig, scorers: list[str], args, partitions: int) -> dict[str, list[dict]]:
    """Each repetition of each scorer, the scorers alternated so a change of load hits each alike."""
    runs: dict[str, list[dict]] = {scorer: [] for scorer in scorers}
    with tempfile.TemporaryDirectory(prefix="spark-bench-") as scratch:
        model = untrained_model(Path(scratch))
        for rep in range(args.reps):
            for scorer in scorers:
                runs[scorer].append(measure(scorer, cfg, model, Path(scratch), args.records, partitions))
                r = runs[scorer][-1]
                print(
                    f"rep {rep + 1} {scorer:<8} {r['rate']:>8,.0f} records/s ({r['wall_s']:.1f} s); "
                    f"start-up {r['startup_s']:.1f} s; {cpu_text(r)} CPU s"
                    + (f", records {' + '.join(map(str, r['scored_each']))}" if "scored_each" in r else ""),
                    flush=True,
                )
    return runs


def summarise_runs(runs: dict[str, list[dict]]) -> dict[str, dict]:
    """Medians (with min and max) of each figure of each scorer, and of each process's for two."""
    keys = ("rate", "wall_s", "startup_s", "cpu_s")
    figures = {scorer: {key: summarise([r[key] for r in reps]) for key in keys} for scorer, reps in runs.items()}
    for scorer, reps in runs.items():
        if PROCESSES[scorer] > 1:  # each process's CPU seconds, the median over the reps of each
            each = zip(*(r["cpu_s_each"] for r in reps), strict=True)
            figures[scorer]["cpu_s_each"] = [summarise(list(values)) for values in each]
            scored = zip(*(r["scored_each"] for r in reps), strict=True)
            figures[scorer]["records_each"] = [summarise(list(values)) for values in scored]
    return figures


def table_row(scorer: str, f: dict, records: int) -> list[str]:
    cpu_per_k = f["cpu_s"]["median"] / records * 1000
    medians = {"cpu_s": f["cpu_s"]["median"]}
    if "cpu_s_each" in f:
        medians["cpu_s_each"] = [each["median"] for each in f["cpu_s_each"]]
    records_each = " + ".join(f"{each['median']:.0f}" for each in f.get("records_each", []))
    return [
        LABELS[scorer],
        f"{f['rate']['median']:,.0f}",
        f"{f['wall_s']['median']:.1f}",
        f"{f['startup_s']['median']:.1f}",
        cpu_text(medians),
        f"{cpu_per_k:.2f}",
        records_each or "-",
    ]


if __name__ == "__main__":
    sys.exit(run(main))
