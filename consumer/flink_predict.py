"""``python -m consumer.flink_predict [--follow]``: score the test topic with a PyFlink job, exactly once.

Flink's Kafka connector reads ``--topic`` (default the test topic) read_committed, from the group's committed
offsets (a new group: the earliest), with the record key and headers; a vectorised Python function
(``consumer.learning.flink_scoring.ScoreBatches``) gets the records a batch at a time (what arrived within 20 ms,
at most 2,048), decodes them with the project's decode (``consumer.records.codec``) and scores them in one model
call with the model store's newest version (loaded once in ``open()``, again when the store names a newer one);
Flink's Kafka sink writes the records ``consumer.predict`` writes (``consumer.records.predictions``: same key,
same value, a tombstone for a deleted row, nothing for a malformed record) to ``--predictions-topic`` with
``DeliveryGuarantee.EXACTLY_ONCE``: one Kafka transaction a checkpoint (every ``--checkpoint-interval``, 0.25 s),
committed when the checkpoint completes. Debezium's JDBC sink upserts them into ``mnist_predictions``.

The job is one SQL statement over the Kafka SQL connector's tables (the same ``KafkaSource`` and ``KafkaSink``):
PyFlink's DataStream ``KafkaSource`` hands Python the value alone (no key, no headers), and its ``KafkaSink`` has
no serializer that writes a null value (a tombstone).

Checkpoints are retained in ``--checkpoint-dir`` (default ``$STACK_HOME/flink-checkpoints/<topic>``); a run
restores the newest complete one (``execution.savepoint.path``), so a job killed anywhere resumes where its last
checkpoint stood, and the transactions of that checkpoint are committed, the later ones aborted. Without
``--follow`` the run ends once no record came for ``--idle-timeout`` seconds; with it, at Ctrl-C. Either way it
stops with a savepoint (in ``<checkpoint dir>/savepoints``): the last transaction is committed, and the next run
resumes from there. A failure ends the run (no restart strategy: a restart is the next run's, from its
checkpoint) with one ``error:`` line, exit 1.

Nothing is downloaded at run time: the connector jar comes from ``python -m stack.assemble --part flink``
(``$STACK_HOME/flink-jars``). Exit codes: 0 done, 1 failure with one line on stderr, 2 usage.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from consumer.cli import CommandError, add_engine_flags, add_group_flag, apply_dataset, open_model
from consumer.kafka.client import KafkaClient, SourceError
from consumer.learning.flink_scoring import ARROW_BATCH, ScoreBatches, read_counts
from consumer.records.predictions import describe_malformed
from stack.assemble import flink_jars
from stack.assembled import flink_jars_dir
from stack.config import REPO_ROOT, ConfigError, StackConfig
from stack.contract import MNIST
from stack.errors import first_line

SETUP_HINT = "make setup-flink (the flink extra in .venv-flink, and python -m stack.assemble --part flink)"
#: The flink extra's Python (make setup-flink), which runs this command; FLINK_PYTHON names another.
FLINK_PYTHON = Path(os.environ.get("FLINK_PYTHON", REPO_ROOT / ".venv-flink" / "bin" / "python"))
#: Below the broker's transaction.max.timeout.ms (15 min): Flink's default (1 h) is refused by the broker. It bounds
#: how long a killed job may stay down before the broker aborts the transactions its last checkpoint holds.
TRANSACTION_TIMEOUT_MS = 10 * 60 * 1000
#: How long the Python operator buffers records before it hands them to the worker (Flink's default, 1 s, adds up
#: to a second to every prediction); a bundle also ends at each checkpoint.
BUNDLE_MS = 20
_CHECKPOINT = re.compile(r"chk-(\d+)")
SAVEPOINTS = "savepoints"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m consumer.flink_predict",
        description="Score the test topic with a PyFlink job (Kafka source, a Python function, Kafka sink, exactly "
        f"once) and publish one prediction a row to the dataset's predictions topic ({MNIST.predictions_topic} for "
        "mnist), as consumer.predict does.",
    )
    add_engine_flags(parser, "flink", "once idle for --idle-timeout seconds")
    add_group_flag(parser, "flink-predict", "a new group starts at the earliest offset; a checkpoint overrides it")
    parser.add_argument(
        "--jobmanager",
        metavar="HOST:PORT",
        help="submit to a Flink cluster's REST endpoint instead of running a local mini-cluster (the cluster needs "
        "the flink extra's Python, the project and the connector jar at the same paths)",
    )
    parser.add_argument(
        "--checkpoint-interval",
        type=float,
        default=0.25,
        help="seconds between checkpoints (default 0.25): the sink commits its transaction at each, so a prediction "
        "becomes visible to read_committed readers (and the JDBC sink) within about this long",
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=5.0,
        help="without --follow: end once no record came for this many seconds (default 5; at least 2: the worker "
        "reports its counts once a second)",
    )
    return parser


def flink_missing(cfg: StackConfig) -> str | None:
    """Why this command cannot run from FLINK_PYTHON here (``make setup-flink`` not run), or None: for the tests and
    benchmarks, which run in the project's own environment and start it in the flink extra's."""
    if not FLINK_PYTHON.is_file():
        return f"no {FLINK_PYTHON}: pyflink is not installed ({SETUP_HINT})"
    found = subprocess.run([FLINK_PYTHON, "-c", "import pyflink"], capture_output=True, check=False)
    if found.returncode != 0:
        return f"pyflink is not installed in {FLINK_PYTHON} ({SETUP_HINT})"
    return None if flink_jars(cfg) else f"no Flink Kafka connector jar in {flink_jars_dir(cfg)} ({SETUP_HINT})"


def jobmanager_address(value: str) -> tuple[str, int]:
    """``HOST:PORT`` of ``--jobmanager``; ValueError when it is not one.

    >>> jobmanager_address("flink.example:8081")
    ('flink.example', 8081)
    >>> jobmanager_address("flink.example")
    Traceback (most recent call last):
    ...
    ValueError: --jobmanager must be HOST:PORT, not 'flink.example'
    """
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--jobmanager must be HOST:PORT, not {value!r}")
    return host, int(port)


def newest_checkpoint(directory: Path) -> Path | None:
    """The newest complete restore point under ``directory``, by the time its ``_metadata`` was written: a
    checkpoint of an earlier run's job (``<job id>/chk-N``; one cut short by a kill has no ``_metadata``) or the
    savepoint a run stopped with (``savepoints/savepoint-*``); None when there is none.

    >>> root = Path(tempfile.mkdtemp())
    >>> for name in ("a/chk-3", "a/chk-4", "b/chk-5"):
    ...     (root / name).mkdir(parents=True)
    >>> _ = (root / "a/chk-3/_metadata").write_bytes(b"x"); _ = (root / "a/chk-4/_metadata").write_bytes(b"x")
    >>> newest_checkpoint(root).relative_to(root).as_posix()
    'a/chk-4'
    >>> newest_checkpoint(root / "none") is None
    True
    """
    found = [meta.parent for meta in directory.glob("*/chk-*/_metadata") if _CHECKPOINT.fullmatch(meta.parent.name)]
    found += [meta.parent for meta in directory.glob(f"{SAVEPOINTS}/savepoint-*/_metadata")]
    if not found:
        return None
    return max(found, key=lambda point: point.joinpath("_metadata").stat().st_mtime)


def flink_config(args: argparse.Namespace, jars: list[Path], checkpoints: Path, restore: Path | None) -> dict:
    """The job's Flink configuration: checkpoints every ``--checkpoint-interval`` retained in ``checkpoints``, no
    restart strategy (a failure ends the run, never retries forever), the venv's Python for the workers, the
    connector jar.

    >>> args = build_parser().parse_args(["--jobmanager", "h:8081"])
    >>> config = flink_config(args, [Path("/j/k.jar")], Path("/c"), Path("/c/x/chk-2"))
    >>> config["restart-strategy.type"], config["execution.target"], config["execution.savepoint.path"]
    ('none', 'remote', 'file:///c/x/chk-2')
    """
    config = {
        "pipeline.jars": ";".join(jar.resolve().as_uri() for jar in jars),
        "python.executable": sys.executable,
        "python.client.executable": sys.executable,
        "parallelism.default": "1",
        "restart-strategy.type": "none",
        "execution.checkpointing.interval": f"{round(args.checkpoint_interval * 1000)} ms",
        "python.fn-execution.bundle.time": str(BUNDLE_MS),
        "python.fn-execution.arrow.batch.size": str(ARROW_BATCH),
        "execution.checkpointing.mode": "EXACTLY_ONCE",
        "execution.checkpointing.dir": checkpoints.resolve().as_uri(),
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
        "execution.checkpointing.num-retained": "1",
        "state.backend.type": "hashmap",
        "rest.bind-address": "127.0.0.1",
        "rest.port": "0",
    }
    if restore is not None:
        config["execution.savepoint.path"] = restore.resolve().as_uri()
    if args.jobmanager:
        host, port = jobmanager_address(args.jobmanager)
        config.update({"execution.target": "remote", "rest.address": host, "rest.port": str(port)})
    return config


def kafka_table(name: str, columns: str, topic: str, servers: str, options: dict[str, str]) -> str:
    """A Kafka SQL connector table on ``topic`` whose key ``k`` and value ``v`` are raw bytes, with ``options``."""
    options = {
        "connector": "kafka",
        "topic": topic,
        "properties.bootstrap.servers": servers,
        "key.format": "raw",
        "key.fields": "k",
        "value.format": "raw",
        "value.fields-include": "EXCEPT_KEY",
        **options,
    }
    quoted = ",\n  ".join(f"'{key}' = '{value.replace(chr(39), chr(39) * 2)}'" for key, value in options.items())
    return f"CREATE TEMPORARY TABLE {name} ({columns}) WITH (\n  {quoted}\n)"


def source_table(args: argparse.Namespace, servers: str) -> str:
    """The Kafka source as a table: key, value and headers as bytes, read_committed, from the group's offsets.

    >>> ddl = source_table(build_parser().parse_args(["--topic", "t", "--group-id", "g"]), "k:9092")
    >>> "'properties.isolation.level' = 'read_committed'" in ddl, "'properties.group.id' = 'g'" in ddl
    (True, True)
    """
    options = {
        "properties.group.id": args.group_id,
        "properties.isolation.level": "read_committed",
        "scan.startup.mode": "group-offsets",
        "properties.auto.offset.reset": "earliest",
    }
    columns = "k BYTES, v BYTES, headers MAP<STRING, BYTES> METADATA VIRTUAL"
    return kafka_table("records", columns, args.topic, servers, options)


def sink_table(args: argparse.Namespace, servers: str) -> str:
    """The Kafka sink as a table: key and value as bytes (a null value is a tombstone), exactly once.

    >>> ddl = sink_table(build_parser().parse_args(["--predictions-topic", "p", "--group-id", "g"]), "k:9092")
    >>> "'sink.delivery-guarantee' = 'exactly-once'" in ddl, "'sink.transactional-id-prefix' = 'g-tx'" in ddl
    (True, True)
    """
    options = {
        "sink.delivery-guarantee": "exactly-once",
        # One prefix a group: a restart finds and aborts what its predecessor left open under it.
        "sink.transactional-id-prefix": f"{args.group_id}-tx",
        "properties.transaction.timeout.ms": str(TRANSACTION_TIMEOUT_MS),
    }
    return kafka_table("predictions", "k BYTES, v BYTES", args.predictions_topic, servers, options)


def default_checkpoint(cfg: StackConfig, topic: str) -> Path:
    """Where a topic's scoring resumes unless ``--checkpoint-dir`` says otherwise.

    >>> from dataclasses import replace
    >>> default_checkpoint(replace(StackConfig.from_env({}), home=Path("/s")), "tf.public.mnist_test").as_posix()
    '/s/flink-checkpoints/tf.public.mnist_test'
    """
    return cfg.home / "flink-checkpoints" / topic


def _checks(args: argparse.Namespace) -> tuple[object, KafkaClient, StackConfig, list[Path], str]:
    """What must hold before Flink starts, in the order the user hears of it; ``CommandError`` else."""
    try:
        dataset = apply_dataset(args)
        client = KafkaClient.from_args(args)
        cfg = StackConfig.from_env()
        if args.jobmanager:
            jobmanager_address(args.jobmanager)
    except (ConfigError, ValueError) as error:
        raise CommandError(f"error: {error}", 2) from None
    try:
        import pyflink  # noqa: F401, PLC0415 - the flink extra, optional: checked here to say so in one line
    except ImportError:
        raise CommandError(f"error: pyflink is not installed in {sys.executable}; run: {SETUP_HINT}", 1) from None
    jars = flink_jars(cfg)
    if jars is None:
        raise CommandError(f"error: no Flink Kafka connector jar in {flink_jars_dir(cfg)}; run: {SETUP_HINT}", 1)
    label = open_model(args.model, dataset).label  # fails here, in one line, rather than in the worker
    try:
        client.check_topic(args.topic)
        client.check_topic(args.predictions_topic)
    except SourceError as error:
        raise CommandError(f"error: {error}", 1) from None
    return dataset, client, cfg, jars, label


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not (math.isfinite(args.idle_timeout) and args.idle_timeout >= 2):
        print("error: --idle-timeout must be a finite number >= 2", file=sys.stderr)
        return 2
    if not (math.isfinite(args.checkpoint_interval) and 0.1 <= args.checkpoint_interval <= 600):
        print("error: --checkpoint-interval must be between 0.1 and 600 seconds", file=sys.stderr)
        return 2
    try:
        dataset, client, cfg, jars, label = _checks(args)
    except CommandError as error:
        print(error, file=sys.stderr)
        return error.code
    checkpoints = (args.checkpoint_dir or default_checkpoint(cfg, args.topic)).resolve()
    checkpoints.mkdir(parents=True, exist_ok=True)
    try:
        return _run(args, client, jars, checkpoints, label, dataset)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _tables(config: dict):
    """A streaming TableEnvironment with the job's configuration."""
    # The Python worker must import the project from any working directory.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    from pyflink.common import Configuration  # noqa: PLC0415 - the flink extra, optional
    from pyflink.datastream import StreamExecutionEnvironment  # noqa: PLC0415 - the flink extra, optional
    from pyflink.table import StreamTableEnvironment  # noqa: PLC0415 - the flink extra, optional

    configuration = Configuration()
    for key, value in config.items():
        configuration.set_string(key, value)
    # Through the execution environment: it is what takes the checkpoint, restore and jar settings for the job.
    return StreamTableEnvironment.create(StreamExecutionEnvironment.get_execution_environment(configuration))


def scoring_query(names) -> str:
    """The job's one statement: each record's key, value and the headers that name its row (``names``: the
    dataset's contract) through ``score``, and the records it keeps into the predictions table (the sink).

    >>> print(scoring_query(MNIST))
    INSERT INTO predictions SELECT s.k, s.v FROM (SELECT score(k, v, headers['mnist.table'], headers['mnist.id'], \
headers['__source_ts_ms'], headers['__op']) AS s FROM records) WHERE s.keep
    """
    columns = ", ".join(f"headers['{name}']" for name in header_names(names))
    scored = f"SELECT score(k, v, {columns}) AS s FROM records"
    return f"INSERT INTO predictions SELECT s.k, s.v FROM ({scored}) WHERE s.keep"


def header_names(names) -> list[str]:
    """The headers ``plan_batch`` reads: table, id, commit time, operation."""
    return [names.table_header, names.id_header, names.commit_header, names.op_header]


def _submit(args: argparse.Namespace, servers: str, config: dict, counts_dir: Path, dataset):
    """The job, built and submitted: Kafka source table -> ``ScoreBatches`` -> Kafka sink table. Its JobClient."""
    from pyflink.table import DataTypes  # noqa: PLC0415 - the flink extra, optional
    from pyflink.table.udf import udf  # noqa: PLC0415 - the flink extra, optional

    tables = _tables(config)
    tables.execute_sql(source_table(args, servers))
    tables.execute_sql(sink_table(args, servers))
    # The workers read the description themselves: a path must not depend on their working directory.
    described = args.dataset if Path(args.dataset).suffix != ".toml" else str(Path(args.dataset).resolve())
    names = header_names(dataset.contract)
    scorer = ScoreBatches(str(args.model.resolve()), described, str(counts_dir), names)
    fields = [DataTypes.FIELD("k", DataTypes.BYTES()), DataTypes.FIELD("v", DataTypes.BYTES())]
    fields.append(DataTypes.FIELD("keep", DataTypes.BOOLEAN()))
    tables.create_temporary_function("score", udf(scorer, result_type=DataTypes.ROW(fields), func_type="pandas"))
    return tables.execute_sql(scoring_query(dataset.contract)).get_job_client()


def _run(args: argparse.Namespace, kafka: KafkaClient, jars: list[Path], checkpoints: Path, label: str, dataset) -> int:
    started, servers = time.perf_counter(), kafka.servers
    restore = newest_checkpoint(checkpoints)
    counts_dir = Path(tempfile.mkdtemp(prefix="flink-predict-counts-"))
    try:
        client = _submit(args, servers, flink_config(args, jars, checkpoints, restore), counts_dir, dataset)
        where = f"the Flink cluster at {args.jobmanager}" if args.jobmanager else "a local Flink mini-cluster"
        print(
            f"predicting {args.topic} -> {args.predictions_topic} with {args.model} {label} on {where} "
            f"(group {args.group_id}, checkpoints {checkpoints}, "
            f"{f'restored from {restore.parent.name}/{restore.name}' if restore else 'no checkpoint to restore'}); "
            f"{'Ctrl-C to stop' if args.follow else 'ends at the topic end'}",
            flush=True,
        )
        graph_seconds = time.perf_counter() - started
        job = checkpoints / str(client.get_job_id())
        caught_up = lambda: any(job.glob("chk-*")) and kafka.nothing_to_read(args.group_id, args.topic)  # noqa: E731
        failure = _wait(
            client, counts_dir, None if args.follow else args.idle_timeout, checkpoints / SAVEPOINTS, caught_up
        )
        counts = read_counts(counts_dir)
    finally:
        shutil.rmtree(counts_dir, ignore_errors=True)
    if failure is not None:
        print(f"error: the Flink job failed: {failure}", file=sys.stderr)
        return 1
    _prune(checkpoints)
    print(_summary(counts, time.perf_counter() - started, graph_seconds, label), flush=True)
    return 0


def _wait(client, counts_dir: Path, idle: float | None, savepoints: Path, caught_up) -> str | None:
    """Print a progress line when the counts move, until the job ends: by itself (a failure), at Ctrl-C, or once
    the worker has been idle for ``idle`` seconds (None: never). The failure's root cause, or None.

    PyFlink opens the Python function with its first records: a run that has none to read (its checkpoint
    covered the whole topic) never opens it. Until it has, ``caught_up()`` says whether the job is running and
    finds nothing left to read; only then does the idle time count (the worker's start, TensorFlow's included,
    may well take longer than ``idle``)."""
    result, shown, moved = client.get_job_execution_result(), -1, time.monotonic()
    try:
        while not result.done():
            time.sleep(0.5)
            if not any(counts_dir.glob("*.json")):
                if idle is None or not caught_up():
                    moved = time.monotonic()
                elif time.monotonic() - moved >= idle:
                    _stop(client, savepoints)
                continue
            counts = read_counts(counts_dir)
            if counts["records"] != shown:
                shown, moved = counts["records"], time.monotonic()
                print(_progress(counts), flush=True)
            elif idle is not None and time.monotonic() - moved >= idle:
                _stop(client, savepoints)
        result.result()
    except KeyboardInterrupt:
        _stop(client, savepoints)
        result.result()
    except Exception as error:  # noqa: BLE001 - a Py4JJavaError carries the job's failure: its root cause is the line
        return root_cause(error)
    return None


def _stop(client, savepoints: Path) -> None:
    """Stop the job with a savepoint: the sink commits its open transaction, and the next run resumes from it."""
    from pyflink.java_gateway import get_gateway  # noqa: PLC0415 - the flink extra, optional

    canonical = get_gateway().jvm.org.apache.flink.core.execution.SavepointFormatType.CANONICAL
    client._j_job_client.stopWithSavepoint(False, savepoints.resolve().as_uri(), canonical).get()


def root_cause(error: Exception) -> str:
    """The deepest cause's first line of a Java exception (py4j), else of ``error``.

    >>> root_cause(ValueError("boom\\n at x"))
    'boom'
    """
    java = getattr(error, "java_exception", None)
    if java is None:
        return first_line(error)
    while java.getCause() is not None and java.getCause() != java:
        java = java.getCause()
    return f"{java.getClass().getSimpleName()}: {first_line(str(java.getMessage()))}"


def _prune(checkpoints: Path) -> None:
    """Delete every restore point but the newest after a run that ended well: every run is a new job with a
    directory of its own, and only the newest checkpoint or savepoint is ever restored."""
    newest = newest_checkpoint(checkpoints)
    if newest is None:
        return
    keep = newest if newest.parent.name == SAVEPOINTS else newest.parent
    for directory in [*checkpoints.iterdir(), *checkpoints.glob(f"{SAVEPOINTS}/*")]:
        if directory.is_dir() and directory.name != SAVEPOINTS and directory != keep:
            shutil.rmtree(directory, ignore_errors=True)


def _progress(counts: dict) -> str:
    """One line of progress: records scored so far and what became of them.

    >>> from collections import Counter
    >>> _progress({"records": 5, "predicted": 4, "retracted": 0, "malformed": Counter({"x": 1})})
    'records      5  predicted      4  retracted 0  1 malformed: 1 x'
    """
    return (
        f"records {counts['records']:>6}  predicted {counts['predicted']:>6}  retracted {counts['retracted']}  "
        f"{describe_malformed(counts['malformed'])}"
    )


def _summary(counts: dict, seconds: float, graph_seconds: float, label: str) -> str:
    """The last line, in ``consumer.predict``'s words.

    >>> from collections import Counter
    >>> _summary({"records": 10, "predicted": 9, "retracted": 0, "malformed": Counter({"x": 1}), "version": 2},
    ...          4.0, 1.5, "v0001")
    "predicted 9 of 10 records (0 retracted, 1 malformed: 1 x) in 4.0 s with Flink's start (graph 1.5 s): 2.5 \
records/s; model v0002"
    """
    version = f"v{counts['version']:04d}" if counts.get("version") is not None else label
    rate = counts["records"] / seconds if seconds > 0 else 0.0
    return (
        f"predicted {counts['predicted']} of {counts['records']} records ({counts['retracted']} retracted, "
        f"{describe_malformed(counts['malformed'])}) in {seconds:.1f} s with Flink's start (graph "
        f"{graph_seconds:.1f} s): {rate:,.1f} records/s; model {version or 'file'}"
    )


if __name__ == "__main__":
    sys.exit(main())
