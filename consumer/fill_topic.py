"""``python -m consumer.fill_topic``: write MNIST-format records straight to a Kafka topic of your own, for
tests and measurements that must not depend on Connect or touch the demo tables.

Records are what the connector writes (key: the label as a decimal string; value: the 784 pixels joined by
commas), spread round-robin over the topic's partitions; ``--copies`` repeats the split to make a larger
topic (a 10x topic for the memory measurement), ``--malformed`` appends records the decode must skip.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from consumer.kafka.client import KafkaClient, SourceError
from consumer.kafka.writer import TopicWriter
from consumer.records.codec import encode_records
from loader.source import load_idx_dir, load_sample
from stack.config import ConfigError, add_flags
from stack.contract import MNIST

MALFORMED = [(b"7", b"1,2,3"), (b"x", b",".join([b"0"] * 784)), (b"3", b"")]


def produce_records(client: KafkaClient, topic: str, images: np.ndarray, labels: np.ndarray, copies: int = 1,
                    malformed: int = 0, partitions: int | None = None, rate: float | None = None,
                    id_table: str | None = None) -> int:  # fmt: skip
    """Write ``copies`` x the records, then ``malformed`` bad ones, at most ``rate`` a second when given;
    returns how many were written. With ``id_table`` every record carries the headers MnistToCsv puts on the
    connector's records, ``mnist.table`` (that name) and ``mnist.id`` (1, 2, ... in writing order), so
    ``consumer.predict`` can key a prediction by them. ``SourceError`` when records did not arrive."""
    writer = TopicWriter(client, topic)
    started = time.monotonic()

    def send(key: bytes, value: bytes) -> None:
        count = writer.written
        headers = None
        if id_table is not None:
            headers = [(MNIST.table_header, id_table.encode()), (MNIST.id_header, str(count + 1).encode())]
        if rate:
            ahead = started + count / rate - time.monotonic()
            if ahead > 0:
                writer.wait(ahead)
        writer.write(key, value, count % partitions if partitions else None, headers)

    records = encode_records(images, labels)
    for _ in range(copies):
        for key, value in records:
            send(key, value)
        writer.wait(0)
    for index in range(malformed):
        send(*MALFORMED[index % len(MALFORMED)])
    return writer.flush()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m consumer.fill_topic", description=__doc__.splitlines()[0])
    parser.add_argument("--topic", required=True)
    add_flags(parser, "kafka")
    parser.add_argument("--split", choices=["train", "test"], default="train")
    parser.add_argument("--idx-dir", type=Path, help="IDX files (e.g. Fashion-MNIST) instead of the bundled sample")
    parser.add_argument("--copies", type=int, default=1)
    parser.add_argument("--malformed", type=int, default=0)
    parser.add_argument("--partitions", type=int, default=1)
    parser.add_argument("--rate", type=float, help="records a second (default: as fast as the broker takes them)")
    parser.add_argument("--limit", type=int, help="only the first N records of the split")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        client = KafkaClient.from_args(args)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    split = (load_idx_dir(args.idx_dir) if args.idx_dir else load_sample())[args.split]
    images, labels = split.images[: args.limit], split.labels[: args.limit]
    try:
        client.create_topic(args.topic, args.partitions)
        started = time.perf_counter()
        count = produce_records(
            client, args.topic, images, labels, args.copies, args.malformed, args.partitions, args.rate
        )
    except SourceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - started
    print(f"wrote {count} records to {args.topic} in {seconds:.1f} s ({count / max(seconds, 1e-9):,.0f} records/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
