"""The committing reader: raw batches of a topic, offsets committed only when the caller says so.

``CommittingReader`` reads at-least-once from the model's point of view: a batch's offsets are committed only
after the caller says the model has used it (``commit``). A process killed mid-stream resumes, in the same
group, at the first batch it had not finished: nothing skipped, at most one batch seen twice. (tensorflow-io's
source cannot do this: its librdkafka auto-commits every 5 s whatever the model did with the records.)
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from consumer.kafka.client import (
    REBALANCE_CODES,
    KafkaClient,
    SourceError,
    commit,
    committed_offsets,
    error_code,
    kafka_reason,
    partitions_of,
    topic_partitions,
    watermarks,
)

# A partial batch is handed over once its first record has waited this long (or when a poll comes back empty):
# under a steady stream slower than batch size / LINGER_S a batch would otherwise wait until it is full
# (256 records at 200 rows/s: 1.3 s added to every prediction's latency).
LINGER_S = 0.2
# Group membership (``group=True``): the broker spreads partitions over the processes of one group. Cooperative
# rebalancing moves only the partitions that change owner, so the others keep reading during a rebalance.
# A member that dies holds its partitions until its session times out; a static member (``instance``: the
# same group.instance.id after a restart) gets them back at once, without a rebalance.
SESSION_TIMEOUT_MS = 10_000
#: How often an unbounded reader looks for partitions added to its topic (a metadata request: cheap).
PARTITION_CHECK_S = 5.0
# How long closing a reader may take before the command goes on without it.
CLOSE_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class ReadOptions:
    """What to read and how: the one description of a read that ``open_batches`` and ``CommittingReader`` take.

    ``topic`` for ``group_id`` in batches of up to ``batch_size`` records; the read ends after ``idle_timeout_s``
    seconds without records (``None``: never), or once every partition reached ``until`` (``{partition:
    offset}``, e.g. the end offsets taken at the start: a bounded read of what was there). It starts at
    ``offsets`` when given (a checkpoint's), else at the group's committed offsets, else at ``start``
    (``earliest``/``latest``) for a new group. ``group``: join the consumer group, so processes with the same
    ``group_id`` share the partitions; ``instance`` makes the membership static. ``adaptive``: a batch is what
    has arrived, handed over at once (up to ``batch_size``), instead of a full batch or one that lingered
    ``LINGER_S``: caught up, each record is handed over as soon as it comes; behind, batches grow to the bound.
    """

    topic: str
    group_id: str
    batch_size: int
    idle_timeout_s: float | None
    start: str = "earliest"
    offsets: Mapping[int, int] | None = None
    until: Mapping[int, int] | None = None
    group: bool = False
    instance: str | None = None
    adaptive: bool = False


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

    def add(self, message: Message, partition: int, offset: int) -> None:
        """Append one record (its partition and offset, as the reader already read them from it)."""
        self.values.append(message.value() or b"")
        self.keys.append(message.key() or b"")
        self.headers.append(message.headers())
        self.partitions.append(partition)
        self.next_offsets[partition] = offset + 1
        self.first_offsets.setdefault(partition, offset)

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


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _member_settings(options: ReadOptions) -> dict[str, object]:
    """librdkafka settings of a reader, and of a group member."""
    # A position retention overtook is an error event (``_overtaken``), not librdkafka's silent reset.
    settings: dict[str, object] = {"auto.offset.reset": "error"}
    if not options.group:
        return settings
    settings |= {
        "partition.assignment.strategy": "cooperative-sticky",
        "session.timeout.ms": SESSION_TIMEOUT_MS,
        # Partitions added to the topic reach the group within this, not librdkafka's default 5 minutes.
        "topic.metadata.refresh.interval.ms": int(PARTITION_CHECK_S * 1000),
        # Rebalances wait at most this long for members to rejoin; our batches take well under it.
        "max.poll.interval.ms": 300_000,
    }
    if options.instance:
        settings["group.instance.id"] = f"{options.group_id}-{options.instance}"
    return settings


class CommittingReader:
    """Reads ``options.topic`` in batches for ``options.group_id`` (see ``ReadOptions``); commits only in
    ``commit``.

    A start offset outside the retained records (deleted by retention, or past the end) restarts at the earliest
    retained record; ``notes`` says so. Idle means the broker answered and had nothing more: when it does not
    answer, ``batches`` raises ``SourceError`` instead of ending.

    Without ``group`` the reader assigns itself every partition (one reader a group: a restart after a crash
    reads at once). With ``group`` it joins the group (subscribe, cooperative-sticky), so processes with
    the same ``group_id`` share the partitions; when partitions are taken away, the records of the batch in
    progress from those partitions are dropped (every batch handed over before was committed by its user, so
    the new owner starts right after them).
    """

    def __init__(self, client: KafkaClient, options: ReadOptions) -> None:
        if options.group and (options.offsets is not None or options.until is not None):
            raise ValueError("a group member reads from the group's committed offsets, without a bound")
        self.client, self.options = client, options
        self.topic, self.group_id, self.group = options.topic, options.group_id, options.group
        self.until = dict(options.until) if options.until is not None else None
        self.notes: list[str] = []
        self.warn: Callable[[str], None] = _to_stderr  # what a reader finds mid-run, said when it happens
        self.stopping = False  # set by stop(): batches() ends after its current wait for records
        # A caller with work in hand (a scored batch to publish) while the next batch is read: ``busy`` says so,
        # and when nothing is queued the reader does that work (``on_quiet``) instead of waiting for records.
        self.busy: Callable[[], bool] = lambda: False
        self.on_quiet: Callable[[], None] = lambda: None
        self.revocations = 0  # partitions taken away so far: a batch read before a revocation may hold theirs
        self._closer: threading.Thread | None = None
        self.consumer = client.consumer(options.group_id, **_member_settings(options))
        try:
            partitions = partitions_of(self.consumer, client, self.topic)
            self.start_offsets = self._start_offsets(partitions)
        except SourceError:
            self.consumer.close()
            raise
        self._pending = Batch()  # the batch in progress (records read, not yet handed over)
        self._partitions_checked_at = time.monotonic()
        self._committed: dict[int, int] = {}  # what ``commit`` committed, per partition
        if self.group:
            self.partitions: list[int] = []
            self.position: dict[int, int] = {}
            self.consumer.subscribe(
                [self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_revoke
            )
        else:
            self.partitions = partitions
            self.position = dict(self.start_offsets)  # next offset to read, per partition
            self.consumer.assign(topic_partitions(self.topic, self.start_offsets))

    def _start_offsets(self, partitions: list[int]) -> dict[int, int]:
        """Where each partition starts: the checkpoint's or the group's offset, moved to the earliest retained
        record (with a note) when it lies outside the retained records."""
        offsets = self.options.offsets
        origin = "checkpoint" if offsets is not None else f"group {self.group_id}'s committed"
        if offsets is None:
            offsets = self._group_offsets(partitions)
        marks = watermarks(self.consumer, self.client, self.topic, partitions)
        starts: dict[int, int] = {}
        for p in partitions:
            first, end = marks[p]
            offset = offsets.get(p, first)
            if not first <= offset <= end:
                self.notes.append(
                    f"warning: {origin} offset {offset} on {self.topic} partition {p} is outside the retained "
                    f"records ({first}..{end}): restarting from the earliest retained record, offset {first}"
                )
                offset = first
                if self.group:  # a member starts where the group's offset says: correct it (live members refuse;
                    try:  # librdkafka's auto.offset.reset=earliest then does the same)
                        commit(self.consumer, self.client, self.topic, {p: first})
                    except SourceError:
                        pass
            starts[p] = offset
        return starts

    def _group_offsets(self, partitions: list[int]) -> dict[int, int]:
        """The group's offsets, a new group's seeded at ``start``. A group with live members refuses a commit from
        outside it: they seeded it already, so their committed offsets (or ``start``'s) are read instead."""
        start = self.options.start
        try:
            return self.client.seed_group_offsets(self.group_id, self.topic, start)
        except SourceError:
            if not self.group:
                raise
        committed = committed_offsets(self.consumer, self.client, self.group_id, self.topic, partitions)
        marks = watermarks(self.consumer, self.client, self.topic, partitions)
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
            self.consumer.commit(offsets=topic_partitions(self.topic, offsets), asynchronous=False)
        except KafkaException as error:
            if self.group and error_code(error) in REBALANCE_CODES:
                return False
            raise SourceError(
                f"Kafka at {self.client.servers} refused the commit of offsets on {self.topic}: {kafka_reason(error)}"
            ) from None
        return True

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.position.setdefault(tp.partition, -1)  # unknown until a record comes: see _positions
        self.partitions = sorted(self.position)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        revoked = {tp.partition for tp in partitions}
        self.revocations += 1 if revoked else 0
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
            committed = committed_offsets(self.consumer, self.client, self.group_id, self.topic, unknown)
            positions.update({p: self.start_offsets.get(p, 0) if o is None else o for p, o in committed.items()})
        return positions

    def _done(self) -> bool:
        if self.until is None:
            return False
        positions = self._positions()
        return all(positions[p] >= self.until.get(p, 0) for p in self.partitions)

    def _consume(self, wait: float) -> list[Message]:
        """Up to the rest of a batch's records, waiting at most ``wait`` seconds; ``SourceError`` on a failure.
        librdkafka's ``consume(n, timeout)`` returns only once it has all n records or the timeout passed, so an
        adaptive read waits for one record and then takes what is queued behind it without waiting."""
        wanted = self.options.batch_size - len(self._pending)
        try:
            if not self.options.adaptive:
                return self.consumer.consume(num_messages=wanted, timeout=wait)
            first = self.consumer.consume(num_messages=1, timeout=wait)
            if not first or wanted <= 1:
                return first
            return first + self.consumer.consume(num_messages=wanted - 1, timeout=0)
        except KafkaException as error:
            reason = kafka_reason(error)
            raise SourceError(f"reading {self.topic} from Kafka at {self.client.servers} failed: {reason}") from None

    def _take(self, batch: Batch, messages: list[Message]) -> None:
        """Add to ``batch`` the records of ``messages`` that are this reader's to hand over."""
        position, until = self.position, self.until  # locals: this loop runs once a record
        for message in messages:
            if message.error() is not None:
                self._error(message)
                continue
            partition, offset = message.partition(), message.offset()
            at = position.get(partition)
            if at is None:
                continue  # fetched before its partition was taken away: the new owner reads it
            if offset < at:
                continue  # already taken: fetched again after ``_restart_at`` assigned the partitions anew
            if until is not None and offset >= until.get(partition, 0):
                continue  # past the bound: left for the next read
            batch.add(message, partition, offset)
            position[partition] = offset + 1

    def _error(self, message: Message) -> None:
        """An end of partition or a reset offset is noted and passed over; any other error is a ``SourceError``."""
        code = message.error().code()
        if code == KafkaError._AUTO_OFFSET_RESET:
            self._overtaken(message.partition())
        elif code != KafkaError._PARTITION_EOF:
            raise SourceError(
                f"reading {self.topic} from Kafka at {self.client.servers} failed: {message.error().str()}"
            )

    def _overtaken(self, partition: int) -> None:
        """Retention (or a delete) removed records before this reader reached them: say so, with how many, and go
        on from the earliest retained record. A group member's partition without a committed offset (added to
        the topic after the group started) starts there too, without a warning: it lost nothing."""
        if partition not in self.position:
            return  # taken away meanwhile: its new owner resolves it
        first, _ = watermarks(self.consumer, self.client, self.topic, [partition])[partition]
        position = self.position[partition]  # -1: a group member's partition never read yet
        if position >= 0 and first > position:
            note = (
                f"warning: retention deleted {self.topic} partition {partition} offsets {position}..{first - 1} "
                f"before they were read: up to {first - position} records lost, going on from offset {first}"
            )
            self.notes.append(note)
            self.warn(note)
        self._restart_at({partition: first})

    def _assign_added_partitions(self) -> None:
        """An unbounded reader that assigned itself the topic's partitions reads the ones added since, from
        their first record, and says so (a group member gets them from the group's rebalance instead)."""
        if self.group or self.until is not None or time.monotonic() - self._partitions_checked_at < PARTITION_CHECK_S:
            return
        self._partitions_checked_at = time.monotonic()
        try:
            added = [p for p in partitions_of(self.consumer, self.client, self.topic) if p not in self.position]
            marks = watermarks(self.consumer, self.client, self.topic, added) if added else {}
        except SourceError:
            return  # an unanswered look is no answer: the read itself says when the broker is gone
        if not added:
            return
        self._restart_at({p: marks[p][0] for p in added})
        self.warn(f"note: {self.topic} gained partitions {added}: reading them from their first records")

    def _restart_at(self, offsets: dict[int, int]) -> None:
        """Fetch ``{partition: offset}`` from there on (a partition in librdkafka's reset-error state refuses a
        seek, so it is assigned again). A reader that assigned itself its partitions assigns them all again, at
        the positions already handed over (what was fetched past them is fetched again); a group member changes
        only these, incrementally, as its cooperative protocol requires."""
        if self.group:
            changed = topic_partitions(self.topic, offsets)
            self.consumer.incremental_unassign(changed)
            self.consumer.incremental_assign(changed)
        else:
            self.consumer.assign(topic_partitions(self.topic, {**self.position, **offsets}))
        self.position.update(offsets)
        self.partitions = sorted(self.position)

    def _idle_since(self, last_record_at: float) -> bool:
        """True when the idle timeout passed since ``last_record_at``."""
        idle = self.options.idle_timeout_s
        return idle is not None and time.monotonic() - last_record_at >= idle

    def batches(self) -> Iterator[Batch]:
        """Batches of up to ``batch_size`` records, a partial one when the stream pauses; ends when idle."""
        self._pending = Batch()
        last_record_at = first_record_at = time.monotonic()
        linger = 0.0 if self.options.adaptive else LINGER_S
        while not self._done():
            if self.stopping:
                return  # a batch in progress is not yielded, so not committed: the next run reads it
            busy = self.busy()
            wait = LINGER_S if not self._pending else max(0.0, first_record_at + linger - time.monotonic())
            self._assign_added_partitions()
            messages = self._consume(0.0 if busy else wait)
            batch = self._pending  # after consume: a revocation inside it already dropped its partitions' records
            if messages and not batch:
                first_record_at = time.monotonic()
            self._take(batch, messages)
            if messages:
                last_record_at = time.monotonic()
            elif busy and not batch:
                self.on_quiet()
                continue
            elif not batch and self._committed:
                self._commit_markers()
            lingered = time.monotonic() - first_record_at >= linger
            if len(batch) >= self.options.batch_size or (batch and (not messages or lingered or self._done())):
                self._pending = Batch()
                yield batch
            elif not messages and self._idle_since(last_record_at):
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
            f"Kafka at {self.client.servers} stopped answering while reading {self.topic}; nothing more was read"
        )
        if self.group and not self.partitions:
            # No partition (yet): a dead member may hold them until its session times out, or the broker is gone
            # and took the assignment with it. Only the second is an end, and an error.
            try:
                partitions_of(self.consumer, self.client, self.topic)
            except SourceError:
                raise stopped from None
            return False
        try:
            marks = watermarks(self.consumer, self.client, self.topic, self.partitions)
        except SourceError:
            raise stopped from None
        positions = self._positions()
        return all(positions[p] >= marks[p][1] for p in positions)

    def lag(self) -> int:
        """Records on the topic past our position (as the broker says now)."""
        marks = watermarks(self.consumer, self.client, self.topic, self.partitions)
        positions = self._positions()
        return sum(max(0, marks[p][1] - positions[p]) for p in positions)

    def group_metadata(self) -> object:
        """The consumer's group metadata, for a transactional producer's ``send_offsets_to_transaction``."""
        return self.consumer.consumer_group_metadata()

    def commit_offsets(self, offsets: dict[int, int]) -> None:
        """Commit ``{partition: next offset}`` through this reader's consumer (a checkpoint's offsets)."""
        commit(self.consumer, self.client, self.topic, offsets)

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
        and the broker drops a member that never says goodbye after the session timeout). Closing again only
        waits for the first close: a second ``Consumer.close`` would raise in its thread."""
        if self._closer is None:
            self._closer = threading.Thread(target=self.consumer.close, name="kafka-close", daemon=True)
            self._closer.start()
        self._closer.join(CLOSE_TIMEOUT_S)
