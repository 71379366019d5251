"""Scoring throughput: Spark Structured Streaming (``consumer.spark_predict``, ``local[2]``) against one
``consumer.predict`` process, on the same topic of the benchmark's own.

The benchmark writes ``--records`` records (default 10,000) to a topic of its own, as the connector writes them
(key: the label; value: the CSV pixels; ``mnist.table``/``mnist.id``/``__source_ts_ms`` headers, so every record
gets a prediction), then runs each scorer from the start of that topic to its end, a fresh process a repetition,
each writing to a predictions topic of its own (no sink reads them; the demo tables are not touched). The model
is an untrained CNN: scoring costs the same whatever the weights.

Figures per scorer (medians over ``--reps``): its own rate (records / seconds of its batches, as its summary line
says: Spark's last four of five micro-batches, the first starting the workers and loading the model in each;
consumer.predict's first to last batch), the end-to-end rate (records / the
process's wall time, start-up included; consumer.predict's includes its ``--idle-timeout`` of 2 s) and the CPU
seconds the process and its children used (``resource.getrusage(RUSAGE_CHILDREN)``; Spark's JVM and Python
workers count: spark_predict waits for its JVM to end).

    python -m stack up && python -m stack.assemble --part spark
    python -m bench.spark_bench                          # 10,000 records, 3 repetitions
    python -m bench.spark_bench --records 2000 --reps 1 --no-record    # a tiny run
"""

from __future__ import annotations

import re
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.prediction_latency_bench import untrained_model
from bench.record import parse, parser, print_table, record, settings, summarise
from bench.tables import delete_topics, run
from stack.config import REPO_ROOT, StackConfig
from stack.kafka import ensure_topics

SCORERS = ("spark", "predict")
LABELS = {"spark": "Spark local[2] (spark_predict)", "predict": "1 consumer.predict process"}
RATE = {
    "spark": re.compile(
        r"scored (\d+) records in \d+ micro-batches, [\d.]+ s: [\d,.]+ records/s \(after the first micro-batch "
        r"([\d,.]+) records/s\)"
    ),
    "predict": re.compile(r"predicted (\d+) of \d+ records .*: ([\d,.]+) records/s"),
}


def fill(cfg: StackConfig, topic: str, count: int) -> None:
    """``count`` records as the connector writes them, with the id headers consumer.predictions keys by."""
    from confluent_kafka import Producer

    from bench.images import rows
    from consumer.fill_topic import csv_values

    split = rows("mnist_bench_spark", count)
    values = csv_values(split.images)
    producer = Producer({"bootstrap.servers": cfg.kafka.bootstrap_servers, "linger.ms": 20})
    now = str(int(time.time() * 1000)).encode()
    for number, (label, value) in enumerate(zip(split.labels.tolist(), values, strict=True)):
        headers = [
            ("mnist.table", b"mnist_bench_spark"),
            ("mnist.id", str(number + 1).encode()),
            ("__source_ts_ms", now),
        ]
        producer.produce(topic, key=str(label).encode(), value=value, headers=headers)
        if number % 1000 == 0:
            producer.poll(0)
    if producer.flush(60) != 0:
        raise RuntimeError(f"could not write {count} records to {topic}")


def command(scorer: str, cfg: StackConfig, topic: str, out: str, model: Path, scratch: Path, count: int) -> list[str]:
    common = ["--topic", topic, "--predictions-topic", out, "--model", str(model)]
    common += ["--bootstrap-servers", cfg.kafka.bootstrap_servers]
    if scorer == "spark":
        checkpoint = scratch / f"checkpoint-{uuid.uuid4().hex[:8]}"
        # Five micro-batches: the first starts the workers and loads the model, the other four are the warm rate.
        common += ["--checkpoint-dir", str(checkpoint), "--max-records-per-trigger", str(max(1, count // 5))]
        return [sys.executable, "-m", "consumer.spark_predict", *common]
    group = f"bench-spark-vs-predict-{uuid.uuid4().hex[:8]}"
    return [sys.executable, "-m", "consumer.predict", *common, "--group-id", group, "--idle-timeout", "2"]


def measure(argv: list[str], scorer: str, count: int) -> dict[str, float]:
    """One run: its own rate, end-to-end rate and CPU seconds (its process tree, reaped)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    found = RATE[scorer].search(done.stdout)
    if done.returncode != 0 or not found:
        raise RuntimeError(f"{scorer} failed ({done.returncode}): {(done.stderr or done.stdout).strip()[-400:]}")
    scored = int(found.group(1))
    if scored < count:
        raise RuntimeError(f"{scorer} scored {scored} of {count} records")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"own_rate": float(found.group(2).replace(",", "")), "wall_s": wall, "rate": count / wall, "cpu_s": cpu}


def main(argv: list[str] | None = None) -> int:
    p = parser("bench.spark_bench", __doc__, reps=3)
    p.add_argument("--records", type=int, default=10_000, help="records on the benchmark's topic (10,000)")
    args = parse(p, argv)
    cfg = settings(args)
    suffix = uuid.uuid4().hex[:8]
    topic = f"bench.spark.in.{suffix}"
    outs = {scorer: f"bench.spark.out.{scorer}.{suffix}" for scorer in SCORERS}
    runs: dict[str, list[dict[str, float]]] = {scorer: [] for scorer in SCORERS}
    ensure_topics(cfg, (topic, *outs.values()))
    try:
        fill(cfg, topic, args.records)
        with tempfile.TemporaryDirectory(prefix="spark-bench-") as scratch:
            model = untrained_model(Path(scratch))
            for rep in range(args.reps):
                for scorer in SCORERS:  # alternated, so a load change hits both alike
                    argv_ = command(scorer, cfg, topic, outs[scorer], model, Path(scratch), args.records)
                    runs[scorer].append(measure(argv_, scorer, args.records))
                    r = runs[scorer][-1]
                    print(
                        f"rep {rep + 1} {scorer:<8} {r['own_rate']:>8,.0f} records/s own, "
                        f"{r['rate']:>8,.0f} end to end ({r['wall_s']:.1f} s wall, {r['cpu_s']:.1f} CPU s)",
                        flush=True,
                    )
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        delete_topics(cfg, (topic, *outs.values()))

    figures = {
        scorer: {key: summarise([r[key] for r in runs[scorer]]) for key in ("own_rate", "rate", "wall_s", "cpu_s")}
        for scorer in SCORERS
    }
    rows = []
    for scorer in SCORERS:
        f = figures[scorer]
        cpu_per_k = f["cpu_s"]["median"] / args.records * 1000
        rows.append(
            [
                LABELS[scorer],
                f"{f['own_rate']['median']:,.0f}",
                f"{f['rate']['median']:,.0f}",
                f"{f['wall_s']['median']:.1f}",
                f"{f['cpu_s']['median']:.1f}",
                f"{cpu_per_k:.2f}",
            ]
        )
    print_table(
        f"Scoring {args.records:,} records, median of {args.reps}",
        ["scorer", "own records/s", "end-to-end records/s", "wall s", "CPU s", "CPU s / 1k records"],
        rows,
    )
    return record(args, "spark", {"records": args.records, "reps": args.reps, "scorers": figures, "runs": runs})


if __name__ == "__main__":
    sys.exit(run(main))
