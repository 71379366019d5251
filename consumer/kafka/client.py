"""Everything the consumer asks the broker, through the project's one Kafka client, confluent-kafka (librdkafka):
topic checks, group offsets, and the committing reader. tensorflow-io is never imported here.

``CommittingReader`` reads at-least-once from the model's point of view: a batch's offsets are committed only
after the caller says the model has used it (``commit``). A process killed mid-stream resumes, in the same
group, at the first batch it had not finished: nothing skipped, at most one batch seen twice. (tensorflow-io's
source cannot do this: its librdkafka auto-commits every 5 s whatever the model did with the records.)
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from confluent_kafka import OFFSET_INVALID, Consumer, KafkaError, KafkaException, TopicPartition

# A partial batch is handed over once its first record has waited this long (or when a poll comes back empty):
# under a steady stream slower than batch size / LINGER_S a batch would otherwise wait until it is full
# (256 records at 200 rows/s: 1.3 s added to every prediction's latency).
LINGER_S = 0.2
# How long the broker may take to answer before it counts as unreachable.
BROKER_TIMEOUT_S = 10.0


class SourceError(Exception):
    """The broker or the topic is not usable; the message is the one line the user sees."""


def client_config(servers: str, group_id: str | None = None, **overrides) -> dict[str, object]:
    """librdkafka settings of every consumer of ours (the ones that matter, with why)."""
    config: dict[str, object] = {
        "bootstrap.servers": servers,
        # Offsets are committed by us, after the model used a batch, never on librdkafka's timer.
        "enable.auto.commit": False,
        # A group's committed offset outside the retained records restarts at the earliest one (we say so).
        "auto.offset.reset": "earliest",
        # Only records of committed transactions (librdkafka's default, written out: exactly-once producers).
        "isolation.level": "read_committed",
        # librdkafka's default (1 s) is how long the fetcher waits once its queue is full: a reader that decodes
        # slower than it fetches stalled on it (60k -> 41k records/s measured, docs/benchmarks.md).
        "fetch.queue.backoff.ms": 10,
        # Up to 64 MB fetched ahead of the decoder (default 64 MB too: written out, it bounds memory).
        "queued.max.messages.kbytes": 65536,
        # Fail fast and clearly when no broker answers, instead of librdkafka's silent retrying.
        "socket.connection.setup.timeout.ms": int(BROKER_TIMEOUT_S * 1000),
        # librdkafka logs every failed connection attempt to stderr; errors reach us as exceptions instead.
        "log_level": 0,
        "logger": _silent,
        "error_cb": lambda error: None,
    }
    if group_id is not None:
        config["group.id"] = group_id
    config.update(overrides)
    return config


class _Silent:
    def log(self, *args, **kwargs) -> None:
        pass


_silent = _Silent()


def _open(servers: str, group_id: str | None = None) -> Consumer:
    try:
        return Consumer(client_config(servers, group_id or "mnist-metadata"))
    except (KafkaException, ValueError) as error:
        raise SourceError(f"cannot use Kafka at {servers}: {error}") from None


def _unreachable(servers: str, error: Exception) -> SourceError:
    reason = kafka_reason(error)
    return SourceError(f"cannot reach Kafka at {servers}: no broker answered ({reason}; python -m stack status)")


def kafka_reason(error: Exception) -> str:
    """The one-line reason of a Kafka client error (librdkafka's own text when there is one)."""
    if isinstance(error, KafkaException) and error.args and isinstance(error.args[0], KafkaError):
        return error.args[0].str()
    return str(error) or type(error).__name__


def partitions_of(consumer: Consumer, servers: str, topic: str) -> list[int]:
    """The topic's partitions; one-line ``SourceError`` when the broker does not answer or the topic is missing."""
    try:
        metadata = consumer.list_topics(topic, timeout=BROKER_TIMEOUT_S)
    except KafkaException as error:
        raise _unreachable(servers, error) from None
    found = metadata.topics.get(topic)
    if found is None or found.error is not None or not found.partitions:
        raise SourceError(
            f"topic {topic} does not exist on {servers}: is the connector RUNNING (python -m stack status) "
            "and has a row been loaded (make load-mnist)?"
        )
    return sorted(found.partitions)


def check_topic(servers: str, topic: str) -> list[int]:
    """The topic's partitions (see ``partitions_of``)."""
    consumer = _open(servers)
    try:
        return partitions_of(consumer, servers, topic)
    finally:
        consumer.close()


def watermarks(consumer: Consumer, servers: str, topic: str, partitions: list[int]) -> dict[int, tuple[int, int]]:
    """``{partition: (first retained offset, end offset)}`` as the broker says now."""
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=BROKER_TIMEOUT_S, cached=False)
            for p in partitions
        }
    except KafkaException as error:
        raise _unreachable(servers, error) from None


def end_offsets(servers: str, topic: str) -> dict[int, int]:
    """``{partition: end offset}`` of ``topic`` now (where the next record will be written)."""
    consumer = _open(servers)
    try:
        marks = watermarks(consumer, servers, topic, partitions_of(consumer, servers, topic))
        return {p: end for p, (_, end) in marks.items()}
    finally:
        consumer.close()


def committed_offsets(consumer: Consumer, servers: str, group_id: str, topic: str, partitions: list[int]):
    """``{partition: committed offset or None}`` of ``group_id``."""
    try:
        found = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=BROKER_TIMEOUT_S)
    except KafkaException as error:
        raise SourceError(
            f"cannot read the offsets of group {group_id} from Kafka at {servers}: {kafka_reason(error)}"
        ) from None
    return {tp.partition: (None if tp.offset == OFFSET_INVALID or tp.offset < 0 else tp.offset) for tp in found}


def commit(consumer: Consumer, servers: str, topic: str, offsets: dict[int, int]) -> None:
    """Commit ``{partition: next offset}`` and wait for the broker to confirm it."""
    try:
        consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()], asynchronous=False)
    except KafkaException as error:
        why = kafka_reason(error)
        raise SourceError(f"Kafka at {servers} refused the commit of offsets on {topic}: {why}") from None


def commit_group_offsets(servers: str, group_id: str, topic: str, offsets: dict[int, int]) -> None:
    """Commit ``{partition: next offset}`` for ``group_id`` from outside the group (a reader that assigns itself
    its partitions, or a checkpoint's offsets)."""
    consumer = _open(servers, group_id)
    try:
        commit(consumer, servers, topic, offsets)
    finally:
        consumer.close()


def committed_records(servers: str, group_id: str, topic: str) -> int:
    """How many retained records of ``topic`` lie before ``group_id``'s committed offsets (0 for a new group):
    the records a run in that group skips."""
    consumer = _open(servers, group_id)
    try:
        partitions = partitions_of(consumer, servers, topic)
        committed = committed_offsets(consumer, servers, group_id, topic, partitions)
        known = [p for p, offset in committed.items() if offset is not None]
        marks = watermarks(consumer, servers, topic, known)
        return sum(max(0, committed[p] - marks[p][0]) for p in known)
    finally:
        consumer.close()


def seed_group_offsets(servers: str, group_id: str, topic: str, start: str = "earliest") -> dict[int, int]:
    """Commit a start offset on every partition where ``group_id`` has no committed offset yet.

    ``start`` is ``earliest`` (the whole topic) or ``latest`` (only records that arrive from now on). A group
    that has committed offsets continues from them. Returns the start offset per partition. (The talk's tfio
    reader needs this: its librdkafka 1.5 resolves a new group's start with a request Kafka 4 removed.)
    """
    consumer = _open(servers, group_id)
    try:
        partitions = partitions_of(consumer, servers, topic)
        committed = committed_offsets(consumer, servers, group_id, topic, partitions)
        missing = [p for p, offset in committed.items() if offset is None]
        if missing:
            marks = watermarks(consumer, servers, topic, missing)
            fresh = {p: marks[p][1] if start == "latest" else marks[p][0] for p in missing}
            commit(consumer, servers, topic, fresh)
            committed.update(fresh)
        return committed
    finally:
        consumer.close()


@dataclass
class Batch:
    """Raw records of one batch (with each record's partition) and, per partition, the offset to commit once the
    batch is consumed."""

    values: list[bytes] = field(default_factory=list)
    keys: list[bytes] = field(default_factory=list)
    headers: list[list[tuple[str, bytes]] | None] = field(default_factory=list)
    partitions: list[int] = field(default_factory=list)
    next_offsets: dict[int, int] = field(default_factory=dict)
    first_offsets: dict[int, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.values)

    def without(self, revoked: set[int]) -> Batch:
        """The records of this batch that are not on ``revoked`` partitions."""
        keep = [i for i, p in enumerate(self.partitions) if p not in revoked]
        return Batch(
            [self.values[i] for i in keep],
            [self.keys[i] for i in keep],
            [self.headers[i] for i in keep],
            [self.partitions[i] for i in keep],
            {p: o for p, o in self.next_offsets.items() if p not in revoked},
            {p: o for p, o in self.first_offsets.items() if p not in revoked},
        )


# Group membership (``group=True``): the broker spreads partitions over the processes of one group. Cooperative
# rebalancing moves only the partitions that change owner, so the others keep reading during a rebalance.
# A member that dies holds its partitions until its session times out; a static member (``instance``: the
# same group.instance.id after a restart) gets them back at once, without a rebalance.
SESSION_TIMEOUT_MS = 10_000
# How long closing a reader may take before the command goes on without it.
CLOSE_TIMEOUT_S = 10.0
# A commit refused because the group rebalanced under it.
REBALANCE_CODES = {KafkaError.REBALANCE_IN_PROGRESS, KafkaError.ILLEGAL_GENERATION, KafkaError.UNKNOWN_MEMBER_ID}


class CommittingReader:
    """Reads ``topic`` in batches for ``group_id``; ends after ``idle_timeout_s`` seconds without records
    (``None``: never), or once every partition reached ``until`` (``{partition: offset}``, e.g. the end offsets
    taken at the start: a bounded read of what was there).

    Starts at ``offsets`` when given (a checkpoint's), else at the group's committed offsets, else at ``start``
    (``earliest``/``latest``) for a new group; commits only in ``commit``. A start offset outside the retained
    records (deleted by retention, or past the end) restarts at the earliest retained record; ``notes`` says
    so. Idle means the broker answered and had nothing more: when it does not answer, ``batches`` raises
    ``SourceError`` instead of ending.

    Without ``group`` the reader assigns itself every partition (one reader a group: a restart after a crash
    reads at once). With ``group=True`` it joins the group (subscribe, cooperative-sticky), so processes with
    the same ``group_id`` share the partitions; when partitions are taken away, the records of the batch in
    progress from those partitions are dropped (every batch handed over before was committed by its user, so
    the new owner starts right after them). ``instance`` makes the membership static.
    """

    def __init__(
        self,
        topic: str,
        group_id: str,
        servers: str,
        idle_timeout_s: float | None,
        batch_size: int,
        start: str = "earliest",
        offsets: dict[int, int] | None = None,
        until: dict[int, int] | None = None,
        group: bool = False,
        instance: str | None = None,
    ) -> None:
        if group and (offsets is not None or until is not None):
            raise ValueError("a group member reads from the group's committed offsets, without a bound")
        self.topic, self.group_id, self.servers, self.group = topic, group_id, servers, group
        self.idle_timeout_s, self.batch_size, self.until = idle_timeout_s, batch_size, until
        self.notes: list[str] = []
        self.stopping = False  # set by stop(): batches() ends after its current wait for records
        overrides: dict[str, object] = {}
        if group:
            overrides = {
                "partition.assignment.strategy": "cooperative-sticky",
                "session.timeout.ms": SESSION_TIMEOUT_MS,
                # Rebalances wait at most this long for members to rejoin; our batches take well under it.
                "max.poll.interval.ms": 300_000,
            }
            if instance:
                overrides["group.instance.id"] = f"{group_id}-{instance}"
        try:
            self.consumer = Consumer(client_config(servers, group_id, **overrides))
        except (KafkaException, ValueError) as error:
            raise SourceError(f"cannot use Kafka at {servers}: {error}") from None
        try:
            partitions = partitions_of(self.consumer, servers, topic)
            origin = "checkpoint" if offsets is not None else f"group {group_id}'s committed"
            if offsets is None:
                offsets = self._group_offsets(start, partitions)
            marks = watermarks(self.consumer, servers, topic, partitions)
        except SourceError:
            self.consumer.close()
            raise
        self.start_offsets: dict[int, int] = {}
        for p in partitions:
            first, end = marks[p]
            offset = offsets.get(p, first)
            if not first <= offset <= end:
                self.notes.append(
                    f"warning: {origin} offset {offset} on {topic} partition {p} is outside the retained records "
                    f"({first}..{end}): restarting from the earliest retained record, offset {first}"
                )
                offset = first
                if group:  # a member starts where the group's offset says: correct it (live members refuse;
                    try:  # librdkafka's auto.offset.reset=earliest then does the same)
                        commit(self.consumer, servers, topic, {p: first})
                    except SourceError:
                        pass
            self.start_offsets[p] = offset
        self._pending = Batch()  # the batch in progress (records read, not yet handed over)
        self._committed: dict[int, int] = {}  # what ``commit`` committed, per partition
        if group:
            self.partitions: list[int] = []
            self.position: dict[int, int] = {}
            self.consumer.subscribe(
                [topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_revoke
            )
        else:
            self.partitions = partitions
            self.position = dict(self.start_offsets)  # next offset to read, per partition
            self.consumer.assign([TopicPartition(topic, p, o) for p, o in self.start_offsets.items()])

    def _group_offsets(self, start: str, partitions: list[int]) -> dict[int, int]:
        """The group's offsets, a new group's seeded at ``start``. A group with live members refuses a commit from
        outside it: they seeded it already, so their committed offsets (or ``start``'s) are read instead."""
        try:
            return seed_group_offsets(self.servers, self.group_id, self.topic, start)
        except SourceError:
            if not self.group:
                raise
        committed = committed_offsets(self.consumer, self.servers, self.group_id, self.topic, partitions)
        marks = watermarks(self.consumer, self.servers, self.topic, partitions)
        fresh = {p: marks[p][1] if start == "latest" else marks[p][0] for p in partitions}
        return {p: fresh[p] if offset is None else offset for p, offset in committed.items()}

    def _commit_if_member(self, offsets: dict[int, int]) -> bool:
        """Commit ``offsets`` of the partitions this reader still holds. A group member whose partitions moved
        in a rebalance is refused: the new owner then reads those records again (at-least-once), never skips."""
        if self.group:
            offsets = {p: o for p, o in offsets.items() if p in self.position}
        if not offsets:
            return False
        try:
            self.consumer.commit(
                offsets=[TopicPartition(self.topic, p, o) for p, o in offsets.items()], asynchronous=False
            )
        except KafkaException as error:
            code = error.args[0].code() if error.args and isinstance(error.args[0], KafkaError) else None
            if self.group and code in REBALANCE_CODES:
                return False
            raise SourceError(
                f"Kafka at {self.servers} refused the commit of offsets on {self.topic}: {kafka_reason(error)}"
            ) from None
        return True

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.position.setdefault(tp.partition, -1)  # unknown until a record comes: see _positions
        self.partitions = sorted(self.position)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        revoked = {tp.partition for tp in partitions}
        self._pending = self._pending.without(revoked)
        for p in revoked:
            self.position.pop(p, None)
        self.partitions = sorted(self.position)

    def _positions(self) -> dict[int, int]:
        """Next offset per partition: ours, or librdkafka's when it moved past transaction markers (a marker
        takes an offset, so with exactly-once producers the end offset lies past the last record), or, for a
        partition a group member has not read from yet, the group's committed offset."""
        if not self.partitions:
            return {}
        found = self.consumer.position([TopicPartition(self.topic, p) for p in self.partitions])
        positions = {tp.partition: max(self.position.get(tp.partition, -1), tp.offset) for tp in found}
        unknown = [p for p, offset in positions.items() if offset < 0]
        if unknown:
            committed = committed_offsets(self.consumer, self.servers, self.group_id, self.topic, unknown)
            positions.update({p: self.start_offsets.get(p, 0) if o is None else o for p, o in committed.items()})
        return positions

    def _done(self) -> bool:
        if self.until is None:
            return False
        positions = self._positions()
        return all(positions[p] >= self.until.get(p, 0) for p in self.partitions)

    def batches(self) -> Iterator[Batch]:
        """Batches of up to ``batch_size`` records, a partial one when the stream pauses; ends when idle."""
        self._pending = Batch()
        last_record_at = first_record_at = time.monotonic()
        while not self._done():
            if self.stopping:
                return  # a batch in progress is not yielded, so not committed: the next run reads it
            wait = LINGER_S if not self._pending else max(0.0, first_record_at + LINGER_S - time.monotonic())
            try:
                messages = self.consumer.consume(num_messages=self.batch_size - len(self._pending), timeout=wait)
            except KafkaException as error:
                reason = kafka_reason(error)
                raise SourceError(f"reading {self.topic} from Kafka at {self.servers} failed: {reason}") from None
            batch = self._pending  # after consume: a revocation inside it already dropped its partitions' records
            if messages and not batch:
                first_record_at = time.monotonic()
            for message in messages:
                if message.error() is not None:
                    if message.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise SourceError(
                        f"reading {self.topic} from Kafka at {self.servers} failed: {message.error().str()}"
                    )
                partition, offset = message.partition(), message.offset()
                if partition not in self.position:
                    continue  # fetched before its partition was taken away: the new owner reads it
                if self.until is not None and offset >= self.until.get(partition, 0):
                    continue  # past the bound: left for the next read
                batch.values.append(message.value() or b"")
                batch.keys.append(message.key() or b"")
                batch.headers.append(message.headers())
                batch.partitions.append(partition)
                batch.next_offsets[partition] = offset + 1
                batch.first_offsets.setdefault(partition, offset)
                self.position[partition] = offset + 1
            if messages:
                last_record_at = time.monotonic()
            elif not batch and self._committed:
                self._commit_markers()
            lingered = time.monotonic() - first_record_at >= LINGER_S
            if len(batch) >= self.batch_size or (batch and (not messages or lingered)) or (batch and self._done()):
                self._pending = Batch()
                yield batch
            elif (
                not messages
                and self.idle_timeout_s is not None
                and time.monotonic() - last_record_at >= self.idle_timeout_s
            ):
                if self._caught_up():
                    return
                last_record_at = time.monotonic()  # records are there after all (the broker was back): go on
        if self._pending:
            batch, self._pending = self._pending, Batch()
            yield batch

    def _caught_up(self) -> bool:
        """True when the broker answers and no partition has records past our position; ``SourceError`` when it
        does not answer (an empty poll from an unreachable broker must not look like the end of the stream)."""
        stopped = SourceError(
            f"Kafka at {self.servers} stopped answering while reading {self.topic}; nothing more was read"
        )
        if self.group and not self.partitions:
            # No partition (yet): a dead member may hold them until its session times out, or the broker is gone
            # and took the assignment with it. Only the second is an end, and an error.
            try:
                partitions_of(self.consumer, self.servers, self.topic)
            except SourceError:
                raise stopped from None
            return False
        try:
            marks = watermarks(self.consumer, self.servers, self.topic, self.partitions)
        except SourceError:
            raise stopped from None
        positions = self._positions()
        return all(positions[p] >= marks[p][1] for p in positions)

    def lag(self) -> int:
        """Records on the topic past our position (as the broker says now)."""
        marks, positions = watermarks(self.consumer, self.servers, self.topic, self.partitions), self._positions()
        return sum(max(0, marks[p][1] - positions[p]) for p in positions)

    def rewind(self, batch: Batch) -> None:
        """Read ``batch`` again: seek the partitions this reader still holds back to its first offsets (after a
        transaction of it was aborted)."""
        for p, first in batch.first_offsets.items():
            if p in self.position:
                self.consumer.seek(TopicPartition(self.topic, p, first))
                self.position[p] = first

    def commit(self, batch: Batch) -> None:
        """Record that ``batch`` was consumed: a restart in this group starts after it."""
        if self._commit_if_member(batch.next_offsets):
            self._committed.update(batch.next_offsets)

    def _commit_markers(self) -> None:
        """With everything read committed, commit librdkafka's position where it moved past transaction markers
        (exactly-once producers end every transaction with one): the group's lag then reads 0, not 1 a
        partition, and its offsets equal the end offsets. Skips no record: nothing was read past the commit."""
        ahead = {
            p: offset
            for p, offset in self._positions().items()
            if p in self._committed and self._committed[p] == self.position.get(p) and offset > self._committed[p]
        }
        if ahead and self._commit_if_member(ahead):
            self._committed.update(ahead)
            self.position.update(ahead)

    def stop(self) -> None:
        """End ``batches()`` at its next turn (within one wait for records, at most LINGER_S): safe to call from a
        signal handler, unlike raising KeyboardInterrupt wherever the main thread happens to be (inside a
        rebalance callback, a commit, a transaction)."""
        self.stopping = True

    def close(self) -> None:
        """Leave the group and close, waiting at most CLOSE_TIMEOUT_S: a member's close waits for the broker to
        finish the rebalance it starts; a command stopped by Ctrl-C must not hang on it (its commits are done,
        and the broker drops a member that never says goodbye after the session timeout)."""
        import threading

        closer = threading.Thread(target=self.consumer.close, name="kafka-close", daemon=True)
        closer.start()
        closer.join(CLOSE_TIMEOUT_S)
