"""``python -m consumer.spark_predict [--follow]``: score the test topic with Spark Structured Streaming.

Spark's Kafka source reads ``--topic`` (default the test topic) from the earliest offset with
``kafka.isolation.level=read_committed`` and the record headers; ``mapInPandas``
(``consumer.learning.spark_scoring.score_batches``) decodes each Arrow batch with the NumPy decode
(``consumer.records.codec.decode_batch``) and scores it with the model store's newest version (loaded once a
Python worker, and again only when the store names a newer one); Spark's Kafka sink writes the records
``consumer.predict`` writes (``consumer.records.predictions``: same key, same value; a tombstone for a deleted row,
nothing for a record whose headers name no row) to ``--predictions-topic``, which Debezium's JDBC sink upserts into
``mnist_predictions`` by ``(source_table, id)``.

Spark's sink is at least once: a run killed between writing a micro-batch and committing it in the checkpoint
writes that micro-batch again on restart, and the sink's upsert by key makes the table end with one row a source
row all the same. ``--checkpoint-dir`` (default ``$STACK_HOME/spark-checkpoints/<topic>``) is where a restart
resumes. Records the checkpoint expects but the topic lost (retention, compaction) fail the query
(``failOnDataLoss=true``) unless ``--allow-data-loss`` says to skip them. Without ``--follow`` the run scores
what the topic holds (``trigger(availableNow=True)``) and ends; with it a micro-batch every ``--interval``
seconds until Ctrl-C.

Nothing is downloaded at run time: the Kafka connector jars come from ``python -m stack.assemble --part spark``
(``$STACK_HOME/spark-jars``), passed with ``spark.jars``. Exit codes: 0 done, 1 failure with one line on stderr
(pyspark or jars missing, model, broker, query), 2 usage.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

from consumer.cli import CommandError, add_engine_flags, apply_dataset, kafka_client_of, open_model
from consumer.kafka.client import SourceError
from consumer.learning.spark_scoring import score_batches
from stack.assemble import spark_jars
from stack.assembled import spark_jars_dir
from stack.config import REPO_ROOT, ConfigError, StackConfig
from stack.contract import MNIST
from stack.errors import first_line

SETUP_HINT = "pip install -e '.[spark]' && python -m stack.assemble --part spark (make setup-spark)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m consumer.spark_predict",
        description="Score the test topic with Spark Structured Streaming (Kafka source, mapInPandas, Kafka sink) "
        f"and publish one prediction a row to the dataset's predictions topic ({MNIST.predictions_topic} for mnist), "
        "as consumer.predict does.",
    )
    add_engine_flags(parser, "spark", "at the topic's end")
    parser.add_argument("--master", default="local[2]", help="Spark master (default local[2])")
    parser.add_argument(
        "--max-records-per-trigger",
        type=int,
        default=None,
        help="at most this many records a micro-batch (maxOffsetsPerTrigger; default: all there are)",
    )
    parser.add_argument(
        "--interval", type=float, default=1.0, help="seconds between micro-batches with --follow (default 1)"
    )
    parser.add_argument(
        "--allow-data-loss",
        action="store_true",
        help="skip records the checkpoint expects but the topic no longer holds (failOnDataLoss=false) "
        "instead of failing the query",
    )
    return parser


def source_options(args: argparse.Namespace, servers: str) -> dict[str, str]:
    """The Kafka source's options: a range the checkpoint expects but the topic lost fails the query unless
    ``--allow-data-loss`` (rows left unscored without a word are worse than a stopped run).

    >>> args = build_parser().parse_args(["--max-records-per-trigger", "5"])
    >>> options = source_options(args, "k:9092")
    >>> options["failOnDataLoss"], options["maxOffsetsPerTrigger"], options["kafka.isolation.level"]
    ('true', '5', 'read_committed')
    >>> source_options(build_parser().parse_args(["--allow-data-loss"]), "k:9092")["failOnDataLoss"]
    'false'
    """
    options = {
        "kafka.bootstrap.servers": servers,
        "subscribe": args.topic,
        "startingOffsets": "earliest",
        "kafka.isolation.level": "read_committed",
        "includeHeaders": "true",
        "failOnDataLoss": "false" if args.allow_data_loss else "true",
    }
    if args.max_records_per_trigger:
        options["maxOffsetsPerTrigger"] = str(args.max_records_per_trigger)
    return options


def failure_reason(description: str, topic: str) -> str:
    """The one line a failed query prints: a lost range named as such, with what to do.

    >>> failure_reason('Some data may have been lost ... set the source option "failOnDataLoss" to "false".', "t")[:40]
    'records of t the checkpoint expects are '
    >>> failure_reason("boom\\n  at x", "t")
    'the streaming query failed: boom'
    """
    if "failOnDataLoss" in description:
        return (
            f"records of {topic} the checkpoint expects are gone from the topic (retention or compaction): "
            "rerun with --allow-data-loss to skip them, or with a new --checkpoint-dir to rescore the topic"
        )
    return f"the streaming query failed: {first_line(description)}"


def default_checkpoint(cfg: StackConfig, topic: str) -> Path:
    """Where a topic's scoring resumes unless ``--checkpoint-dir`` says otherwise.

    >>> from dataclasses import replace
    >>> default_checkpoint(replace(StackConfig.from_env({}), home=Path("/s")), "tf.public.mnist_test").as_posix()
    '/s/spark-checkpoints/tf.public.mnist_test'
    """
    return cfg.home / "spark-checkpoints" / topic


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not (math.isfinite(args.interval) and args.interval > 0) or (
        args.max_records_per_trigger is not None and args.max_records_per_trigger < 1
    ):
        print("error: --interval must be a finite number > 0 and --max-records-per-trigger >= 1", file=sys.stderr)
        return 2
    try:
        dataset = apply_dataset(args)
        client = kafka_client_of(args)
        cfg = StackConfig.from_env()
    except CommandError as error:
        print(error, file=sys.stderr)
        return error.code
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        import pyarrow  # noqa: F401, PLC0415 - the spark extra, optional: mapInPandas needs it
        import pyspark  # noqa: F401, PLC0415 - the spark extra, optional: checked here to say so in one line
    except ImportError as error:
        print(f"error: {error.name} is not installed; run: {SETUP_HINT}", file=sys.stderr)
        return 1
    jars = spark_jars(cfg)
    if jars is None:
        print(f"error: no Spark Kafka connector jars in {spark_jars_dir(cfg)}; run: {SETUP_HINT}", file=sys.stderr)
        return 1
    try:
        label = open_model(args.model, dataset).label  # fails here, in one line, rather than in a worker
        client.check_topic(args.topic)
        client.check_topic(args.predictions_topic)
    except CommandError as error:
        print(error, file=sys.stderr)
        return error.code
    except SourceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    checkpoint = args.checkpoint_dir or default_checkpoint(cfg, args.topic)
    try:
        return _run(args, client.servers, jars, checkpoint, label, dataset)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _session(master: str, jars: list[Path], name: str = "mnist"):
    # The workers must run this venv's python (TensorFlow, the project) and find the project from any cwd.
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    from pyspark.sql import SparkSession  # noqa: PLC0415 - the spark extra, optional; its JVM starts in seconds

    return (
        SparkSession.builder.master(master)
        .appName(f"{name}-spark-predict")
        .config("spark.jars", ",".join(str(j) for j in jars))
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.streaming.numRecentProgressUpdates", "10000")
        # Arrow batches of the decode's sweet spot and more: one model call a few hundred records.
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "1024")
        .config("spark.driver.extraJavaOptions", "-Dlog4j2.level=WARN")
        .getOrCreate()
    )


def _run(args: argparse.Namespace, servers: str, jars: list[Path], checkpoint: Path, label: str, dataset) -> int:
    started = time.perf_counter()
    spark = _session(args.master, jars, dataset.name)
    spark.sparkContext.setLogLevel("ERROR")
    query = _start_query(spark, args, servers, checkpoint, dataset)
    print(
        f"predicting {args.topic} -> {args.predictions_topic} with {args.model} {label} on Spark {args.master} "
        f"(checkpoint {checkpoint}); {'Ctrl-C to stop' if args.follow else 'ends at the topic end'}",
        flush=True,
    )
    from pyspark.errors import StreamingQueryException  # noqa: PLC0415 - the spark extra, optional

    seen = 0
    try:
        while query.isActive:
            query.awaitTermination(1.0)
            seen = _print_progress(query, seen)
    except KeyboardInterrupt:
        query.stop()
    except StreamingQueryException:
        pass  # awaitTermination raises the query's failure; query.exception() below reports it in one line
    seen = _print_progress(query, seen)
    failure = query.exception()
    if failure is not None:
        description = str(failure.desc if hasattr(failure, "desc") else failure)
        print(f"error: {failure_reason(description, args.topic)}", file=sys.stderr)
        _stop(spark)
        return 1
    progress = [p for p in query.recentProgress if p.get("numInputRows")]
    _stop(spark)
    print(
        f"{_summary(progress)}; {time.perf_counter() - started:.1f} s with Spark's start; model {label or args.model}",
        flush=True,
    )
    return 0


def _start_query(spark, args: argparse.Namespace, servers: str, checkpoint: Path, dataset):
    """The streaming query, started: Kafka source, ``score_batches`` in ``mapInPandas``, Kafka sink."""
    reader = spark.readStream.format("kafka").options(**source_options(args, servers))
    model = str(args.model.resolve())
    # The workers read the description themselves: a path must not depend on their working directory.
    described = args.dataset if Path(args.dataset).suffix != ".toml" else str(Path(args.dataset).resolve())
    predictions = (
        reader.load()
        .select("key", "value", "headers")
        .mapInPandas(lambda batches: score_batches(model, batches, described), schema="key binary, value binary")
    )
    writer = (
        predictions.writeStream.format("kafka")
        .option("kafka.bootstrap.servers", servers)
        .option("topic", args.predictions_topic)
        .option("checkpointLocation", str(checkpoint))
        .queryName(f"{dataset.name}_spark_predict")
    )
    writer = (
        writer.trigger(processingTime=f"{args.interval:g} seconds")
        if args.follow
        else writer.trigger(availableNow=True)
    )
    return writer.start()


def _summary(progress: list[dict]) -> str:
    """Records, micro-batches and rates of the progress reports that read records.

    >>> _summary([{"numInputRows": 10, "durationMs": {"triggerExecution": 2000}},
    ...           {"numInputRows": 30, "durationMs": {"triggerExecution": 1000}}])
    'scored 40 records in 2 micro-batches, 3.0 s: 13.3 records/s (after the first micro-batch 30.0 records/s)'
    """
    records = sum(p["numInputRows"] for p in progress)
    batch_seconds = sum(p["durationMs"].get("triggerExecution", 0) for p in progress) / 1000
    rate = records / batch_seconds if batch_seconds > 0 else 0.0
    # The first micro-batch also starts the Python workers and loads the model in each: the warm rate leaves it out.
    warm = progress[1:]
    warm_seconds = sum(p["durationMs"].get("triggerExecution", 0) for p in warm) / 1000
    warm_rate = f"{sum(p['numInputRows'] for p in warm) / warm_seconds:,.1f}" if warm_seconds > 0 else "n/a"
    return (
        f"scored {records} records in {len(progress)} micro-batches, {batch_seconds:.1f} s: {rate:,.1f} records/s "
        f"(after the first micro-batch {warm_rate} records/s)"
    )


def _stop(spark) -> None:
    """Stop Spark and wait for its JVM to end (closing its stdin ends it), so that it is reaped: its CPU time
    then counts in the parent's ``RUSAGE_CHILDREN`` (bench/spark_bench.py) and no JVM outlives the command."""
    proc = getattr(spark.sparkContext._gateway, "proc", None)
    spark.stop()
    if proc is not None:
        proc.stdin.close()
        try:
            proc.wait(timeout=30)
        except Exception:  # noqa: BLE001 - a JVM that does not end in time ends with this process
            pass


def _print_progress(query, seen: int) -> int:
    """One line a micro-batch that read records; the number of progress reports printed so far."""
    progress = query.recentProgress
    for report in progress[seen:]:
        if report.get("numInputRows"):
            seconds = report["durationMs"].get("triggerExecution", 0) / 1000
            print(f"batch {report['batchId']:>5}  records {report['numInputRows']:>6}  {seconds:.1f} s", flush=True)
    return len(progress)


if __name__ == "__main__":
    sys.exit(main())
