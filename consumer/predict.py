"""``python -m consumer.predict``: score every row of the test topic and publish one prediction a row, exactly once.

Reads ``--topic`` (default the test topic) in batches, scores each decodable record with the model
(``--model``; a model store's ``latest.keras`` is followed: a newer version is loaded between batches), and
writes one record a row to ``--predictions-topic`` (default ``mnist.predictions``; ``consumer.records.predictions`` has
the record schema), which Debezium's JDBC sink upserts into ``mnist_predictions``.

Consume-transform-produce in one Kafka transaction a batch: ``begin_transaction``, the batch's predictions,
``send_offsets_to_transaction`` (the batch's next offsets, for the group) and ``commit_transaction``. A
read_committed reader (the sink, any of ours) sees a batch's predictions exactly when the group's offsets moved
past its records; a process killed mid-batch leaves an open transaction that the broker aborts (at once when the
next process has the same ``transactional.id``, ``--group-id`` and ``--instance``, in ``init_transactions``; else
after ``transaction.timeout.ms``) before the next owner of its partitions reads their offsets, so it resumes at the
first batch that was not committed: no prediction lost, none twice. Offsets are never committed outside a
transaction.

Processes of one ``--group-id`` share the topic's partitions. Started plainly, each has a ``transactional.id`` of
its own (the group's generation fences a zombie's offsets, KIP-447); ``--instance NAME`` makes the membership
static and the ``transactional.id`` stable, so a restart takes its partitions back and aborts what it left open
at once.

Predictions follow the row: a deleted row (``__op`` = ``d``) gets a tombstone in the batch's transaction, which
the sink turns into a DELETE. A record the decode rejects, or whose headers name no row (missing, not a number,
out of range), gets nothing: it is counted malformed, with its reason. Prints a line a batch and a summary.
Batches adapt to the stream: caught up, a batch is what has arrived (each row is scored as soon as it comes);
behind, batches grow up to ``--batch-size``, so transactions and model calls amortise. A batch is scored on a
thread of its own while the next one is read (``Pipeline``).

Exit codes: 0 done, 1 failure with one line on stderr (model, broker, topic, transaction, anything unexpected),
2 usage.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from consumer.cli import CommandError, add_group_flag, add_model_flag, add_topic_flags, prepare, refuse, stop_on_signals
from consumer.kafka.batches import DecodedBatch, ReadOptions, Stream, open_batches
from consumer.kafka.client import KafkaClient, SourceError
from consumer.kafka.publisher import Publisher, Rebalanced, TransactionError, transactional_id
from consumer.learning.scoring import plan_probabilities, plan_records
from consumer.records.codec import RecordFormat
from consumer.records.predictions import Plan, describe_malformed, plan_batch
from consumer.store.source import ModelSource
from stack.contract import MNIST, Contract
from stack.errors import first_line

FOLLOW_IDLE_TIMEOUT_S = 24 * 3600

__all__ = ["build_parser", "main", "transactional_id"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m consumer.predict",
        description="Score the test topic's rows as they arrive and publish one prediction a row to the dataset's "
        f"predictions topic ({MNIST.predictions_topic} for mnist), exactly once (one Kafka transaction a batch).",
    )
    add_topic_flags(parser, predictions=True)
    add_group_flag(parser, "predict", "a new run continues after the last committed batch")
    parser.add_argument(
        "--instance",
        help="a stable name for this process in the group (default: none, a transactional.id of its own each run); "
        "with the group it makes the transactional.id and the static group.instance.id, so a restart takes its "
        "partitions back at once and aborts what the killed process left open; processes of one group need "
        "different names",
    )
    parser.add_argument(
        "--start",
        choices=["earliest", "latest"],
        default="earliest",
        help="where a new group starts: the whole topic (earliest, default) or only rows arriving from now (latest)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=2048,
        help="at most this many records a transaction (default 2048); a batch is what has arrived, so caught up "
        "each row is scored as soon as it comes, and behind, batches grow to this bound",
    )
    parser.add_argument(
        "--idle-timeout", type=float, default=10.0, help="end after this many seconds without records (10)"
    )
    parser.add_argument("--follow", action="store_true", help="run until Ctrl-C instead of ending when idle")
    add_model_flag(parser, "score with")
    return parser


@dataclass
class Tally:
    """What the run did, for the live lines and the summary."""

    batches: int = 0
    records: int = 0
    predictions: int = 0
    retracted: int = 0
    malformed: Counter[str] = field(default_factory=Counter)
    first_at: float | None = None  # perf_counter of the first batch and the last: the time records flowed
    last_at: float | None = None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        client, source, dataset = prepare(args)
    except CommandError as error:
        return refuse(error)
    try:
        return _run(args, client, source, dataset)
    except KeyboardInterrupt:  # before the stream started (init_transactions, the topic check)
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - whatever failed, the user gets one line and exit 1, no traceback
        print(f"error: {first_line(error)}", file=sys.stderr)
        return 1


def _open(args: argparse.Namespace, client: KafkaClient, txn_id: str, dataset) -> tuple[Publisher, Stream]:
    """The publisher (its ``init_transactions`` first: it aborts what a killed predecessor left open, before the
    reader fetches the group's offsets) and the group member's stream."""
    client.check_topic(args.predictions_topic)
    publisher = Publisher(client, txn_id)
    idle = FOLLOW_IDLE_TIMEOUT_S if args.follow else args.idle_timeout
    options = ReadOptions(
        args.topic, args.group_id, args.batch_size, idle, args.start, group=True, instance=args.instance, adaptive=True
    )
    return publisher, open_batches(client, options, fmt=RecordFormat.of(dataset))


def _run(args: argparse.Namespace, client: KafkaClient, source: ModelSource, dataset) -> int:
    txn_id = transactional_id(args.group_id, args.instance)
    try:
        publisher, stream = _open(args, client, txn_id, dataset)
    except (SourceError, TransactionError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for note in stream.notes:
        print(note, file=sys.stderr, flush=True)
    print(
        f"predicting {args.topic} -> {args.predictions_topic} with {args.model} {source.label} (group {args.group_id}, "
        f"transactional.id {txn_id}, {stream.describe('one transaction a batch')}); "
        f"{'Ctrl-C to stop' if args.follow else f'ends after {args.idle_timeout:g} s without records'}",
        flush=True,
    )
    pipeline = Pipeline(args, source, publisher, stream, dataset.contract)
    # Ctrl-C / SIGTERM stop the reader after the batch in hand, its transaction committed (or aborted and left to
    # be read again), instead of interrupting the transaction.
    with stop_on_signals(stream.stop):
        try:
            for batch in stream.batches:
                pipeline.take(batch)
            pipeline.land()
        except KeyboardInterrupt:  # a second Ctrl-C: an open transaction is aborted when this id starts again
            pass
        except (SourceError, TransactionError) as error:
            print(f"error: {error} (published {pipeline.tally.predictions} predictions before)", file=sys.stderr)
            return 1
        finally:
            # Now, not when the interpreter finalizes the generator at exit: a consumer closed then leaves its
            # group from a dying interpreter (rebalance callbacks into Python, a new thread) and can hang forever.
            stream.close()
            pipeline.close()
    _summary(args, source, pipeline.tally)
    return 0


def _summary(args: argparse.Namespace, source: ModelSource, tally: Tally) -> None:
    seconds = (tally.last_at - tally.first_at) if tally.first_at and tally.last_at else 0.0
    rate = tally.records / seconds if seconds > 0 else 0.0
    noun = "transaction" if tally.batches == 1 else "transactions"
    print(
        f"predicted {tally.predictions} of {tally.records} records ({tally.retracted} retracted, "
        f"{describe_malformed(tally.malformed)}) in {tally.batches} {noun}, {seconds:.1f} s: "
        f"{rate:,.1f} records/s; model {source.label or args.model}"
    )


@dataclass
class InFlight:
    """A batch being scored on the scoring thread, and what publishing it needs."""

    batch: DecodedBatch
    plan: Plan
    probabilities: Future  # of the class probabilities of the images the plan scores (or None)
    revocations: int  # the group's revocations when it was read
    model: str
    version: int | None


class Pipeline:
    """Read, score and publish, overlapped: a batch is scored on a thread of its own (the model call releases the
    GIL) while the main thread reads and decodes the next one, and its transaction commits while the next one is
    scored. Every transaction is begun and committed on the main thread, one at a time, in reading order.

    A batch read before the group took partitions away is not published (the new owner of those partitions may
    have started from the offsets before it): it and the batch read after it are read again from what this
    process still holds, as after a transaction the rebalance aborted. When the stream is quiet, the batch in
    flight is published at once instead of waiting for the next record."""

    def __init__(
        self, args: argparse.Namespace, source: ModelSource, publisher: Publisher, stream: Stream, names: Contract
    ):
        self.args, self.source, self.publisher, self.stream, self.names = args, source, publisher, stream, names
        self.tally = Tally()
        self.in_flight: InFlight | None = None
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="scoring")
        stream.when_quiet(lambda: self.in_flight is not None, self.land)

    def take(self, batch: DecodedBatch) -> None:
        """Start scoring ``batch``, then publish the batch before it."""
        now = time.perf_counter()
        self.tally.first_at = self.tally.first_at or now
        before, self.in_flight = self.in_flight, self._start(batch)
        if before is not None:
            self._publish(before)

    def land(self) -> None:
        """Publish the batch in flight now (the stream is quiet, or it ended)."""
        before, self.in_flight = self.in_flight, None
        if before is not None:
            self._publish(before)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def _start(self, batch: DecodedBatch) -> InFlight:
        line = self.source.refresh()
        if line:
            print(line, flush=True)
        plan = plan_batch(batch.headers(), batch.valid.tolist(), self.names)
        # Only the model call runs on the scoring thread: it leaves Python's lock to the main thread, which turns
        # the answers into records (Python work: on the scoring thread it held back the next model call).
        probabilities = self.pool.submit(plan_probabilities, self.source.model, batch.images, plan)
        label = self.source.label or self.args.model.name
        return InFlight(batch, plan, probabilities, self.stream.revocations(), label, self.source.version)

    def _publish(self, item: InFlight) -> None:
        """Publish ``item``'s predictions with the group's offsets in one transaction; a batch the group's
        rebalance aborted, or read before partitions were taken away, is read again (what this process still
        holds) instead, with the batch read after it."""
        records = plan_records(item.plan, item.probabilities.result(), item.version, self.names)
        args = self.args
        try:
            if self.stream.revocations() != item.revocations:
                raise Rebalanced("partitions were taken away while it was scored")
            self.publisher.publish(
                args.predictions_topic, records, args.topic, item.batch.offsets(), self.stream.group_metadata()
            )
        except Rebalanced as why:
            self._read_again(item, why)
            return
        tally, plan = self.tally, item.plan
        tally.last_at = time.perf_counter()
        tally.batches += 1
        tally.records += item.batch.received()
        tally.predictions += len(records) - plan.retracted
        tally.retracted += plan.retracted
        tally.malformed.update(plan.malformed)
        print(
            f"batch {tally.batches:>5}  records {item.batch.received():>4}  "
            f"predictions {len(records) - plan.retracted:>4}  model {item.model}  total {tally.predictions}",
            flush=True,
        )

    def _read_again(self, item: InFlight, why: Rebalanced) -> None:
        """Drop ``item`` and the batch read after it; what this process still holds of them is read again (the
        later one rewound first, so the earlier one's offsets win where both read a partition)."""
        if self.in_flight is not None:
            self.stream.rewind(self.in_flight.batch)
            self.in_flight = None
        self.stream.rewind(item.batch)
        print(f"note: the group rebalanced during a batch ({why}): not published, read again", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
