"""At-least-once Kafka reading with kafka-python: a batch's offsets are committed only after the caller says
the model has consumed it (``commit``). A process killed mid-stream resumes, in the same group, at the first
batch it had not finished: nothing skipped, at most one batch seen twice.

tensorflow-io's source cannot do this: librdkafka auto-commits every 5 s whatever the model did with the
records (at-most-once from the model's point of view).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from consumer.kafka_source import SourceError, check_topic, seed_group_offsets

# A partial batch is handed over when no record came for this long: live lines keep up with slow streams.
LINGER_MS = 200
# How long the broker may take to answer "where does each partition end" before it counts as unreachable.
BROKER_CHECK_MS = 10_000


def committed_records(servers: str, group_id: str, topic: str) -> int:
    """How many retained records of ``topic`` lie before ``group_id``'s committed offsets (0 for a new group):
    the records a run in that group skips."""
    try:
        consumer = KafkaConsumer(bootstrap_servers=servers, group_id=group_id, enable_auto_commit=False)
    except (KafkaError, OSError, ValueError) as error:
        raise SourceError(f"cannot reach Kafka at {servers}: {error}") from None
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        committed = {tp: consumer.committed(tp) for tp in partitions}
        known = [tp for tp, offset in committed.items() if offset is not None]
        if not known:
            return 0
        beginning = consumer.beginning_offsets(known)
        return sum(max(0, committed[tp] - beginning[tp]) for tp in known)
    except KafkaError as error:
        raise SourceError(f"cannot read the offsets of group {group_id} from Kafka at {servers}: {error}") from None
    finally:
        consumer.close()


@dataclass
class Batch:
    """Raw records of one batch and, per partition, the offset to commit once the batch is consumed."""

    messages: list[bytes] = field(default_factory=list)
    keys: list[bytes] = field(default_factory=list)
    next_offsets: dict[TopicPartition, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.messages)


class CommittingReader:
    """Reads ``topic`` in batches for ``group_id``; ends after ``idle_timeout_s`` seconds without records.

    Starts at the group's committed offsets (or ``start`` for a new group) and commits only in ``commit``.
    A committed offset outside the retained records (deleted by retention, or past the end) restarts at the
    earliest retained record, also mid-read (``auto_offset_reset="earliest"``); ``notes`` says so for the user.
    Idle means the broker answered and had nothing more: when it does not answer, ``batches`` raises
    ``SourceError`` instead of ending.
    """

    def __init__(
        self,
        topic: str,
        group_id: str,
        servers: str,
        idle_timeout_s: float,
        batch_size: int,
        start: str = "earliest",
    ) -> None:
        check_topic(servers, topic)
        self.start_offsets = seed_group_offsets(servers, group_id, topic, start)
        self.topic, self.idle_timeout_s, self.batch_size, self.servers = topic, idle_timeout_s, batch_size, servers
        self.notes: list[str] = []
        try:
            # Partitions are assigned, not subscribed: no group membership, so a restart after a crash reads at
            # once instead of waiting for the dead member's session to expire in a rebalance. One reader a group.
            self._consumer = KafkaConsumer(
                bootstrap_servers=servers,
                group_id=group_id,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                max_partition_fetch_bytes=8 * 1024 * 1024,
            )
        except (KafkaError, OSError, ValueError) as error:
            raise SourceError(f"cannot reach Kafka at {servers}: {error}") from None
        self._partitions = [TopicPartition(topic, p) for p in sorted(self.start_offsets)]
        self._consumer.assign(self._partitions)
        try:
            beginning = self._consumer.beginning_offsets(self._partitions)
            end = self._consumer.end_offsets(self._partitions)
        except KafkaError as error:
            raise SourceError(f"cannot read the offsets of {topic} from Kafka at {servers}: {error}") from None
        for tp in self._partitions:
            offset = self.start_offsets[tp.partition]
            if not beginning[tp] <= offset <= end[tp]:
                self.notes.append(
                    f"warning: group {group_id}'s committed offset {offset} on {topic} partition {tp.partition} is "
                    f"outside the retained records ({beginning[tp]}..{end[tp]}): restarting from the earliest "
                    f"retained record, offset {beginning[tp]}"
                )
                offset = self.start_offsets[tp.partition] = beginning[tp]
            self._consumer.seek(tp, offset)

    def batches(self) -> Iterator[Batch]:
        """Batches of up to ``batch_size`` records, a partial one when the stream pauses; ends when idle."""
        batch = Batch()
        last_record_at = time.monotonic()
        while True:
            polled = self._consumer.poll(timeout_ms=LINGER_MS, max_records=self.batch_size - len(batch))
            for records in polled.values():
                for record in records:
                    batch.messages.append(record.value or b"")
                    batch.keys.append(record.key or b"")
                    batch.next_offsets[TopicPartition(record.topic, record.partition)] = record.offset + 1
            if polled:
                last_record_at = time.monotonic()
            if len(batch) >= self.batch_size or (batch and not polled):
                yield batch
                batch = Batch()
            elif not polled and time.monotonic() - last_record_at >= self.idle_timeout_s:
                if self._caught_up():
                    return
                last_record_at = time.monotonic()  # records are there after all (the broker was back): go on

    def _caught_up(self) -> bool:
        """True when the broker answers and no partition has records past our position; ``SourceError`` when it
        does not answer (an empty poll from an unreachable broker must not look like the end of the stream)."""
        try:
            end = self._consumer.end_offsets(self._partitions, timeout_ms=BROKER_CHECK_MS)
        except (KafkaError, OSError) as error:
            raise SourceError(
                f"Kafka at {self.servers} stopped answering while reading {self.topic} "
                f"({type(error).__name__}); nothing more was read"
            ) from None
        return all(self._consumer.position(tp) >= end[tp] for tp in self._partitions)

    def commit(self, batch: Batch) -> None:
        """Record that ``batch`` was consumed: a restart in this group starts after it."""
        self._consumer.commit({tp: OffsetAndMetadata(offset, "", -1) for tp, offset in batch.next_offsets.items()})

    def close(self) -> None:
        self._consumer.close(autocommit=False)
