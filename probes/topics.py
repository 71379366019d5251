"""What reached a topic, read by a reader of its own.

The delivery claims of tests and benchmarks are counted here, so this module shares no code with
``consumer/``: a bug in the consumer's reader cannot hide itself by also being the judge. It uses the project's
one Kafka client, confluent-kafka, assigned to partitions (no group membership, nothing committed) and seeking
to where the caller says.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from confluent_kafka import OFFSET_BEGINNING, Consumer, ConsumerGroupState, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from probes.rows import number_in

#: How long one request to the broker may take (metadata, watermarks, commits).
REQUEST_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Record:
    """One record as the broker holds it. ``headers``: name -> value (the last one of a name);
    ``header_names``: every header name in order, repeats included."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes] = field(default_factory=dict)
    header_names: tuple[str, ...] = ()


class _Quiet:
    def log(self, *args, **kwargs) -> None:
        pass


def _config(servers: str, group_id: str | None = None) -> dict[str, object]:
    return {
        "bootstrap.servers": servers,
        # Never joins or commits for a group: a probe reads what is there and leaves no trace (except
        # commit_group_offsets, which is asked to).
        "group.id": group_id or f"probe-{uuid.uuid4()}",
        "enable.auto.commit": False,
        # Only records of committed transactions, as every consumer of the pipeline reads them: a record counts
        # as delivered only once a user's read_committed reader could see it (exactly-once producers).
        "isolation.level": "read_committed",
        "logger": _Quiet(),
        "log_level": 0,
        "error_cb": lambda error: None,
    }


def _partitions(consumer: Consumer, topic: str) -> list[int]:
    """The topic's partitions, [] when it does not exist (yet)."""
    metadata = consumer.list_topics(topic, timeout=REQUEST_TIMEOUT_S).topics.get(topic)
    if metadata is None or metadata.error is not None:
        return []
    return sorted(metadata.partitions)


def watermarks(servers: str, topic: str) -> dict[int, tuple[int, int]]:
    """``{partition: (first retained offset, end offset)}`` now; {} when the topic does not exist."""
    consumer = Consumer(_config(servers))
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=REQUEST_TIMEOUT_S, cached=False)
            for p in _partitions(consumer, topic)
        }
    finally:
        consumer.close()


def end_offsets(servers: str, topic: str) -> dict[int, int]:
    """``{partition: offset the next record gets}``; {} when the topic does not exist (``read_from`` then reads
    every partition from the beginning)."""
    return {p: end for p, (_, end) in watermarks(servers, topic).items()}


def _record(message) -> Record:
    headers = message.headers() or []
    return Record(
        topic=message.topic(),
        partition=message.partition(),
        offset=message.offset(),
        key=message.key(),
        value=message.value(),
        headers=dict(headers),
        header_names=tuple(name for name, _ in headers),
    )


def stream(servers: str, topic: str, offsets: dict[int, int] | None, timeout: float) -> Iterator[list[Record]]:
    """Records of ``topic`` in the batches the broker hands over (an empty one when a wait brought nothing),
    starting at ``offsets`` (``{partition: offset}``; a partition not in it, or None, from the beginning), for
    ``timeout`` seconds. Waits for the topic to exist. The caller stops early by leaving the loop."""
    deadline = time.monotonic() + timeout
    consumer = Consumer(_config(servers))
    try:
        partitions = _partitions(consumer, topic)
        while not partitions and time.monotonic() < deadline:
            time.sleep(0.5)
            partitions = _partitions(consumer, topic)
        offsets = offsets or {}
        consumer.assign([TopicPartition(topic, p, offsets.get(p, OFFSET_BEGINNING)) for p in partitions])
        while partitions and time.monotonic() < deadline:
            messages = consumer.consume(num_messages=5000, timeout=min(0.5, max(0.0, deadline - time.monotonic())))
            yield [_record(m) for m in messages if m.error() is None]
    finally:
        consumer.close()


def read_from(
    servers: str,
    topic: str,
    offsets: dict[int, int] | None,
    done: Callable[[list[Record]], bool],
    timeout: float = 60.0,
) -> list[Record]:
    """Every record of ``topic`` from ``offsets`` (None: from the beginning) until ``done(records)`` says so or
    ``timeout`` seconds pass; what was read either way (the caller asserts on it)."""
    records: list[Record] = []
    for batch in stream(servers, topic, offsets, timeout):
        records.extend(batch)
        if done(records):
            break
    return records


def read_to(
    servers: str, topic: str, start: dict[int, int], end: dict[int, int], timeout: float = 90.0
) -> tuple[list[Record], dict[int, int]]:
    """Every committed record of ``topic`` from ``start`` until this read_committed reader's position reached
    ``end`` on every partition, or ``timeout`` seconds passed; the records and the positions it reached.

    The position, not the last record read, tells the end: it moves past transaction markers and past the
    records of aborted transactions, which a read_committed reader never hands over, and it stops at the first
    offset of a transaction still open."""
    deadline = time.monotonic() + timeout
    consumer = Consumer(_config(servers))
    wanted = [p for p in end if end[p] > start.get(p, 0)]
    positions = {p: start.get(p, 0) for p in end}
    records: list[Record] = []
    try:
        consumer.assign([TopicPartition(topic, p, start.get(p, OFFSET_BEGINNING)) for p in end])
        while time.monotonic() < deadline and any(positions[p] < end[p] for p in wanted):
            messages = consumer.consume(num_messages=5000, timeout=min(0.5, max(0.0, deadline - time.monotonic())))
            records.extend(_record(m) for m in messages if m.error() is None)
            for tp in consumer.position([TopicPartition(topic, p) for p in wanted]):
                if tp.offset >= 0:
                    positions[tp.partition] = tp.offset
        return records, positions
    finally:
        consumer.close()


def numbers_on_topic(
    servers: str, topic: str, start_offsets: dict[int, int] | None, prefix: str, expected: int, timeout: float
) -> list[int]:
    """Every number of the run with ``prefix`` (``probes.rows``) read from ``topic`` after ``start_offsets``,
    repeats included, until ``expected`` distinct numbers are there or ``timeout`` seconds pass."""
    numbers: list[int] = []
    distinct: set[int] = set()
    for batch in stream(servers, topic, start_offsets, timeout):
        for record in batch:
            number = number_in(record.value, prefix)
            if number is not None:
                numbers.append(number)
                distinct.add(number)
        if len(distinct) >= expected:
            break
    return numbers


def values_starting_with(records: Iterable[Record], prefixes: Iterable[str]) -> dict[str, list[Record]]:
    """For each CSV prefix, the records whose value starts with it.

    >>> found = values_starting_with([Record("t", 0, 0, b"7", b"1,2,3,0")], ["1,2,3,", "4,"])
    >>> {prefix: [r.offset for r in records] for prefix, records in found.items()}
    {'1,2,3,': [0], '4,': []}
    """
    found: dict[str, list[Record]] = {prefix: [] for prefix in prefixes}
    for record in records:
        for prefix in found:
            if (record.value or b"").startswith(prefix.encode()):
                found[prefix].append(record)
    return found


def find_values(
    servers: str,
    topic: str,
    prefixes: Iterable[str],
    timeout: float = 60.0,
    offsets: dict[int, int] | None = None,
    counts: Iterable[int] | None = None,
) -> dict[str, list[Record]]:
    """For each CSV prefix, the records of ``topic`` (from ``offsets``, None: the beginning) whose value starts
    with it, read until every prefix has one (or its number in ``counts``) or ``timeout`` seconds pass. Records on
    different partitions arrive in no order, so one prefix found says nothing of another's records."""
    prefixes = list(prefixes)
    wanted = dict(zip(prefixes, [1] * len(prefixes) if counts is None else counts, strict=True))

    def complete(records: list[Record]) -> bool:
        found = values_starting_with(records, prefixes)
        return all(len(found[prefix]) >= count for prefix, count in wanted.items())

    return values_starting_with(read_from(servers, topic, offsets, complete, timeout), prefixes)


def produce(servers: str, topic: str, records: Iterable[tuple[bytes | None, bytes | None]]) -> None:
    """Write ``(key, value)`` records as a plain producer would (e.g. malformed ones) and wait until acknowledged."""
    producer = Producer({"bootstrap.servers": servers, "logger": _Quiet(), "error_cb": lambda error: None})
    failures: list[KafkaError] = []
    for key, value in records:
        producer.produce(topic, key=key, value=value, on_delivery=lambda error, _: error and failures.append(error))
    left = producer.flush(REQUEST_TIMEOUT_S * 3)
    if left or failures:
        raise RuntimeError(f"producing to {topic} on {servers} failed: {left} unsent, errors {failures}")


def group_offsets(servers: str, group_id: str, topic: str) -> dict[int, int | None]:
    """``{partition: offset group_id has committed, or None}``."""
    consumer = Consumer(_config(servers, group_id))
    try:
        partitions = [TopicPartition(topic, p) for p in _partitions(consumer, topic)]
        found = consumer.committed(partitions, timeout=REQUEST_TIMEOUT_S) if partitions else []
        return {tp.partition: None if tp.offset < 0 else tp.offset for tp in found}
    finally:
        consumer.close()


def group_assignment(servers: str, group_id: str) -> dict[str, int] | None:
    """``{member id: partitions assigned}`` of a consumer group that is stable (not rebalancing), else
    None: a group whose every member reads once each has a partition."""
    admin = AdminClient({"bootstrap.servers": servers, "logger": _Quiet()})
    group = admin.describe_consumer_groups([group_id], request_timeout=REQUEST_TIMEOUT_S)[group_id].result()
    if group.state != ConsumerGroupState.STABLE:
        return None
    return {member.member_id: len(member.assignment.topic_partitions) for member in group.members}


def commit_group_offsets(servers: str, group_id: str, topic: str, offsets: dict[int, int]) -> None:
    """Commit ``{partition: offset}`` for ``group_id``, as an earlier run of that group would have left them."""
    consumer = Consumer(_config(servers, group_id))
    try:
        consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()], asynchronous=False)
    finally:
        consumer.close()


def read_to_end(servers: str, topic: str, timeout: float = 60.0) -> list[Record]:
    """Every record a read_committed reader finds on ``topic`` up to its end offsets of now: what a count of
    duplicates must read (a copy of a row may sit on another partition than the first, read later)."""
    marks = watermarks(servers, topic)
    start, end = {p: first for p, (first, _) in marks.items()}, {p: last for p, (_, last) in marks.items()}
    records, reached = read_to(servers, topic, start, end, timeout)
    if any(reached[p] < end[p] for p in end):
        raise TimeoutError(f"{topic}: not read to its end {end} within {timeout:g} s (positions {reached})")
    return records


def count_records(servers: str, topic: str, timeout: float = 60.0) -> int:
    """How many records a read_committed reader finds on ``topic`` now (not the offsets: with exactly-once
    producers every transaction's marker takes an offset too)."""
    return len(read_to_end(servers, topic, timeout))
