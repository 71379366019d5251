"""Consumer decode: records/s from Kafka to normalised batches, three readers side by side on the same records.

1. the talk's: tfio ``KafkaGroupIODataset`` -> ``map(decode_kafka_stream_record)`` (``decode_csv`` a message) -> batch
2. ours: tfio -> batch -> ``decode_csv_batch`` (one vectorised decode a batch, malformed records skipped)
3. kafka-python + numpy: ``CommittingReader`` batches -> ``decode_csv_batch`` (our at-least-once source)

Each reader runs in its own process (tfio allows one Kafka consumer a process) over the whole training topic,
with a new consumer group; the time runs from the first record to the last (the final idle wait is left out).

    python -m bench.decode_bench                     # 3 repetitions over tf.public.mnist_train
    python -m bench.decode_bench --reps 1 --no-record
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid

from bench.record import print_table, summarise, write_result
from bench.tables import run
from consumer.settings import TRAIN_TOPIC, bootstrap_servers

READERS = ("talk", "ours", "kafka-python")
BATCH = 1024
IDLE_S = 4.0


def read_all(reader: str, topic: str, servers: str) -> dict[str, float]:
    """Runs in the child process: read the topic once with ``reader``; return records and seconds."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from consumer.decode import decode_csv_batch, decode_kafka_stream_record, decode_records

    group = f"decode-bench-{uuid.uuid4().hex[:8]}"
    if reader == "kafka-python":
        from consumer.committing_source import CommittingReader

        source = CommittingReader(topic, group, servers, IDLE_S, BATCH)

        def batches():
            for batch in source.batches():
                images, labels, _ = decode_records(batch.messages, batch.keys)
                yield labels

    else:
        from consumer.kafka_source import kafka_dataset

        dataset = kafka_dataset(topic, group, servers, IDLE_S)
        if reader == "talk":
            dataset = dataset.map(decode_kafka_stream_record).batch(BATCH)
        else:
            dataset = dataset.batch(BATCH).map(decode_csv_batch)

        def batches():
            for element in dataset:
                yield element[1]

    records, first, last = 0, None, None
    for labels in batches():
        now = time.perf_counter()
        first = first or now
        records += int(labels.shape[0])
        last = now
    return {"records": records, "seconds": (last - first) if first else 0.0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.decode_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--topic", default=TRAIN_TOPIC)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--child", choices=READERS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    servers = bootstrap_servers()
    if args.child:
        print(json.dumps(read_all(args.child, args.topic, servers)))
        return 0

    rates: dict[str, list[float]] = {reader: [] for reader in READERS}
    records = 0
    for _ in range(args.reps):
        for reader in READERS:
            child = subprocess.run(
                [sys.executable, "-m", "bench.decode_bench", "--child", reader, "--topic", args.topic],
                capture_output=True,
                text=True,
                timeout=900,
            )
            if child.returncode != 0:
                print(f"error: {reader} reader failed: {child.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
                return 1
            result = json.loads(child.stdout.strip().splitlines()[-1])
            records = int(result["records"])
            rates[reader].append(result["records"] / result["seconds"] if result["seconds"] else 0.0)

    stats = {reader: summarise(values) for reader, values in rates.items()}
    talk = stats["talk"]["median"] or float("nan")
    ratio = stats["kafka-python"]["median"] / talk  # our default source
    ratio_tfio = stats["ours"]["median"] / talk
    labels = {
        "talk": "talk: tfio, decode_csv a message",
        "ours": "ours, --source tfio: batch then decode",
        "kafka-python": "ours, --source kafka-python (default)",
    }
    print_table(
        f"Decode: {records} records of {args.topic}, {args.reps} repetitions (records/s)",
        ["reader", "median", "min", "max"],
        [[labels[r], *(f"{stats[r][k]:,.0f}" for k in ("median", "min", "max"))] for r in READERS],
    )
    print(f"ratio ours / talk: {ratio:.1f}x with the default source, {ratio_tfio:.1f}x with tfio (target >= 3x)")
    if not args.no_record:
        path = write_result(
            "decode",
            "python -m bench.decode_bench " + " ".join(argv or sys.argv[1:]),
            {
                "records": records,
                "records_per_s": stats,
                "ratio_ours_to_talk": round(ratio, 1),
                "ratio_ours_tfio_to_talk": round(ratio_tfio, 1),
            },
        )
        print(f"recorded in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
