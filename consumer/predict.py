"""``python -m consumer.predict``: score every row of the test topic and publish one prediction a row, exactly once.

Reads ``--topic`` (default the test topic) in batches, scores each decodable record with the model
(``--model``; a model store's ``latest.keras`` is followed: a newer version is loaded between batches), and
writes one record a row to ``--predictions-topic`` (default ``mnist.predictions``; ``consumer.records.predictions`` has
the record schema), which Debezium's JDBC sink upserts into ``mnist_predictions``.

Consume-transform-produce in one Kafka transaction a batch: ``begin_transaction``, the batch's predictions,
``send_offsets_to_transaction`` (the batch's next offsets, for the group) and ``commit_transaction``. A
read_committed reader (the sink, any of ours) sees a batch's predictions exactly when the group's offsets moved
past its records; a process killed mid-batch leaves an open transaction that the next process with the same
``transactional.id`` (``--group-id`` and ``--instance``) aborts in ``init_transactions`` before it reads, so it
resumes at the first batch that was not committed: no prediction lost, none twice. Offsets are never committed
outside a transaction.

A record the decode rejects produces no prediction (counted as malformed); a decoded record without the
``mnist.table``/``mnist.id`` headers cannot be keyed and is counted apart. Prints a line a batch and a summary.
Exit codes: 0 done, 1 failure with one line on stderr (model, broker, topic, transaction), 2 usage.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass

from consumer.cli import CommandError, add_model_flag, add_topic_flags, prepare, refuse, stop_on_signals
from consumer.kafka.client import kafka_reason
from stack.contract import MNIST

FOLLOW_IDLE_TIMEOUT_S = 24 * 3600
#: How long one transactional call (init, send offsets, commit, abort) may take before the run gives up.
TRANSACTION_TIMEOUT_S = 30.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m consumer.predict",
        description="Score the test topic's rows as they arrive and publish one prediction a row to "
        f"{MNIST.predictions_topic}, exactly once (one Kafka transaction a batch).",
    )
    add_topic_flags(parser, predictions=True)
    parser.add_argument(
        "--group-id",
        default="mnist-predict",
        help="consumer group (default mnist-predict: a new run continues after the last committed batch)",
    )
    parser.add_argument(
        "--instance",
        default="0",
        help="this process's name in the group (default 0; give each process of a group its own): with the group "
        "it makes the transactional.id and the static group.instance.id, so a restart takes its partitions back at "
        "once and aborts what the killed process left open",
    )
    parser.add_argument(
        "--start",
        choices=["earliest", "latest"],
        default="earliest",
        help="where a new group starts: the whole topic (earliest, default) or only rows arriving from now (latest)",
    )
    parser.add_argument("--batch-size", type=int, default=256, help="records a transaction (default 256)")
    parser.add_argument(
        "--idle-timeout", type=float, default=10.0, help="end after this many seconds without records (10)"
    )
    parser.add_argument("--follow", action="store_true", help="run until Ctrl-C instead of ending when idle")
    add_model_flag(parser, "score with")
    return parser


def transactional_id(group_id: str, instance: str) -> str:
    """Stable per group and instance, so a restarted process fences its killed predecessor.

    >>> transactional_id("mnist-predict", "0")
    'mnist-predict-0'
    """
    return f"{group_id}-{instance}"


class TransactionError(Exception):
    """A transaction could not be completed; the message is one line for the user."""


class Rebalanced(Exception):
    """The group rebalanced under a batch: its transaction was aborted, nothing of it is visible, and the
    partitions this process still holds must be read again from the batch's first offsets."""


class Publisher:
    """A transactional producer: one ``publish`` a batch (predictions and the group's offsets, atomically)."""

    def __init__(self, servers: str, txn_id: str) -> None:
        from confluent_kafka import KafkaException, Producer

        from consumer.kafka.client import client_config

        self._KafkaException = KafkaException
        silent = {k: v for k, v in client_config(servers).items() if k in ("log_level", "logger", "error_cb")}
        self.txn_id = txn_id
        self.producer = Producer(
            {
                "bootstrap.servers": servers,
                "transactional.id": txn_id,
                # A transaction left open by a killed process blocks its partitions' offsets (and read_committed
                # readers of the predictions) until the broker aborts it: after 10 s, not the default 60 s, when
                # another member of the group takes the partitions over. (A restart with the same --instance
                # aborts it at once, in init_transactions.)
                "transaction.timeout.ms": 10_000,
                # Idempotent and acks=all are implied by transactional.id; linger bounds the added latency.
                "linger.ms": 5,
                "socket.connection.setup.timeout.ms": int(TRANSACTION_TIMEOUT_S * 1000),
                **silent,
            }
        )
        try:
            # Fences an earlier producer with this transactional.id and aborts its open transaction: must happen
            # before the reader fetches the group's offsets.
            self.producer.init_transactions(TRANSACTION_TIMEOUT_S)
        except KafkaException as error:
            raise TransactionError(
                f"cannot start transactions on Kafka at {servers} as {txn_id}: {kafka_reason(error)}"
            ) from None

    def publish(self, topic: str, records: list[tuple[bytes, bytes]], offsets, group_metadata) -> None:
        """Write ``records`` and commit ``offsets`` (TopicPartitions) for the group in one transaction."""
        try:
            self.producer.begin_transaction()
            for key, value in records:
                self.producer.produce(topic, key=key, value=value)
                self.producer.poll(0)
            self.producer.send_offsets_to_transaction(offsets, group_metadata, TRANSACTION_TIMEOUT_S)
            self._commit()
        except self._KafkaException as error:
            from consumer.kafka.client import REBALANCE_CODES

            kafka_error = error.args[0] if error.args else None
            if kafka_error is not None and getattr(kafka_error, "txn_requires_abort", lambda: False)():
                try:
                    self.producer.abort_transaction(TRANSACTION_TIMEOUT_S)
                except self._KafkaException:
                    pass
                if kafka_error.code() in REBALANCE_CODES:
                    raise Rebalanced(kafka_reason(error)) from None
                raise TransactionError(
                    f"transaction aborted ({kafka_reason(error)}): nothing of this batch is visible; "
                    "a restart resumes at it"
                ) from None
            if kafka_error is not None and kafka_error.fatal():
                raise TransactionError(
                    f"{self.txn_id} was fenced or failed fatally ({kafka_reason(error)}): another predictor with the "
                    "same --group-id and --instance runs?"
                ) from None
            why = kafka_reason(error)
            raise TransactionError(f"transaction failed: {why}; a restart resumes at this batch") from None

    def _commit(self) -> None:
        deadline = time.monotonic() + TRANSACTION_TIMEOUT_S
        while True:
            try:
                self.producer.commit_transaction(TRANSACTION_TIMEOUT_S)
                return
            except self._KafkaException as error:
                kafka_error = error.args[0] if error.args else None
                if kafka_error is None or not kafka_error.retriable() or time.monotonic() > deadline:
                    raise

    def close(self) -> None:
        self.producer.flush(5)


@dataclass
class Tally:
    """What the run did, for the live lines and the summary."""

    batches: int = 0
    records: int = 0
    predictions: int = 0
    malformed: int = 0
    without_id: int = 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        servers, source = prepare(args)
    except CommandError as error:
        return refuse(error)
    try:
        return _run(args, servers, source)
    except KeyboardInterrupt:  # before the stream started (init_transactions, the topic check)
        print("interrupted", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace, servers: str, source) -> int:
    from confluent_kafka import TopicPartition

    from consumer.kafka.batches import open_batches
    from consumer.kafka.client import SourceError, check_topic
    from consumer.learning.scoring import prediction_records
    from consumer.records.predictions import rows_to_predict

    txn_id = transactional_id(args.group_id, args.instance)
    idle = FOLLOW_IDLE_TIMEOUT_S if args.follow else args.idle_timeout
    try:
        check_topic(servers, args.predictions_topic)
        publisher = Publisher(servers, txn_id)
        stream = open_batches(
            "kafka", args.topic, args.group_id, servers, args.batch_size, idle, args.start,
            group=True, instance=args.instance,
        )  # fmt: skip
    except (SourceError, TransactionError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for note in stream.notes:
        print(note, file=sys.stderr, flush=True)
    consumer = stream.reader.consumer
    print(
        f"predicting {args.topic} -> {args.predictions_topic} with {args.model} {source.label} (group {args.group_id}, "
        f"transactional.id {txn_id}, {stream.where.replace('commits after each batch', 'one transaction a batch')}); "
        f"{'Ctrl-C to stop' if args.follow else f'ends after {args.idle_timeout:g} s without records'}",
        flush=True,
    )
    tally = Tally()
    first_at = last_at = None
    # Ctrl-C / SIGTERM stop the reader after the batch in hand, its transaction committed (or aborted and left to
    # be read again), instead of interrupting the transaction.
    with stop_on_signals(stream.reader.stop):
        try:
            for batch in stream.batches:
                last_at = time.perf_counter()
                first_at = first_at or last_at
                line = source.refresh()
                if line:
                    print(line, flush=True)
                raw = batch.raw
                rows, without_id = rows_to_predict(raw.headers, batch.valid.tolist())
                records = prediction_records(source.model, batch.images, rows, source.version)
                offsets = [TopicPartition(args.topic, p, o) for p, o in raw.next_offsets.items()]
                try:
                    publisher.publish(args.predictions_topic, records, offsets, consumer.consumer_group_metadata())
                except Rebalanced as why:
                    stream.reader.rewind(raw)  # what we still hold is read again; the rest is the new owner's
                    print(f"note: the group rebalanced during a batch ({why}): aborted, read again", file=sys.stderr)
                    continue
                tally.batches += 1
                tally.records += len(raw)
                tally.predictions += len(records)
                tally.malformed += batch.malformed
                tally.without_id += without_id
                print(
                    f"batch {tally.batches:>5}  records {len(raw):>4}  predictions {len(records):>4}  "
                    f"model {source.label or args.model.name}  total {tally.predictions}",
                    flush=True,
                )
        except KeyboardInterrupt:  # a second Ctrl-C: an open transaction is aborted when this id starts again
            pass
        except SourceError as error:
            print(f"error: {error} (published {tally.predictions} predictions before)", file=sys.stderr)
            return 1
        except TransactionError as error:
            print(f"error: {error} (published {tally.predictions} predictions before)", file=sys.stderr)
            return 1
    seconds = (last_at - first_at) if first_at else 0.0
    rate = tally.records / seconds if seconds > 0 else 0.0
    print(
        f"predicted {tally.predictions} of {tally.records} records ({tally.malformed} malformed, "
        f"{tally.without_id} without id headers) in {tally.batches} transactions, {seconds:.1f} s: "
        f"{rate:,.1f} records/s; model {source.label or args.model}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
