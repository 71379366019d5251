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

from stack.config import ConfigError, add_flags, kafka_from_args
from stack.contract import MNIST

MALFORMED = [(b"7", b"1,2,3"), (b"x", b",".join([b"0"] * 784)), (b"3", b"")]


def csv_values(images: np.ndarray) -> list[bytes]:
    """``uint8`` images (n, 28, 28) or (n, 784) as the connector's CSV values.

    >>> csv_values(np.array([[0, 7, 255]], np.uint8))
    [b'0,7,255']
    """
    flat = images.reshape(len(images), -1)
    return [",".join(map(str, row.tolist())).encode() for row in flat]


def create_topic(servers: str, topic: str, partitions: int) -> None:
    """Create ``topic`` with ``partitions`` partitions (replication 1); an existing topic is kept."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": servers})
    future = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])[topic]
    try:
        future.result(timeout=30)
    except KafkaException as error:
        if "TOPIC_ALREADY_EXISTS" not in str(error):
            raise


def produce_records(servers: str, topic: str, images: np.ndarray, labels: np.ndarray, copies: int = 1,
                    malformed: int = 0, partitions: int | None = None, rate: float | None = None,
                    id_table: str | None = None) -> int:  # fmt: skip
    """Write ``copies`` x the records, then ``malformed`` bad ones, at most ``rate`` a second when given;
    returns how many were written. With ``id_table`` every record carries the headers MnistToCsv puts on the
    connector's records, ``mnist.table`` (that name) and ``mnist.id`` (1, 2, ... in writing order), so
    ``consumer.predict`` can key a prediction by them."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": servers, "linger.ms": 20, "batch.size": 1_000_000})
    values, keys = csv_values(images), [str(int(label)).encode() for label in labels]
    failures: list = []
    count = 0
    started = time.monotonic()

    def send(key: bytes, value: bytes) -> None:
        nonlocal count
        extra: dict[str, object] = {"partition": count % partitions} if partitions else {}
        if id_table is not None:
            extra["headers"] = [(MNIST.table_header, id_table.encode()), (MNIST.id_header, str(count + 1).encode())]
        if rate:
            ahead = started + count / rate - time.monotonic()
            if ahead > 0:
                producer.poll(ahead)
        while True:
            try:
                producer.produce(topic, value, key, on_delivery=lambda e, _: e and failures.append(e), **extra)
                break
            except BufferError:
                producer.poll(0.1)
        count += 1

    for _ in range(copies):
        for key, value in zip(keys, values, strict=True):
            send(key, value)
        producer.poll(0)
    for index in range(malformed):
        send(*MALFORMED[index % len(MALFORMED)])
    left = producer.flush(60)
    if left or failures:
        raise RuntimeError(f"producing to {topic} failed: {left} unsent, errors {failures[:3]}")
    return count


def main(argv: list[str] | None = None) -> int:
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
    args = parser.parse_args(argv)
    try:
        servers = kafka_from_args(args).bootstrap_servers
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    from loader.source import load_idx_dir, load_sample

    split = (load_idx_dir(args.idx_dir) if args.idx_dir else load_sample())[args.split]
    images, labels = split.images[: args.limit], split.labels[: args.limit]
    create_topic(servers, args.topic, args.partitions)
    started = time.perf_counter()
    count = produce_records(
        servers, args.topic, images, labels, args.copies, args.malformed, args.partitions, args.rate
    )
    seconds = time.perf_counter() - started
    print(f"wrote {count} records to {args.topic} in {seconds:.1f} s ({count / max(seconds, 1e-9):,.0f} records/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
