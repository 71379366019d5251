"""Scoring throughput: Spark Structured Streaming (``consumer.spark_predict``, ``local[2]``) against one and two
``consumer.predict`` processes, on the same topic of the benchmark's own.

The benchmark writes ``--records`` records (default 10,000) to a topic of its own with at least 2 partitions,
spread round-robin over them, as the connector writes them (key: the label; value: the CSV pixels;
``mnist.table``/``mnist.id``/``__source_ts_ms`` headers, so every record gets a prediction), then runs each scorer
from the start of that topic to its end, fresh processes a repetition, each scorer writing to a predictions topic
of its own (no sink reads them; the demo tables are not touched). The two consumer.predict processes run at once
in one consumer group, with distinct ``--instance``, sharing the partitions; the first to join reads alone until
the second does, so the records each scored are reported too (on a tiny topic one may score them all). The model
is an untrained CNN: scoring costs the same whatever the weights.

Figures per scorer (medians over ``--reps``): its own rate (records / seconds of its batches, as its summary line
says: Spark's last four of five micro-batches, the first starting the workers and loading the model in each;
consumer.predict's first to last batch; for two processes, all records / the longer of the two spans), the
end-to-end rate (records / the wall time until the last process ended, start-up included; consumer.predict's
includes its ``--idle-timeout`` of 2 s) and the CPU seconds each process and its children used (``os.wait4``;
Spark's JVM and Python workers count: spark_predict waits for its JVM to end), summed over the processes of a
scorer and, for two, also each.

    python -m stack up && python -m stack.assemble --part spark
    python -m bench.spark_bench                          # 10,000 records, 3 repetitions
    python -m bench.spark_bench --records 2000 --reps 1 --no-record    # a tiny run
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from bench.prediction_latency_bench import untrained_model
from bench.record import parse, parser, print_table, record, settings, summarise
from bench.tables import delete_topics, run
from stack.config import REPO_ROOT, StackConfig
from stack.kafka import ensure_topics

SCORERS = ("spark", "predict", "predict2")
LABELS = {
    "spark": "Spark local[2] (spark_predict)",
    "predict": "1 consumer.predict process",
    "predict2": "2 consumer.predict processes",
}
#: How many processes each scorer runs at once.
PROCESSES = {"spark": 1, "predict": 1, "predict2": 2}
#: The input topic's partitions at least: two consumer.predict processes of one group need one each.
MIN_PARTITIONS = 2
TIMEOUT_S = 900
#: The summary line of each process: records scored, seconds of its batches and its own rate.
SUMMARY = {
    "spark": re.compile(
        r"scored (\d+) records in \d+ micro-batches, ([\d.]+) s: [\d,.]+ records/s \(after the first micro-batch "
        r"([\d,.]+) records/s\)"
    ),
    "predict": re.compile(r"predicted (\d+) of \d+ records .*, ([\d.]+) s: ([\d,.]+) records/s"),
}


def fill(cfg: StackConfig, topic: str, count: int, partitions: int) -> None:
    """``count`` records as the connector writes them, with the id headers consumer.predictions keys by, spread
    round-robin over ``partitions`` (as the connector's RoundRobinPartitioner does; the label key would not)."""
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
        partition = number % partitions
        producer.produce(topic, key=str(label).encode(), value=value, headers=headers, partition=partition)
        if number % 1000 == 0:
            producer.poll(0)
    if producer.flush(60) != 0:
        raise RuntimeError(f"could not write {count} records to {topic}")


def commands(scorer: str, cfg: StackConfig, topic: str, out: str, model: Path, scratch: Path, count: int):
    """The command line of each process of ``scorer``."""
    common = ["--topic", topic, "--predictions-topic", out, "--model", str(model)]
    common += ["--bootstrap-servers", cfg.kafka.bootstrap_servers]
    if scorer == "spark":
        checkpoint = scratch / f"checkpoint-{uuid.uuid4().hex[:8]}"
        # Five micro-batches: the first starts the workers and loads the model, the other four are the warm rate.
        common += ["--checkpoint-dir", str(checkpoint), "--max-records-per-trigger", str(max(1, count // 5))]
        return [[sys.executable, "-m", "consumer.spark_predict", *common]]
    group = f"bench-spark-vs-predict-{uuid.uuid4().hex[:8]}"
    predict = [sys.executable, "-m", "consumer.predict", *common, "--group-id", group, "--idle-timeout", "2"]
    return [[*predict, "--instance", f"bench-{n}"] for n in range(PROCESSES[scorer])]


def measure(argvs: list[list[str]], scorer: str, count: int, scratch: Path) -> dict:
    """One run of a scorer's processes, started together: its own rate, end-to-end rate and CPU seconds (each
    process's tree, reaped with ``os.wait4``; summed, and each in ``cpu_s_each``)."""
    summary = SUMMARY["spark" if scorer == "spark" else "predict"]
    started = time.perf_counter()
    running = []
    for n, argv in enumerate(argvs):
        out, err = (open(scratch / f"{scorer}-{n}.{name}", "w+") for name in ("out", "err"))
        process = subprocess.Popen(argv, cwd=REPO_ROOT, stdout=out, stderr=err, text=True)
        timer = threading.Timer(TIMEOUT_S, process.kill)  # a hung scorer fails the run instead of the benchmark
        timer.start()
        running.append((process, timer, out, err))
    finished = []
    for process, timer, out, err in running:
        _, status, usage = os.wait4(process.pid, 0)  # its rusage alone, unlike RUSAGE_CHILDREN
        timer.cancel()
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        finished.append((process.returncode, out.read(), err.read(), usage.ru_utime + usage.ru_stime))
        out.close(), err.close()
    wall = time.perf_counter() - started
    scored, spans, rates = [], [], []
    for code, stdout, stderr, _ in finished:
        found = summary.search(stdout)
        if code != 0 or not found:
            raise RuntimeError(f"{scorer} failed ({code}): {(stderr or stdout).strip()[-400:]}")
        scored.append(int(found.group(1)))
        spans.append(float(found.group(2)))
        rates.append(float(found.group(3).replace(",", "")))
    if sum(scored) < count:
        raise RuntimeError(f"{scorer} scored {sum(scored)} ({' + '.join(map(str, scored))}) of {count} records")
    cpu_each = [cpu for *_, cpu in finished]
    own_rate = rates[0] if len(rates) == 1 else sum(scored) / max(spans)
    figures = {"own_rate": own_rate, "wall_s": wall, "rate": count / wall, "cpu_s": sum(cpu_each)}
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
    args = parse(p, argv)
    cfg = settings(args)
    partitions = max(MIN_PARTITIONS, cfg.partitions)
    suffix = uuid.uuid4().hex[:8]
    topic = f"bench.spark.in.{suffix}"
    outs = {scorer: f"bench.spark.out.{scorer}.{suffix}" for scorer in SCORERS}
    runs: dict[str, list[dict[str, float]]] = {scorer: [] for scorer in SCORERS}
    ensure_topics(dataclasses.replace(cfg, partitions=partitions), (topic, *outs.values()))
    try:
        fill(cfg, topic, args.records, partitions)
        with tempfile.TemporaryDirectory(prefix="spark-bench-") as scratch:
            model = untrained_model(Path(scratch))
            for rep in range(args.reps):
                for scorer in SCORERS:  # alternated, so a load change hits both alike
                    argvs = commands(scorer, cfg, topic, outs[scorer], model, Path(scratch), args.records)
                    runs[scorer].append(measure(argvs, scorer, args.records, Path(scratch)))
                    r = runs[scorer][-1]
                    print(
                        f"rep {rep + 1} {scorer:<8} {r['own_rate']:>8,.0f} records/s own, "
                        f"{r['rate']:>8,.0f} end to end ({r['wall_s']:.1f} s wall, {cpu_text(r)} CPU s)"
                        + (f", records {' + '.join(map(str, r['scored_each']))}" if "scored_each" in r else ""),
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
    for scorer in SCORERS:
        if PROCESSES[scorer] > 1:  # each process's CPU seconds, the median over the reps of each
            each = zip(*(r["cpu_s_each"] for r in runs[scorer]), strict=True)
            figures[scorer]["cpu_s_each"] = [summarise(list(values)) for values in each]
            scored = zip(*(r["scored_each"] for r in runs[scorer]), strict=True)
            figures[scorer]["records_each"] = [summarise(list(values)) for values in scored]
    rows = []
    for scorer in SCORERS:
        f = figures[scorer]
        cpu_per_k = f["cpu_s"]["median"] / args.records * 1000
        medians = {"cpu_s": f["cpu_s"]["median"]}
        if "cpu_s_each" in f:
            medians["cpu_s_each"] = [each["median"] for each in f["cpu_s_each"]]
        rows.append(
            [
                LABELS[scorer],
                f"{f['own_rate']['median']:,.0f}",
                f"{f['rate']['median']:,.0f}",
                f"{f['wall_s']['median']:.1f}",
                cpu_text(medians),
                f"{cpu_per_k:.2f}",
            ]
        )
    print_table(
        f"Scoring {args.records:,} records, median of {args.reps}",
        ["scorer", "own records/s", "end-to-end records/s", "wall s", "CPU s (each process)", "CPU s / 1k records"],
        rows,
    )
    results = {"records": args.records, "partitions": partitions, "reps": args.reps, "scorers": figures, "runs": runs}
    return record(args, "spark", results)


if __name__ == "__main__":
    sys.exit(run(main))
