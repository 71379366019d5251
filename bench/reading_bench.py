"""The reading path: records/s from Kafka to decoded batches, every way side by side on the same records.

The benchmark's own table ``public.mnist_bench_reading`` (``bench/tables.py``; the demo tables and topics are
never touched) gets ``--records`` Fashion-MNIST rows (``bench/images.py``: the sample repeated when Fashion-MNIST
is not installed) through the loader's COPY; the running connector writes them to ``tf.public.mnist_bench_reading``
and every reader then reads that topic from the start to the end offsets taken before, in a fresh process pinned
to one CPU (``bench/fresh_process.py``), with a new group, in batches of 1,024. The readers, in each repetition:

* read only: ``kafka-python`` (a plain ``KafkaConsumer`` poll loop, the other Python client; skipped when it
  is not installed) and ``confluent`` (``consumer.kafka.reader.CommittingReader``, the reading half of our path);
* read + decode, no model: ``talk`` (the talk's per-message ``decode_kafka_stream_record`` in a ``tf.data``
  pipeline over the records confluent-kafka read: ``unbatch().map().batch()``, as the talk maps its tfio dataset;
  tfio-free, so only the decode differs), ``tf-batch`` (the same records, ``decode_csv_batch`` a batch), ``ours``
  (``consumer.kafka.batches.open_batches``: confluent-kafka and the NumPy decode), ``ours-commit`` (the same, each
  batch committed as train and evaluate do once the model used it);
* in memory: ``decode_batch`` and ``decode_csv_batch`` on the same records already read, and the TF decode
  called with every batch size 1..64 (its trace count must not grow: one trace for every size).

Time runs from the first request for records to the last batch decoded (connecting, and TensorFlow's trace, are
left out for every reader); CPU seconds (``getrusage``, all threads) over the same span.

    python -m bench.reading_bench                          # 70,000 records, 3 repetitions
    python -m bench.reading_bench --records 300 --reps 1 --no-record
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import sys
import time
import uuid

import numpy as np

from bench import fresh_process
from bench.images import rows as image_rows
from bench.images import source_name
from bench.record import parse, parser, print_table, record, settings, spread, summarise
from bench.tables import bench_table, run
from consumer.cli import quiet_tensorflow
from consumer.kafka.batches import open_batches
from consumer.kafka.client import KafkaClient
from consumer.kafka.reader import CommittingReader, ReadOptions
from consumer.records.codec import decode_batch
from loader.database import connect as pg_connect
from loader.load import bulk_load
from probes.deadline import poll
from probes.topics import end_offsets
from stack.contract import MNIST

MODULE = "bench.reading_bench"
BATCH = 1024
READ_ONLY = ("kafka-python", "confluent")
READ_DECODE = ("talk", "tf-batch", "ours", "ours-commit")
IN_MEMORY = "in-memory"
LABELS = {
    "kafka-python": "read only: kafka-python",
    "confluent": "read only: confluent-kafka (CommittingReader)",
    "talk": "read + decode: talk's decode_kafka_stream_record a message",
    "tf-batch": "read + decode: decode_csv_batch a batch",
    "ours": "read + decode: ours, open_batches (NumPy decode)",
    "ours-commit": "read + decode: ours, and commit a batch",
    "decode_batch": "in memory: decode_batch (NumPy)",
    "decode_csv_batch": "in memory: decode_csv_batch (TF)",
}
TARGETS = {"ours_records_per_s": 50_000, "ours_to_talk": 13.0}


class Clock:
    """Wall and CPU seconds (user + system, every thread of the process) since ``start``."""

    def start(self) -> None:
        self.wall, self.cpu = time.perf_counter(), self._cpu()

    def stop(self, records: int) -> dict[str, float]:
        wall, cpu = time.perf_counter() - self.wall, self._cpu() - self.cpu
        return {"records": records, "seconds": wall, "cpu_seconds": cpu}

    @staticmethod
    def _cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime


Offsets = dict[int, int]


def read_kafka_python(topic: str, servers: str, start: Offsets, until: Offsets, clock: Clock) -> dict[str, float]:
    """kafka-python as a reader of values and keys uses it: assigned partitions, ``poll`` batches."""
    from kafka import KafkaConsumer, TopicPartition  # noqa: PLC0415 - optional (the bench extra): skipped without it

    consumer = KafkaConsumer(
        bootstrap_servers=servers, enable_auto_commit=False, max_partition_fetch_bytes=8 * 1024 * 1024
    )
    consumer.assign([TopicPartition(topic, p) for p in until])
    for p, offset in start.items():
        consumer.seek(TopicPartition(topic, p), offset)
    left, records = sum(until.values()) - sum(start.values()), 0
    clock.start()
    while records < left:
        for batch in consumer.poll(timeout_ms=500, max_records=BATCH).values():
            records += len([(r.value, r.key) for r in batch])
    figures = clock.stop(records)
    consumer.close()
    return figures


def confluent_batches(topic: str, servers: str, start: Offsets, until: Offsets):
    """Our reader (no decode) over ``start``..``until`` with a new group."""
    group = f"reading-bench-{uuid.uuid4().hex[:8]}"
    return CommittingReader(KafkaClient.of(servers), ReadOptions(topic, group, BATCH, None, offsets=start, until=until))


def read_confluent(topic: str, servers: str, start: Offsets, until: Offsets, clock: Clock) -> dict[str, float]:
    reader = confluent_batches(topic, servers, start, until)
    records = 0
    clock.start()
    for batch in reader.batches():
        records += len(batch)
    figures = clock.stop(records)
    reader.close()
    return figures


def read_talk(topic: str, servers: str, start: Offsets, until: Offsets, clock: Clock) -> dict[str, float]:
    import tensorflow as tf  # noqa: PLC0415 - only the processes of the TF readers load TensorFlow

    from consumer.records.tf_decode import decode_kafka_stream_record  # noqa: PLC0415 - imports TensorFlow

    reader = confluent_batches(topic, servers, start, until)
    spec = tf.TensorSpec([None], tf.string)
    batches = tf.data.Dataset.from_generator(
        lambda: ((batch.values, batch.keys) for batch in reader.batches()), output_signature=(spec, spec)
    )
    dataset = batches.unbatch().map(decode_kafka_stream_record).batch(BATCH)  # traced here, before the clock
    records = 0
    clock.start()
    for _, labels in dataset:
        records += int(labels.shape[0])
    figures = clock.stop(records)
    reader.close()
    return figures


def read_tf_batch(topic: str, servers: str, start: Offsets, until: Offsets, clock: Clock) -> dict[str, float]:
    import tensorflow as tf  # noqa: PLC0415 - only the processes of the TF readers load TensorFlow

    from consumer.records.tf_decode import decode_csv_batch  # noqa: PLC0415 - imports TensorFlow

    decode_csv_batch(tf.constant([",".join(["0"] * 784)]), tf.constant(["0"]))  # the one trace, before the clock
    reader = confluent_batches(topic, servers, start, until)
    records = 0
    clock.start()
    for batch in reader.batches():
        _, labels, _ = decode_csv_batch(tf.constant(batch.values), tf.constant(batch.keys))
        records += int(labels.shape[0])
    figures = clock.stop(records)
    reader.close()
    return figures


def read_ours(
    topic: str, servers: str, start: Offsets, until: Offsets, clock: Clock, commit: bool = False
) -> dict[str, float]:
    """Our path; with ``commit``, each batch's offsets committed as train and evaluate do once the model used it
    (a round trip to the broker a batch)."""
    group = f"reading-bench-{uuid.uuid4().hex[:8]}"
    stream = open_batches(KafkaClient.of(servers), ReadOptions(topic, group, BATCH, None, offsets=start, until=until))
    records = 0
    clock.start()
    for batch in stream.batches:
        records += len(batch)
        if commit:
            batch.commit()
    return clock.stop(records)


def decode_in_memory(topic: str, servers: str, start: Offsets, until: Offsets, clock: Clock) -> dict[str, object]:
    """Both decodes on the same batches already in memory; then the TF decode with batch sizes 1..64."""
    import tensorflow as tf  # noqa: PLC0415 - only the processes of the TF readers load TensorFlow

    from consumer.records.tf_decode import decode_csv_batch  # noqa: PLC0415 - imports TensorFlow

    reader = confluent_batches(topic, servers, start, until)
    batches = [(batch.values, batch.keys) for batch in reader.batches()]
    reader.close()
    figures: dict[str, object] = {}
    clock.start()
    records = sum(len(decode_batch(values, keys).labels) for values, keys in batches)
    figures["decode_batch"] = clock.stop(records)
    tensors = [(tf.constant(values), tf.constant(keys)) for values, keys in batches]
    decode_csv_batch(*tensors[0])  # the one trace, before the clock
    clock.start()
    records = sum(int(decode_csv_batch(values, keys)[1].shape[0]) for values, keys in tensors)
    figures["decode_csv_batch"] = clock.stop(records)

    values, keys = batches[0]
    sizes = np.random.default_rng(0).permutation(np.arange(1, min(64, len(values)) + 1))
    traces = decode_csv_batch.experimental_get_tracing_count()
    started = time.perf_counter()
    for size in sizes:
        decode_csv_batch(tf.constant(values[:size]), tf.constant(keys[:size]))
    seconds = time.perf_counter() - started
    figures["sizes"] = {
        "sizes": len(sizes),
        "new_traces": decode_csv_batch.experimental_get_tracing_count() - traces,
        "ms_per_call": seconds / len(sizes) * 1000,
    }
    return figures


CHILDREN = {
    "kafka-python": read_kafka_python,
    "confluent": read_confluent,
    "talk": read_talk,
    "tf-batch": read_tf_batch,
    "ours": read_ours,
    "ours-commit": lambda *args: read_ours(*args, commit=True),
    IN_MEMORY: decode_in_memory,
}


def child(reader: str, topic: str, servers: str, offsets: dict[str, dict[str, int]]) -> None:
    quiet_tensorflow()
    cpu = fresh_process.pin_to_one_core()
    start, until = ({int(p): o for p, o in offsets[end].items()} for end in ("start", "until"))
    fresh_process.ready()
    figures = CHILDREN[reader](topic, servers, start, until, Clock())
    fresh_process.report({"cpu": cpu, **figures})


def fill(cfg, table: str, count: int, timeout: float) -> dict[str, Offsets]:
    """``count`` rows committed into ``table`` and captured onto its topic: the topic's offsets before (a run
    killed before its clean-up may have left records) and after."""
    topic = MNIST.of_table(table)
    servers = cfg.kafka.bootstrap_servers
    start = end_offsets(servers, topic)
    conn = pg_connect(cfg.postgres)
    try:
        bulk_load(conn, [image_rows(table, count)], lambda n: None)
    finally:
        conn.close()
    if not poll(lambda: sum(end_offsets(servers, topic).values()) - sum(start.values()) >= count, timeout, 0.5):
        raise RuntimeError(f"{count} rows did not reach {topic} within {timeout:g} s")
    # With exactly-once delivery each of Connect's transactions ends in a marker that takes an offset too, so
    # the count is reached a little before the last row: the end is where the offsets stop moving (the readers'
    # counts are checked against ``count`` afterwards).
    seen: list[dict[int, int]] = [{}]

    def settled() -> bool:
        now = end_offsets(servers, topic)
        same, seen[0] = now == seen[0], now
        return same

    poll(settled, 30, 1.0)
    return {"start": start, "until": seen[0]}


def main(argv: list[str] | None = None) -> int:
    flags = parser(MODULE, __doc__)
    flags.add_argument("--records", type=int, default=70_000, help="records on the bench topic (70,000)")
    flags.add_argument("--child", choices=list(CHILDREN), help=argparse.SUPPRESS)
    flags.add_argument("--topic", help=argparse.SUPPRESS)
    flags.add_argument("--offsets", type=json.loads, help=argparse.SUPPRESS)
    args = parse(flags, argv)
    cfg = settings(args)
    servers = cfg.kafka.bootstrap_servers
    if args.child:
        child(args.child, args.topic, servers, args.offsets)
        return 0

    readers = [*READ_ONLY, *READ_DECODE, IN_MEMORY]
    skipped = {}
    if importlib.util.find_spec("kafka") is None:
        readers.remove("kafka-python")
        skipped["kafka-python"] = "not installed"
    runs: dict[str, list[dict]] = {}
    with bench_table(cfg, "reading") as table:
        topic = MNIST.of_table(table)
        offsets = fill(cfg, table, args.records, timeout=max(120.0, args.records / 500))
        for _ in range(args.reps):
            for reader in readers:
                common = ["--topic", topic, "--offsets", json.dumps(offsets), "--bootstrap-servers", servers]
                figures = fresh_process.run(MODULE, "--child", reader, *common)
                for name, one in figures.items() if reader == IN_MEMORY else [(reader, figures)]:
                    if isinstance(one, dict):
                        runs.setdefault(name, []).append(one)
    return report(args, runs, skipped)


def report(args: argparse.Namespace, runs: dict[str, list[dict]], skipped: dict[str, str]) -> int:
    """Check every reader decoded every record; print and record the medians, ratios and targets."""
    sizes = runs.pop("sizes")
    records = {name: {one["records"] for one in reps} for name, reps in runs.items()}
    if any(counts != {args.records} for counts in records.values()):
        raise RuntimeError(f"a reader did not decode every one of the {args.records} records: {records}")
    stats = {name: reader_stats(reps) for name, reps in runs.items()}
    ratios, cpu_ratios = compare(stats, "records_per_s"), compare(stats, "records_per_cpu_s")
    goal, times = TARGETS["ours_records_per_s"], TARGETS["ours_to_talk"]
    met = {
        "wall": stats["ours"]["records_per_s"]["median"] >= goal and ratios["ours / talk"] >= times,
        "cpu": stats["ours"]["records_per_cpu_s"]["median"] >= goal and cpu_ratios["ours / talk"] >= times,
    }
    retraced = max(one["new_traces"] for one in sizes)
    ms_per_call = summarise([one["ms_per_call"] for one in sizes])
    print_readers(args, stats, skipped)
    print("ratios of records/s: " + ", ".join(f"{name} {value:.1f}x" for name, value in ratios.items()))
    print(
        "ratios of records per CPU second: " + ", ".join(f"{name} {value:.1f}x" for name, value in cpu_ratios.items())
    )
    print(
        f"targets ours >= {goal:,} records/s on one core and >= {times:g}x the talk's: "
        f"{'met' if met['wall'] else 'missed'} in records/s, {'met' if met['cpu'] else 'missed'} per CPU second"
    )
    print(
        f"decode_csv_batch with batch sizes 1..{sizes[0]['sizes']}: {retraced} new traces, "
        f"{ms_per_call['median']:.1f} ms a call"
    )
    figures = {
        "records": args.records,
        "source": source_name(),
        "batch": BATCH,
        "readers": stats,
        "skipped": skipped,
        "ratios": {name: round(value, 2) for name, value in ratios.items()},
        "ratios_per_cpu_s": {name: round(value, 2) for name, value in cpu_ratios.items()},
        "tf_decode_batch_sizes": {"sizes": sizes[0]["sizes"], "new_traces": retraced, "ms_per_call": ms_per_call},
        "targets": TARGETS,
        "targets_met": met,
    }
    return record(args, "reading", figures)


def reader_stats(reps: list[dict]) -> dict[str, dict[str, float]]:
    """Median, min and max over one reader's repetitions: records/s, CPU per record, how many cores it kept busy."""
    return {
        "records_per_s": summarise([one["records"] / one["seconds"] for one in reps]),
        "cpu_seconds_per_1k": summarise([one["cpu_seconds"] / one["records"] * 1000 for one in reps]),
        # What one core does when it is ours alone: on a shared machine the wall rate is lower.
        "records_per_cpu_s": summarise([one["records"] / one["cpu_seconds"] for one in reps]),
        "cores_busy": summarise([one["cpu_seconds"] / one["seconds"] for one in reps]),
    }


#: The readers compared, each pair measured in the same run: ``first / second``.
PAIRS = [("ours", "talk"), ("ours", "tf-batch"), ("decode_batch", "decode_csv_batch"), ("confluent", "kafka-python")]


def compare(stats: dict[str, dict], measure: str) -> dict[str, float]:
    """``{"a / b": median of a / median of b}`` of ``measure`` for the ``PAIRS`` both measured.

    >>> compare({"ours": {"rate": {"median": 6.0}}, "talk": {"rate": {"median": 2.0}}}, "rate")
    {'ours / talk': 3.0}
    """
    median = {name: s[measure]["median"] for name, s in stats.items()}
    return {f"{a} / {b}": median[a] / median[b] for a, b in PAIRS if a in median and b in median}


def print_readers(args: argparse.Namespace, stats: dict[str, dict], skipped: dict[str, str]) -> None:
    print_table(
        f"Reading path: {args.records:,} records of {source_name()}, batches of {BATCH}, {args.reps} repetitions,"
        " each reader a fresh process on one CPU",
        ["reader", "records/s", "min", "max", "CPU s / 1k records", "records / CPU s", "cores busy"],
        [
            [LABELS[name], *spread(s["records_per_s"]), f"{s['cpu_seconds_per_1k']['median']:.4f}"]
            + [f"{s['records_per_cpu_s']['median']:,.0f}", f"{s['cores_busy']['median']:.2f}"]
            for name, s in stats.items()
        ]
        + [[LABELS[name], f"skipped: {why}", "", "", "", "", ""] for name, why in skipped.items()],
    )


if __name__ == "__main__":
    sys.exit(run(main))
